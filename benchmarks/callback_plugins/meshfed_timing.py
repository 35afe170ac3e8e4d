# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark-only callback: per task, its start and each host's result time ($MESHFED_PROF_DIR/tasks.jsonl)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: meshfed_timing
type: aggregate
short_description: task timings for benchmarks/profile.py
description: Writes one JSON line per task start and per host result.
"""

import json
import os
import time

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "meshfed_timing"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super(CallbackModule, self).__init__()
        out = os.environ.get("MESHFED_PROF_DIR")
        self._path = os.path.join(out, "tasks.jsonl") if out else None

    def _write(self, **line):
        if self._path:
            line["time"] = time.time()
            with open(self._path, "a") as fh:
                fh.write(json.dumps(line, default=str) + "\n")

    def v2_playbook_on_start(self, playbook):
        self._write(event="playbook_start")

    def v2_playbook_on_play_start(self, play):
        self._write(event="play_start", play=play.get_name())

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._write(event="task_start", task=task.get_name(), action=task.action, uuid=task._uuid)

    def v2_playbook_on_include(self, included_file):
        self._write(event="include", file=str(included_file._filename), hosts=len(included_file._hosts))

    def _result(self, result, status):
        self._write(event="result", status=status, task=result._task.get_name(), action=result._task.action,
                    uuid=result._task._uuid, host=result._host.get_name())

    def v2_runner_on_ok(self, result):
        self._result(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._result(result, "failed")

    def v2_runner_on_skipped(self, result):
        self._result(result, "skipped")

    def v2_playbook_on_stats(self, stats):
        self._write(event="playbook_end")
