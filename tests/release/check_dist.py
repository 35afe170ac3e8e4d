"""Check a built collection tarball: everything users need is in it, nothing developers only need is.

    python tests/release/check_dist.py .build/dist/meshfed-istio-0.1.0.tar.gz

Exit status 1 with one line per problem otherwise.
"""

import fnmatch
import json
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
]
# Developers only, or local leftovers of a dev run.
FORBIDDEN = [
    "tests", "tests/*", "benchmarks", "benchmarks/*", "Makefile", "pytest.ini", "requirements-dev.txt",
    "ee", "ee/*", ".*", "*/.*", "*__pycache__*", "*.pyc", "*.tar.gz", "galaxy.yml",
]


def problems(path):
    with tarfile.open(path) as tar:
        names = [m.name.rstrip("/") for m in tar.getmembers()]
        manifest = json.load(tar.extractfile("MANIFEST.json"))
    out = ["missing: %s" % r for r in REQUIRED if r not in names]
    out += ["dev-only file shipped: %s" % n for n in names if any(fnmatch.fnmatch(n, p) for p in FORBIDDEN)]
    info = manifest["collection_info"]
    if info.get("license") != ["GPL-3.0-or-later"]:
        out.append("MANIFEST.json license is %r, expected ['GPL-3.0-or-later'] (LICENSE is GPL-3.0)" % info.get("license"))
    return out, names


def main(argv):
    found, names = problems(argv[1])
    for p in found:
        print("check_dist: %s" % p)
    print("check_dist: %s: %d entries, %s" % (argv[1], len(names), "FAILED" if found else "ok"))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
