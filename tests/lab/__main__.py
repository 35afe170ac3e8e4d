"""Lab command line (run from the repository root):

    python -m tests.lab build                                 # build kube-apiserver + etcd, fetch Istio CRDs
    python -m tests.lab up cluster-a cluster-b --dir DIR      # start + seed, write DIR/inventory.yml, wait for Ctrl-C
    python -m tests.lab measure --clusters 3                  # timings and RSS (see tests/lab/README.md)
"""

import argparse
import os
import re
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

from tests.lab import crds, seed
from tests.lab.inventory import write_inventory
from tests.lab.lab import Lab, LabError, binaries


def cmd_build(args):
    t = time.monotonic()
    bindir = binaries()
    path = crds.istio_crds_path()
    print("binaries: %s" % bindir)
    print("istio CRDs: %s" % path)
    print("done in %.1fs" % (time.monotonic() - t))
    return 0


def cmd_up(args):
    workdir = Path(args.dir or tempfile.mkdtemp(prefix="meshfed-lab-")).resolve()
    names = args.names or ["cluster-a", "cluster-b"]
    # Ctrl-C means "stop the lab", even when started as a background job (which ignores SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    binaries()
    crds.istio_crds_path()
    lab = Lab(workdir)
    try:
        t = time.monotonic()
        clusters = lab.start(names)
        print("started %d cluster(s) in %.1fs" % (len(clusters), time.monotonic() - t), flush=True)
        if not args.no_seed:
            t = time.monotonic()
            seed.seed_clusters(clusters)
            print("seeded in %.1fs" % (time.monotonic() - t), flush=True)
        inv = write_inventory(clusters, workdir / "inventory.yml")
        print()
        for c in clusters:
            print("%-12s %s  kubeconfig=%s" % (c.name, c.server, c.kubeconfig))
        print("inventory: %s" % inv)
        print("export KUBECONFIG=%s" % os.pathsep.join(str(c.kubeconfig) for c in clusters))
        print("\nrunning; Ctrl-C (or SIGTERM) stops every cluster", flush=True)
        while True:
            time.sleep(1)
            dead = [c.name for c in clusters if not c.running]
            if dead and lab.clusters:
                print("cluster(s) died: %s (logs under %s)" % (", ".join(dead), workdir), file=sys.stderr)
                return 1
    except KeyboardInterrupt:
        print("\nstopping", flush=True)
        return 0
    except LabError as e:
        print(e, file=sys.stderr)
        return 1
    finally:
        lab.close()


def _build_log_times(path):
    """The per-binary build times build.sh printed, and the last `time` real of the log."""
    try:
        text = Path(path).read_text()
    except OSError:
        return [], None
    steps = re.findall(r"^\[lab-build\] (\S+) built in (\d+s)", text, re.M)
    real = re.findall(r"^real\s+(\S+)", text, re.M)
    return steps, (real[-1] if real else None)


def cmd_measure(args):
    out = []
    if args.build_log:
        steps, real = _build_log_times(args.build_log)
        if steps:
            out.append("cold build (from %s): %s" % (args.build_log, ", ".join("%s %s" % s for s in steps)))
        if real:
            out.append("`time` of the logged command (from %s): real %s" % (args.build_log, real))
    t = time.monotonic()
    bindir = binaries()
    crds.istio_crds_path()
    out.append("binaries/CRDs available in %.2fs (%s)" % (time.monotonic() - t, bindir))
    starts, seeds = [], []
    rss = []
    for i in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix="meshfed-measure-") as tmp, Lab(tmp, bin_dir=bindir) as lab:
            names = ["cluster-%s" % chr(ord("a") + k) if args.clusters <= 26 else "cluster-%d" % (k + 1)
                     for k in range(args.clusters)]
            t = time.monotonic()
            clusters = lab.start(names)
            starts.append(time.monotonic() - t)
            t = time.monotonic()
            seed.seed_clusters(clusters)
            seeds.append(time.monotonic() - t)
            time.sleep(args.settle)
            for c in clusters:
                r = c.rss_kib()
                rss.append((r.get("kube-apiserver", 0), r.get("etcd", 0)))
            lab.stop(remove_data=True)
    n = args.clusters
    out.append("clusters: %d, runs: %d" % (n, args.repeat))
    out.append("start (all %d ready, /readyz + namespace default): %s s" % (n, ", ".join("%.1f" % s for s in starts)))
    out.append("seed (Istio + IstioFederation CRDs Established, scenario objects): %s s"
               % ", ".join("%.1f" % s for s in seeds))
    out.append("start+seed: %s s" % ", ".join("%.1f" % (a + b) for a, b in zip(starts, seeds)))
    api = [pair[0] / 1024 for pair in rss]
    etcd = [pair[1] / 1024 for pair in rss]
    tot = [(a + e) / 1024 for a, e in rss]
    out.append("RSS per cluster after seeding + %ds (MiB, min/median/max): kube-apiserver %.0f/%.0f/%.0f, "
               "etcd %.0f/%.0f/%.0f, total %.0f/%.0f/%.0f"
               % (args.settle, min(api), statistics.median(api), max(api), min(etcd), statistics.median(etcd),
                  max(etcd), min(tot), statistics.median(tot), max(tot)))
    print("\n".join(out))
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m tests.lab", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("build", help="build kube-apiserver + etcd (cached) and fetch the Istio CRDs")
    up = sub.add_parser("up", help="start and seed clusters, stay in the foreground")
    up.add_argument("names", nargs="*", help="cluster names (default: cluster-a cluster-b)")
    up.add_argument("--dir", help="work directory (default: a new temp dir)")
    up.add_argument("--no-seed", action="store_true", help="start empty clusters (no CRDs, no Istio objects)")
    me = sub.add_parser("measure", help="time start + seed and report RSS per cluster")
    me.add_argument("--clusters", type=int, default=3)
    me.add_argument("--repeat", type=int, default=1)
    me.add_argument("--settle", type=int, default=5, help="seconds to wait after seeding before reading RSS")
    me.add_argument("--build-log", help="a log of `time bash tests/lab/build.sh` (or of `.ci/run`) to report the cold build from")
    args = ap.parse_args(argv)
    return {"build": cmd_build, "up": cmd_up, "measure": cmd_measure}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
