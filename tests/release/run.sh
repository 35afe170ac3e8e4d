#!/usr/bin/env bash
# Release check (make release-check; CI runs it from .ci/run): what a Galaxy reviewer and an AWX/AAP user
# get, checked with the ecosystem's own tools. Each step prints its wall time.
#   1. changelog: fragments and changelogs/changelog.yaml lint clean, CHANGELOG.rst generated from it
#   2. ansible-lint --profile production (config and the one justified skip: .ansible-lint)
#   3. ansible-galaxy collection build; tests/release/check_dist.py: nothing dev-only in, nothing missing
#   4. ansible-galaxy collection install of that tarball into a fresh path; ansible-doc finds it there
#   5. ansible-builder create accepts ee/execution-environment.yml with that tarball
#   6. the demo (2 lab clusters, 2 runs, the second changes nothing) from the installed collection
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
}

ee() {
  cp "${DIST}"/meshfed-istio-*.tar.gz ee/meshfed-istio.tar.gz
  rm -rf .build/ee
  ansible-builder create -f ee/execution-environment.yml -c .build/ee --output-filename Containerfile
  test -f .build/ee/_build/collections/meshfed-istio.tar.gz
  grep -q 'ansible-galaxy collection install' .build/ee/Containerfile
  grep -q 'meshfed-istio.tar.gz' .build/ee/_build/requirements.yml
}

demo() { python -m tests.demo --collections-path "${WORK}/collections" > "${WORK}/demo.log" 2>&1 || { cat "${WORK}/demo.log"; return 1; }; tail -4 "${WORK}/demo.log"; }

step changelog changelog
step ansible-lint lint
step build build
step install install
step ee-create ee
if [[ "${MESHFED_RELEASE_SKIP_DEMO:-0}" != 1 ]]; then
  step demo-from-installed demo
fi
echo "=== release-check: ok (${TIMES[*]}, total ${SECONDS}s)"
