"""An in-memory stand-in for plugins/module_utils/kube/client.Client (objects by path, every request logged),
and the clusters the unit tests read from (a facts world, a federation target)."""

import copy
import json

from ansible_collections.meshfed.istio.plugins.module_utils.gather.facts import DEFAULT_PUBLIC_LABELS
from ansible_collections.meshfed.istio.plugins.module_utils.kube.client import K8sError
from ansible_collections.meshfed.istio.plugins.module_utils.plan.kinds import MANAGED_CA_ANNOTATION, kind_path


class FakeClient:
    server = "https://fake.invalid"
    unverified = None                           # what turned TLS verification off (kube.client.Client)

    def __init__(self, objects=None, lists=None, cluster="cluster-x"):
        self.objects = dict(objects or {})      # path -> object (GET)
        self.lists = dict(lists or {})          # (path, selector) or path -> [items]
        self.cluster = cluster
        self.requests = []                      # (verb, path, extra)
        self.calls = {}

    def _log(self, verb, path, extra=None):
        self.requests.append((verb, path, extra))
        self.calls[verb] = self.calls.get(verb, 0) + 1

    def get(self, path, what=None):
        self._log("get", path)
        obj = self.objects.get(path)
        return copy.deepcopy(obj)

    def list(self, path, label_selector=None, what=None, metadata_only=False):
        self._log("list", path, "metadata only" if metadata_only else label_selector)
        if (path, label_selector) in self.lists:
            return copy.deepcopy(self.lists[(path, label_selector)])
        if path == PODS and label_selector:  # the server's answer to the selectors gather sends
            return copy.deepcopy([p for p in self.lists[path] if _picks(label_selector, p["metadata"]["labels"])])
        if path in self.lists:
            return copy.deepcopy(self.lists[path])
        raise K8sError("not served: %s" % path, status=404)

    def apply(self, path, body, dry_run=False, what=None):
        self._log("apply", path, {"dry_run": dry_run, "body": body})
        return body

    def merge_patch(self, path, body, dry_run=False, what=None):
        self._log("patch", path, {"dry_run": dry_run, "body": body})
        return body

    def delete(self, path, resource_version=None, what=None):
        self._log("delete", path, {"resource_version": resource_version})
        return True


def _picks(selector, labels):
    """``key`` or ``key in (a,b)``, as the API server reads a label selector."""
    key, values = (selector.split(" in (", 1) + [None])[:2]
    return key in labels and (values is None or labels[key] in values.rstrip(")").split(","))


# -- a cluster as cluster_info reads it ------------------------------------------------------------
CM = "/api/v1/namespaces/istio-system/configmaps/"
GW = "/api/v1/namespaces/istio-system/services/istio-eastwestgateway"
SVCS = "/api/v1/services"
DEPLOYMENTS = "/apis/apps/v1/namespaces/istio-system/deployments"
PODS = "/api/v1/pods"
MESH = "# helm\ntrustDomain: cluster-b.local\n"


def service(ns, name, ports, label=DEFAULT_PUBLIC_LABELS[0], type_="ClusterIP", annotations=None):
    return {"metadata": {"namespace": ns, "name": name, "labels": {label: ""}, "annotations": annotations or {}},
            "spec": {"type": type_, "ports": ports}}


def gateway(type_="LoadBalancer", ingress=({"ip": "192.0.2.11"},), ports=None):
    return {"metadata": {"namespace": "istio-system", "name": "istio-eastwestgateway"},
            "spec": {"type": type_, "selector": {"istio": "eastwestgateway"},
                     "ports": ports or [{"name": "status-port", "port": 15021},
                                        {"name": "tls", "port": 15443, "targetPort": 15443, "nodePort": 31443}]},
            "status": {"loadBalancer": {"ingress": list(ingress)}}}


def istiod(name="istiod", domain="cluster.local", env=None, labels=None):
    return {"metadata": {"name": name, "namespace": "istio-system", "labels": labels or {"app": "istiod"}},
            "spec": {"template": {"spec": {"containers": [{
                "name": "discovery", "args": ["discovery", "--domain", domain],
                "env": [{"name": k, "value": v} for k, v in (env or {"ISTIO_MULTIROOT_MESH": "true"}).items()]}]}}}}


def pod(ns, name, labels, service_account, ports=None):
    return {"metadata": {"namespace": ns, "name": name, "labels": labels},
            "spec": {"serviceAccountName": service_account, "containers": [{"name": "app", "ports": ports or []}]},
            "status": {"phase": "Running"}}


def world(root_pem, services=(), deckhouse=(), gw=None, nodes=None, mesh=MESH, configmaps=None, istiods=None,
          pods=()):
    """cluster-b as cluster_facts reads it: one mesh ConfigMap ``istio`` read by Deployment ``istiod``
    (--domain cluster-b.local, the seed scenario) unless ``configmaps``/``istiods`` say otherwise."""
    objects = {CM + "istio-ca-root-cert": {"data": {"root-cert.pem": root_pem}}}
    if gw is not False:
        objects[GW] = gw or gateway()
    if configmaps is None:
        configmaps = [{"metadata": {"name": "istio"}, "data": {"mesh": mesh}}]
    lists = {(SVCS, DEFAULT_PUBLIC_LABELS[0]): list(services), (SVCS, DEFAULT_PUBLIC_LABELS[1]): list(deckhouse),
             "/api/v1/nodes": nodes or [], CM.rstrip("/"): list(configmaps) + [
                 {"metadata": {"name": "istio-ca-root-cert"}, "data": {"root-cert.pem": root_pem}}],
             DEPLOYMENTS: [istiod(domain="cluster-b.local")] if istiods is None else list(istiods),
             PODS: list(pods)}
    return FakeClient(objects, lists, cluster="cluster-b")


# -- a cluster as federation writes to it ------------------------------------------------------------
MESH_PATH = "/api/v1/namespaces/istio-system/configmaps/istio"


def cluster_state(existing_objects=(), mesh="trustDomain: cluster-a.local\n", managed=None):
    lists = {kind_path(k, None, "v1"): [] for k in ("IstioFederation", "ServiceEntry", "DestinationRule", "Gateway")}
    for obj in existing_objects:
        lists[kind_path(obj["kind"], None, "v1")].append(obj)
    annotations = {MANAGED_CA_ANNOTATION: json.dumps(managed)} if managed else {}
    objects = {MESH_PATH: {"metadata": {"resourceVersion": "7", "annotations": annotations}, "data": {"mesh": mesh}}}
    return FakeClient(objects, lists, cluster="cluster-a")
