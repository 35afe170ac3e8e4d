# Copyright: meshfed.istio contributors; GNU General Public License v3.0+ (see LICENSE; SPDX-License-Identifier: GPL-3.0-or-later)
"""How the export Gateway coexists with the other Gateways on the east-west gateway (pure, no I/O).

Istio merges the servers on one gateway workload and port (``pilot/pkg/model/gateway.go`` MergeGateways,
``pilot/pkg/networking/core/gateway.go``). An AUTO_PASSTHROUGH server yields a filter chain per in-mesh service under
its hosts (SNI ``outbound_.<port>_._.<host>``); two covering one service make Envoy reject the whole listener
(istio/istio#13717), so a host another such server covers is left out of ours (that server passes it through, and
every service under its wildcard: reported, the export selection is then not enforced). Two TLS servers naming one
host, or a plain-text server on the port, make Istio drop a server: refused, naming the other Gateway. A Gateway
selects the workload when its selector is a subset of a pod's labels (``PILOT_SCOPE_GATEWAY_TO_NAMESPACE``: in its
namespace only); a server is on our listener by the gateway Service port (istiod maps it to the target port), or by
the target port when that is no Service port.
"""

from ansible_collections.meshfed.istio.plugins.module_utils.istio.rules import host_matches
from ansible_collections.meshfed.istio.plugins.module_utils.istio.workloads import matches


def coexistence(gateways, workload, hosts, scope_to_namespace=False):
    """The other Gateways on ``workload`` (``{namespace, labels: [pod labels], service_port, target_port, service_ports}``)
    against our export ``hosts``: ``{"covered": {host: "ns/name"}, "passthrough": {"ns/name": [hosts]}, "clashes": [str]}``."""
    covered, passthrough, clashes = {}, {}, []
    for gw in sorted(gateways, key=lambda g: (g["metadata"].get("namespace") or "", g["metadata"]["name"])):
        meta, spec = gw["metadata"], gw.get("spec") or {}
        ref = "%s/%s" % (meta.get("namespace"), meta["name"])
        if scope_to_namespace and meta.get("namespace") != workload["namespace"]:
            continue
        if not any(matches(spec.get("selector"), labels) for labels in workload["labels"]):
            continue
        for server in spec.get("servers") or []:
            port = server.get("port") or {}
            number, mode = port.get("number"), (server.get("tls") or {}).get("mode")
            if number != workload["service_port"] and (
                    number != workload["target_port"] or number in workload.get("service_ports", ())):
                continue
            server_hosts = [h.split("/", 1)[-1] for h in server.get("hosts") or []]
            if not server.get("tls"):
                clashes.append("Gateway %s has a plain-text server (protocol %s) on port %s of the same gateway "
                               "workload; Istio keeps one protocol per port and drops a server"
                               % (ref, port.get("protocol"), number))
            elif mode == "AUTO_PASSTHROUGH":
                mine = [h for h in hosts if any(host_matches(h, p) for p in server_hosts)]
                for host in mine:
                    covered.setdefault(host, ref)
                if mine:
                    passthrough.setdefault(ref, sorted(set(server_hosts)))
            elif same := sorted(set(hosts) & set(server_hosts)):
                clashes.append("Gateway %s has a %s TLS server on port %s of the same gateway workload naming "
                               "%s; Istio drops one of two TLS servers with the same host"
                               % (ref, mode or "TLS", number, ", ".join(same)))
    return {"covered": covered, "passthrough": passthrough, "clashes": clashes}
