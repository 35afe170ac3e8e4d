"""The one API helper of the lab and the tests: raw requests on top of ``kubernetes.client``
(server-side apply, status), and the reads and pokes a test (not the collection) makes of a cluster's
Istio objects and mesh config. Everything goes through :func:`request`; errors are the kubernetes
library's ``ApiException``.

``cluster`` arguments accept a :class:`tests.lab.lab.Cluster` or a ``kubernetes.client.ApiClient``.
"""

import json
import time

import yaml
from kubernetes.client.exceptions import ApiException

FIELD_MANAGER = "meshfed-lab"

# kind -> (api prefix, plural, namespaced) for the kinds the lab writes; others need plural=...
KINDS = {
    ("v1", "Namespace"): ("namespaces", False),
    ("v1", "ConfigMap"): ("configmaps", True),
    ("v1", "Secret"): ("secrets", True),
    ("v1", "Service"): ("services", True),
    ("v1", "ServiceAccount"): ("serviceaccounts", True),
    ("v1", "Pod"): ("pods", True),
    ("discovery.k8s.io/v1", "EndpointSlice"): ("endpointslices", True),
    ("apps/v1", "Deployment"): ("deployments", True),
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition"): ("customresourcedefinitions", False),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): ("clusterroles", False),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): ("clusterrolebindings", False),
    ("rbac.authorization.k8s.io/v1", "Role"): ("roles", True),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): ("rolebindings", True),
    ("networking.istio.io/v1", "ServiceEntry"): ("serviceentries", True),
    ("networking.istio.io/v1", "DestinationRule"): ("destinationrules", True),
    ("networking.istio.io/v1", "Gateway"): ("gateways", True),
    ("meshfed.io/v1alpha1", "IstioFederation"): ("istiofederations", False),
}


def api_client(cluster):
    if hasattr(cluster, "shared_client"):
        return cluster.shared_client()
    return cluster.api_client() if hasattr(cluster, "api_client") else cluster


def object_path(obj, plural=None, subresource=None):
    api_version, kind = obj["apiVersion"], obj["kind"]
    known = KINDS.get((api_version, kind))
    if plural is None:
        if known is None:
            raise ValueError("unknown kind %s %s: pass plural=" % (api_version, kind))
        plural, namespaced = known
    else:
        namespaced = known[1] if known else bool(obj["metadata"].get("namespace"))
    prefix = "/api/v1" if api_version == "v1" else "/apis/" + api_version
    meta = obj["metadata"]
    path = prefix
    if namespaced:
        path += "/namespaces/%s" % meta["namespace"]
    path += "/%s/%s" % (plural, meta["name"])
    if subresource:
        path += "/" + subresource
    return path


def request(cluster, method, path, body=None, query=None, content_type="application/json", timeout=30):
    """Raw request; returns decoded JSON (or None); raises kubernetes ApiException on non-2xx."""
    client = api_client(cluster)
    headers = {"Accept": "application/json"}
    if body is not None:
        headers["Content-Type"] = content_type
    method, url, headers, body, post = client.param_serialize(method, path, query_params=list((query or {}).items()),
                                                              header_params=headers, body=body)
    resp = client.call_api(method, url, header_params=headers, body=body, _request_timeout=timeout)
    data = resp.read()
    if not 200 <= resp.status <= 299:
        raise ApiException(http_resp=resp)
    return json.loads(data) if data else None


def apply(cluster, obj, plural=None, subresource=None, field_manager=FIELD_MANAGER, force=True):
    """Server-side apply ``obj`` (a dict) and return the object as stored."""
    query = {"fieldManager": field_manager}
    if force:
        query["force"] = "true"
    return request(cluster, "PATCH", object_path(obj, plural, subresource), body=obj, query=query,
                   content_type="application/apply-patch+yaml")


def get(cluster, obj, plural=None):
    return request(cluster, "GET", object_path(obj, plural))


def retry(fn, attempts=50, delay=0.1, retry_on=(404, 409, 429, 500, 503)):
    """Call fn, retrying briefly on transient API errors (e.g. a CRD just became Established)."""
    for i in range(attempts):
        try:
            return fn()
        except ApiException as e:
            if e.status not in retry_on or i == attempts - 1:
                raise
            time.sleep(delay)


# -- what a test reads and pokes: Istio objects and the mesh config of a cluster ------------------------
ISTIO = ("networking.istio.io", "v1")
FED = ("meshfed.io", "v1alpha1")
NS = "istio-system"


def _istio_path(plural, namespace, name=None):
    return "/apis/%s/%s/namespaces/%s/%s%s" % (ISTIO + (namespace, plural, "/" + name if name else ""))


def _core_path(plural, namespace, name):
    return "/api/v1/namespaces/%s/%s/%s" % (namespace, plural, name)


def _by_name(items):
    return {i["metadata"]["name"]: i for i in items}


def service_entries(cluster, namespace=NS):
    return _by_name(request(cluster, "GET", _istio_path("serviceentries", namespace))["items"])


def destination_rules(cluster, namespace=NS):
    return _by_name(request(cluster, "GET", _istio_path("destinationrules", namespace))["items"])


def gateways(cluster, namespace=NS):
    return _by_name(request(cluster, "GET", _istio_path("gateways", namespace))["items"])


def federations(cluster):
    return _by_name(request(cluster, "GET", "/apis/%s/%s/istiofederations" % FED)["items"])


def se_by_host(cluster):
    return {h: se for se in service_entries(cluster).values() for h in se["spec"]["hosts"]}


def mesh_text(cluster, namespace=NS):
    return request(cluster, "GET", _core_path("configmaps", namespace, "istio"))["data"]["mesh"]


def mesh(cluster, namespace=NS):
    return yaml.safe_load(mesh_text(cluster, namespace)) or {}


def set_mesh_text(cluster, text, namespace=NS):
    request(cluster, "PATCH", _core_path("configmaps", namespace, "istio"), body={"data": {"mesh": text}},
            content_type="application/strategic-merge-patch+json")


def root_pem(cluster, namespace=NS):
    return request(cluster, "GET", _core_path("configmaps", namespace, "istio-ca-root-cert"))["data"]["root-cert.pem"]


def gateway_ip(cluster, namespace=NS, name="istio-eastwestgateway"):
    svc = request(cluster, "GET", _core_path("services", namespace, name))
    return svc["status"]["loadBalancer"]["ingress"][0]["ip"]


def trusted(cluster):
    """caCertificates entries as {normalised pem: trustDomains}."""
    return {e["pem"].strip(): e.get("trustDomains") for e in mesh(cluster).get("caCertificates") or []}


def create_service_entry(cluster, name, body_spec, labels=None, namespace=NS):
    body = {"apiVersion": "/".join(ISTIO), "kind": "ServiceEntry",
            "metadata": {"name": name, "namespace": namespace, "labels": labels or {}}, "spec": body_spec}
    return request(cluster, "POST", _istio_path("serviceentries", namespace), body=body)


def delete_service_entry(cluster, name, namespace=NS):
    request(cluster, "DELETE", _istio_path("serviceentries", namespace, name))


def get_service_entry(cluster, name, namespace=NS):
    return request(cluster, "GET", _istio_path("serviceentries", namespace, name))
