# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Test-only callback: appends one JSON line per task result to $MESHFED_RECORD_FILE."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: meshfed_record
type: aggregate
short_description: record task results as JSON lines (tests and benchmarks only)
description: Writes host, task action, changed, failed and the module's api_calls and summary.
"""

import json
import os
import time

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "meshfed_record"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super(CallbackModule, self).__init__()
        self._path = os.environ.get("MESHFED_RECORD_FILE")
        self._started = {}

    def _write(self, result, status):
        if not self._path:
            return
        res = result._result
        line = {
            "host": result._host.get_name(),
            "action": result._task.action,
            "task": result._task.get_name(),
            "status": status,
            "changed": bool(res.get("changed")),
            "api_calls": res.get("api_calls"),
            "summary": res.get("summary"),
            "msg": res.get("msg") if status != "ok" else None,
            "reason": res.get("reason") if status != "ok" else None,
            "warnings": res.get("warnings"),
            "card": res.get("card"),
            "trust": res.get("trust"),
            "render_dir": res.get("render_dir"),
            "diff": res.get("diff"),
            "time": time.time(),
        }
        with open(self._path, "a") as fh:
            fh.write(json.dumps(line, default=str) + "\n")

    def v2_runner_on_ok(self, result):
        self._write(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._write(result, "failed")

    def v2_runner_on_unreachable(self, result):
        self._write(result, "unreachable")

    def v2_runner_on_skipped(self, result):
        self._write(result, "skipped")
