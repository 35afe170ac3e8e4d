#!/usr/bin/env bash
# Build kubectl from its Go module (k8s.io/kubernetes/cmd/kubectl) at the lab's Kubernetes version,
# the same way tests/lab/build.sh builds kube-apiserver. Used by the GitOps (render mode) lab tests
# to apply a rendered directory with a real client: `kubectl apply --server-side -k <dir>`.
#
# Cached outside the clone, keyed by version:
#   ${MESHFED_LAB_CACHE:-~/.cache/meshfed/lab}/kubectl-<ver>/kubectl
# A second run costs nothing. MESHFED_KUBECTL pointing at an executable kubectl skips the build
# (the tests then check its version matches the lab's).
#
# Prints the path of the kubectl binary on its last line of stdout.
set -euo pipefail

K8S_VERSION="${MESHFED_K8S_VERSION:-v1.37.2}"
CACHE_ROOT="${MESHFED_LAB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/meshfed/lab}"

log() { echo "[kubectl-build] $*" >&2; }

if [[ -n "${MESHFED_KUBECTL:-}" && -x "${MESHFED_KUBECTL}" ]]; then
  log "using MESHFED_KUBECTL=${MESHFED_KUBECTL}"
  echo "${MESHFED_KUBECTL}"
  exit 0
fi

OUT="${CACHE_ROOT}/kubectl-${K8S_VERSION}"
if [[ -x "${OUT}/kubectl" ]]; then
  log "cached: ${OUT}/kubectl"
  echo "${OUT}/kubectl"
  exit 0
fi

command -v go >/dev/null || { log "ERROR: go is not installed and no cached kubectl in ${OUT}; install Go >= 1.26 or set MESHFED_KUBECTL"; exit 1; }

mkdir -p "${OUT}"
if command -v flock >/dev/null; then
  exec 9>"${CACHE_ROOT}/.build-kubectl-${K8S_VERSION}.lock"
  if ! flock -n 9; then
    log "another build is running; waiting for it"
    flock 9
  fi
  if [[ -x "${OUT}/kubectl" ]]; then
    log "cached: ${OUT}/kubectl"
    echo "${OUT}/kubectl"
    exit 0
  fi
fi
WORK="$(mktemp -d "${CACHE_ROOT}/build-kubectl.XXXXXX")"
trap 'rm -rf "${WORK}"' EXIT
export GOFLAGS="${GOFLAGS:--buildvcs=false} -mod=mod"
export CGO_ENABLED=0
# shellcheck source=tests/lab/k8s_module.sh
source "$(dirname "$0")/k8s_module.sh"

start=$(date +%s)
k8s_command_module "${WORK}/kubectl" meshfed.local/kubectlbuild k8s.io/kubernetes/cmd/kubectl
MINOR="$(echo "${K8S_VERSION}" | cut -d. -f2)"
# kubectl reads its version from k8s.io/client-go/pkg/version (and component-base for the server side).
LDF="-s -w"
for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
  LDF="${LDF} -X ${pkg}.gitVersion=${K8S_VERSION} -X ${pkg}.gitMajor=1 -X ${pkg}.gitMinor=${MINOR} -X ${pkg}.gitTreeState=clean"
done
log "building kubectl ${K8S_VERSION} (minutes on a cold cache)"
(cd "${WORK}/kubectl" && go build -tags tools -trimpath -ldflags "${LDF}" -o "${OUT}/kubectl.tmp" k8s.io/kubernetes/cmd/kubectl)
mv "${OUT}/kubectl.tmp" "${OUT}/kubectl"
log "kubectl built in $(( $(date +%s) - start ))s"
echo "${OUT}/kubectl"
