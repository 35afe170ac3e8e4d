"""plugins/module_utils/kube: the one transport (urllib3), where its settings come from (kubeconfig, the
pod's service account, the options), what goes on the wire, and the errors."""

import base64
import json
import os
import ssl
import stat
import subprocess
import sys
from types import SimpleNamespace

import pytest
import urllib3

from ansible_collections.meshfed.istio.plugins.module_utils.kube import client as k8s
from ansible_collections.meshfed.istio.plugins.module_utils.kube import kubeconfig as kc
from ansible_collections.meshfed.istio.plugins.module_utils.common.errors import K8sError

SERVER = "https://127.0.0.1:6443"


class Pool:
    """Stands in for the urllib3 pool: records what is sent, answers ``responses`` in order."""

    def __init__(self, responses):
        self.responses, self.sent = list(responses), []

    def request(self, method, url, body=None, headers=None, timeout=None):
        self.sent.append(SimpleNamespace(method=method, url=url, body=body, headers=headers, timeout=timeout))
        response = self.responses.pop(0)
        if isinstance(response, Exception):
            raise response
        return response


def Response(status, body, reason="OK", headers=None):
    return SimpleNamespace(status=status, reason=reason, data=json.dumps(body).encode(), headers=headers or {})


def client(*responses, **kwargs):
    c = k8s.Client(kc.Settings(SERVER), "cluster-a", **kwargs)
    c.pool = Pool(responses)
    return c


def test_list_follows_continue_tokens():
    c = client(Response(200, {"items": [1, 2], "metadata": {"continue": "t1"}}), Response(200, {"items": [3], "metadata": {}}))
    assert c.list("/api/v1/services", label_selector="x") == [1, 2, 3]
    assert c.calls == {"list": 2}
    assert [s.url for s in c.pool.sent] == [SERVER + "/api/v1/services?limit=500&labelSelector=x",
                                            SERVER + "/api/v1/services?limit=500&labelSelector=x&continue=t1"]


def test_metadata_only_list_asks_for_partial_object_metadata():
    c = client(Response(200, {"items": [{"metadata": {"name": "a"}}], "metadata": {}}), Response(200, {"items": []}))
    assert c.list("/api/v1/services", metadata_only=True) == [{"metadata": {"name": "a"}}]
    c.list("/api/v1/services")
    assert [s.headers["Accept"] for s in c.pool.sent] == [
        "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json", "application/json"]


def test_forbidden_and_unauthorized_messages():
    denied = Response(403, {"message": "services is forbidden: User \"u\" cannot list"}, "Forbidden")
    with pytest.raises(K8sError) as err:
        client(denied).list("/api/v1/services", what="list Services")
    assert str(err.value) == ('cluster-a: forbidden: services is forbidden: User "u" cannot list (list Services). '
                              'Grant this verb to the identity in use (see meta/rbac/).')
    assert (err.value.status, err.value.reason, err.value.cluster) == (403, "Forbidden", "cluster-a")
    with pytest.raises(K8sError) as err:
        client(Response(401, {}, "Unauthorized")).get("/api/v1/nodes")
    assert str(err.value) == "cluster-a: unauthorized: the credentials in use were rejected by %s (GET /api/v1/nodes)" % SERVER


def test_not_found_is_none_or_false_and_other_errors_raise():
    gone = Response(404, {"message": "not found"}, "Not Found")
    assert client(gone).get("/api/v1/x") is None
    assert client(gone).delete("/api/v1/x") is False
    with pytest.raises(K8sError, match=r"cluster-a: PATCH /p failed with HTTP 422: bad spec"):
        client(Response(422, {"message": "bad spec"})).merge_patch("/p", {})
    conflict = Response(409, {"message": "the object has been modified"}, "Conflict")
    with pytest.raises(K8sError) as err:
        client(conflict).merge_patch("/p", {}, what="patch ConfigMap")
    assert err.value.status == 409 and str(err.value) == ("cluster-a: patch ConfigMap failed with HTTP 409: "
                                                          "the object has been modified")


def test_writes_carry_field_manager_dry_run_content_type_and_preconditions():
    c = client(Response(200, {"kind": "X"}), Response(200, {}), Response(200, {}))
    assert c.apply("/apis/x", {"kind": "X"}, dry_run=True) == {"kind": "X"}
    c.merge_patch("/apis/x", {"a": 1})
    assert c.delete("/apis/x", resource_version="7") is True
    apply_, patch, delete = c.pool.sent
    assert (apply_.method, apply_.url) == ("PATCH", SERVER + "/apis/x?fieldManager=meshfed.istio&force=true&dryRun=All")
    assert apply_.headers["Content-Type"] == "application/apply-patch+yaml" and json.loads(apply_.body) == {"kind": "X"}
    assert patch.url == SERVER + "/apis/x?fieldManager=meshfed.istio"
    assert patch.headers["Content-Type"] == "application/merge-patch+json" and json.loads(patch.body) == {"a": 1}
    assert delete.method == "DELETE" and delete.headers["Content-Type"] == "application/json"
    assert json.loads(delete.body)["preconditions"] == {"resourceVersion": "7"}
    assert (apply_.timeout.connect_timeout, apply_.timeout.read_timeout) == (10, 30)
    assert c.calls == {"apply": 1, "patch": 1, "delete": 1}


@pytest.mark.parametrize("error, reason", [
    (urllib3.exceptions.MaxRetryError(None, "/", reason="Connection refused"), "connection refused"),
    (urllib3.exceptions.MaxRetryError(None, "/", reason=urllib3.exceptions.SSLError(
        "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")), "TLS verification failed"),
    (OSError("read timed out"), "timed out"),
])
def test_unreachable_server(error, reason):
    with pytest.raises(K8sError) as err:
        client(error).get("/api/v1/x")
    assert str(err.value).startswith("cluster-a: cannot reach the API server %s: %s" % (SERVER, reason))
    assert err.value.reason == "Unreachable" and err.value.status is None


def _throttled(retry_after=None):
    return Response(429, {"message": "too many requests"}, "Too Many Requests",
                    headers={"Retry-After": retry_after} if retry_after else {})


def test_throttled_requests_wait_for_retry_after_then_succeed():
    c = client(_throttled("2"), _throttled(), Response(200, {"kind": "X"}))
    waits = []
    c.sleep = waits.append
    assert c.apply("/apis/x", {"kind": "X"}) == {"kind": "X"}
    assert waits == [2.0, 1.0] and c.calls == {"apply": 3}


def test_throttling_that_does_not_stop_fails_with_429():
    c = client(*[_throttled("60")] * 6)
    waits = []
    c.sleep = waits.append
    with pytest.raises(K8sError) as err:
        c.get("/api/v1/x")
    assert err.value.status == 429 and waits == [k8s.Client.MAX_WAIT] * 5 and c.calls == {"get": 6}


def test_impersonation_headers_one_group_header_each():
    c = client(Response(200, {}), impersonate=("jane", ["g1", "g2"]))
    c.get("/api/v1/namespaces/x")
    headers = c.pool.sent[0].headers
    assert headers["Impersonate-User"] == "jane" and headers.getlist("Impersonate-Group") == ["g1", "g2"]
    assert "Authorization" not in headers and headers["Accept"] == "application/json"


# -- where the settings come from -------------------------------------------------------------------
def kubeconfig_doc(name, server=SERVER, user=None, cluster=None):
    return {"apiVersion": "v1", "kind": "Config", "current-context": name,
            "clusters": [{"name": name, "cluster": dict(cluster or {}, server=server)}],
            "users": [{"name": name, "user": user or {"token": "t0ken-" + name}}],
            "contexts": [{"name": name, "context": {"cluster": name, "user": name}}]}


def kubeconfig(tmp_path, contexts=("a", "b")):
    path = tmp_path / "kubeconfig"
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": contexts[0],
        "clusters": [{"name": "c", "cluster": {"server": SERVER}}],
        "users": [{"name": "u", "user": {"token": "t0ken"}}],
        "contexts": [{"name": n, "context": {"cluster": "c", "user": "u"}} for n in contexts],
    }))
    return str(path)


def sent_headers(c):
    """The headers of one request through ``c`` (its pool replaced by a recorder)."""
    c.pool = Pool([Response(200, {})])
    c.get("/api/v1/x")
    return c.pool.sent[0].headers


def test_connect_reads_the_kubeconfig_and_options(tmp_path):
    c = k8s.connect({"kubeconfig": kubeconfig(tmp_path), "context": "b", "validate_certs": False,
                     "request_timeout": 5, "ca_cert": "/ca.pem"}, "cluster-a")
    assert c.server == SERVER and c.cluster == "cluster-a" and c.timeout == 5
    assert c.settings.verify is False and c.settings.ca_file == "/ca.pem"
    assert sent_headers(c)["Authorization"] == "Bearer t0ken"


def test_connect_with_host_and_api_key_only(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))  # host given: no kubeconfig is read, not even ~/.kube/config
    c = k8s.connect({"host": "https://127.0.0.2:6443", "api_key": "k"}, "cluster-a")
    assert c.server == "https://127.0.0.2:6443" and sent_headers(c)["Authorization"] == "Bearer k"


@pytest.mark.parametrize("setup, expected", [
    (lambda tmp: {"kubeconfig": str(tmp / "missing")}, "does not exist (field: kubeconfig)"),
    (lambda tmp: {"kubeconfig": kubeconfig(tmp), "context": "zz"},
     "context 'zz' is not in kubeconfig %s (field: context; it has: a, b)"),
    (lambda tmp: (tmp / "bad").write_text("clusters: [") and {"kubeconfig": str(tmp / "bad")}, "cannot be read"),
])
def test_connect_errors_name_cluster_and_field(tmp_path, setup, expected):
    params = setup(tmp_path)
    with pytest.raises(K8sError) as err:
        k8s.connect(params, "cluster-a")
    assert str(err.value).startswith("cluster-a: kubeconfig" if "context" not in params else "cluster-a: context")
    assert expected.replace("%s", params["kubeconfig"]) in str(err.value)
    assert err.value.field == ("context" if "context" in params else "kubeconfig")
    assert "t0ken" not in str(err.value)


def test_kubeconfig_given_as_a_dict():
    c = k8s.connect({"kubeconfig": kubeconfig_doc("x", "https://127.0.0.9:6443")}, "cluster-x")
    assert c.server == "https://127.0.0.9:6443" and sent_headers(c)["Authorization"] == "Bearer t0ken-x"


def test_multi_path_kubeconfig_env_is_merged_like_kubectl(tmp_path, monkeypatch):
    paths = []
    for name, port in (("x", 6441), ("y", 6442)):
        path = tmp_path / name
        path.write_text(json.dumps(kubeconfig_doc(name, "https://127.0.0.1:%d" % port)))
        paths.append(str(path))
    monkeypatch.setenv("KUBECONFIG", ":".join(paths + [str(tmp_path / "missing")]))
    assert k8s.connect({"context": "y"}, "cluster-y").server == "https://127.0.0.1:6442"
    assert k8s.connect({"context": "x"}, "cluster-x").server == "https://127.0.0.1:6441"


def test_token_file_and_relative_paths_resolve_against_the_kubeconfig(tmp_path):
    (tmp_path / "tok").write_text("from-file\n")
    (tmp_path / "kc").write_text(json.dumps(kubeconfig_doc("x", user={"tokenFile": "tok"})))
    c = k8s.connect({"kubeconfig": str(tmp_path / "kc")}, "cluster-x")
    assert sent_headers(c)["Authorization"] == "Bearer from-file"


def test_basic_auth_from_the_options_or_the_kubeconfig(tmp_path):
    basic = "Basic " + base64.b64encode(b"u:p").decode()
    assert sent_headers(k8s.connect({"host": SERVER, "username": "u", "password": "p"}, "cluster-a"))["Authorization"] == basic
    doc = kubeconfig_doc("x", user={"username": "u", "password": "p"})
    assert sent_headers(k8s.connect({"kubeconfig": doc}, "cluster-x"))["Authorization"] == basic
    # a token option wins over basic auth, as in kubernetes.core
    assert sent_headers(k8s.connect({"kubeconfig": doc, "api_key": "k"}, "cluster-x"))["Authorization"] == "Bearer k"


def test_tls_files_reach_the_settings_and_unset_validate_certs_verifies():
    settings = kc.settings({"host": SERVER, "ca_cert": "/ca.pem", "client_cert": "/c.pem", "client_key": "/k.pem"},
                           "cluster-a")
    assert (settings.ca_file, settings.cert_file, settings.key_file) == ("/ca.pem", "/c.pem", "/k.pem")
    assert settings.verify is True and settings.unverified is None


def test_proxy_options_go_through_a_urllib3_proxy_manager_unless_no_proxy_names_the_server():
    params = {"host": SERVER, "api_key": "k", "proxy": "http://127.0.0.1:3128", "no_proxy": "10.0.0.0/8,.example.org",
              "proxy_headers": {"proxy_basic_auth": "pu:pp", "user_agent": "meshfed", "basic_auth": None}}
    pool = k8s.connect(params, "cluster-a").pool
    assert isinstance(pool, urllib3.ProxyManager) and pool.proxy.url == "http://127.0.0.1:3128"
    assert pool.proxy_headers["user-agent"] == "meshfed"
    assert pool.proxy_headers["proxy-authorization"] == "Basic " + base64.b64encode(b"pu:pp").decode()
    for server in ("https://10.1.2.3:6443", "https://API.Example.org:6443", "https://[::1]:6443", "https://kube:7443"):
        no_proxy = "::1/128,10.0.0.0/8,.example.org,kube:7443"
        pool = k8s.connect(dict(params, host=server, no_proxy=no_proxy), "cluster-a").pool
        assert not isinstance(pool, urllib3.ProxyManager), server
    for server in ("https://example.org.evil:6443", "https://kube:6443"):
        assert isinstance(k8s.connect(dict(params, host=server, no_proxy=no_proxy), "cluster-a").pool,
                          urllib3.ProxyManager), server


def test_a_socks_proxy_goes_through_urllib3s_socks_manager(monkeypatch):
    made = []

    class SOCKSProxyManager:
        def __init__(self, proxy_url, headers=None, **options):
            made.append((proxy_url, headers, options["cert_reqs"]))
    monkeypatch.setitem(sys.modules, "urllib3.contrib.socks", SimpleNamespace(SOCKSProxyManager=SOCKSProxyManager))
    c = k8s.connect({"host": SERVER, "proxy": "socks5h://127.0.0.1:1080",
                     "proxy_headers": {"user_agent": "meshfed"}}, "cluster-a")
    assert isinstance(c.pool, SOCKSProxyManager)
    assert made == [("socks5h://127.0.0.1:1080", {"user-agent": "meshfed"}, "CERT_REQUIRED")]


def test_kubeconfig_proxy_url_is_used(tmp_path):
    doc = kubeconfig_doc("x", cluster={"proxy-url": "http://127.0.0.1:3129"})
    pool = k8s.connect({"kubeconfig": doc}, "cluster-x").pool
    assert isinstance(pool, urllib3.ProxyManager) and pool.proxy.port == 3129


def test_usual_kubeconfigs_connect_without_the_kubernetes_library(tmp_path):
    """A fresh interpreter: connecting with a token kubeconfig must not import the kubernetes package."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    code = ("import sys; from ansible_collections.meshfed.istio.plugins.module_utils.kube import client as k8s; "
            "c = k8s.connect({'kubeconfig': %r, 'context': 'b'}, 'cluster-a'); "
            "print(type(c.pool).__name__, 'kubernetes' in sys.modules)" % kubeconfig(tmp_path))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=env).stdout.split()
    assert out == ["PoolManager", "False"]


def test_tls_is_verified_by_default_and_an_unusable_ca_is_said_without_secrets(tmp_path):
    path = tmp_path / "kc"
    doc = kubeconfig_doc("x", cluster={"certificate-authority-data": "bm90IGEgY2VydA=="})  # "not a cert"
    path.write_text(json.dumps(doc))
    with pytest.raises(K8sError) as err:  # the kubeconfig's CA is read, and unusable: said, no secret
        k8s.connect({"kubeconfig": str(path)}, "cluster-x")
    assert str(err.value).startswith("cluster-x: the TLS settings for %s are unusable" % SERVER)
    assert "t0ken" not in str(err.value)
    c = k8s.connect({"kubeconfig": str(path), "validate_certs": False}, "cluster-x")
    assert c.pool.connection_pool_kw["cert_reqs"] == "CERT_NONE"
    doc["clusters"][0]["cluster"].pop("certificate-authority-data")
    path.write_text(json.dumps(doc))
    kw = k8s.connect({"kubeconfig": str(path)}, "cluster-x").pool.connection_pool_kw
    assert kw["cert_reqs"] == "CERT_REQUIRED" and kw["ssl_context"].verify_mode == ssl.CERT_REQUIRED
    assert kw["ssl_context"].check_hostname is True


@pytest.mark.parametrize("env, value, expected", [
    ("K8S_AUTH_VERIFY_SSL", "false", False),
    ("K8S_AUTH_SSL_CA_CERT", "/env-ca.pem", "/env-ca.pem"),
    ("K8S_AUTH_CERT_FILE", "/env-cert.pem", "/env-cert.pem"),
    ("K8S_AUTH_IMPERSONATE_GROUPS", "a,b", ["a", "b"]),
])
def test_every_option_has_its_k8s_auth_environment_fallback(monkeypatch, env, value, expected):
    """The argument spec's fallbacks, as AnsibleModule applies them (AWX/AAP inject these variables)."""
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
    monkeypatch.setenv(env, value)
    params = ArgumentSpecValidator(k8s.AUTH_ARG_SPEC).validate({}).validated_parameters
    option = {"K8S_AUTH_VERIFY_SSL": "validate_certs", "K8S_AUTH_SSL_CA_CERT": "ca_cert",
              "K8S_AUTH_CERT_FILE": "client_cert", "K8S_AUTH_IMPERSONATE_GROUPS": "impersonate_groups"}[env]
    assert params[option] == expected


# -- TLS verification off: every source is named ------------------------------------------------------
def test_what_turned_tls_verification_off_is_named(tmp_path, monkeypatch):
    monkeypatch.delenv("K8S_AUTH_VERIFY_SSL", raising=False)
    assert k8s.connect({"host": SERVER}, "cluster-a").unverified is None
    assert k8s.connect({"host": SERVER, "validate_certs": True}, "cluster-a").unverified is None
    assert k8s.connect({"host": SERVER, "validate_certs": False}, "cluster-a").unverified == "validate_certs: false"
    monkeypatch.setenv("K8S_AUTH_VERIFY_SSL", "no")  # what AnsibleModule's fallback turns into validate_certs=False
    assert k8s.connect({"host": SERVER, "validate_certs": False}, "cluster-a").unverified == "K8S_AUTH_VERIFY_SSL=no"
    monkeypatch.delenv("K8S_AUTH_VERIFY_SSL")
    path = tmp_path / "kc"
    path.write_text(json.dumps(kubeconfig_doc("x", cluster={"insecure-skip-tls-verify": True})))
    c = k8s.connect({"kubeconfig": str(path)}, "cluster-x")
    assert c.unverified == "insecure-skip-tls-verify of cluster x in kubeconfig %s" % path
    assert c.pool.connection_pool_kw["cert_reqs"] == "CERT_NONE"


# -- exec and auth-provider users: the library obtains the credentials, urllib3 sends ----------------------
def test_exec_plugin_credentials_are_obtained_by_the_library_and_sent_through_urllib3(tmp_path):
    plugin = tmp_path / "plugin"
    plugin.write_text("#!%s\nimport json\nprint(json.dumps({'apiVersion': 'client.authentication.k8s.io/v1', "
                      "'kind': 'ExecCredential', 'status': {'token': 'from-exec'}}))\n" % sys.executable)
    plugin.chmod(plugin.stat().st_mode | stat.S_IXUSR)
    doc = kubeconfig_doc("x", user={"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": str(plugin),
                                             "interactiveMode": "Never"}})
    c = k8s.connect({"kubeconfig": doc}, "cluster-x")
    assert isinstance(c.pool, urllib3.PoolManager) and not isinstance(c.pool, urllib3.ProxyManager)
    assert c.server == SERVER
    assert sent_headers(c)["Authorization"] == "Bearer from-exec"


def test_auth_provider_token_is_obtained_by_the_library(tmp_path):
    claims = base64.urlsafe_b64encode(json.dumps({"exp": 4102444800}).encode()).decode().rstrip("=")
    id_token = "eyJhbGciOiJub25lIn0.%s.c2ln" % claims
    doc = kubeconfig_doc("x", user={"auth-provider": {"name": "oidc", "config": {
        "client-id": "meshfed", "id-token": id_token, "idp-issuer-url": "https://127.0.0.1:1"}}})
    c = k8s.connect({"kubeconfig": doc}, "cluster-x")
    assert sent_headers(c)["Authorization"] == "Bearer " + id_token


def test_exec_user_without_the_kubernetes_library_fails_naming_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "kubernetes", None)  # import kubernetes -> ImportError
    doc = kubeconfig_doc("x", user={"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": "true"}})
    with pytest.raises(K8sError) as err:
        k8s.connect({"kubeconfig": doc}, "cluster-x")
    assert str(err.value).startswith("cluster-x: an exec or auth-provider kubeconfig user needs the kubernetes "
                                     "Python library") and err.value.field == "kubeconfig"


# -- in-cluster: the pod's service account when there is no kubeconfig at all ------------------------
@pytest.fixture
def pod(tmp_path, monkeypatch):
    """A pod's environment: no kubeconfig, KUBERNETES_SERVICE_HOST/PORT, the service account mount."""
    mount = tmp_path / "serviceaccount"
    mount.mkdir()
    (mount / "token").write_text("pod-token-1\n")
    (mount / "namespace").write_text("meshfed")
    for name, value in (("HOME", str(tmp_path)), ("KUBERNETES_SERVICE_HOST", "10.96.0.1"),
                        ("KUBERNETES_SERVICE_PORT", "443"), ("MESHFED_SERVICE_ACCOUNT_DIR", str(mount))):
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("KUBECONFIG", raising=False)
    return mount


def test_in_cluster_uses_the_service_account_token_rereads_it_and_verifies_with_its_ca(pod, monkeypatch):
    from tests.lab.pki import make_cert
    (pod / "ca.crt").write_text(make_cert("Root CA in-cluster")[2])
    c = k8s.connect({}, "cluster-a")
    assert c.server == "https://10.96.0.1:443" and c.settings.ca_file == str(pod / "ca.crt")
    ctx = c.pool.connection_pool_kw["ssl_context"]
    assert sent_headers(c)["Authorization"] == "Bearer pod-token-1"
    assert ctx.verify_mode == ssl.CERT_REQUIRED and [c["subject"] for c in ctx.get_ca_certs()] == [
        ((("commonName", "Root CA in-cluster"),),)] and c.unverified is None
    (pod / "token").write_text("pod-token-2\n")  # the kubelet rotated it: the next connect reads the new one
    assert sent_headers(k8s.connect({}, "cluster-a"))["Authorization"] == "Bearer pod-token-2"
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "fd00::1")
    assert k8s.connect({}, "cluster-a").server == "https://[fd00::1]:443"


def test_in_cluster_only_without_any_kubeconfig(pod, tmp_path, monkeypatch):
    (tmp_path / ".kube").mkdir()
    (tmp_path / ".kube" / "config").write_text(json.dumps(kubeconfig_doc("home", "https://127.0.0.3:6443")))
    assert k8s.connect({}, "cluster-a").server == "https://127.0.0.3:6443"  # ~/.kube/config first
    (tmp_path / ".kube" / "config").unlink()
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))  # a KUBECONFIG naming nothing stays an error
    with pytest.raises(K8sError, match="does not exist"):
        k8s.connect({}, "cluster-a")
    monkeypatch.delenv("KUBECONFIG")
    assert k8s.connect({"host": "https://127.0.0.4:6443"}, "cluster-a").settings.authorization is None
    monkeypatch.delenv("KUBERNETES_SERVICE_PORT")  # not a pod: the usual error
    with pytest.raises(K8sError, match=r"kubeconfig .*\.kube/config does not exist \(field: kubeconfig\)"):
        k8s.connect({}, "cluster-a")


def test_in_cluster_without_a_token_fails_naming_the_file(pod):
    (pod / "token").unlink()
    with pytest.raises(K8sError) as err:
        k8s.connect({}, "cluster-a")
    assert str(err.value).startswith("cluster-a: no kubeconfig, and the in-cluster service account token %s "
                                     "cannot be read" % (pod / "token"))
    assert err.value.field == "kubeconfig"


def test_in_cluster_mount_is_the_pods_without_the_test_hook(pod, monkeypatch):
    assert kc.SERVICE_ACCOUNT_DIR == "/var/run/secrets/kubernetes.io/serviceaccount"
    monkeypatch.delenv("MESHFED_SERVICE_ACCOUNT_DIR")
    monkeypatch.setattr(kc, "SERVICE_ACCOUNT_DIR", str(pod))
    assert sent_headers(k8s.connect({}, "cluster-a"))["Authorization"] == "Bearer pod-token-1"
