"""The shipped playbook run as an AWX/AAP job runs it - ansible-runner, the one-line wrapper
playbook of docs/awx.md in the project, vaulted host vars holding each cluster's kubeconfig as a dict
with a bearer token and a client key - on a success path and a failure path, at verbosity 0 and 3.

Checked from the job's artifacts, as AWX stores them: the status per host (stats event), the failed
task's event naming the cluster, the set_stats summary (``meshfed_federation``) in the stats event's
``artifact_data``, and that neither the token nor the client key (as given, or decoded) appears in any
artifact (events, stdout, the runner's files) nor in the runner's own output. Also: K8S_AUTH_VERIFY_SSL
=False (AWX's credential with "Verify SSL" unchecked) warns in the play output, the report and the
summary; the report file is rewritten (task changed) only when its content changes; tags and
meshfed_phase select phases of the shipped playbook."""

import base64
import copy
import re
import sys
from pathlib import Path

import pytest
import yaml
from kubernetes import client as k8s

from tests.lab import kubeapi
from tests.integration.ansible_run import run_playbook
from tests.integration.runner_job import private_data_dir, run_job
from tests.lab.inventory import write_inventory
from tests.lab.lab import free_ports

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]
GATHER_TASK = "Gather the federation facts of this cluster"
REPORT_TASK = "Write the federation report"
# the lab's seed scenario: what each cluster exports
EXPORTS = {"cluster-a": "foo.abc.svc.cluster-a.local", "cluster-b": "bar.xyz.svc.cluster-b.local"}


def sa_token(cluster):
    """A token of the least-privilege ServiceAccount of meta/rbac (its Role and ClusterRole applied)."""
    for p in sorted((REPO / "meta" / "rbac").glob("*.yaml")):
        kubeapi.apply(cluster, yaml.safe_load(p.read_text()))
    return k8s.CoreV1Api(cluster.api_client()).create_namespaced_service_account_token(
        "meshfed-istio", "meshfed", {"spec": {"expirationSeconds": 3600}}).status.token


def dict_kubeconfig(cluster, token, server=None):
    """The cluster's kubeconfig as a dict whose user carries a bearer token and a client key."""
    cfg = yaml.safe_load(Path(cluster.kubeconfig).read_text())
    cfg["users"][0]["user"]["token"] = token
    if server:
        cfg["clusters"][0]["cluster"]["server"] = server
    return cfg


def secret_strings(kubeconfigs):
    """Every form in which a secret of these kubeconfigs could leak: the token (and its signature part),
    the client key data as given (base64) and each line of the PEM it decodes to."""
    out = set()
    for cfg in kubeconfigs:
        user = cfg["users"][0]["user"]
        out.add(user["token"])
        out.add(user["token"].rsplit(".", 1)[-1])
        out.add(user["client-key-data"])
        pem = base64.b64decode(user["client-key-data"]).decode()
        out.update(line for line in pem.splitlines() if line and not line.startswith("-----"))
    assert all(len(s) >= 20 for s in out)
    return out


@pytest.fixture(scope="module")
def pair(lab_clusters):
    return lab_clusters(["cluster-a", "cluster-b"])


@pytest.fixture(scope="module")
def jobs(pair, tmp_path_factory):
    """Four jobs: success and failure (cluster-b's API server unreachable), each at verbosity 0 and 3."""
    a, b = pair
    d = tmp_path_factory.mktemp("awx")
    good = {c.name: dict_kubeconfig(c, sa_token(c)) for c in (a, b)}
    bad = copy.deepcopy(good)
    bad["cluster-b"]["clusters"][0]["cluster"]["server"] = "https://127.0.0.1:%d" % free_ports(1)[0]
    out = {"secrets": secret_strings(good.values())}
    for path, kubeconfigs in (("success", good), ("failure", bad)):
        pdd, password = private_data_dir(d / path, {h: {"meshfed_kubeconfig": kc} for h, kc in kubeconfigs.items()})
        for verbosity in (0, 3):
            out[(path, verbosity)] = run_job(pdd, password, "%s-v%d" % (path, verbosity), verbosity=verbosity,
                                             extra_vars={"meshfed_request_timeout": 5})
    return out


@pytest.mark.parametrize("verbosity", [0, 3])
def test_success_status_per_host_and_set_stats(jobs, verbosity):
    job = jobs[("success", verbosity)]
    assert job.status == "successful" and job.rc == 0, job
    # the first job federates (changed); the second one, on converged clusters, changes nothing
    expected = "changed" if verbosity == 0 else "ok"
    assert job.host_status() == {"cluster-a": expected, "cluster-b": expected}, job.stats()
    fed = job.artifact_data()["meshfed_federation"]
    assert fed["ok"] == ["cluster-a", "cluster-b"] and fed["failed"] == [] and fed["tls_unverified"] == []
    assert fed["changed"] == (["cluster-a", "cluster-b"] if verbosity == 0 else [])
    for me, peer in (("cluster-a", "cluster-b"), ("cluster-b", "cluster-a")):
        c = fed["clusters"][me]
        assert c["status"] == expected and c["failed_phase"] is None and c["tls_verification"] is True
        assert c["peers"] == {peer: "in this run"}
        assert c["exports"] == [EXPORTS[me]]
    assert fed["summary"][0].startswith("Federation: 2 clusters in this run (cluster-a, cluster-b), 2 imports")
    assert fed["report"].startswith("# Istio federation report")
    assert "| cluster-b | foo.abc.svc.cluster-a.local | cluster-a | in this run |" in fed["report"]


@pytest.mark.parametrize("verbosity", [0, 3])
def test_failure_status_per_host_and_set_stats(jobs, verbosity):
    job = jobs[("failure", verbosity)]
    assert job.status == "failed" and job.rc != 0, job
    assert job.host_status() == {"cluster-a": "ok", "cluster-b": "failed"}, job.stats()
    (failed,) = job.task_events(GATHER_TASK, "runner_on_failed")
    assert failed["event_data"]["host"] == "cluster-b"
    assert failed["event_data"]["res"]["msg"].startswith("cluster-b: cannot reach the API server")
    fed = job.artifact_data()["meshfed_federation"]
    assert fed["failed"] == ["cluster-b"] and fed["ok"] == ["cluster-a"]
    b = fed["clusters"]["cluster-b"]
    assert b["status"] == "failed" and b["failed_phase"] == "gather"
    assert b["msg"].startswith("cluster-b: cannot reach the API server")
    # cluster-a keeps what it knows of cluster-b (unreachable, not removed)
    assert fed["clusters"]["cluster-a"]["peers"] == {"cluster-b": "unreachable"}


@pytest.mark.parametrize("path", ["success", "failure"])
@pytest.mark.parametrize("verbosity", [0, 3])
def test_no_token_or_client_key_in_any_artifact(jobs, path, verbosity):
    job = jobs[(path, verbosity)]
    text = job.all_text()
    leaked = [s[:12] + "..." for s in jobs["secrets"] if s in text]
    assert not leaked, "secrets found in the job's artifacts: %s" % leaked
    # the kubeconfig did reach the events (masked), so this check looks where a leak would be
    invocations = [e["event_data"]["res"]["invocation"]["module_args"]["kubeconfig"] for e in job.events
                   if e["event"] in ("runner_on_ok", "runner_on_failed")
                   and "kubeconfig" in (((e["event_data"].get("res") or {}).get("invocation") or {})
                                        .get("module_args") or {})]
    assert invocations, "no module invocation with a kubeconfig in the job's events"
    for kc in invocations:
        assert kc["users"][0]["user"]["token"] == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"
        assert kc["users"][0]["user"]["client-key-data"] == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"
    if verbosity == 3:
        assert "module_args" in job.stdout and "client-key-data" in job.stdout


def test_verify_ssl_false_warns_in_play_output_report_and_summary(pair, tmp_path):
    a, b = pair
    pdd, password = private_data_dir(tmp_path / "insecure", {
        c.name: {"meshfed_kubeconfig": str(Path(c.kubeconfig).resolve())} for c in (a, b)})
    report = tmp_path / "federation.md"
    job = run_job(pdd, password, "insecure", env={"K8S_AUTH_VERIFY_SSL": "False"},
                  extra_vars={"meshfed_report_path": str(report)})
    assert job.status == "successful", job

    # the module names the cluster, the server and where the setting came from (kube/kubeconfig.py)
    def off(name):
        return re.compile(r"%s: TLS verification of the API server https://\S+ is OFF \(K8S_AUTH_VERIFY_SSL=False\)"
                          % re.escape(name))
    output = " ".join(job.stdout.split())  # the callback wraps long warnings
    for name in ("cluster-a", "cluster-b"):
        assert re.search(r"\[WARNING\]: " + off(name).pattern, output), job
    fed = job.artifact_data()["meshfed_federation"]
    assert fed["tls_unverified"] == ["cluster-a", "cluster-b"]
    assert fed["clusters"]["cluster-a"]["tls_verification"] is False
    assert any(off("cluster-a").match(w) for w in fed["clusters"]["cluster-a"]["warnings"])
    warnings = report.read_text().split("## Warnings", 1)[1]
    assert off("cluster-a").search(warnings) and off("cluster-b").search(warnings)
    assert any(off("cluster-a").search(line) for line in fed["summary"] if line.startswith("Warning: "))


def test_report_task_changed_only_when_its_content_changes(pair, tmp_path):
    a, b = pair
    inv = write_inventory([a, b], tmp_path / "inventory.yml")
    report = tmp_path / "federation.md"

    first = run_playbook(inv, "-e", "meshfed_report_path=%s" % report)
    assert first.rc == 0, first
    text = report.read_text()
    second = run_playbook(inv, "-e", "meshfed_report_path=%s" % report)
    assert second.rc == 0, second
    assert second.changed("cluster-a") == 0, second
    assert report.read_text() == text  # its time included: the file is kept as it was
    # the content differs (here: edited by hand): the task rewrites it and is changed
    report.write_text(text.replace("## Imports", "## Imports (edited)"))
    third = run_playbook(inv, "-e", "meshfed_report_path=%s" % report)
    assert third.rc == 0, third
    assert third.changed("cluster-a") == 1, third
    assert [r["changed"] for r in third.records if r["task"].endswith(REPORT_TASK)] == [True]
    assert [r["changed"] for r in second.records if r["task"].endswith(REPORT_TASK)] == [False]
    assert "## Imports (edited)" not in report.read_text()


@pytest.mark.parametrize("args, ran", [
    (["--skip-tags", "meshfed_apply"], {"cluster_info"}),
    (["--tags", "meshfed_gather"], {"cluster_info"}),
    (["-e", "meshfed_phase=gather"], {"cluster_info"}),
    (["-e", "meshfed_phase=apply"], {"cluster_info", "federation"}),
    ([], {"cluster_info", "federation"}),
])
def test_tags_and_phase_select_phases_of_the_shipped_playbook(pair, tmp_path, args, ran):
    a, b = pair
    inv = write_inventory([a, b], tmp_path / "inventory.yml")
    run = run_playbook(inv, *args)
    assert run.rc == 0, run
    modules = {r["action"].split(".")[-1] for r in run.records if r["status"] != "skipped"}
    assert modules & {"cluster_info", "federation"} == ran, modules
    summary_shown = "Federation: 2 clusters in this run" in run.stdout
    report_phase = "--tags" not in args and "meshfed_phase=gather" not in args and "meshfed_phase=apply" not in args
    assert summary_shown == report_phase, run


def _federation_examples():
    from tests.unit.test_examples import module_docs
    return {t["name"]: t for t in yaml.safe_load(module_docs()["federation"]["EXAMPLES"])}


def test_federation_module_membership_examples_against_the_lab(pair, tmp_path):
    """The federation module's EXAMPLES for leaving, run as written but for the kubeconfig and the
    leaving peer's name: the peer that stays removes the leaver; the leaver removes everything it holds.
    (Last in this file: it takes cluster-a out of the federation the tests above built.)"""
    a, b = pair
    examples = _federation_examples()
    leave = next(t for n, t in examples.items() if n.startswith("Leave the federation"))
    other = next(t for n, t in examples.items() if n.startswith("On a peer that stays"))
    leave["meshfed.istio.federation"]["kubeconfig"] = str(a.kubeconfig)
    other["meshfed.istio.federation"].update(kubeconfig=str(b.kubeconfig), leaving_peers=["cluster-a"])
    assert set(kubeapi.federations(a)) == {"cluster-b"} and set(kubeapi.federations(b)) == {"cluster-a"}
    play = [{"name": "Membership examples", "hosts": "localhost", "gather_facts": False, "connection": "local",
             "tasks": [
                 {"name": "Card of cluster-b", "meshfed.istio.cluster_info": {
                     "cluster": "cluster-b", "kubeconfig": str(b.kubeconfig)}, "register": "facts_b"},
                 {"name": "Card of cluster-a", "meshfed.istio.cluster_info": {
                     "cluster": "cluster-a", "kubeconfig": str(a.kubeconfig)}, "register": "facts_a"},
                 dict(other, vars={"meshfed_card": "{{ facts_b.card }}", "federation": {"peers": []}}),
                 dict(leave, vars={"meshfed_card": "{{ facts_a.card }}"}),
             ]}]
    pb = tmp_path / "examples.yml"
    pb.write_text(yaml.safe_dump(play, sort_keys=False))
    inv = tmp_path / "localhost.yml"
    inv.write_text(yaml.safe_dump({"all": {"hosts": {"localhost": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}))
    run = run_playbook(inv, playbook=pb)
    assert run.rc == 0, run
    assert kubeapi.federations(a) == {} and kubeapi.se_by_host(a) == {}
    assert kubeapi.federations(b) == {} and "foo.abc.svc.cluster-a.local" not in kubeapi.se_by_host(b)
    assert kubeapi.trusted(a) == {} and kubeapi.trusted(b) == {}
