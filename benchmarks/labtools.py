"""Lab-side helpers for the benchmark: reset a cluster between variants, dump the collection's
objects (the baselines' input), count API requests and API-server CPU around a run."""

import copy
import json
import os
from concurrent.futures import ThreadPoolExecutor

from tests.lab import kubeapi

NS = "istio-system"
MANAGED = "app.kubernetes.io/managed-by=meshfed.istio"
# kind -> collection path (the objects the collection writes)
KIND_PATHS = {
    "IstioFederation": "/apis/meshfed.io/v1alpha1/istiofederations",
    "ServiceEntry": "/apis/networking.istio.io/v1/namespaces/%s/serviceentries" % NS,
    "DestinationRule": "/apis/networking.istio.io/v1/namespaces/%s/destinationrules" % NS,
    "Gateway": "/apis/networking.istio.io/v1/namespaces/%s/gateways" % NS,
}
MESH_CM = "/api/v1/namespaces/%s/configmaps/istio" % NS
_SERVER_FIELDS = ("uid", "resourceVersion", "creationTimestamp", "managedFields", "generation", "selfLink")


def parallel(fn, items):
    items = list(items)
    with ThreadPoolExecutor(max_workers=max(1, len(items))) as ex:
        return list(ex.map(fn, items))


def _list_all(cluster, path, selector=None):
    items, query = [], {"limit": 500}
    if selector:
        query["labelSelector"] = selector
    while True:
        data = kubeapi.request(cluster, "GET", path, query=query)
        items.extend(data.get("items") or [])
        token = (data.get("metadata") or {}).get("continue")
        if not token:
            return items
        query["continue"] = token


def snapshot_mesh(cluster):
    """ConfigMap istio as seeded (restored by reset)."""
    cm = kubeapi.request(cluster, "GET", MESH_CM)
    return {"data": cm.get("data") or {}, "annotations": (cm["metadata"].get("annotations") or {})}


def reset(cluster, mesh):
    """Remove every federation object (whoever wrote it) and put ConfigMap istio back as seeded."""
    for kind, path in KIND_PATHS.items():
        kubeapi.request(cluster, "DELETE", path, query={"labelSelector": MANAGED})
    cm = kubeapi.request(cluster, "GET", MESH_CM)
    cm["data"] = copy.deepcopy(mesh["data"])
    cm["metadata"]["annotations"] = copy.deepcopy(mesh["annotations"])
    cm["metadata"].pop("managedFields", None)
    kubeapi.request(cluster, "PUT", MESH_CM, body=cm)
    left = sum(len(_list_all(cluster, p, MANAGED)) for p in KIND_PATHS.values())
    if left:
        raise RuntimeError("%s: %d federation objects left after reset" % (cluster.name, left))


def dump_objects(cluster):
    """Every object the collection wrote on ``cluster`` plus ConfigMap istio, as a user would
    declare them (no server fields, no status): the kubernetes.core baselines' definitions."""
    out = []
    for kind, path in KIND_PATHS.items():
        for obj in _list_all(cluster, path, MANAGED):
            obj.setdefault("apiVersion", path.split("/")[2] + "/" + path.split("/")[3])
            obj["kind"] = kind
            obj.pop("status", None)
            for key in _SERVER_FIELDS:
                obj["metadata"].pop(key, None)
            out.append(obj)
    cm = kubeapi.request(cluster, "GET", MESH_CM)
    out.append({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "istio", "namespace": NS,
                             "annotations": {k: v for k, v in (cm["metadata"].get("annotations") or {}).items()
                                             if k.startswith("federation.meshfed.io/")}},
                "data": {"mesh": cm["data"]["mesh"]}})
    return out


def count_by_kind(objects):
    counts = {}
    for obj in objects:
        counts[obj["kind"]] = counts.get(obj["kind"], 0) + 1
    return counts


def count_services(cluster):
    return len(_list_all(cluster, "/api/v1/services"))


# -- request counting (the API server's own apiserver_request_total) ---------------------------------
# what kube-apiserver does to itself every few seconds (leases, the kubernetes Endpoints, APF config);
# WATCH requests (its informers reconnecting) are left out too
_BACKGROUND = {"leases", "endpoints", "endpointslices", "flowschemas", "prioritylevelconfigurations", "events"}


def request_totals(cluster):
    """{verb: count} of resource requests served so far, plus 'nonresource' (discovery, /metrics)."""
    status, body = cluster.get("/metrics", timeout=30.0)
    if status != 200:
        raise RuntimeError("%s: /metrics answered %s" % (cluster.name, status))
    totals = {}
    for line in body.decode().splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels, value = line[len("apiserver_request_total{"):].rsplit("} ", 1)
        fields = dict(part.split("=", 1) for part in _split_labels(labels))
        verb = fields.get("verb", "").strip('"').lower()
        if fields.get("resource", '""').strip('"') in _BACKGROUND or verb == "watch":
            continue
        if not fields.get("resource", '""').strip('"'):
            verb = "nonresource"
        elif fields.get("dry_run", '""').strip('"'):
            verb += "-dryrun"
        totals[verb] = totals.get(verb, 0) + int(float(value))
    return totals


def _split_labels(text):
    parts, cur, quoted = [], "", False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur:
        parts.append(cur)
    return parts


def delta(after, before):
    out = {k: after.get(k, 0) - before.get(k, 0) for k in set(after) | set(before)}
    # the scrape that produced ``before`` is counted in ``after``
    out["nonresource"] = out.get("nonresource", 0) - 1
    return {k: v for k, v in sorted(out.items()) if v}


def server_cpu_seconds(clusters):
    """CPU seconds used so far by every kube-apiserver and etcd of the lab."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for c in clusters:
        for pid in c.pids().values():
            try:
                with open("/proc/%d/stat" % pid) as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])
            except OSError:
                pass
    return total / float(tick)


def write_json(path, data):
    path.write_text(json.dumps(data))
    return path
