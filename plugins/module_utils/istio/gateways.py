# -*- coding: utf-8 -*-
# Copyright: meshfed.istio contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""How the export Gateway coexists with the Gateways already on the east-west gateway (pure, no I/O).

What Istio does with several Gateway servers on one gateway workload and port
(``pilot/pkg/model/gateway.go`` MergeGateways, ``pilot/pkg/networking/core/gateway.go``):

* every AUTO_PASSTHROUGH server yields one filter chain per in-mesh service whose hostname is a
  subset of one of its hosts (SNI ``outbound_.<port>_._.<host>``). Two such servers covering the
  same service give duplicate filter-chain matches and Envoy rejects the whole listener
  (istio/istio#13717). So a host another AUTO_PASSTHROUGH server already covers is *not* listed in
  ours: that server passes it through (and every other service under its wildcard: the export
  selection is then not enforced by the data plane, which is reported);
* two TLS servers naming the same host literally: Istio drops the later one;
* a plain-text server (no ``tls``) on the same port: one protocol per port, Istio drops a server.
  Both are clashes the collection refuses, naming the other Gateway.

A Gateway selects the workload when its selector is a subset of a gateway pod's labels (with
``PILOT_SCOPE_GATEWAY_TO_NAMESPACE`` only Gateways of the workload's namespace count). A server is
on our listener when its port is the gateway Service port (istiod maps it to the target port) or,
for a number that is no Service port, the target port itself.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.meshfed.istio.plugins.module_utils.istio.rules import host_matches
from ansible_collections.meshfed.istio.plugins.module_utils.istio.workloads import matches


def coexistence(gateways, workload, hosts, scope_to_namespace=False):
    """Analyse the other Gateways on the workload and port against our export ``hosts``.

    ``workload``: ``{namespace, labels: [pod label dicts], service_port, target_port, service_ports}``.
    Returns ``{"covered": {host: "ns/name"}, "passthrough": {"ns/name": [hosts]}, "clashes": [str]}``.
    """
    covered, passthrough, clashes = {}, {}, []
    for gw in sorted(gateways, key=lambda g: (g["metadata"].get("namespace") or "", g["metadata"]["name"])):
        meta = gw["metadata"]
        ref = "%s/%s" % (meta.get("namespace"), meta["name"])
        spec = gw.get("spec") or {}
        if scope_to_namespace and meta.get("namespace") != workload["namespace"]:
            continue
        if not any(matches(spec.get("selector"), labels) for labels in workload["labels"]):
            continue
        for server in spec.get("servers") or []:
            port = server.get("port") or {}
            number = port.get("number")
            if number != workload["service_port"] and (
                    number != workload["target_port"] or number in workload.get("service_ports", ())):
                continue
            server_hosts = [h.split("/", 1)[-1] for h in server.get("hosts") or []]
            mode = (server.get("tls") or {}).get("mode")
            if not server.get("tls"):
                clashes.append("Gateway %s has a plain-text server (protocol %s) on port %s of the same gateway "
                               "workload; Istio keeps one protocol per port and drops a server"
                               % (ref, port.get("protocol"), port.get("number")))
            elif mode == "AUTO_PASSTHROUGH":
                mine = [h for h in hosts if any(host_matches(h, p) for p in server_hosts)]
                for host in mine:
                    covered.setdefault(host, ref)
                if mine:
                    passthrough.setdefault(ref, sorted(set(server_hosts)))
            else:
                same = sorted(set(hosts) & set(server_hosts))
                if same:
                    clashes.append("Gateway %s has a %s TLS server on port %s of the same gateway workload naming "
                                   "%s; Istio drops one of two TLS servers with the same host"
                                   % (ref, mode or "TLS", port.get("number"), ", ".join(same)))
    return {"covered": covered, "passthrough": passthrough, "clashes": clashes}
