"""Fleet benchmark: N real lab clusters (default 10), each exporting S services (default 30).

Measures, and checks against the targets below (exit 1 if one is missed):
  * wall time of a first (converging) and a second (no-op) run of playbooks/federate.yml;
  * module invocations per cluster per phase (target: exactly 1 cluster_facts + 1 federation);
  * API requests per module invocation by verb; LIST/GET must not grow with the number of
    services or peers (compared with a run where every cluster exports 1 service);
  * peak RSS of the largest process the run waited for (ansible-playbook or a module).

  python -m benchmarks.fleet [--clusters 10] [--services 30] [--forks 10]
"""

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

from tests.integration.ansible_run import run_playbook
from tests.lab.inventory import write_inventory
from tests.lab.lab import Lab
from tests.lab.seed import default_spec, seed_cluster

TARGETS = {
    "second_run_seconds_per_cluster": 4.0,   # no-op run, per cluster (2 cores, forks 10)
    "max_rss_mib": 400,
}


def spec_with(name, services):
    spec = default_spec(name)
    spec["public_services"] = [
        {"namespace": "web", "name": "svc-%s-%d" % (name, i), "ports": [{"name": "http", "port": 8000 + i}]}
        for i in range(services)
    ]
    return spec


def calls(run, action):
    return {r["host"]: r["api_calls"] for r in run.results(action)}


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--clusters", type=int, default=10)
    ap.add_argument("--services", type=int, default=30)
    ap.add_argument("--forks", type=int, default=10)
    args = ap.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="meshfed-bench-"))
    lab = Lab(workdir)
    report = {"clusters": args.clusters, "services_per_cluster": args.services, "forks": args.forks}
    failures = []
    try:
        names = ["cluster-%02d" % i for i in range(args.clusters)]
        t0 = time.monotonic()
        clusters = lab.start(names)
        report["lab_start_seconds"] = round(time.monotonic() - t0, 1)
        small_inv = workdir / "small.yml"
        for c in clusters:
            seed_cluster(c, spec_with(c.name, 1))
        write_inventory(clusters, small_inv)
        small = run_playbook(small_inv, "-f", str(args.forks))
        assert small.rc == 0, small
        for c in clusters:
            seed_cluster(c, spec_with(c.name, args.services))
        inv = workdir / "inventory.yml"
        write_inventory(clusters, inv)
        t0 = time.monotonic()
        first = run_playbook(inv, "-f", str(args.forks))
        report["first_run_seconds"] = round(time.monotonic() - t0, 1)
        if first.rc != 0:
            print(first)
            return 1
        t0 = time.monotonic()
        second = run_playbook(inv, "-f", str(args.forks))
        report["second_run_seconds"] = round(time.monotonic() - t0, 1)
        report["second_run_changed"] = sum(second.recap[n]["changed"] for n in names)
        report["max_rss_mib"] = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0, 1)
        invocations = {}
        for r in second.records:
            short = r["action"].split(".")[-1]
            if short in ("cluster_facts", "federation"):
                invocations.setdefault(short, {}).setdefault(r["host"], 0)
                invocations[short][r["host"]] += 1
        report["module_invocations_per_cluster"] = {k: sorted(set(v.values())) for k, v in invocations.items()}
        report["api_calls"] = {
            "cluster_facts": {"services=1": calls(small, "cluster_facts")[names[0]],
                              "services=%d" % args.services: calls(second, "cluster_facts")[names[0]]},
            "federation_first_run": calls(first, "federation")[names[0]],
            "federation": {"services=1 (first run)": calls(small, "federation")[names[0]],
                           "services=%d (no-op)" % args.services: calls(second, "federation")[names[0]]},
        }
        # -- targets --------------------------------------------------------------------------------
        if report["second_run_changed"]:
            failures.append("second run changed %d tasks" % report["second_run_changed"])
        if report["module_invocations_per_cluster"] != {"cluster_facts": [1], "federation": [1]}:
            failures.append("module invocations per cluster: %s" % report["module_invocations_per_cluster"])
        for action in ("cluster_facts", "federation"):
            for n in names:
                s, b = calls(small, action)[n], calls(second, action)[n]
                for verb in ("get", "list"):
                    if s.get(verb, 0) != b.get(verb, 0):
                        failures.append("%s %s: %s requests grew from %s to %s with more services"
                                        % (action, n, verb, s.get(verb, 0), b.get(verb, 0)))
                if action == "federation" and set(b) - {"get", "list"}:
                    failures.append("federation %s wrote on a no-op run: %s" % (n, b))
        per_cluster = report["second_run_seconds"] / args.clusters
        report["second_run_seconds_per_cluster"] = round(per_cluster, 2)
        if per_cluster > TARGETS["second_run_seconds_per_cluster"]:
            failures.append("no-op run took %.2fs per cluster (target %.1fs)"
                            % (per_cluster, TARGETS["second_run_seconds_per_cluster"]))
        if report["max_rss_mib"] > TARGETS["max_rss_mib"]:
            failures.append("peak RSS %.0f MiB (target %d)" % (report["max_rss_mib"], TARGETS["max_rss_mib"]))
    finally:
        lab.stop()
    report["targets"] = TARGETS
    report["failures"] = failures
    print(json.dumps(report, indent=2))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
