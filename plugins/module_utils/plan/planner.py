# -*- coding: utf-8 -*-
# Copyright: meshfed.istio contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure federation planner: cluster cards in, desired Kubernetes objects out. No I/O.

``plan(local, peers, ...)`` computes, for one (local) cluster, everything it must hold so that
its mesh can reach the peers' public services and accept their workloads' certificates:

* one cluster-scoped ``IstioFederation`` per peer (coordinates in spec, metadata cache in status);
* per selected peer public hostname a ``ServiceEntry`` routed to the peer's gateway on its mTLS port,
  with a stable virtual address (the sidecar DNS proxy answers only for hosts with one), the peer
  workloads' identities as ``subjectAltNames`` and an explicit ``exportTo``, and a
  ``DestinationRule`` with ``ISTIO_MUTUAL``;
* the export ``Gateway`` (AUTO_PASSTHROUGH, the gateway Service's port, in its namespace) listing
  the local public hostnames no other AUTO_PASSTHROUGH server already passes through (see
  gateways.py), and, for services exported under a federation domain alias, a ``ServiceEntry``
  with the alias host selecting the Service's pods, so the gateway's registry routes the alias SNI;
* the peers' roots as ``caCertificates`` entries scoped to each peer's trust domain.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import re

from ansible_collections.meshfed.istio.plugins.module_utils.common.errors import PlanError, prefixed
from ansible_collections.meshfed.istio.plugins.module_utils.istio import gateways
from ansible_collections.meshfed.istio.plugins.module_utils.istio import rules as istio
from ansible_collections.meshfed.istio.plugins.module_utils.plan import addresses, federations
from ansible_collections.meshfed.istio.plugins.module_utils.plan.kinds import (
    EXPORT_GATEWAY_NAME, PEER_LABEL, labels, new_object, object_key)


def object_name(*parts):
    """A DNS-1123 label from ``parts``; long names keep a readable prefix plus a stable hash."""
    name = re.sub(r"[^a-z0-9-]+", "-", "-".join(parts).lower()).strip("-")
    if len(name) > 63:
        digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:10]
        name = name[:52].rstrip("-") + "-" + digest
    return name


def unique_name(prefix, *parts):
    """``<prefix>-<parts joined>-<hash of the parts>``: injective where joining with "-" is not
    (``foo-bar``/``baz`` and ``foo``/``bar-baz``), readable, at most 63 characters."""
    digest = hashlib.sha256("/".join(parts).encode("utf-8")).hexdigest()[:8]
    readable = object_name(prefix, *parts)[:54].rstrip("-")
    return "%s-%s" % (readable, digest)


# -- validation -----------------------------------------------------------------------------------
def validate_card(card, role="peer"):
    """Return a list of problems with a card (as gathered by cluster_info, possibly edited)."""
    if not isinstance(card, dict):
        return ["%s card is not a mapping" % role]
    name = card.get("name")
    problems = []
    if not isinstance(name, str) or not istio.DNS_LABEL.match(name) or len(name) > 63:
        problems.append("field name: %r is not a valid cluster name (lowercase DNS label, at most 63 "
                        "characters)" % (name,))
    td = card.get("trust_domain")
    if not isinstance(td, str) or not td or not istio.HOSTNAME.match(td.lower()):
        problems.append("field trust_domain: %r is not a valid trust domain" % (td,))
    roots = card.get("root_cas")
    if not roots or not all(isinstance(r, dict) and r.get("pem") and r.get("sha256") for r in roots):
        problems.append("field root_cas: no root CA certificate")
    problems.extend(_gateway_problems(card.get("gateway") or {}))
    for svc in card.get("public_services") or []:
        problems.extend(_service_problems(svc))
    return [prefixed(name or "(unnamed %s)" % role, p) for p in problems]


def _gateway_problems(gw):
    addresses = gw.get("addresses") or []
    problems = [] if addresses else ["field gateway.addresses: the gateway has no address; peers cannot reach it"]
    problems.extend("field gateway.addresses: %r is not an address" % (addr,)
                    for addr in addresses if not isinstance(addr, str) or not addr or " " in addr)
    if gw.get("resolution") not in ("STATIC", "DNS"):
        problems.append("field gateway.resolution: %r must be STATIC or DNS" % (gw.get("resolution"),))
    if not istio.valid_port(gw.get("port")):
        problems.append("field gateway.port: %r is not a port number (1-65535)" % (gw.get("port"),))
    return problems


def _service_problems(svc):
    host = svc.get("hostname")
    if not isinstance(host, str) or not istio.HOSTNAME.match(host):
        return ["field public_services.hostname: %r is not a valid hostname" % (host,)]
    field = "field public_services[%s].ports: " % host
    problems = [] if svc.get("ports") else [field + "no ports"]
    names = set()
    for port in svc.get("ports") or []:
        number, name = port.get("number"), port.get("name")
        if not istio.valid_port(number):
            problems.append(field + "%r is not a port number (1-65535)" % (number,))
        if not name or not istio.DNS_LABEL.match(str(name)):
            problems.append(field + "port %r needs a valid name" % (number,))
        if istio.canonical_protocol(port.get("protocol")) in (None, "UDP"):
            problems.append(field + "protocol %r is not one that crosses the gateway (HTTP, HTTP2, GRPC, GRPC-Web, "
                                    "HTTPS, TLS, TCP, Mongo, Redis, MySQL, or empty to let Istio detect it)"
                            % (port.get("protocol"),))
        if name in names:
            problems.append(field + "port name %r is used twice" % (name,))
        names.add(name)
    return problems


# -- objects ----------------------------------------------------------------------------------------
def service_entry(local_name, peer, svc, namespace, api_version, address=None, export_to=("*",)):
    gw = peer["gateway"]
    spec = {
        "hosts": [svc["hostname"]], "location": "MESH_INTERNAL", "resolution": gw["resolution"],
        "ports": [_se_port(p) for p in svc["ports"]],
        "endpoints": [{"address": addr, "ports": dict((p["name"], gw["port"]) for p in svc["ports"]),
                       "labels": {"security.istio.io/tlsMode": "istio"}} for addr in gw["addresses"]],
        "exportTo": list(export_to),
    }
    if address:
        spec["addresses"] = [address]
    accounts = svc.get("service_accounts") or []
    if accounts:
        spec["subjectAltNames"] = ["spiffe://%s/ns/%s/sa/%s" % (peer["trust_domain"], svc["namespace"], sa)
                                   for sa in accounts]
    return _imported("ServiceEntry", local_name, peer, svc, namespace, api_version, spec)


def _se_port(port, target=False):
    """A ServiceEntry port; an empty protocol is left out (Istio then detects it, as for the Service)."""
    out = {"number": port["number"], "name": port["name"]}
    protocol = istio.canonical_protocol(port.get("protocol"))
    if protocol:
        out["protocol"] = protocol
    if target and port.get("target_port"):
        out["targetPort"] = port["target_port"]
    return out


def destination_rule(local_name, peer, svc, namespace, api_version, export_to=("*",)):
    spec = {"host": svc["hostname"], "trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL"}}, "exportTo": list(export_to)}
    return _imported("DestinationRule", local_name, peer, svc, namespace, api_version, spec)


def _imported(kind, local_name, peer, svc, namespace, api_version, spec):
    """An Istio object for one imported service, named (injectively) and labelled after the peer and service."""
    name = unique_name("meshfed", peer["name"], svc["namespace"], svc["name"])
    return new_object(kind, api_version, {"name": name, "namespace": namespace,
                                          "labels": labels(local_name, peer["name"])}, spec)


def export_gateway(local_card, hosts, api_version):
    """The AUTO_PASSTHROUGH Gateway for ``hosts``, on the gateway Service's port, in its namespace."""
    gw = local_card["gateway"]
    metadata = {"name": EXPORT_GATEWAY_NAME, "namespace": gw["service"]["namespace"],
                "labels": labels(local_card["name"], role="export")}
    return new_object("Gateway", api_version, metadata, {
        "selector": dict(gw.get("selector") or {"istio": "eastwestgateway"}),
        "servers": [{"port": {"number": gw.get("service_port") or gw["port"], "name": "tls", "protocol": "TLS"},
                     "tls": {"mode": "AUTO_PASSTHROUGH"}, "hosts": sorted(hosts)}],
    })


def export_alias(local_card, svc, api_version):
    """The alias host in the gateway's registry: a ServiceEntry selecting the Service's own pods.

    The gateway builds an SNI filter chain per in-mesh (MESH_INTERNAL) service whose hostname its
    AUTO_PASSTHROUGH server lists, with the ServiceEntry's endpoints: here the selected pods on the
    Service's target ports (``targetPort``), reachable with the same Istio mTLS as the Service itself.
    """
    gw_ns = local_card["gateway"]["service"]["namespace"]
    metadata = {"name": unique_name("meshfed-alias", svc["name"]), "namespace": svc["namespace"],
                "labels": labels(local_card["name"], role="export")}
    return new_object("ServiceEntry", api_version, metadata, {
        "hosts": [svc["hostname"]], "location": "MESH_INTERNAL", "resolution": "STATIC",
        "ports": [_se_port(p, target=True) for p in svc["ports"]],
        "workloadSelector": {"labels": dict(svc["selector"])},
        "exportTo": sorted(set([".", gw_ns])) if gw_ns != svc["namespace"] else ["."],
    })


# -- plan -------------------------------------------------------------------------------------------
def plan(local, peers, unreachable=(), namespace=None, api_version="v1", local_hostnames=(), export=True,
         refused=None, imports=None, other_gateways=(), current_statuses=None, published=False):
    """Desired state of the cluster whose card is ``local``, given its ``peers``' cards.

    ``unreachable`` names peers whose facts could not be gathered this run: nothing is planned for
    them and the caller must keep (not prune) what it already holds for them.
    ``local_hostnames`` are hostnames served by the local cluster itself (all its Services).
    ``refused``: unreachable metadata peers -> why their metadata was refused ({reason, message}).
    ``imports``: {namespaces (exportTo), hosts ({peer or "*": [globs]}), address_range, addresses (held)};
    ``other_gateways``: the cluster's Gateways this collection did not write (coexistence).
    ``current_statuses``: ``{peer: status}`` of the IstioFederations the cluster holds; a metadata peer
    older than its cached copy (a replay) is planned as unreachable (federations.demote_replays).
    ``published``: the cluster publishes its metadata, so peers may import from it before any is known here:
    the export Gateway is planned even without peers.
    Returns ``objects``, ``statuses``, ``conditions``, ``ca_entries``, ``preserve_peers``, ``warnings``.
    """
    unreachable = sorted(set(unreachable or ()))
    _raise_if(_card_problems(local, peers, unreachable))
    local_name, imports = local["name"], dict(imports or {})
    peers = [_selected(peer, imports.get("hosts") or {}) for peer in sorted(peers, key=lambda p: p["name"])]
    clashes = _trust_domain_clashes(local, peers) + _hostname_clashes(local, peers, local_hostnames)
    _raise_if([prefixed(local_name, p) for p in clashes])
    namespace = namespace or local.get("istio_namespace") or "istio-system"
    desired = {"objects": [], "statuses": {}, "ca_entries": [], "preserve_peers": unreachable, "warnings": [],
               "conditions": federations.refused_conditions(refused, unreachable)}
    try:
        assigned = addresses.allocate([s["hostname"] for peer in peers for s in peer.get("public_services") or []],
                                      imports.get("address_range") or addresses.DEFAULT_RANGE, imports.get("addresses"))
    except addresses.AddressRangeError as exc:
        raise PlanError([prefixed(local_name, "field dns_address_range: %s" % exc)])
    for peer in peers:
        _import_peer(desired, local_name, peer, (namespace, api_version), assigned, imports.get("namespaces") or ["*"])
    if export and (peers or unreachable or published) and local.get("public_services"):
        _export(desired, local, api_version, other_gateways)
    if assigned and local.get("dns_capture") is False:
        desired["warnings"].append(prefixed(local_name, _DNS_CAPTURE_OFF))
    desired["objects"] = _unique_names(desired["objects"], desired["warnings"], local_name)
    return federations.demote_replays(desired, current_statuses or {})


_DNS_CAPTURE_OFF = (
    "DNS capture is off (meshConfig.defaultConfig.proxyMetadata.ISTIO_META_DNS_CAPTURE is not \"true\"): pods "
    "resolve names through kube-dns, which does not know the imported hostnames, so clients cannot resolve them. "
    "Set ISTIO_META_DNS_CAPTURE: \"true\" in your Istio install's proxyMetadata (or per workload with the "
    "proxy.istio.io/config annotation) and restart the clients")


def _selected(peer, selection):
    """``peer`` with only the public services this cluster imports (globs per peer name, or "*")."""
    globs = selection.get(peer["name"], selection.get("*"))
    if not globs:
        return peer
    chosen = [s for s in peer.get("public_services") or [] if any(istio.glob_match(s["hostname"], g) for g in globs)]
    return dict(peer, public_services=chosen)


def _raise_if(problems):
    if problems:
        raise PlanError(problems)


def _card_problems(local, peers, unreachable):
    """Problems with each card, and with the peer list as a whole."""
    problems = validate_card(local, role="local")
    local_name = local.get("name") if isinstance(local, dict) else None
    seen = set()
    for peer in peers:
        problems.extend(validate_card(peer))
        name = peer.get("name") if isinstance(peer, dict) else None
        if name and name == local_name:
            problems.append(prefixed(local_name, "field peers: the local cluster is listed as its own peer"))
        elif name in seen:
            problems.append(prefixed(local_name, "field peers: peer %s is listed twice" % name))
        if name in unreachable:
            problems.append(prefixed(local_name, "field unreachable_peers: %s is both gathered and unreachable"
                                     % name))
        seen.add(name)
    return problems


def _trust_domain_clashes(local, peers):
    """Trust domains must tell clusters apart, or the trust scoping means nothing."""
    problems = []
    domains = {local["trust_domain"]: "%s (local)" % local["name"]}
    for peer in peers:
        other = domains.get(peer["trust_domain"])
        if other:
            problems.append("peer %s has trust domain %s, the same as %s; SPIFFE identities would be "
                            "indistinguishable (field: trust_domain)" % (peer["name"], peer["trust_domain"], other))
        domains[peer["trust_domain"]] = peer["name"]
    return problems


def _hostname_clashes(local, peers, local_hostnames):
    """Each hostname comes from exactly one cluster."""
    problems = []
    local_hosts = set(local_hostnames or ()) | set(s["hostname"] for s in local.get("public_services") or [])
    owners = {}
    for peer in sorted(peers, key=lambda p: p["name"]):
        for svc in peer.get("public_services") or []:
            host = svc["hostname"]
            ports = ",".join("%s/%s" % (p["name"], p["number"]) for p in svc["ports"])
            if host in local_hosts:
                problems.append("peer %s exports %s (ports %s), but the local cluster serves that hostname "
                                "itself; a local Service would shadow the import. Give the clusters distinct "
                                "cluster domains or stop exporting it" % (peer["name"], host, ports))
            elif host in owners:
                first, first_ports = owners[host]
                problems.append("hostname %s is exported by both %s (ports %s) and %s (ports %s)%s; "
                                "make it public in only one cluster" % (
                                    host, first, first_ports, peer["name"], ports,
                                    "" if first_ports == ports else ", with conflicting ports"))
            else:
                owners[host] = (peer["name"], ports)
    return problems


def _import_peer(desired, local_name, peer, where, assigned, export_to):
    """What importing ``peer`` adds: its IstioFederation and status, per service two objects, its roots."""
    namespace, api_version = where
    desired["objects"].append(federations.federation_object(local_name, peer))
    desired["statuses"][peer["name"]] = federations.federation_status(peer)
    if federations.verified_condition(peer):
        desired["conditions"][peer["name"]] = [federations.verified_condition(peer)]
    for svc in peer.get("public_services") or []:
        desired["objects"].append(service_entry(local_name, peer, svc, namespace, api_version,
                                                assigned.get(svc["hostname"]), export_to))
        desired["objects"].append(destination_rule(local_name, peer, svc, namespace, api_version, export_to))
    desired["ca_entries"].extend({"pem": root["pem"], "trustDomains": [peer["trust_domain"]], "peer": peer["name"]}
                                 for root in peer["root_cas"])


def _export(desired, local, api_version, other_gateways):
    """The export Gateway (hosts no other passthrough server covers) and the alias ServiceEntries."""
    gw, services = local["gateway"], local.get("public_services") or []
    workload = {"namespace": gw["service"]["namespace"], "labels": gw.get("pod_labels") or [gw.get("selector") or {}],
                "service_port": gw.get("service_port") or gw["port"], "target_port": gw.get("target_port") or gw["port"],
                "service_ports": gw.get("service_ports") or []}
    scoped = bool((local.get("istiod") or {}).get("scope_gateway_to_namespace"))
    found = gateways.coexistence(other_gateways, workload, [s["hostname"] for s in services], scoped)
    _raise_if([prefixed(local["name"], "%s; the export Gateway would clash with it (field: gateway_service). Move "
                                       "that server to another port or remove it" % c) for c in found["clashes"]])
    ours = [s["hostname"] for s in services if s["hostname"] not in found["covered"]]
    if ours:
        desired["objects"].append(export_gateway(local, ours, api_version))
    for ref, patterns in sorted(found["passthrough"].items()):
        covered = sorted(h for h, by in found["covered"].items() if by == ref)
        desired["warnings"].append(prefixed(local["name"], (
            "Gateway %s (AUTO_PASSTHROUGH, hosts %s) already passes %s through on the gateway's port; it is reused, "
            "as a second server would give duplicate filter chains and Envoy would reject the whole listener. Export "
            "selection is not enforced by the data plane there: every service matching %s is reachable by peers "
            "this cluster trusts" % (ref, ", ".join(patterns), ", ".join(covered), ", ".join(patterns)))))
    desired["objects"].extend(export_alias(local, s, api_version) for s in services
                              if s.get("service_hostname") not in (None, s["hostname"]))


def _unique_names(objects, warnings, local_name):
    """Objects whose (kind, namespace, name) is taken twice are left out, both, with a warning naming both."""
    owners = {}
    for obj in objects:
        owners.setdefault(object_key(obj), []).append(obj)
    for twins in owners.values():
        if len(twins) > 1:
            warnings.append(prefixed(local_name, "%s %s would be written for %s; neither is federated. Rename one "
                                                 "of the services" % (twins[0]["kind"], twins[0]["metadata"]["name"],
                                                                      " and ".join(_origin(o) for o in twins))))
    return [obj for obj in objects if len(owners[object_key(obj)]) == 1]


def _origin(obj):
    spec = obj.get("spec") or {}
    host = (spec.get("hosts") or [spec.get("host")])[0]
    return "%s (from %s)" % (host, obj["metadata"]["labels"].get(PEER_LABEL) or "this cluster")
