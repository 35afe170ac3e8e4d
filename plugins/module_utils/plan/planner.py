# Copyright: meshfed.istio contributors; GNU General Public License v3.0+ (see LICENSE; SPDX-License-Identifier: GPL-3.0-or-later)
"""Pure planner: cluster cards in, the objects one cluster must hold out (docs/design.md): per peer an IstioFederation and its
roots (caCertificates scoped to its trust domain), per import a ServiceEntry and an ISTIO_MUTUAL DestinationRule, the export."""

import hashlib
import re

from ansible_collections.meshfed.istio.plugins.module_utils.common.errors import PlanError, prefixed
from ansible_collections.meshfed.istio.plugins.module_utils.istio import gateways
from ansible_collections.meshfed.istio.plugins.module_utils.istio import rules as istio
from ansible_collections.meshfed.istio.plugins.module_utils.plan import addresses, federations
from ansible_collections.meshfed.istio.plugins.module_utils.plan.kinds import (
    EXPORT_GATEWAY_NAME, PEER_LABEL, labels, new_object, object_key)

_DNS_CAPTURE_OFF = (
    "DNS capture is off (meshConfig.defaultConfig.proxyMetadata.ISTIO_META_DNS_CAPTURE is not \"true\"): pods resolve names through kube-dns, "
    "which does not know the imported hostnames, so clients cannot resolve them. Set ISTIO_META_DNS_CAPTURE: \"true\" in your Istio "
    "install's proxyMetadata (or per workload with the proxy.istio.io/config annotation) and restart the clients")


def object_name(*parts):
    """A DNS-1123 label from ``parts``; long names keep a readable prefix plus a stable hash."""
    name = re.sub(r"[^a-z0-9-]+", "-", "-".join(parts).lower()).strip("-")
    if len(name) > 63:
        name = name[:52].rstrip("-") + "-" + hashlib.sha256(name.encode("utf-8")).hexdigest()[:10]
    return name


def unique_name(prefix, *parts):
    """``<prefix>-<parts joined>-<hash of the parts>``: injective where joining with "-" is not, at most 63 characters."""
    digest = hashlib.sha256("/".join(parts).encode("utf-8")).hexdigest()[:8]
    return "%s-%s" % (object_name(prefix, *parts)[:54].rstrip("-"), digest)


def validate_card(card, role="peer"):
    """Problems with a card (as gathered by cluster_info, possibly edited)."""
    if not isinstance(card, dict):
        return ["%s card is not a mapping" % role]
    name, td, roots, gw = card.get("name"), card.get("trust_domain"), card.get("root_cas"), card.get("gateway") or {}
    checks = [(isinstance(name, str) and istio.DNS_LABEL.match(name) and len(name) <= 63,
               "field name: %r is not a valid cluster name (lowercase DNS label, at most 63 characters)" % (name,)),
              (isinstance(td, str) and td and istio.HOSTNAME.match(td.lower()),
               "field trust_domain: %r is not a valid trust domain" % (td,)),
              (roots and all(isinstance(r, dict) and r.get("pem") and r.get("sha256") for r in roots),
               "field root_cas: no root CA certificate"),
              (gw.get("addresses"), "field gateway.addresses: the gateway has no address; peers cannot reach it")]
    checks.extend((isinstance(addr, str) and addr and " " not in addr, "field gateway.addresses: %r is not an address"
                   % (addr,)) for addr in gw.get("addresses") or [])
    checks.extend([(gw.get("resolution") in ("STATIC", "DNS"),
                    "field gateway.resolution: %r must be STATIC or DNS" % (gw.get("resolution"),)),
                   (istio.valid_port(gw.get("port")),
                    "field gateway.port: %r is not a port number (1-65535)" % (gw.get("port"),))])
    for svc in card.get("public_services") or []:
        host = svc.get("hostname")
        if not isinstance(host, str) or not istio.HOSTNAME.match(host):
            checks.append((False, "field public_services.hostname: %r is not a valid hostname" % (host,)))
            continue
        field, seen = "field public_services[%s].ports: " % host, set()
        checks.append((svc.get("ports"), field + "no ports"))
        for port in svc.get("ports") or []:
            number, port_name = port.get("number"), port.get("name")
            checks += [(istio.valid_port(number), field + "%r is not a port number (1-65535)" % (number,)),
                       (port_name and istio.DNS_LABEL.match(str(port_name)), field + "port %r needs a valid name" % (number,)),
                       (istio.canonical_protocol(port.get("protocol")) not in (None, "UDP"),
                        field + "protocol %r is not one that crosses the gateway (HTTP, HTTP2, GRPC, GRPC-Web, HTTPS, TLS, "
                        "TCP, Mongo, Redis, MySQL, or empty to let Istio detect it)" % (port.get("protocol"),)),
                       (port_name not in seen, field + "port name %r is used twice" % (port_name,))]
            seen.add(port_name)
    return [prefixed(name or "(unnamed %s)" % role, problem) for ok, problem in checks if not ok]


def _se_port(port, target=False):
    """A ServiceEntry port; an empty protocol is left out (Istio then detects it, as for the Service)."""
    out = {"number": port["number"], "name": port["name"], "protocol": istio.canonical_protocol(port.get("protocol")),
           "targetPort": port.get("target_port") if target else None}
    return dict((key, value) for key, value in out.items() if value)


def plan(local, peers, unreachable=(), namespace=None, api_version="v1", local_hostnames=(), export=True,
         refused=None, imports=None, other_gateways=(), current_statuses=None, published=False):
    """Desired state of cluster ``local``: ``objects``, ``statuses``, ``conditions``, ``ca_entries``, ``preserve_peers``, ``warnings``.
    ``unreachable`` peers keep their objects and get the ``refused`` (``{peer: {reason, message}}``) condition; ``imports``:
    ``{namespaces, hosts ({peer or "*": [globs]}), address_range, addresses (held)}``; ``current_statuses`` demote a replayed
    peer; ``published``: the export Gateway is planned without peers (they may import from the published metadata)."""
    unreachable = sorted(set(unreachable or ()))
    _raise_if(_card_problems(local, peers, unreachable))
    local_name, imports = local["name"], dict(imports or {})
    peers = [_selected(peer, imports.get("hosts") or {}) for peer in sorted(peers, key=lambda p: p["name"])]
    _raise_if([prefixed(local_name, p) for p in _clashes(local, peers, local_hostnames)])
    namespace = namespace or local.get("istio_namespace") or "istio-system"
    conditions = dict((name, [federations.refused_condition((info or {}).get("reason"), (info or {}).get("message"))])
                      for name, info in (refused or {}).items() if name in unreachable)
    desired = {"objects": [], "statuses": {}, "ca_entries": [], "preserve_peers": unreachable, "warnings": [],
               "conditions": conditions}
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


def _selected(peer, selection):
    """``peer`` with only the public services this cluster imports (globs per peer name, or "*")."""
    globs = selection.get(peer["name"], selection.get("*"))
    chosen = [s for s in peer.get("public_services") or [] if any(istio.glob_match(s["hostname"], g) for g in globs or ())]
    return dict(peer, public_services=chosen) if globs else peer


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
            problems.append(prefixed(local_name, "field unreachable_peers: %s is both gathered and unreachable" % name))
        seen.add(name)
    return problems


def _clashes(local, peers, local_hostnames):
    """Trust domains must tell clusters apart (or trust scoping means nothing); each hostname comes from one cluster."""
    problems, hosts, owners = [], [], {}
    domains = {local["trust_domain"]: "%s (local)" % local["name"]}
    local_hosts = set(local_hostnames or ()) | set(s["hostname"] for s in local.get("public_services") or [])
    for peer in peers:
        if peer["trust_domain"] in domains:
            problems.append("peer %s has trust domain %s, the same as %s; SPIFFE identities would be indistinguishable "
                            "(field: trust_domain)" % (peer["name"], peer["trust_domain"], domains[peer["trust_domain"]]))
        domains[peer["trust_domain"]] = peer["name"]
        for svc in peer.get("public_services") or []:
            host, ports = svc["hostname"], ",".join("%s/%s" % (p["name"], p["number"]) for p in svc["ports"])
            if host in local_hosts:
                hosts.append("peer %s exports %s (ports %s), but the local cluster serves that hostname itself; a "
                             "local Service would shadow the import. Give the clusters distinct cluster domains or "
                             "stop exporting it" % (peer["name"], host, ports))
            elif host in owners:
                first, first_ports = owners[host]
                hosts.append("hostname %s is exported by both %s (ports %s) and %s (ports %s)%s; make it public in "
                             "only one cluster" % (host, first, first_ports, peer["name"], ports,
                                                   "" if first_ports == ports else ", with conflicting ports"))
            else:
                owners[host] = (peer["name"], ports)
    return problems + hosts


def _import_peer(desired, local_name, peer, where, assigned, export_to):
    """Importing ``peer``: its IstioFederation, status and roots, per service a ServiceEntry and a DestinationRule."""
    (namespace, api_version), gw = where, peer["gateway"]
    desired["objects"].append(federations.federation_object(local_name, peer))
    desired["statuses"][peer["name"]] = federations.federation_status(peer)
    condition = federations.verified_condition(peer)
    if condition:
        desired["conditions"][peer["name"]] = [condition]
    for svc in peer.get("public_services") or []:
        entry = {"hosts": [svc["hostname"]], "location": "MESH_INTERNAL", "resolution": gw["resolution"],
                 "ports": [_se_port(p) for p in svc["ports"]],
                 "endpoints": [{"address": addr, "ports": dict((p["name"], gw["port"]) for p in svc["ports"]),
                                "labels": {"security.istio.io/tlsMode": "istio"}} for addr in gw["addresses"]],
                 "exportTo": list(export_to)}
        if assigned.get(svc["hostname"]):
            entry["addresses"] = [assigned[svc["hostname"]]]
        if svc.get("service_accounts"):
            entry["subjectAltNames"] = ["spiffe://%s/ns/%s/sa/%s" % (peer["trust_domain"], svc["namespace"], sa)
                                        for sa in svc["service_accounts"]]
        rule = {"host": svc["hostname"], "trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL"}}, "exportTo": list(export_to)}
        name = unique_name("meshfed", peer["name"], svc["namespace"], svc["name"])
        desired["objects"].extend(new_object(kind, api_version, {"name": name, "namespace": namespace,
                                                                 "labels": labels(local_name, peer["name"])}, spec)
                                  for kind, spec in (("ServiceEntry", entry), ("DestinationRule", rule)))
    desired["ca_entries"].extend({"pem": root["pem"], "trustDomains": [peer["trust_domain"]], "peer": peer["name"]}
                                 for root in peer["root_cas"])


def _export(desired, local, api_version, other_gateways):
    """The AUTO_PASSTHROUGH export Gateway (for the hosts no other passthrough server covers) and the alias ServiceEntries."""
    gw, services = local["gateway"], local.get("public_services") or []
    gw_ns, port, export_labels = gw["service"]["namespace"], gw.get("service_port") or gw["port"], labels(local["name"], role="export")
    workload = {"namespace": gw_ns, "labels": gw.get("pod_labels") or [gw.get("selector") or {}], "service_port": port,
                "target_port": gw.get("target_port") or gw["port"], "service_ports": gw.get("service_ports") or []}
    scoped = bool((local.get("istiod") or {}).get("scope_gateway_to_namespace"))
    found = gateways.coexistence(other_gateways, workload, [s["hostname"] for s in services], scoped)
    _raise_if([prefixed(local["name"], "%s; the export Gateway would clash with it (field: gateway_service). Move "
                                       "that server to another port or remove it" % c) for c in found["clashes"]])
    ours = sorted(s["hostname"] for s in services if s["hostname"] not in found["covered"])
    if ours:
        desired["objects"].append(new_object("Gateway", api_version, {
            "name": EXPORT_GATEWAY_NAME, "namespace": gw_ns, "labels": dict(export_labels)}, {
            "selector": dict(gw.get("selector") or {"istio": "eastwestgateway"}),
            "servers": [{"port": {"number": port, "name": "tls", "protocol": "TLS"},
                         "tls": {"mode": "AUTO_PASSTHROUGH"}, "hosts": ours}]}))
    for ref, patterns in sorted(found["passthrough"].items()):
        covered = sorted(h for h, by in found["covered"].items() if by == ref)
        desired["warnings"].append(prefixed(local["name"], (
            "Gateway %s (AUTO_PASSTHROUGH, hosts %s) already passes %s through on the gateway's port; it is reused, "
            "as a second server would give duplicate filter chains and Envoy would reject the whole listener. Export "
            "selection is not enforced by the data plane there: every service matching %s is reachable by peers "
            "this cluster trusts" % (ref, ", ".join(patterns), ", ".join(covered), ", ".join(patterns)))))
    # an alias is a MESH_INTERNAL ServiceEntry selecting the Service's pods: the gateway's SNI chain uses their target ports
    desired["objects"].extend(new_object("ServiceEntry", api_version, {
        "name": unique_name("meshfed-alias", s["name"]), "namespace": s["namespace"], "labels": dict(export_labels)}, {
        "hosts": [s["hostname"]], "location": "MESH_INTERNAL", "resolution": "STATIC",
        "ports": [_se_port(p, target=True) for p in s["ports"]], "workloadSelector": {"labels": dict(s["selector"])},
        "exportTo": sorted([".", gw_ns]) if gw_ns != s["namespace"] else ["."],
    }) for s in services if s.get("service_hostname") not in (None, s["hostname"]))


def _unique_names(objects, warnings, local_name):
    """Objects whose (kind, namespace, name) is taken twice are left out, both, with a warning naming both."""
    owners = {}
    for obj in objects:
        owners.setdefault(object_key(obj), []).append(obj)
    for twins in (twins for twins in owners.values() if len(twins) > 1):
        origins = ["%s (from %s)" % ((o["spec"].get("hosts") or [o["spec"].get("host")])[0],
                                     o["metadata"]["labels"].get(PEER_LABEL) or "this cluster") for o in twins]
        warnings.append(prefixed(local_name, "%s %s would be written for %s; neither is federated. Rename one of the "
                                             "services" % (twins[0]["kind"], twins[0]["metadata"]["name"], " and ".join(origins))))
    return [obj for obj in objects if len(owners[object_key(obj)]) == 1]
