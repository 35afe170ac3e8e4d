#!/usr/bin/env bash
# ansible-test sanity for meshfed.istio, without Docker.
#   bash tests/sanity/run.sh [ansible-test sanity options]      # ansible-core of .venv, Python 3.11
# MESHFED_SANITY_VENV (a venv holding another ansible-core) and MESHFED_SANITY_PYTHON (its Python
# version) select another point of the version matrix (tests/sanity/matrix.sh).
# ansible-test wants the collection at .../ansible_collections/meshfed/istio in a git tree, so the
# tracked (and untracked, not ignored) files are copied into a temporary one.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
VENV_BIN="${MESHFED_SANITY_VENV:-${REPO}/.venv}/bin"
SANITY_PYTHON="${MESHFED_SANITY_PYTHON:-3.11}"
WORK="$(mktemp -d)"
trap 'rm -rf "${WORK}"' EXIT
DEST="${WORK}/ansible_collections/meshfed/istio"
mkdir -p "${DEST}"
(cd "${REPO}" && git ls-files -co --exclude-standard | grep -v -E '^(\.ci/|benchmarks/|ee/)' | tar cf - -T -) | (cd "${DEST}" && tar xf -)
(cd "${DEST}" && git init -q && git add -A && git -c user.email=ci@localhost -c user.name=ci commit -qm sanity)

# ansible-test runs pip with an environment reduced to HOME and PATH, so pip settings this machine
# needs (a CA bundle for the package proxy, local wheels) go into a pip.conf under a HOME of our own,
# kept outside the clone so its test venvs are reused by the next run.
SANITY_HOME="${MESHFED_SANITY_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/meshfed/sanity-home}"
mkdir -p "${SANITY_HOME}/.config/pip" "${SANITY_HOME}/.ansible/test/cache"
# Written to a temp file and renamed: .ci/run primes the matrix venvs while make test's sanity runs, and
# neither may read the other's half-written file.
{
  echo "[global]"
  cert="${PIP_CERT:-${SSL_CERT_FILE:-}}"
  [[ -n "${cert}" ]] && echo "cert = ${cert}"
  [[ -n "${PIP_FIND_LINKS:-}" ]] && echo "find-links = ${PIP_FIND_LINKS}"
  [[ -n "${PIP_INDEX_URL:-}" ]] && echo "index-url = ${PIP_INDEX_URL}"
  echo "timeout = ${PIP_DEFAULT_TIMEOUT:-60}"
} > "${SANITY_HOME}/.config/pip/pip.conf.$$"
mv -f "${SANITY_HOME}/.config/pip/pip.conf.$$" "${SANITY_HOME}/.config/pip/pip.conf"
# ansible-test bootstraps pip in its test venvs with a script from a host outside our reach.
for v in 23.1.2 24.0 24.2 24.3 25.0 25.1 25.2 25.3; do
  shim="${SANITY_HOME}/.ansible/test/cache/get_pip_${v//./_}.py"
  cp "${REPO}/tests/sanity/get_pip_shim.py" "${shim}.$$" && mv -f "${shim}.$$" "${shim}"
done
export HOME="${SANITY_HOME}"

# Skipped tests and why:
#   pslint: no PowerShell in the collection. shellcheck: not installed on the CI machine.
SKIP=(--skip-test pslint --skip-test shellcheck)
cd "${DEST}"
"${VENV_BIN}/ansible-test" sanity --color no --python "${SANITY_PYTHON}" --local --requirements "${SKIP[@]}" "$@"
