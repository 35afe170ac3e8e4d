# -*- coding: utf-8 -*-
# Copyright: meshfed.istio contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bounded concurrent writes: a cluster's writes are independent requests, so a first run sends up
to ``limit`` at a time instead of paying one round trip per object in sequence."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from concurrent.futures import ThreadPoolExecutor


def run_jobs(jobs, limit):
    """Run ``jobs`` (each a list of ``(call, record)`` steps) with at most ``limit`` jobs in flight.

    The steps of one job run in order in one thread (e.g. an object, then its status); ``call()``
    does the request. Once a call fails no further job starts. Then, in the calling thread and in
    ``jobs`` order, ``record(result)`` runs for every step that succeeded, and the first error (in
    ``jobs`` order) is raised: what was written is always recorded.
    """
    stopped = []

    def run(steps):
        results = []
        if stopped:
            return results, None
        for call, _record in steps:
            try:
                results.append(call())
            except Exception as exc:  # re-raised below, after recording what succeeded
                stopped.append(exc)
                return results, exc
        return results, None

    if limit <= 1 or len(jobs) <= 1:
        outcomes = [run(steps) for steps in jobs]
    else:
        with ThreadPoolExecutor(max_workers=min(limit, len(jobs))) as pool:
            outcomes = list(pool.map(run, jobs))
    error = None
    for steps, (results, exc) in zip(jobs, outcomes):
        for (_call, record), result in zip(steps, results):
            record(result)
        error = error or exc
    if error is not None:
        raise error
