# Copyright: meshfed.istio contributors; GNU General Public License v3.0+ (see LICENSE; SPDX-License-Identifier: GPL-3.0-or-later)
"""The Kubernetes REST client: the modules use a handful of known paths, so this speaks REST over urllib3
(one request per read or write) instead of the dynamic client, which runs API discovery on every invocation."""

import contextlib
import json
import ssl
import threading
import time
from urllib.parse import urlencode

from ansible.module_utils.basic import env_fallback

from ansible_collections.meshfed.istio.plugins.module_utils.kube import kubeconfig
from ansible_collections.meshfed.istio.plugins.module_utils.kube.kubeconfig import urllib3
from ansible_collections.meshfed.istio.plugins.module_utils.common.errors import K8sError

FIELD_MANAGER = "meshfed.istio"

# Every module's connection options: kubernetes.core's names, aliases and K8S_AUTH_* environment fallbacks
# (AWX/AAP's Kubernetes credential injects them). An option wins over the environment, which wins over the kubeconfig.
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
    proxy_headers=dict(type="dict", options=dict(proxy_basic_auth=dict(type="str", no_log=True),
                                                 basic_auth=dict(type="str", no_log=True), user_agent=dict(type="str"))),
    impersonate_user=dict(type="str", fallback=(env_fallback, ["K8S_AUTH_IMPERSONATE_USER"])),
    impersonate_groups=dict(type="list", elements="str", fallback=(env_fallback, ["K8S_AUTH_IMPERSONATE_GROUPS"])),
    request_timeout=dict(type="int", default=30),
)


def connect(params, cluster, pool_size=1):
    """A Client for ``params`` (AUTH_ARG_SPEC) keeping up to ``pool_size`` connections; errors name ``cluster``."""
    return Client(kubeconfig.settings(params, cluster), cluster, pool_size=pool_size, timeout=params.get("request_timeout") or 30,
                  impersonate=(params.get("impersonate_user"), params.get("impersonate_groups")))


class Client(object):
    """REST over one urllib3 pool, thread-safe; ``calls``: requests per verb (benchmarks assert on it). A throttled request
    (HTTP 429, API priority and fairness) is retried after its Retry-After (at most MAX_WAIT s), THROTTLE_RETRIES times."""

    THROTTLE_RETRIES = 5
    MAX_WAIT = 10.0

    def __init__(self, settings, cluster, pool_size=1, timeout=30, impersonate=(None, ())):
        self.settings, self.cluster, self.timeout = settings, cluster, timeout
        self.server, self.unverified = settings.host, settings.unverified
        self.calls, self.sleep, self._lock = {}, time.sleep, threading.Lock()
        with kubeconfig.failing(cluster, "the TLS settings for %s are unusable" % settings.host,
                                "(fields: ca_cert, client_cert, client_key or the kubeconfig)", (ssl.SSLError, OSError, ValueError)):
            self.pool = settings.pool(max(1, pool_size))
        self.headers = urllib3.HTTPHeaderDict({"Accept": "application/json"})
        if settings.authorization:
            self.headers["Authorization"] = settings.authorization
        if impersonate[0]:
            self.headers["Impersonate-User"] = impersonate[0]
        # one Impersonate-Group header per group: the API server reads them all
        self.headers.extend(("Impersonate-Group", group) for group in impersonate[1] or [])

    def _request(self, verb, method, path, query=None, body=None, content_type=None, what=None, missing_ok=False,
                 accept=None):
        """The decoded body (None on 404 if ``missing_ok``); K8sError."""
        headers = urllib3.HTTPHeaderDict(self.headers)
        if accept:
            headers["Accept"] = accept
        if body is not None:  # JSON, which is YAML too (server-side apply)
            body, headers["Content-Type"] = json.dumps(body), content_type or "application/json"
        url = (self.server or "").rstrip("/") + path + ("?" + urlencode(query) if query else "")
        for attempt in range(self.THROTTLE_RETRIES + 1):
            with self._lock:
                self.calls[verb] = self.calls.get(verb, 0) + 1
            try:
                resp = self.pool.request(method, url, body=body, headers=headers, timeout=urllib3.Timeout(connect=10, read=self.timeout))
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                raise K8sError("cannot reach the API server %s: %s" % (self.server, _connection_reason(exc)),
                               reason="Unreachable", cluster=self.cluster)
            if resp.status != 429 or attempt == self.THROTTLE_RETRIES:
                break
            try:  # Retry-After, 1 s when absent or unreadable
                wait = float((resp.headers or {}).get("Retry-After") or 1)
            except (TypeError, ValueError):
                wait = 1.0
            self.sleep(min(max(wait, 0.0), self.MAX_WAIT))
        data = resp.data.decode("utf-8", "replace")
        if resp.status == 404 and missing_ok:
            return None
        if not 200 <= resp.status < 300:
            raise K8sError(self._api_message(resp.status, resp.reason, data, what or "%s %s" % (method, path)),
                           status=resp.status, reason=resp.reason, cluster=self.cluster)
        return json.loads(data) if data else {}

    def _api_message(self, status, reason, data, target):
        detail = reason or ""
        with contextlib.suppress(Exception):   # not JSON, or not a Status
            detail = json.loads(data).get("message") or detail
        if status == 403:
            return "forbidden: %s (%s). Grant this verb to the identity in use (see meta/rbac/)." % (detail, target)
        if status == 401:
            return "unauthorized: the credentials in use were rejected by %s (%s)" % (self.server, target)
        return "%s failed with HTTP %s: %s" % (target, status, detail)

    def get(self, path, what=None):
        """GET an object; None on 404."""
        return self._request("get", "GET", path, what=what, missing_ok=True)

    def list(self, path, label_selector=None, what=None, metadata_only=False):
        """The items of a collection, every page (``metadata_only``: as PartialObjectMetadata); 404 (kind not served) raises."""
        query = {"limit": 500, "labelSelector": label_selector} if label_selector else {"limit": 500}
        items, meta = [], "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"  # else plain JSON
        while True:
            data = self._request("list", "GET", path, query=query, what=what, accept=meta if metadata_only else None)
            items.extend(data.get("items") or [])
            query["continue"] = (data.get("metadata") or {}).get("continue")
            if not query["continue"]:
                return items

    def apply(self, path, body, dry_run=False, what=None):
        """Server-side apply ``body`` at its own ``path`` with our field manager."""
        return self._request("apply", "PATCH", path, query=_write_query(dry_run, force="true"), body=body,
                             content_type="application/apply-patch+yaml", what=what)

    def merge_patch(self, path, body, dry_run=False, what=None):
        return self._request("patch", "PATCH", path, query=_write_query(dry_run), body=body,
                             content_type="application/merge-patch+json", what=what)

    def delete(self, path, resource_version=None, what=None):
        """DELETE with a resourceVersion precondition; False when already gone."""
        body = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if resource_version:
            body["preconditions"] = {"resourceVersion": resource_version}
        return self._request("delete", "DELETE", path, body=body, what=what, missing_ok=True) is not None


def _write_query(dry_run, **extra):
    return dict(fieldManager=FIELD_MANAGER, **extra, **({"dryRun": "All"} if dry_run else {}))


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
