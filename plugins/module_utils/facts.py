# -*- coding: utf-8 -*-
# Copyright: meshfed.istio contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Gather one cluster's federation "card" (read-only).

API calls, whatever the cluster's size: GET ConfigMap istio, GET ConfigMap istio-ca-root-cert,
GET the gateway Service, LIST Services once per public-service label, and LIST Nodes only for a
NodePort gateway. The plug-in CA Secret ``cacerts`` is never read.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress

from ansible_collections.meshfed.istio.plugins.module_utils.certs import EXPIRY_WARNING_DAYS, parse_root_bundle
from ansible_collections.meshfed.istio.plugins.module_utils.errors import FactsError, about, prefixed
from ansible_collections.meshfed.istio.plugins.module_utils.k8s import core_path
from ansible_collections.meshfed.istio.plugins.module_utils.meshconfig import load_mesh, trust_domain

DEFAULT_PUBLIC_LABELS = [
    "federation.meshfed.io/public-service",
    "federation.istio.deckhouse.io/public-service",
]
SERVICE_ACCOUNTS_ANNOTATION = "federation.meshfed.io/service-accounts"
DEFAULT_GATEWAY_PORT = 15443

# Port-name prefixes (or appProtocols) naming an Istio protocol, as Deckhouse and Istio's own naming rules.
_PROTOCOLS = ("http2", "http", "grpc", "https", "tls", "tcp")


def port_protocol(name, app_protocol=None):
    """Istio protocol for a Service port, from its appProtocol or its name prefix."""
    for candidate in (app_protocol, name):
        prefix = (candidate or "").lower().split("-", 1)[0]
        if prefix in _PROTOCOLS:
            return prefix.upper()
    return "TCP"


def is_ip(value):
    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        return False


def service_hostname(name, namespace, cluster_domain):
    return "%s.%s.svc.%s" % (name, namespace, cluster_domain)


def public_services(services, cluster_domain, warnings):
    """Turn Service objects into the card's ``public_services`` (sorted by hostname)."""
    seen = {}
    for svc in services:
        meta = svc.get("metadata") or {}
        ref = "%s/%s" % (meta.get("namespace"), meta.get("name"))
        if (svc.get("spec") or {}).get("type") == "ExternalName":
            warnings.append("Service %s is of type ExternalName and cannot be exported through the "
                            "gateway; skipped (remove the public-service label)" % ref)
            continue
        ports = _exported_ports(svc, ref, warnings)
        if not ports:
            warnings.append("Service %s has no exportable (named, TCP) port; skipped" % ref)
            continue
        accounts = ((meta.get("annotations") or {}).get(SERVICE_ACCOUNTS_ANNOTATION) or "").split(",")
        hostname = service_hostname(meta["name"], meta["namespace"], cluster_domain)
        seen[hostname] = {"name": meta["name"], "namespace": meta["namespace"], "hostname": hostname,
                          "ports": sorted(ports, key=lambda p: p["number"]),
                          "service_accounts": sorted(set(a.strip() for a in accounts if a.strip()))}
    return [seen[h] for h in sorted(seen)]


def _exported_ports(svc, ref, warnings):
    ports = []
    for port in (svc.get("spec") or {}).get("ports") or []:
        if not port.get("name"):
            warnings.append("Service %s port %s has no name; federation needs named ports "
                            "(e.g. http-%s); port skipped" % (ref, port.get("port"), port.get("port")))
        elif (port.get("protocol") or "TCP") != "TCP":
            warnings.append("Service %s port %s uses %s; only TCP-based ports can cross the "
                            "gateway; port skipped" % (ref, port["name"], port.get("protocol")))
        else:
            ports.append({"name": port["name"], "number": int(port["port"]),
                          "protocol": port_protocol(port["name"], port.get("appProtocol"))})
    return ports


# -- gateway ----------------------------------------------------------------------------------------
def gateway_info(client, params):
    """The card's ``gateway``: addresses from one source (override, LoadBalancer or NodePort), port, selector."""
    namespace, name = params["gateway_namespace"], params["gateway_service"]
    ref = "%s/%s" % (namespace, name)
    override = list(params.get("gateway_addresses") or [])
    svc = client.get(core_path("services", namespace, name), what="get gateway Service %s" % ref)
    if svc is None and not override:
        raise FactsError("gateway Service %s not found (field: gateway_service); install the east-west "
                         "gateway or set gateway_addresses" % ref, field="gateway_service")
    port = target_port = params.get("gateway_port") or DEFAULT_GATEWAY_PORT
    source, addresses = "override", override
    if svc is not None:
        chosen = _gateway_port(svc, params.get("gateway_port"), ref)
        port = target_port = chosen["port"]
        if isinstance(chosen.get("targetPort"), int):
            target_port = chosen["targetPort"]
        if not override:
            source = (svc.get("spec") or {}).get("type") or "ClusterIP"
            addresses, port = _address_source(source, ref)(client, svc, chosen, ref)
    if not 1 <= int(port) <= 65535:
        raise FactsError("gateway port %s is not a valid port (field: gateway_port)" % port, field="gateway_port")
    addresses = sorted(set(addresses), key=addresses.index)
    selector = ((svc or {}).get("spec") or {}).get("selector") or params.get("gateway_selector")
    return {"addresses": addresses, "resolution": _resolution(addresses), "port": int(port),
            "target_port": int(target_port), "source": source, "service": {"namespace": namespace, "name": name},
            "selector": dict(selector or {"istio": "eastwestgateway"})}


def _gateway_port(svc, wanted, ref):
    """The Service port peers reach: ``wanted``, else the one named tls, else 15443."""
    ports = (svc.get("spec") or {}).get("ports") or []
    if wanted:
        matches = [p for p in ports if p.get("port") == wanted]
    else:
        matches = ([p for p in ports if p.get("name") == "tls"][:1]
                   or [p for p in ports if p.get("port") == DEFAULT_GATEWAY_PORT][-1:])
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
    kinds = set(is_ip(a) for a in addresses)
    if len(kinds) > 1:
        raise FactsError("gateway addresses %s mix IPs and hostnames; a ServiceEntry resolves either "
                         "STATIC (IPs) or DNS (hostnames) (field: gateway_addresses)" % ", ".join(addresses),
                         field="gateway_addresses")
    return "STATIC" if kinds == set([True]) else "DNS"


def node_addresses(client):
    result = []
    for node in client.list(core_path("nodes"), what="list Nodes"):
        status = node.get("status") or {}
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
        if not ready:
            continue
        by_type = {}
        for addr in status.get("addresses") or []:
            by_type.setdefault(addr.get("type"), addr.get("address"))
        addr = by_type.get("ExternalIP") or by_type.get("InternalIP")
        if addr:
            result.append(addr)
    return sorted(set(result))


# -- card ---------------------------------------------------------------------------------------------
def gather(client, params):
    """Return the cluster card for ``params`` (see docs/design.md); raises MeshfedError naming the cluster."""
    cluster, ns = params["cluster"], params["istio_namespace"]
    service_warnings = []
    with about(cluster):
        td, roots, warnings = _trust(client, params)
        gateway = gateway_info(client, params)
        cluster_domain = params.get("cluster_domain") or td
        public = public_services(_labelled_services(client, params["public_labels"]), cluster_domain,
                                 service_warnings)
    return {"name": cluster, "trust_domain": td, "cluster_domain": cluster_domain, "istio_namespace": ns,
            "root_cas": roots, "gateway": gateway, "public_services": public,
            "warnings": warnings + [prefixed(cluster, w) for w in service_warnings]}


def _trust(client, params):
    """The trust domain (mesh config, unless overridden), the root CA bundle and its warnings."""
    ns = params["istio_namespace"]
    cm = client.get(core_path("configmaps", ns, "istio"), what="get ConfigMap %s/istio" % ns)
    if cm is None:
        raise FactsError("ConfigMap %s/istio not found (field: istio_namespace); is Istio installed there?" % ns,
                         field="istio_namespace")
    td = params.get("trust_domain") or trust_domain(load_mesh((cm.get("data") or {}).get("mesh") or ""))
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
