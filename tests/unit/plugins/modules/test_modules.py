"""The modules' main(): arguments in, result or failure payload out (the k8s client faked)."""

import json

import pytest
from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

from ansible_collections.meshfed.istio.plugins.module_utils.common import deps
from ansible_collections.meshfed.istio.plugins.module_utils import runners
from ansible_collections.meshfed.istio.plugins.module_utils.common.errors import K8sError
from ansible_collections.meshfed.istio.plugins.module_utils.plan.kinds import (
    CLUSTER_LABEL, MANAGED_BY_LABEL, MANAGED_BY_VALUE, kind_path)
from ansible_collections.meshfed.istio.plugins.modules import cluster_info, federation

from ...cards import card
from ...conftest import make_cert
from ...fakes import FakeClient, cluster_state, service, world


class Exit(Exception):
    def __init__(self, failed, result):
        super().__init__(result.get("msg"))
        self.failed = failed
        self.result = result


def _exit_json(module, **result):
    raise Exit(False, result)


def _fail_json(module, msg, **result):
    raise Exit(True, dict(result, msg=msg))


@pytest.fixture
def connected(monkeypatch):
    """Make ``main()`` talk to a fake client; returns {"client": ..., "params": ...} once connected."""
    monkeypatch.setattr(basic.AnsibleModule, "exit_json", _exit_json)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", _fail_json)
    seen = {"warnings": []}
    monkeypatch.setattr(basic.AnsibleModule, "warn", lambda module, text: seen["warnings"].append(text))

    def connect(params, cluster, pool_size=1):
        seen.update(params=dict(params), cluster=cluster, pool_size=pool_size)
        return seen["client"]
    monkeypatch.setattr(runners.k8s, "connect", connect)
    return seen


def run(main, args, check_mode=False, diff=False):
    args = dict(args, _ansible_check_mode=check_mode, _ansible_diff=diff)
    with patch_module_args(args), pytest.raises(Exit) as err:
        main()
    return err.value


def test_cluster_info_returns_the_card_and_warnings(connected):
    root = make_cert("Root cluster-b")[2]
    connected["client"] = world(root, services=[service("a", "udp", [{"name": "dns", "port": 53, "protocol": "UDP"}])])
    out = run(cluster_info.main, {"cluster": "cluster-b"})
    assert not out.failed and out.result["changed"] is False
    assert out.result["card"]["name"] == "cluster-b" and out.result["card"]["gateway"]["port"] == 15443
    assert out.result["api_calls"] == {"get": 2, "list": 6}
    assert out.result["accepted_metadata"] == {}  # the IstioFederation CRD is not installed yet
    assert any(w.startswith("cluster-b: Service a/udp port dns uses UDP") for w in connected["warnings"])
    assert connected["params"]["gateway_namespace"] is None  # the runner, not the spec, defaults it


def test_cluster_info_returns_the_metadata_last_accepted_from_each_peer(connected):
    """The issue time each IstioFederation this cluster wrote caches: the role refuses older copies (replays)."""
    connected["client"] = client = world(make_cert("Root cluster-b")[2])

    def fed(name, cluster, issued):
        labels = {MANAGED_BY_LABEL: MANAGED_BY_VALUE, CLUSTER_LABEL: cluster}
        return {"metadata": {"name": name, "labels": labels},
                "status": {"metadataCache": {"public": {"issuedAt": issued} if issued else {}}}}
    client.lists[kind_path("IstioFederation", None, "v1")] = [
        fed("cluster-a", "cluster-b", "2026-11-26T02:11:47Z"), fed("cluster-c", "cluster-b", None),
        fed("cluster-d", "another-cluster", "2026-11-26T03:00:00Z")]
    out = run(cluster_info.main, {"cluster": "cluster-b"})
    assert not out.failed and out.result["accepted_metadata"] == {"cluster-a": "2026-11-26T02:11:47Z"}


def test_cluster_info_bad_port_fails_before_connecting(connected):
    out = run(cluster_info.main, {"cluster": "cluster-b", "gateway_port": 70000})
    assert out.failed and out.result["msg"] == "cluster-b: gateway_port 70000 is not a port number (1-65535)"
    assert out.result["cluster"] == "cluster-b" and out.result["field"] == "gateway_port"
    assert out.result["api_calls"] == {} and "params" not in connected


def test_cluster_info_failure_names_cluster_and_field(connected):
    connected["client"] = world(make_cert("Root cluster-b")[2], gw=False)
    out = run(cluster_info.main, {"cluster": "cluster-b"})
    assert out.failed and out.result["msg"].startswith("cluster-b: gateway Service istio-system/istio-eastwestgateway")
    assert out.result["field"] == "gateway_service" and out.result["api_calls"] == {"get": 2, "list": 2}


def test_kubeconfig_and_context_fall_back_to_the_environment(connected, monkeypatch):
    monkeypatch.setenv("K8S_AUTH_KUBECONFIG", "/tmp/kc")
    monkeypatch.setenv("K8S_AUTH_CONTEXT", "ctx-b")
    connected["client"] = world(make_cert("Root cluster-b")[2])
    run(cluster_info.main, {"cluster": "cluster-b"})
    assert connected["params"]["kubeconfig"] == "/tmp/kc" and connected["params"]["context"] == "ctx-b"


@pytest.mark.parametrize("source", [None, "validate_certs: false", "K8S_AUTH_VERIFY_SSL=False",
                                    "insecure-skip-tls-verify of cluster b in kubeconfig /kc"])
def test_a_connection_without_tls_verification_warns_loudly_and_says_so_in_the_result(connected, source):
    connected["client"] = world(make_cert("Root cluster-b")[2])
    connected["client"].unverified = source
    out = run(cluster_info.main, {"cluster": "cluster-b"})
    assert not out.failed and out.result["tls_verification"] is (source is None)
    loud = [w for w in connected["warnings"] if "TLS verification" in w]
    if source is None:
        assert loud == []
    else:
        assert loud == ["cluster-b: TLS verification of the API server https://fake.invalid is OFF (%s): anyone on "
                        "the path can read the credentials and forge the answers; give the CA (ca_cert or the "
                        "kubeconfig's certificate-authority) instead" % source]


def federation_args(**kw):
    args = {"local": card("cluster-a", services=[]), "peers": [card("cluster-b")], "api_key": "s3cr3t-token"}
    args.update(kw)
    return args


def target():
    client = cluster_state()
    client.lists["/api/v1/services"] = []
    return client


def test_federation_converges_and_shows_the_diff(connected):
    connected["client"] = target()
    out = run(federation.main, federation_args(), diff=True)
    assert not out.failed and out.result["changed"]
    assert len(out.result["summary"]["created"]) == 3 and out.result["summary"]["trust"]["added"]
    assert out.result["diff"] and out.result["api_calls"]["apply"] == 4
    assert any("cluster-a: istiod Deployment not found" in w for w in connected["warnings"])


def test_federation_check_mode_sends_dry_runs_only(connected):
    connected["client"] = client = target()
    out = run(federation.main, federation_args(), check_mode=True)
    assert out.result["changed"] and "diff" not in out.result
    assert all(r[2]["dry_run"] for r in client.requests if r[0] in ("apply", "patch"))


class Forbidden(FakeClient):
    def apply(self, path, body, dry_run=False, what=None):
        self._log("apply", path)
        raise K8sError("forbidden: nope (%s)" % what, status=403, reason="Forbidden", cluster=self.cluster)


def test_federation_failure_payload_has_details_and_progress_but_no_secret(connected):
    client = target()
    connected["client"] = Forbidden(client.objects, client.lists, cluster="cluster-a")
    out = run(federation.main, federation_args())
    assert out.failed and out.result["msg"].startswith("cluster-a: forbidden: nope (apply IstioFederation cluster-b)")
    assert (out.result["status"], out.result["reason"], out.result["cluster"]) == (403, "Forbidden", "cluster-a")
    assert out.result["changed"] and out.result["summary"]["trust"]["added"]  # the mesh patch went through
    # no Services LIST: no peer hostname is under the local cluster domain, so none can clash
    assert out.result["api_calls"] == {"list": 4, "get": 1, "patch": 1, "apply": 1}
    assert "s3cr3t-token" not in json.dumps(out.result)


def test_federation_plan_error_fails_with_every_problem(connected):
    connected["client"] = target()
    bad = card("cluster-b")
    bad["gateway"]["port"] = 0
    out = run(federation.main, federation_args(peers=[bad, card("cluster-b")]))
    assert out.failed and out.result["field"] == "cards" and out.result["summary"]["created"] == []
    assert out.result["msg"].splitlines() == [
        "cluster-b: field gateway.port: 0 is not a port number (1-65535)",
        "cluster-a: field peers: peer cluster-b is listed twice"]


@pytest.mark.parametrize("main, args", [(cluster_info.main, {"cluster": "x"}), (federation.main, {"local": {}})])
def test_missing_library_fails_with_its_traceback(connected, monkeypatch, main, args):
    monkeypatch.setattr(deps, "MISSING", {"PyYAML": "Traceback: no yaml"})
    out = run(main, args)
    assert out.failed and "PyYAML" in out.result["msg"] and out.result["exception"] == "Traceback: no yaml"


def test_federation_refuses_a_replayed_metadata_peer_against_the_federation_it_holds(connected):
    """The module hands the IstioFederations' statuses to the plan: an older copy of a metadata peer's
    metadata than the one cached is not applied, and the peer's condition says Rollback."""
    from ansible_collections.meshfed.istio.plugins.module_utils.plan.planner import plan
    from ..module_utils.test_federations import T0, T1, _existing, _status_writes, metadata_peer
    held = plan(card("cluster-a", services=[]), [metadata_peer(issued=T1)])
    connected["client"] = client = cluster_state(
        [_existing(held, "cluster-b", {"metadataCache": dict(held["statuses"]["cluster-b"])})])
    client.lists["/api/v1/services"] = []
    out = run(federation.main, federation_args(peers=[metadata_peer(issued=T0)]))
    assert not out.failed
    (status,) = _status_writes(client)
    assert status["conditions"][0]["reason"] == "Rollback"
    assert not [r for r in client.requests if r[0] == "apply" and "serviceentries" in r[1]]
    assert out.result["summary"]["kept_unreachable"] == ["IstioFederation cluster-b"]


def test_federation_results_and_failures_carry_tls_verification(connected):
    client = target()
    connected["client"] = Forbidden(client.objects, client.lists, cluster="cluster-a")
    connected["client"].unverified = "validate_certs: false"
    out = run(federation.main, federation_args())
    assert out.failed and out.result["tls_verification"] is False
    assert any(w.startswith("cluster-a: TLS verification of the API server") for w in connected["warnings"])
