"""Does a request from one lab cluster reach a service of another over mTLS? Asked of Istio itself.

    from tests.integration.traffic import assert_traffic, check_traffic
    assert_traffic(lab, "cluster-a", "cluster-b", "bar.xyz.svc.cluster-b.local", 8080)
    report = check_traffic([a, b], "cluster-a", "cluster-b", host, 8080)   # no raise
    assert report.failed == ["gateway"], report

Both clusters are snapshotted from their live API servers (mesh config, istiod's --domain and env,
every Istio networking/security object, Namespaces, Services, EndpointSlices, Pods, the CA root) and
handed to ``meshsim`` (tests/meshsim: Istio's pilot config generation run in-process, built and
cached by tests/meshsim/build.sh). The path is checked hop by hop:

* ``dns``     the client's sidecar DNS proxy (or kube-dns) resolves ``host``;
* ``client``  the client's sidecar routes host:port to the ServiceEntry's cluster, whose endpoints
              are reached with Istio mTLS (ISTIO_MUTUAL) and SNI ``outbound_.<port>_._.<host>``;
* ``gateway`` each such endpoint is an address:port of the destination cluster's gateway Service,
              whose gateway workload routes that SNI (AUTO_PASSTHROUGH) to the service's endpoints,
              with no listener Envoy would reject;
* ``server``  the destination workload's sidecar accepts mTLS on that port from the client's trust
              domain;
* ``trust``   the client's proxy trusts the destination's root, the destination's proxy trusts the
              client's root, and the client's server-identity check (if any) accepts the server's
              SPIFFE identity.

What this cannot show: no TLS handshake is made and no Envoy runs (see tests/lab/README.md).
"""

import json
import os
import subprocess
import tempfile
import threading
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from kubernetes.client.exceptions import ApiException

from tests.lab import kubeapi

REPO = Path(__file__).resolve().parents[2]
BUILD_SH = REPO / "tests" / "meshsim" / "build.sh"
ISTIO_NS = "istio-system"
HOPS = ("dns", "client", "gateway", "server", "trust")

ISTIO_KINDS = [
    ("networking.istio.io", "v1", "serviceentries", "ServiceEntry"),
    ("networking.istio.io", "v1", "destinationrules", "DestinationRule"),
    ("networking.istio.io", "v1", "gateways", "Gateway"),
    ("networking.istio.io", "v1", "virtualservices", "VirtualService"),
    ("networking.istio.io", "v1", "sidecars", "Sidecar"),
    ("networking.istio.io", "v1", "workloadentries", "WorkloadEntry"),
    ("networking.istio.io", "v1alpha3", "envoyfilters", "EnvoyFilter"),
    ("security.istio.io", "v1", "peerauthentications", "PeerAuthentication"),
    ("security.istio.io", "v1", "authorizationpolicies", "AuthorizationPolicy"),
]
KUBE_KINDS = [
    ("/api/v1/namespaces", "v1", "Namespace"),
    ("/api/v1/services", "v1", "Service"),
    ("/api/v1/pods", "v1", "Pod"),
    ("/apis/discovery.k8s.io/v1/endpointslices", "discovery.k8s.io/v1", "EndpointSlice"),
]

_bin_lock = threading.Lock()
_bin = None


class MeshsimError(RuntimeError):
    pass


def meshsim_binary():
    """Path of the meshsim binary (tests/meshsim/build.sh: cached; minutes on a cold Go cache)."""
    global _bin
    with _bin_lock:
        if _bin is None:
            proc = subprocess.run(["bash", str(BUILD_SH)], check=False, stdout=subprocess.PIPE, text=True)
            lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
            if proc.returncode != 0 or not lines or not os.access(lines[-1], os.X_OK):
                raise MeshsimError("tests/meshsim/build.sh failed (rc=%d)" % proc.returncode)
            _bin = lines[-1]
        return _bin


# ------------------------------------------------------------------------------------------------
# snapshot
# ------------------------------------------------------------------------------------------------
def _list(cluster, path):
    try:
        return kubeapi.request(cluster, "GET", path)["items"]
    except ApiException as e:
        if e.status == 404:  # kind not served (CRD absent)
            return []
        raise


def _clean(obj, api_version, kind):
    obj["apiVersion"], obj["kind"] = api_version, kind
    obj.get("metadata", {}).pop("managedFields", None)
    return obj


def istiod_of(cluster, istio_ns=ISTIO_NS):
    """(Deployment, container) of the cluster's istiod (the default revision's, else the first)."""
    deps = _list(cluster, "/apis/apps/v1/namespaces/%s/deployments" % istio_ns)
    istiods = [d for d in deps if d["metadata"]["name"] == "istiod" or d["metadata"]["name"].startswith("istiod-")]
    if not istiods:
        raise MeshsimError("%s: no istiod Deployment in %s" % (cluster.name, istio_ns))
    istiods.sort(key=lambda d: (d["metadata"]["name"] != "istiod", d["metadata"]["name"]))
    dep = istiods[0]
    containers = dep["spec"]["template"]["spec"]["containers"]
    container = next((c for c in containers if c["name"] == "discovery"), containers[0])
    return dep, container


def istiod_domain(container):
    """istiod's --domain (default cluster.local)."""
    args = list(container.get("args") or [])
    for i, a in enumerate(args):
        if a == "--domain" and i + 1 < len(args):
            return args[i + 1]
        if a.startswith("--domain="):
            return a.split("=", 1)[1]
    return "cluster.local"


def snapshot(cluster, istio_ns=ISTIO_NS):
    """One cluster as its API server shows it, in meshsim's snapshot format."""
    dep, container = istiod_of(cluster, istio_ns)
    rev = dep["metadata"].get("labels", {}).get("istio.io/rev", "default")
    cm_name = "istio" if rev in ("default", "") else "istio-%s" % rev
    mesh_cm = kubeapi.request(cluster, "GET", "/api/v1/namespaces/%s/configmaps/%s" % (istio_ns, cm_name))
    root_cm = kubeapi.request(cluster, "GET", "/api/v1/namespaces/%s/configmaps/istio-ca-root-cert" % istio_ns)
    env = {e["name"]: e["value"] for e in container.get("env") or [] if "value" in e}
    kube_objects = []
    for path, api_version, kind in KUBE_KINDS:
        kube_objects += [_clean(o, api_version, kind) for o in _list(cluster, path)]
    istio_objects = []
    for group, version, plural, kind in ISTIO_KINDS:
        istio_objects += [_clean(o, "%s/%s" % (group, version), kind)
                          for o in _list(cluster, "/apis/%s/%s/%s" % (group, version, plural))]
    return {
        "cluster": cluster.name,
        "domain": istiod_domain(container),
        "istio_namespace": istio_ns,
        "mesh": mesh_cm["data"].get("mesh", ""),
        "istiod_env": env,
        "root_cert": root_cm["data"]["root-cert.pem"],
        "kube_objects": kube_objects,
        "istio_objects": istio_objects,
    }


def query(snap, queries, timeout=120):
    """Run meshsim over one snapshot; returns its result dict (answers in query order)."""
    with tempfile.TemporaryDirectory(prefix="meshsim-") as d:
        req, out = Path(d) / "request.json", Path(d) / "result.json"
        req.write_text(json.dumps({"snapshot": snap, "queries": queries}))
        proc = subprocess.run([meshsim_binary(), "query", str(req), "--out", str(out)], check=False,
                              capture_output=True, text=True, timeout=timeout)
        result = json.loads(out.read_text()) if out.exists() else {}
        if proc.returncode != 0 or "error" in result:
            raise MeshsimError("meshsim failed on cluster %s (rc=%d): %s\n%s%s" % (
                snap["cluster"], proc.returncode, result.get("error"), proc.stdout[-3000:], proc.stderr[-3000:]))
        return result


# ------------------------------------------------------------------------------------------------
# the check
# ------------------------------------------------------------------------------------------------
class Hop:
    def __init__(self, name):
        self.name = name
        self.ok = True
        self.problems = []
        self.notes = []

    def fail(self, why):
        self.ok = False
        self.problems.append(why)

    def __repr__(self):
        return "%s: %s%s" % (self.name, "ok" if self.ok else "BROKEN - " + "; ".join(self.problems),
                             "" if not self.notes else " (" + "; ".join(self.notes) + ")")


class TrafficReport:
    """Outcome of :func:`check_traffic`: ``hops`` by name, ``failed`` (hop names in path order),
    ``answers`` (meshsim's raw answers per cluster)."""

    def __init__(self, src, dst, host, port):
        self.src, self.dst, self.host, self.port = src, dst, host, port
        self.hops = {n: Hop(n) for n in HOPS}
        self.answers = {}
        self.warnings = []

    @property
    def failed(self):
        return [n for n in HOPS if not self.hops[n].ok]

    @property
    def ok(self):
        return not self.failed

    def problems(self, hop):
        return list(self.hops[hop].problems)

    def __str__(self):
        state = "OK" if self.ok else "BROKEN at " + ", ".join(self.failed)
        head = "traffic %s -> %s %s:%d: %s" % (self.src, self.dst, self.host, self.port, state)
        lines = [head] + ["  " + repr(self.hops[n]) for n in HOPS]
        if self.warnings:
            lines.append("  meshsim warnings: " + "; ".join(self.warnings))
        return "\n".join(lines)

    __repr__ = __str__


def _clusters_by_name(lab_or_clusters):
    clusters = getattr(lab_or_clusters, "clusters", lab_or_clusters)
    return {c.name: c for c in clusters}


def _cert_keys(pems):
    out = set()
    for pem in pems:
        for block in pem.split("-----END CERTIFICATE-----"):
            if "BEGIN CERTIFICATE" in block:
                try:
                    cert = x509.load_pem_x509_certificate((block.strip() + "\n-----END CERTIFICATE-----\n").encode())
                except ValueError:
                    continue
                out.add(cert.fingerprint(hashes.SHA256()).hex())
    return out


def _san_matches(matcher, identity):
    kind, rest = (matcher.split(" ", 1) + [""])[:2]
    how, value = (rest.split(":", 1) + [""])[:2]
    if kind not in ("URI", "ANY"):
        return False
    if how == "exact":
        return identity == value
    if how == "prefix":
        return identity.startswith(value)
    if how == "suffix":
        return identity.endswith(value)
    if how == "contains":
        return value in identity
    return False


def _default_client(snap):
    """The first sidecar-injected pod of the snapshot outside the Istio namespace."""
    pods = sorted((o for o in snap["kube_objects"] if o["kind"] == "Pod"
                   and o["metadata"]["namespace"] != snap["istio_namespace"]
                   and (o["metadata"].get("labels") or {}).get("security.istio.io/tlsMode") == "istio"
                   and (o.get("status") or {}).get("podIP")),
                  key=lambda o: (o["metadata"]["namespace"], o["metadata"]["name"]))
    if not pods:
        raise MeshsimError("%s: no sidecar-injected pod to send from (seed workloads, or pass client=)" % snap["cluster"])
    return {"namespace": pods[0]["metadata"]["namespace"], "pod": pods[0]["metadata"]["name"]}


def _service_for_host(snap, host):
    for o in snap["kube_objects"]:
        if o["kind"] == "Service":
            m = o["metadata"]
            if "%s.%s.svc.%s" % (m["name"], m["namespace"], snap["domain"]) == host:
                return "%s/%s" % (m["namespace"], m["name"])
    return _aliased_service(snap, host)


def _aliased_service(snap, host):
    """A federation alias: a ServiceEntry with ``host`` selecting the pods of a Service of its namespace."""
    for se in snap["istio_objects"]:
        spec = se.get("spec") or {}
        selector = (spec.get("workloadSelector") or {}).get("labels")
        if se["kind"] != "ServiceEntry" or host not in (spec.get("hosts") or []) or not selector:
            continue
        ns = se["metadata"]["namespace"]
        for o in snap["kube_objects"]:
            if (o["kind"] == "Service" and o["metadata"]["namespace"] == ns
                    and (o.get("spec") or {}).get("selector") == selector):
                return "%s/%s" % (ns, o["metadata"]["name"])
    return None


def check_traffic(lab_or_clusters, src, dst, host, port, client=None, require_server_identity=False):
    """Check the path of a request from a sidecar of cluster ``src`` to ``host:port`` served by
    cluster ``dst``. Returns a :class:`TrafficReport` (never raises for a broken path).

    ``client``: {"namespace", "pod"} or {"namespace", "labels"} in ``src`` (default: the first
    sidecar-injected pod there). ``require_server_identity``: a client without any SAN matcher
    (no server identity check) breaks the trust hop instead of being noted.
    """
    clusters = _clusters_by_name(lab_or_clusters)
    a_cluster, b_cluster = clusters[src], clusters[dst]
    snap_a, snap_b = snapshot(a_cluster), snapshot(b_cluster)
    client = dict(client or _default_client(snap_a))
    report = TrafficReport(src, dst, host, port)
    hops = report.hops
    a_td = (yaml.safe_load(snap_a["mesh"]) or {}).get("trustDomain") or "cluster.local"

    out_q = dict(client, id="out", type="outbound", host=host, port=port)
    ra = query(snap_a, [out_q])
    report.warnings += ["%s: %s" % (src, w) for w in ra["warnings"]]
    out = ra["answers"][0]
    report.answers[src] = ra["answers"]

    # dns
    dns = out.get("dns") or {}
    if not dns.get("resolves"):
        hops["dns"].fail("%s: %s" % (src, dns.get("reason") or "does not resolve"))
    else:
        hops["dns"].notes.append("%s -> %s (%s)" % (host, dns.get("addresses"), dns.get("reason")))

    # client
    want_sni = "outbound_.%d_._.%s" % (port, host)
    endpoints = out.get("endpoints") or []
    if not out["ok"]:
        for p in out["problems"]:
            hops["client"].fail("%s sidecar %s: %s" % (src, out.get("proxy", {}).get("id"), p))
    for ep in endpoints:
        tls = ep.get("tls") or {}
        where = "%s sidecar -> endpoint %s:%d of %s" % (src, ep["address"], ep["port"], out.get("cluster"))
        if tls.get("mode") != "ISTIO_MUTUAL":
            hops["client"].fail("%s: upstream TLS is %s, not Istio mTLS (ISTIO_MUTUAL); the peer gateway only "
                                "routes mTLS with SNI %s" % (where, tls.get("mode"), want_sni))
        elif tls.get("sni") != want_sni:
            hops["client"].fail("%s: SNI is %r, expected %r" % (where, tls.get("sni"), want_sni))
    if out["ok"]:
        reached = ", ".join("%s:%d %s" % (e["address"], e["port"], (e.get("tls") or {}).get("mode")) for e in endpoints)
        hops["client"].notes.append("%s -> %s (%s)" % (out.get("listener"), out.get("cluster"), reached))

    # gateway (+ server) on the destination
    b_queries = []
    for i, ep in enumerate(endpoints):
        tls = ep.get("tls") or {}
        b_queries.append({"id": "gw%d" % i, "type": "gateway", "address": ep["address"], "port": ep["port"],
                          "sni": tls.get("sni") or want_sni, "alpn": tls.get("alpn") or []})
    svc = _service_for_host(snap_b, host)
    if svc:
        b_queries.append({"id": "in", "type": "inbound", "service": svc, "port": port, "peer_trust_domain": a_td})
    rb = query(snap_b, b_queries) if b_queries else {"answers": [], "warnings": []}
    report.warnings += ["%s: %s" % (dst, w) for w in rb["warnings"]]
    report.answers[dst] = rb["answers"]
    answers = {x["id"]: x for x in rb["answers"]}
    inbound = answers.get("in")

    if not endpoints:
        hops["gateway"].fail("nothing reaches %s: the client hop has no endpoint" % dst)
    for i, ep in enumerate(endpoints):
        g = answers["gw%d" % i]
        if not g["ok"]:
            for p in g["problems"]:
                hops["gateway"].fail("%s gateway (%s:%d): %s" % (dst, ep["address"], ep["port"], p))
            continue
        gw_eps = {(x["address"], x["port"]) for x in g.get("endpoints") or []}
        hops["gateway"].notes.append("%s -> %s -> %s" % (g.get("gateway_pod"), g.get("cluster"), sorted(gw_eps)))
        if inbound and inbound.get("workload"):
            w = (inbound["workload"]["ip"], inbound.get("target_port"))
            if w not in gw_eps:
                hops["gateway"].fail("%s gateway routes SNI %s to %s, which does not include %s's workload %s:%s" % (
                    dst, g.get("sni"), sorted(gw_eps), svc, w[0], w[1]))

    # server
    if svc is None:
        hops["server"].fail("%s has no Kubernetes Service %s (in istiod's domain %s)" % (dst, host, snap_b["domain"]))
    elif not inbound["ok"] and any("trust" not in p for p in inbound["problems"]):
        for p in inbound["problems"]:
            if "accepts client identities" not in p:
                hops["server"].fail("%s: %s" % (dst, p))
    if inbound and inbound.get("inbound_tls"):
        hops["server"].notes.append("%s %s (%s, peer trust domains %s)" % (
            (inbound.get("workload") or {}).get("pod"), inbound.get("cluster"), inbound["inbound_tls"]["mtls"],
            inbound["inbound_tls"]["accepted_trust_domains"] or "any"))

    # trust
    t = hops["trust"]
    a_roots = _cert_keys((out.get("trust_bundle") or {}).get("roots") or [])
    b_root = _cert_keys([snap_b["root_cert"]])
    if not b_root <= a_roots:
        tb = out.get("trust_bundle") or {}
        t.fail("%s's proxies do not trust %s's root (istiod ISTIO_MULTIROOT_MESH=%s, proxy PROXY_CONFIG_XDS_AGENT=%s, "
               "%d root(s) in %s meshConfig.caCertificates)%s" % (
                   src, dst, tb.get("istiod_multiroot_mesh"), tb.get("proxy_config_xds_agent"),
                   len(tb.get("mesh_config_roots") or []), src, ": " + tb["error"] if tb.get("error") else ""))
    if inbound:
        tls_in = inbound.get("inbound_tls") or {}
        if tls_in and not tls_in.get("peer_accepted"):
            t.fail("%s's inbound mTLS accepts trust domains %s, not %s's %s" % (
                dst, tls_in.get("accepted_trust_domains"), src, a_td))
        b_roots = _cert_keys((inbound.get("trust_bundle") or {}).get("roots") or [])
        if not _cert_keys([snap_a["root_cert"]]) <= b_roots:
            tb = inbound.get("trust_bundle") or {}
            t.fail("%s's proxies do not trust %s's root (istiod ISTIO_MULTIROOT_MESH=%s, proxy PROXY_CONFIG_XDS_AGENT=%s, "
                   "%d root(s) in %s meshConfig.caCertificates)%s" % (
                       dst, src, tb.get("istiod_multiroot_mesh"), tb.get("proxy_config_xds_agent"),
                       len(tb.get("mesh_config_roots") or []), dst, ": " + tb["error"] if tb.get("error") else ""))
        identity = inbound.get("server_identity")
        for ep in endpoints:
            sans = (ep.get("tls") or {}).get("san_matchers") or []
            if not sans:
                msg = ("%s's client checks no server identity for %s (no subjectAltNames): any certificate chaining "
                       "to a trusted root is accepted" % (src, host))
                if require_server_identity:
                    t.fail(msg)
                elif msg not in t.notes:
                    t.notes.append(msg)
            elif identity and not any(_san_matches(m, identity) for m in sans):
                t.fail("%s's client expects server identities %s for %s, but the server is %s" % (src, sans, host, identity))
    return report


def assert_traffic(lab_or_clusters, src, dst, host, port, **kw):
    """:func:`check_traffic` that raises AssertionError naming every broken hop and why."""
    report = check_traffic(lab_or_clusters, src, dst, host, port, **kw)
    if not report.ok:
        raise AssertionError(str(report))
    return report
