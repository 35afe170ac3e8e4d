"""Run the real playbook with ansible-playbook and read its outcome (recap and cluster state)."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

from tests.collection import COLLECTIONS, REPO, ensure_collection_link

PLAYBOOK = REPO / "playbooks" / "federate.yml"

_RECAP = re.compile(
    r"^(?P<host>\S+)\s+:\s+ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)\s+"
    r"failed=(?P<failed>\d+)", re.M)


class Run:
    def __init__(self, proc):
        self.records = []
        self.rc = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        self.recap = {m["host"]: {k: int(v) for k, v in m.groupdict().items() if k != "host"}
                      for m in _RECAP.finditer(proc.stdout)}

    def results(self, action, host=None):
        """Recorded results of one module (short name, e.g. 'federation'), optionally for one host."""
        return [r for r in self.records if r["action"].split(".")[-1] == action and (host is None or r["host"] == host)]

    @property
    def output(self):
        return self.stdout + self.stderr

    def changed(self, host):
        return self.recap[host]["changed"]

    def failed(self, host):
        return self.recap[host]["failed"]

    def __repr__(self):
        return "Run(rc=%s)\n%s\n%s" % (self.rc, self.stdout[-6000:], self.stderr[-3000:])


def run_playbook(inventory, *args, playbook=PLAYBOOK, env=None, timeout=600):
    """Run ansible-playbook from this venv; returns :class:`Run` (never raises on failure).

    Every task result is also recorded (JSON lines, see callback_plugins/meshfed_record.py) and
    available as ``Run.records``.
    """
    ensure_collection_link()
    record = Path(inventory).parent / (".record-%d.jsonl" % os.getpid())
    if record.exists():
        record.unlink()
    bindir = Path(sys.executable).parent
    full_env = dict(os.environ)
    full_env.update({
        "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_HOST_KEY_CHECKING": "False",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "ANSIBLE_LOCAL_TEMP": str(Path(inventory).parent / ".ansible-tmp"),
        "ANSIBLE_REMOTE_TEMP": str(Path(inventory).parent / ".ansible-tmp"),
        "ANSIBLE_DEPRECATION_WARNINGS": "False",
        "PATH": "%s%s%s" % (bindir, os.pathsep, full_env.get("PATH", "")),
        "ANSIBLE_CALLBACK_PLUGINS": str(Path(__file__).parent / "callback_plugins"),
        "ANSIBLE_CALLBACKS_ENABLED": "meshfed_record",
        "MESHFED_RECORD_FILE": str(record),
    })
    full_env.update(env or {})
    cmd = [str(bindir / "ansible-playbook"), "-i", str(inventory), str(playbook)] + list(args)
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, env=full_env, timeout=timeout, cwd=str(REPO))
    run = Run(proc)
    if record.exists():
        run.records = [json.loads(line) for line in record.read_text().splitlines() if line.strip()]
        record.unlink()
    return run


def write_yaml(path, data):
    Path(path).write_text(yaml.safe_dump(data, sort_keys=False))
    return path
