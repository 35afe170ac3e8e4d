"""On the controller the action plugins run cluster_info's and federation's code in the task
worker (no module process); with any other interpreter the modules run as processes, to the same state."""

import json
import sys

import pytest

from tests.integration.ansible_run import run_playbook
from tests.lab.inventory import write_inventory

pytestmark = pytest.mark.lab

MODULE_PROCESSES = ("AnsiballZ_cluster_info", "AnsiballZ_federation")


def test_in_process_on_the_controller_and_module_processes_elsewhere_agree(lab_clusters, tmp_path):
    clusters = lab_clusters(["cluster-a", "cluster-b"])
    inventory = write_inventory(clusters, tmp_path / "inventory.yml")
    first = run_playbook(inventory, "-vvv")
    assert first.rc == 0, first
    assert not any(name in first.output for name in MODULE_PROCESSES), first
    assert all(first.recap[c.name]["changed"] > 0 for c in clusters), first
    assert len(first.results("cluster_info")) == 2 and len(first.results("federation")) == 2

    # the same Python behind a wrapper script is not "the controller's own": the modules run as processes
    # and find nothing to change in what the in-process run wrote (an extra var: the playbook's play vars
    # set ansible_python_interpreter and win over the inventory)
    wrapper = tmp_path / "python-wrapper"
    wrapper.write_text('#!/bin/sh\nexec %s "$@"\n' % sys.executable)
    wrapper.chmod(0o755)
    rerun = run_playbook(inventory, "-vvv", "-e", json.dumps({"ansible_python_interpreter": str(wrapper)}))
    assert rerun.rc == 0, rerun
    assert all(name in rerun.output for name in MODULE_PROCESSES), rerun
    assert all(rerun.recap[c.name]["changed"] == 0 for c in clusters), rerun
    assert all(set(r["api_calls"]) <= {"get", "list"} for r in rerun.results("federation")), rerun.records
