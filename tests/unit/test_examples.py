"""Every EXAMPLES block of the collection's plugins (modules; filters, in their YAML sidecars or Python
files) is a valid list of tasks: it parses, each meshfed.istio module it calls exists and is given only
options its documentation declares, each meshfed.istio filter it names exists, and ansible-playbook
--syntax-check accepts it as the tasks of a play."""

import ast
import functools
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.collection import COLLECTIONS, REPO, ensure_collection_link

MODULES = REPO / "plugins" / "modules"
FILTERS = REPO / "plugins" / "filter"
FQCN = re.compile(r"meshfed\.istio\.([a-z_]+)")


def _py_docs(path):
    out = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name) \
                and node.targets[0].id in ("DOCUMENTATION", "EXAMPLES"):
            out[node.targets[0].id] = node.value.value
    return out


def module_docs():
    return {p.stem: _py_docs(p) for p in sorted(MODULES.glob("*.py"))}


def filter_docs():
    """Filter name -> {DOCUMENTATION (dict), EXAMPLES (text)}, from sidecars and Python files alike."""
    out = {}
    for p in sorted(FILTERS.glob("*.yml")):
        data = yaml.safe_load(p.read_text())
        out[data["DOCUMENTATION"]["name"]] = {"DOCUMENTATION": data["DOCUMENTATION"], "EXAMPLES": data.get("EXAMPLES")}
    for p in sorted(FILTERS.glob("*.py")):
        docs = _py_docs(p)
        if "DOCUMENTATION" in docs:
            doc = yaml.safe_load(docs["DOCUMENTATION"])
            out[doc["name"]] = {"DOCUMENTATION": doc, "EXAMPLES": docs.get("EXAMPLES")}
    return out


def examples():
    out = [("module %s" % name, d["EXAMPLES"]) for name, d in module_docs().items()]
    out += [("filter %s" % name, d["EXAMPLES"]) for name, d in filter_docs().items()]
    return out


@functools.lru_cache(maxsize=None)
def module_options(name):
    """Option names and aliases of a module as ansible-doc resolves them (doc fragments included)."""
    ensure_collection_link()
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS))
    out = subprocess.run([str(Path(sys.executable).parent / "ansible-doc"), "-t", "module", "--json",
                          "meshfed.istio." + name], capture_output=True, text=True, env=env, timeout=120, check=True)
    options = json.loads(out.stdout)["meshfed.istio." + name]["doc"]["options"]
    names = set(options)
    for opt in options.values():
        names.update(opt.get("aliases") or [])
    return names


def test_every_plugin_has_examples():
    assert set(module_docs()) == {"cluster_info", "federation", "federation_metadata", "peer_metadata"}
    assert set(filter_docs()) == {"federation_peers", "federation_cards", "federation_split", "federation_report"}
    for what, text in examples():
        assert text and text.strip(), "%s has no EXAMPLES" % what


@pytest.mark.parametrize("what, text", examples(), ids=[example[0] for example in examples()])
def test_example_tasks_use_real_modules_options_and_filters(what, text):
    tasks = yaml.safe_load(text)
    assert isinstance(tasks, list) and tasks, what
    filters = set(filter_docs())
    for task in tasks:
        assert task.get("name"), "%s: a task without a name" % what
        for key, args in task.items():
            m = FQCN.fullmatch(key)
            if m:
                assert m.group(1) in module_docs(), "%s: no module %s" % (what, key)
                unknown = set(args or {}) - module_options(m.group(1))
                assert not unknown, "%s: %s has no option(s) %s" % (what, key, sorted(unknown))
        for name in FQCN.findall(yaml.safe_dump(task)):
            assert name in filters or name in module_docs(), "%s: meshfed.istio.%s does not exist" % (what, name)


@pytest.mark.parametrize("what, text", examples(), ids=[example[0] for example in examples()])
def test_example_passes_ansible_syntax_check(what, text, tmp_path):
    ensure_collection_link()
    play = [{"name": "Example", "hosts": "localhost", "gather_facts": False, "tasks": yaml.safe_load(text)}]
    pb = tmp_path / "example.yml"
    pb.write_text(yaml.safe_dump(play, sort_keys=False))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS), ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCALHOST_WARNING="False", ANSIBLE_INVENTORY_UNPARSED_WARNING="False")
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "--syntax-check", str(pb)],
                          capture_output=True, text=True, env=env, timeout=120, check=False)
    assert proc.returncode == 0, "%s:\n%s\n%s" % (what, proc.stdout, proc.stderr)
