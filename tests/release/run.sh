#!/usr/bin/env bash
# Release check (make release-check; CI runs it from .ci/run): what a Galaxy reviewer and an AWX/AAP user
# get, checked with the ecosystem's own tools. Each step prints its wall time.
#   1. changelog: fragments and changelogs/changelog.yaml lint clean, CHANGELOG.rst generated from it, the
#      release of galaxy.yml's version complete and consistent (tests/release/check_changelog.py)
#   2. ansible-lint --profile production (config and the one justified skip: .ansible-lint)
#   3. ansible-galaxy collection build; tests/release/check_dist.py: nothing dev-only in, nothing missing,
#      no shipped file pointing at something that does not ship
#   4. galaxy-importer as Automation Hub runs it (REQUIRE_V1_OR_GREATER=True, flake8): galaxy_importer.sh
#   5. ansible-galaxy collection install of that tarball into a fresh path; ansible-doc finds it there,
#      and shows each filter's own documentation
#   6. ansible-builder create of ee/aap and ee/community (build steps checked) and ansible-builder
#      introspect of the installed collection (its Python requirements); images can't be pulled here
#   7. the demo (2 lab clusters, 2 runs, the second changes nothing) from the installed collection
# Needs the lab binaries for step 6 (make lab-bins); MESHFED_RELEASE_SKIP_DEMO=1 skips it.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
cd "${REPO}"
BIN="${REPO}/.venv/bin"
export PATH="${BIN}:${PATH}"
DIST="${REPO}/.build/dist"
WORK="$(mktemp -d)"
trap 'rm -rf "${WORK}"' EXIT
declare -a TIMES=()
step() { # name, command...
  local name="$1"; shift
  local t0=${SECONDS}
  echo "=== release-check: ${name}"
  "$@"
  TIMES+=("${name}: $((SECONDS - t0))s")
}

changelog() {
  antsibull-changelog lint
  antsibull-changelog lint-changelog-yaml changelogs/changelog.yaml
  antsibull-changelog generate --output "${WORK}/CHANGELOG.rst"
  if ! cmp -s "${WORK}/CHANGELOG.rst" CHANGELOG.rst; then
    diff -u CHANGELOG.rst "${WORK}/CHANGELOG.rst" | head -40
    echo "CHANGELOG.rst is not what changelogs/changelog.yaml generates: run make changelog" >&2
    return 1
  fi
  python tests/release/check_changelog.py
}

lint() { ansible-lint --profile production --nocolor -q; }

build() {
  rm -rf "${DIST}" && mkdir -p "${DIST}"
  ansible-galaxy collection build --output-path "${DIST}" .
  python tests/release/check_dist.py "${DIST}"/meshfed-istio-*.tar.gz
}

install() {
  # only the fresh path: the checkout itself is on the Makefile's ANSIBLE_COLLECTIONS_PATH and would count as installed
  ANSIBLE_COLLECTIONS_PATH="${WORK}/collections" ansible-galaxy collection install --offline -p "${WORK}/collections" \
    "${DIST}"/meshfed-istio-*.tar.gz
  local found
  found="$(ANSIBLE_COLLECTIONS_PATH="${WORK}/collections" ansible-doc -t module meshfed.istio.federation --json \
    | python -c 'import json,sys; print(next(iter(json.load(sys.stdin).values()))["doc"]["filename"])')"
  case "${found}" in
    "${WORK}/collections/"*) echo "ansible-doc: meshfed.istio.federation from ${found}" ;;
    *) echo "ansible-doc found meshfed.istio.federation at ${found}, not in the fresh install" >&2; return 1 ;;
  esac
  # each filter shows its own documentation (name and options), not another filter's of the same file
  local f
  for f in federation_peers federation_cards federation_split federation_report; do
    ANSIBLE_COLLECTIONS_PATH="${WORK}/collections" ansible-doc -t filter "meshfed.istio.${f}" --json | python -c '
import json, sys
name = sys.argv[1]
doc = json.load(sys.stdin)["meshfed.istio." + name]["doc"]
assert doc["name"] == name, "ansible-doc meshfed.istio.%s shows the docs of %s" % (name, doc["name"])
print("ansible-doc: meshfed.istio.%s: its own docs, options %s" % (name, ", ".join(sorted(doc["options"]))))' "${f}"
  done
}

importer() { bash tests/release/galaxy_importer.sh "${DIST}"/meshfed-istio-*.tar.gz; }

ee() {
  local e ctx
  for e in aap community; do
    ctx="${REPO}/.build/ee/${e}"
    rm -rf "${ctx}"
    (cd "ee/${e}" && ansible-builder create -f execution-environment.yml -c "${ctx}" --output-filename Containerfile)
    # the collection comes from Galaxy / Automation Hub, through requirements.yml
    grep -q 'ansible-galaxy collection install .*-r requirements.yml' "${ctx}/Containerfile"
    python -c 'import sys, yaml; c = yaml.safe_load(open(sys.argv[1]))["collections"]; assert [x["name"] for x in c] == ["meshfed.istio"], c' \
      "${ctx}/_build/requirements.yml"
    grep -q '^ARG PYCMD="/usr/bin/python3.11"' "${ctx}/Containerfile"
  done
  # AAP's minimal base: microdnf, and its own ansible-core / ansible-runner (never installed over it)
  grep -q '^ARG PKGMGR="/usr/bin/microdnf"' .build/ee/aap/Containerfile
  grep -q 'ee-minimal-rhel9' .build/ee/aap/Containerfile
  if grep -qE 'ANSIBLE_INSTALL_REFS|pip install.*ansible-(core|runner)' .build/ee/aap/Containerfile; then
    echo "ee/aap installs ansible-core or ansible-runner over the base image's" >&2; return 1
  fi
  # the community base has neither: both are installed from PyPI
  grep -q '^ARG PKGMGR="/usr/bin/dnf"' .build/ee/community/Containerfile
  grep -q '^ARG ANSIBLE_INSTALL_REFS="ansible-core.* ansible-runner' .build/ee/community/Containerfile
  # what the build's introspect step finds in the installed collection: its Python requirements (PyYAML is
  # sanitized away by ansible-builder: ansible-core brings it)
  ansible-builder introspect --sanitize "${WORK}/collections" | tee "${WORK}/introspect.txt"
  local req
  for req in kubernetes cryptography; do
    grep -q "^- '${req}>=.*# from collection meshfed.istio'" "${WORK}/introspect.txt" \
      || { echo "introspect: ${req} not required by meshfed.istio" >&2; return 1; }
  done
}

demo() { python -m tests.demo --collections-path "${WORK}/collections" > "${WORK}/demo.log" 2>&1 || { cat "${WORK}/demo.log"; return 1; }; tail -4 "${WORK}/demo.log"; }

step changelog changelog
step ansible-lint lint
step build build
step galaxy-importer importer
step install install
step ee-create ee
if [[ "${MESHFED_RELEASE_SKIP_DEMO:-0}" != 1 ]]; then
  step demo-from-installed demo
fi
echo "=== release-check: ok (${TIMES[*]}, total ${SECONDS}s)"
