"""The planner against real Istio installs: DNS addresses, alias export, gateway coexistence, exportTo, injective names,
per-peer selection, protocols Istio leaves to sniffing."""

import ipaddress

import pytest

from ansible_collections.meshfed.istio.plugins.module_utils.common.errors import PlanError
from ansible_collections.meshfed.istio.plugins.module_utils.plan.planner import plan, unique_name

from ...cards import BAR, card


def of_kind(result, kind, role=None):
    return [o for o in result["objects"] if o["kind"] == kind
            and (role is None or o["metadata"]["labels"]["federation.meshfed.io/role"] == role)]


def se_by_host(result):
    return dict((o["spec"]["hosts"][0], o) for o in of_kind(result, "ServiceEntry", "import"))


def test_imports_get_a_stable_address_from_the_range(a, b):
    c = card("cluster-c", services=[("web", "x%d" % i, [("http", 80, "HTTP")]) for i in range(20)])
    result = plan(a, [b, c])
    addresses = [s["spec"]["addresses"][0] for s in of_kind(result, "ServiceEntry", "import")]
    assert len(addresses) == len(set(addresses)) == 21
    assert all(ipaddress.ip_address(x) in ipaddress.ip_network("240.241.0.0/16") for x in addresses)
    # what a cluster already holds is kept, whatever else changes
    held = {"bar.xyz.svc.cluster-b.local": "240.241.9.9"}
    again = plan(a, [b], imports={"addresses": held})
    assert se_by_host(again)["bar.xyz.svc.cluster-b.local"]["spec"]["addresses"] == ["240.241.9.9"]
    other = plan(a, [b], imports={"address_range": "10.250.0.0/24"})
    assert se_by_host(other)["bar.xyz.svc.cluster-b.local"]["spec"]["addresses"][0].startswith("10.250.0.")
    with pytest.raises(PlanError, match="cluster-a: field dns_address_range"):
        plan(a, [b], imports={"address_range": "10.250.0.1/24"})


def test_export_to_is_explicit(a, b):
    default = plan(a, [b])
    assert [o["spec"]["exportTo"] for o in default["objects"] if o["kind"] in ("ServiceEntry", "DestinationRule")] == [
        ["*"], ["*"]]
    limited = plan(a, [b], imports={"namespaces": ["abc", "web"]})
    assert {tuple(o["spec"]["exportTo"]) for o in limited["objects"]
            if o["kind"] in ("ServiceEntry", "DestinationRule")} == {("abc", "web")}


def test_names_are_injective_and_a_clash_blocks_only_its_two(a):
    b = card("cluster-b", services=[("foo-bar", "baz", [("http", 80, "HTTP")]), ("foo", "bar-baz", [("http", 80, "HTTP")]),
                                    ("xyz", "bar", [("http", 80, "HTTP")])])
    result = plan(a, [b])
    names = [o["metadata"]["name"] for o in of_kind(result, "ServiceEntry")]
    assert len(names) == len(set(names)) == 3
    assert unique_name("meshfed", "cluster-b", "foo-bar", "baz") != unique_name("meshfed", "cluster-b", "foo", "bar-baz")
    assert len(unique_name("meshfed", "c" * 60, "n" * 60, "s" * 60)) <= 63


def test_name_collision_leaves_out_both_with_a_warning(a, b, monkeypatch):
    from ansible_collections.meshfed.istio.plugins.module_utils.plan import planner
    c = card("cluster-c", services=[("web", "x", [("http", 80, "HTTP")]), ("web", "y", [("http", 80, "HTTP")])])
    monkeypatch.setattr(planner, "unique_name", lambda prefix, peer, ns, name: "same" if peer == "cluster-c" else
                        "%s-%s-%s" % (peer, ns, name))
    result = plan(a, [b, c])
    hosts = sorted(se_by_host(result))
    assert hosts == ["bar.xyz.svc.cluster-b.local"]  # the two clashing imports are left out, bar is not
    warnings = [w for w in result["warnings"] if " same " in w]
    assert sorted(w.split()[1] for w in warnings) == ["DestinationRule", "ServiceEntry"]
    assert all("x.web.svc.cluster-c.local" in w and "y.web.svc.cluster-c.local" in w for w in warnings)


def test_per_peer_import_selection(a):
    b = card("cluster-b", services=[("xyz", "bar", [("http", 80, "HTTP")]), ("other", "skip", [("http", 80, "HTTP")])])
    c = card("cluster-c")
    result = plan(a, [b, c], imports={"hosts": {"cluster-b": ["*.xyz.svc.*"]}})
    assert sorted(se_by_host(result)) == ["bar.xyz.svc.cluster-b.local", "svc-cluster-c.web.svc.cluster-c.local"]
    only = plan(a, [b, c], imports={"hosts": {"*": ["bar.*"]}})
    assert sorted(se_by_host(only)) == ["bar.xyz.svc.cluster-b.local"]
    # the federation status still records everything the peer offers
    assert len(only["statuses"]["cluster-b"]["private"]["publicServices"]) == 1


def test_sniffed_protocol_is_left_out(a):
    b = card("cluster-b", services=[("xyz", "raw", [("port-7000", 7000, ""), ("grpc-web", 8082, "GRPC-Web")])])
    ports = se_by_host(plan(a, [b]))["raw.xyz.svc.cluster-b.local"]["spec"]["ports"]
    assert ports == [{"number": 7000, "name": "port-7000"}, {"number": 8082, "name": "grpc-web", "protocol": "GRPC-Web"}]
    bad = card("cluster-b", services=[("xyz", "raw", [("x", 7000, "QUIC")])])
    with pytest.raises(PlanError, match="protocol 'QUIC' is not one that crosses the gateway"):
        plan(a, [bad])


def test_dns_capture_off_warns_naming_the_setting(a, b):
    a["dns_capture"] = False
    (warning,) = [w for w in plan(a, [b])["warnings"] if "DNS" in w]
    assert warning.startswith("cluster-a: ") and "ISTIO_META_DNS_CAPTURE" in warning
    a["dns_capture"] = True
    assert not [w for w in plan(a, [b])["warnings"] if "DNS" in w]


# -- export side -------------------------------------------------------------------------------------
def _aliased(b):
    for svc in b["public_services"]:
        svc["service_hostname"] = svc["hostname"].replace("cluster-b.local", "cluster.local")
        svc["selector"] = {"app": svc["name"]}
        for i, port in enumerate(svc["ports"]):
            port["target_port"] = 18080 + i
    return b


def test_export_gateway_uses_the_service_port_in_the_gateway_namespace(a, b):
    b["gateway"].update({"service_port": 15443, "target_port": 8443, "service": {"namespace": "gw", "name": "ew"}})
    (gw,) = of_kind(plan(b, [a]), "Gateway")
    assert gw["metadata"]["namespace"] == "gw"
    assert gw["spec"]["servers"][0]["port"]["number"] == 15443


def test_alias_is_a_service_entry_selecting_the_pods(a, b):
    result = plan(_aliased(b), [a])
    (gw,) = of_kind(result, "Gateway")
    assert gw["spec"]["servers"][0]["hosts"] == ["bar.xyz.svc.cluster-b.local"]
    (alias,) = of_kind(result, "ServiceEntry", "export")
    assert alias["metadata"]["namespace"] == "xyz"
    assert alias["spec"] == {
        "hosts": ["bar.xyz.svc.cluster-b.local"], "location": "MESH_INTERNAL", "resolution": "STATIC",
        "ports": [{"number": 8080, "name": "http", "protocol": "HTTP", "targetPort": 18080},
                  {"number": 9090, "name": "grpc-api", "protocol": "GRPC", "targetPort": 18081}],
        "workloadSelector": {"labels": {"app": "bar"}}, "exportTo": [".", "istio-system"]}
    # without an alias there is nothing to add to the registry
    assert not of_kind(plan(card("cluster-b", services=BAR), [a]), "ServiceEntry", "export")


def _gateway(name, servers, ns="istio-system"):
    return {"metadata": {"name": name, "namespace": ns},
            "spec": {"selector": {"istio": "eastwestgateway"}, "servers": servers}}


def test_existing_passthrough_server_is_reused_and_reported(a, b):
    cross = _gateway("cross-network-gateway", [{"port": {"number": 15443, "name": "tls", "protocol": "TLS"},
                                                "tls": {"mode": "AUTO_PASSTHROUGH"}, "hosts": ["*.local"]}])
    result = plan(b, [a], other_gateways=[cross])
    assert not of_kind(result, "Gateway")
    (warning,) = [w for w in result["warnings"] if "cross-network-gateway" in w]
    assert "not enforced" in warning and "bar.xyz.svc.cluster-b.local" in warning
    # an alias outside *.local still needs our server, for that host only
    b2 = card("cluster-b", services=BAR + [("web", "api", [("http", 80, "HTTP")])], domain="b.example.org")
    b2["public_services"][0]["hostname"] = "bar.xyz.svc.cluster-b.local"
    (gw,) = of_kind(plan(b2, [a], other_gateways=[cross]), "Gateway")
    assert gw["spec"]["servers"][0]["hosts"] == ["api.web.svc.b.example.org"]


def test_clashing_server_fails_naming_it(a, b):
    tcp = _gateway("legacy-tcp", [{"port": {"number": 15443, "name": "tcp", "protocol": "TCP"}, "hosts": ["*"]}],
                   ns="default")
    with pytest.raises(PlanError, match="cluster-b: Gateway default/legacy-tcp has a plain-text server"):
        plan(b, [a], other_gateways=[tcp])
