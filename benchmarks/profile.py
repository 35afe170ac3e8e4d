"""Where the time goes: profile a first run and a no-op run of playbooks/federate.yml on a lab.

  python -m benchmarks.profile [--clusters 5] [--services 100] [--json out.json]

Three views, printed as Markdown tables (benchmarks/README.md keeps them):
  * per task: wall time of each task over all hosts (task start to the next task's start), from a
    timing callback (callback_plugins/meshfed_timing.py);
  * per module process (benchmarks/modwrap.py is the module interpreter): start-up and imports,
    argument validation, connect, reads, plan, writes, other; CPU and peak RSS;
  * controller: ansible-playbook runs under benchmarks/controller.py, which profiles the main
    process and every forked task worker with cProfile: templating, building the module payload,
    waiting for the module, callbacks. cProfile slows the controller down (about 1.5-2x): read
    these as shares.
"""

import argparse
import glob
import json
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import labtools
from benchmarks.bench import spec_with
from tests.integration.ansible_run import COLLECTIONS, PLAYBOOK, ensure_collection_link
from tests.lab.inventory import write_inventory
from tests.lab.lab import Lab
from tests.lab.seed import seed_cluster

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

# controller functions reported (file suffix, function name) -> label; cumulative seconds over all workers
CONTROLLER_FUNCS = [
    (("task_executor.py", "run"), "worker: TaskExecutor.run (whole task in the worker)"),
    (("_engine.py", "template"), "worker: templating (TemplateEngine.template)"),
    (("task_executor.py", "_get_loop_items"), "worker: loop items"),
    (("federation_peers.py", "federation_peers"), "worker: federation_peers filter"),
    (("federation_peers.py", "federation_cards"), "worker: federation_cards filter (run_once)"),
    (("federation_peers.py", "federation_split"), "worker: federation_split filter"),
    (("__init__.py", "_configure_module"), "worker: build module payload (AnsiballZ)"),
    (("__init__.py", "_low_level_execute_command"), "worker: run the module process (wait)"),
    (("__init__.py", "_transfer_data"), "worker: write the module file"),
]
MAIN_FUNCS = [
    (("manager.py", "get_vars"), "main: VariableManager.get_vars"),
    (("linear.py", "run"), "main: strategy run"),
    (("__init__.py", "_process_pending_results"), "main: process results (callbacks)"),
    (("__init__.py", "_queue_task"), "main: queue task (fork worker)"),
    (("included_file.py", "process_include_results"), "main: include processing"),
]


def run_profiled(inventory, profdir, wrapper):
    ensure_collection_link()
    env = dict(os.environ)
    env.update({
        "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCAL_TEMP": str(Path(inventory).parent / ".ansible-tmp"),
        "ANSIBLE_REMOTE_TEMP": str(Path(inventory).parent / ".ansible-tmp"),
        "ANSIBLE_DEPRECATION_WARNINGS": "False",
        "ANSIBLE_CALLBACK_PLUGINS": str(HERE / "callback_plugins"),
        "ANSIBLE_CALLBACKS_ENABLED": "meshfed_timing",
        "MESHFED_PROF_DIR": str(profdir),
        "PYTHONPATH": str(REPO),
    })
    n = len(Path(inventory).read_text().split("meshfed_kubeconfig")) - 1
    cmd = [sys.executable, "-m", "benchmarks.controller", "-i", str(inventory), str(PLAYBOOK), "-f", str(n),
           "-e", "ansible_python_interpreter=%s" % wrapper]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(REPO), check=False)
    wall = time.monotonic() - t0
    if proc.returncode != 0:
        raise RuntimeError("profiled run failed:\n%s\n%s" % (proc.stdout[-5000:], proc.stderr[-3000:]))
    return wall


def task_table(profdir):
    events = [json.loads(ln) for ln in (profdir / "tasks.jsonl").read_text().splitlines()]
    start = events[0]["time"]
    end = events[-1]["time"]
    rows = []
    marks = [e for e in events if e["event"] in ("task_start", "play_start", "playbook_end")]
    for i, e in enumerate(marks):
        if e["event"] != "task_start":
            continue
        nxt = marks[i + 1]["time"] if i + 1 < len(marks) else end
        rows.append({"task": e["task"], "action": e["action"], "seconds": nxt - e["time"]})
    merged = {}
    for r in rows:
        key = (r["task"], r["action"])
        merged.setdefault(key, {"task": r["task"], "action": r["action"], "seconds": 0.0, "count": 0})
        merged[key]["seconds"] += r["seconds"]
        merged[key]["count"] += 1
    return {"total": end - start, "tasks": list(merged.values())}


def module_table(profdir):
    lines = [json.loads(ln) for ln in (profdir / "modules.jsonl").read_text().splitlines()]
    out = {}
    for mod in sorted(set(ln["module"] for ln in lines)):
        ls = [ln for ln in lines if ln["module"] == mod]
        phases = sorted(set(k for ln in ls for k in ln["phases"]))
        out[mod] = {
            "processes": len(ls),
            "wall": _med([ln["wall"] for ln in ls]),
            "cpu": _med([ln["cpu"] for ln in ls]),
            "max_rss_mib": round(max(ln["max_rss_kib"] for ln in ls) / 1024.0, 1),
            "phases": {p: _med([ln["phases"].get(p, 0.0) for ln in ls]) for p in phases},
            "imports": {k: _med([ln["imports"].get(k, 0.0) for ln in ls]) for k in sorted(set(
                k for ln in ls for k in ln["imports"]))},
        }
    return out


def _med(values):
    return round(statistics.median(values), 3) if values else 0.0


def _cumulative(stats, funcs):
    out = {}
    for (suffix, name), label in funcs:
        total = 0.0
        for (filename, _line, fname), (_cc, _nc, _tt, ct, _callers) in stats.stats.items():
            if fname == name and filename.endswith(suffix):
                total += ct
        out[label] = round(total, 2)
    return out


def controller_table(profdir):
    stats, workers = None, 0
    for path in sorted(glob.glob(str(profdir / "worker-*.prof"))):
        try:  # a worker killed while dumping leaves a short file: skip it, say so
            one = pstats.Stats(path)
        except (EOFError, ValueError, TypeError):
            continue
        workers += 1
        stats = one if stats is None else stats.add(one)
    result = {"workers": workers}
    if stats is not None:
        result.update(_cumulative(stats, CONTROLLER_FUNCS))
    main = profdir / "main.prof"
    if main.exists():
        result.update(_cumulative(pstats.Stats(str(main)), MAIN_FUNCS))
    rss = profdir / "controller_rss_kib"
    if rss.exists():
        result["controller_max_rss_mib"] = round(int(rss.read_text()) / 1024.0, 1)
    return result


def print_tables(name, prof):
    print("\n### %s (%.1f s under the profilers)\n" % (name, prof["wall"]))
    print("| task | runs | seconds |\n|---|---|---|")
    for t in prof["tasks"]["tasks"]:
        print("| %s (`%s`) | %d | %.2f |" % (t["task"], t["action"].split(".")[-1], t["count"], t["seconds"]))
    print("\n| module | processes | wall (median) | CPU | peak RSS MiB | start+imports | args | connect | reads | plan "
          "| writes | other | imports (kubernetes / urllib3 / yaml / cryptography) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for mod, m in prof["modules"].items():
        p = m["phases"]
        imp = m["imports"]
        print("| %s | %d | %.3f | %.3f | %.1f | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f | %s |" % (
            mod, m["processes"], m["wall"], m["cpu"], m["max_rss_mib"], p.get("start", 0), p.get("args", 0),
            p.get("connect", 0), p.get("reads", 0), p.get("plan", 0), p.get("writes", 0), p.get("other", 0),
            " / ".join("%.3f" % imp.get(k, 0.0) for k in ("kubernetes", "urllib3", "yaml", "cryptography"))))
    print("\n| controller (cProfile, cumulative s over all workers) | seconds |\n|---|---|")
    for k, v in prof["controller"].items():
        print("| %s | %s |" % (k, v))


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--clusters", type=int, default=5)
    ap.add_argument("--services", type=int, default=100)
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="meshfed-prof-"))
    wrapper = workdir / "python-modwrap"
    wrapper.write_text("#!/bin/sh\nexec %s %s \"$@\"\n" % (sys.executable, HERE / "modwrap.py"))
    wrapper.chmod(0o755)
    names = ["cluster-%02d" % i for i in range(args.clusters)]
    lab = Lab(workdir / "lab")
    result = {"clusters": args.clusters, "services": args.services}
    try:
        clusters = lab.start(names)
        labtools.parallel(lambda c: seed_cluster(c, spec_with(c.name, args.services)), clusters)
        inventory = write_inventory(clusters, workdir / "inventory.yml")
        for label in ("first run", "no-op run"):
            profdir = workdir / label.replace(" ", "-")
            profdir.mkdir()
            wall = run_profiled(inventory, profdir, wrapper)
            result[label] = {"wall": wall, "tasks": task_table(profdir), "modules": module_table(profdir),
                             "controller": controller_table(profdir)}
            print_tables("%s, %d clusters x %d services" % (label, args.clusters, args.services), result[label])
    finally:
        lab.stop()
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
