# -*- coding: utf-8 -*-
# Copyright: meshfed.istio contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Thin, call-counting Kubernetes REST client used by the meshfed.istio modules.

The modules only talk to a handful of well-known paths, so instead of the dynamic client
(which runs API discovery on every invocation) this speaks REST directly: one request per read
or write, nothing hidden. The transport is kubeconfig.ApiClient (urllib3) for the usual
kubeconfigs, ``kubernetes.client.ApiClient`` for what only the library implements.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import json
import os
import ssl
import threading
import time

from ansible.module_utils.basic import env_fallback, missing_required_lib

from ansible_collections.meshfed.istio.plugins.module_utils.kube import kubeconfig
from ansible_collections.meshfed.istio.plugins.module_utils.kube.kubeconfig import urllib3
from ansible_collections.meshfed.istio.plugins.module_utils.common.errors import K8sError

FIELD_MANAGER = "meshfed.istio"

# Argument spec shared by every module: kubernetes.core's connection options, names, aliases and
# K8S_AUTH_* environment fallbacks (AWX/AAP's Kubernetes credential injects K8S_AUTH_HOST, _API_KEY,
# _VERIFY_SSL and _SSL_CA_CERT). A module option wins over the environment, which wins over the kubeconfig.
AUTH_ARG_SPEC = dict(
    kubeconfig=dict(type="raw", fallback=(env_fallback, ["K8S_AUTH_KUBECONFIG"])),
    context=dict(type="str", fallback=(env_fallback, ["K8S_AUTH_CONTEXT"])),
    host=dict(type="str", fallback=(env_fallback, ["K8S_AUTH_HOST"])),
    api_key=dict(type="str", no_log=True, fallback=(env_fallback, ["K8S_AUTH_API_KEY"])),
    username=dict(type="str", fallback=(env_fallback, ["K8S_AUTH_USERNAME"])),
    password=dict(type="str", no_log=True, fallback=(env_fallback, ["K8S_AUTH_PASSWORD"])),
    validate_certs=dict(type="bool", aliases=["verify_ssl"], fallback=(env_fallback, ["K8S_AUTH_VERIFY_SSL"])),
    ca_cert=dict(type="path", aliases=["ssl_ca_cert"], fallback=(env_fallback, ["K8S_AUTH_SSL_CA_CERT"])),
    client_cert=dict(type="path", aliases=["cert_file"], fallback=(env_fallback, ["K8S_AUTH_CERT_FILE"])),
    client_key=dict(type="path", aliases=["key_file"], no_log=False, fallback=(env_fallback, ["K8S_AUTH_KEY_FILE"])),
    proxy=dict(type="str", fallback=(env_fallback, ["K8S_AUTH_PROXY"])),
    no_proxy=dict(type="str", fallback=(env_fallback, ["K8S_AUTH_NO_PROXY"])),
    proxy_headers=dict(type="dict", options=dict(
        proxy_basic_auth=dict(type="str", no_log=True),
        basic_auth=dict(type="str", no_log=True),
        user_agent=dict(type="str"),
    )),
    impersonate_user=dict(type="str", fallback=(env_fallback, ["K8S_AUTH_IMPERSONATE_USER"])),
    impersonate_groups=dict(type="list", elements="str", fallback=(env_fallback, ["K8S_AUTH_IMPERSONATE_GROUPS"])),
    request_timeout=dict(type="int", default=30),
)
# Keys of a kubeconfig's user entry (and of its auth-provider config / exec env) whose values are secret.
_SECRET_USER_KEYS = ("token", "password", "client-key-data", "client-certificate-data")


def kubeconfig_secrets(value):
    """The secret strings of a kubeconfig option, for the module's ``no_log_values``: a dict's user
    tokens, passwords, client keys and certificates, auth-provider config and exec env values; a string
    with a line break (kubeconfig content given where a path belongs) whole."""
    if isinstance(value, str):
        return {value} if "\n" in value else set()
    if not isinstance(value, dict):
        return set()
    found = set()
    for entry in value.get("users") or []:
        user = (entry or {}).get("user") if isinstance(entry, dict) else None
        if not isinstance(user, dict):
            continue
        found.update(user.get(key) for key in _SECRET_USER_KEYS)
        provider = user.get("auth-provider") or {}
        found.update(((provider.get("config") if isinstance(provider, dict) else None) or {}).values())
        exec_ = user.get("exec") if isinstance(user.get("exec"), dict) else {}
        found.update(item.get("value") for item in exec_.get("env") or [] if isinstance(item, dict))
    return set(v for v in found if isinstance(v, str) and v)


# Options Configuration takes as they are (option -> attribute).
_OPTIONS = (("host", "host"), ("ca_cert", "ssl_ca_cert"), ("client_cert", "cert_file"), ("client_key", "key_file"),
            ("username", "username"), ("password", "password"), ("proxy", "proxy"), ("no_proxy", "no_proxy"))
# Options only the kubernetes library implements: with any of them set, it makes the connection.
_LIBRARY_OPTIONS = ("username", "password", "proxy", "no_proxy", "proxy_headers")


def connect(params, cluster, pool_size=1):
    """Return a :class:`Client` for ``params`` (AUTH_ARG_SPEC); errors name ``cluster``. ``pool_size``:
    connections kept open (the most requests in flight)."""
    context, with_cluster = params.get("context"), dict(cluster=cluster, field="kubeconfig")
    loaded = None
    if params.get("kubeconfig") or not params.get("host"):
        # the kubeconfig option, else every path of KUBECONFIG (merged as kubectl does), else ~/.kube/config
        source = params.get("kubeconfig") or os.environ.get("KUBECONFIG", "").strip(os.pathsep) or "~/.kube/config"
        loaded = _read_kubeconfig(source, context, with_cluster)
    configuration = None
    if not any(params.get(option) for option in _LIBRARY_OPTIONS):
        configuration = _light(loaded, context, with_cluster)
    library = configuration is None
    if library:
        configuration = _library_configuration(loaded, context, with_cluster)
    configuration.connection_pool_maxsize = max(pool_size, configuration.connection_pool_maxsize or 1)
    _apply_options(configuration, params)
    return Client(_api_client(configuration, library, with_cluster), cluster,
                  timeout=params.get("request_timeout") or 30,
                  impersonate=(params.get("impersonate_user"), params.get("impersonate_groups") or []))


def _apply_options(configuration, params):
    """Module options over the kubeconfig's settings."""
    if params.get("api_key"):
        # kubernetes < 35 reads the token under "authorization", >= 35 under "BearerToken"
        token = "Bearer %s" % params["api_key"]
        configuration.api_key = {"authorization": token, "BearerToken": token}
    for option, attribute in _OPTIONS:
        if params.get(option):
            setattr(configuration, attribute, params[option])
    if params.get("proxy_headers"):
        headers = {k: v for k, v in params["proxy_headers"].items() if v}
        configuration.proxy_headers = urllib3.util.make_headers(**headers)
    if params.get("validate_certs") is False:
        configuration.verify_ssl = False
    # urllib3 retries on connection errors; one retry keeps an unreachable cluster fast to report.
    configuration.retries = 1


def _light(loaded, context, with_cluster):
    """The settings read without the library (kubeconfig.py), or None when the kubeconfig needs it."""
    if loaded is None:
        return kubeconfig.Configuration()
    what, config, _loader = loaded
    with _failing(with_cluster, "kubeconfig %s context %s is unusable" % (what, context or "(current)")):
        return kubeconfig.load(config, context)


def _library_configuration(loaded, context, with_cluster):
    """A kubernetes.client.Configuration, loaded by the library from the kubeconfig (if any)."""
    kubernetes = _kubernetes(with_cluster)
    configuration = kubernetes.client.Configuration()
    if loaded is not None:
        what, _config, loader = loaded
        loaders = kubernetes.config
        load = loaders.load_kube_config_from_dict if "config_dict" in loader else loaders.load_kube_config
        with _failing(with_cluster, "kubeconfig %s context %s is unusable" % (what, context or "(current)")):
            load(context=context, client_configuration=configuration, persist_config=False, **loader)
    return configuration


@contextlib.contextmanager
def _failing(with_cluster, problem, fields="(field: kubeconfig)", errors=Exception):
    """``errors`` raised inside become ``<problem>: <the error's first line> <fields>``. By default any:
    yaml errors, malformed kubeconfig sections and the library's ConfigException alike."""
    try:
        yield
    except errors as exc:
        raise K8sError("%s: %s %s" % (problem, _first_line(exc), fields), **with_cluster)


def _api_client(configuration, library, with_cluster):
    if library:
        return _kubernetes(with_cluster).client.ApiClient(configuration)
    with _failing(with_cluster, "the TLS settings for %s are unusable" % configuration.host,
                  "(fields: ca_cert, client_cert, client_key or the kubeconfig)", (ssl.SSLError, OSError, ValueError)):
        return kubeconfig.ApiClient(configuration)


def _read_kubeconfig(source, context, with_cluster):
    """(what, merged kubeconfig, library loader arguments) of a kubeconfig given as a dict, a path, or
    several paths joined like KUBECONFIG (those that exist); checks that ``context`` is in it."""
    if isinstance(source, dict):
        what, sources, loader = "(kubeconfig given as a dict)", [source], dict(config_dict=source)
    elif "\n" in str(source):  # content where a path belongs: never echo it
        raise K8sError("kubeconfig is a text with line breaks, not a path (field: kubeconfig); give the path of "
                       "the file or the kubeconfig document as a dict (e.g. \"{{ lookup('file', path) | from_yaml }}\")",
                       **with_cluster)
    else:
        paths = [os.path.expanduser(p) for p in str(source).split(os.pathsep) if p]
        sources = [p for p in paths if os.path.isfile(p)]
        if not sources:
            raise K8sError("kubeconfig %s does not exist (field: kubeconfig)" % (", ".join(paths) or "''"),
                           **with_cluster)
        what = os.pathsep.join(sources)
        loader = dict(config_file=what)
    with _failing(with_cluster, "kubeconfig %s cannot be read" % what):
        config = kubeconfig.read(sources)
    names = kubeconfig.context_names(config)
    if context and context not in names:
        raise K8sError("context %r is not in kubeconfig %s (field: context; it has: %s)"
                       % (context, what, ", ".join(names) or "none"), cluster=with_cluster["cluster"],
                       field="context")
    return what, config, loader


def _kubernetes(with_cluster):
    try:
        return kubeconfig.kubernetes_library()
    except ImportError:
        raise K8sError("this connection (exec or auth-provider kubeconfig, basic auth or proxy options) needs the "
                       "kubernetes Python library: %s" % missing_required_lib("kubernetes"), **with_cluster)


def _first_line(exc):
    text = str(exc).strip() or exc.__class__.__name__
    return text.splitlines()[0]


class Client(object):
    """Minimal REST client. ``calls`` counts requests per verb (benchmarks assert on it); safe to use
    from several threads. Requests the API server throttles (HTTP 429, API priority and fairness)
    are retried after its Retry-After (at most ``MAX_WAIT`` s), up to ``THROTTLE_RETRIES`` times."""

    THROTTLE_RETRIES = 5
    MAX_WAIT = 10.0

    def __init__(self, api_client, cluster, timeout=30, impersonate=(None, ())):
        self.api_client = api_client
        self.cluster = cluster
        self.timeout = timeout
        self.calls = {}
        self.sleep = time.sleep
        self._lock = threading.Lock()
        self.impersonate_user, self.impersonate_groups = impersonate[0], list(impersonate[1] or [])

    @property
    def server(self):
        return self.api_client.configuration.host

    def _request(self, verb, method, path, query=None, body=None, content_type=None, what=None, missing_ok=False):
        """One request (retried while throttled): the decoded body (None on 404 if ``missing_ok``); K8sError."""
        for attempt in range(self.THROTTLE_RETRIES + 1):
            with self._lock:
                self.calls[verb] = self.calls.get(verb, 0) + 1
            status, reason, data, headers = self._exchange(method, path, query, body, content_type)
            if status != 429 or attempt == self.THROTTLE_RETRIES:
                break
            self.sleep(_retry_after(headers, self.MAX_WAIT))
        if isinstance(data, bytes):
            data = data.decode("utf-8", "replace")
        if status == 404 and missing_ok:
            return None
        if not 200 <= status < 300:
            raise K8sError(self._api_message(status, reason, data, what or "%s %s" % (method, path)),
                           status=status, reason=reason, cluster=self.cluster)
        return json.loads(data) if data else {}

    def _exchange(self, method, path, query, body, content_type):
        """Send; returns (status, reason, body, response headers); raises K8sError when unreachable."""
        headers = {"Accept": "application/json"}
        if self.impersonate_user:
            headers["Impersonate-User"] = self.impersonate_user
        if content_type:
            headers["Content-Type"] = content_type
        if body is not None and content_type and content_type.endswith("yaml"):
            body = json.dumps(body)  # JSON is YAML; sent as is
        try:
            return self._send(method, path, list((query or {}).items()), headers, body)
        except kubeconfig.api_exceptions() as exc:  # the kubernetes library's client only
            if not exc.status:  # raised by the client for TLS failures
                raise self._unreachable(exc)
            return exc.status, exc.reason, exc.body, getattr(exc, "headers", None)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise self._unreachable(exc)

    def _unreachable(self, exc):
        return K8sError("cannot reach the API server %s: %s" % (self.server, _connection_reason(exc)),
                        reason="Unreachable", cluster=self.cluster)

    def _send(self, method, path, query, headers, body):
        client = self.api_client
        timeout = (10, self.timeout)
        if hasattr(client, "param_serialize"):  # kubeconfig.ApiClient, kubernetes >= 35 (new generator)
            method, url, headers, _body, _post = client.param_serialize(
                method=method, resource_path=path, query_params=query, header_params=headers,
                auth_settings=["BearerToken"])
            resp = client.rest_client.request(method, url, headers=self._with_groups(headers), body=body,
                                              _request_timeout=timeout)
            return resp.status, resp.reason, resp.read(), getattr(resp, "headers", None)
        if self.impersonate_groups:  # its header_params hold one value per header name
            raise K8sError("impersonate_groups needs kubernetes >= 35 for this connection (the kubernetes library "
                           "makes it: exec or auth-provider kubeconfig, basic auth or proxy options); upgrade the "
                           "library (field: impersonate_groups)", cluster=self.cluster, field="impersonate_groups")
        resp = client.call_api(path, method, query_params=query, header_params=headers, body=body,
                               auth_settings=["BearerToken"], _preload_content=False, _request_timeout=timeout)
        resp = resp[0] if isinstance(resp, tuple) else resp
        return resp.status, resp.reason, resp.data, getattr(resp, "headers", None)

    def _with_groups(self, headers):
        """Headers plus one Impersonate-Group header per group (the API server reads them all)."""
        if not self.impersonate_groups:
            return headers
        merged = urllib3.HTTPHeaderDict(headers)
        merged.extend(("Impersonate-Group", group) for group in self.impersonate_groups)
        return merged

    def _api_message(self, status, reason, data, target):
        detail = reason or ""
        try:
            detail = json.loads(data).get("message") or detail
        except Exception:
            pass
        if status == 403:
            return "forbidden: %s (%s). Grant this verb to the identity in use (see meta/rbac/)." % (detail, target)
        if status == 401:
            return "unauthorized: the credentials in use were rejected by %s (%s)" % (self.server, target)
        return "%s failed with HTTP %s: %s" % (target, status, detail)

    # -- verbs ---------------------------------------------------------------------------------
    def get(self, path, what=None):
        """GET an object; returns None on 404."""
        return self._request("get", "GET", path, what=what, missing_ok=True)

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
        query = _write_query(dry_run, force="true")
        return self._request("apply", "PATCH", path, query=query, body=body,
                             content_type="application/apply-patch+yaml", what=what)

    def merge_patch(self, path, body, dry_run=False, what=None):
        return self._request("patch", "PATCH", path, query=_write_query(dry_run), body=body,
                             content_type="application/merge-patch+json", what=what)

    def delete(self, path, resource_version=None, what=None):
        """DELETE with a resourceVersion precondition; returns False when already gone."""
        body = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if resource_version:
            body["preconditions"] = {"resourceVersion": resource_version}
        return self._request("delete", "DELETE", path, body=body, what=what, missing_ok=True) is not None


def _retry_after(headers, limit):
    """Seconds to wait before retrying a throttled request (Retry-After, 1 s when absent; at most ``limit``)."""
    try:
        wait = float((headers or {}).get("Retry-After") or 1)
    except (TypeError, ValueError):
        wait = 1.0
    return min(max(wait, 0.0), limit)


def _write_query(dry_run, **extra):
    query = dict(fieldManager=FIELD_MANAGER, **extra)
    if dry_run:
        query["dryRun"] = "All"
    return query


def _connection_reason(exc):
    text = str(getattr(exc, "reason", None) or exc)
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return ("TLS verification failed (the server certificate is not signed by the configured CA; "
                "fix ca_cert/kubeconfig rather than disabling validate_certs)")
    if "Connection refused" in text or "NewConnectionError" in text:
        return "connection refused"
    if "timed out" in text.lower():
        return "timed out"
    return text.splitlines()[0] if text else exc.__class__.__name__
