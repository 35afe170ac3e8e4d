# Copyright: meshfed.istio contributors; GNU General Public License v3.0+ (see LICENSE; SPDX-License-Identifier: GPL-3.0-or-later)
"""Istio's and Kubernetes' own rules as pure functions (no I/O), each citing where upstream implements it."""

import fnmatch
import ipaddress
import re

DEFAULT_DOMAIN = "cluster.local"
DEFAULT_REVISION = "default"
MESH_CONFIGMAP = "istio"
ISTIOD = "istiod"

# protocol.Parse (pkg/config/protocol/instance.go): lower-cased prefix -> canonical name
_PROTOCOLS = dict((name.lower(), name) for name in (
    "TCP", "UDP", "GRPC", "GRPC-Web", "HTTP", "HTTP_PROXY", "HTTP2", "HTTPS", "TLS", "Mongo", "Redis", "MySQL"))
# Kubernetes' standard appProtocol values, mapped by Istio before any prefix parsing
_K8S_APP_PROTOCOLS = {"kubernetes.io/h2c": "HTTP2", "kubernetes.io/ws": "HTTP", "kubernetes.io/wss": "HTTPS"}
# ports Istio treats as TCP when the name says nothing (no protocol sniffing there)
_WELL_KNOWN_TCP_PORTS = (25, 53, 3306, 27017)
SNIFFED = ""  # protocol left empty: Istio detects it (protocol sniffing)
# DNS-1123 label and subdomain (k8s.io/apimachinery validation IsDNS1123Label / IsDNS1123Subdomain)
_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS_LABEL = re.compile(r"^%s$" % _LABEL)
HOSTNAME = re.compile(r"^(?=.{1,253}$)%s(\.%s)*$" % (_LABEL, _LABEL))


def _revisioned(base, revision):
    return base if not revision or revision == DEFAULT_REVISION else "%s-%s" % (base, revision)


def mesh_configmap_name(revision):
    """ConfigMap istiod of ``revision`` reads (pilot bootstrap getMeshConfigMapName)."""
    return _revisioned(MESH_CONFIGMAP, revision)


def istiod_deployment_name(revision):
    """Deployment name the istiod Helm chart gives ``revision``."""
    return _revisioned(ISTIOD, revision)


def mesh_configmaps(configmaps):
    """Names of the ConfigMaps that look like a mesh config (``istio`` / ``istio-<rev>`` with key mesh)."""
    names = ((cm.get("metadata") or {}).get("name") or "" for cm in configmaps if "mesh" in (cm.get("data") or {}))
    return sorted(name for name in names if name == MESH_CONFIGMAP or name.startswith(MESH_CONFIGMAP + "-"))


def _discovery_container(deployment):
    """The container of an istiod Deployment that runs pilot-discovery (``discovery``), else its first."""
    pod_spec = (((deployment or {}).get("spec") or {}).get("template") or {}).get("spec") or {}
    containers = pod_spec.get("containers") or []
    return next((c for c in containers if c.get("name") == "discovery"), containers[0] if containers else {})


def istiod_env(deployment):
    """Literal env values of istiod's discovery container (valueFrom is not resolvable here)."""
    env = _discovery_container(deployment).get("env") or []
    return {e["name"]: e["value"] for e in env if "name" in e and "value" in e}


def deployment_revision(deployment):
    """Revision an istiod Deployment serves: label istio.io/rev, env REVISION, else its name."""
    meta = deployment.get("metadata") or {}
    name = meta.get("name") or ""
    named = name[len(ISTIOD) + 1:] if name.startswith(ISTIOD + "-") else DEFAULT_REVISION
    return (meta.get("labels") or {}).get("istio.io/rev") or istiod_env(deployment).get("REVISION") or named


def istiod_domain(deployment):
    """istiod's DNS domain suffix: pilot-discovery's ``--domain`` (Helm: ``global.proxy.clusterDomain``), else cluster.local."""
    container = _discovery_container(deployment)
    args = [str(a) for a in (container.get("args") or []) + (container.get("command") or [])]
    for arg, following in zip(args, args[1:] + [None]):
        flag, equals, value = arg.partition("=")
        if flag in ("--domain", "-domain") and (equals or following is not None):
            return (value if equals else following).strip().strip(".").lower()
    return DEFAULT_DOMAIN


def valid_port(value):
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65535


def service_host(hostname):
    """``(service, namespace, domain)`` of a registry hostname ``<service>.<namespace>.svc.<domain>``, else None."""
    parts = hostname.split(".", 3)
    valid = len(parts) == 4 and parts[2] == "svc" and parts[3] and all(DNS_LABEL.fullmatch(p) for p in parts[:2])
    return (parts[0], parts[1], parts[3]) if valid else None


def is_ip(value):
    """Whether a gateway address is an IP (a ServiceEntry resolves it STATIC) rather than a hostname (DNS)."""
    try:
        return ipaddress.ip_address(value) is not None
    except ValueError:
        return False


def port_protocol(port_number, name, k8s_protocol="TCP", app_protocol=None):
    """Protocol Istio derives for a Kubernetes Service port (kube.ConvertProtocol): ``"UDP"`` for UDP ports,
    ``SNIFFED`` when Istio would detect it at runtime, else the canonical name (``HTTP``, ``GRPC-Web``...)."""
    if (k8s_protocol or "TCP").upper() == "UDP":
        return "UDP"
    if app_protocol in _K8S_APP_PROTOCOLS:
        return _K8S_APP_PROTOCOLS[app_protocol]
    candidate = app_protocol or name or ""
    if candidate[:8].lower() == "grpc-web":
        return "GRPC-Web"
    proto = _PROTOCOLS.get(candidate.split("-", 1)[0].lower())
    if proto in (None, "UDP"):
        return "TCP" if int(port_number) in _WELL_KNOWN_TCP_PORTS else SNIFFED
    return proto


def canonical_protocol(value):
    """The canonical name of a protocol string (case-insensitive), ``SNIFFED`` for empty, None if unknown."""
    return SNIFFED if value in (None, "") else _PROTOCOLS.get(str(value).lower())


def host_matches(hostname, pattern):
    """``host.Name(hostname).SubsetOf(pattern)``: ``*`` matches all, ``*.suffix`` by suffix, else equal."""
    pattern = pattern.split("/", 1)[-1]
    return pattern == "*" or (hostname.endswith(pattern[1:]) if pattern.startswith("*.") else hostname == pattern)


def dns_capture(mesh):
    """Whether sidecars capture DNS by default (meshConfig.defaultConfig.proxyMetadata.ISTIO_META_DNS_CAPTURE)."""
    metadata = ((mesh or {}).get("defaultConfig") or {}).get("proxyMetadata") or {}
    return str(metadata.get("ISTIO_META_DNS_CAPTURE", "")).lower() == "true"


def glob_match(hostname, pattern):
    """Shell-style glob over a hostname (``*`` spans dots too): ``bar.*``, ``*.xyz.svc.*``; ``[`` is literal."""
    return fnmatch.fnmatchcase(hostname, pattern.replace("[", "[[]"))
