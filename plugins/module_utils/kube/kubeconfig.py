# -*- coding: utf-8 -*-
# Copyright: meshfed.istio contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kubeconfig reading and REST over urllib3 without importing the ``kubernetes`` package.

``import kubernetes`` loads every generated API model: most of a module's start-up, while the
modules only need a server URL, TLS material and a token. The common kubeconfig shapes (client
certificate, bearer token or token file, CA data or file, insecure-skip-tls-verify, tls-server-name)
are read here with PyYAML and served by :class:`ApiClient`; anything else (exec and auth-provider
plugins, basic auth, proxies, ...) is left to the kubernetes library, as before (see k8s.connect).

:class:`Configuration` and :class:`ApiClient` keep the attribute and method names of
``kubernetes.client`` that k8s.py uses, so both back ends are driven by the same code.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import json
import os
import ssl
import sys
import tempfile
import traceback

from ansible.module_utils.six.moves.urllib.parse import urlencode

from ansible_collections.meshfed.istio.plugins.module_utils.common.deps import MISSING, yaml

# The kubernetes package is imported only when a connection needs it (kubernetes_library): importing
# it costs most of a module's start-up. urllib3 comes with it.
try:
    import urllib3
except ImportError:
    urllib3 = None
    MISSING["urllib3"] = traceback.format_exc()


def kubernetes_library():
    """The ``kubernetes`` package, imported on first use (ImportError when it is not installed)."""
    import kubernetes
    import kubernetes.client.rest  # noqa: F401 (ApiException, see api_exceptions)
    return kubernetes


def api_exceptions():
    """Exception classes the kubernetes library's client raises for HTTP errors (none unless it is in use)."""
    rest = sys.modules.get("kubernetes.client.rest")
    return (rest.ApiException,) if rest is not None else ()


# user/cluster fields read here; any other field means "let the kubernetes library do it"
_USER_FIELDS = {"client-certificate", "client-certificate-data", "client-key", "client-key-data", "token", "tokenFile"}
_CLUSTER_FIELDS = {"server", "certificate-authority", "certificate-authority-data", "insecure-skip-tls-verify",
                   "tls-server-name", "extensions"}
_FILE_FIELDS = ("certificate-authority", "client-certificate", "client-key", "tokenFile")


def read(sources):
    """Parse and merge kubeconfigs (file paths, or a document given as a dict) like kubectl: the first
    naming a cluster, user or context wins; current-context from the first that sets one. Relative file
    references are resolved against the directory of the file that holds them (of a dict: the working
    directory). Returns {section: {name: body}, "current-context": name}."""
    merged = {"clusters": {}, "users": {}, "contexts": {}, "current-context": None}
    for source in sources:
        doc, base = source, os.getcwd()
        if not isinstance(source, dict):
            with open(source) as fh:
                doc = yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}
            base = os.path.dirname(os.path.abspath(source))
        if not isinstance(doc, dict):
            raise ValueError("%s is not a kubeconfig (a mapping)" % source)
        _merge(merged, doc, base)
    return merged


def _merge(merged, doc, base):
    """Add ``doc``'s entries that ``merged`` does not name yet (file fields made absolute)."""
    merged["current-context"] = merged["current-context"] or doc.get("current-context")
    for section, what in (("clusters", "cluster"), ("users", "user"), ("contexts", "context")):
        for item in doc.get(section) or []:
            if isinstance(item, dict) and item.get("name") not in merged[section]:
                body = merged[section][item.get("name")] = dict(item.get(what) or {})
                for field in _FILE_FIELDS:
                    if body.get(field) and not os.path.isabs(str(body[field])):
                        body[field] = os.path.join(base, os.path.expanduser(str(body[field])))


def context_names(config):
    return sorted(name for name in config["contexts"] if name)


def load(config, context=None):
    """A :class:`Configuration` for ``context`` (default: current) of a merged kubeconfig, or None
    when it uses a feature only the kubernetes library implements. ValueError for a broken one."""
    ctx = _named(config, "contexts", context or config["current-context"], "context")
    cluster = _named(config, "clusters", ctx.get("cluster"), "cluster")
    user = _named(config, "users", ctx.get("user"), "user") if ctx.get("user") else {}
    if set(user) - _USER_FIELDS or set(cluster) - _CLUSTER_FIELDS:
        return None
    if not cluster.get("server"):
        raise ValueError("cluster %s has no server" % ctx.get("cluster"))
    out = Configuration(cluster["server"])
    out.verify_ssl = not cluster.get("insecure-skip-tls-verify")
    out.tls_server_name = cluster.get("tls-server-name")
    out.ssl_ca_cert, out.cert_file, out.key_file = (cluster.get("certificate-authority"), user.get("client-certificate"),
                                                    user.get("client-key"))
    out.ca_data = _b64(cluster.get("certificate-authority-data"), "certificate-authority-data")
    out.cert_data = _b64(user.get("client-certificate-data"), "client-certificate-data")
    out.key_data = _b64(user.get("client-key-data"), "client-key-data")
    token = user.get("token")
    if not token and user.get("tokenFile"):
        with open(user["tokenFile"]) as fh:
            token = fh.read().strip()
    if token:
        out.api_key = {"authorization": "Bearer %s" % token}
    return out


def _named(config, section, name, what):
    try:
        return config[section][name]
    except (KeyError, TypeError):  # TypeError: a list or mapping where a name belongs
        raise ValueError("%s %r not found in the kubeconfig" % (what, name))


def _b64(value, field):
    if not value:
        return None
    try:
        return base64.b64decode(value)
    except (TypeError, ValueError):
        raise ValueError("%s is not valid base64" % field)


class Configuration(object):
    """The connection settings (the names ``kubernetes.client.Configuration`` uses). Setting a file
    (``ssl_ca_cert``, ``cert_file``, ``key_file``) drops the kubeconfig's inline data it replaces."""

    def __init__(self, host=None):
        self.host = host
        self.ca_data = self.cert_data = self.key_data = None
        self._files = {}
        self.api_key = {}
        self.verify_ssl = True
        self.tls_server_name = None
        self.connection_pool_maxsize = 1
        self.retries = 1

    def _set_file(self, attribute, data_attribute, value):
        self._files[attribute] = value
        if value:
            setattr(self, data_attribute, None)

    ssl_ca_cert = property(lambda self: self._files.get("ssl_ca_cert"),
                           lambda self, value: self._set_file("ssl_ca_cert", "ca_data", value))
    cert_file = property(lambda self: self._files.get("cert_file"),
                         lambda self, value: self._set_file("cert_file", "cert_data", value))
    key_file = property(lambda self: self._files.get("key_file"),
                        lambda self, value: self._set_file("key_file", "key_data", value))

    def auth_settings(self):
        token = self.api_key.get("BearerToken") or self.api_key.get("authorization")
        if not token:
            return {}
        return {"BearerToken": {"type": "api_key", "in": "header", "key": "authorization", "value": token}}

    def ssl_context(self):
        """TLS context: verification (against the CA file or data, else the system's CAs) unless ``verify_ssl``
        is False; client certificate loaded."""
        cafile, cadata = (self.ssl_ca_cert, self.ca_data) if self.verify_ssl else (None, None)
        ctx = ssl.create_default_context(cafile=cafile, cadata=cadata.decode("ascii") if cadata else None)
        if not self.verify_ssl:
            ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        if self.cert_file or self.cert_data:
            _load_chain(ctx, (self.cert_file, self.cert_data), (self.key_file, self.key_data))
        return ctx


def _load_chain(ctx, cert, key):
    """SSLContext.load_cert_chain reads files only: inline data goes through private temporary files,
    removed as soon as the context holds them."""
    made = []
    try:
        files = [_private_file(data, made) if data else path for path, data in (cert, key)]
        ctx.load_cert_chain(files[0], files[1])
    finally:
        for path in made:
            os.unlink(path)


def _private_file(data, made):
    fd, path = tempfile.mkstemp(prefix="meshfed-")
    made.append(path)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    return path


class _Response(object):
    def __init__(self, resp):
        self.status, self.reason, self.headers, self.data = resp.status, resp.reason, resp.headers, resp.data

    def read(self):
        return self.data


class ApiClient(object):
    """HTTPS to one API server through a urllib3 pool (thread-safe), shaped like the new
    ``kubernetes.client.ApiClient`` (``param_serialize`` + ``rest_client.request``)."""

    def __init__(self, configuration):
        self.configuration = cfg = configuration
        self.rest_client = self
        options = dict(num_pools=1, maxsize=max(1, cfg.connection_pool_maxsize or 1), retries=cfg.retries,
                       ssl_context=cfg.ssl_context(), cert_reqs="CERT_REQUIRED" if cfg.verify_ssl else "CERT_NONE")
        if not cfg.verify_ssl:
            options["assert_hostname"] = False
        if cfg.tls_server_name:
            options["server_hostname"] = cfg.tls_server_name
        self.pool = urllib3.PoolManager(**options)

    def param_serialize(self, method, resource_path, query_params, header_params, auth_settings):
        headers = dict(header_params)
        for name in auth_settings:
            auth = self.configuration.auth_settings().get(name)
            if auth:
                headers[auth["key"]] = auth["value"]
        url = (self.configuration.host or "").rstrip("/") + resource_path
        return method, url + ("?" + urlencode(query_params) if query_params else ""), headers, None, None

    def request(self, method, url, headers=None, body=None, _request_timeout=None):
        """Send; urllib3/OS errors propagate (the caller reports the server unreachable)."""
        headers = urllib3.HTTPHeaderDict(headers or {})
        if body is not None:
            body = body if isinstance(body, (str, bytes)) else json.dumps(body)
            headers.setdefault("Content-Type", "application/json")
        connect, read_ = _request_timeout or (10, 30)
        return _Response(self.pool.request(method, url, body=body, headers=headers,
                                           timeout=urllib3.Timeout(connect=connect, read=read_)))
