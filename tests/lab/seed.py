"""Seed a lab cluster so that, to the API, it looks like a cluster with Istio installed.

No pod ever runs (there is no kubelet or controller-manager): the objects are what matters.

    seed_cluster(cluster)                  # default_spec(cluster.name)
    seed_cluster(cluster, spec)            # a spec dict, see default_spec() for the shape
    set_public(cluster, "xyz", "secret", True)
    read_root_pem(cluster)

What a seeded cluster holds:

* Istio CRDs (from istio.io/api) and, when shipped, meta/crds/istiofederation.yaml
* namespace ``istio-system`` with
  - ConfigMap ``istio`` key ``mesh``: helm-style mesh config text (comments included) with
    ``trustDomain: <cluster>.local``
  - Secret ``cacerts`` (root-cert.pem, ca-cert.pem, ca-key.pem, cert-chain.pem): the cluster's
    OWN self-signed root and an intermediate signed by it ("plug-in CA" layout)
  - ConfigMap ``istio-ca-root-cert`` (root-cert.pem = that root), also in every app namespace
  - Deployment ``istiod`` with env ``ISTIO_MULTIROOT_MESH=true`` and ``--domain <cluster_domain>``
    (default: the trust domain, i.e. the domain the collection exports hostnames under)
  - Service ``istio-eastwestgateway`` (LoadBalancer, selector istio=eastwestgateway, ports tls
    15443 + status-port 15021) whose status.loadBalancer.ingress[0].ip (a TEST-NET-1 address)
    is set through the status subresource
* application namespaces and Services, public ones labelled
  ``federation.meshfed.io/public-service: ""``
* workloads as data (no kubelet runs them): per Service and for the gateway a ServiceAccount, a
  Pod (sidecar-injected labels, status Running/Ready with a pod IP, written through the status
  subresource) and an EndpointSlice (as the EndpointSlice controller would write it), so that
  Istio's config generation (tests/meshsim) sees endpoints and workload identities

Objects are written like the real installers write them (create/update with the installer's
field manager: ``helm``, ``pilot-discovery``, ``kubectl-client-side-apply``,
``cloud-controller-manager`` for the load-balancer status), not with server-side apply, so the
collection meets the same managedFields it would meet on a real cluster.
"""

import base64
import copy
import re
import threading
import zlib
from concurrent.futures import ThreadPoolExecutor

from kubernetes.client.exceptions import ApiException

from tests.lab import crds, kubeapi, pki

ISTIO_NS = "istio-system"
PUBLIC_LABEL = "federation.meshfed.io/public-service"
DECKHOUSE_PUBLIC_LABEL = "federation.istio.deckhouse.io/public-service"
GATEWAY_NAME = "istio-eastwestgateway"
GATEWAY_SELECTOR = {"istio": "eastwestgateway"}
ISTIO_IMAGE_TAG = "1.31.4"

MESH_TEMPLATE = """\
# managed by helm (chart istiod); edit values.yaml, not this ConfigMap
accessLogFile: /dev/stdout
defaultConfig:
  discoveryAddress: istiod.istio-system.svc:15012
  proxyMetadata:
    PROXY_CONFIG_XDS_AGENT: "true"{dns_capture}
  # tracing is off in this mesh
  tracing: {{}}
enableAutoMtls: true
enablePrometheusMerge: true
rootNamespace: istio-system
trustDomain: {trust_domain}
"""


# ---------------------------------------------------------------------------------------------
# scenario
# ---------------------------------------------------------------------------------------------
_gw_lock = threading.Lock()
_gw_ips = {}


def gateway_ip_for(name):
    """A stable per-cluster TEST-NET-1 address (192.0.2.0/24): cluster-a .10, cluster-b .11, ...,
    cluster-<N> 40+N; anything else hashed. Distinct names get distinct addresses in one process."""
    with _gw_lock:
        if name in _gw_ips:
            return _gw_ips[name]
        m = re.fullmatch(r".*-([a-z])", name)
        n = re.fullmatch(r".*?(\d+)", name)
        if m:
            host = 10 + ord(m.group(1)) - ord("a")
        elif n and int(n.group(1)) <= 200:
            host = 40 + int(n.group(1))
        else:
            host = 10 + zlib.crc32(name.encode()) % 240
        taken = set(_gw_ips.values())
        while "192.0.2.%d" % host in taken:
            host = 10 + (host - 10 + 1) % 240
        ip = "192.0.2.%d" % host
        _gw_ips[name] = ip
        return ip


SPEC_KEYS = {"trust_domain", "mesh", "istio_namespace", "public_services", "private_services", "gateway",
             "extra_namespaces", "cacerts", "rotate_ca", "cluster_domain", "dns_capture", "workloads",
             # real-install shapes, all opt-in:
             "revision", "stale_istio_configmap", "istiod_env", "istio_gateways",
             # filled in by seed_cluster on the returned spec:
             "gateway_ip"}


def default_spec(name):
    """The default scenario for a cluster name (a fresh dict the caller may modify).

    cluster-a: public foo.abc (http 80), private internal.xyz
    cluster-b: public bar.xyz (http 8080, grpc-api 9090), private secret.xyz
    otherwise: public svc-<name>.web (http 80)

    Spec keys:
      trust_domain      str (default "<name>.local"); None leaves trustDomain out of the mesh config
      mesh              full mesh config text (overrides trust_domain / the template)
      istio_namespace   default istio-system
      public_services / private_services: [{namespace, name, ports: [{name, port, targetPort?,
                        appProtocol?, protocol?}], labels?, annotations?}]; public ones get
                        PUBLIC_LABEL unless their own labels say otherwise (public_label: <key>)
      gateway           dict of overrides, or None for no gateway Service at all:
                        {name, namespace, type (LoadBalancer|NodePort|ClusterIP), ip, hostname,
                         ingress: [{ip|hostname}, ...], selector, labels, annotations, ports,
                         network (adds label topology.istio.io/network)}
      extra_namespaces  [names] also created (with istio-ca-root-cert)
      cacerts           {root-cert.pem, ca-cert.pem, ca-key.pem, cert-chain.pem} to use instead of
                        generating (see make_cacerts); by default a cluster that already has Secret
                        cacerts keeps it when seeded again, unless rotate_ca: true
      cluster_domain    istiod's --domain (the DNS domain of the cluster's Services). Default: the
                        trust domain (the collection exports <svc>.<ns>.svc.<trust domain>); a real
                        install's default is cluster.local
      dns_capture       True (default): mesh proxyMetadata ISTIO_META_DNS_CAPTURE: "true" (the
                        sidecar DNS proxy resolves ServiceEntry hosts); False leaves it out
      workloads         True (default): ServiceAccount + Pod + EndpointSlice per Service and for the
                        gateway. Services may set service_account (default: the Service name) and
                        replicas (default 1; 0 = a Service with no pods)

      revision          a revisioned install: Deployment istiod-<rev> (label istio.io/rev, env
                        REVISION) reading ConfigMap istio-<rev>; no ConfigMap istio unless
      stale_istio_configmap: True (a leftover ConfigMap istio beside istio-<rev>)
      istiod_env        {name: value or None} merged over istiod's env (None removes a variable,
                        e.g. {"ISTIO_MULTIROOT_MESH": None})
      istio_gateways    Gateway objects written as an installer would: [{name, namespace?, spec}],
                        e.g. cross_network_gateway() (Istio's documented *.local east-west Gateway)
      Services may also set cluster_ip ("None": headless) and leave a single port unnamed.

    Unknown keys are an error (a typo must not silently seed a different scenario). Seeding
    again is idempotent except that ConfigMap istio's mesh text is rewritten to the spec's (as a
    helm upgrade would do) and objects from an earlier spec are not deleted.
    """
    if name == "cluster-a":
        public = [{"namespace": "abc", "name": "foo", "ports": [{"name": "http", "port": 80}]}]
        private = [{"namespace": "xyz", "name": "internal", "ports": [{"name": "http", "port": 80}]}]
    elif name == "cluster-b":
        public = [{"namespace": "xyz", "name": "bar",
                   "ports": [{"name": "http", "port": 8080}, {"name": "grpc-api", "port": 9090}]}]
        private = [{"namespace": "xyz", "name": "secret", "ports": [{"name": "http", "port": 8080}]}]
    else:
        public = [{"namespace": "web", "name": "svc-%s" % name, "ports": [{"name": "http", "port": 80}]}]
        private = []
    return {
        "trust_domain": "%s.local" % name,
        "istio_namespace": ISTIO_NS,
        "public_services": public,
        "private_services": private,
        "gateway": {"ip": gateway_ip_for(name)},
    }


def mesh_text(trust_domain, dns_capture=True):
    capture = '\n    ISTIO_META_DNS_CAPTURE: "true"' if dns_capture else ""
    text = MESH_TEMPLATE.format(trust_domain=trust_domain or "cluster.local", dns_capture=capture)
    if trust_domain is None:
        text = "\n".join(ln for ln in text.splitlines() if not ln.startswith("trustDomain:")) + "\n"
    return text


# ---------------------------------------------------------------------------------------------
# low-level writes (create, else merge-patch: what helm / kubectl would leave behind)
# ---------------------------------------------------------------------------------------------
def _path(obj, plural=None):
    return kubeapi.object_path(obj, plural)


def _collection_path(obj):
    p = _path(obj)
    return p.rsplit("/", 1)[0]


def upsert(cluster, obj, manager):
    """POST the object; if it exists, JSON-merge-patch it to the given content. Returns the object."""
    try:
        return kubeapi.request(cluster, "POST", _collection_path(obj), body=obj, query={"fieldManager": manager})
    except ApiException as e:
        if e.status != 409:
            raise
    patch = copy.deepcopy(obj)
    return kubeapi.request(cluster, "PATCH", _path(obj), body=patch, query={"fieldManager": manager},
                           content_type="application/merge-patch+json")


def _meta(name, namespace=None, labels=None, annotations=None):
    m = {"name": name}
    if namespace:
        m["namespace"] = namespace
    if labels:
        m["labels"] = dict(labels)
    if annotations:
        m["annotations"] = dict(annotations)
    return m


def _ns(name, labels=None):
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(name, labels=labels)}


# ---------------------------------------------------------------------------------------------
# Istio CA material
# ---------------------------------------------------------------------------------------------
def make_cacerts(cluster_name):
    """Plug-in CA files for one cluster: its own root (self-signed) and an intermediate signed by it."""
    root_key = pki.rsa_key(2048)
    root = pki.self_signed_ca(pki.name("Root CA", cluster_name), root_key, days=3650)
    ca_key = pki.rsa_key(2048)
    ca = pki.intermediate_ca(pki.name("Intermediate CA", cluster_name), ca_key, root, root_key, days=1825)
    root_pem = pki.cert_pem(root).decode()
    ca_pem = pki.cert_pem(ca).decode()
    return {
        "root-cert.pem": root_pem,
        "ca-cert.pem": ca_pem,
        "ca-key.pem": pki.key_pem(ca_key).decode(),
        "cert-chain.pem": ca_pem + root_pem,
    }


def _b64(s):
    return base64.b64encode(s.encode()).decode()


# ---------------------------------------------------------------------------------------------
# objects
# ---------------------------------------------------------------------------------------------
def _service(svc, public):
    labels = {"app": svc["name"]}
    labels.update(svc.get("labels") or {})
    if public:
        labels.setdefault(svc.get("public_label", PUBLIC_LABEL), "")
    ports = []
    for p in svc["ports"]:
        port = {"port": int(p["port"]), "protocol": p.get("protocol", "TCP"),
                "targetPort": p.get("targetPort", int(p["port"]))}
        if p.get("name"):  # a single-port Service may leave its port unnamed
            port["name"] = p["name"]
        if p.get("appProtocol"):
            port["appProtocol"] = p["appProtocol"]
        ports.append(port)
    spec = {"type": svc.get("type", "ClusterIP"), "selector": {"app": svc["name"]}, "ports": ports}
    if svc.get("cluster_ip"):  # "None": a headless Service
        spec["clusterIP"] = svc["cluster_ip"]
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": _meta(svc["name"], svc["namespace"], labels, svc.get("annotations")),
            "spec": spec}


def _gateway_objects(gw, istio_ns):
    """(Service dict, status dict or None) for the east-west gateway."""
    ns = gw.get("namespace", istio_ns)
    name = gw.get("name", GATEWAY_NAME)
    typ = gw.get("type", "LoadBalancer")
    selector = gw.get("selector", GATEWAY_SELECTOR)
    labels = {"app": name, "istio": "eastwestgateway"}
    if gw.get("network"):
        labels["topology.istio.io/network"] = gw["network"]
    labels.update(gw.get("labels") or {})
    ports = gw.get("ports") or [
        {"name": "status-port", "port": 15021, "targetPort": 15021, "protocol": "TCP"},
        {"name": "tls", "port": 15443, "targetPort": 15443, "protocol": "TCP"},
    ]
    svc = {"apiVersion": "v1", "kind": "Service",
           "metadata": _meta(name, ns, labels, gw.get("annotations")),
           "spec": {"type": typ, "selector": dict(selector), "ports": copy.deepcopy(ports)}}
    status = None
    if typ == "LoadBalancer":
        ingress = gw.get("ingress")
        if ingress is None:
            if gw.get("hostname"):
                ingress = [{"hostname": gw["hostname"]}]
            elif gw.get("ip"):
                ingress = [{"ip": gw["ip"]}]
            else:
                ingress = []
        if ingress:
            status = {"loadBalancer": {"ingress": copy.deepcopy(ingress)}}
    return svc, status


def seed_cluster(cluster, spec=None, install_crds=True):
    """Seed one cluster (idempotent). ``spec`` defaults to default_spec(cluster.name).

    Returns the effective spec with ``cacerts`` (the generated PEMs) and ``gateway_ip`` added.
    """
    spec = copy.deepcopy(spec) if spec is not None else default_spec(cluster.name)
    unknown = set(spec) - SPEC_KEYS
    if unknown:
        raise ValueError("seed spec for %s: unknown key(s) %s (known: %s)"
                         % (cluster.name, sorted(unknown), sorted(SPEC_KEYS)))
    istio_ns = spec.get("istio_namespace", ISTIO_NS)
    trust_domain = spec.get("trust_domain", "%s.local" % cluster.name)
    if install_crds:
        crds.install_all(cluster)

    public = spec.get("public_services") or []
    private = spec.get("private_services") or []
    app_namespaces = []
    for svc in public + private:
        if svc["namespace"] not in app_namespaces and svc["namespace"] != istio_ns:
            app_namespaces.append(svc["namespace"])
    for extra in spec.get("extra_namespaces") or []:
        if extra not in app_namespaces:
            app_namespaces.append(extra)

    upsert(cluster, _ns(istio_ns), "kubectl-create")
    for ns in app_namespaces:
        upsert(cluster, _ns(ns, {"istio-injection": "enabled"}), "kubectl-create")

    helm = {"app.kubernetes.io/managed-by": "Helm", "install.operator.istio.io/owning-resource": "unknown",
            "istio.io/rev": "default", "release": "istiod"}
    mesh = spec.get("mesh") or mesh_text(trust_domain, spec.get("dns_capture", True))
    cluster_domain = spec.get("cluster_domain") or trust_domain or "cluster.local"
    revision = spec.get("revision")
    mesh_cms = ["istio-%s" % revision] if revision else ["istio"]
    if revision and spec.get("stale_istio_configmap"):
        mesh_cms.append("istio")
    for cm_name in mesh_cms:
        upsert(cluster, {"apiVersion": "v1", "kind": "ConfigMap",
                         "metadata": _meta(cm_name, istio_ns, dict(helm, **{"istio.io/rev": revision or "default"}),
                                           {"meta.helm.sh/release-name": "istiod",
                                            "meta.helm.sh/release-namespace": istio_ns}),
                         "data": {"mesh": mesh, "meshNetworks": "networks: {}"}}, "helm")

    cacerts = spec.get("cacerts")
    if not cacerts and not spec.get("rotate_ca"):
        try:  # re-seeding keeps the cluster's CA: a new root is a deliberate act (rotate_ca: true)
            cacerts = read_cacerts(cluster, istio_ns)
        except ApiException as e:
            if e.status != 404:
                raise
    cacerts = cacerts or make_cacerts(cluster.name)
    spec["cacerts"] = cacerts
    upsert(cluster, {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                     "metadata": _meta("cacerts", istio_ns),
                     "data": {k: _b64(v) for k, v in cacerts.items()}}, "kubectl-create")

    def root_cm(ns):
        return {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": _meta("istio-ca-root-cert", ns, {"istio.io/config": "true"}),
                "data": {"root-cert.pem": cacerts["root-cert.pem"]}}
    for ns in [istio_ns] + app_namespaces:
        upsert(cluster, root_cm(ns), "pilot-discovery")

    istiod_labels = {"app": "istiod", "istio": "pilot", "istio.io/rev": revision or "default"}
    upsert(cluster, {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": _meta("istiod-%s" % revision if revision else "istiod", istio_ns, dict(helm, **istiod_labels)),
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "istiod", "istio": "pilot"}},
                 "template": {"metadata": {"labels": istiod_labels},
                              "spec": {"serviceAccountName": "istiod", "containers": [{
                                  "name": "discovery", "image": "docker.io/istio/pilot:%s" % ISTIO_IMAGE_TAG,
                                  "args": ["discovery", "--monitoringAddr=:15014", "--log_output_level=default:info",
                                           "--domain", cluster_domain, "--keepaliveMaxServerConnectionAge", "30m"],
                                  "ports": [{"containerPort": 8080, "protocol": "TCP"},
                                            {"containerPort": 15010, "protocol": "TCP"},
                                            {"containerPort": 15017, "protocol": "TCP"}],
                                  "env": _istiod_env(cluster.name, revision, spec.get("istiod_env"))}]}}},
    }, "helm")

    gw = spec.get("gateway", {})
    spec["gateway_ip"] = None
    if gw is not None:
        if gw.get("namespace", istio_ns) != istio_ns:
            upsert(cluster, _ns(gw["namespace"]), "kubectl-create")
        svc, status = _gateway_objects(gw, istio_ns)
        upsert(cluster, svc, "helm")
        if status is not None:
            kubeapi.request(cluster, "PATCH", kubeapi.object_path(svc, subresource="status"),
                            body={"status": status}, query={"fieldManager": "cloud-controller-manager"},
                            content_type="application/merge-patch+json")
            spec["gateway_ip"] = status["loadBalancer"]["ingress"][0].get("ip")

    for svc in public:
        upsert(cluster, _service(svc, True), "kubectl-client-side-apply")
    for svc in private:
        upsert(cluster, _service(svc, False), "kubectl-client-side-apply")
    if spec.get("workloads", True):
        ips = _PodIPs(cluster.name)
        if gw is not None:
            gsvc = _gateway_objects(gw, istio_ns)[0]
            _seed_workload(cluster, gsvc, gsvc["metadata"]["name"], ips, gateway=True)
        for svc in public + private:
            obj = _service(svc, svc in public)
            _seed_workload(cluster, obj, svc.get("service_account", svc["name"]), ips,
                           replicas=svc.get("replicas", 1))
    _seed_gateways(cluster, spec, istio_ns)
    return spec


class _PodIPs:
    """Pod IPs as data: 10.<n>.<k>.<i>, <n> from the cluster's gateway address (distinct per cluster)."""

    def __init__(self, cluster_name):
        self.net = int(gateway_ip_for(cluster_name).rsplit(".", 1)[1])
        self.count = 0

    def next(self):
        self.count += 1
        return "10.%d.%d.%d" % (self.net, self.count // 250, 10 + self.count % 250)


def _target_port(port):
    """The container port a Service port reaches (a named targetPort: the container port of that
    name, which the lab's pods declare with the Service port's number)."""
    target = port.get("targetPort")
    return int(target) if isinstance(target, int) or (isinstance(target, str) and target.isdigit()) else int(port["port"])


def _seed_workload(cluster, svc, service_account, ips, gateway=False, replicas=1):
    """ServiceAccount, Pod(s) (status Running/Ready) and an EndpointSlice for a Service, the way
    the injector, the kubelet and the EndpointSlice controller would leave them."""
    meta = svc["metadata"]
    ns, name = meta["namespace"], meta["name"]
    selector = svc["spec"]["selector"]
    upsert(cluster, {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(service_account, ns)},
           "kubectl-client-side-apply")
    endpoints = []
    for i in range(replicas):
        pod_name = "%s-%s" % (name, "%05x" % (zlib.crc32(("%s/%s/%d" % (ns, name, i)).encode()) % 0xfffff))
        labels = dict(selector)
        labels.update({"service.istio.io/canonical-name": name, "service.istio.io/canonical-revision": "latest"})
        containers = []
        ports = [{"name": p["targetPort"] if isinstance(p.get("targetPort"), str) else p.get("name", "port")[:15],
                  "containerPort": _target_port(p), "protocol": p.get("protocol", "TCP")} for p in svc["spec"]["ports"]]
        annotations = {}
        if gateway:
            labels.update({"sidecar.istio.io/inject": "false", "istio.io/rev": "default"})
            containers.append({"name": "istio-proxy", "image": "docker.io/istio/proxyv2:%s" % ISTIO_IMAGE_TAG,
                               "args": ["proxy", "router"], "ports": ports})
        else:
            labels.update({"security.istio.io/tlsMode": "istio", "istio.io/rev": "default"})
            annotations["sidecar.istio.io/status"] = (
                '{"initContainers":["istio-init"],"containers":["istio-proxy"],"volumes":["istio-envoy"],'
                '"imagePullSecrets":null,"revision":"default"}')
            containers.append({"name": "app", "image": "registry.example/%s:1" % name, "ports": ports})
            containers.append({"name": "istio-proxy", "image": "docker.io/istio/proxyv2:%s" % ISTIO_IMAGE_TAG,
                               "args": ["proxy", "sidecar"]})
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": _meta(pod_name, ns, labels, annotations or None),
               "spec": {"serviceAccountName": service_account, "nodeName": "lab-node-1", "containers": containers}}
        created = upsert(cluster, pod, "kube-controller-manager")
        ip = ips.next()
        now = "2026-01-01T00:00:00Z"
        kubeapi.request(cluster, "PATCH", kubeapi.object_path(pod, subresource="status"),
                        body={"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                                         "hostIP": "192.168.0.1", "startTime": now,
                                         "conditions": [{"type": t, "status": "True", "lastTransitionTime": now}
                                                        for t in ("Initialized", "Ready", "ContainersReady",
                                                                  "PodScheduled")]}},
                        query={"fieldManager": "kubelet"}, content_type="application/merge-patch+json")
        endpoints.append({"addresses": [ip], "conditions": {"ready": True, "serving": True, "terminating": False},
                          "nodeName": "lab-node-1",
                          "targetRef": {"kind": "Pod", "namespace": ns, "name": pod_name,
                                        "uid": created["metadata"]["uid"]}})
    slice_ports = []
    for p in svc["spec"]["ports"]:
        sp = {"name": p.get("name", ""), "port": _target_port(p), "protocol": p.get("protocol", "TCP")}
        if p.get("appProtocol"):
            sp["appProtocol"] = p["appProtocol"]
        slice_ports.append(sp)
    upsert(cluster, {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                     "metadata": _meta("%s-lab01" % name, ns,
                                       {"kubernetes.io/service-name": name,
                                        "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}),
                     "addressType": "IPv4", "endpoints": endpoints, "ports": slice_ports},
           "endpointslice-controller")


def _istiod_env(cluster_name, revision, overrides):
    env = {"ISTIO_MULTIROOT_MESH": "true", "PILOT_ENABLE_ANALYSIS": "false", "CLUSTER_ID": cluster_name}
    if revision:
        env["REVISION"] = revision
    for key, value in (overrides or {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = str(value)
    return [{"name": k, "value": v} for k, v in env.items()]


def cross_network_gateway(namespace=ISTIO_NS, selector=None, port=15443):
    """Istio's documented east-west Gateway (samples/multicluster/expose-services.yaml)."""
    return {"name": "cross-network-gateway", "namespace": namespace,
            "spec": {"selector": dict(selector or GATEWAY_SELECTOR),
                     "servers": [{"port": {"number": port, "name": "tls", "protocol": "TLS"},
                                  "tls": {"mode": "AUTO_PASSTHROUGH"}, "hosts": ["*.local"]}]}}


def _seed_gateways(cluster, spec, istio_ns):
    """Installer-made Gateways (the opt-in istio_gateways key)."""
    for gw in spec.get("istio_gateways") or []:
        upsert(cluster, {"apiVersion": "networking.istio.io/v1", "kind": "Gateway",
                         "metadata": _meta(gw["name"], gw.get("namespace", istio_ns), gw.get("labels")),
                         "spec": copy.deepcopy(gw["spec"])}, "kubectl-client-side-apply")


def seed_clusters(clusters, specs=None):
    """Seed several clusters in parallel; ``specs`` maps cluster name -> spec (missing: default)."""
    specs = specs or {}
    with ThreadPoolExecutor(max_workers=max(1, len(clusters))) as ex:
        return list(ex.map(lambda c: seed_cluster(c, specs.get(c.name)), clusters))


# ---------------------------------------------------------------------------------------------
# helpers for tests
# ---------------------------------------------------------------------------------------------
def set_public(cluster, namespace, name, public, label=PUBLIC_LABEL):
    """Add (``public=True``, value "") or remove the public-service label of a Service."""
    body = {"metadata": {"labels": {label: "" if public else None}}}
    return kubeapi.request(cluster, "PATCH", "/api/v1/namespaces/%s/services/%s" % (namespace, name), body=body,
                           query={"fieldManager": "kubectl-label"}, content_type="application/merge-patch+json")


def read_root_pem(cluster, namespace=ISTIO_NS):
    """root-cert.pem of ConfigMap istio-ca-root-cert (what the collection publishes)."""
    cm = kubeapi.request(cluster, "GET", "/api/v1/namespaces/%s/configmaps/istio-ca-root-cert" % namespace)
    return cm["data"]["root-cert.pem"]


def read_cacerts(cluster, namespace=ISTIO_NS):
    """The decoded Secret cacerts: {'root-cert.pem': ..., 'ca-cert.pem': ..., 'ca-key.pem': ..., 'cert-chain.pem': ...}."""
    sec = kubeapi.request(cluster, "GET", "/api/v1/namespaces/%s/secrets/cacerts" % namespace)
    return {k: base64.b64decode(v).decode() for k, v in sec["data"].items()}


def read_mesh_text(cluster, namespace=ISTIO_NS):
    cm = kubeapi.request(cluster, "GET", "/api/v1/namespaces/%s/configmaps/istio" % namespace)
    return cm["data"]["mesh"]


def set_gateway_ingress(cluster, ingress, namespace=ISTIO_NS, name=GATEWAY_NAME):
    """Replace status.loadBalancer.ingress of the gateway Service (status subresource)."""
    return kubeapi.request(cluster, "PATCH", "/api/v1/namespaces/%s/services/%s/status" % (namespace, name),
                           body={"status": {"loadBalancer": {"ingress": ingress}}},
                           query={"fieldManager": "cloud-controller-manager"},
                           content_type="application/merge-patch+json")
