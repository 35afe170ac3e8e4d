"""Explicit membership. The IstioFederation objects on a cluster are its record of who its
peers are; a peer merely absent from a run (--limit, an AWX job slice, a narrower inventory) is kept
and reported as "not in this run"; only intent removes: a host marked `meshfed_state: absent` (it
cleans itself and every peer cleans it) or the explicit prune switch `meshfed_prune_absent`.
Everything is read back from real API servers."""

import pytest

from tests.integration.ansible_run import run_playbook
from tests.lab import kubeapi
from tests.lab.inventory import write_inventory

pytestmark = pytest.mark.lab


def svc(name):
    return "svc-%s.web.svc.%s.local" % (name, name)


def state(cluster):
    """What a cluster holds of the federation: peers, imported hostnames, trusted roots, export hosts."""
    gw = kubeapi.gateways(cluster).get("meshfed-export")
    return {
        "federations": set(kubeapi.federations(cluster)),
        "imports": set(kubeapi.se_by_host(cluster)),
        "trusted": kubeapi.trusted(cluster),
        "export": sorted(h for s in gw["spec"]["servers"] for h in s["hosts"]) if gw else None,
    }


def full_mesh(clusters):
    for c in clusters:
        peers = [p for p in clusters if p is not c]
        assert set(kubeapi.federations(c)) == {p.name for p in peers}
        assert set(kubeapi.se_by_host(c)) == {svc(p.name) for p in peers}
        assert kubeapi.trusted(c) == {kubeapi.root_pem(p).strip(): ["%s.local" % p.name] for p in peers}


def summaries(run, host):
    return [r["summary"] for r in run.results("federation", host) if r.get("summary")]


@pytest.fixture(scope="module")
def trio(lab_clusters, tmp_path_factory):
    """Three fresh clusters federated with each other by a full run, shared by this module's tests in
    order: the runs that must remove nothing first, then leaving (which re-joins at its end), then the
    prune switch (which removes cluster-e from the others for good)."""
    clusters = lab_clusters(["cluster-c", "cluster-d", "cluster-e"])
    tmp_path = tmp_path_factory.mktemp("membership")
    inv = write_inventory(clusters, tmp_path / "inventory.yml")
    run = run_playbook(inv)
    assert run.rc == 0, run
    full_mesh(clusters)
    return {"clusters": clusters, "inventory": inv, "dir": tmp_path,
            "before": {c.name: state(c) for c in clusters}}


def assert_nothing_removed(trio):
    for c in trio["clusters"]:
        assert state(c) == trio["before"][c.name], c.name


def test_limit_run_removes_nothing(trio):
    c, d, e = trio["clusters"]
    run = run_playbook(trio["inventory"], "--limit", "cluster-c,cluster-d")
    assert run.rc == 0, run
    assert set(run.recap) == {"cluster-c", "cluster-d"}
    assert_nothing_removed(trio)
    for host in ("cluster-c", "cluster-d"):
        (summary,) = summaries(run, host)
        assert summary["not_in_run"] == ["cluster-e"]
        assert summary["pruned"] == []
    again = run_playbook(trio["inventory"], "--limit", "cluster-c,cluster-d")
    assert all(again.changed(h) == 0 for h in ("cluster-c", "cluster-d")), again


def test_two_slice_split_removes_nothing(trio):
    """AWX job slicing: each slice's inventory holds a part of the hosts."""
    c, d, e = trio["clusters"]
    slice1 = write_inventory([c, d], trio["dir"] / "slice-1.yml")
    slice2 = write_inventory([e], trio["dir"] / "slice-2.yml")
    for inv, hosts, absent in ((slice1, ("cluster-c", "cluster-d"), ["cluster-e"]),
                               (slice2, ("cluster-e",), ["cluster-c", "cluster-d"])):
        run = run_playbook(inv)
        assert run.rc == 0, run
        for host in hosts:
            (summary,) = summaries(run, host)
            assert summary["not_in_run"] == absent, (host, summary)
            assert summary["pruned"] == [] and summary["trust"]["removed"] == []
        assert_nothing_removed(trio)
    # and the full inventory afterwards has nothing to do
    again = run_playbook(trio["inventory"])
    assert again.rc == 0 and all(again.changed(cl.name) == 0 for cl in trio["clusters"]), again


def test_narrower_inventory_removes_nothing_and_says_so(trio):
    c, d, e = trio["clusters"]
    narrower = write_inventory([c, d], trio["dir"] / "narrower.yml")
    run = run_playbook(narrower)
    assert run.rc == 0, run
    assert_nothing_removed(trio)
    assert "not in this run" in run.stdout and "cluster-e" in run.stdout


def test_host_marked_absent_is_cleaned_on_itself_and_every_peer(trio):
    c, d, e = trio["clusters"]
    leaving = write_inventory(trio["clusters"], trio["dir"] / "leaving.yml",
                              extra_hostvars={"cluster-e": {"meshfed_state": "absent"}})
    run = run_playbook(leaving)
    assert run.rc == 0, run
    # the peers forget cluster-e: its IstioFederation, imports and root
    for cl, peer in ((c, d), (d, c)):
        assert state(cl)["federations"] == {peer.name}
        assert state(cl)["imports"] == {svc(peer.name)}
        assert state(cl)["trusted"] == {kubeapi.root_pem(peer).strip(): ["%s.local" % peer.name]}
        (summary,) = summaries(run, cl.name)
        assert summary["left"] == ["cluster-e"]
    # cluster-e removes its own imports, export Gateway, peer roots and records of its peers
    assert state(e) == {"federations": set(), "imports": set(), "trusted": {}, "export": None}
    assert kubeapi.destination_rules(e) == {}
    # converged: the same run again changes nothing
    again = run_playbook(leaving)
    assert again.rc == 0 and all(again.changed(cl.name) == 0 for cl in trio["clusters"]), again
    # re-joining is removing the mark
    back = run_playbook(trio["inventory"])
    assert back.rc == 0, back
    full_mesh(trio["clusters"])


def test_prune_switch_removes_known_peers_missing_from_the_inventory(trio):
    c, d, e = trio["clusters"]
    narrower = write_inventory([c, d], trio["dir"] / "narrower.yml")
    # --limit is not absence from the inventory: with the switch on, a limited-out member is still kept
    limited = run_playbook(trio["inventory"], "--limit", "cluster-c", "-e", "meshfed_prune_absent=true")
    assert limited.rc == 0, limited
    assert_nothing_removed(trio)
    run = run_playbook(narrower, "-e", "meshfed_prune_absent=true")
    assert run.rc == 0, run
    for cl, peer in ((c, d), (d, c)):
        assert state(cl)["federations"] == {peer.name}
        assert state(cl)["imports"] == {svc(peer.name)}
    # cluster-e was not in the run: untouched
    assert state(e) == trio["before"]["cluster-e"]
