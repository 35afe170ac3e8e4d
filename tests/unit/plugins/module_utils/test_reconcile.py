import json

import yaml

import pytest

from ansible_collections.meshfed.istio.plugins.module_utils.common.errors import K8sError
from ansible_collections.meshfed.istio.plugins.module_utils.plan.planner import plan
from ansible_collections.meshfed.istio.plugins.module_utils.reconcile.reconciler import (
    MANAGED_CA_ANNOTATION,
    Reconciler,
    contains,
    is_owned,
    trimmed,
)

from ...cards import card
from ...fakes import FakeClient, cluster_state


def test_contains_is_subset_for_dicts_and_exact_for_lists():
    assert contains({"a": 1, "b": {"c": 2, "d": 3}}, {"b": {"c": 2}})
    assert not contains({"a": [1, 2]}, {"a": [1]})
    assert not contains({"a": {"c": 2}}, {"a": {"c": 3}})
    assert contains([{"x": 1, "y": 2}], [{"x": 1}])


def test_is_owned_needs_both_labels():
    labels = {"app.kubernetes.io/managed-by": "meshfed.istio", "federation.meshfed.io/cluster": "cluster-a"}
    assert is_owned({"metadata": {"labels": labels}}, "cluster-a")
    assert not is_owned({"metadata": {"labels": labels}}, "cluster-b")
    assert not is_owned({"metadata": {"labels": {"team": "x"}}}, "cluster-a")


def test_trimmed_drops_server_bookkeeping():
    obj = {"metadata": {"name": "x", "managedFields": [1], "resourceVersion": "5", "uid": "u"}, "status": {}, "spec": {}}
    assert trimmed(obj) == {"metadata": {"name": "x"}, "spec": {}}


def converge(client, desired, check_mode=False):
    rec = Reconciler(client, "cluster-a", "istio-system", check_mode=check_mode, want_diff=True)
    rec.converge(desired)
    return rec


def as_existing(obj, rv="1"):
    out = json.loads(json.dumps(obj))
    out["metadata"]["resourceVersion"] = rv
    return out


@pytest.fixture
def desired():
    return plan(card("cluster-a", services=[]), [card("cluster-b")])


def test_first_run_applies_everything_and_patches_trust(desired):
    client = cluster_state()
    rec = converge(client, desired)
    applied = [r[1] for r in client.requests if r[0] == "apply"]
    assert "/apis/meshfed.io/v1alpha1/istiofederations/cluster-b" in applied
    assert "/apis/meshfed.io/v1alpha1/istiofederations/cluster-b/status" in applied
    assert "/apis/networking.istio.io/v1/namespaces/istio-system/serviceentries/meshfed-cluster-b-web-svc-cluster-b-2d487a05" in applied
    (patch,) = [r for r in client.requests if r[0] == "patch"]
    assert patch[2]["body"]["metadata"]["resourceVersion"] == "7"  # optimistic concurrency
    assert "cluster-b.local" in patch[2]["body"]["data"]["mesh"]
    assert rec.changed and len(rec.summary["created"]) == 3


def test_converged_cluster_gets_no_write(desired):
    first = cluster_state()
    rec = converge(first, desired)
    mesh = [r for r in first.requests if r[0] == "patch"][0][2]["body"]
    existing = [as_existing(o) for o in desired["objects"]]
    for obj in existing:
        if obj["kind"] == "IstioFederation":
            obj["status"] = {"metadataCache": dict(desired["statuses"][obj["metadata"]["name"]],
                                                   lastChangeTimestamp="2026-11-24T00:00:00Z")}
    client = cluster_state(existing, mesh=mesh["data"]["mesh"],
                           managed=json.loads(mesh["metadata"]["annotations"][MANAGED_CA_ANNOTATION]))
    rec = converge(client, desired)
    assert not rec.changed
    assert {r[0] for r in client.requests} == {"list", "get"}
    assert rec.summary["unchanged"] == len(desired["objects"])


def test_foreign_object_is_reported_and_never_written(desired):
    se = [o for o in desired["objects"] if o["kind"] == "ServiceEntry"][0]
    foreign = {"kind": "ServiceEntry", "metadata": {"name": se["metadata"]["name"], "namespace": "istio-system",
                                                    "labels": {"team": "payments"}, "resourceVersion": "3"},
               "spec": {"hosts": ["x.example"]}}
    client = cluster_state([foreign])
    rec = converge(client, desired)
    assert rec.summary["conflicts"] == ["ServiceEntry istio-system/%s" % se["metadata"]["name"]]
    assert not [r for r in client.requests if r[0] in ("apply", "delete") and r[1].endswith("/" + se["metadata"]["name"])]
    assert "DestinationRule istio-system/%s" % se["metadata"]["name"] not in rec.summary["created"]
    assert "not managed by meshfed.istio" in rec.warnings[0]


def test_prune_only_owned_objects_of_this_cluster_and_keeps_unreachable_peers():
    old = plan(card("cluster-a", services=[]), [card("cluster-b"), card("cluster-c")])
    existing = [as_existing(o) for o in old["objects"]]
    other_cluster = as_existing(existing[1])
    other_cluster["metadata"]["name"] = "written-for-another-cluster"
    other_cluster["metadata"]["labels"]["federation.meshfed.io/cluster"] = "cluster-z"
    client = cluster_state(existing + [other_cluster])
    now = plan(card("cluster-a", services=[]), [], unreachable=["cluster-c"])
    rec = converge(client, now)
    deleted = sorted(r[1].rsplit("/", 1)[1] for r in client.requests if r[0] == "delete")
    assert deleted == ["cluster-b", "meshfed-cluster-b-web-svc-cluster-b-2d487a05", "meshfed-cluster-b-web-svc-cluster-b-2d487a05"]
    assert sorted(rec.summary["kept_unreachable"]) == [
        "DestinationRule istio-system/meshfed-cluster-c-web-svc-cluster-c-d8343585", "IstioFederation cluster-c",
        "ServiceEntry istio-system/meshfed-cluster-c-web-svc-cluster-c-d8343585"]
    assert all(r[2]["resource_version"] == "1" for r in client.requests if r[0] == "delete")


def test_check_mode_only_dry_runs(desired):
    old = plan(card("cluster-a", services=[]), [card("cluster-c")])
    client = cluster_state([as_existing(o) for o in old["objects"]])
    rec = converge(client, desired, check_mode=True)
    writes = [r for r in client.requests if r[0] in ("apply", "patch")]
    assert writes and all(r[2]["dry_run"] for r in writes)
    assert not [r for r in client.requests if r[0] == "delete"]
    assert rec.changed and len(rec.summary["pruned"]) == 3
    assert rec.diffs  # --diff material for every change


def test_roots_of_unreachable_peers_are_kept_and_reported():
    both = plan(card("cluster-a", services=[]), [card("cluster-b"), card("cluster-c")])
    first = cluster_state()
    converge(first, both)
    body = [r for r in first.requests if r[0] == "patch"][0][2]["body"]
    managed = json.loads(body["metadata"]["annotations"][MANAGED_CA_ANNOTATION])
    client = cluster_state(mesh=body["data"]["mesh"], managed=managed)
    rec = converge(client, plan(card("cluster-a", services=[]), [], unreachable=["cluster-c"]))
    (patch,) = [r for r in client.requests if r[0] == "patch"]
    kept = json.loads(patch[2]["body"]["metadata"]["annotations"][MANAGED_CA_ANNOTATION])
    assert sorted(kept.values()) == ["cluster-c"]  # cluster-b's root removed, cluster-c's kept
    assert rec.summary["trust"]["kept"] == ["%s (cluster-c)" % fp for fp in kept]
    assert [entry.split(" ")[1] for entry in rec.summary["trust"]["removed"]] == ["(cluster-b)"]


def test_blocked_import_prunes_its_own_destination_rule(desired):
    se = [o for o in desired["objects"] if o["kind"] == "ServiceEntry"][0]
    dr = [o for o in desired["objects"] if o["kind"] == "DestinationRule"][0]
    foreign = {"kind": "ServiceEntry", "metadata": {"name": se["metadata"]["name"], "namespace": "istio-system",
                                                    "labels": {"team": "payments"}, "resourceVersion": "3"},
               "spec": {"hosts": ["x.example"]}}
    client = cluster_state([foreign, as_existing(dr)])
    rec = converge(client, desired)
    assert rec.summary["pruned"] == ["DestinationRule istio-system/%s" % dr["metadata"]["name"]]
    assert [r[1] for r in client.requests if r[0] == "delete"] == [
        "/apis/networking.istio.io/v1/namespaces/istio-system/destinationrules/" + dr["metadata"]["name"]]


class Conflicting(FakeClient):
    """A cluster where the first ``conflicts`` writes of ``verb`` meet a concurrent change (HTTP 409)."""

    def __init__(self, base, verb, conflicts):
        super().__init__(base.objects, base.lists, cluster="cluster-a")
        self.verb, self.conflicts = verb, conflicts

    def _log(self, verb, path, extra=None):
        super()._log(verb, path, extra)
        if verb == self.verb and self.conflicts:
            self.conflicts -= 1
            raise K8sError("conflict", status=409, reason="Conflict", cluster="cluster-a")


def test_mesh_config_conflict_is_re_read_and_merged_again(desired):
    client = Conflicting(cluster_state(), "patch", conflicts=2)
    rec = converge(client, desired)
    assert [r[0] for r in client.requests if r[0] in ("get", "patch")] == ["get", "patch"] * 3
    assert rec.changed and rec.summary["trust"]["added"]


def test_mesh_config_that_keeps_changing_fails_after_five_attempts(desired):
    client = Conflicting(cluster_state(), "patch", conflicts=5)
    with pytest.raises(K8sError) as err:
        converge(client, desired)
    assert err.value.status == 409 and [r[0] for r in client.requests].count("patch") == 5


def test_prune_conflict_is_left_for_the_next_run(desired):
    old = [as_existing(o) for o in desired["objects"]]
    client = Conflicting(cluster_state(old), "delete", conflicts=1)
    rec = converge(client, plan(card("cluster-a", services=[]), []))
    assert len(rec.summary["pruned"]) == 2 and [r[0] for r in client.requests].count("delete") == 3
    assert [w for w in rec.warnings if "changed while pruning it; left for the next run" in w] == [
        "cluster-a: ServiceEntry istio-system/meshfed-cluster-b-web-svc-cluster-b-2d487a05 changed while pruning it; "
        "left for the next run"]


# -- real installs: addresses held, other Gateways, revisions, installer reverts, values mode -------------
def test_held_addresses_and_other_gateways_come_from_the_listing(desired):
    client = cluster_state()
    converge(client, desired)
    written = [r[2]["body"] for r in client.requests if r[0] == "apply" and r[2]["body"]["kind"] != "IstioFederation"]
    foreign_gw = {"kind": "Gateway", "metadata": {"name": "cross-network-gateway", "namespace": "istio-system"},
                  "spec": {}}
    client = cluster_state([as_existing(o) for o in written] + [foreign_gw])
    rec = Reconciler(client, "cluster-a", "istio-system")
    existing = rec.list_existing()
    (se,) = [o for o in written if o["kind"] == "ServiceEntry"]
    assert rec.held_addresses(existing) == {se["spec"]["hosts"][0]: se["spec"]["addresses"][0]}
    assert [g["metadata"]["name"] for g in rec.other_gateways(existing)] == ["cross-network-gateway"]
    # every kind is listed cluster-wide, once
    assert [r[1] for r in client.requests if r[0] == "list"] == [
        "/apis/meshfed.io/v1alpha1/istiofederations", "/apis/networking.istio.io/v1/destinationrules",
        "/apis/networking.istio.io/v1/serviceentries", "/apis/networking.istio.io/v1/gateways"]


def test_trust_goes_to_the_revisions_configmap(desired):
    client = cluster_state()
    client.objects["/api/v1/namespaces/istio-system/configmaps/istio-canary"] = client.objects.pop(
        "/api/v1/namespaces/istio-system/configmaps/istio")
    Reconciler(client, "cluster-a", "istio-system", mesh_configmap="istio-canary").converge(desired)
    (patch,) = [r for r in client.requests if r[0] == "patch"]
    assert patch[1] == "/api/v1/namespaces/istio-system/configmaps/istio-canary"


def test_installer_revert_is_reported_and_restored(desired):
    first = cluster_state()
    converge(first, desired)
    (patch,) = [r for r in first.requests if r[0] == "patch"]
    managed = json.loads(patch[2]["body"]["metadata"]["annotations"][MANAGED_CA_ANNOTATION])
    # helm upgrade: the mesh text is rendered again without our entries, the annotation stays
    client = cluster_state(mesh="trustDomain: cluster-a.local\n", managed=managed)
    rec = converge(client, desired)
    assert rec.summary["trust"]["reverted"] == ["%s (cluster-b)" % fp for fp in managed]
    (warning,) = [w for w in rec.warnings if "were gone" in w]
    assert warning.startswith("cluster-a: the roots of cluster-b") and "trust_mode: values" in warning
    assert [r for r in client.requests if r[0] == "patch"]  # restored
    again = converge(cluster_state(mesh=patch[2]["body"]["data"]["mesh"], managed=managed), desired)
    assert again.summary["trust"]["reverted"] == [] and not [w for w in again.warnings if "were gone" in w]


def test_values_mode_writes_nothing_to_the_mesh_configmap(desired):
    client = cluster_state()
    rec = Reconciler(client, "cluster-a", "istio-system", trust_mode="values", revision="canary")
    rec.converge(desired)
    assert not [r for r in client.requests if r[0] == "patch"]
    assert rec.trust["in_place"] is False and rec.trust["istio_operator"]["spec"]["revision"] == "canary"
    assert [w for w in rec.warnings if "lacks the peer roots" in w]
    entries = rec.trust["helm_values"]["meshConfig"]["caCertificates"]
    live = cluster_state(mesh=yaml.safe_dump({"trustDomain": "cluster-a.local", "caCertificates": entries}))
    rec = Reconciler(live, "cluster-a", "istio-system", trust_mode="values")
    rec.converge(desired)
    assert rec.trust["in_place"] is True and not [w for w in rec.warnings if "lacks" in w]


def test_installer_revert_met_by_conflicts_is_reported_once(desired):
    first = cluster_state()
    converge(first, desired)
    (patch,) = [r for r in first.requests if r[0] == "patch"]
    managed = json.loads(patch[2]["body"]["metadata"]["annotations"][MANAGED_CA_ANNOTATION])
    client = Conflicting(cluster_state(mesh="trustDomain: cluster-a.local\n", managed=managed), "patch", conflicts=2)
    rec = converge(client, desired)
    assert [r[0] for r in client.requests].count("patch") == 3
    assert len([w for w in rec.warnings if "were gone" in w]) == 1


def test_local_hostnames_reads_services_only_when_a_peer_host_is_under_the_local_domain():
    client = FakeClient(lists={"/api/v1/services": [{"metadata": {"name": "bar", "namespace": "xyz"}},
                                                    {"metadata": {"name": "web", "namespace": "shop"}}]})
    rec = Reconciler(client, "cluster-a", "istio-system")
    assert rec.local_hostnames("cluster.local", {"bar.xyz.svc.cluster-b.local"}) == set()
    assert client.requests == []  # distinct cluster domains: nothing can clash, nothing is read
    hosts = {"bar.xyz.svc.cluster.local", "api.other.svc.cluster.local", "bar.xyz.svc.cluster-b.local"}
    assert rec.local_hostnames("cluster.local", hosts) == {"bar.xyz.svc.cluster.local"}
    assert client.requests == [("list", "/api/v1/services", "metadata only")]
