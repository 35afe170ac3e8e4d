#!/usr/bin/env bash
# Build the lab's server binaries (kube-apiserver, etcd) from their published Go modules.
#
# Binaries are cached outside the clone, keyed by version:
#   ${MESHFED_LAB_CACHE:-~/.cache/meshfed/lab}/k8s-<ver>_etcd-<ver>/{kube-apiserver,etcd}
# A second run costs nothing. If KUBEBUILDER_ASSETS points at a directory that already holds
# kube-apiserver and etcd (envtest assets), those are used and no Go is needed.
#
# Prints the directory holding the binaries on its last line of stdout.
set -euo pipefail

K8S_VERSION="${MESHFED_K8S_VERSION:-v1.37.2}"
ETCD_VERSION="${MESHFED_ETCD_VERSION:-v3.7.0}"
CACHE_ROOT="${MESHFED_LAB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/meshfed/lab}"

log() { echo "[lab-build] $*" >&2; }

if [[ -n "${KUBEBUILDER_ASSETS:-}" && -x "${KUBEBUILDER_ASSETS}/kube-apiserver" && -x "${KUBEBUILDER_ASSETS}/etcd" ]]; then
  log "using KUBEBUILDER_ASSETS=${KUBEBUILDER_ASSETS}"
  echo "${KUBEBUILDER_ASSETS}"
  exit 0
fi

OUT="${CACHE_ROOT}/k8s-${K8S_VERSION}_etcd-${ETCD_VERSION}"
if [[ -x "${OUT}/kube-apiserver" && -x "${OUT}/etcd" ]]; then
  log "cached: ${OUT}"
  echo "${OUT}"
  exit 0
fi

command -v go >/dev/null || { log "ERROR: go is not installed and no cached binaries in ${OUT}; install Go >= 1.26 or set KUBEBUILDER_ASSETS"; exit 1; }

mkdir -p "${OUT}"
# One build at a time per cache (parallel test sessions, CI jobs sharing a cache): wait, then
# re-check — the other build may have produced everything meanwhile.
if command -v flock >/dev/null; then
  exec 9>"${CACHE_ROOT}/.build-${K8S_VERSION}_etcd-${ETCD_VERSION}.lock"
  if ! flock -n 9; then
    log "another build is running; waiting for it"
    flock 9
  fi
  if [[ -x "${OUT}/kube-apiserver" && -x "${OUT}/etcd" ]]; then
    log "cached: ${OUT}"
    echo "${OUT}"
    exit 0
  fi
fi
WORK="$(mktemp -d "${CACHE_ROOT}/build.XXXXXX")"
trap 'rm -rf "${WORK}"' EXIT
export GOFLAGS="${GOFLAGS:--buildvcs=false} -mod=mod"
export CGO_ENABLED=0
# shellcheck source=tests/lab/k8s_module.sh
source "$(dirname "$0")/k8s_module.sh"

# ---- kube-apiserver -------------------------------------------------------------------------
if [[ ! -x "${OUT}/kube-apiserver" ]]; then
  start=$(date +%s)
  k8s_command_module "${WORK}/apiserver" meshfed.local/labbuild k8s.io/kubernetes/cmd/kube-apiserver
  LDF="-s -w -X k8s.io/component-base/version.gitVersion=${K8S_VERSION} -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$(echo "${K8S_VERSION}" | cut -d. -f2) -X k8s.io/component-base/version.gitTreeState=clean"
  log "building kube-apiserver ${K8S_VERSION} (several minutes on a cold cache)"
  (cd "${WORK}/apiserver" && go build -tags tools -trimpath -ldflags "${LDF}" -o "${OUT}/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver)
  mv "${OUT}/kube-apiserver.tmp" "${OUT}/kube-apiserver"
  log "kube-apiserver built in $(( $(date +%s) - start ))s"
fi

# ---- etcd -----------------------------------------------------------------------------------
if [[ ! -x "${OUT}/etcd" ]]; then
  start=$(date +%s)
  mkdir -p "${WORK}/etcd"
  cat > "${WORK}/etcd/main.go" <<'GO'
// etcd built from the published go.etcd.io/etcd/server/v3 module.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  (cd "${WORK}/etcd" && go mod init meshfed.local/etcd >/dev/null 2>&1 && go get "go.etcd.io/etcd/server/v3@${ETCD_VERSION}" >/dev/null 2>&1 && go mod tidy >/dev/null 2>&1)
  log "building etcd ${ETCD_VERSION}"
  (cd "${WORK}/etcd" && go build -trimpath -ldflags "-s -w" -o "${OUT}/etcd.tmp" .)
  mv "${OUT}/etcd.tmp" "${OUT}/etcd"
  log "etcd built in $(( $(date +%s) - start ))s"
fi

echo "${OUT}"
