#!/usr/bin/env bash
# Run this branch's lab tests against the collection code of an older revision (not part of `make test`).
#
#   bash tests/integration/old_main.sh d8284eb tests/integration/test_install_shapes.py
#   bash tests/integration/old_main.sh d8284eb 'tests/integration/test_traffic.py::test_server_identity_is_checked'
#
# A throwaway worktree of HEAD in a temp dir gets plugins/, roles/, playbooks/ and meta/ from <rev>
# (files added since are removed); the tests, tests/lab and tests/meshsim stay this branch's. The one
# harness adaptation: before issue 9 the gather module was `cluster_facts`, so the tests' lookups of
# `cluster_info` results are renamed in the temp tree when <rev> has no cluster_info module.
# Prints one PASSED/FAILED/ERROR line per test with the failure reason; the worktree is removed at exit.
# Uses the repository's .venv (make venv lab-bins meshsim). On a shared machine wrap it in flock.
set -euo pipefail
rev=${1:?usage: old_main.sh <rev> <pytest node id>...}
shift
[ $# -gt 0 ] || set -- tests/integration/test_install_shapes.py
repo=$(git rev-parse --show-toplevel)
tmp=$(mktemp -d)
tree=$tmp/tree
trap 'git -C "$repo" worktree remove --force "$tree" >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT

git -C "$repo" worktree add --quiet --detach "$tree" HEAD
code=(plugins roles playbooks meta)
rm -rf "${code[@]/#/$tree/}"
git -C "$tree" checkout "$rev" -- "${code[@]}"
if [ ! -e "$tree/plugins/modules/cluster_info.py" ]; then
    sed -i 's/"cluster_info"/"cluster_facts"/g' "$tree"/tests/integration/*.py
fi
echo "collection code from $(git -C "$repo" rev-parse --short "$rev"), tests from $(git -C "$repo" rev-parse --short HEAD)"
cd "$tree"
"$repo/.venv/bin/python" -m pytest -q -m lab -p no:cacheprovider --junitxml="$tmp/junit.xml" "$@" >"$tmp/log" 2>&1 || true
"$repo/.venv/bin/python" - "$tmp/junit.xml" <<'EOF'
import sys
import xml.etree.ElementTree as ET

for case in ET.parse(sys.argv[1]).iter("testcase"):
    bad = next((c for c in case if c.tag in ("failure", "error")), None)
    name = "%s::%s" % (case.get("classname").rsplit(".", 1)[-1], case.get("name"))
    if bad is None:
        print("PASSED  " + name)
        continue
    reason = [ln[1:].strip() for ln in (bad.text or "").splitlines() if ln.startswith("E ") and ln[1:].strip()]
    print("%s  %s\n        %s" % ("FAILED" if bad.tag == "failure" else "ERROR ", name, "\n        ".join(reason[:16])))
EOF
