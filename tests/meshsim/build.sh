#!/usr/bin/env bash
# Build meshsim (this directory's Go module; imports istio.io/istio at the version pinned in go.mod).
#
# Cached outside the clone, keyed by a hash of go.mod, go.sum, the Go sources and the Go version:
#   ${MESHFED_MESHSIM_CACHE:-~/.cache/meshfed/meshsim}/<hash>/meshsim
# A second run costs nothing. One build at a time per cache (flock); a waiting build re-checks the
# cache when it gets the lock. Everything is fetched from the Go module proxy on a fresh machine.
#
# Cold (empty module + build cache, 2 cores): several minutes, ~2.4 GB peak memory; see README.md.
# Prints the path of the binary on its last line of stdout.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE_ROOT="${MESHFED_MESHSIM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/meshfed/meshsim}"

log() { echo "[meshsim-build] $*" >&2; }

command -v go >/dev/null || { log "ERROR: go is not installed (need Go >= $(sed -n 's/^go //p' "${HERE}/go.mod"))"; exit 1; }

KEY="$( (cd "${HERE}" && cat go.mod go.sum $(ls ./*.go | sort) && go env GOVERSION GOOS GOARCH) | sha256sum | cut -c1-16)"
ISTIO_VERSION="$(sed -n 's/^\s*istio.io\/istio \(v[^ ]*\).*/\1/p' "${HERE}/go.mod" | head -1)"
OUT="${CACHE_ROOT}/${KEY}"
BIN="${OUT}/meshsim"

if [[ -x "${BIN}" ]]; then
  log "cached: ${BIN} (istio.io/istio ${ISTIO_VERSION})"
  echo "${BIN}"
  exit 0
fi

mkdir -p "${OUT}"
if command -v flock >/dev/null; then
  exec 9>"${CACHE_ROOT}/.build.lock"
  if ! flock -n 9; then
    log "another meshsim build is running; waiting for it"
    flock 9
  fi
  if [[ -x "${BIN}" ]]; then
    log "cached: ${BIN}"
    echo "${BIN}"
    exit 0
  fi
fi

export CGO_ENABLED=0
# -mod=readonly: go.sum is committed, nothing is resolved anew; -buildvcs=false: no VCS stamping
# (the clone may be a git worktree). go build runs no vet (that is `go test`'s -vet, off here).
export GOFLAGS="-mod=readonly -buildvcs=false"
start=$(date +%s)
log "istio.io/istio ${ISTIO_VERSION}: downloading the modules it needs from the Go module proxy"
# only the modules of packages meshsim imports (plain `go mod download` would also fetch every
# test-only dependency of istio.io/istio)
(cd "${HERE}" && go list -deps . >/dev/null)
log "modules ready after $(( $(date +%s) - start ))s; compiling (cold: ~480 CPU-s, ~2.4 GB peak; warm: seconds)"
LOGF="${OUT}/build.log"
(cd "${HERE}" && go build -v -trimpath -ldflags='-s -w' -o "${BIN}.tmp" . ) 2>"${LOGF}" &
pid=$!
while kill -0 "${pid}" 2>/dev/null; do
  sleep 20
  if kill -0 "${pid}" 2>/dev/null; then
    log "compiling... $(( $(date +%s) - start ))s, $(grep -vc '^#' "${LOGF}" 2>/dev/null || echo 0) packages compiled"
  fi
done
if ! wait "${pid}"; then
  log "ERROR: go build failed:"
  grep -v '^[a-z0-9./_-]*$' "${LOGF}" >&2 || cat "${LOGF}" >&2
  rm -f "${BIN}.tmp"
  exit 1
fi
mv "${BIN}.tmp" "${BIN}"
log "built in $(( $(date +%s) - start ))s: ${BIN}"
echo "${BIN}"
