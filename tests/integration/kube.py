"""Read and poke lab clusters the way a test (not the collection) would: kubernetes client directly."""

import yaml
from kubernetes import client as k8s

ISTIO = ("networking.istio.io", "v1")
FED = ("meshfed.io", "v1alpha1")
NS = "istio-system"


def _custom(cluster):
    return k8s.CustomObjectsApi(cluster.api_client())


def service_entries(cluster, namespace=NS):
    items = _custom(cluster).list_namespaced_custom_object(*ISTIO, namespace, "serviceentries")["items"]
    return {i["metadata"]["name"]: i for i in items}


def destination_rules(cluster, namespace=NS):
    items = _custom(cluster).list_namespaced_custom_object(*ISTIO, namespace, "destinationrules")["items"]
    return {i["metadata"]["name"]: i for i in items}


def gateways(cluster, namespace=NS):
    items = _custom(cluster).list_namespaced_custom_object(*ISTIO, namespace, "gateways")["items"]
    return {i["metadata"]["name"]: i for i in items}


def federations(cluster):
    items = _custom(cluster).list_cluster_custom_object(*FED, "istiofederations")["items"]
    return {i["metadata"]["name"]: i for i in items}


def se_by_host(cluster):
    return {h: se for se in service_entries(cluster).values() for h in se["spec"]["hosts"]}


def mesh_text(cluster, namespace=NS):
    cm = k8s.CoreV1Api(cluster.api_client()).read_namespaced_config_map("istio", namespace)
    return cm.data["mesh"]


def mesh(cluster, namespace=NS):
    return yaml.safe_load(mesh_text(cluster, namespace)) or {}


def set_mesh_text(cluster, text, namespace=NS):
    k8s.CoreV1Api(cluster.api_client()).patch_namespaced_config_map("istio", namespace, {"data": {"mesh": text}})


def root_pem(cluster, namespace=NS):
    cm = k8s.CoreV1Api(cluster.api_client()).read_namespaced_config_map("istio-ca-root-cert", namespace)
    return cm.data["root-cert.pem"]


def gateway_ip(cluster, namespace=NS, name="istio-eastwestgateway"):
    svc = k8s.CoreV1Api(cluster.api_client()).read_namespaced_service(name, namespace)
    return svc.status.load_balancer.ingress[0].ip


def trusted(cluster):
    """caCertificates entries as {normalised pem: trustDomains}."""
    return {e["pem"].strip(): e.get("trustDomains") for e in mesh(cluster).get("caCertificates") or []}


def create_service_entry(cluster, name, body_spec, labels=None, namespace=NS):
    body = {"apiVersion": "/".join(ISTIO), "kind": "ServiceEntry",
            "metadata": {"name": name, "namespace": namespace, "labels": labels or {}}, "spec": body_spec}
    return _custom(cluster).create_namespaced_custom_object(*ISTIO, namespace, "serviceentries", body)


def delete_service_entry(cluster, name, namespace=NS):
    _custom(cluster).delete_namespaced_custom_object(*ISTIO, namespace, "serviceentries", name)


def get_service_entry(cluster, name, namespace=NS):
    return _custom(cluster).get_namespaced_custom_object(*ISTIO, namespace, "serviceentries", name)
