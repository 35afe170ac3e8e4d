"""The lab itself. Real kube-apiservers with Istio's CRDs, each cluster its own PKI."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml
from cryptography import x509
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from tests.lab import kubeapi, pki
from tests.lab import seed as lab_seed
from tests.lab.lab import Lab, LabError

pytestmark = pytest.mark.lab

ISTIO = ("networking.istio.io", "v1")
TEST_NS = "lab-test"


@pytest.fixture(scope="module")
def trio(lab_clusters):
    """Fresh cluster-a, cluster-b, cluster-c with the default scenario (this module writes into them)."""
    clusters = lab_clusters(["cluster-a", "cluster-b", "cluster-c"])
    a = clusters[0]
    kubeapi.apply(a, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": TEST_NS}})
    return clusters


def _se(name, spec, namespace=TEST_NS):
    return {"apiVersion": "/".join(ISTIO), "kind": "ServiceEntry",
            "metadata": {"name": name, "namespace": namespace, "labels": {"test": "lab"}}, "spec": spec}


GOOD_SPEC = {
    "hosts": ["bar.xyz.svc.cluster-b.local"],
    "location": "MESH_INTERNAL",
    "resolution": "STATIC",
    "ports": [{"number": 8080, "name": "http", "protocol": "HTTP"},
              {"number": 9090, "name": "grpc-api", "protocol": "GRPC"}],
    "endpoints": [{"address": "192.0.2.11", "ports": {"http": 15443, "grpc-api": 15443},
                   "labels": {"security.istio.io/tlsMode": "istio"}}],
}


# ---- (a) a ServiceEntry round-trips through server-side apply --------------------------------------
def test_three_clusters_up_with_distinct_identities(trio):
    assert [c.name for c in trio] == ["cluster-a", "cluster-b", "cluster-c"]
    assert len({c.server for c in trio}) == 3
    for c in trio:
        assert c.context == c.name
        cfg = yaml.safe_load(c.kubeconfig.read_text())
        assert cfg["current-context"] == c.name
        assert [x["name"] for x in cfg["contexts"]] == [c.name]
        assert [x["name"] for x in cfg["clusters"]] == [c.name]
        assert cfg["clusters"][0]["cluster"]["server"] == c.server
        assert "certificate-authority-data" in cfg["clusters"][0]["cluster"]
        assert "insecure-skip-tls-verify" not in cfg["clusters"][0]["cluster"]
        # the kubeconfig works as-is through the standard loader, TLS verified
        api = k8s_config.new_client_from_config(config_file=str(c.kubeconfig), context=c.context)
        assert api.configuration.verify_ssl
        names = {n.metadata.name for n in k8s.CoreV1Api(api).list_namespace().items}
        assert {"default", "istio-system"} <= names
    # every cluster has its own serving CA: cluster-a's CA does not verify cluster-b
    a, b = trio[0], trio[1]
    cfg = a.configuration()
    cfg.host = b.server
    with pytest.raises(Exception) as err:
        k8s.CoreV1Api(k8s.ApiClient(cfg)).list_namespace(_request_timeout=5)
    assert "CERTIFICATE_VERIFY_FAILED" in str(err.value) or "certificate verify failed" in str(err.value)


def test_server_side_apply_service_entry_round_trip(trio):
    a = trio[0]
    stored = kubeapi.apply(a, _se("bar-from-b", GOOD_SPEC), field_manager="meshfed.istio")
    assert stored["metadata"]["uid"]
    got = k8s.CustomObjectsApi(a.api_client()).get_namespaced_custom_object(
        *ISTIO, TEST_NS, "serviceentries", "bar-from-b")
    assert got["spec"] == GOOD_SPEC
    assert got["metadata"]["labels"] == {"test": "lab"}
    managers = {m["manager"]: m["operation"] for m in got["metadata"]["managedFields"]}
    assert managers == {"meshfed.istio": "Apply"}
    # re-applying the same content is a no-op (resourceVersion unchanged)
    again = kubeapi.apply(a, _se("bar-from-b", GOOD_SPEC), field_manager="meshfed.istio")
    assert again["metadata"]["resourceVersion"] == got["metadata"]["resourceVersion"]
    # the other clusters did not see it
    for other in trio[1:]:
        items = k8s.CustomObjectsApi(other.api_client()).list_cluster_custom_object(*ISTIO, "serviceentries")
        assert items["items"] == []


# ---- (b) the real API server validates against Istio's CRD schema ---------------------------------
@pytest.mark.parametrize("change, field, words", [
    ({"resolution": "BOGUS"}, "spec.resolution", 'Unsupported value: "BOGUS"'),
    ({"ports": [{"number": "eighty", "name": "http", "protocol": "HTTP"}]}, "spec.ports[0].number",
     "must be of type integer"),
    # a CEL rule (x-kubernetes-validations) of the Istio CRD
    ({"ports": [{"number": 70000, "name": "http", "protocol": "HTTP"}]}, "spec.ports[0].number",
     "port must be between 1-65535"),
])
def test_invalid_service_entry_is_rejected(trio, change, field, words):
    a = trio[0]
    spec = dict(GOOD_SPEC, **change)
    with pytest.raises(ApiException) as err:
        k8s.CustomObjectsApi(a.api_client()).create_namespaced_custom_object(*ISTIO, TEST_NS, "serviceentries",
                                                                             _se("invalid", spec))
    assert err.value.status == 422, err.value.body
    message = json.loads(err.value.body)["message"]
    assert field in message and words in message, message


def test_invalid_service_entry_is_rejected_by_server_side_apply(trio):
    with pytest.raises(ApiException) as err:
        kubeapi.apply(trio[0], _se("invalid", dict(GOOD_SPEC, resolution="BOGUS")), field_manager="meshfed.istio")
    assert err.value.status == 422
    assert "spec.resolution" in json.loads(err.value.body)["message"]
    with pytest.raises(ApiException):
        k8s.CustomObjectsApi(trio[0].api_client()).get_namespaced_custom_object(
            *ISTIO, TEST_NS, "serviceentries", "invalid")


# ---- (c) every cluster has its own Istio root CA ---------------------------------------------------
def test_each_cluster_has_its_own_istio_root(trio):
    cacerts = {c.name: lab_seed.read_cacerts(c) for c in trio}
    roots = {n: pki.load_cert(v["root-cert.pem"]) for n, v in cacerts.items()}
    inters = {n: pki.load_cert(v["ca-cert.pem"]) for n, v in cacerts.items()}
    assert len({pki.fingerprint(r) for r in roots.values()}) == 3
    for name, root in roots.items():
        bc = root.extensions.get_extension_for_class(x509.BasicConstraints).value
        assert bc.ca
        assert root.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
        assert root.subject == root.issuer
        root.verify_directly_issued_by(root)  # self-signed
        inters[name].verify_directly_issued_by(root)
        for other, inter in inters.items():
            if other != name:
                with pytest.raises((ValueError, Exception)):
                    inter.verify_directly_issued_by(root)
        # the chain file is intermediate + root; the published root matches the secret's root
        chain = pki.load_certs(cacerts[name]["cert-chain.pem"])
        assert [pki.fingerprint(x) for x in chain] == [pki.fingerprint(inters[name]), pki.fingerprint(root)]
        c = next(c for c in trio if c.name == name)
        assert pki.fingerprint(lab_seed.read_root_pem(c)) == pki.fingerprint(root)
        assert root.subject.rfc4514_string() == "CN=Root CA,O=%s" % name


# ---- the seed scenario as the collection will read it ----------------------------------------------
def test_seed_scenario(trio):
    a, b, c = trio
    core = {x.name: k8s.CoreV1Api(x.api_client()) for x in trio}
    for cl in trio:
        api = core[cl.name]
        mesh_text = api.read_namespaced_config_map("istio", "istio-system").data["mesh"]
        mesh = yaml.safe_load(mesh_text)
        assert mesh["trustDomain"] == "%s.local" % cl.name
        assert mesh["defaultConfig"]["proxyMetadata"] == {"PROXY_CONFIG_XDS_AGENT": "true",
                                                          "ISTIO_META_DNS_CAPTURE": "true"}
        assert mesh["enableAutoMtls"] is True and mesh["accessLogFile"] == "/dev/stdout"
        assert "# managed by helm" in mesh_text
        gw = api.read_namespaced_service("istio-eastwestgateway", "istio-system")
        assert gw.spec.type == "LoadBalancer"
        assert gw.spec.selector == {"istio": "eastwestgateway"}
        assert {p.name: p.port for p in gw.spec.ports} == {"tls": 15443, "status-port": 15021}
        assert gw.status.load_balancer.ingress[0].ip.startswith("192.0.2.")
        dep = k8s.AppsV1Api(cl.api_client()).read_namespaced_deployment("istiod", "istio-system")
        env = {e.name: e.value for e in dep.spec.template.spec.containers[0].env}
        assert env["ISTIO_MULTIROOT_MESH"] == "true"
    assert len({core[x.name].read_namespaced_service("istio-eastwestgateway", "istio-system")
                .status.load_balancer.ingress[0].ip for x in trio}) == 3

    def public(cl):
        svcs = core[cl.name].list_service_for_all_namespaces().items
        return {(s.metadata.namespace, s.metadata.name): lab_seed.PUBLIC_LABEL in (s.metadata.labels or {})
                for s in svcs if s.metadata.namespace not in ("default", "istio-system")}

    assert public(a) == {("abc", "foo"): True, ("xyz", "internal"): False}
    assert public(b) == {("xyz", "bar"): True, ("xyz", "secret"): False}
    assert public(c) == {("web", "svc-cluster-c"): True}
    bar_svc = core["cluster-b"].read_namespaced_service("bar", "xyz")
    assert [(p.name, p.port) for p in bar_svc.spec.ports] == [("http", 8080), ("grpc-api", 9090)]
    assert bar_svc.metadata.labels[lab_seed.PUBLIC_LABEL] == ""
    # istio-ca-root-cert in every application namespace
    for ns in ("abc", "xyz"):
        assert core["cluster-a"].read_namespaced_config_map("istio-ca-root-cert", ns).data["root-cert.pem"] == \
            lab_seed.read_root_pem(a)
    # the IstioFederation CRD is installed when the collection ships it
    if lab_seed.crds.FEDERATION_CRD.is_file():
        k8s.ApiextensionsV1Api(a.api_client()).read_custom_resource_definition("istiofederations.meshfed.io")


def test_set_public_toggles_the_label(trio):
    b = trio[1]
    api = k8s.CoreV1Api(b.api_client())
    lab_seed.set_public(b, "xyz", "secret", True)
    assert api.read_namespaced_service("secret", "xyz").metadata.labels[lab_seed.PUBLIC_LABEL] == ""
    lab_seed.set_public(b, "xyz", "secret", False)
    assert lab_seed.PUBLIC_LABEL not in api.read_namespaced_service("secret", "xyz").metadata.labels


def test_reseed_keeps_the_ca_and_rejects_unknown_spec_keys(trio):
    c = trio[2]
    root = lab_seed.read_root_pem(c)
    spec = lab_seed.seed_cluster(c)
    assert lab_seed.read_root_pem(c) == root == spec["cacerts"]["root-cert.pem"]
    assert spec["gateway_ip"] == lab_seed.gateway_ip_for("cluster-c") == "192.0.2.12"
    with pytest.raises(ValueError, match="unknown key"):
        lab_seed.seed_cluster(c, dict(lab_seed.default_spec(c.name), public=[]))


# ---- RBAC and TokenRequest (test_faults.py builds on these) -----------------------------------------
def test_token_request_and_rbac(trio):
    a = trio[0]
    core = k8s.CoreV1Api(a.api_client())
    core.create_namespaced_service_account(TEST_NS, {"metadata": {"name": "reader"}})
    tok = core.create_namespaced_service_account_token(
        "reader", TEST_NS, {"spec": {"audiences": [], "expirationSeconds": 600}}).status.token
    as_reader = k8s.CoreV1Api(a.token_client(tok))
    with pytest.raises(ApiException) as err:
        as_reader.read_namespaced_config_map("istio", "istio-system")
    assert err.value.status == 403  # authenticated, but RBAC grants nothing yet
    rbac = k8s.RbacAuthorizationV1Api(a.api_client())
    rbac.create_namespaced_role("istio-system", {
        "metadata": {"name": "read-cm"},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]})
    rbac.create_namespaced_role_binding("istio-system", {
        "metadata": {"name": "read-cm"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "read-cm"},
        "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": TEST_NS}]})
    deadline = time.monotonic() + 10
    while True:  # RBAC changes reach the authorizer's informer within a moment
        try:
            assert as_reader.read_namespaced_config_map("istio", "istio-system").data["mesh"]
            break
        except ApiException as e:
            if e.status != 403 or time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    with pytest.raises(ApiException) as err:
        as_reader.list_namespaced_secret("istio-system")
    assert err.value.status == 403
    # a token of cluster-a means nothing to cluster-b
    with pytest.raises(ApiException) as err:
        k8s.CoreV1Api(trio[1].token_client(tok)).list_namespace()
    assert err.value.status == 401


# ---- unreachable cluster simulation ----------------------------------------------------------------
def test_stop_and_restart_apiserver_keeps_data_and_port(trio):
    c = trio[2]
    server = c.server
    kubeapi.apply(c, {"apiVersion": "v1", "kind": "ConfigMap",
                      "metadata": {"name": "survives", "namespace": "default"}, "data": {"k": "v"}})
    c.stop_apiserver()
    assert not c.apiserver_running and c.etcd.alive()
    with pytest.raises(Exception):
        k8s.CoreV1Api(c.api_client()).list_namespace(_request_timeout=3)
    c.start_apiserver()
    assert c.server == server
    cm = k8s.CoreV1Api(c.api_client()).read_namespaced_config_map("survives", "default")
    assert cm.data == {"k": "v"}


# ---- process hygiene and error reporting -----------------------------------------------------------
def test_failed_cluster_reports_log_tail_and_leaves_nothing(tmp_path, lab_bin_dir):
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "etcd").symlink_to(lab_bin_dir / "etcd")
    (fake / "kube-apiserver").write_text("#!/bin/sh\necho 'E0000 fake apiserver: cannot start (test)' >&2\nexit 3\n")
    (fake / "kube-apiserver").chmod(0o755)
    broken = Lab(tmp_path / "work", bin_dir=fake)
    try:
        with pytest.raises(LabError) as err:
            broken.start(["cluster-broken"], timeout=20)
        assert "kube-apiserver exited" in str(err.value)
        assert "fake apiserver: cannot start (test)" in str(err.value)
        assert broken.clusters == []
    finally:
        broken.close()
    out = subprocess.run(["pgrep", "-f", str(tmp_path / "work")], check=False, capture_output=True, text=True).stdout
    assert out.strip() == ""


_OWNER = """
import sys, time
from tests.lab.lab import Lab
lab = Lab(sys.argv[1], bin_dir=sys.argv[2])
c, = lab.start(['cluster-orphan'])
print(c.etcd.pid, c.apiserver.pid, flush=True)
time.sleep(600)
"""

# A child-subreaper between pytest and the lab owner: orphans are re-parented to it (not to PID 1),
# so it can reap them and nothing is left behind, not even a zombie.
_REAPER = """
import ctypes, os, signal, subprocess, sys, time
ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
owner = subprocess.Popen([sys.executable, "-c", sys.argv[1]] + sys.argv[2:], stdout=subprocess.PIPE, text=True)
print(owner.stdout.readline().strip(), flush=True)
owner.kill()  # SIGKILL: no atexit, no signal handler; only PR_SET_PDEATHSIG can clean up
deadline = time.monotonic() + 15
while time.monotonic() < deadline:
    try:
        pid, _ = os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        print("all-reaped", flush=True)
        break
    if pid == 0:
        time.sleep(0.05)
else:
    print("still-running", flush=True)
"""


def test_children_die_with_the_python_process(tmp_path, lab_bin_dir):
    """SIGKILL the Python process that owns a lab: PR_SET_PDEATHSIG takes etcd + kube-apiserver with it."""
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    proc = subprocess.Popen([sys.executable, "-c", _REAPER, _OWNER, str(tmp_path / "orphan"), str(lab_bin_dir)],
                            cwd=repo, stdout=subprocess.PIPE, text=True)
    pids = []
    try:
        pids = [int(p) for p in proc.stdout.readline().split()]
        assert len(pids) == 2
        assert proc.stdout.readline().strip() == "all-reaped"
        assert not any(_alive(p) for p in pids)
    finally:
        for p in pids:  # never leak, even if the assertion failed
            if _alive(p):
                os.kill(p, 9)
        proc.wait(30)


def _alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


_HELD = """
import sys, time
from concurrent.futures import thread
from tests.lab.lab import Lab
lab = Lab(sys.argv[1], bin_dir=sys.argv[2])
c, = lab.start(['cluster-held'])
with thread._global_shutdown_lock:  # where SIGTERM finds a ThreadPoolExecutor.submit starting its thread
    print(c.etcd.pid, c.apiserver.pid, flush=True)
    time.sleep(600)
"""


def test_sigterm_inside_a_thread_pool_submit_stops_the_lab_and_exits(tmp_path, lab_bin_dir):
    """The lab's SIGTERM handler runs on the interrupted thread: it must not wait for a lock that thread holds
    (the benchmark, SIGTERMed in one of its many thread pools, hung with every etcd left running)."""
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    proc = subprocess.Popen([sys.executable, "-c", _HELD, str(tmp_path / "held"), str(lab_bin_dir)],
                            cwd=repo, stdout=subprocess.PIPE, text=True)
    pids = []
    try:
        pids = [int(p) for p in proc.stdout.readline().split()]
        assert len(pids) == 2
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == -signal.SIGTERM
        assert not any(_alive(p) for p in pids)
    finally:
        for p in pids + ([proc.pid] if proc.poll() is None else []):  # never leak, even if an assertion failed
            if _alive(p):
                os.kill(p, 9)
        proc.wait(30)
