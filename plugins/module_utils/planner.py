# -*- coding: utf-8 -*-
# Copyright: meshfed.istio contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure federation planner: cluster cards in, desired Kubernetes objects out. No I/O.

``plan(local, peers, ...)`` computes, for one (local) cluster, everything it must hold so that
its mesh can reach the peers' public services and accept their workloads' certificates:

* one cluster-scoped ``IstioFederation`` per peer (coordinates in spec, metadata cache in status);
* per peer public hostname a ``ServiceEntry`` routed to the peer's gateway on its mTLS port and a
  ``DestinationRule`` with ``ISTIO_MUTUAL``;
* the export ``Gateway`` (AUTO_PASSTHROUGH) listing only the local public hostnames;
* the peers' roots as ``caCertificates`` entries scoped to each peer's trust domain.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import re

from ansible_collections.meshfed.istio.plugins.module_utils.errors import PlanError, prefixed
from ansible_collections.meshfed.istio.plugins.module_utils.kinds import (
    CLUSTER_LABEL, EXPORT_GATEWAY_NAME, HASH_ANNOTATION, MANAGED_BY_LABEL, MANAGED_BY_VALUE, PEER_LABEL, ROLE_LABEL,
    api_version as kind_api_version)
from ansible_collections.meshfed.istio.plugins.module_utils import sovereign

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_HOSTNAME = re.compile(r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_PROTOCOLS = ("HTTP", "HTTPS", "GRPC", "HTTP2", "MONGO", "TCP", "TLS")


def object_name(*parts):
    """A DNS-1123 label from ``parts``; long names keep a readable prefix plus a stable hash."""
    name = re.sub(r"[^a-z0-9-]+", "-", "-".join(parts).lower()).strip("-")
    if len(name) > 63:
        digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:10]
        name = name[:52].rstrip("-") + "-" + digest
    return name


def config_hash(obj):
    """Stable hash of what we declare (labels, spec); stored in an annotation on the object."""
    meta = obj.get("metadata") or {}
    payload = {"labels": meta.get("labels") or {}, "spec": obj.get("spec")}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode("utf-8")).hexdigest()[:16]


def _labels(local, peer=None, role="import"):
    labels = {MANAGED_BY_LABEL: MANAGED_BY_VALUE, CLUSTER_LABEL: local, ROLE_LABEL: role}
    if peer:
        labels[PEER_LABEL] = peer
    return labels


def _object(kind, api_version, metadata, spec):
    """An object of ``kind`` with the hash of what it declares in an annotation."""
    obj = {"apiVersion": kind_api_version(kind, api_version), "kind": kind, "metadata": metadata, "spec": spec}
    metadata.setdefault("annotations", {})[HASH_ANNOTATION] = config_hash(obj)
    return obj


# -- validation -----------------------------------------------------------------------------------
def validate_card(card, role="peer"):
    """Return a list of problems with a card (as gathered by cluster_info, possibly edited)."""
    if not isinstance(card, dict):
        return ["%s card is not a mapping" % role]
    name = card.get("name")
    problems = []
    if not isinstance(name, str) or not _DNS_LABEL.match(name) or len(name) > 63:
        problems.append("field name: %r is not a valid cluster name (lowercase DNS label, at most 63 "
                        "characters)" % (name,))
    td = card.get("trust_domain")
    if not isinstance(td, str) or not td or not _HOSTNAME.match(td.lower()):
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
    if not _valid_port(gw.get("port")):
        problems.append("field gateway.port: %r is not a port number (1-65535)" % (gw.get("port"),))
    return problems


def _service_problems(svc):
    host = svc.get("hostname")
    if not isinstance(host, str) or not _HOSTNAME.match(host):
        return ["field public_services.hostname: %r is not a valid hostname" % (host,)]
    field = "field public_services[%s].ports: " % host
    problems = [] if svc.get("ports") else [field + "no ports"]
    names = set()
    for port in svc.get("ports") or []:
        number, name = port.get("number"), port.get("name")
        if not _valid_port(number):
            problems.append(field + "%r is not a port number (1-65535)" % (number,))
        if not name or not _DNS_LABEL.match(str(name)):
            problems.append(field + "port %r needs a valid name" % (number,))
        if port.get("protocol") not in _PROTOCOLS:
            problems.append(field + "protocol %r is not one of %s" % (port.get("protocol"), ", ".join(_PROTOCOLS)))
        if name in names:
            problems.append(field + "port name %r is used twice" % (name,))
        names.add(name)
    return problems


def _valid_port(value):
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65535


# -- objects ----------------------------------------------------------------------------------------
def federation_object(local_name, peer):
    gw = peer["gateway"]
    spec = {"trustDomain": peer["trust_domain"], "clusterDomain": peer.get("cluster_domain") or peer["trust_domain"],
            "ingressGateways": [{"address": a, "port": gw["port"]} for a in gw["addresses"]],
            "rootCAFingerprints": sorted(r["sha256"] for r in peer["root_cas"])}
    spec.update(sovereign.spec_fields(peer))
    return _object("IstioFederation", None, {"name": peer["name"], "labels": _labels(local_name, peer["name"])}, spec)


def federation_status(peer):
    """The metadata cache recorded in the IstioFederation status (timestamp added on write)."""
    gw = peer["gateway"]
    roots = [{"sha256": r["sha256"], "subject": r.get("subject", ""), "notAfter": r.get("not_after", ""),
              "pem": r["pem"]} for r in peer["root_cas"]]
    services = [{"hostname": s["hostname"],
                 "ports": [{"name": p["name"], "port": p["number"], "protocol": p["protocol"]} for p in s["ports"]]}
                for s in peer.get("public_services") or []]
    return {"public": dict(sovereign.public_status_fields(peer), trustDomain=peer["trust_domain"], rootCA=roots),
            "private": {"ingressGateways": [{"address": a, "port": gw["port"]} for a in gw["addresses"]],
                        "publicServices": services}}


def service_entry(local_name, peer, svc, namespace, api_version):
    gw = peer["gateway"]
    spec = {
        "hosts": [svc["hostname"]], "location": "MESH_INTERNAL", "resolution": gw["resolution"],
        "ports": [{"number": p["number"], "name": p["name"], "protocol": p["protocol"]} for p in svc["ports"]],
        "endpoints": [{"address": addr, "ports": dict((p["name"], gw["port"]) for p in svc["ports"]),
                       "labels": {"security.istio.io/tlsMode": "istio"}} for addr in gw["addresses"]],
    }
    accounts = svc.get("service_accounts") or []
    if accounts:
        spec["subjectAltNames"] = ["spiffe://%s/ns/%s/sa/%s" % (peer["trust_domain"], svc["namespace"], sa)
                                   for sa in accounts]
    return _imported("ServiceEntry", local_name, peer, svc, namespace, api_version, spec)


def destination_rule(local_name, peer, svc, namespace, api_version):
    spec = {"host": svc["hostname"], "trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL"}}}
    return _imported("DestinationRule", local_name, peer, svc, namespace, api_version, spec)


def _imported(kind, local_name, peer, svc, namespace, api_version, spec):
    """An Istio object for one imported service, named and labelled after the peer and service."""
    name = object_name("meshfed", peer["name"], svc["namespace"], svc["name"])
    return _object(kind, api_version, {"name": name, "namespace": namespace,
                                       "labels": _labels(local_name, peer["name"])}, spec)


def export_gateway(local_card, namespace, api_version):
    gw = local_card["gateway"]
    hosts = sorted(s["hostname"] for s in local_card.get("public_services") or [])
    metadata = {"name": EXPORT_GATEWAY_NAME, "namespace": namespace, "labels": _labels(local_card["name"], role="export")}
    return _object("Gateway", api_version, metadata, {
        "selector": dict(gw.get("selector") or {"istio": "eastwestgateway"}),
        "servers": [{"port": {"number": gw.get("target_port") or gw["port"], "name": "tls", "protocol": "TLS"},
                     "tls": {"mode": "AUTO_PASSTHROUGH"}, "hosts": hosts}],
    })


# -- plan -------------------------------------------------------------------------------------------
def plan(local, peers, unreachable=(), namespace=None, api_version="v1", local_hostnames=(), export=True,
         refused=None):
    """Desired state of the cluster whose card is ``local``, given its ``peers``' cards.

    ``unreachable`` names peers whose facts could not be gathered this run: nothing is planned for
    them and the caller must keep (not prune) what it already holds for them.
    ``local_hostnames`` are hostnames served by the local cluster itself (all its Services).
    ``refused`` maps unreachable metadata peers to why their metadata was refused ({reason, message}).
    Returns a dict with ``objects``, ``statuses`` (peer -> metadata cache), ``conditions`` (peer ->
    IstioFederation conditions), ``ca_entries`` and ``preserve_peers``. Raises :class:`PlanError`.
    """
    unreachable = sorted(set(unreachable or ()))
    _raise_if(_card_problems(local, peers, unreachable))
    local_name = local["name"]
    _raise_if([prefixed(local_name, p) for p in _trust_domain_clashes(local, peers)
               + _hostname_clashes(local, peers, local_hostnames)])
    namespace = namespace or local.get("istio_namespace") or "istio-system"
    desired = {"objects": [], "statuses": {}, "ca_entries": [], "preserve_peers": unreachable,
               "conditions": sovereign.refused_conditions(refused, unreachable)}
    for peer in sorted(peers, key=lambda p: p["name"]):
        _import_peer(desired, local_name, peer, namespace, api_version)
    if export and (peers or unreachable) and local.get("public_services"):
        desired["objects"].append(export_gateway(local, namespace, api_version))
    _check_unique_names(desired["objects"], local_name)
    return desired


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


def _import_peer(desired, local_name, peer, namespace, api_version):
    """What importing ``peer`` adds: its IstioFederation and status, per service two objects, its roots."""
    desired["objects"].append(federation_object(local_name, peer))
    desired["statuses"][peer["name"]] = federation_status(peer)
    if sovereign.verified_condition(peer):
        desired["conditions"][peer["name"]] = [sovereign.verified_condition(peer)]
    for svc in peer.get("public_services") or []:
        desired["objects"].append(service_entry(local_name, peer, svc, namespace, api_version))
        desired["objects"].append(destination_rule(local_name, peer, svc, namespace, api_version))
    desired["ca_entries"].extend({"pem": root["pem"], "trustDomains": [peer["trust_domain"]], "peer": peer["name"]}
                                 for root in peer["root_cas"])


def _check_unique_names(objects, local_name):
    names = {}
    for obj in objects:
        key = (obj["kind"], obj["metadata"].get("namespace"), obj["metadata"]["name"])
        if key in names:
            raise PlanError([prefixed(local_name, "two objects would be named %s %s (from %s); rename one of the "
                                                  "services" % (key[0], key[2], names[key]))])
        names[key] = obj["metadata"]["labels"].get(PEER_LABEL, local_name)
