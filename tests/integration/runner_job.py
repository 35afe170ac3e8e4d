"""Run the shipped playbook as AWX/AAP runs a job: ansible-runner (from PyPI, the engine of both), a
private data dir with a project holding the one-line wrapper playbook, an inventory with vaulted host
vars, and the job's artifacts (status, rc, stdout, job_events/*.json) read back as AWX stores them."""

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from tests.collection import COLLECTIONS, ensure_collection_link

# What users keep in their AWX project (docs/awx.md): a job template cannot name a collection's playbook.
WRAPPER = "---\n- ansible.builtin.import_playbook: meshfed.istio.federate\n"
BIN = Path(sys.executable).parent


class Job:
    """One ansible-runner run: its artifacts directory and what AWX reads from it."""

    def __init__(self, artifacts, proc):
        self.dir = Path(artifacts)
        self.proc = proc
        self.status = (self.dir / "status").read_text().strip()
        self.rc = int((self.dir / "rc").read_text().strip())
        self.stdout = (self.dir / "stdout").read_text()
        self.events = [json.loads(p.read_text()) for p in sorted(
            (self.dir / "job_events").glob("*.json"), key=lambda p: int(p.name.split("-")[0]))]

    def stats(self):
        (ev,) = [e for e in self.events if e["event"] == "playbook_on_stats"]
        return ev["event_data"]

    def host_status(self):
        """Per host, as AWX's job host summaries: failed / changed / ok (from the stats event)."""
        data = self.stats()
        hosts = set()
        for key in ("ok", "changed", "failures", "dark", "skipped", "processed"):
            hosts |= set(data.get(key) or {})
        out = {}
        for h in sorted(hosts):
            if (data.get("failures") or {}).get(h) or (data.get("dark") or {}).get(h):
                out[h] = "failed"
            elif (data.get("changed") or {}).get(h):
                out[h] = "changed"
            else:
                out[h] = "ok"
        return out

    def artifact_data(self):
        """The set_stats data of the job (AWX: the job's artifacts, passed to later workflow nodes)."""
        return self.stats().get("artifact_data") or {}

    def task_events(self, task, event=None):
        return [e for e in self.events if (e.get("event_data") or {}).get("task") == task
                and (event is None or e["event"] == event)]

    def all_text(self):
        """Every file of the job's artifacts and the runner's own output, as one text (for leak checks)."""
        parts = [self.proc.stdout, self.proc.stderr]
        for p in sorted(self.dir.rglob("*")):
            if p.is_file():
                parts.append(p.read_text(errors="replace"))
        return "\n".join(parts)

    def __repr__(self):
        return "Job(status=%s rc=%s)\n%s\n%s" % (self.status, self.rc, self.stdout[-6000:], self.proc.stderr[-2000:])


def vault_encrypt(path, password_file):
    subprocess.run([str(BIN / "ansible-vault"), "encrypt", "--vault-password-file", str(password_file), str(path)],
                   check=True, capture_output=True, text=True)


def private_data_dir(root, hosts, vault_password="meshfed-test-vault"):
    """Lay out an ansible-runner private data dir under ``root``: ``project/federate.yml`` (the wrapper),
    ``inventory/hosts.yml`` (group meshfed_clusters, nothing secret) and, per host, its vars in
    ``inventory/host_vars/<host>.yml`` encrypted with ansible-vault. The vault password file is kept
    outside the private data dir, as AWX keeps a vault credential out of the job's files."""
    root = Path(root)
    (root / "project").mkdir(parents=True, exist_ok=True)
    (root / "project" / "federate.yml").write_text(WRAPPER)
    inv = root / "inventory"
    (inv / "host_vars").mkdir(parents=True, exist_ok=True)
    (inv / "hosts.yml").write_text(yaml.safe_dump({"all": {
        "children": {"meshfed_clusters": {"hosts": {h: {} for h in hosts}}},
        "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}))
    password_file = root.parent / (root.name + ".vault-pass")
    password_file.write_text(vault_password + "\n")
    for host, hvars in hosts.items():
        hv = inv / "host_vars" / ("%s.yml" % host)
        hv.write_text(yaml.safe_dump(hvars, sort_keys=False))
        vault_encrypt(hv, password_file)
    return root, password_file


def run_job(pdd, password_file, ident, verbosity=0, extra_vars=None, env=None, cmdline=(), timeout=600):
    """``ansible-runner run <pdd> -p federate.yml`` with the vault password file; returns :class:`Job`."""
    ensure_collection_link()
    args = ["--vault-password-file", str(password_file)] + list(cmdline)
    if verbosity:
        args.append("-" + "v" * verbosity)
    for k, v in (extra_vars or {}).items():
        args += ["-e", "%s=%s" % (k, v)]
    full_env = dict(os.environ)
    full_env.update({
        "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_DEPRECATION_WARNINGS": "False",
        "ANSIBLE_LOCAL_TEMP": str(Path(pdd) / ".ansible-tmp"),
        "PATH": "%s%s%s" % (BIN, os.pathsep, full_env.get("PATH", "")),
    })
    for k in [k for k in full_env if k.startswith("K8S_AUTH_")]:
        del full_env[k]
    full_env.update(env or {})
    cmd = [str(BIN / "ansible-runner"), "run", str(pdd), "-p", "federate.yml", "--ident", ident,
           "--cmdline", " ".join(args)]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, env=full_env, timeout=timeout)
    artifacts = Path(pdd) / "artifacts" / ident
    if not (artifacts / "status").exists():
        raise AssertionError("ansible-runner wrote no artifacts (rc %s):\n%s\n%s" % (
            proc.returncode, proc.stdout[-4000:], proc.stderr[-4000:]))
    return Job(artifacts, proc)
