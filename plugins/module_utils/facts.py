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

from ansible_collections.meshfed.istio.plugins.module_utils.certs import CertError, parse_root_bundle
from ansible_collections.meshfed.istio.plugins.module_utils.k8s import core_path
from ansible_collections.meshfed.istio.plugins.module_utils.meshconfig import load_mesh, trust_domain

DEFAULT_PUBLIC_LABELS = [
    "federation.meshfed.io/public-service",
    "federation.istio.deckhouse.io/public-service",
]
SERVICE_ACCOUNTS_ANNOTATION = "federation.meshfed.io/service-accounts"

# Port-name prefix (or appProtocol) -> Istio protocol, as Deckhouse and Istio's own naming rules.
_PROTOCOLS = [
    ("http2", "HTTP2"),
    ("http", "HTTP"),
    ("grpc", "GRPC"),
    ("https", "HTTPS"),
    ("tls", "TLS"),
    ("tcp", "TCP"),
]


class FactsError(Exception):
    pass


def port_protocol(name, app_protocol=None):
    """Istio protocol for a Service port, from its appProtocol or its name prefix."""
    for candidate in (app_protocol, name):
        if not candidate:
            continue
        prefix = candidate.lower().split("-", 1)[0]
        for key, proto in _PROTOCOLS:
            if prefix == key:
                return proto
    return "TCP"


def is_ip(value):
    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        return False


def service_hostname(name, namespace, cluster_domain):
    return "%s.%s.svc.%s" % (name, namespace, cluster_domain)


def public_services(services, cluster, cluster_domain, warnings):
    """Turn Service objects into the card's ``public_services`` (sorted by hostname)."""
    seen = {}
    for svc in services:
        meta = svc.get("metadata") or {}
        spec = svc.get("spec") or {}
        ref = "%s/%s" % (meta.get("namespace"), meta.get("name"))
        if spec.get("type") == "ExternalName":
            warnings.append("%s: Service %s is of type ExternalName and cannot be exported through the "
                            "gateway; skipped (remove the public-service label)" % (cluster, ref))
            continue
        ports = []
        for port in spec.get("ports") or []:
            if not port.get("name"):
                warnings.append("%s: Service %s port %s has no name; federation needs named ports "
                                "(e.g. http-%s); port skipped" % (cluster, ref, port.get("port"), port.get("port")))
                continue
            if (port.get("protocol") or "TCP") != "TCP":
                warnings.append("%s: Service %s port %s uses %s; only TCP-based ports can cross the "
                                "gateway; port skipped" % (cluster, ref, port["name"], port.get("protocol")))
                continue
            ports.append({
                "name": port["name"],
                "number": int(port["port"]),
                "protocol": port_protocol(port["name"], port.get("appProtocol")),
            })
        if not ports:
            warnings.append("%s: Service %s has no exportable (named, TCP) port; skipped" % (cluster, ref))
            continue
        accounts = [a.strip() for a in ((meta.get("annotations") or {}).get(SERVICE_ACCOUNTS_ANNOTATION) or "").split(",")
                    if a.strip()]
        hostname = service_hostname(meta["name"], meta["namespace"], cluster_domain)
        seen[hostname] = {
            "name": meta["name"],
            "namespace": meta["namespace"],
            "hostname": hostname,
            "ports": sorted(ports, key=lambda p: p["number"]),
            "service_accounts": sorted(set(accounts)),
        }
    return [seen[h] for h in sorted(seen)]


def gateway_info(client, cluster, params, warnings):
    namespace = params["gateway_namespace"]
    name = params["gateway_service"]
    override = params.get("gateway_addresses") or []
    svc = client.get(core_path("services", namespace, name), what="get gateway Service %s/%s" % (namespace, name))
    if svc is None and not override:
        raise FactsError("%s: gateway Service %s/%s not found (field: gateway_service); install the east-west "
                         "gateway or set gateway_addresses" % (cluster, namespace, name))
    port_number = params.get("gateway_port")
    target_port = port_number
    selector = {}
    source = "override"
    addresses = list(override)
    if svc is not None:
        spec = svc.get("spec") or {}
        selector = spec.get("selector") or {}
        chosen = None
        for port in spec.get("ports") or []:
            if (port_number and port.get("port") == port_number) or (not port_number and port.get("name") == "tls"):
                chosen = port
                break
        if chosen is None and not port_number:
            for port in spec.get("ports") or []:
                if port.get("port") == 15443:
                    chosen = port
        if chosen is None:
            raise FactsError("%s: gateway Service %s/%s has no port %s (field: gateway_port); expected the "
                             "port named 'tls' (15443)" % (cluster, namespace, name, port_number or "named 'tls'"))
        port_number = chosen["port"]
        target_port = chosen.get("targetPort") if isinstance(chosen.get("targetPort"), int) else chosen["port"]
        if not override:
            svc_type = spec.get("type") or "ClusterIP"
            if svc_type == "LoadBalancer":
                source = "LoadBalancer"
                for ingress in ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []:
                    addr = ingress.get("ip") or ingress.get("hostname")
                    if addr:
                        addresses.append(addr)
                if not addresses:
                    raise FactsError(
                        "%s: gateway Service %s/%s is a LoadBalancer with no address yet "
                        "(status.loadBalancer.ingress is empty); wait for the load balancer or set "
                        "gateway_addresses" % (cluster, namespace, name))
            elif svc_type == "NodePort":
                source = "NodePort"
                if not chosen.get("nodePort"):
                    raise FactsError("%s: gateway Service %s/%s port %s has no nodePort"
                                     % (cluster, namespace, name, port_number))
                port_number = chosen["nodePort"]
                addresses = node_addresses(client)
                if not addresses:
                    raise FactsError("%s: gateway Service %s/%s is a NodePort but no Ready node has an "
                                     "ExternalIP or InternalIP; set gateway_addresses"
                                     % (cluster, namespace, name))
            else:
                raise FactsError("%s: gateway Service %s/%s is of type %s, which peers cannot reach; use a "
                                 "LoadBalancer or NodePort, or set gateway_addresses" % (cluster, namespace, name, svc_type))
    if not port_number:
        port_number = 15443
        target_port = 15443
    if not 1 <= int(port_number) <= 65535:
        raise FactsError("%s: gateway port %s is not a valid port (field: gateway_port)" % (cluster, port_number))
    addresses = sorted(set(addresses), key=addresses.index)
    kinds = set(is_ip(a) for a in addresses)
    if len(kinds) > 1:
        raise FactsError("%s: gateway addresses %s mix IPs and hostnames; a ServiceEntry resolves either "
                         "STATIC (IPs) or DNS (hostnames) (field: gateway_addresses)" % (cluster, ", ".join(addresses)))
    return {
        "addresses": addresses,
        "resolution": "STATIC" if kinds == set([True]) else "DNS",
        "port": int(port_number),
        "target_port": int(target_port or port_number),
        "source": source,
        "service": {"namespace": namespace, "name": name},
        "selector": selector or dict(params.get("gateway_selector") or {"istio": "eastwestgateway"}),
    }


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


def gather(client, params):
    """Return the cluster card for ``params`` (see docs/design.md); raises FactsError/CertError/K8sError."""
    cluster = params["cluster"]
    warnings = []
    ns = params["istio_namespace"]
    cm = client.get(core_path("configmaps", ns, "istio"), what="get ConfigMap %s/istio" % ns)
    if cm is None:
        raise FactsError("%s: ConfigMap %s/istio not found (field: istio_namespace); is Istio installed there?"
                         % (cluster, ns))
    mesh = load_mesh((cm.get("data") or {}).get("mesh") or "", cluster)
    td = params.get("trust_domain") or trust_domain(mesh)

    root_cm = client.get(core_path("configmaps", ns, "istio-ca-root-cert"),
                         what="get ConfigMap %s/istio-ca-root-cert" % ns)
    field = "ConfigMap %s/istio-ca-root-cert key root-cert.pem" % ns
    if root_cm is None:
        raise FactsError("%s: %s not found; istiod publishes it once it runs" % (cluster, field))
    roots, cert_warnings = parse_root_bundle((root_cm.get("data") or {}).get("root-cert.pem") or "", cluster, field)
    warnings.extend(cert_warnings)

    gateway = gateway_info(client, cluster, params, warnings)

    cluster_domain = params.get("cluster_domain") or td
    services = {}
    for label in params["public_labels"]:
        for svc in client.list(core_path("services"), label_selector=label, what="list Services labelled %s" % label):
            meta = svc.get("metadata") or {}
            services[(meta.get("namespace"), meta.get("name"))] = svc
    public = public_services([services[k] for k in sorted(services)], cluster, cluster_domain, warnings)

    return {
        "name": cluster,
        "trust_domain": td,
        "cluster_domain": cluster_domain,
        "istio_namespace": ns,
        "root_cas": roots,
        "gateway": gateway,
        "public_services": public,
        "warnings": warnings,
    }


__all__ = ["CertError", "FactsError", "gather", "port_protocol", "public_services", "DEFAULT_PUBLIC_LABELS"]
