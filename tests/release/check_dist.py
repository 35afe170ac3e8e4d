"""Check a built collection tarball: everything users need is in it, nothing developers only need is.

    python tests/release/check_dist.py .build/dist/meshfed-istio-1.0.0.tar.gz

Exit status 1 with one line per problem otherwise.
"""

import fnmatch
import json
import posixpath
import re
import sys
import tarfile

# Users need these (Galaxy's importer requires a role README; ansible-builder reads
# meta/execution-environment.yml and the requirements file it names).
REQUIRED = [
    "MANIFEST.json", "FILES.json", "LICENSE", "README.md", "CHANGELOG.rst", "changelogs/changelog.yaml",
    "meta/runtime.yml", "meta/execution-environment.yml", "requirements.txt",
    "meta/crds/istiofederation.yaml", "meta/rbac/clusterrole.yaml",
    "roles/federate/README.md", "roles/federate/meta/argument_specs.yml", "roles/federate/tasks/main.yml",
    "playbooks/federate.yml", "plugins/modules/federation.py",
    "ee/aap/execution-environment.yml", "ee/aap/requirements.yml", "ee/community/execution-environment.yml",
    "ee/community/requirements.yml", "docs/awx.md", "docs/aap-credentials.md",
    "plugins/filter/federation_peers.yml", "plugins/filter/federation_cards.yml", "plugins/filter/federation_split.yml",
]
# Developers only, or local leftovers of a dev run.
FORBIDDEN = [
    "tests", "tests/*", "benchmarks", "benchmarks/*", "Makefile", "pytest.ini", "requirements-dev.txt",
    ".*", "*/.*", "*__pycache__*", "*.pyc", "*.tar.gz", "galaxy.yml", "changelogs/fragments/*",
    "docs/development.md", "docs/design.md",
]


# What a shipped file may not point at: developer files and tools that do not ship.
def _make_targets():
    try:
        with open(posixpath.join(posixpath.dirname(posixpath.abspath(__file__)), "..", "..", "Makefile")) as fh:
            phony = next(line for line in fh if line.startswith(".PHONY:"))
    except (OSError, StopIteration):
        return "[a-z][a-z-]+"
    return "|".join(sorted(phony.split(":", 1)[1].split(), key=len, reverse=True))


DEV_ONLY_MENTIONS = re.compile(r"(?<![\w/.-])(make (?:%s)\b|\.ansible-lint|requirements-dev\.txt|Makefile|\.ci/)"
                               % _make_targets())
# Relative paths in shipped text: each must name a file or directory of the tarball.
RELATIVE_PATH = re.compile(
    r"(?<![\w/.~:-])((?:tests|ee|docs|meta|roles|playbooks|plugins|changelogs|benchmarks)/[A-Za-z0-9_./-]*[A-Za-z0-9_/])")
TEXT = ("*.md", "*.rst", "*.yml", "*.yaml", "*.py", "*.txt")
# Code comments of module_utils are for developers reading the repository, not documentation.
NOT_DOCS = ("plugins/module_utils/*",)


def problems(path):
    with tarfile.open(path) as tar:
        names = [m.name.rstrip("/") for m in tar.getmembers()]
        manifest = json.load(tar.extractfile("MANIFEST.json"))
    out = ["missing: %s" % r for r in REQUIRED if r not in names]
    out += ["dev-only file shipped: %s" % n for n in names if any(fnmatch.fnmatch(n, p) for p in FORBIDDEN)]
    out += dangling(tar_texts(path), names)
    info = manifest["collection_info"]
    if info.get("license") != ["GPL-3.0-or-later"]:
        out.append("MANIFEST.json license is %r, expected ['GPL-3.0-or-later'] (LICENSE is GPL-3.0)" % info.get("license"))
    return out, names


def tar_texts(path):
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read().decode("utf-8", "replace") for m in tar.getmembers()
                if m.isfile() and any(fnmatch.fnmatch(m.name, p) for p in TEXT) and m.name != "FILES.json"
                and not any(fnmatch.fnmatch(m.name, p) for p in NOT_DOCS)}


def dangling(texts, names):
    """References of shipped files to something that does not ship (make targets, dev files, paths)."""
    shipped = set(names)
    dirs = set(posixpath.dirname(n) for n in names)
    out = []
    for name, text in sorted(texts.items()):
        if name == "README.md":  # its "Development" section speaks of a clone of the repository, and says so
            text = re.sub(r"(?ms)^## Development\n.*?(?=^## |\Z)", "", text)
        for m in DEV_ONLY_MENTIONS.finditer(text):
            out.append("%s mentions %r, which does not ship" % (name, m.group(1)))
        for m in RELATIVE_PATH.finditer(text):
            ref = m.group(1).rstrip("/.")
            local = posixpath.normpath(posixpath.join(posixpath.dirname(name), ref))
            if not any(r in shipped or r in dirs for r in (ref, local)):
                out.append("%s points at %s, which does not ship" % (name, ref))
    return out


def main(argv):
    found, names = problems(argv[1])
    for p in found:
        print("check_dist: %s" % p)
    print("check_dist: %s: %d entries, %s" % (argv[1], len(names), "FAILED" if found else "ok"))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
