# -*- coding: utf-8 -*-
# Copyright: meshfed.istio contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Thin, call-counting Kubernetes REST client used by the meshfed.istio modules.

The modules only talk to a handful of well-known paths, so instead of the dynamic client
(which runs API discovery on every invocation) this wraps ``kubernetes.client.ApiClient``
and speaks REST directly: one request per read or write, nothing hidden.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import traceback

try:
    import kubernetes
    import urllib3
    from kubernetes.client.rest import ApiException

    HAS_KUBERNETES = True
    KUBERNETES_IMPORT_ERROR = None
except ImportError:  # pragma: no cover - exercised only without the library
    HAS_KUBERNETES = False
    KUBERNETES_IMPORT_ERROR = traceback.format_exc()

    class ApiException(Exception):
        pass

    urllib3 = None


FIELD_MANAGER = "meshfed.istio"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "meshfed.istio"

# Argument spec shared by every module, named like kubernetes.core's.
AUTH_ARG_SPEC = dict(
    kubeconfig=dict(type="path", fallback=(lambda: os.environ.get("K8S_AUTH_KUBECONFIG"),)),
    context=dict(type="str"),
    host=dict(type="str"),
    api_key=dict(type="str", no_log=True),
    validate_certs=dict(type="bool", default=True, aliases=["verify_ssl"]),
    ca_cert=dict(type="path", aliases=["ssl_ca_cert"]),
    client_cert=dict(type="path", aliases=["cert_file"]),
    client_key=dict(type="path", aliases=["key_file"], no_log=False),
    request_timeout=dict(type="int", default=30),
)

# Short doc fragment text is kept in plugins/doc_fragments/auth.py.


class K8sError(Exception):
    """An error talking to a cluster; ``status`` is the HTTP status when there was one."""

    def __init__(self, message, status=None, reason=None):
        super(K8sError, self).__init__(message)
        self.status = status
        self.reason = reason


def _env_fallback(params, key, env):
    value = params.get(key)
    if value in (None, ""):
        value = os.environ.get(env)
    return value


def connect(params, cluster):
    """Return a :class:`Client` for ``params`` (AUTH_ARG_SPEC); errors name ``cluster``."""
    if not HAS_KUBERNETES:
        raise K8sError("%s: the kubernetes Python library is required" % cluster)
    kubeconfig = _env_fallback(params, "kubeconfig", "K8S_AUTH_KUBECONFIG")
    context = _env_fallback(params, "context", "K8S_AUTH_CONTEXT")
    host = _env_fallback(params, "host", "K8S_AUTH_HOST")
    api_key = _env_fallback(params, "api_key", "K8S_AUTH_API_KEY")

    configuration = kubernetes.client.Configuration()
    if kubeconfig or not host:
        path = kubeconfig or os.path.expanduser(os.environ.get("KUBECONFIG", "~/.kube/config").split(os.pathsep)[0])
        if not os.path.isfile(path):
            raise K8sError("%s: kubeconfig %s does not exist (field: kubeconfig)" % (cluster, path))
        try:
            contexts, _active = kubernetes.config.list_kube_config_contexts(config_file=path)
        except Exception as exc:  # the library raises ConfigException and yaml errors alike
            raise K8sError("%s: kubeconfig %s cannot be read: %s (field: kubeconfig)" % (cluster, path, _first_line(exc)))
        names = [c.get("name") for c in contexts or []]
        if context and context not in names:
            raise K8sError(
                "%s: context %r is not in kubeconfig %s (field: context; it has: %s)"
                % (cluster, context, path, ", ".join(sorted(n for n in names if n)) or "none")
            )
        try:
            kubernetes.config.load_kube_config(
                config_file=path, context=context, client_configuration=configuration, persist_config=False
            )
        except Exception as exc:
            raise K8sError("%s: kubeconfig %s context %s is unusable: %s (field: kubeconfig)"
                           % (cluster, path, context or "(current)", _first_line(exc)))
    if host:
        configuration.host = host
    if api_key:
        configuration.api_key = {"authorization": "Bearer %s" % api_key}
    if params.get("ca_cert"):
        configuration.ssl_ca_cert = params["ca_cert"]
    if params.get("client_cert"):
        configuration.cert_file = params["client_cert"]
    if params.get("client_key"):
        configuration.key_file = params["client_key"]
    if params.get("validate_certs") is False:
        configuration.verify_ssl = False
    # urllib3 retries on connection errors; one retry keeps an unreachable cluster fast to report.
    configuration.retries = 1
    return Client(kubernetes.client.ApiClient(configuration), cluster, timeout=params.get("request_timeout") or 30)


def _first_line(exc):
    text = str(exc).strip() or exc.__class__.__name__
    return text.splitlines()[0]


class Client(object):
    """Minimal REST client. ``calls`` counts requests per verb (benchmarks assert on it)."""

    def __init__(self, api_client, cluster, timeout=30):
        self.api_client = api_client
        self.cluster = cluster
        self.timeout = timeout
        self.calls = {}

    @property
    def server(self):
        return self.api_client.configuration.host

    def _request(self, verb, method, path, query=None, body=None, content_type=None, what=None):
        self.calls[verb] = self.calls.get(verb, 0) + 1
        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        if body is not None and content_type and content_type.endswith("yaml"):
            body = json.dumps(body)  # JSON is YAML; sent as is
        try:
            status, reason, data = self._send(method, path, list((query or {}).items()), headers, body)
        except ApiException as exc:
            if not exc.status:  # raised by the client for TLS failures
                raise K8sError("%s: cannot reach the API server %s: %s" % (
                    self.cluster, self.server, _connection_reason(exc)), reason="Unreachable")
            status, reason, data = exc.status, exc.reason, exc.body
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise K8sError("%s: cannot reach the API server %s: %s" % (
                self.cluster, self.server, _connection_reason(exc)), reason="Unreachable")
        if isinstance(data, bytes):
            data = data.decode("utf-8", "replace")
        if not 200 <= status < 300:
            raise K8sError(self._api_message(status, reason, data, method, path, what), status=status, reason=reason)
        return json.loads(data) if data else {}

    def _send(self, method, path, query, headers, body):
        client = self.api_client
        timeout = (10, self.timeout)
        if hasattr(client, "param_serialize"):  # kubernetes >= 35 (new generator)
            method, url, headers, _body, _post = client.param_serialize(
                method=method, resource_path=path, query_params=query, header_params=headers,
                auth_settings=["BearerToken"])
            resp = client.rest_client.request(method, url, headers=headers, body=body, _request_timeout=timeout)
            return resp.status, resp.reason, resp.read()
        resp = client.call_api(path, method, query_params=query, header_params=headers, body=body,
                               auth_settings=["BearerToken"], _preload_content=False, _request_timeout=timeout)
        resp = resp[0] if isinstance(resp, tuple) else resp
        return resp.status, resp.reason, resp.data

    def _api_message(self, status, reason, data, method, path, what):
        detail = reason or ""
        try:
            detail = json.loads(data).get("message") or detail
        except Exception:
            pass
        target = what or "%s %s" % (method, path)
        if status == 403:
            return "%s: forbidden: %s (%s). Grant this verb to the identity in use (see meta/rbac/)." % (
                self.cluster, detail, target)
        if status == 401:
            return "%s: unauthorized: the credentials in use were rejected by %s (%s)" % (
                self.cluster, self.server, target)
        return "%s: %s failed with HTTP %s: %s" % (self.cluster, target, status, detail)

    # -- verbs ---------------------------------------------------------------------------------
    def get(self, path, what=None):
        """GET an object; returns None on 404."""
        try:
            return self._request("get", "GET", path, what=what)
        except K8sError as exc:
            if exc.status == 404:
                return None
            raise

    def list(self, path, label_selector=None, what=None):
        """LIST a collection (all pages); returns the items. 404 (kind not served) raises."""
        items = []
        query = {"limit": 500}
        if label_selector:
            query["labelSelector"] = label_selector
        while True:
            data = self._request("list", "GET", path, query=query, what=what)
            items.extend(data.get("items") or [])
            token = (data.get("metadata") or {}).get("continue")
            if not token:
                return items
            query["continue"] = token

    def apply(self, path, body, dry_run=False, what=None):
        """Server-side apply ``body`` at ``path`` (the object's own path) with our field manager."""
        query = {"fieldManager": FIELD_MANAGER, "force": "true"}
        if dry_run:
            query["dryRun"] = "All"
        return self._request("apply", "PATCH", path, query=query, body=body,
                             content_type="application/apply-patch+yaml", what=what)

    def merge_patch(self, path, body, dry_run=False, what=None):
        query = {"fieldManager": FIELD_MANAGER}
        if dry_run:
            query["dryRun"] = "All"
        return self._request("patch", "PATCH", path, query=query, body=body,
                             content_type="application/merge-patch+json", what=what)

    def delete(self, path, resource_version=None, what=None):
        """DELETE with a resourceVersion precondition; returns False when already gone."""
        body = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if resource_version:
            body["preconditions"] = {"resourceVersion": resource_version}
        try:
            self._request("delete", "DELETE", path, body=body, what=what)
        except K8sError as exc:
            if exc.status == 404:
                return False
            raise
        return True


def _connection_reason(exc):
    reason = getattr(exc, "reason", None)
    text = str(reason or exc)
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return ("TLS verification failed (the server certificate is not signed by the configured CA; "
                "fix ca_cert/kubeconfig rather than disabling validate_certs)")
    if "Connection refused" in text or "NewConnectionError" in text:
        return "connection refused"
    if "timed out" in text.lower():
        return "timed out"
    return text.splitlines()[0] if text else exc.__class__.__name__


# -- paths ---------------------------------------------------------------------------------------
def core_path(resource, namespace=None, name=None):
    path = "/api/v1"
    if namespace:
        path += "/namespaces/%s" % namespace
    path += "/" + resource
    if name:
        path += "/" + name
    return path


def group_path(group, version, resource, namespace=None, name=None, subresource=None):
    path = "/apis/%s/%s" % (group, version)
    if namespace:
        path += "/namespaces/%s" % namespace
    path += "/" + resource
    if name:
        path += "/" + name
    if subresource:
        path += "/" + subresource
    return path
