"""Module interpreter wrapper for profiling (ansible_python_interpreter points at a shell script that
execs this with the venv's Python). Runs the AnsiballZ file as Python would and writes one JSON
line per module process to $MESHFED_PROF_DIR/modules.jsonl:

  module, host (cluster), wall, cpu, max_rss_kib and phases (seconds):
    start      interpreter start until AnsibleModule() is constructed (imports of ansible, the
               collection's module_utils, kubernetes/urllib3/yaml/cryptography)
    args       AnsibleModule() (argument spec validation)
    connect    building the API client (kubeconfig loading, TLS context)
    reads      GET/LIST requests (network + JSON decoding)
    plan       planner.plan()
    writes     PATCH/DELETE requests
    other      the rest (comparison, diff/summary building, exit_json)
  and imports: seconds spent importing a few heavy packages (inclusive, first import only).

No profiler: functions are wrapped with perf_counter timers (a few microseconds each), so the
numbers are those of a normal run.
"""

import importlib.abc
import json
import os
import resource
import runpy
import sys
import time

T0 = time.perf_counter()
PHASES = {"args": 0.0, "connect": 0.0, "reads": 0.0, "plan": 0.0, "writes": 0.0}
IMPORTS = {}
MARKS = {}
HEAVY = ("kubernetes", "urllib3", "yaml", "cryptography", "ansible.module_utils.basic")
_depth = [0]


def _timed(phase, fn, classify=None):
    def wrapper(*args, **kwargs):
        name = classify(args, kwargs) if classify else phase
        if _depth[0]:
            return fn(*args, **kwargs)
        _depth[0] += 1
        t = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            PHASES[name] = PHASES.get(name, 0.0) + time.perf_counter() - t
            _depth[0] -= 1
    wrapper.__wrapped__ = fn
    return wrapper


def _request_phase(args, kwargs):
    # Client._request(self, verb, method, path, ...) / Client.request(self, method, path, ...)
    method = kwargs.get("method")
    for a in args[1:3]:
        if isinstance(a, str) and a.upper() in ("GET", "PATCH", "POST", "PUT", "DELETE"):
            method = a
            break
    return "reads" if (method or "GET").upper() == "GET" else "writes"


def _patch(module):
    name = module.__name__
    if name == "ansible.module_utils.basic":
        orig = module.AnsibleModule.__init__

        def init(self, *a, **kw):
            MARKS.setdefault("module_init", time.perf_counter())
            t = time.perf_counter()
            try:
                return orig(self, *a, **kw)
            finally:
                PHASES["args"] += time.perf_counter() - t
        module.AnsibleModule.__init__ = init
    elif name.endswith("module_utils.kube.client"):
        for fn in ("connect",):
            if hasattr(module, fn):
                setattr(module, fn, _timed("connect", getattr(module, fn)))
        client = getattr(module, "Client", None)
        for meth in ("_request", "request"):
            if client is not None and meth in vars(client):
                setattr(client, meth, _timed("reads", vars(client)[meth], _request_phase))
                break
    elif name.endswith("module_utils.kube.parallel") and hasattr(module, "run_jobs"):
        module.run_jobs = _timed("writes", module.run_jobs)  # concurrent writes: their wall time
    elif name.endswith("module_utils.plan.planner"):
        if hasattr(module, "plan"):
            module.plan = _timed("plan", module.plan)


class _Loader(importlib.abc.Loader):
    def __init__(self, inner, name):
        self.inner = inner
        self.name = name

    def create_module(self, spec):
        return self.inner.create_module(spec)

    def exec_module(self, module):
        t = time.perf_counter()
        try:
            self.inner.exec_module(module)
        finally:
            if self.name in HEAVY and self.name not in IMPORTS:
                IMPORTS[self.name] = round(time.perf_counter() - t, 4)
        _patch(module)

    def __getattr__(self, item):
        return getattr(self.inner, item)


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _Loader(spec.loader, fullname)
                return spec
        return None


def _record(script):
    wall = time.perf_counter() - T0
    ru = resource.getrusage(resource.RUSAGE_SELF)
    base = os.path.basename(script)
    module = base[len("AnsiballZ_"):-3] if base.startswith("AnsiballZ_") else base
    start = MARKS.get("module_init", time.perf_counter()) - T0
    known = start + sum(PHASES.values())
    line = {"module": module, "pid": os.getpid(), "wall": round(wall, 4), "cpu": round(ru.ru_utime + ru.ru_stime, 4),
            "max_rss_kib": ru.ru_maxrss,
            "phases": dict({k: round(v, 4) for k, v in PHASES.items()}, start=round(start, 4),
                           other=round(max(0.0, wall - known), 4)),
            "imports": IMPORTS}
    out = os.environ.get("MESHFED_PROF_DIR")
    if out:
        with open(os.path.join(out, "modules.jsonl"), "a") as fh:
            fh.write(json.dumps(line) + "\n")


def main():
    script = sys.argv[1]
    sys.argv = sys.argv[1:]
    sys.path[0] = os.path.dirname(os.path.abspath(script))
    sys.meta_path.insert(0, _Finder())
    try:
        runpy.run_path(script, run_name="__main__")
    finally:
        _record(script)


if __name__ == "__main__":
    main()
