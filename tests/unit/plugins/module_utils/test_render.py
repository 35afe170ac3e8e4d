"""Render mode (GitOps delivery): the plan as files, idempotent, removing only what the collection wrote."""

import os

import pytest
import yaml

from ansible_collections.meshfed.istio.plugins.module_utils.common.errors import MeshfedError
from ansible_collections.meshfed.istio.plugins.module_utils.plan.planner import plan
from ansible_collections.meshfed.istio.plugins.module_utils.plan.trustvalues import render as trust_render
from ansible_collections.meshfed.istio.plugins.module_utils.plan import kinds
from ansible_collections.meshfed.istio.plugins.module_utils.render import layout
from ansible_collections.meshfed.istio.plugins.module_utils.render.deliver import Previous, Rendering

from ...cards import card

NOW, LATER = "2026-12-04T20:00:00Z", "2026-12-05T20:00:00Z"


def render(directory, local, peers, check=False, diff=False, now=NOW, unreachable=(), existing=None, owned=None):
    previous = Previous(str(directory), local["name"])
    desired = plan(local, peers, unreachable=list(unreachable))
    objects, conflicts = kinds.deliverable(desired, existing or {}, owned or (lambda obj: True))
    out = Rendering(str(directory), local["name"], previous)
    out.plan(out.desired_files(desired, objects, trust_render(desired["ca_entries"], {}), now), want_diff=diff)
    if out.changed and not check:
        out.write()
    return out, desired, conflicts


def tree(directory):
    return dict((str(p.relative_to(directory)), p.read_bytes()) for p in sorted(directory.rglob("*")) if p.is_file())


def test_first_render_writes_one_manifest_per_object_a_kustomization_values_and_state(tmp_path, a, b):
    out, desired = render(tmp_path, a, [b])[:2]
    files = tree(tmp_path)
    manifests = sorted(p for p in files if p.endswith(".yaml") and "/" not in p and p != "kustomization.yaml"
                       and not p.startswith("."))
    assert len(manifests) == len(desired["objects"]) == 4  # IstioFederation, ServiceEntry, DestinationRule, Gateway
    # each file is the object apply mode sends, byte for byte after parsing
    by_path = dict((layout.manifest_path(obj), obj) for obj in desired["objects"])
    for path in manifests:
        assert yaml.safe_load(files[path]) == by_path[path]
    assert "istiofederation-cluster-b.yaml" in manifests and "gateway-istio-system-meshfed-export.yaml" in manifests
    assert yaml.safe_load(files["kustomization.yaml"])["resources"] == manifests
    values = yaml.safe_load(files[layout.HELM_VALUES])
    assert values["meshConfig"]["caCertificates"][0]["trustDomains"] == ["cluster-b.local"]
    assert yaml.safe_load(files[layout.ISTIO_OPERATOR])["kind"] == "IstioOperator"
    state = yaml.safe_load(files[layout.STATE_FILE])
    assert state["cluster"] == "cluster-a" and set(state["files"]) == set(files) - {layout.STATE_FILE}
    cache = state["status"]["cluster-b"]["metadataCache"]
    assert cache["lastChangeTimestamp"] == NOW and cache["public"]["trustDomain"] == "cluster-b.local"
    assert out.changed and sorted(out.summary["files"]["written"]) == sorted(files)
    assert len(out.summary["created"]) == 4 and out.summary["unchanged"] == 0


def test_rerender_with_nothing_changed_writes_nothing(tmp_path, a, b):
    render(tmp_path, a, [b])
    before = dict((p, (p.stat().st_mtime_ns, p.read_bytes())) for p in tmp_path.rglob("*") if p.is_file())
    out = render(tmp_path, a, [b], now=LATER)[0]
    assert not out.changed and out.summary["files"]["written"] == [] and out.summary["files"]["removed"] == []
    assert out.summary["unchanged"] == 4
    assert dict((p, (p.stat().st_mtime_ns, p.read_bytes())) for p in tmp_path.rglob("*") if p.is_file()) == before


def test_a_service_gone_removes_its_files_only_and_keeps_files_the_collection_did_not_write(tmp_path, a, b):
    render(tmp_path, a, [b])
    (tmp_path / "README.md").write_text("team notes\n")
    (tmp_path / "serviceentry-istio-system-mine.yaml").write_text("kind: ServiceEntry\n")
    bar_files = sorted(p.name for p in tmp_path.glob("*-meshfed-cluster-b-xyz-bar-*.yaml"))
    assert len(bar_files) == 2
    b_without_bar = card("cluster-b", services=[])
    out = render(tmp_path, a, [b_without_bar], now=LATER)[0]
    assert sorted(out.summary["files"]["removed"]) == bar_files
    assert sorted(out.summary["pruned"])[0].startswith("DestinationRule istio-system/meshfed-cluster-b-xyz-bar-")
    assert not any((tmp_path / name).exists() for name in bar_files)
    assert (tmp_path / "README.md").read_text() == "team notes\n"
    assert (tmp_path / "serviceentry-istio-system-mine.yaml").exists()
    assert yaml.safe_load((tmp_path / "kustomization.yaml").read_text())["resources"] == [
        "gateway-istio-system-meshfed-export.yaml", "istiofederation-cluster-b.yaml"]
    state = yaml.safe_load((tmp_path / layout.STATE_FILE).read_text())
    cache = state["status"]["cluster-b"]["metadataCache"]
    assert cache["private"]["publicServices"] == [] and cache["lastChangeTimestamp"] == LATER
    assert not any(name in state["files"] for name in bar_files)


def test_check_mode_writes_nothing_and_diff_shows_each_file(tmp_path, a, b):
    render(tmp_path, a, [b])
    before = tree(tmp_path)
    out = render(tmp_path, a, [card("cluster-b", services=[])], check=True, diff=True, now=LATER)[0]
    assert out.changed and tree(tmp_path) == before
    removed = [d for d in out.diffs if d["after"] == ""]
    assert len(removed) == 2 and all("meshfed-cluster-b-xyz-bar-" in d["before_header"] for d in removed)
    assert all(d["before"].startswith("# Rendered by meshfed.istio") for d in removed)
    state_diff = [d for d in out.diffs if d["after_header"].endswith(layout.STATE_FILE)]
    assert len(state_diff) == 1 and "publicServices: []" in state_diff[0]["after"]


def test_a_file_the_collection_did_not_write_is_never_overwritten(tmp_path, a, b):
    (tmp_path / "istiofederation-cluster-b.yaml").write_text("# someone else's\n")
    with pytest.raises(MeshfedError) as err:
        render(tmp_path, a, [b])
    assert err.value.field == "render_dir" and "istiofederation-cluster-b.yaml" in str(err.value)
    assert (tmp_path / "istiofederation-cluster-b.yaml").read_text() == "# someone else's\n"
    assert not (tmp_path / layout.STATE_FILE).exists()


def test_identical_file_without_state_is_taken_over(tmp_path, a, b):
    render(tmp_path, a, [b])
    os.remove(str(tmp_path / layout.STATE_FILE))
    out = render(tmp_path, a, [b])[0]
    assert out.summary["files"]["written"] == [layout.STATE_FILE]


def test_state_of_another_cluster_or_naming_paths_outside_is_refused(tmp_path, a, b):
    render(tmp_path, a, [b])
    with pytest.raises(MeshfedError) as err:
        Previous(str(tmp_path), "cluster-b")
    assert err.value.field == "render_dir" and "'cluster-a'" in str(err.value)
    state = yaml.safe_load((tmp_path / layout.STATE_FILE).read_text())
    state["files"]["../outside.yaml"] = "00"
    (tmp_path / layout.STATE_FILE).write_text(yaml.safe_dump(state))
    with pytest.raises(MeshfedError, match="not a file inside"):
        Previous(str(tmp_path), "cluster-a")


def test_unreachable_peer_keeps_its_files_and_its_cached_status(tmp_path, a, b):
    render(tmp_path, a, [b])
    before = tree(tmp_path)
    status = yaml.safe_load(before[layout.STATE_FILE])["status"]["cluster-b"]
    out = render(tmp_path, a, [], unreachable=["cluster-b"], now=LATER)[0]
    after = tree(tmp_path)
    kept = [p for p in before if "cluster-b" in p and p.endswith(".yaml") and not p.startswith(".")]
    assert len(kept) == 3 and all(after[p] == before[p] for p in kept)
    assert len(out.summary["kept_unreachable"]) == 3
    assert yaml.safe_load(after[layout.STATE_FILE])["status"]["cluster-b"] == status  # the cache survives
    assert "gateway-istio-system-meshfed-export.yaml" in after


def test_previous_render_is_read_back_as_existing_objects_with_status(tmp_path, a, b):
    desired = render(tmp_path, a, [b])[1]
    previous = Previous(str(tmp_path), "cluster-a")
    existing = previous.existing()
    assert sorted(existing) == sorted((o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"])
                                      for o in desired["objects"])
    fed = existing[("IstioFederation", None, "cluster-b")]
    assert fed["status"]["metadataCache"]["public"]["trustDomain"] == "cluster-b.local"


def test_objects_whose_name_someone_else_holds_are_not_rendered(tmp_path, a, b):
    desired = plan(a, [b])
    se = [o for o in desired["objects"] if o["kind"] == "ServiceEntry"][0]
    key = ("ServiceEntry", "istio-system", se["metadata"]["name"])
    foreign = {key: {"kind": "ServiceEntry", "metadata": {"name": key[2], "namespace": key[1], "labels": {}}}}
    conflicts = render(tmp_path, a, [b], existing=foreign, owned=lambda obj: bool(obj["metadata"]["labels"]))[2]
    assert [c["metadata"]["name"] for c in conflicts] == [se["metadata"]["name"]]
    names = tree(tmp_path)
    assert not any(se["metadata"]["name"] in p for p in names)  # neither its ServiceEntry nor DestinationRule
    assert "istiofederation-cluster-b.yaml" in names


def test_next_statuses_move_the_timestamp_only_when_the_cache_changes():
    cache = {"public": {"trustDomain": "b.local"}, "private": {}}
    desired = {"statuses": {"b": cache}, "conditions": {}, "preserve_peers": []}
    first = layout.next_statuses(desired, {}, NOW)
    assert first == {"b": {"metadataCache": dict(cache, lastChangeTimestamp=NOW)}}
    assert layout.next_statuses(desired, first, LATER) == first
    changed = dict(desired, statuses={"b": dict(cache, private={"publicServices": []})})
    assert layout.next_statuses(changed, first, LATER)["b"]["metadataCache"]["lastChangeTimestamp"] == LATER


def test_render_plans_against_its_own_files_and_others_objects_on_the_cluster(tmp_path, a, b):
    from ansible_collections.meshfed.istio.plugins.module_utils.runners import render_existing
    labels = {"app.kubernetes.io/managed-by": "meshfed.istio", "federation.meshfed.io/cluster": "cluster-a"}
    left_by_apply = {"kind": "ServiceEntry", "metadata": {"name": "meshfed-old", "namespace": "istio-system",
                                                          "labels": labels}}
    foreign = {"kind": "Gateway", "metadata": {"name": "cross-network-gateway", "namespace": "istio-system"}}
    on_cluster = {("ServiceEntry", "istio-system", "meshfed-old"): left_by_apply,
                  ("Gateway", "istio-system", "cross-network-gateway"): foreign}
    # first render (no state): starts from what apply mode left, so addresses and members carry over
    first = render_existing(on_cluster, Previous(str(tmp_path), "cluster-a"), "cluster-a")
    assert first == on_cluster
    render(tmp_path, a, [b])
    # later renders: the directory is the record of what this cluster holds; others' objects still count
    later = render_existing(on_cluster, Previous(str(tmp_path), "cluster-a"), "cluster-a")
    assert ("ServiceEntry", "istio-system", "meshfed-old") not in later
    assert later[("Gateway", "istio-system", "cross-network-gateway")] is foreign
    assert ("IstioFederation", None, "cluster-b") in later and len(later) == 5
