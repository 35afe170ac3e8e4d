# Copyright: meshfed.istio contributors; GNU General Public License v3.0+ (see LICENSE; SPDX-License-Identifier: GPL-3.0-or-later)
"""Bounded concurrent writes: a cluster's writes are independent, so a first run sends ``limit`` at a time, not one round trip each."""

from concurrent.futures import ThreadPoolExecutor


def run_jobs(jobs, limit):
    """Run ``jobs`` (each a list of ``(call, record)`` steps run in order in one thread, e.g. an object then its status), ``limit`` in
    flight, none started once a call failed; then ``record(result)`` of each step that succeeded, here and in order; raise the first error."""
    stopped = []

    def run(steps):
        results = []
        try:
            for call, _record in [] if stopped else steps:
                results.append(call())
        except Exception as exc:  # re-raised below, after recording what succeeded
            stopped.append(exc)
            return results, exc
        return results, None

    with ThreadPoolExecutor(max_workers=max(1, min(limit, len(jobs)))) as pool:   # one worker: the jobs in order
        outcomes = list(pool.map(run, jobs))
    for steps, (results, _exc) in zip(jobs, outcomes):
        for (_call, record), result in zip(steps, results):
            record(result)
    errors = [exc for _results, exc in outcomes if exc is not None]
    if errors:
        raise errors[0]
