"""A kubeconfig given as a dict carries secrets: no module output, success or failure, may hold them.

Each module runs as Ansible runs it (a separate Python process reading its arguments as JSON), so the
real AnsibleModule result and failure paths (invocation included) are what is checked."""

import json
import subprocess
import sys

import pytest

from tests.collection import COLLECTIONS, ensure_collection_link

TOKEN = "s3cr3t-bearer-token-0123456789"
KEY = "LS0tLS1CRUdJTiBQUklWQVRFIEtFWS0tLS0tCnNlY3JldA=="
CERT = "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCmNlcnQ="
EXEC_ENV = "exec-env-secret-value"
SECRETS = (TOKEN, KEY, CERT, EXEC_ENV)


def kubeconfig(server="https://127.0.0.1:1"):
    return {
        "apiVersion": "v1", "kind": "Config", "current-context": "cluster-a",
        "clusters": [{"name": "cluster-a", "cluster": {"server": server}}],
        "contexts": [{"name": "cluster-a", "context": {"cluster": "cluster-a", "user": "admin"}}],
        "users": [{"name": "admin", "user": {"token": TOKEN, "client-key-data": KEY,
                                             "client-certificate-data": CERT}},
                  {"name": "execer", "user": {"exec": {"command": "true", "apiVersion": "client.authentication.k8s.io/v1",
                                                       "env": [{"name": "X", "value": EXEC_ENV}]}}}],
    }


def run_module(name, args):
    ensure_collection_link()
    payload = json.dumps({"ANSIBLE_MODULE_ARGS": dict(args, _ansible_verbosity=3)})
    proc = subprocess.run([sys.executable, "-m", "ansible_collections.meshfed.istio.plugins.modules." + name],
                          input=payload, capture_output=True, text=True, timeout=120, check=False,
                          cwd=str(COLLECTIONS), env={"PYTHONPATH": str(COLLECTIONS), "PATH": "/usr/bin:/bin",
                                                     "ANSIBLE_NO_TARGET_SYSLOG": "1"})
    return proc, json.loads(proc.stdout)


@pytest.mark.parametrize("args, failure", [
    # the API server is unreachable: the failure path after connecting
    ({"cluster": "cluster-a", "request_timeout": 2}, "cluster-a: "),
    # another option fails argument validation, before any of the module's own code runs
    ({"cluster": "cluster-a", "gateway_port": "not-a-port"}, "argument 'gateway_port'"),
    # a context that is not in the kubeconfig
    ({"cluster": "cluster-a", "context": "nope"}, "context 'nope' is not in kubeconfig"),
])
def test_cluster_info_never_returns_the_kubeconfig_secrets(args, failure):
    proc, result = run_module("cluster_info", dict(args, kubeconfig=kubeconfig()))
    assert result["failed"] is True and failure in result["msg"]
    for secret in SECRETS:
        assert secret not in proc.stdout and secret not in proc.stderr
    # only the secrets are masked: the rest of the kubeconfig stays readable in the invocation
    shown = result["invocation"]["module_args"]["kubeconfig"]
    assert shown["users"][0]["user"]["token"] == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER" and shown["current-context"] == "cluster-a"


def test_federation_module_masks_them_too():
    proc, result = run_module("federation", {"kubeconfig": kubeconfig(), "local": {"name": "cluster-a"},
                                             "write_concurrency": "many"})
    assert result["failed"] is True and "write_concurrency" in result["msg"]
    assert not any(secret in proc.stdout for secret in SECRETS)


def test_kubeconfig_content_given_as_a_string_is_refused_without_echoing_it():
    import yaml
    text = yaml.safe_dump(kubeconfig())
    proc, result = run_module("cluster_info", {"cluster": "cluster-a", "kubeconfig": text})
    assert result["failed"] is True
    assert result["msg"].startswith("cluster-a: kubeconfig is a text with line breaks, not a path (field: kubeconfig)")
    assert not any(secret in proc.stdout for secret in SECRETS)
