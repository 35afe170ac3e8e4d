"""ansible-playbook with its task workers profiled (benchmarks/profile.py runs this instead of
ansible-playbook): every forked WorkerProcess runs under cProfile and dumps its stats to
$MESHFED_PROF_DIR/worker-<pid>.prof; the main process to main.prof. Worker forks, not execs, so
this is the only way to see where a worker's time goes (templating, module build, waiting)."""

import cProfile
import os
import resource
import sys
import time


def main():
    out = os.environ["MESHFED_PROF_DIR"]
    from ansible.executor.process import worker

    orig = worker.WorkerProcess._run

    def _run(self):
        prof = cProfile.Profile()
        prof.enable()
        try:
            return orig(self)
        finally:
            prof.disable()
            prof.dump_stats(os.path.join(out, "worker-%d-%d.prof" % (os.getpid(), time.time_ns())))

    worker.WorkerProcess._run = _run
    from ansible.cli.playbook import main as playbook_main
    sys.argv = ["ansible-playbook"] + sys.argv[1:]
    prof = cProfile.Profile()
    prof.enable()
    try:
        playbook_main()
    finally:
        prof.disable()
        prof.dump_stats(os.path.join(out, "main.prof"))
        with open(os.path.join(out, "controller_rss_kib"), "w") as fh:
            fh.write(str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))


if __name__ == "__main__":
    main()
