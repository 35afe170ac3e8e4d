import pytest

from ansible_collections.meshfed.istio.plugins.module_utils.plan.kinds import HASH_ANNOTATION, new_object
from ansible_collections.meshfed.istio.plugins.module_utils.plan.planner import PlanError, object_name, plan

from ...cards import BAR, card


def by_kind(result, kind):
    return {o["metadata"]["name"]: o for o in result["objects"] if o["kind"] == kind}


def test_seed_scenario_service_entry(a, b):
    result = plan(a, [b])
    (se,) = by_kind(result, "ServiceEntry").values()
    assert se["apiVersion"] == "networking.istio.io/v1"
    assert se["metadata"]["name"] == "meshfed-cluster-b-xyz-bar-d3817720"  # readable, plus a hash: injective
    assert se["metadata"]["namespace"] == "istio-system"
    assert se["metadata"]["labels"] == {
        "app.kubernetes.io/managed-by": "meshfed.istio", "federation.meshfed.io/cluster": "cluster-a",
        "federation.meshfed.io/role": "import", "federation.meshfed.io/peer": "cluster-b"}
    spec = se["spec"]
    assert spec["hosts"] == ["bar.xyz.svc.cluster-b.local"]
    assert spec["location"] == "MESH_INTERNAL" and spec["resolution"] == "STATIC"
    assert spec["ports"] == [{"number": 8080, "name": "http", "protocol": "HTTP"},
                             {"number": 9090, "name": "grpc-api", "protocol": "GRPC"}]
    assert spec["endpoints"] == [{"address": "192.0.2.11", "ports": {"http": 15443, "grpc-api": 15443},
                                  "labels": {"security.istio.io/tlsMode": "istio"}}]
    assert "subjectAltNames" not in spec


def test_hostname_gateway_resolves_by_dns_and_service_accounts_give_sans(a):
    b = card("cluster-b", services=BAR, addresses=["gw-1.b.example", "gw-2.b.example"])
    b["public_services"][0]["service_accounts"] = ["bar"]
    spec = plan(a, [b])["objects"][1]["spec"]
    assert spec["resolution"] == "DNS"
    assert [e["address"] for e in spec["endpoints"]] == ["gw-1.b.example", "gw-2.b.example"]
    assert spec["subjectAltNames"] == ["spiffe://cluster-b.local/ns/xyz/sa/bar"]


def test_destination_rule_federation_and_trust(a, b):
    result = plan(a, [b])
    dr = by_kind(result, "DestinationRule")["meshfed-cluster-b-xyz-bar-d3817720"]
    assert dr["spec"] == {"host": "bar.xyz.svc.cluster-b.local", "trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL"}},
                          "exportTo": ["*"]}
    fed = by_kind(result, "IstioFederation")["cluster-b"]
    assert fed["apiVersion"] == "meshfed.io/v1alpha1" and "namespace" not in fed["metadata"]
    assert fed["spec"]["trustDomain"] == "cluster-b.local"
    assert fed["spec"]["ingressGateways"] == [{"address": "192.0.2.11", "port": 15443}]
    status = result["statuses"]["cluster-b"]
    assert status["private"]["publicServices"][0]["hostname"] == "bar.xyz.svc.cluster-b.local"
    assert status["public"]["rootCA"][0]["sha256"] == b["root_cas"][0]["sha256"]
    assert result["ca_entries"] == [{"pem": b["root_cas"][0]["pem"], "trustDomains": ["cluster-b.local"],
                                     "peer": "cluster-b"}]


def test_export_gateway_lists_only_local_public_hostnames(a, b):
    gw = by_kind(plan(b, [a]), "Gateway")["meshfed-export"]
    assert gw["metadata"]["labels"]["federation.meshfed.io/role"] == "export"
    assert gw["spec"]["selector"] == {"istio": "eastwestgateway"}
    assert gw["spec"]["servers"] == [{"port": {"number": 15443, "name": "tls", "protocol": "TLS"},
                                      "tls": {"mode": "AUTO_PASSTHROUGH"},
                                      "hosts": ["bar.xyz.svc.cluster-b.local"]}]


def test_no_gateway_without_public_services_or_peers(a, b):
    quiet = card("cluster-b", services=[])
    assert not by_kind(plan(quiet, [a]), "Gateway")
    assert not by_kind(plan(b, []), "Gateway")
    assert by_kind(plan(b, [], unreachable=["cluster-a"]), "Gateway")  # peers still exist


def test_a_cluster_that_publishes_its_metadata_exports_without_any_peer(a, b):
    """Peers import from the published metadata before (or without) being in this inventory: the gateway routes."""
    gw = by_kind(plan(b, [], published=True), "Gateway")["meshfed-export"]
    assert gw["spec"]["servers"][0]["hosts"] == ["bar.xyz.svc.cluster-b.local"]
    assert not by_kind(plan(card("cluster-b", services=[]), [], published=True), "Gateway")
    assert not by_kind(plan(b, [], published=True, export=False), "Gateway")


def test_three_clusters_each_import_the_others():
    cards = [card(n) for n in ("cluster-a", "cluster-b", "cluster-c")]
    for local in cards:
        peers = [c for c in cards if c is not local]
        hosts = sorted(o["spec"]["hosts"][0] for o in plan(local, peers)["objects"] if o["kind"] == "ServiceEntry")
        assert hosts == sorted(p["public_services"][0]["hostname"] for p in peers)


def test_unreachable_peers_get_nothing_and_are_preserved(a, b):
    result = plan(a, [], unreachable=["cluster-b"])
    assert [o["kind"] for o in result["objects"]] == ["Gateway"]
    assert result["preserve_peers"] == ["cluster-b"] and result["ca_entries"] == []


def _problems(local, peers, **kw):
    with pytest.raises(PlanError) as err:
        plan(local, peers, **kw)
    return str(err.value)


def test_hostname_clash_between_peers_names_both():
    a = card("cluster-a")
    b = card("cluster-b", services=BAR, domain="shared.local")
    c = card("cluster-c", services=[("xyz", "bar", [("http", 80, "HTTP")])], domain="shared.local")
    msg = _problems(a, [b, c])
    assert "hostname bar.xyz.svc.shared.local is exported by both cluster-b (ports http/8080,grpc-api/9090) " \
           "and cluster-c (ports http/80), with conflicting ports" in msg
    assert msg.startswith("cluster-a: ")


def test_peer_hostname_served_locally_is_refused(a, b):
    msg = _problems(a, [b], local_hostnames={"bar.xyz.svc.cluster-b.local"})
    assert "peer cluster-b exports bar.xyz.svc.cluster-b.local" in msg and "local cluster serves" in msg


def test_same_trust_domain_is_refused(a):
    twin = card("cluster-b")
    twin["trust_domain"] = "cluster-a.local"
    assert "has trust domain cluster-a.local, the same as cluster-a (local)" in _problems(a, [twin])


@pytest.mark.parametrize("mutate, expected", [
    (lambda c: c["gateway"].update(addresses=[]), "field gateway.addresses: the gateway has no address"),
    (lambda c: c["gateway"].update(port=0), "field gateway.port: 0 is not a port number"),
    (lambda c: c["public_services"][0]["ports"][0].update(number=70000), "70000 is not a port number"),
    (lambda c: c["public_services"][0]["ports"][0].update(number="80"), "'80' is not a port number"),
    (lambda c: c["public_services"][0]["ports"][0].update(protocol="UDP"), "protocol 'UDP' is not one that crosses"),
    (lambda c: c.update(name="Cluster_B"), "'Cluster_B' is not a valid cluster name"),
    (lambda c: c.update(root_cas=[]), "field root_cas: no root CA certificate"),
])
def test_invalid_peer_cards_are_refused_naming_the_field(a, b, mutate, expected):
    mutate(b)
    assert expected in _problems(a, [b])


def test_duplicate_peer_and_self_as_peer(a, b):
    assert "peer cluster-b is listed twice" in _problems(a, [b, b])
    assert "listed as its own peer" in _problems(a, [a])
    assert "both gathered and unreachable" in _problems(a, [b], unreachable=["cluster-b"])


def test_object_name_is_a_stable_dns_label():
    long = object_name("meshfed", "cluster-b", "a-very-long-namespace-name-for-testing", "and-a-long-service-name")
    assert len(long) <= 63 and long == object_name("meshfed", "cluster-b", "a-very-long-namespace-name-for-testing",
                                                   "and-a-long-service-name")
    assert long != object_name("meshfed", "cluster-b", "a-very-long-namespace-name-for-testing", "and-a-long-service-nam3")
    assert object_name("meshfed", "Cluster.B", "x") == "meshfed-cluster-b-x"


def config_hash(obj):
    """The hash new_object gives ``obj`` (on a copy of its metadata)."""
    metadata = dict(obj["metadata"], annotations=dict(obj["metadata"]["annotations"]))
    return new_object(obj["kind"], "v1", metadata, obj["spec"])["metadata"]["annotations"][HASH_ANNOTATION]


def test_config_hash_follows_spec_and_labels_only(a, b):
    se = plan(a, [b])["objects"][1]
    h = config_hash(se)
    assert se["metadata"]["annotations"][HASH_ANNOTATION] == h
    se["metadata"]["annotations"]["other"] = "x"
    assert config_hash(se) == h
    se["spec"]["ports"][0]["number"] = 8081
    assert config_hash(se) != h
