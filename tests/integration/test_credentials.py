"""Credentials as AWX/AAP and kubernetes.core users provide them, against real API servers:
AAP's built-in Kubernetes credential (K8S_AUTH_HOST/API_KEY/SSL_CA_CERT/VERIFY_SSL only), one merged
kubeconfig with a context per host (recipe 1 of docs/aap-credentials.md), a multi-path KUBECONFIG, a
kubeconfig given as a dict, and module_defaults through the collection's action group."""

from pathlib import Path

import pytest
import yaml
from kubernetes import client as k8s

from tests.integration.ansible_run import run_playbook
from tests.lab import kubeapi
from tests.lab.inventory import write_inventory

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def pair(lab_clusters, tmp_path_factory):
    a, b = lab_clusters(["cluster-a", "cluster-b"])
    d = tmp_path_factory.mktemp("creds")
    first = run_playbook(write_inventory([a, b], d / "inventory.yml"))
    assert first.rc == 0, first
    return {"a": a, "b": b, "dir": d}


def bare_inventory(path, hosts):
    """An inventory whose hosts carry no connection variables except ``hosts[name]``."""
    data = {"all": {"children": {"meshfed_clusters": {"hosts": hosts}},
                    "vars": {"ansible_connection": "local"}}}
    path.write_text(yaml.safe_dump(data))
    return path


def sa_token(cluster):
    """A token of the least-privilege ServiceAccount shipped in meta/rbac (no Secrets access)."""
    for p in sorted((REPO / "meta" / "rbac").glob("*.yaml")):
        kubeapi.apply(cluster, yaml.safe_load(p.read_text()))
    return k8s.CoreV1Api(cluster.api_client()).create_namespaced_service_account_token(
        "meshfed-istio", "meshfed", {"spec": {"expirationSeconds": 3600}}).status.token


def no_kubeconfig_env(d):
    """Environment in which no kubeconfig can be found: proves nothing but the given variables is used."""
    return {"HOME": str(d), "KUBECONFIG": str(d / "no-such-kubeconfig"), "K8S_AUTH_KUBECONFIG": ""}


def test_only_aap_kubernetes_credential_env(pair):
    a = pair["a"]
    inv = bare_inventory(pair["dir"] / "aap.yml", {"cluster-a": {}})
    env = dict(no_kubeconfig_env(pair["dir"]), K8S_AUTH_HOST=a.server, K8S_AUTH_API_KEY=sa_token(a),
               K8S_AUTH_SSL_CA_CERT=str(a.ca_file), K8S_AUTH_VERIFY_SSL="True")
    run = run_playbook(inv, env=env)
    assert run.rc == 0, run
    assert run.changed("cluster-a") == 0, run
    (fed,) = run.results("federation", "cluster-a")
    assert fed["summary"]["not_in_run"] == ["cluster-b"]
    # TLS verification is really on: the wrong CA bundle is refused, naming the cluster
    env["K8S_AUTH_SSL_CA_CERT"] = str(pair["b"].ca_file)
    bad = run_playbook(inv, env=env)
    assert bad.rc != 0
    assert "cluster-a" in bad.stdout and "certificate" in bad.stdout.lower(), bad


def merged_kubeconfig(clusters, path):
    docs = [yaml.safe_load(Path(c.kubeconfig).read_text()) for c in clusters]
    merged = {"apiVersion": "v1", "kind": "Config", "preferences": {},
              "clusters": [x for doc in docs for x in doc["clusters"]],
              "users": [x for doc in docs for x in doc["users"]],
              "contexts": [x for doc in docs for x in doc["contexts"]],
              "current-context": docs[0]["current-context"]}
    path.write_text(yaml.safe_dump(merged))
    return path


def test_merged_kubeconfig_injected_by_a_custom_credential_type(pair):
    a, b = pair["a"], pair["b"]
    merged = merged_kubeconfig([a, b], pair["dir"] / "merged.yaml")
    contexts = {"cluster-a": {"meshfed_context": a.context}, "cluster-b": {"meshfed_context": b.context}}
    inv = bare_inventory(pair["dir"] / "ctx.yml", contexts)
    run = run_playbook(inv, env=dict(no_kubeconfig_env(pair["dir"]), K8S_AUTH_KUBECONFIG=str(merged)))
    assert run.rc == 0, run
    assert run.changed("cluster-a") == 0 and run.changed("cluster-b") == 0, run


def test_multi_path_kubeconfig_env(pair):
    a, b = pair["a"], pair["b"]
    contexts = {"cluster-a": {"meshfed_context": a.context}, "cluster-b": {"meshfed_context": b.context}}
    inv = bare_inventory(pair["dir"] / "multi.yml", contexts)
    env = dict(no_kubeconfig_env(pair["dir"]), KUBECONFIG="%s:%s" % (a.kubeconfig, b.kubeconfig))
    run = run_playbook(inv, env=env)
    assert run.rc == 0, run
    assert run.changed("cluster-a") == 0 and run.changed("cluster-b") == 0, run


def test_kubeconfig_as_a_dict(pair):
    a, b = pair["a"], pair["b"]
    inv = bare_inventory(pair["dir"] / "dict.yml", {
        c.name: {"meshfed_kubeconfig": yaml.safe_load(Path(c.kubeconfig).read_text())} for c in (a, b)})
    run = run_playbook(inv, env=no_kubeconfig_env(pair["dir"]))
    assert run.rc == 0, run
    assert run.changed("cluster-a") == 0 and run.changed("cluster-b") == 0, run


def test_module_defaults_through_the_action_group(pair):
    a = pair["a"]
    playbook = pair["dir"] / "defaults.yml"
    playbook.write_text(yaml.safe_dump([{
        "hosts": "localhost", "gather_facts": False, "connection": "local",
        "module_defaults": {"group/meshfed.istio.meshfed": {"kubeconfig": str(a.kubeconfig)}},
        "tasks": [
            {"name": "read-only module", "meshfed.istio.cluster_info": {"cluster": "cluster-a"},
             "register": "info"},
            {"ansible.builtin.assert": {"that": [
                "info.card.name == 'cluster-a'", "info.card.trust_domain == 'cluster-a.local'"]}},
        ]}]))
    inv = bare_inventory(pair["dir"] / "localhost.yml", {})
    run = run_playbook(inv, playbook=playbook, env=no_kubeconfig_env(pair["dir"]))
    assert run.rc == 0, run


def test_impersonation_is_sent_to_the_api_server(pair):
    """The admin identity impersonating the shipped least-privilege ServiceAccount runs the playbook;
    impersonating an identity without any grant is refused by the API server, naming that identity."""
    a, b = pair["a"], pair["b"]
    sa_token(a)  # applies meta/rbac (ServiceAccount, roles, bindings)
    sa = "system:serviceaccount:meshfed:meshfed-istio"
    inv = write_inventory([a], pair["dir"] / "impersonate.yml",
                          extra_hostvars={"meshfed_impersonate_user": sa})
    run = run_playbook(inv)
    assert run.rc == 0, run
    inv = write_inventory([a], pair["dir"] / "impersonate-nobody.yml",
                          extra_hostvars={"meshfed_impersonate_user": "nobody",
                                          "meshfed_impersonate_groups": ["no-such-group", "other-group"]})
    run = run_playbook(inv)
    assert run.rc != 0
    assert 'User "nobody" cannot' in run.stdout, run


def test_in_cluster_service_account_without_any_kubeconfig(lab_clusters, tmp_path):
    """A pod's view: no kubeconfig anywhere, KUBERNETES_SERVICE_HOST/PORT, and the shipped least-privilege
    ServiceAccount's token and the cluster CA laid out as the kubelet mounts them. cluster_info reads the
    card with them, TLS verified against that CA (a foreign CA there is refused, naming the cluster)."""
    (a,) = lab_clusters(["cluster-a"])
    mount = tmp_path / "serviceaccount"
    mount.mkdir()
    (mount / "token").write_text(sa_token(a))
    (mount / "ca.crt").write_text(Path(a.ca_file).read_text())
    (mount / "namespace").write_text("meshfed")
    playbook = tmp_path / "in-cluster.yml"
    playbook.write_text(yaml.safe_dump([{
        "hosts": "localhost", "gather_facts": False, "connection": "local",
        "tasks": [{"meshfed.istio.cluster_info": {"cluster": "cluster-a"}, "register": "info"},
                  {"ansible.builtin.assert": {"that": [
                      "info.card.name == 'cluster-a'", "info.card.trust_domain == 'cluster-a.local'",
                      "info.card.public_services | length > 0", "info.tls_verification",
                      "info.warnings | default([]) | select('search', 'TLS') | list == []"]}}]}]))
    host, port = a.server.rsplit("//", 1)[1].rsplit(":", 1)
    env = dict(no_kubeconfig_env(tmp_path), KUBECONFIG="", KUBERNETES_SERVICE_HOST=host, KUBERNETES_SERVICE_PORT=port,
               MESHFED_SERVICE_ACCOUNT_DIR=str(mount), K8S_AUTH_HOST="", K8S_AUTH_API_KEY="")
    inv = bare_inventory(tmp_path / "localhost.yml", {})
    run = run_playbook(inv, playbook=playbook, env=env)
    assert run.rc == 0, run
    from tests.lab.pki import make_cert
    (mount / "ca.crt").write_text(make_cert("Root CA not cluster-a")[2])
    bad = run_playbook(inv, playbook=playbook, env=env)
    assert bad.rc != 0
    assert "cluster-a: cannot reach the API server %s: TLS verification failed" % a.server in bad.stdout, bad
