"""Istio's own rules (plugins/module_utils/istio.py), addresses and gateway coexistence: pure functions."""

import ipaddress

import pytest

from ansible_collections.meshfed.istio.plugins.module_utils.plan import addresses
from ansible_collections.meshfed.istio.plugins.module_utils.istio import gateways
from ansible_collections.meshfed.istio.plugins.module_utils.istio import rules as istio


@pytest.mark.parametrize("number,name,proto,app,expected", [
    (80, "http", "TCP", None, "HTTP"),
    (80, "http-web", "TCP", None, "HTTP"),
    (80, "HTTP2-x", "TCP", None, "HTTP2"),
    (9090, "grpc-api", "TCP", None, "GRPC"),
    (8082, "grpc-web", "TCP", None, "GRPC-Web"),
    (8082, "grpc-web-x", "TCP", None, "GRPC-Web"),
    (8081, "web", "TCP", "kubernetes.io/h2c", "HTTP2"),
    (8081, "web", "TCP", "kubernetes.io/ws", "HTTP"),
    (8081, "web", "TCP", "kubernetes.io/wss", "HTTPS"),
    (8081, "http", "TCP", "grpc", "GRPC"),  # appProtocol wins over the name
    (7000, None, "TCP", None, ""),  # unnamed: sniffed
    (7000, "web", "TCP", None, ""),  # unknown prefix: sniffed
    (3306, "db", "TCP", None, "TCP"),  # well-known port: TCP, not sniffed
    (27017, "mongo", "TCP", None, "Mongo"),
    (5353, "dns", "UDP", None, "UDP"),
    (6379, "redis", "TCP", None, "Redis"),
    (80, "udp-x", "TCP", None, ""),  # a udp name prefix on a TCP port says nothing
])
def test_port_protocol_follows_istio(number, name, proto, app, expected):
    assert istio.port_protocol(number, name, proto, app) == expected


def test_configmap_and_deployment_names_per_revision():
    assert istio.mesh_configmap_name(None) == "istio"
    assert istio.mesh_configmap_name("default") == "istio"
    assert istio.mesh_configmap_name("canary") == "istio-canary"
    assert istio.istiod_deployment_name("1-24") == "istiod-1-24"


def _istiod(args=None, env=None, labels=None, name="istiod"):
    return {"metadata": {"name": name, "labels": labels or {}},
            "spec": {"template": {"spec": {"containers": [
                {"name": "sidecar"},
                {"name": "discovery", "args": args or [], "env": [{"name": k, "value": v} for k, v in (env or {}).items()]}]}}}}


def test_istiod_domain_from_args():
    assert istio.istiod_domain(_istiod(["discovery", "--domain", "corp.example"])) == "corp.example"
    assert istio.istiod_domain(_istiod(["discovery", "--domain=Corp.Example."])) == "corp.example"
    assert istio.istiod_domain(_istiod(["discovery"])) == "cluster.local"


def test_deployment_revision():
    assert istio.deployment_revision(_istiod(labels={"istio.io/rev": "canary"})) == "canary"
    assert istio.deployment_revision(_istiod(env={"REVISION": "blue"})) == "blue"
    assert istio.deployment_revision(_istiod(name="istiod-green")) == "green"
    assert istio.deployment_revision(_istiod()) == "default"


def test_mesh_configmaps_need_the_mesh_key():
    cms = [{"metadata": {"name": n}, "data": d} for n, d in [
        ("istio", {"mesh": ""}), ("istio-canary", {"mesh": "a: 1"}), ("istio-ca-root-cert", {"root-cert.pem": "x"}),
        ("istio-sidecar-injector", {"config": "x"}), ("other", {"mesh": ""})]]
    assert istio.mesh_configmaps(cms) == ["istio", "istio-canary"]


def test_host_matches_like_subset_of():
    assert istio.host_matches("bar.xyz.svc.cluster.local", "*.local")
    assert istio.host_matches("bar.xyz.svc.cluster.local", "*/*.local")
    assert istio.host_matches("bar.xyz.svc.cluster.local", "*")
    assert not istio.host_matches("bar.xyz.svc.cluster.localx", "*.local")
    assert not istio.host_matches("bar.xyz.svc.example.org", "*.local")
    assert istio.host_matches("bar.xyz.svc.cluster.local", "bar.xyz.svc.cluster.local")


def test_dns_capture_and_glob():
    assert istio.dns_capture({"defaultConfig": {"proxyMetadata": {"ISTIO_META_DNS_CAPTURE": "true"}}})
    assert not istio.dns_capture({"defaultConfig": {"proxyMetadata": {"ISTIO_META_DNS_CAPTURE": "false"}}})
    assert not istio.dns_capture({})
    assert istio.glob_match("bar.xyz.svc.cluster.local", "*.xyz.svc.*")
    assert not istio.glob_match("skip.other.svc.cluster.local", "*.xyz.svc.*")


# -- addresses ----------------------------------------------------------------------------------
def test_addresses_are_in_range_distinct_and_deterministic():
    hosts = ["h%d.ns.svc.cluster.local" % i for i in range(200)]
    one = addresses.allocate(hosts, "240.241.0.0/16")
    two = addresses.allocate(list(reversed(hosts)), "240.241.0.0/16")
    assert one == two
    assert len(set(one.values())) == 200
    net = ipaddress.ip_network("240.241.0.0/16")
    assert all(ipaddress.ip_address(a) in net for a in one.values())


def test_addresses_keep_existing_and_resolve_collisions_stably():
    # a /29 has 6 usable addresses: collisions are certain with 6 hosts
    hosts = ["a", "b", "c", "d", "e", "f"]
    first = addresses.allocate(hosts, "10.0.0.0/29")
    assert sorted(first.values()) == ["10.0.0.%d" % i for i in range(1, 7)]
    # one host leaves and a new one comes: nobody else moves
    later = addresses.allocate(["a", "b", "c", "d", "f", "g"], "10.0.0.0/29", existing=first)
    assert all(later[h] == first[h] for h in "abcdf")
    assert later["g"] == first["e"]  # the only free address
    # an existing address outside the range, or taken twice, is reassigned
    moved = addresses.allocate(["a", "b"], "10.0.0.0/29", existing={"a": "192.0.2.1", "b": "10.0.0.3"})
    assert moved["b"] == "10.0.0.3" and moved["a"] != "192.0.2.1"


def test_address_range_errors():
    with pytest.raises(addresses.AddressRangeError, match="not a network"):
        addresses.allocate([], "240.241.0.1/16")
    with pytest.raises(addresses.AddressRangeError, match="do not fit"):
        addresses.allocate(["a", "b", "c"], "10.0.0.0/30")


# -- gateway coexistence -------------------------------------------------------------------------
WORKLOAD = {"namespace": "istio-system", "labels": [{"istio": "eastwestgateway", "app": "x"}],
            "service_port": 15443, "target_port": 8443, "service_ports": [15021, 15443]}


def _gw(name, servers, selector=None, ns="istio-system"):
    return {"metadata": {"name": name, "namespace": ns},
            "spec": {"selector": selector if selector is not None else {"istio": "eastwestgateway"}, "servers": servers}}


def _server(hosts, mode="AUTO_PASSTHROUGH", port=15443, protocol="TLS"):
    s = {"port": {"number": port, "name": "tls", "protocol": protocol}, "hosts": hosts}
    if mode:
        s["tls"] = {"mode": mode}
    return s


def test_cross_network_gateway_covers_local_hosts_only():
    hosts = ["bar.xyz.svc.cluster.local", "bar.xyz.svc.example.org"]
    out = gateways.coexistence([_gw("cross-network-gateway", [_server(["*.local"])])], WORKLOAD, hosts)
    assert out["covered"] == {"bar.xyz.svc.cluster.local": "istio-system/cross-network-gateway"}
    assert out["passthrough"] == {"istio-system/cross-network-gateway": ["*.local"]}
    assert out["clashes"] == []


def test_other_workloads_ports_and_namespaces_do_not_count():
    hosts = ["bar.xyz.svc.cluster.local"]
    others = [_gw("ingress", [_server(["*"])], selector={"istio": "ingressgateway"}),
              _gw("other-port", [_server(["*"], port=15444)]),
              _gw("elsewhere", [_server(["*"])], ns="apps")]
    assert gateways.coexistence(others, WORKLOAD, hosts, scope_to_namespace=True)["covered"] == {}
    assert gateways.coexistence(others, WORKLOAD, hosts)["covered"] == {hosts[0]: "apps/elsewhere"}
    # the target port counts only when it is not itself a Service port number
    assert gateways.coexistence([_gw("t", [_server(["*"], port=8443)])], WORKLOAD, hosts)["covered"]


def test_clashes_name_the_other_gateway():
    hosts = ["bar.xyz.svc.cluster.local"]
    plain = gateways.coexistence([_gw("legacy-tcp", [_server(["*"], mode=None, protocol="TCP")], ns="default")],
                                 WORKLOAD, hosts)
    assert "default/legacy-tcp" in plain["clashes"][0] and "plain-text" in plain["clashes"][0]
    same = gateways.coexistence([_gw("sni", [_server(hosts, mode="PASSTHROUGH")])], WORKLOAD, hosts)
    assert "istio-system/sni" in same["clashes"][0]
    wildcard = gateways.coexistence([_gw("mtls", [_server(["*"], mode="ISTIO_MUTUAL")])], WORKLOAD, hosts)
    assert wildcard["clashes"] == []  # a wildcard TLS server matches other SNIs: no duplicate chain


# -- workloads (pods) and values-mode trust ----------------------------------------------------------
def _pod(ns, name, labels, sa, phase="Running", ports=None):
    return {"metadata": {"namespace": ns, "name": name, "labels": labels},
            "spec": {"serviceAccountName": sa, "containers": [{"name": "app", "ports": ports or []}]},
            "status": {"phase": phase}}


def test_service_accounts_from_selected_live_pods():
    from ansible_collections.meshfed.istio.plugins.module_utils.istio import workloads
    pods = [_pod("xyz", "bar-1", {"app": "bar", "v": "1"}, "bar-sa"),
            _pod("xyz", "bar-2", {"app": "bar"}, "bar-sa"),
            _pod("xyz", "bar-old", {"app": "bar"}, "old-sa", phase="Succeeded"),
            _pod("abc", "bar-elsewhere", {"app": "bar"}, "wrong-ns"),
            _pod("xyz", "other", {"app": "other"}, "other")]
    by_ns = workloads.index(pods)
    chosen = workloads.selected(by_ns, "xyz", {"app": "bar"})
    assert workloads.service_accounts(chosen) == ["bar-sa"]
    assert workloads.selected(by_ns, "xyz", {}) == []


def test_named_target_port_resolved_from_container_ports():
    from ansible_collections.meshfed.istio.plugins.module_utils.istio import workloads
    pods = [_pod("xyz", "bar-1", {}, "sa", ports=[{"name": "web", "containerPort": 8080}])]
    assert workloads.resolve_target_port("web", pods) == 8080
    assert workloads.resolve_target_port(9090, pods) == 9090
    assert workloads.resolve_target_port("9091", pods) == 9091
    assert workloads.resolve_target_port("nope", pods) is None


def test_values_mode_renders_entries_and_reports_whether_live():
    from ansible_collections.meshfed.istio.plugins.module_utils.plan import trustvalues
    from ...cards import root_pem
    b, c = root_pem("cluster-b"), root_pem("cluster-c")
    ca = [{"pem": b, "trustDomains": ["cluster-b.local"], "peer": "cluster-b"},
          {"pem": c, "trustDomains": ["cluster-c.local"], "peer": "cluster-c"}]
    out = trustvalues.render(ca, {}, revision="canary")
    wanted = out["helm_values"]["meshConfig"]["caCertificates"]
    assert [e["trustDomains"] for e in wanted] == [["cluster-b.local"], ["cluster-c.local"]]
    assert out["istio_operator"]["spec"]["meshConfig"]["caCertificates"] == wanted
    assert out["istio_operator"]["spec"]["revision"] == "canary"
    assert out["in_place"] is False and len(out["missing"]) == 2
    live = trustvalues.render(ca, {"caCertificates": wanted[:1]})
    assert live["in_place"] is False and "cluster-c" in live["missing"][0]
    assert trustvalues.render(ca, {"caCertificates": wanted})["in_place"] is True
    # a root present without the peer's trust domain is not in place
    partial = [dict(wanted[0], trustDomains=[]), wanted[1]]
    assert trustvalues.render(ca, {"caCertificates": partial})["in_place"] is False
