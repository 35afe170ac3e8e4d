# Sourced by tests/lab/build.sh and build_kubectl.sh: a Go module that builds one command of
# k8s.io/kubernetes (${K8S_VERSION}) outside its repository.
#   k8s_command_module <dir> <module name> <package>   e.g. k8s.io/kubernetes/cmd/kube-apiserver
# writes <dir>/go.mod (k8s.io/kubernetes replaces every staging module with ./staging/...; outside its
# repo each must point at its published v0.N.x version instead) and tools.go importing <package>, then
# resolves the dependencies. Needs log() and WORK (for the tidy log).
k8s_command_module() {
  local dir="$1" module="$2" package="$3" gomod staging
  log "fetching k8s.io/kubernetes@${K8S_VERSION} go.mod"
  gomod="$(cd "${WORK}" && go mod download -json "k8s.io/kubernetes@${K8S_VERSION}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')"
  staging="v0.${K8S_VERSION#v1.}"
  mkdir -p "${dir}"
  {
    echo "module ${module}"
    echo
    grep -E '^go ' "${gomod}"
    echo
    echo "require k8s.io/kubernetes ${K8S_VERSION}"
    echo
    echo "replace ("
    grep -E '^\s+k8s.io/[^ ]+ => ./staging/' "${gomod}" | awk -v v="${staging}" '{print "\t" $1 " => " $1 " " v}'
    echo ")"
  } > "${dir}/go.mod"
  printf '//go:build tools\n\npackage tools\n\nimport _ "%s"\n' "${package}" > "${dir}/tools.go"
  log "resolving ${package##*/} dependencies (staging modules at ${staging})"
  (cd "${dir}" && go mod tidy -e >/dev/null 2>"${WORK}/tidy.log" || { cat "${WORK}/tidy.log" >&2; exit 1; })
}
