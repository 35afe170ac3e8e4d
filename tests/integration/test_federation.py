"""The seed scenario and its variations, end to end through ansible-playbook, against real
kube-apiserver lab clusters with Istio's CRDs. Every assertion reads the API servers' state."""

import pytest
import yaml

from tests.integration.ansible_run import run_playbook
from tests.integration.traffic import assert_traffic, check_traffic
from tests.lab import kubeapi
from tests.lab import seed as lab_seed
from tests.lab.inventory import write_inventory

pytestmark = pytest.mark.lab

BAR = "bar.xyz.svc.cluster-b.local"
FOO = "foo.abc.svc.cluster-a.local"


@pytest.fixture(scope="module")
def pair(lab_clusters, tmp_path_factory):
    """cluster-a and cluster-b, seeded with the seed scenario, federated once."""
    clusters = lab_clusters(["cluster-a", "cluster-b"])
    a, b = clusters
    seeded_mesh = {c.name: kubeapi.mesh_text(c) for c in clusters}
    inv = tmp_path_factory.mktemp("pair") / "inventory.yml"
    write_inventory(clusters, inv)
    first = run_playbook(inv)
    assert first.rc == 0, first
    return {"a": a, "b": b, "inventory": inv, "first": first, "seeded_mesh": seeded_mesh}


def _without_ca(text):
    doc = yaml.safe_load(text) or {}
    doc.pop("caCertificates", None)
    return doc


def test_seed_scenario_imports_bar_into_cluster_a(pair):
    a, b = pair["a"], pair["b"]
    se = kubeapi.se_by_host(a)[BAR]
    spec = se["spec"]
    assert spec["location"] == "MESH_INTERNAL"
    assert spec["resolution"] == "STATIC"
    assert {p["name"]: (p["number"], p["protocol"]) for p in spec["ports"]} == {
        "http": (8080, "HTTP"), "grpc-api": (9090, "GRPC")}
    assert len(spec["endpoints"]) == 1
    endpoint = spec["endpoints"][0]
    assert endpoint["address"] == kubeapi.gateway_ip(b)
    assert endpoint["ports"] == {"http": 15443, "grpc-api": 15443}
    assert endpoint["labels"] == {"security.istio.io/tlsMode": "istio"}
    assert "network" not in endpoint
    labels = se["metadata"]["labels"]
    assert labels["app.kubernetes.io/managed-by"] == "meshfed.istio"
    assert labels["federation.meshfed.io/peer"] == "cluster-b"
    # the private Service of cluster-b is not imported
    assert not [h for h in kubeapi.se_by_host(a) if h.startswith("secret.")]
    # mTLS to the peer gateway
    dr = kubeapi.destination_rules(a)[se["metadata"]["name"]]
    assert dr["spec"] == {"host": BAR, "trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL"}}, "exportTo": ["*"]}


def test_seed_scenario_traffic_flows_both_ways(pair):
    """Istio's own config generation (tests/meshsim) routes a->bar and b->foo over mTLS, hop by hop."""
    assert_traffic([pair["a"], pair["b"]], "cluster-a", "cluster-b", BAR, 8080)
    assert_traffic([pair["a"], pair["b"]], "cluster-a", "cluster-b", BAR, 9090)
    assert_traffic([pair["a"], pair["b"]], "cluster-b", "cluster-a", FOO, 80)


def test_seed_scenario_records_peer_in_istiofederation(pair):
    a, b = pair["a"], pair["b"]
    fed = kubeapi.federations(a)["cluster-b"]
    assert fed["spec"]["trustDomain"] == "cluster-b.local"
    assert fed["spec"]["ingressGateways"] == [{"address": kubeapi.gateway_ip(b), "port": 15443}]
    cache = fed["status"]["metadataCache"]
    assert cache["public"]["trustDomain"] == "cluster-b.local"
    assert cache["public"]["rootCA"][0]["pem"].strip() == kubeapi.root_pem(b).strip()
    assert [s["hostname"] for s in cache["private"]["publicServices"]] == [BAR]
    assert cache["lastChangeTimestamp"]
    assert set(kubeapi.federations(b)) == {"cluster-a"}


def test_seed_scenario_trust_is_mutual_and_scoped(pair):
    a, b = pair["a"], pair["b"]
    assert kubeapi.trusted(a) == {kubeapi.root_pem(b).strip(): ["cluster-b.local"]}
    assert kubeapi.trusted(b) == {kubeapi.root_pem(a).strip(): ["cluster-a.local"]}


def test_mesh_config_other_settings_and_comments_unchanged(pair):
    for c in (pair["a"], pair["b"]):
        before = pair["seeded_mesh"][c.name]
        after = kubeapi.mesh_text(c)
        assert _without_ca(after) == _without_ca(before)
        # byte-for-byte: the seeded text is still there, the caCertificates block was appended
        assert after.startswith(before.rstrip("\n")), after
        for line in before.splitlines():
            if line.lstrip().startswith("#"):
                assert line in after.splitlines()


def test_export_gateway_lists_only_public_hostnames(pair):
    gw = kubeapi.gateways(pair["b"])["meshfed-export"]["spec"]
    assert gw["selector"] == {"istio": "eastwestgateway"}
    (server,) = gw["servers"]
    assert server["port"]["number"] == 15443
    assert server["tls"] == {"mode": "AUTO_PASSTHROUGH"}
    assert server["hosts"] == [BAR]
    assert kubeapi.gateways(pair["a"])["meshfed-export"]["spec"]["servers"][0]["hosts"] == [FOO]


def test_cluster_b_imports_cluster_a(pair):
    se = kubeapi.se_by_host(pair["b"])[FOO]
    assert se["spec"]["endpoints"][0]["address"] == kubeapi.gateway_ip(pair["a"])


def test_second_run_changes_nothing(pair):
    run = run_playbook(pair["inventory"])
    assert run.rc == 0, run
    assert run.recap["cluster-a"]["changed"] == 0, run
    assert run.recap["cluster-b"]["changed"] == 0, run


def test_check_mode_reports_and_writes_nothing(pair):
    a, b = pair["a"], pair["b"]
    lab_seed.set_public(b, "xyz", "secret", True)
    try:
        before = {n: o["metadata"]["resourceVersion"] for n, o in kubeapi.service_entries(a).items()}
        run = run_playbook(pair["inventory"], "--check", "--diff")
        assert run.rc == 0, run
        assert run.recap["cluster-a"]["changed"] == 1, run
        assert "secret.xyz.svc.cluster-b.local" in run.stdout  # the diff shows the would-be ServiceEntry
        after = {n: o["metadata"]["resourceVersion"] for n, o in kubeapi.service_entries(a).items()}
        assert after == before
        assert "secret.xyz.svc.cluster-b.local" not in kubeapi.se_by_host(a)
    finally:
        lab_seed.set_public(b, "xyz", "secret", False)
    assert run_playbook(pair["inventory"]).recap["cluster-a"]["changed"] == 0


def test_unlabelled_service_is_removed_then_restored(pair):
    a, b = pair["a"], pair["b"]
    lab_seed.set_public(b, "xyz", "bar", False)
    try:
        run = run_playbook(pair["inventory"])
        assert run.rc == 0, run
        assert BAR not in kubeapi.se_by_host(a)
        assert not [d for d in kubeapi.destination_rules(a).values() if d["spec"]["host"] == BAR]
        assert "cluster-b" in kubeapi.federations(a)  # still a peer, just exports nothing
        assert "meshfed-export" not in kubeapi.gateways(b)  # nothing left to export
        assert kubeapi.trusted(a) == {kubeapi.root_pem(b).strip(): ["cluster-b.local"]}
        # the path is gone: a's sidecar knows no such host, and b's gateway routes no such SNI
        gone = check_traffic([a, b], "cluster-a", "cluster-b", BAR, 8080)
        assert gone.failed == ["dns", "client", "gateway"], gone
        assert "is not a service this sidecar knows" in gone.problems("client")[0], gone
    finally:
        lab_seed.set_public(b, "xyz", "bar", True)
    run = run_playbook(pair["inventory"])
    assert run.rc == 0, run
    assert BAR in kubeapi.se_by_host(a)
    assert_traffic([a, b], "cluster-a", "cluster-b", BAR, 8080)


def test_foreign_object_with_same_name_is_left_untouched(pair):
    a = pair["a"]
    name = kubeapi.se_by_host(a)[BAR]["metadata"]["name"]
    kubeapi.delete_service_entry(a, name)
    foreign_spec = {"hosts": ["someone-else.example"], "location": "MESH_EXTERNAL", "resolution": "DNS",
                    "ports": [{"number": 443, "name": "tls", "protocol": "TLS"}]}
    kubeapi.create_service_entry(a, name, foreign_spec, labels={"team": "payments"})
    try:
        rv = kubeapi.get_service_entry(a, name)["metadata"]["resourceVersion"]
        run = run_playbook(pair["inventory"])
        assert run.rc == 0, run
        obj = kubeapi.get_service_entry(a, name)
        assert obj["metadata"]["resourceVersion"] == rv
        assert obj["spec"] == foreign_spec
        assert "ServiceEntry istio-system/%s exists and is not managed by meshfed.istio" % name in run.output
        # the import is blocked as a whole: its DestinationRule is pruned, not left steering someone's host
        assert name not in kubeapi.destination_rules(a)
        # a second run leaves it alone again and reports it again
        run = run_playbook(pair["inventory"])
        assert kubeapi.get_service_entry(a, name)["metadata"]["resourceVersion"] == rv
        assert "not managed by meshfed.istio" in run.output
    finally:
        kubeapi.delete_service_entry(a, name)
    run = run_playbook(pair["inventory"])
    assert run.rc == 0, run
    assert kubeapi.se_by_host(a)[BAR]["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "meshfed.istio"
    assert name in kubeapi.destination_rules(a)


@pytest.fixture(scope="module")
def trio(lab_clusters, tmp_path_factory):
    clusters = lab_clusters(["cluster-c", "cluster-d", "cluster-e"])
    inv = tmp_path_factory.mktemp("trio") / "inventory.yml"
    write_inventory(clusters, inv)
    return {"clusters": clusters, "inventory": inv, "dir": inv.parent}


def test_three_clusters_import_each_other(trio):
    clusters = trio["clusters"]
    run = run_playbook(trio["inventory"])
    assert run.rc == 0, run
    for c in clusters:
        peers = [p for p in clusters if p is not c]
        expected = {"svc-%s.web.svc.%s.local" % (p.name, p.name) for p in peers}
        assert set(kubeapi.se_by_host(c)) == expected
        assert set(kubeapi.federations(c)) == {p.name for p in peers}
        assert kubeapi.trusted(c) == {kubeapi.root_pem(p).strip(): ["%s.local" % p.name] for p in peers}
        for p in peers:  # every ordered pair: traffic flows
            assert_traffic(clusters, c.name, p.name, "svc-%s.web.svc.%s.local" % (p.name, p.name), 80)
    again = run_playbook(trio["inventory"])
    assert all(again.recap[c.name]["changed"] == 0 for c in clusters), again


def test_serial_batches_still_see_every_peer(trio):
    c, d, e = trio["clusters"]
    assert run_playbook(trio["inventory"]).rc == 0
    lab_seed.set_public(c, "web", "svc-cluster-c", False)
    try:
        run = run_playbook(trio["inventory"], "-e", "meshfed_serial=1")
        assert run.rc == 0, run
        # each batch of one applied with the cards of all members, gathered before the first batch
        assert [r["host"] for r in run.results("federation")] == ["cluster-c", "cluster-d", "cluster-e"]
        for cl in (d, e):
            assert "svc-cluster-c.web.svc.cluster-c.local" not in kubeapi.se_by_host(cl)
            assert set(kubeapi.federations(cl)) == {p.name for p in (c, d, e) if p is not cl}
    finally:
        lab_seed.set_public(c, "web", "svc-cluster-c", True)
    assert run_playbook(trio["inventory"], "-e", "meshfed_serial=2").rc == 0
    assert "svc-cluster-c.web.svc.cluster-c.local" in kubeapi.se_by_host(d)


def test_role_included_in_one_play(trio):
    playbook = trio["dir"] / "own-pipeline.yml"
    playbook.write_text(
        "- hosts: meshfed_clusters\n"
        "  gather_facts: false\n"
        "  tasks:\n"
        "    - name: Federate as part of an existing pipeline\n"
        "      ansible.builtin.include_role:\n"
        "        name: meshfed.istio.federate\n")
    run = run_playbook(trio["inventory"], playbook=playbook)
    assert run.rc == 0, run
    assert all(run.recap[cl.name]["changed"] == 0 for cl in trio["clusters"]), run
    assert len(run.results("cluster_info")) == 3 and len(run.results("federation")) == 3
