#!/usr/bin/env bash
# ansible-test sanity on the version matrix (make sanity-matrix; CI runs it from .ci/run).
#
# meta/runtime.yml claims ansible-core >= 2.16. `make sanity` runs every sanity test on the line the
# collection is developed on (ansible-core 2.19, Python 3.11). This adds the oldest claimed line (2.16)
# and the newest released one (2.21), on every controller Python each supports that this machine has
# (2.16: 3.10-3.12; 2.21: 3.12-3.14, of which 3.12 and 3.13 are installed), so with 2.19/3.11 every
# controller Python from 3.10 to 3.13 is covered. Python 3.14 is not installable here (pyenv, apt).
#
# Only the sanity tests whose outcome depends on the ansible-core or Python version run here, each
# once per version it depends on:
#   compile           syntax on that Python                                      every (core, Python)
#   import            modules/plugins import under that Python with that core   every (core, Python)
#   validate-modules  argument_spec / DOCUMENTATION schema of that core          once per core
#   ansible-doc       docs render with that core                                 once per core
#   runtime-metadata  meta/runtime.yml (action_groups, plugin_routing) schema    once per core
# The three core-only tests read the core's schemas and the collection's files, not the Python: they run
# on the first entry of each core. The version-independent ones (yamllint, pep8, pylint, boilerplate,
# ...) run once, in make sanity.
#
# One venv per (core, Python), cached in ~/.cache/meshfed/sanity-venvs (reused by the next run).
# MESHFED_SANITY_MATRIX="2.16.19:3.10 ..." overrides the matrix. `matrix.sh --prepare` only creates the
# missing venvs, all at once (pip's downloads overlap; .ci/run starts it in the background first thing).
set -euo pipefail
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
MATRIX=(${MESHFED_SANITY_MATRIX:-2.16.19:3.10 2.16.19:3.12 2.21.5:3.12 2.21.5:3.13})
PY_TESTS=(--test compile --test import)
CORE_TESTS=(--test validate-modules --test ansible-doc --test runtime-metadata)
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

venv_ok() { # venv, core
  [[ -x "$1/bin/ansible-test" ]] && "$1/bin/python" -c "import ansible.release as r, sys; sys.exit(r.__version__ != '$2')" 2>/dev/null
}

make_venv() { # venv, core, interpreter
  rm -rf "$1"
  "$3" -m venv "$1"
  "$1/bin/python" -m pip install --quiet "ansible-core==$2" -r "${REPO}/requirements.txt"
}

declare -A CORE_DONE=()
select_tests() { # core -> tests=(...), what="..." for this entry (the core-only tests on a core's first entry)
  tests=("${PY_TESTS[@]}") what="compile import"
  if [[ -z "${CORE_DONE[$1]:-}" ]]; then
    tests+=("${CORE_TESTS[@]}") what="${what} validate-modules ansible-doc runtime-metadata"
    CORE_DONE[$1]=1
  fi
}

# --prepare: the missing venvs all at once (pip downloads overlap), then, one entry at a time, the
# requirements and test venvs of its sanity tests (ansible-test --prime-venvs: nothing is tested).
if [[ "${1:-}" == "--prepare" ]]; then
  declare -a pids=()
  for entry in "${MATRIX[@]}"; do
    core="${entry%%:*}" py="${entry##*:}" venv="${VENVS}/core${entry%%:*}-py${entry##*:}"
    if interp="$(find_python "${py}")" && ! venv_ok "${venv}" "${core}"; then
      make_venv "${venv}" "${core}" "${interp}" & pids+=($!)
    fi
  done
  rc=0
  for pid in "${pids[@]}"; do wait "${pid}" || rc=1; done
  echo "sanity-matrix --prepare: ${#pids[@]} venv(s) created after ${SECONDS}s (rc=${rc})"
  for entry in "${MATRIX[@]}"; do
    core="${entry%%:*}" py="${entry##*:}" venv="${VENVS}/core${entry%%:*}-py${entry##*:}"
    select_tests "${core}"
    venv_ok "${venv}" "${core}" || continue
    MESHFED_SANITY_VENV="${venv}" MESHFED_SANITY_PYTHON="${py}" bash "${REPO}/tests/sanity/run.sh" --prime-venvs \
      "${tests[@]}" >/dev/null || rc=1
    echo "sanity-matrix --prepare: core ${core}/py ${py} primed after ${SECONDS}s"
  done
  exit "${rc}"
fi

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
  if ! venv_ok "${venv}" "${core}"; then
    make_venv "${venv}" "${core}" "${interp}"
  fi
  select_tests "${core}"
  echo "=== sanity-matrix: ansible-core ${core} on Python ${py}: ${what}"
  if MESHFED_SANITY_VENV="${venv}" MESHFED_SANITY_PYTHON="${py}" bash "${REPO}/tests/sanity/run.sh" "${tests[@]}"; then
    RESULTS+=("core ${core}/py ${py} (${what}): ok $((SECONDS - t0))s")
  else
    RESULTS+=("core ${core}/py ${py} (${what}): FAILED $((SECONDS - t0))s"); failed=1
  fi
done
printf 'sanity-matrix: %s\n' "${RESULTS[@]}"
echo "sanity-matrix: total ${SECONDS}s"
exit "${failed}"
