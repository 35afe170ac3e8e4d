"""Gather and a no-op apply on a big cluster (issue 21): one lab cluster seeded with N unrelated Pods and
M unrelated Services (stored by the lab's API server; nothing runs them), measured against the same
cluster before the seeding: requests, bytes the API server sent (its apiserver_response_sizes) and wall
time of cluster_info's and federation's runners, run in-process exactly as the action plugins run them.

  python -m benchmarks.biggather [--pods 10000] [--services 2000] [--public 50] [--json out.json]

If the reads grow with the unrelated Pods/Services, gather pays for the cluster's size on every run, not
for what is federated: the report says which requests grew."""

import argparse
import json
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchmarks import labtools, metrics
from benchmarks.bench import spec_with
from tests.collection import ensure_collection_link
from tests.lab import kubeapi
from tests.lab.lab import Lab
from tests.lab.seed import seed_cluster

ensure_collection_link(importable=True)

BULK_NS = "bulk"


def _runner(name):
    from ansible_collections.meshfed.istio.plugins.action import cluster_info, federation
    return {"cluster_info": cluster_info.ActionModule, "federation": federation.ActionModule}[name]


def run_in_process(name, args):
    from ansible_collections.meshfed.istio.plugins.plugin_utils.inprocess import run_in_process as run
    action = _runner(name)
    return run("meshfed.istio." + name, action.argument_spec(), action.run_class, args)


def auth(cluster):
    return {"kubeconfig": str(cluster.kubeconfig), "context": cluster.context}


def gather(cluster):
    return run_in_process("cluster_info", dict(auth(cluster), cluster=cluster.name))


def apply(cluster, card, peer_cards):
    args = dict(auth(cluster), local=card, peers=peer_cards, members=[card["name"]] + [p["name"] for p in peer_cards])
    return run_in_process("federation", args)


def measure(cluster, fn, repeat=3):
    """(result of the last call, {seconds median, requests, bytes by verb+resource}) of ``fn()``."""
    seconds, result, delta = [], None, None
    for _ in range(repeat):
        before = metrics.response_sizes(cluster)
        t0 = time.perf_counter()
        result = fn()
        seconds.append(time.perf_counter() - t0)
        delta = metrics.sizes_delta(metrics.response_sizes(cluster), before)
        if result.get("failed"):
            raise RuntimeError("%s: %s" % (cluster.name, result.get("msg")))
    return result, {"seconds_median": round(statistics.median(seconds), 3), "seconds": [round(s, 3) for s in seconds],
                    "api_calls": result.get("api_calls"), "bytes_total": metrics.total_bytes(delta), "by_request": delta}


def seed_bulk(cluster, pods, services, workers=16):
    """``pods`` Pods and ``services`` headless Services in namespace bulk, no federation label on any."""
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": BULK_NS}}
    kubeapi.request(cluster, "POST", "/api/v1/namespaces", body=namespace)

    def pod(i):
        body = {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "app-%05d" % i, "namespace": BULK_NS,
                             "labels": {"app": "app-%d" % (i % services if services else i)}},
                "spec": {"serviceAccountName": "default",
                         "containers": [{"name": "app", "image": "registry.invalid/app:1",
                                         "ports": [{"containerPort": 8080, "name": "http"}]}]}}
        kubeapi.retry(lambda: kubeapi.request(cluster, "POST", "/api/v1/namespaces/%s/pods" % BULK_NS, body=body))

    def service(i):
        body = {"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "app-%d" % i, "namespace": BULK_NS},
                "spec": {"clusterIP": "None", "selector": {"app": "app-%d" % i},
                         "ports": [{"name": "http", "port": 8080}]}}
        kubeapi.retry(lambda: kubeapi.request(cluster, "POST", "/api/v1/namespaces/%s/services" % BULK_NS, body=body))

    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=workers) as ex:
        list(ex.map(service, range(services)))
        list(ex.map(pod, range(pods)))
    return round(time.monotonic() - t0, 1)


PARTIAL = "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io"
IMPORTED = {"ServiceEntry": "/apis/networking.istio.io/v1/namespaces/istio-system/serviceentries",
            "DestinationRule": "/apis/networking.istio.io/v1/namespaces/istio-system/destinationrules"}


def list_bytes(cluster, path, accept="application/json"):
    """Bytes of one unpaged LIST of the collection's objects at ``path`` (as JSON, or metadata only)."""
    import http.client
    conn = http.client.HTTPSConnection("127.0.0.1", cluster.port, context=cluster._ssl_context(), timeout=60)
    try:
        conn.request("GET", path + "?labelSelector=app.kubernetes.io%2Fmanaged-by%3Dmeshfed.istio",
                     headers={"Accept": accept})
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            raise RuntimeError("%s: LIST %s answered %s" % (cluster.name, path, resp.status))
        return len(body), len(json.loads(body).get("items") or [])
    finally:
        conn.close()


def metadata_only(cluster):
    """Per imported kind: bytes per object of a full LIST and of a metadata-only one
    (PartialObjectMetadataList, which still carries labels, annotations (the config hash) and managedFields)."""
    out = {}
    for kind, path in IMPORTED.items():
        (full, n), (meta, _) = list_bytes(cluster, path), list_bytes(cluster, path, PARTIAL)
        out[kind] = {"objects": n, "full_bytes_per_object": round(full / max(n, 1)),
                     "metadata_only_bytes_per_object": round(meta / max(n, 1))}
    return out


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--pods", type=int, default=10000)
    ap.add_argument("--services", type=int, default=2000)
    ap.add_argument("--public", type=int, default=50, help="public services per cluster")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="meshfed-biggather-"))
    lab = Lab(workdir / "lab")
    report = {"pods": args.pods, "services": args.services, "public_services": args.public}
    try:
        big, peer = lab.start(["cluster-00", "cluster-01"])
        labtools.parallel(lambda c: seed_cluster(c, spec_with(c.name, args.public)), [big, peer])
        peer_card = gather(peer)["card"]

        def runs(label):
            result, report[label + " gather"] = measure(big, lambda: gather(big))
            card = result["card"]
            apply(big, card, [peer_card])  # converge (not measured); then the no-op
            _, report[label + " no-op apply"] = measure(big, lambda: apply(big, card, [peer_card]))
            for what in ("gather", "no-op apply"):
                m = report["%s %s" % (label, what)]
                print("%-6s %-12s %6.3f s  %s  %8d bytes" % (label, what, m["seconds_median"], m["api_calls"], m["bytes_total"]),
                      flush=True)

        runs("small")
        report["imported_list_bytes"] = metadata_only(big)
        print("LIST bytes per imported object, full vs metadata-only: %s" % report["imported_list_bytes"], flush=True)
        report["seed_seconds"] = seed_bulk(big, args.pods, args.services)
        print("seeded %d Pods and %d Services in %.1f s" % (args.pods, args.services, report["seed_seconds"]), flush=True)
        runs("big")
        for what in ("gather", "no-op apply"):
            small, bigm = report["small " + what], report["big " + what]
            grew = {k: (small["by_request"].get(k, {}).get("bytes", 0), v["bytes"]) for k, v in bigm["by_request"].items()
                    if v["bytes"] > 2 * small["by_request"].get(k, {}).get("bytes", 0) + 10000}
            report[what + " grew"] = grew
            print("%s: %.1fx the time, %.1fx the bytes of the small cluster; requests that grew (bytes small -> big): %s" % (
                what, bigm["seconds_median"] / max(small["seconds_median"], 1e-3),
                bigm["bytes_total"] / float(max(small["bytes_total"], 1)), grew or "none"), flush=True)
    finally:
        lab.stop()
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
