# Copyright: meshfed.istio contributors; GNU General Public License v3.0+ (see LICENSE; SPDX-License-Identifier: GPL-3.0-or-later)
"""Connection settings: a kubeconfig (a file, paths joined like KUBECONFIG, or a dict) merged like kubectl, else the pod's service account;
the options over both. Only exec and auth-provider users import the kubernetes library: it loads every API model (most of the start-up)."""

import base64
import contextlib
import ipaddress
import os
import pathlib
import ssl
import tempfile
import traceback

from ansible.module_utils.basic import missing_required_lib
from ansible.module_utils.parsing.convert_bool import boolean

from ansible_collections.meshfed.istio.plugins.module_utils.common.deps import MISSING, yaml
from ansible_collections.meshfed.istio.plugins.module_utils.common.errors import K8sError

try:
    import urllib3
except ImportError:
    urllib3 = None
    MISSING["urllib3"] = traceback.format_exc()

# The pod's service account mount (client-go's rest.InClusterConfig); the lab lays one out at MESHFED_SERVICE_ACCOUNT_DIR.
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


def kubeconfig_secrets(value):
    """The secret strings of a kubeconfig option, for ``no_log_values``: a dict's user credentials; a text (a line break), whole."""
    if isinstance(value, str):
        return {value} if "\n" in value else set()
    found = set()
    for entry in (value.get("users") if isinstance(value, dict) else None) or []:
        user = entry.get("user") if isinstance(entry, dict) else None
        if isinstance(user, dict):
            provider, exec_ = user.get("auth-provider") or {}, user.get("exec")
            found.update(user.get(key) for key in ("token", "password", "client-key-data", "client-certificate-data"))
            found.update(((provider.get("config") if isinstance(provider, dict) else None) or {}).values())
            env = exec_.get("env") if isinstance(exec_, dict) else None
            found.update(item.get("value") for item in env or [] if isinstance(item, dict))
    return set(v for v in found if isinstance(v, str) and v)


class Settings(object):
    """One API server's connection: URL, TLS material (a file replaces the kubeconfig's inline data), the Authorization header, a proxy."""

    def __init__(self, host=None):
        self.host, self.verify, self.proxy_headers = host, True, {}
        self.ca_file = self.cert_file = self.key_file = self.ca_data = self.cert_data = self.key_data = None
        self.unverified = self.tls_server_name = self.authorization = self.proxy = self.no_proxy = None

    def pool(self, maxsize):
        """A urllib3 pool to the server (through the proxy unless ``no_proxy`` names it); one retry: an unreachable cluster fails fast."""
        ctx = ssl.create_default_context(cafile=self.ca_file if self.verify else None,
                                         cadata=self.ca_data.decode("ascii") if self.verify and self.ca_data else None)
        options = dict(num_pools=1, maxsize=maxsize, retries=1, ssl_context=ctx, cert_reqs="CERT_REQUIRED" if self.verify else "CERT_NONE")
        if not self.verify:
            ctx.check_hostname, ctx.verify_mode, options["assert_hostname"] = False, ssl.CERT_NONE, False
        if self.cert_file or self.cert_data:  # load_cert_chain reads files only: inline data goes through a private directory
            with tempfile.TemporaryDirectory(prefix="meshfed-") as private:
                files = []
                for name, path, data in (("cert", self.cert_file, self.cert_data), ("key", self.key_file, self.key_data)):
                    if data:
                        path = os.path.join(private, name)
                        pathlib.Path(path).write_bytes(data)
                    files.append(path)
                ctx.load_cert_chain(*files)
        if self.tls_server_name:
            options["server_hostname"] = self.tls_server_name
        if not self.proxy or _bypasses_proxy(self.host, self.no_proxy):
            return urllib3.PoolManager(**options)
        if self.proxy.lower().startswith("socks"):  # socks5://, socks5h://, socks4://: PySocks, as for the library
            from urllib3.contrib.socks import SOCKSProxyManager
            return SOCKSProxyManager(self.proxy, headers=self.proxy_headers or None, **options)
        return urllib3.ProxyManager(self.proxy, proxy_headers=self.proxy_headers or None, **options)


def _bypasses_proxy(url, no_proxy):
    """Whether ``no_proxy`` (hosts, .domains, host:port, IP networks or ``*``) names the server of ``url`` (the kubernetes library's rules)."""
    parsed = urllib3.util.parse_url(url or "")
    host = (parsed.host or "").strip("[]").lower()
    for entry in (e.strip().lower() for e in (no_proxy or "").split(",")):
        try:
            if entry == "*" or ipaddress.ip_address(host) in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:  # a host name, domain or host:port
            entry = entry.lstrip(".")
            if entry and any(name == entry or name.endswith("." + entry) for name in (host, "%s:%s" % (host, parsed.port))):
                return True
    return False


@contextlib.contextmanager
def failing(cluster, problem, fields="(field: kubeconfig)", errors=Exception):
    """``errors`` raised inside (default: any, YAML's and the library's too) become K8sError ``<problem>: <first line> <fields>``."""
    try:
        yield
    except K8sError:
        raise
    except errors as exc:
        first = (str(exc).strip() or exc.__class__.__name__).splitlines()[0]
        raise K8sError("%s: %s %s" % (problem, first, fields), cluster=cluster, field="kubeconfig")


def settings(params, cluster):
    """The Settings of ``params`` (AUTH_ARG_SPEC): the kubeconfig's (option, KUBECONFIG, ~/.kube/config), else the pod's."""
    out = Settings()
    if params.get("kubeconfig") or not params.get("host"):
        source = params.get("kubeconfig") or os.environ.get("KUBECONFIG", "").strip(os.pathsep)
        pod = os.environ.get("KUBERNETES_SERVICE_HOST") and os.environ.get("KUBERNETES_SERVICE_PORT")
        if not source and pod and not os.path.isfile(os.path.expanduser("~/.kube/config")):
            # the pod's service account: its token is read at every connect (the kubelet rotates it)
            directory = os.environ.get("MESHFED_SERVICE_ACCOUNT_DIR") or SERVICE_ACCOUNT_DIR
            host, token = os.environ["KUBERNETES_SERVICE_HOST"], os.path.join(directory, "token")
            out = Settings("https://%s:%s" % ("[%s]" % host if ":" in host else host, os.environ["KUBERNETES_SERVICE_PORT"]))
            with failing(cluster, "no kubeconfig, and the in-cluster service account token %s cannot be read" % token, errors=OSError):
                out.authorization = "Bearer %s" % pathlib.Path(token).read_text().strip()
            if os.path.isfile(os.path.join(directory, "ca.crt")):
                out.ca_file = os.path.join(directory, "ca.crt")
        else:
            out = _from_kubeconfig(source or "~/.kube/config", params.get("context"), cluster)
    if params.get("validate_certs") is False:
        env = os.environ.get("K8S_AUTH_VERIFY_SSL")
        from_env = env is not None and boolean(env, strict=False) is False
        out.verify, out.unverified = False, "K8S_AUTH_VERIFY_SSL=%s" % env if from_env else "validate_certs: false"
    for option, attribute, replaces in (("host", "host", None), ("ca_cert", "ca_file", "ca_data"), ("client_cert", "cert_file", "cert_data"),
                                        ("client_key", "key_file", "key_data"), ("proxy", "proxy", None), ("no_proxy", "no_proxy", None)):
        if params.get(option):
            setattr(out, attribute, params[option])
            if replaces:
                setattr(out, replaces, None)
    if params.get("proxy_headers"):
        out.proxy_headers = urllib3.util.make_headers(**{k: v for k, v in params["proxy_headers"].items() if v})
    if params.get("username"):
        out.authorization = _basic(params["username"], params.get("password"))
    if params.get("api_key"):
        out.authorization = "Bearer %s" % params["api_key"]
    return out


def _basic(username, password):
    return urllib3.util.make_headers(basic_auth="%s:%s" % (username, password or ""))["authorization"]


def _from_kubeconfig(source, context, cluster):
    """The Settings of ``context`` (default: current) of a kubeconfig: a dict, a path, or paths joined like KUBECONFIG."""
    if isinstance(source, dict):
        what, sources, loader = "(kubeconfig given as a dict)", [source], dict(config_dict=source)
    elif "\n" in str(source):  # content where a path belongs: never echo it
        raise K8sError("kubeconfig is a text with line breaks, not a path (field: kubeconfig); give the path of the file or the "
                       "kubeconfig document as a dict (e.g. \"{{ lookup('file', path) | from_yaml }}\")", cluster=cluster, field="kubeconfig")
    else:
        paths = [os.path.expanduser(p) for p in str(source).split(os.pathsep) if p]
        sources = [p for p in paths if os.path.isfile(p)]
        if not sources:
            raise K8sError("kubeconfig %s does not exist (field: kubeconfig)" % (", ".join(paths) or "''"), cluster=cluster, field="kubeconfig")
        what = os.pathsep.join(sources)
        loader = dict(config_file=what)
    with failing(cluster, "kubeconfig %s cannot be read" % what):
        config = read(sources)
    names = sorted(name for name in config["contexts"] if name)
    if context and context not in names:
        raise K8sError("context %r is not in kubeconfig %s (field: context; it has: %s)"
                       % (context, what, ", ".join(names) or "none"), cluster=cluster, field="context")
    with failing(cluster, "kubeconfig %s context %s is unusable" % (what, context or "(current)")):
        return _load(config, context, what, loader, cluster)


def read(sources):
    """Merge kubeconfigs (paths or dicts) like kubectl: the first naming a cluster, user, context or current-context wins;
    relative file references resolve against their file's directory. ``{section: {name: body}, "current-context": name}``."""
    merged = {"clusters": {}, "users": {}, "contexts": {}, "current-context": None}
    for source in sources:
        doc, base = source, os.getcwd()
        if not isinstance(source, dict):
            doc = yaml.load(pathlib.Path(source).read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}
            base = os.path.dirname(os.path.abspath(source))
        if not isinstance(doc, dict):
            raise ValueError("%s is not a kubeconfig (a mapping)" % source)
        merged["current-context"] = merged["current-context"] or doc.get("current-context")
        for section, what in (("clusters", "cluster"), ("users", "user"), ("contexts", "context")):
            for item in doc.get(section) or []:
                if isinstance(item, dict) and item.get("name") not in merged[section]:
                    body = merged[section][item.get("name")] = dict(item.get(what) or {})
                    for field in ("certificate-authority", "client-certificate", "client-key", "tokenFile"):
                        if body.get(field) and not os.path.isabs(str(body[field])):
                            body[field] = os.path.join(base, os.path.expanduser(str(body[field])))
    return merged


def _load(config, context, what, loader, cluster):
    """The Settings of a context of a merged kubeconfig; ``loader``: the library's arguments, for an exec or auth-provider user."""
    ctx = _named(config, "contexts", context or config["current-context"])
    server = _named(config, "clusters", ctx.get("cluster"))
    user = _named(config, "users", ctx.get("user")) if ctx.get("user") else {}
    if not server.get("server"):
        raise ValueError("cluster %s has no server" % ctx.get("cluster"))
    out = Settings(server["server"])
    if server.get("insecure-skip-tls-verify"):
        out.verify = False
        out.unverified = "insecure-skip-tls-verify of cluster %s in kubeconfig %s" % (ctx.get("cluster"), what)
    out.tls_server_name, out.proxy, out.ca_file = server.get("tls-server-name"), server.get("proxy-url"), server.get("certificate-authority")
    out.cert_file, out.key_file = user.get("client-certificate"), user.get("client-key")
    out.ca_data, out.cert_data, out.key_data = (_b64(server, "certificate-authority-data"),
                                                _b64(user, "client-certificate-data"), _b64(user, "client-key-data"))
    token = user.get("token")
    if not token and user.get("tokenFile"):
        token = pathlib.Path(user["tokenFile"]).read_text().strip()
    if token:
        out.authorization = "Bearer %s" % token
    elif user.get("username"):
        out.authorization = _basic(user["username"], user.get("password"))
    if user.get("exec") or user.get("auth-provider"):
        # only the kubernetes library runs these plugins (it refreshes an expired token as it loads)
        try:
            import kubernetes
        except ImportError:
            raise K8sError("an exec or auth-provider kubeconfig user needs the kubernetes Python library: %s"
                           % missing_required_lib("kubernetes"), cluster=cluster, field="kubeconfig")
        cfg = kubernetes.client.Configuration()
        load = kubernetes.config.load_kube_config_from_dict if "config_dict" in loader else kubernetes.config.load_kube_config
        load(context=context, client_configuration=cfg, persist_config=False, **loader)
        # kubernetes >= 35 keeps the header value under "BearerToken", older versions under "authorization"
        out.authorization = cfg.api_key.get("BearerToken") or cfg.api_key.get("authorization") or out.authorization
        if cfg.cert_file:
            out.cert_file, out.key_file, out.cert_data, out.key_data = cfg.cert_file, cfg.key_file, None, None
    return out


def _named(config, section, name):
    try:
        return config[section][name]
    except (KeyError, TypeError):  # TypeError: a list or mapping where a name belongs
        raise ValueError("%s %r not found in the kubeconfig" % (section[:-1], name))


def _b64(section, field):
    try:
        return base64.b64decode(section[field]) if section.get(field) else None
    except (TypeError, ValueError):
        raise ValueError("%s is not valid base64" % field)
