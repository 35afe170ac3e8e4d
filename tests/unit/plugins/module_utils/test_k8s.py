"""plugins/module_utils/k8s.py: connection errors, both client generators, pagination, HTTP errors."""

import json
from types import SimpleNamespace

import pytest
import urllib3
from kubernetes.client.rest import ApiException

from ansible_collections.meshfed.istio.plugins.module_utils.kube import client as k8s
from ansible_collections.meshfed.istio.plugins.module_utils.common.errors import K8sError

SERVER = "https://127.0.0.1:6443"


class Response:
    def __init__(self, status, body, reason="OK"):
        self.status, self.reason, self.data = status, reason, json.dumps(body).encode()

    def read(self):
        return self.data


class NewApiClient:
    """kubernetes >= 35: param_serialize + rest_client.request."""

    def __init__(self, responses):
        self.configuration = SimpleNamespace(host=SERVER)
        self.responses = list(responses)
        self.sent = []
        self.rest_client = self

    def param_serialize(self, method, resource_path, query_params, header_params, auth_settings):
        return method, SERVER + resource_path, header_params, None, None

    def request(self, method, url, headers=None, body=None, _request_timeout=None):
        self.sent.append((method, url, headers, body))
        response = self.responses.pop(0)
        if isinstance(response, Exception):
            raise response
        return response


class OldApiClient:
    """Older generators: call_api returning (response, status, headers)."""

    def __init__(self, responses):
        self.configuration = SimpleNamespace(host=SERVER)
        self.responses = list(responses)
        self.sent = []

    def call_api(self, path, method, query_params=None, header_params=None, body=None, **kwargs):
        self.sent.append((method, path, query_params, body))
        return self.responses.pop(0), 200, {}


@pytest.fixture(params=[NewApiClient, OldApiClient])
def api(request):
    return request.param


def client(api, *responses):
    return k8s.Client(api(responses), "cluster-a")


def test_list_follows_continue_tokens(api):
    c = client(api, Response(200, {"items": [1, 2], "metadata": {"continue": "t1"}}),
               Response(200, {"items": [3], "metadata": {}}))
    assert c.list("/api/v1/services", label_selector="x") == [1, 2, 3]
    assert c.calls == {"list": 2}


def test_forbidden_and_unauthorized_messages(api):
    denied = Response(403, {"message": "services is forbidden: User \"u\" cannot list"}, "Forbidden")
    with pytest.raises(K8sError) as err:
        client(api, denied).list("/api/v1/services", what="list Services")
    assert str(err.value) == ('cluster-a: forbidden: services is forbidden: User "u" cannot list (list Services). '
                              'Grant this verb to the identity in use (see meta/rbac/).')
    assert (err.value.status, err.value.reason, err.value.cluster) == (403, "Forbidden", "cluster-a")
    with pytest.raises(K8sError) as err:
        client(api, Response(401, {}, "Unauthorized")).get("/api/v1/nodes")
    assert str(err.value) == "cluster-a: unauthorized: the credentials in use were rejected by %s (GET /api/v1/nodes)" % SERVER


def test_not_found_is_none_or_false_and_other_errors_raise(api):
    gone = Response(404, {"message": "not found"}, "Not Found")
    assert client(api, gone).get("/api/v1/x") is None
    assert client(api, gone).delete("/api/v1/x") is False
    with pytest.raises(K8sError, match=r"cluster-a: PATCH /p failed with HTTP 422: bad spec"):
        client(api, Response(422, {"message": "bad spec"})).merge_patch("/p", {})


def test_writes_carry_field_manager_dry_run_and_preconditions():
    api_client = NewApiClient([Response(200, {}), Response(200, {})])
    c = k8s.Client(api_client, "cluster-a")
    c.apply("/apis/x", {"kind": "X"}, dry_run=True)
    assert c.delete("/apis/x", resource_version="7") is True
    (apply_, delete) = api_client.sent
    assert apply_[2]["Content-Type"] == "application/apply-patch+yaml" and json.loads(apply_[3]) == {"kind": "X"}
    assert delete[3]["preconditions"] == {"resourceVersion": "7"}
    assert c.calls == {"apply": 1, "delete": 1}


@pytest.mark.parametrize("error, reason", [
    (urllib3.exceptions.MaxRetryError(None, "/", reason="Connection refused"), "connection refused"),
    (ApiException(status=0, reason="[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed"), "TLS verification failed"),
    (OSError("read timed out"), "timed out"),
])
def test_unreachable_server(error, reason):
    with pytest.raises(K8sError) as err:
        k8s.Client(NewApiClient([error]), "cluster-a").get("/api/v1/x")
    assert str(err.value).startswith("cluster-a: cannot reach the API server %s: %s" % (SERVER, reason))
    assert err.value.reason == "Unreachable" and err.value.status is None


def test_api_exception_with_status_is_an_http_error():
    error = ApiException(status=409, reason="Conflict")
    error.body = json.dumps({"message": "the object has been modified"})
    with pytest.raises(K8sError) as err:
        k8s.Client(NewApiClient([error]), "cluster-a").merge_patch("/p", {}, what="patch ConfigMap")
    assert err.value.status == 409 and "the object has been modified" in str(err.value)


def kubeconfig(tmp_path, contexts=("a", "b")):
    path = tmp_path / "kubeconfig"
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": contexts[0],
        "clusters": [{"name": "c", "cluster": {"server": SERVER}}],
        "users": [{"name": "u", "user": {"token": "t0ken"}}],
        "contexts": [{"name": n, "context": {"cluster": "c", "user": "u"}} for n in contexts],
    }))
    return str(path)


def test_connect_reads_the_kubeconfig_and_options(tmp_path):
    c = k8s.connect({"kubeconfig": kubeconfig(tmp_path), "context": "b", "validate_certs": False,
                     "request_timeout": 5, "ca_cert": "/ca.pem"}, "cluster-a")
    assert c.server == SERVER and c.cluster == "cluster-a" and c.timeout == 5
    assert c.api_client.configuration.verify_ssl is False and c.api_client.configuration.ssl_ca_cert == "/ca.pem"


def test_connect_with_host_and_api_key_only():
    c = k8s.connect({"host": "https://127.0.0.2:6443", "api_key": "k"}, "cluster-a")
    assert c.server == "https://127.0.0.2:6443"
    assert c.api_client.configuration.api_key == {"authorization": "Bearer k", "BearerToken": "Bearer k"}
    # what the client actually sends: the token as the Authorization header
    assert c.api_client.configuration.auth_settings()["BearerToken"]["value"] == "Bearer k"


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
    assert "t0ken" not in str(err.value)


def _throttled(retry_after=None):
    response = Response(429, {"message": "too many requests"}, "Too Many Requests")
    response.headers = {"Retry-After": retry_after} if retry_after else {}
    return response


def test_throttled_requests_wait_for_retry_after_then_succeed():
    c = client(NewApiClient, _throttled("2"), _throttled(), Response(200, {"kind": "X"}))
    waits = []
    c.sleep = waits.append
    assert c.apply("/apis/x", {"kind": "X"}) == {"kind": "X"}
    assert waits == [2.0, 1.0] and c.calls == {"apply": 3}


def test_throttling_that_does_not_stop_fails_with_429():
    c = client(NewApiClient, *[_throttled("60")] * 6)
    waits = []
    c.sleep = waits.append
    with pytest.raises(K8sError) as err:
        c.get("/api/v1/x")
    assert err.value.status == 429 and waits == [k8s.Client.MAX_WAIT] * 5 and c.calls == {"get": 6}


# -- kubernetes.core's connection options (issue 11) ----------------------------------------------------
def kubeconfig_doc(name, server):
    return {"apiVersion": "v1", "kind": "Config", "current-context": name,
            "clusters": [{"name": name, "cluster": {"server": server}}],
            "users": [{"name": name, "user": {"token": "t0ken-" + name}}],
            "contexts": [{"name": name, "context": {"cluster": name, "user": name}}]}


def test_kubeconfig_given_as_a_dict():
    c = k8s.connect({"kubeconfig": kubeconfig_doc("x", "https://127.0.0.9:6443")}, "cluster-x")
    assert c.server == "https://127.0.0.9:6443"
    assert c.api_client.configuration.auth_settings()["BearerToken"]["value"] == "Bearer t0ken-x"


def test_multi_path_kubeconfig_env_is_merged_like_kubectl(tmp_path, monkeypatch):
    paths = []
    for name, port in (("x", 6441), ("y", 6442)):
        path = tmp_path / name
        path.write_text(json.dumps(kubeconfig_doc(name, "https://127.0.0.1:%d" % port)))
        paths.append(str(path))
    monkeypatch.setenv("KUBECONFIG", ":".join(paths + [str(tmp_path / "missing")]))
    assert k8s.connect({"context": "y"}, "cluster-y").server == "https://127.0.0.1:6442"
    assert k8s.connect({"context": "x"}, "cluster-x").server == "https://127.0.0.1:6441"


def test_tls_proxy_and_basic_auth_options_reach_the_configuration():
    c = k8s.connect({"host": SERVER, "ca_cert": "/ca.pem", "client_cert": "/c.pem", "client_key": "/k.pem",
                     "username": "u", "password": "p", "proxy": "http://127.0.0.1:3128", "no_proxy": "10.0.0.0/8",
                     "proxy_headers": {"proxy_basic_auth": "pu:pp", "user_agent": "meshfed", "basic_auth": None}},
                    "cluster-a")
    cfg = c.api_client.configuration
    assert (cfg.ssl_ca_cert, cfg.cert_file, cfg.key_file) == ("/ca.pem", "/c.pem", "/k.pem")
    assert (cfg.username, cfg.password, cfg.proxy, cfg.no_proxy) == ("u", "p", "http://127.0.0.1:3128", "10.0.0.0/8")
    assert cfg.proxy_headers["user-agent"] == "meshfed" and cfg.proxy_headers["proxy-authorization"].startswith("Basic ")
    assert cfg.verify_ssl is True     # unset validate_certs verifies


def test_impersonation_headers_one_group_header_each():
    api = NewApiClient([Response(200, {})])
    client = k8s.Client(api, "cluster-a", impersonate=("jane", ["g1", "g2"]))
    client.get("/api/v1/namespaces/x")
    headers = api.sent[0][2]
    assert headers["Impersonate-User"] == "jane"
    assert headers.getlist("Impersonate-Group") == ["g1", "g2"]


def test_impersonated_groups_the_old_generator_cannot_send_fail_naming_the_field():
    api = OldApiClient([Response(200, {})])
    with pytest.raises(K8sError) as err:
        k8s.Client(api, "cluster-a", impersonate=("jane", ["g1"])).get("/api/v1/namespaces/x")
    assert (err.value.cluster, err.value.field) == ("cluster-a", "impersonate_groups")
    assert "needs kubernetes >= 35" in str(err.value) and api.sent == []
    k8s.Client(OldApiClient([Response(200, {})]), "cluster-a", impersonate=("jane", [])).get("/api/v1/namespaces/x")


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


# -- issue 12: REST over urllib3 without importing kubernetes, the library only when needed ------------
def test_usual_kubeconfigs_connect_without_the_kubernetes_library(tmp_path):
    """A fresh interpreter: connecting with a token kubeconfig must not import the kubernetes package."""
    import os
    import subprocess
    import sys
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    code = ("import sys; from ansible_collections.meshfed.istio.plugins.module_utils.kube import client as k8s; "
            "c = k8s.connect({'kubeconfig': %r, 'context': 'b'}, 'cluster-a'); "
            "print(type(c.api_client).__module__, 'kubernetes' in sys.modules)" % kubeconfig(tmp_path))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=env).stdout.split()
    assert out == ["ansible_collections.meshfed.istio.plugins.module_utils.kube.kubeconfig", "False"]


def test_light_client_sends_token_query_and_json_body(tmp_path):
    c = k8s.connect({"kubeconfig": kubeconfig(tmp_path)}, "cluster-a")
    sent = []

    class Pool:
        def request(self, method, url, body=None, headers=None, timeout=None):
            sent.append((method, url, body, headers, timeout))
            return SimpleNamespace(status=200, reason="OK", headers={}, data=b'{"kind": "X"}')
    c.api_client.pool = Pool()
    assert c.merge_patch("/apis/x", {"a": 1}, dry_run=True) == {"kind": "X"}
    method, url, body, headers, timeout = sent[0]
    assert (method, url) == ("PATCH", SERVER + "/apis/x?fieldManager=meshfed.istio&dryRun=All")
    assert json.loads(body) == {"a": 1} and headers["Content-Type"] == "application/merge-patch+json"
    assert headers["authorization"] == "Bearer t0ken" and timeout.read_timeout == 30


def test_tls_is_verified_by_default_and_files_replace_kubeconfig_data(tmp_path):
    import ssl
    path = tmp_path / "kc"
    doc = kubeconfig_doc("x", SERVER)
    doc["clusters"][0]["cluster"]["certificate-authority-data"] = "bm90IGEgY2VydA=="  # "not a cert"
    path.write_text(json.dumps(doc))
    with pytest.raises(K8sError) as err:  # the kubeconfig's CA is read, and unusable: said, no secret
        k8s.connect({"kubeconfig": str(path)}, "cluster-x")
    assert str(err.value).startswith("cluster-x: the TLS settings for %s are unusable" % SERVER)
    assert "t0ken" not in str(err.value)
    c = k8s.connect({"kubeconfig": str(path), "validate_certs": False}, "cluster-x")
    assert c.api_client.pool.connection_pool_kw["cert_reqs"] == "CERT_NONE"
    doc["clusters"][0]["cluster"].pop("certificate-authority-data")
    path.write_text(json.dumps(doc))
    c = k8s.connect({"kubeconfig": str(path)}, "cluster-x")
    kw = c.api_client.pool.connection_pool_kw
    assert kw["cert_reqs"] == "CERT_REQUIRED" and kw["ssl_context"].verify_mode == ssl.CERT_REQUIRED
    assert kw["ssl_context"].check_hostname is True


@pytest.mark.parametrize("user, params", [
    ({"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": "true"}}, {}),
    ({"token": "t"}, {"username": "u", "password": "p"}),
    ({"token": "t"}, {"proxy": "http://127.0.0.1:3128"}),
])
def test_what_the_light_path_does_not_implement_goes_to_the_library(tmp_path, user, params):
    doc = kubeconfig_doc("x", SERVER)
    doc["users"][0]["user"] = user
    c = k8s.connect(dict(params, kubeconfig=doc), "cluster-x")
    assert type(c.api_client).__module__.startswith("kubernetes.")
    assert c.server == SERVER


def test_token_file_and_relative_paths_resolve_against_the_kubeconfig(tmp_path):
    (tmp_path / "tok").write_text("from-file\n")
    doc = kubeconfig_doc("x", SERVER)
    doc["users"][0]["user"] = {"tokenFile": "tok"}
    (tmp_path / "kc").write_text(json.dumps(doc))
    c = k8s.connect({"kubeconfig": str(tmp_path / "kc")}, "cluster-x")
    assert c.api_client.configuration.auth_settings()["BearerToken"]["value"] == "Bearer from-file"
