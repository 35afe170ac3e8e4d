# Copyright: meshfed.istio contributors; GNU General Public License v3.0+ (see LICENSE; SPDX-License-Identifier: GPL-3.0-or-later)
"""Gather one cluster's card, read-only, in a constant number of requests: LIST the istio namespace's ConfigMaps and Deployments,
GET istio-ca-root-cert and the gateway Service, LIST Services per public-service label, Pods per label key the selectors share
(``<key> in (<values>)``), Nodes only for a NodePort gateway. Secret ``cacerts`` is never read."""

from collections import Counter

from ansible_collections.meshfed.istio.plugins.module_utils.istio import rules as istio
from ansible_collections.meshfed.istio.plugins.module_utils.istio import workloads
from ansible_collections.meshfed.istio.plugins.module_utils.pki.certs import EXPIRY_WARNING_DAYS, parse_root_bundle
from ansible_collections.meshfed.istio.plugins.module_utils.common.errors import FactsError, about, prefixed
from ansible_collections.meshfed.istio.plugins.module_utils.common.apipaths import api_path, core_path
from ansible_collections.meshfed.istio.plugins.module_utils.istio.meshconfig import load_mesh, trust_domain

DEFAULT_PUBLIC_LABELS = ["federation.meshfed.io/public-service", "federation.istio.deckhouse.io/public-service"]
SERVICE_ACCOUNTS_ANNOTATION = "federation.meshfed.io/service-accounts"
DEFAULT_GATEWAY_PORT = 15443


def gather(client, params):
    """The cluster card for ``params`` (see docs/design.md); raises MeshfedError naming the cluster."""
    cluster, ns = params["cluster"], params["istio_namespace"]
    with about(cluster):
        install, notes = _install(client, params)   # notes: the warnings still to prefix
        field = "ConfigMap %s/istio-ca-root-cert key root-cert.pem" % ns
        root_cm = client.get(core_path("configmaps", ns, "istio-ca-root-cert"), what="get ConfigMap %s/istio-ca-root-cert" % ns)
        if root_cm is None:
            raise FactsError("%s not found; istiod publishes it once it runs" % field, field=field)
        roots, warnings = parse_root_bundle((root_cm.get("data") or {}).get("root-cert.pem") or "", cluster, field,
                                            warning_days=params.get("ca_expiry_warning_days") or EXPIRY_WARNING_DAYS)
        ref = "%s/%s" % (params["gateway_namespace"], params["gateway_service"])
        svc = client.get(core_path("services", params["gateway_namespace"], params["gateway_service"]), what="get gateway Service %s" % ref)
        if svc is None and not params.get("gateway_addresses"):
            raise FactsError("gateway Service %s not found (field: gateway_service); install the east-west gateway or set "
                             "gateway_addresses" % ref, field="gateway_service")
        selector = dict(((svc or {}).get("spec") or {}).get("selector") or params.get("gateway_selector") or {"istio": "eastwestgateway"})
        services = _listed(client, "services", [(label, label) for label in params["public_labels"]])
        # the pods those selectors may pick, never every pod: one LIST per label key most of them share (``app in (a,b)``);
        # workloads.selected() then matches whole selector and namespace
        selectors = [pick for pick in [selector] + [(s.get("spec") or {}).get("selector") for s in services] if pick]
        share, values = Counter(key for pick in selectors for key in pick), {}
        for pick in selectors:
            key = min(pick, key=lambda k: (-share[k], k))
            values.setdefault(key, set()).add(pick[key])
        pods = workloads.index(_listed(client, "pods", [("%s in (%s)" % (key, ",".join(sorted(vals))) if "" not in vals else key, key)
                                                        for key, vals in sorted(values.items())]))
        gateway = gateway_info(client, params, svc, selector, pods)
        domains = (params.get("cluster_domain") or install["cluster_domain"],)
        domains += (params.get("federation_domain") or domains[0],)
        public = sorted(filter(None, (public_service(s, domains, pods, notes) for s in services)), key=lambda e: e["hostname"])
    return dict(install, name=cluster, cluster_domain=domains[0], federation_domain=domains[1],
                istio_namespace=ns, root_cas=roots, gateway=gateway, public_services=public,
                warnings=warnings + [prefixed(cluster, w) for w in notes])


def _install(client, params):
    """Revision, mesh ConfigMap, trust domain, istiod, DNS domain, DNS capture; and warnings."""
    ns, revision = params["istio_namespace"], params.get("revision")
    configmaps = client.list(core_path("configmaps", ns), what="list ConfigMaps in %s" % ns)
    readers = {}  # mesh ConfigMap name -> the istiod Deployment reading it
    for dep in client.list(api_path("/apis/apps/v1", "deployments", ns), what="list Deployments in %s" % ns):
        meta = dep.get("metadata") or {}
        name = meta.get("name") or ""
        if name == istio.ISTIOD or name.startswith(istio.ISTIOD + "-") or (meta.get("labels") or {}).get("app") == "istiod":
            readers[istio.mesh_configmap_name(istio.deployment_revision(dep))] = dep
    # the mesh ConfigMap to read and write: the revision's, or the only one; several without a choice is an error
    names = istio.mesh_configmaps(configmaps)
    described = ", ".join("%s (%s)" % (n, "read by Deployment %s" % readers[n]["metadata"]["name"] if n in readers else
                                       "no istiod Deployment reads it") for n in names)
    name = istio.mesh_configmap_name(revision) if revision else (names or [None])[0]
    if revision and name not in names:
        raise FactsError("revision %s: ConfigMap %s/%s not found (field: revision); mesh ConfigMaps in %s: %s"
                         % (revision, ns, name, ns, described or "none"), field="revision")
    if not names:
        raise FactsError("ConfigMap %s/istio not found, nor any istio-<revision> with key mesh (field: istio_namespace); "
                         "is Istio installed there?" % ns, field="istio_namespace")
    if len(names) > 1 and not revision:
        raise FactsError("%d mesh ConfigMaps in %s: %s; set revision (field: revision) to the revision whose istiod should trust "
                         "the peers, so trust is never written where no istiod reads it" % (len(names), ns, described), field="revision")
    cm = next(c for c in configmaps if c["metadata"]["name"] == name)
    mesh = load_mesh((cm.get("data") or {}).get("mesh") or "")
    revision = revision or (istio.DEFAULT_REVISION if name == istio.MESH_CONFIGMAP else name[len("istio-"):])
    deployment, warnings = readers.get(name), []
    if deployment is None:
        warnings.append("no istiod Deployment of revision %s in %s reads ConfigMap %s (expected %s); assuming DNS domain %s "
                        "(set cluster_domain if it differs)" % (revision, ns, name, istio.istiod_deployment_name(revision), istio.DEFAULT_DOMAIN))
    env = istio.istiod_env(deployment)
    return {"revision": revision, "mesh_configmap": name, "trust_domain": params.get("trust_domain") or trust_domain(mesh),
            "dns_capture": istio.dns_capture(mesh), "cluster_domain": istio.istiod_domain(deployment) if deployment else istio.DEFAULT_DOMAIN,
            "istiod": {"deployment": (deployment or {}).get("metadata", {}).get("name"),
                       "scope_gateway_to_namespace": str(env.get("PILOT_SCOPE_GATEWAY_TO_NAMESPACE", "")).lower() == "true"}}, warnings


def gateway_info(client, params, svc, selector, pods):
    """The card's ``gateway``: addresses (override, or by Service type), ports, the workload's selector and pod labels."""
    namespace, name = params["gateway_namespace"], params["gateway_service"]
    ref = "%s/%s" % (namespace, name)
    override = list(params.get("gateway_addresses") or [])
    spec = (svc or {}).get("spec") or {}
    gateway_pods = workloads.selected(pods, namespace, selector)
    # the Service port peers dial: gateway_port, else the one named tls, else 15443 (without a Service: as given)
    wanted, ports = params.get("gateway_port"), spec.get("ports") or []
    matches = [p for p in ports if p.get("port") == wanted] if wanted else (
        [p for p in ports if p.get("name") == "tls"][:1] or [p for p in ports if p.get("port") == DEFAULT_GATEWAY_PORT][-1:])
    if svc is None:
        matches = [{"port": wanted or DEFAULT_GATEWAY_PORT}]
    elif not matches:
        raise FactsError("gateway Service %s has no port %s (field: gateway_port); expected the port named 'tls' (15443)"
                         % (ref, wanted or "named 'tls'"), field="gateway_port")
    chosen, service_port = matches[0], matches[0]["port"]
    target_port = workloads.resolve_target_port(chosen.get("targetPort", service_port), gateway_pods) or service_port
    source = "override" if override else spec.get("type") or "ClusterIP"
    if not override and source not in _ADDRESS_SOURCES:
        raise FactsError("gateway Service %s is of type %s, which peers cannot reach; use a LoadBalancer or "
                         "NodePort, or set gateway_addresses" % (ref, source), field="gateway_service")
    addresses, port = (override, service_port) if override else _ADDRESS_SOURCES[source](client, svc, chosen, ref)
    addresses = sorted(set(addresses), key=addresses.index)
    if len(set(istio.is_ip(a) for a in addresses)) > 1:
        raise FactsError("gateway addresses %s mix IPs and hostnames; a ServiceEntry resolves either STATIC (IPs) "
                         "or DNS (hostnames) (field: gateway_addresses)" % ", ".join(addresses), field="gateway_addresses")
    return {"addresses": addresses, "port": int(port), "service_port": int(service_port),
            "resolution": "STATIC" if addresses and istio.is_ip(addresses[0]) else "DNS",
            "target_port": int(target_port), "source": source, "service": {"namespace": namespace, "name": name},
            "selector": selector, "service_ports": sorted(int(p["port"]) for p in ports),
            "pod_labels": workloads.labels_of(gateway_pods) or [dict(selector)]}


def _load_balancer_addresses(client, svc, port, ref):
    ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    addresses = [a for a in (i.get("ip") or i.get("hostname") for i in ingress) if a]
    if not addresses:
        raise FactsError("gateway Service %s is a LoadBalancer with no address yet (status.loadBalancer.ingress is empty); "
                         "wait for the load balancer or set gateway_addresses" % ref, field="gateway_addresses")
    return addresses, port["port"]


def _node_port_addresses(client, svc, port, ref):
    """Per Ready node, its first ExternalIP, else its first InternalIP; the nodePort."""
    if not port.get("nodePort"):
        raise FactsError("gateway Service %s port %s has no nodePort" % (ref, port["port"]), field="gateway_port")
    found = set()
    for node in client.list(core_path("nodes"), what="list Nodes"):
        status = node.get("status") or {}
        if any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []):
            first = dict((a.get("type"), a.get("address")) for a in reversed(status.get("addresses") or []))
            found.add(first.get("ExternalIP") or first.get("InternalIP"))
    addresses = sorted(a for a in found if a)
    if not addresses:
        raise FactsError("gateway Service %s is a NodePort but no Ready node has an ExternalIP or InternalIP; "
                         "set gateway_addresses" % ref, field="gateway_addresses")
    return addresses, port["nodePort"]


_ADDRESS_SOURCES = {"LoadBalancer": _load_balancer_addresses, "NodePort": _node_port_addresses}


def public_service(svc, domains, pods, warnings):
    """The card's entry for a public Service, or None with a warning. ``domains``: (cluster_domain, federation_domain),
    equal unless exported under an alias; ``pods``: workloads.index() of the pods its selector may pick."""
    meta, spec = svc.get("metadata") or {}, svc.get("spec") or {}
    ref = "%s/%s" % (meta.get("namespace"), meta.get("name"))
    if spec.get("type") == "ExternalName":
        warnings.append("Service %s is of type ExternalName and cannot be exported through the gateway; skipped "
                        "(remove the public-service label)" % ref)
        return None
    selector = spec.get("selector") or {}
    backing = workloads.selected(pods, meta["namespace"], selector)
    ports = []
    for port in spec.get("ports") or []:
        number = int(port["port"])
        if (port.get("protocol") or "TCP") != "TCP":
            warnings.append("Service %s port %s uses %s; only TCP-based ports can cross the gateway; port skipped"
                            % (ref, port.get("name") or number, port.get("protocol")))
            continue
        ports.append({"name": port.get("name") or "port-%d" % number, "number": number,
                      "protocol": istio.port_protocol(number, port.get("name"), "TCP", port.get("appProtocol")),
                      "target_port": workloads.resolve_target_port(port.get("targetPort", number), backing)})
    unresolved = [p["name"] for p in ports if p["target_port"] is None]
    if not ports:
        warnings.append("Service %s has no exportable (TCP) port; skipped" % ref)
    elif domains[1] != domains[0] and not selector:  # the alias is a ServiceEntry selecting the Service's pods
        warnings.append("Service %s has no selector; exporting it under the federation domain needs a "
                        "ServiceEntry selecting its pods; skipped (field: federation_domain)" % ref)
    elif domains[1] != domains[0] and unresolved:
        warnings.append("Service %s: the named targetPort of port(s) %s matches no container port of a running pod; exporting it "
                        "under the federation domain needs the number; skipped until a pod runs" % (ref, ", ".join(unresolved)))
    else:
        # the service accounts importers check: the annotation's, else those of the Service's pods
        accounts = ((meta.get("annotations") or {}).get(SERVICE_ACCOUNTS_ANNOTATION) or "").split(",")
        accounts = sorted(set(a.strip() for a in accounts) - {""}) or workloads.service_accounts(backing)
        if not accounts and not backing:
            warnings.append("Service %s has no pods yet, so importers cannot check its server identity "
                            "(subjectAltNames) until a run sees them; or set annotation %s" % (ref, SERVICE_ACCOUNTS_ANNOTATION))
        hostnames = ["%s.%s.svc.%s" % (meta["name"], meta["namespace"], domain) for domain in domains]
        return {"name": meta["name"], "namespace": meta["namespace"], "hostname": hostnames[1],
                "service_hostname": hostnames[0], "ports": sorted(ports, key=lambda p: p["number"]),
                "service_accounts": accounts, "headless": spec.get("clusterIP") == "None", "selector": dict(selector)}
    return None


def _listed(client, resource, selectors):
    """The objects of core ``resource`` any of ``selectors`` ((label selector, name in errors), one LIST each) picks, sorted."""
    found = {}
    for selector, label in selectors:
        for obj in client.list(core_path(resource), label_selector=selector, what="list %s labelled %s" % (resource.capitalize(), label)):
            meta = obj.get("metadata") or {}
            found[(meta.get("namespace"), meta.get("name"))] = obj
    return [found[k] for k in sorted(found)]
