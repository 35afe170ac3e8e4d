# -*- coding: utf-8 -*-
# Copyright: meshfed.istio contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Gather one cluster's federation "card" (read-only).

API calls, whatever the cluster's size: LIST ConfigMaps and LIST Deployments of the istio namespace
(which revision's mesh config and istiod: ``istio[-<rev>]``, ``istiod[-<rev>]``), GET ConfigMap
istio-ca-root-cert, GET the gateway Service, LIST Services once per public-service label, LIST Pods once
per label key the gateway's and the public Services' selectors use (``<key> in (<values>)``: only pods
those selectors may pick, usually two requests), and LIST Nodes only for a NodePort gateway. The plug-in
CA Secret ``cacerts`` is never read.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


from ansible_collections.meshfed.istio.plugins.module_utils.istio import rules as istio
from ansible_collections.meshfed.istio.plugins.module_utils.istio import workloads
from ansible_collections.meshfed.istio.plugins.module_utils.pki.certs import EXPIRY_WARNING_DAYS, parse_root_bundle
from ansible_collections.meshfed.istio.plugins.module_utils.common.errors import FactsError, about, prefixed
from ansible_collections.meshfed.istio.plugins.module_utils.common.apipaths import api_path, core_path
from ansible_collections.meshfed.istio.plugins.module_utils.istio.meshconfig import load_mesh, trust_domain

DEFAULT_PUBLIC_LABELS = [
    "federation.meshfed.io/public-service",
    "federation.istio.deckhouse.io/public-service",
]
SERVICE_ACCOUNTS_ANNOTATION = "federation.meshfed.io/service-accounts"
DEFAULT_GATEWAY_PORT = 15443


def service_hostname(name, namespace, cluster_domain):
    return "%s.%s.svc.%s" % (name, namespace, cluster_domain)


def public_service(svc, domains, pods, warnings):
    """The card's entry for a public Service, or None (with a warning saying why) when it cannot be exported.
    ``domains``: (cluster_domain, federation_domain), the registry's hostname and the exported one (equal
    unless exported under an alias); ``pods``: workloads.index() of the pods its selector may pick."""
    meta, spec = svc.get("metadata") or {}, svc.get("spec") or {}
    ref = "%s/%s" % (meta.get("namespace"), meta.get("name"))
    if spec.get("type") == "ExternalName":
        warnings.append("Service %s is of type ExternalName and cannot be exported through the "
                        "gateway; skipped (remove the public-service label)" % ref)
        return None
    selector = spec.get("selector") or {}
    backing = workloads.selected(pods, meta["namespace"], selector)
    ports = _exported_ports(svc, ref, backing, warnings)
    if not ports:
        warnings.append("Service %s has no exportable (TCP) port; skipped" % ref)
        return None
    aliased = domains[1] != domains[0]
    if aliased and not _alias_ready(ref, selector, ports, warnings):
        return None
    return {"name": meta["name"], "namespace": meta["namespace"],
            "hostname": service_hostname(meta["name"], meta["namespace"], domains[1]),
            "service_hostname": service_hostname(meta["name"], meta["namespace"], domains[0]),
            "ports": sorted(ports, key=lambda p: p["number"]),
            "service_accounts": _identities(meta, ref, backing, warnings),
            "headless": spec.get("clusterIP") == "None", "selector": dict(selector)}


def _alias_ready(ref, selector, ports, warnings):
    """An alias is served by a ServiceEntry selecting the Service's pods: it needs a selector and numeric ports."""
    if not selector:
        warnings.append("Service %s has no selector; exporting it under the federation domain needs a "
                        "ServiceEntry selecting its pods; skipped (field: federation_domain)" % ref)
        return False
    unresolved = [p["name"] for p in ports if p["target_port"] is None]
    if unresolved:
        warnings.append("Service %s: the named targetPort of port(s) %s matches no container port of a running "
                        "pod; exporting it under the federation domain needs the number; skipped until a pod runs"
                        % (ref, ", ".join(unresolved)))
        return False
    return True


def _identities(meta, ref, backing, warnings):
    """Service accounts importers check: the annotation when set, else those of the Service's pods."""
    annotated = ((meta.get("annotations") or {}).get(SERVICE_ACCOUNTS_ANNOTATION) or "").split(",")
    annotated = sorted(set(a.strip() for a in annotated) - {""})
    if annotated:
        return annotated
    if not backing:
        warnings.append("Service %s has no pods yet, so importers cannot check its server identity "
                        "(subjectAltNames) until a run sees them; or set annotation %s"
                        % (ref, SERVICE_ACCOUNTS_ANNOTATION))
    return workloads.service_accounts(backing)


def _exported_ports(svc, ref, backing, warnings):
    ports = []
    for port in (svc.get("spec") or {}).get("ports") or []:
        number = int(port["port"])
        if (port.get("protocol") or "TCP") != "TCP":
            warnings.append("Service %s port %s uses %s; only TCP-based ports can cross the gateway; port skipped"
                            % (ref, port.get("name") or number, port.get("protocol")))
            continue
        ports.append({"name": port.get("name") or "port-%d" % number, "number": number,
                      "protocol": istio.port_protocol(number, port.get("name"), "TCP", port.get("appProtocol")),
                      "target_port": workloads.resolve_target_port(port.get("targetPort", number), backing)})
    return ports


# -- gateway ----------------------------------------------------------------------------------------
def gateway_service(client, params):
    """The gateway Service (None when ``gateway_addresses`` stand in for it) and the selector of its pods."""
    ref = "%s/%s" % (params["gateway_namespace"], params["gateway_service"])
    svc = client.get(core_path("services", params["gateway_namespace"], params["gateway_service"]),
                     what="get gateway Service %s" % ref)
    if svc is None and not params.get("gateway_addresses"):
        raise FactsError("gateway Service %s not found (field: gateway_service); install the east-west "
                         "gateway or set gateway_addresses" % ref, field="gateway_service")
    spec = (svc or {}).get("spec") or {}
    return svc, dict(spec.get("selector") or params.get("gateway_selector") or {"istio": "eastwestgateway"})


def gateway_info(client, params, svc, selector, pods):
    """The card's ``gateway``: addresses from one source (override, LoadBalancer or NodePort), the port
    peers dial, the Service port a Gateway server names, the workload's selector and pod labels."""
    namespace, name = params["gateway_namespace"], params["gateway_service"]
    ref = "%s/%s" % (namespace, name)
    override = list(params.get("gateway_addresses") or [])
    spec = (svc or {}).get("spec") or {}
    gateway_pods = workloads.selected(pods, namespace, selector)
    chosen = _gateway_port(svc, params.get("gateway_port"), ref)
    service_port = chosen["port"]
    target_port = workloads.resolve_target_port(chosen.get("targetPort", service_port), gateway_pods) or service_port
    source = "override" if override else spec.get("type") or "ClusterIP"
    addresses, port = (override, service_port) if override else _address_source(source, ref)(client, svc, chosen, ref)
    addresses = sorted(set(addresses), key=addresses.index)
    return {"addresses": addresses, "resolution": _resolution(addresses), "port": int(port),
            "service_port": int(service_port), "target_port": int(target_port), "source": source,
            "service": {"namespace": namespace, "name": name}, "selector": selector,
            "service_ports": sorted(int(p["port"]) for p in spec.get("ports") or []),
            "pod_labels": workloads.labels_of(gateway_pods) or [dict(selector)]}


def _gateway_port(svc, wanted, ref):
    """The Service port peers reach: ``wanted``, else the one named tls, else 15443 (without a Service, as given)."""
    if svc is None:
        return {"port": wanted or DEFAULT_GATEWAY_PORT}
    ports = (svc.get("spec") or {}).get("ports") or []
    if wanted:
        matches = [p for p in ports if p.get("port") == wanted]
    else:
        by_name = [p for p in ports if p.get("name") == "tls"][:1]
        matches = by_name or [p for p in ports if p.get("port") == DEFAULT_GATEWAY_PORT][-1:]
    if not matches:
        raise FactsError("gateway Service %s has no port %s (field: gateway_port); expected the "
                         "port named 'tls' (15443)" % (ref, wanted or "named 'tls'"), field="gateway_port")
    return matches[0]


def _address_source(svc_type, ref):
    source = _ADDRESS_SOURCES.get(svc_type)
    if source is None:
        raise FactsError("gateway Service %s is of type %s, which peers cannot reach; use a "
                         "LoadBalancer or NodePort, or set gateway_addresses" % (ref, svc_type),
                         field="gateway_service")
    return source


def _load_balancer_addresses(client, svc, port, ref):
    ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    addresses = [a for a in (i.get("ip") or i.get("hostname") for i in ingress) if a]
    if not addresses:
        raise FactsError("gateway Service %s is a LoadBalancer with no address yet "
                         "(status.loadBalancer.ingress is empty); wait for the load balancer or set "
                         "gateway_addresses" % ref, field="gateway_addresses")
    return addresses, port["port"]


def _node_port_addresses(client, svc, port, ref):
    if not port.get("nodePort"):
        raise FactsError("gateway Service %s port %s has no nodePort" % (ref, port["port"]), field="gateway_port")
    addresses = node_addresses(client)
    if not addresses:
        raise FactsError("gateway Service %s is a NodePort but no Ready node has an ExternalIP or InternalIP; "
                         "set gateway_addresses" % ref, field="gateway_addresses")
    return addresses, port["nodePort"]


# Service type -> function(client, service, chosen port, ref) returning (addresses, port peers dial).
_ADDRESS_SOURCES = {"LoadBalancer": _load_balancer_addresses, "NodePort": _node_port_addresses}


def _resolution(addresses):
    kinds = set(istio.is_ip(a) for a in addresses)
    if len(kinds) > 1:
        raise FactsError("gateway addresses %s mix IPs and hostnames; a ServiceEntry resolves either "
                         "STATIC (IPs) or DNS (hostnames) (field: gateway_addresses)" % ", ".join(addresses),
                         field="gateway_addresses")
    return "STATIC" if kinds == set([True]) else "DNS"


def node_addresses(client):
    """Per Ready node, its first ExternalIP, else its first InternalIP."""
    result = set()
    for node in client.list(core_path("nodes"), what="list Nodes"):
        status = node.get("status") or {}
        if any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []):
            first = dict((a.get("type"), a.get("address")) for a in reversed(status.get("addresses") or []))
            result.add(first.get("ExternalIP") or first.get("InternalIP"))
    return sorted(a for a in result if a)


# -- card ---------------------------------------------------------------------------------------------
def gather(client, params):
    """Return the cluster card for ``params`` (see docs/design.md); raises MeshfedError naming the cluster."""
    cluster, ns = params["cluster"], params["istio_namespace"]
    service_warnings = []
    with about(cluster):
        install, install_warnings = _install(client, params)
        td, roots, warnings = _trust(client, params, install.pop("mesh"))
        svc, selector = gateway_service(client, params)
        services = _labelled_services(client, params["public_labels"])
        pods = _pods(client, [selector] + [(s.get("spec") or {}).get("selector") for s in services])
        gateway = gateway_info(client, params, svc, selector, pods)
        domains = (params.get("cluster_domain") or install["cluster_domain"],)
        domains += (params.get("federation_domain") or domains[0],)
        public = sorted(filter(None, (public_service(s, domains, pods, service_warnings) for s in services)),
                        key=lambda entry: entry["hostname"])
    card = {"name": cluster, "trust_domain": td, "cluster_domain": domains[0], "federation_domain": domains[1],
            "istio_namespace": ns, "root_cas": roots, "gateway": gateway, "public_services": public,
            "warnings": warnings + [prefixed(cluster, w) for w in install_warnings + service_warnings]}
    card.update(install)
    return card


def _install(client, params):
    """The Istio install the card describes: revision, mesh ConfigMap, istiod, DNS domain, DNS capture."""
    ns, revision = params["istio_namespace"], params.get("revision")
    configmaps = client.list(core_path("configmaps", ns), what="list ConfigMaps in %s" % ns)
    istiods = [d for d in client.list(api_path("/apis/apps/v1", "deployments", ns), what="list Deployments in %s" % ns)
               if _is_istiod(d)]
    readers = dict((istio.mesh_configmap_name(istio.deployment_revision(d)), d) for d in istiods)
    name = _mesh_configmap(ns, istio.mesh_configmaps(configmaps), readers, revision)
    cm = [c for c in configmaps if c["metadata"]["name"] == name][0]
    mesh = load_mesh((cm.get("data") or {}).get("mesh") or "")
    revision = revision or (istio.DEFAULT_REVISION if name == istio.MESH_CONFIGMAP else name[len("istio-"):])
    deployment, warnings = readers.get(name), []
    if deployment is None:
        warnings.append("no istiod Deployment of revision %s in %s reads ConfigMap %s (expected %s); assuming "
                        "DNS domain %s (set cluster_domain if it differs)"
                        % (revision, ns, name, istio.istiod_deployment_name(revision), istio.DEFAULT_DOMAIN))
    env = istio.istiod_env(deployment)
    return {"revision": revision, "mesh_configmap": name, "mesh": mesh, "dns_capture": istio.dns_capture(mesh),
            "cluster_domain": istio.istiod_domain(deployment) if deployment else istio.DEFAULT_DOMAIN,
            "istiod": {"deployment": (deployment or {}).get("metadata", {}).get("name"),
                       "scope_gateway_to_namespace":
                           str(env.get("PILOT_SCOPE_GATEWAY_TO_NAMESPACE", "")).lower() == "true"}}, warnings


def _is_istiod(deployment):
    meta = deployment.get("metadata") or {}
    name = meta.get("name") or ""
    return name == istio.ISTIOD or name.startswith(istio.ISTIOD + "-") or (meta.get("labels") or {}).get("app") == "istiod"


def _mesh_configmap(ns, names, readers, revision):
    """The mesh ConfigMap to read and write: the revision's, or the only one; several without a choice is an error."""
    def described(name):
        dep = readers.get(name)
        return "%s (%s)" % (name, "read by Deployment %s" % dep["metadata"]["name"] if dep else "no istiod Deployment reads it")
    if revision:
        name = istio.mesh_configmap_name(revision)
        if name not in names:
            raise FactsError("revision %s: ConfigMap %s/%s not found (field: revision); mesh ConfigMaps in %s: %s"
                             % (revision, ns, name, ns, ", ".join(described(n) for n in names) or "none"),
                             field="revision")
        return name
    if not names:
        raise FactsError("ConfigMap %s/istio not found, nor any istio-<revision> with key mesh (field: "
                         "istio_namespace); is Istio installed there?" % ns, field="istio_namespace")
    if len(names) > 1:
        raise FactsError("%d mesh ConfigMaps in %s: %s; set revision (field: revision) to the revision whose istiod "
                         "should trust the peers, so trust is never written where no istiod reads it"
                         % (len(names), ns, ", ".join(described(n) for n in names)), field="revision")
    return names[0]


def _trust(client, params, mesh):
    """The trust domain (mesh config, unless overridden), the root CA bundle and its warnings."""
    ns = params["istio_namespace"]
    td = params.get("trust_domain") or trust_domain(mesh)
    root_cm = client.get(core_path("configmaps", ns, "istio-ca-root-cert"),
                         what="get ConfigMap %s/istio-ca-root-cert" % ns)
    field = "ConfigMap %s/istio-ca-root-cert key root-cert.pem" % ns
    if root_cm is None:
        raise FactsError("%s not found; istiod publishes it once it runs" % field, field=field)
    roots, warnings = parse_root_bundle((root_cm.get("data") or {}).get("root-cert.pem") or "",
                                        params["cluster"], field,
                                        warning_days=params.get("ca_expiry_warning_days") or EXPIRY_WARNING_DAYS)
    return td, roots, warnings


def _labelled_services(client, labels):
    """Services carrying any of ``labels``, once each, in a stable order."""
    services = {}
    for label in labels:
        for svc in client.list(core_path("services"), label_selector=label, what="list Services labelled %s" % label):
            meta = svc.get("metadata") or {}
            services[(meta.get("namespace"), meta.get("name"))] = svc
    return [services[k] for k in sorted(services)]


def _pods(client, selectors):
    """workloads.index() of the pods ``selectors`` (Service selectors) may pick: one LIST per label key,
    each selector asked for by the key most of them share (``app in (a,b)``); the caller matches the whole
    selector and the namespace. Never every pod of the cluster."""
    selectors = [s for s in selectors if s]
    share = {}
    for selector in selectors:
        for key in selector:
            share[key] = share.get(key, 0) + 1
    values = {}
    for selector in selectors:
        key = min(selector, key=lambda k: (-share[k], k))
        values.setdefault(key, set()).add(selector[key])
    pods = {}
    for key in sorted(values):
        wanted = "%s in (%s)" % (key, ",".join(sorted(values[key]))) if "" not in values[key] else key
        for pod in client.list(core_path("pods"), label_selector=wanted, what="list Pods labelled %s" % key):
            meta = pod.get("metadata") or {}
            pods[(meta.get("namespace"), meta.get("name"))] = pod
    return workloads.index(pods[k] for k in sorted(pods))
