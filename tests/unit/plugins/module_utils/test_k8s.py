"""plugins/module_utils/k8s.py: connection errors, both client generators, pagination, HTTP errors."""

import json
from types import SimpleNamespace

import pytest
import urllib3
from kubernetes.client.rest import ApiException

from ansible_collections.meshfed.istio.plugins.module_utils import k8s
from ansible_collections.meshfed.istio.plugins.module_utils.errors import K8sError

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
    assert c.api_client.configuration.api_key == {"authorization": "Bearer k"}


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
