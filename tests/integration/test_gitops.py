"""GitOps delivery. ``meshfed_delivery: render`` writes each cluster's federation as manifests
plus a kustomization.yaml; a real client (kubectl built from its Go module at the lab's Kubernetes version,
tests/lab/build_kubectl.sh) applies them the way Argo CD / Flux do (server-side apply, prune by inventory).

Two identical labs (same names, CAs, gateway addresses, Services): one federated by apply mode, one by
render mode + ``kubectl apply --server-side -k``. The clusters must then hold the same objects, object by
object (server fields aside), and the same traffic must pass.
"""

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.collection import REPO
from tests.lab import kubeapi
from tests.integration.ansible_run import run_playbook
from tests.integration.traffic import assert_traffic
from tests.lab import seed as lab_seed
from tests.lab.inventory import write_inventory

pytestmark = pytest.mark.lab

NAMES = ["cluster-a", "cluster-b"]
BAR = "bar.xyz.svc.cluster-b.local"
FOO = "foo.abc.svc.cluster-a.local"
KINDS = {  # plural path of every kind the collection writes
    "IstioFederation": "/apis/meshfed.io/v1alpha1/istiofederations",
    "ServiceEntry": "/apis/networking.istio.io/v1/serviceentries",
    "DestinationRule": "/apis/networking.istio.io/v1/destinationrules",
    "Gateway": "/apis/networking.istio.io/v1/gateways",
}
SERVER_FIELDS = ("managedFields", "resourceVersion", "uid", "creationTimestamp", "generation", "selfLink")
APPLYSET_LABEL = "applyset.kubernetes.io/part-of"  # kubectl's inventory label (Argo CD / Flux add their own)
APPLYSET = "configmaps/meshfed-federation"


def _lab_k8s_version():
    """The lab's Kubernetes version, as tests/lab/build.sh builds it."""
    text = (REPO / "tests" / "lab" / "build.sh").read_text()
    default = text.split('K8S_VERSION="${MESHFED_K8S_VERSION:-', 1)[1].split("}", 1)[0]
    return os.environ.get("MESHFED_K8S_VERSION", default)


@pytest.fixture(scope="session")
def kubectl():
    """kubectl built from k8s.io/kubernetes/cmd/kubectl at the lab's version (cached; built on first use)."""
    proc = subprocess.run(["bash", str(REPO / "tests" / "lab" / "build_kubectl.sh")], check=False,
                          stdout=subprocess.PIPE, text=True)
    assert proc.returncode == 0, "tests/lab/build_kubectl.sh failed (rc=%d)" % proc.returncode
    path = proc.stdout.strip().splitlines()[-1]
    out = subprocess.run([path, "version", "--client", "-o", "json"], check=True, capture_output=True, text=True)
    assert json.loads(out.stdout)["clientVersion"]["gitVersion"] == _lab_k8s_version()
    return path


def _kubectl(kubectl, cluster, *args, env=None, check=True):
    cmd = [kubectl, "--kubeconfig", str(cluster.kubeconfig), "--context", cluster.context] + list(args)
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, env=dict(os.environ, **(env or {})),
                          timeout=120)
    if check:
        assert proc.returncode == 0, "%s\n%s\n%s" % (" ".join(cmd), proc.stdout, proc.stderr)
    return proc


def _apply(kubectl, cluster, directory, prune=False):
    """Apply a rendered directory as a GitOps tool does: server-side apply; with ``prune``, through an ApplySet
    (kubectl's server-side prune: what it applied before and no longer finds in the directory is deleted)."""
    args = ["apply", "--server-side", "--field-manager", "gitops", "-k", str(directory)]
    if prune:
        args += ["--prune", "--applyset", APPLYSET, "-n", "istio-system"]
    return _kubectl(kubectl, cluster, *args, env={"KUBECTL_APPLYSET": "true"} if prune else None)


def _owned(cluster, drop_labels=()):
    """{(kind, namespace, name): object} of everything the collection's labels mark, server fields and status removed."""
    out, statuses = {}, {}
    for kind, path in KINDS.items():
        items = kubeapi.request(cluster, "GET", path,
                                query={"labelSelector": "app.kubernetes.io/managed-by=meshfed.istio"})["items"]
        for obj in items:
            meta = obj["metadata"]
            for key in SERVER_FIELDS:
                meta.pop(key, None)
            for label in drop_labels:
                (meta.get("labels") or {}).pop(label, None)
            obj.setdefault("kind", kind)
            key = (kind, meta.get("namespace"), meta["name"])
            statuses[key] = obj.pop("status", None)
            out[key] = obj
    return out, statuses


def _install_trust(cluster, directory):
    """The Istio install pipeline's step, as Helm renders it: meshConfig.caCertificates from the rendered values
    file into ConfigMap istio key mesh (the lab has no Helm; everything else in the mesh config is kept)."""
    values = yaml.safe_load((Path(directory) / "istio-install" / "istiod-values.yaml").read_text())
    mesh = kubeapi.mesh(cluster)
    mesh["caCertificates"] = values["meshConfig"]["caCertificates"]
    kubeapi.set_mesh_text(cluster, yaml.safe_dump(mesh, sort_keys=False))


def _tree(directory):
    """{relative path: sha256} of every file under ``directory``."""
    root = Path(directory)
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _strip_time(status):
    cache = dict((status or {}).get("metadataCache") or {})
    cache.pop("lastChangeTimestamp", None)
    return cache


def _render(inventory, render_dir, *args):
    return run_playbook(inventory, "-e", "meshfed_delivery=render", "-e", "meshfed_render_dir=%s" % render_dir, *args)


@pytest.fixture(scope="module")
def labs(lab_clusters, kubectl, tmp_path_factory):
    """Apply mode on one lab, render + kubectl on an identical one; the render's trust values installed."""
    work = tmp_path_factory.mktemp("gitops")
    specs = {}
    for name in NAMES:
        specs[name] = dict(lab_seed.default_spec(name), cacerts=lab_seed.make_cacerts(name))
    applied = lab_clusters(NAMES, spec=specs)
    rendered = lab_clusters(NAMES, spec=specs)
    inv_applied = write_inventory(applied, work / "applied" / "inventory.yml")
    inv_rendered = write_inventory(rendered, work / "rendered" / "inventory.yml")
    run = run_playbook(inv_applied)
    assert run.rc == 0, run
    render_dir = work / "gitops-repo" / "clusters"
    before = {c.name: _owned(c)[0] for c in rendered}
    run = _render(inv_rendered, render_dir)
    assert run.rc == 0, run
    first = run
    # render mode wrote nothing to the clusters
    assert {c.name: _owned(c)[0] for c in rendered} == before == {"cluster-a": {}, "cluster-b": {}}
    for cluster in rendered:
        _apply(kubectl, cluster, render_dir / cluster.name)
        _install_trust(cluster, render_dir / cluster.name)
    return {"applied": dict((c.name, c) for c in applied), "rendered": dict((c.name, c) for c in rendered),
            "inv_applied": inv_applied, "inv_rendered": inv_rendered, "dir": render_dir, "first": first}


def test_render_writes_manifests_kustomization_values_and_state(labs):
    tree = _tree(labs["dir"] / "cluster-a")
    kustomization = yaml.safe_load((labs["dir"] / "cluster-a" / "kustomization.yaml").read_text())
    manifests = sorted(p for p in tree if "/" not in p and p not in ("kustomization.yaml", ".meshfed-render.yaml"))
    assert kustomization["kind"] == "Kustomization" and kustomization["resources"] == manifests
    assert "istiofederation-cluster-b.yaml" in manifests and "gateway-istio-system-meshfed-export.yaml" in manifests
    assert {"istio-install/istiod-values.yaml", "istio-install/istio-operator.yaml", ".meshfed-render.yaml"} <= set(tree)
    state = yaml.safe_load((labs["dir"] / "cluster-a" / ".meshfed-render.yaml").read_text())
    assert set(state["files"]) == set(tree) - {".meshfed-render.yaml"}
    assert all(state["files"][p] == tree[p] for p in state["files"])
    (result,) = labs["first"].results("federation", "cluster-a")
    assert result["changed"] is True and result["render_dir"] == str(labs["dir"] / "cluster-a")
    assert sorted(result["summary"]["files"]["written"]) == sorted(tree)
    for name in NAMES:  # render only reads the cluster: GET and LIST requests, nothing else
        (fed,) = labs["first"].results("federation", name)
        assert fed["api_calls"] and set(fed["api_calls"]) <= {"get", "list"}, fed["api_calls"]


def test_kubectl_applied_render_equals_apply_mode_object_by_object(labs):
    for name in NAMES:
        want, want_status = _owned(labs["applied"][name])
        got, got_status = _owned(labs["rendered"][name])
        assert len(want) >= 4  # IstioFederation, ServiceEntry, DestinationRule, Gateway at least
        assert sorted(got) == sorted(want), name
        for key in want:
            assert got[key] == want[key], key
        # the mesh config's trust, once the install pipeline took the values file
        assert kubeapi.trusted(labs["rendered"][name]) == kubeapi.trusted(labs["applied"][name])
        # status: apply mode writes it on the cluster; render mode keeps it in its state file, never applied
        state = yaml.safe_load((labs["dir"] / name / ".meshfed-render.yaml").read_text())
        for key, status in want_status.items():
            if key[0] == "IstioFederation":
                assert status and status["metadataCache"]["public"]["rootCA"]
                assert got_status[key] in (None, {}), key
                assert _strip_time(state["status"][key[2]]) == _strip_time(status), key


def test_status_in_the_state_file_is_not_drift(labs, kubectl):
    """kubectl diff (what Argo CD / Flux compare) finds nothing to change on the applied render."""
    for name in NAMES:
        proc = _kubectl(kubectl, labs["rendered"][name], "diff", "--server-side", "--field-manager", "gitops",
                        "-k", str(labs["dir"] / name), check=False)
        assert proc.returncode == 0, (name, proc.stdout, proc.stderr)


def test_traffic_passes_on_the_rendered_and_applied_lab(labs):
    clusters = list(labs["rendered"].values())
    for port in (8080, 9090):
        assert_traffic(clusters, "cluster-a", "cluster-b", BAR, port)
    assert_traffic(clusters, "cluster-b", "cluster-a", FOO, 80)


def test_rerender_with_nothing_changed_writes_nothing(labs):
    trees = {name: _tree(labs["dir"] / name) for name in NAMES}
    mtimes = {p: p.stat().st_mtime_ns for p in labs["dir"].rglob("*") if p.is_file()}
    run = _render(labs["inv_rendered"], labs["dir"])
    assert run.rc == 0, run
    for name in NAMES:
        assert run.changed(name) == 0, run
        (result,) = run.results("federation", name)
        assert result["changed"] is False and result["summary"]["files"]["written"] == []
        assert _tree(labs["dir"] / name) == trees[name]
    assert {p: p.stat().st_mtime_ns for p in labs["dir"].rglob("*") if p.is_file()} == mtimes


def test_a_service_no_longer_public_loses_its_files_and_kubectl_prunes_its_objects(labs, kubectl):
    rendered, applied, root = labs["rendered"], labs["applied"], labs["dir"]
    # kubectl's server-side prune tracks an inventory (ApplySet); adopt the applied render into one first
    for cluster in rendered.values():
        _apply(kubectl, cluster, root / cluster.name, prune=True)
    foreign = root / "cluster-a" / "team-notes.yaml"  # a file the collection did not write
    foreign.write_text("# kept by the team\n")
    bar_files = sorted(p.name for p in (root / "cluster-a").glob("*-meshfed-cluster-b-xyz-bar-*.yaml"))
    assert len(bar_files) == 2  # its ServiceEntry and DestinationRule
    for cluster in (rendered["cluster-b"], applied["cluster-b"]):
        lab_seed.set_public(cluster, "xyz", "bar", False)

    before = _tree(root)
    check = _render(labs["inv_rendered"], root, "--check", "--diff")
    assert check.rc == 0, check
    assert _tree(root) == before  # --check writes nothing
    (result,) = check.results("federation", "cluster-a")
    assert result["changed"] is True and sorted(result["summary"]["files"]["removed"]) == bar_files
    assert any(d["before_header"].endswith(bar_files[0]) and d["after"] == "" for d in result["diff"])

    run = _render(labs["inv_rendered"], root)
    assert run.rc == 0, run
    assert not any((root / "cluster-a" / f).exists() for f in bar_files)
    assert foreign.read_text() == "# kept by the team\n"
    assert not (root / "cluster-b" / "gateway-istio-system-meshfed-export.yaml").exists()  # b exports nothing now
    for cluster in rendered.values():
        _apply(kubectl, cluster, root / cluster.name, prune=True)
    assert BAR not in kubeapi.se_by_host(rendered["cluster-a"])

    run = run_playbook(labs["inv_applied"])
    assert run.rc == 0, run
    for name in NAMES:
        want = _owned(applied[name])[0]
        got = _owned(rendered[name], drop_labels=(APPLYSET_LABEL,))[0]
        assert sorted(got) == sorted(want), name
        for key in want:
            assert got[key] == want[key], key
    run = _render(labs["inv_rendered"], root)
    assert run.rc == 0 and all(run.changed(name) == 0 for name in NAMES), run
