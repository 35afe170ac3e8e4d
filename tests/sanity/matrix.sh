#!/usr/bin/env bash
# ansible-test sanity on the version matrix (make sanity-matrix; CI runs it from .ci/run).
#
# meta/runtime.yml claims ansible-core >= 2.16. `make sanity` runs every sanity test on the line the
# collection is developed on (ansible-core 2.19, Python 3.11). This adds the oldest claimed line (2.16)
# and the newest released one (2.21), on every controller Python each supports that this machine has
# (2.16: 3.10-3.12; 2.21: 3.12-3.14, of which 3.12 and 3.13 are installed), so with 2.19/3.11 every
# controller Python from 3.10 to 3.13 is covered. Python 3.14 is not installable here (pyenv, apt).
#
# Only the sanity tests whose outcome depends on the ansible-core or Python version run here:
#   compile           syntax on that Python
#   import            modules/plugins import under that Python with that core's module_utils
#   validate-modules  argument_spec / DOCUMENTATION schema of that core
#   ansible-doc       docs render with that core
#   runtime-metadata  meta/runtime.yml (action_groups, plugin_routing) schema of that core
# The version-independent ones (yamllint, pep8, pylint, boilerplate, ...) run once, in make sanity.
#
# One venv per (core, Python), cached in ~/.cache/meshfed/sanity-venvs (reused by the next run).
# MESHFED_SANITY_MATRIX="2.16.19:3.10 ..." overrides the matrix.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
MATRIX=(${MESHFED_SANITY_MATRIX:-2.16.19:3.10 2.16.19:3.12 2.21.5:3.12 2.21.5:3.13})
TESTS=(--test compile --test import --test validate-modules --test ansible-doc --test runtime-metadata)
VENVS="${XDG_CACHE_HOME:-$HOME/.cache}/meshfed/sanity-venvs"

find_python() { # 3.12 -> an interpreter of that version
  local v="$1" c
  for c in "python${v}" "${PYENV_ROOT:-$HOME/.pyenv}/versions/${v}"*/bin/python3 "/usr/bin/python${v}"; do
    if command -v "${c}" >/dev/null 2>&1 && "${c}" -c "import sys; sys.exit(sys.version_info[:2] != tuple(map(int, '${v}'.split('.'))))" 2>/dev/null; then
      command -v "${c}"; return 0
    fi
  done
  return 1
}

declare -a RESULTS=()
failed=0
for entry in "${MATRIX[@]}"; do
  core="${entry%%:*}" py="${entry##*:}"
  t0=${SECONDS}
  if ! interp="$(find_python "${py}")"; then
    echo "sanity-matrix: Python ${py} is not installed; ansible-core ${core} on ${py} not tested" >&2
    RESULTS+=("core ${core}/py ${py}: NOT INSTALLED"); failed=1; continue
  fi
  venv="${VENVS}/core${core}-py${py}"
  if [[ ! -x "${venv}/bin/ansible-test" ]] || ! "${venv}/bin/python" -c "import ansible.release as r, sys; sys.exit(r.__version__ != '${core}')" 2>/dev/null; then
    rm -rf "${venv}"
    "${interp}" -m venv "${venv}"
    "${venv}/bin/python" -m pip install --quiet "ansible-core==${core}" -r "${REPO}/requirements.txt"
  fi
  echo "=== sanity-matrix: ansible-core ${core} on Python ${py}"
  if MESHFED_SANITY_VENV="${venv}" MESHFED_SANITY_PYTHON="${py}" bash "${REPO}/tests/sanity/run.sh" "${TESTS[@]}"; then
    RESULTS+=("core ${core}/py ${py}: ok $((SECONDS - t0))s")
  else
    RESULTS+=("core ${core}/py ${py}: FAILED $((SECONDS - t0))s"); failed=1
  fi
done
printf 'sanity-matrix: %s\n' "${RESULTS[@]}"
echo "sanity-matrix: total ${SECONDS}s"
exit "${failed}"
