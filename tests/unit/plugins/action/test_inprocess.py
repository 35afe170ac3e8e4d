"""The action plugins of cluster_info and federation run the module's runner in the task worker:
for the same arguments (and the same cluster, faked) the result must be the module's own JSON output,
secrets masked, warnings, failures, check mode and diff included; anywhere but on the controller's
own Python the module runs as a process."""

import copy
import json
import sys

import pytest
from ansible.module_utils import _internal as ansible_internal
from ansible.module_utils.common import warnings as ansible_warnings
from ansible.module_utils.testing import patch_module_args

from ansible_collections.meshfed.istio.plugins.action import cluster_info as cluster_info_action
from ansible_collections.meshfed.istio.plugins.action import federation as federation_action
from ansible_collections.meshfed.istio.plugins.module_utils import runners
from ansible_collections.meshfed.istio.plugins.module_utils.common import deps
from ansible_collections.meshfed.istio.plugins.module_utils.common.errors import K8sError
from ansible_collections.meshfed.istio.plugins.modules import cluster_info, federation
from ansible_collections.meshfed.istio.plugins.plugin_utils import inprocess

from ...conftest import make_cert
from ...fakes import service, world
from ..modules.test_modules import Forbidden, federation_args, target
from ..modules.test_secret_masking import SECRETS, kubeconfig

ACTIONS = {cluster_info: cluster_info_action.ActionModule, federation: federation_action.ActionModule}


@pytest.fixture
def cluster(monkeypatch):
    """The cluster both paths talk to: a fresh copy of ``state["client"]`` for each connect."""
    state = {"client": None, "connects": 0}

    def connect(params, name, pool_size=1):
        state["connects"] += 1
        client = copy.deepcopy(state["client"])
        client.requests, client.calls = [], {}
        state["last"] = client
        return client
    monkeypatch.setattr(runners.k8s, "connect", connect)
    monkeypatch.setattr(ansible_warnings, "_global_warnings", {})
    return state


def module_output(module, args, capsys, check_mode=False, diff=False):
    """What the module process prints for ``args``: the real AnsibleModule exit/fail path, JSON decoded
    (as in a module process, not on the controller, where warn() would go to the display)."""
    capsys.readouterr()
    internal = dict(_ansible_check_mode=check_mode, _ansible_diff=diff, _ansible_module_name="meshfed.istio." + module.__name__.rsplit(".", 1)[1],
                    _ansible_no_log=True)  # no syslog line from the tests
    with pytest.MonkeyPatch.context() as patch, patch_module_args(dict(args, **internal)), pytest.raises(SystemExit):
        patch.setattr(ansible_internal, "is_controller", False)
        module.main()
    result = json.loads(capsys.readouterr().out)
    # the module serializes its warnings as event records; the action plugin hands Ansible their text
    result["warnings"] = [w["event"]["msg"] if isinstance(w, dict) else w for w in result.get("warnings", [])]
    if not result["warnings"]:
        del result["warnings"]
    return result


def in_process(module, args, check_mode=False, diff=False):
    action = ACTIONS[module]
    name = "meshfed.istio." + module.__name__.rsplit(".", 1)[1]
    return inprocess.run_in_process(name, action.argument_spec(), action.run_class, args,
                                    check_mode=check_mode, diff=diff)


def both(module, args, capsys, **mode):
    return module_output(module, args, capsys, **mode), in_process(module, args, **mode)


def test_cluster_info_same_card_warnings_and_invocation(cluster, capsys):
    cluster["client"] = world(make_cert("Root cluster-b")[2],
                              services=[service("a", "udp", [{"name": "dns", "port": 53, "protocol": "UDP"}])])
    args = {"cluster": "cluster-b", "api_key": "s3cr3t-token", "verify_ssl": False}
    module, action = both(cluster_info, args, capsys)
    assert action == module
    assert action["card"]["name"] == "cluster-b" and action["api_calls"] == {"get": 2, "list": 6}  # + the IstioFederation LIST (accepted_metadata)
    assert any(w.startswith("cluster-b: Service a/udp port dns uses UDP") for w in action["warnings"])
    assert action["invocation"]["module_args"]["api_key"] == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"
    assert action["invocation"]["module_args"]["validate_certs"] is False  # the alias resolved, as in the module


@pytest.mark.parametrize("args, msg", [
    ({"cluster": "cluster-b", "gateway_port": 70000}, "cluster-b: gateway_port 70000 is not a port number (1-65535)"),
    ({"cluster": "cluster-b", "gateway_port": "many"}, "argument 'gateway_port' is of type"),
    ({"cluster": "cluster-b", "nope": 1}, "Unsupported parameters for (meshfed.istio.cluster_info) module: nope."),
    ({}, "missing required arguments: cluster"),
])
def test_cluster_info_failures_are_the_modules(cluster, capsys, args, msg):
    cluster["client"] = world(make_cert("Root cluster-b")[2])
    module, action = both(cluster_info, args, capsys)
    assert action == module and action["failed"] is True and msg in action["msg"]


def test_federation_same_result_with_diff(cluster, capsys):
    cluster["client"] = target()
    module, action = both(federation, federation_args(), capsys, diff=True)
    assert action == module
    assert action["changed"] is True and action["diff"] and action["api_calls"]["apply"] == 4
    assert any("cluster-a: istiod Deployment not found" in w for w in action["warnings"])
    assert "s3cr3t-token" not in json.dumps(action)


def test_federation_check_mode_sends_dry_runs_only(cluster, capsys):
    cluster["client"] = target()
    module, action = both(federation, federation_args(), capsys, check_mode=True)
    assert action == module and action["changed"] is True and "diff" not in action
    assert all(r[2]["dry_run"] for r in cluster["last"].requests if r[0] in ("apply", "patch"))


def test_federation_failure_details_and_progress(cluster, capsys):
    base = target()
    cluster["client"] = Forbidden(base.objects, base.lists, cluster="cluster-a")
    module, action = both(federation, federation_args(), capsys)
    assert action == module
    assert action["failed"] is True and action["msg"].startswith("cluster-a: forbidden: nope (apply IstioFederation cluster-b)")
    assert (action["status"], action["cluster"]) == (403, "cluster-a") and action["summary"]["trust"]["added"]


@pytest.mark.parametrize("module, args", [
    (cluster_info, {"cluster": "cluster-a", "gateway_port": 70000}),
    (cluster_info, {"cluster": "cluster-a", "request_timeout": "soon"}),  # fails argument validation
    (federation, {"local": {"name": "cluster-a"}, "write_concurrency": 0}),
])
def test_kubeconfig_dict_secrets_stay_masked(cluster, capsys, module, args):
    module_result, action = both(module, dict(args, kubeconfig=kubeconfig()), capsys)
    assert action == module_result and action["failed"] is True
    text = json.dumps(action)
    assert not any(secret in text for secret in SECRETS)
    shown = action["invocation"]["module_args"]["kubeconfig"]
    assert shown["users"][0]["user"]["token"] == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER" and shown["current-context"] == "cluster-a"


def test_an_unexpected_error_fails_the_task_masked(cluster, monkeypatch):
    def boom(params, name, pool_size=1):
        raise RuntimeError("bad token %s" % SECRETS[0])
    monkeypatch.setattr(runners.k8s, "connect", boom)
    result = in_process(cluster_info, {"cluster": "cluster-a", "kubeconfig": kubeconfig()})
    assert result["failed"] is True and result["msg"] == "RuntimeError: bad token ********"


# -- when the action runs in process, and when the module runs ---------------------------------------
class _Obj:
    def __init__(self, **kw):
        self.__dict__.update(kw)


class _Templar:
    def template(self, value):
        return {"{{ ansible_playbook_python }}": sys.executable}.get(value, value)


def action_for(transport="local", become=False, async_val=0, environment=(), args=None):
    action = federation_action.ActionModule.__new__(federation_action.ActionModule)
    action._connection = _Obj(transport=transport, has_native_async=False)
    action._play_context = _Obj(become=become)
    action._task = _Obj(async_val=async_val, environment=list(environment), args=args or {})
    action._templar = _Templar()
    return action


@pytest.mark.parametrize("kw, interpreter, expected", [
    ({}, "{{ ansible_playbook_python }}", True),        # what playbooks/federate.yml sets
    ({}, sys.executable, True),
    ({"environment": [{}]}, sys.executable, True),     # no environment keyword: Ansible passes [{}]
    ({}, None, False),                                   # discovered: maybe another Python
    ({}, "auto_silent", False),
    ({}, "/usr/bin/env python3", False),
    ({"transport": "ssh"}, sys.executable, False),
    ({"become": True}, sys.executable, False),
    ({"async_val": 30}, sys.executable, False),
    ({"environment": [{"K8S_AUTH_CONTEXT": "b"}]}, sys.executable, False),
])
def test_in_process_only_on_the_controllers_own_python(kw, interpreter, expected):
    task_vars = {} if interpreter is None else {"ansible_python_interpreter": interpreter}
    assert action_for(**kw).in_process(task_vars) is expected


def test_missing_library_runs_the_module_process(monkeypatch):
    monkeypatch.setattr(deps, "MISSING", {"urllib3": "Traceback"})
    assert action_for().in_process({"ansible_python_interpreter": sys.executable}) is False


def test_another_virtualenv_on_the_same_binary_is_not_this_python(tmp_path):
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (venv / "bin" / "python").symlink_to(inprocess.os.path.realpath(sys.executable))
    assert inprocess.same_python(str(venv / "bin" / "python")) is False


def test_this_virtualenv_through_a_symlink_is_this_python(tmp_path):
    link = tmp_path / "venv"
    link.symlink_to(sys.prefix)
    assert inprocess.same_python(str(link / "bin" / inprocess.os.path.basename(sys.executable))) is True


def test_python_warnings_stay_out_of_the_controller_output(cluster, capsys, monkeypatch):
    import warnings

    def noisy(params, name, pool_size=1):
        warnings.warn("Unverified HTTPS request", UserWarning)
        raise K8sError("cannot reach the API server", cluster=name)
    monkeypatch.setattr(runners.k8s, "connect", noisy)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        result = in_process(cluster_info, {"cluster": "cluster-a"})
    assert result["failed"] is True and result["msg"].startswith("cluster-a: cannot reach")
    assert seen == [] and capsys.readouterr().err == ""
