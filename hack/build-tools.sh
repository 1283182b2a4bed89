#!/usr/bin/env bash
# Builds the local control plane's binaries from Go modules and caches them by version.
#
#   hack/build-tools.sh            build whatever is missing from the cache, print the bin dir
#   hack/build-tools.sh --check    exit 1 if anything is missing (no build)
#
# Cache: ${PDO_CACHE:-~/.cache/pd-orchestrator}/bin/<name>-<version>. Only the first run on a machine
# pays for the build; every later run is a few `test -x`. Versions live here and nowhere else.
# See docs/testing.md for why each binary is built the way it is.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.36.3}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
HELM_VERSION="${HELM_VERSION:-v3.22.0}"

CACHE="${PDO_CACHE:-$HOME/.cache/pd-orchestrator}"
BIN="$CACHE/bin"
WORK="$CACHE/build"
mkdir -p "$BIN" "$WORK"

export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod

k8s_bins=(kube-apiserver kube-controller-manager kube-scheduler kubectl)

missing() {
  local m=()
  for b in "${k8s_bins[@]}"; do [ -x "$BIN/$b-$K8S_VERSION" ] || m+=("$b"); done
  [ -x "$BIN/etcd-$ETCD_VERSION" ] || m+=(etcd)
  [ -x "$BIN/helm-$HELM_VERSION" ] || m+=(helm)
  echo "${m[@]:-}"
}

if [ "${1:-}" = "--check" ]; then
  m=$(missing)
  if [ -n "$m" ]; then echo "missing: $m" >&2; exit 1; fi
  echo "$BIN"; exit 0
fi

log() { echo "[build-tools $(date +%T)] $*" >&2; }

build_k8s() {
  local need=0
  for b in "${k8s_bins[@]}"; do [ -x "$BIN/$b-$K8S_VERSION" ] || need=1; done
  [ "$need" = 1 ] || return 0
  local dir="$WORK/k8s-$K8S_VERSION" minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
  local staging="v0.${K8S_VERSION#v1.}"
  log "kubernetes $K8S_VERSION: generating wrapper module in $dir"
  mkdir -p "$dir"
  cd "$dir"
  # The k8s go.mod requires its staging modules at v0.0.0 and maps them to ./staging; replace
  # directives only apply in the main module, so we derive the list from that exact go.mod.
  local gomod
  gomod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  [ -f "$gomod" ] || { log "could not download k8s.io/kubernetes@$K8S_VERSION"; exit 1; }
  local gover godebug
  gover=$(awk '$1=="go"{print $2; exit}' "$gomod")
  godebug=$(awk '$1=="godebug"{print; exit}' "$gomod")
  {
    echo "module pdo.local/k8s-tools"
    echo
    echo "go $gover"
    [ -n "$godebug" ] && echo "$godebug"
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    grep -oE '^\s*k8s.io/[a-z0-9-]+ => ./staging/src/k8s.io/[a-z0-9-]+' "$gomod" \
      | awk -v v="$staging" '{print "replace " $1 " => " $1 " " v}'
  } > go.mod
  cat > tools.go <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
  log "go mod tidy (downloads a few hundred modules on the first run)"
  go mod tidy -e >/dev/null
  local ld="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"
  ld="$ld -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"
  for b in "${k8s_bins[@]}"; do
    [ -x "$BIN/$b-$K8S_VERSION" ] && continue
    log "go build $b"
    go build -trimpath -ldflags "$ld" -o "$BIN/$b-$K8S_VERSION.tmp" "k8s.io/kubernetes/cmd/$b"
    mv "$BIN/$b-$K8S_VERSION.tmp" "$BIN/$b-$K8S_VERSION"
  done
}

build_etcd() {
  [ -x "$BIN/etcd-$ETCD_VERSION" ] && return 0
  local dir="$WORK/etcd-$ETCD_VERSION"
  log "etcd $ETCD_VERSION: wrapper module in $dir"
  mkdir -p "$dir"; cd "$dir"
  # server/v3's go.mod has local replaces, so `go install` refuses it; a wrapper module that
  # requires it builds fine because its requires name real versions.
  printf 'module pdo.local/etcd-tools\n\ngo 1.24\n\nrequire go.etcd.io/etcd/server/v3 %s\n' "$ETCD_VERSION" > go.mod
  printf '//go:build tools\n\npackage tools\n\nimport _ "go.etcd.io/etcd/server/v3"\n' > tools.go
  go mod tidy -e >/dev/null
  go build -trimpath -ldflags "-s -w" -o "$BIN/etcd-$ETCD_VERSION.tmp" go.etcd.io/etcd/server/v3
  mv "$BIN/etcd-$ETCD_VERSION.tmp" "$BIN/etcd-$ETCD_VERSION"
}

build_helm() {
  [ -x "$BIN/helm-$HELM_VERSION" ] && return 0
  log "helm $HELM_VERSION"
  # Without these, `helm template`/`lint` assume Kubernetes v1.20 and refuse charts with a kubeVersion.
  local minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
  local ld="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
  ld="$ld -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$minor"
  ld="$ld -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$minor"
  GOBIN="$WORK/helm-$HELM_VERSION" go install -trimpath -ldflags "$ld" \
    "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  mv "$WORK/helm-$HELM_VERSION/helm" "$BIN/helm-$HELM_VERSION"
}

start=$(date +%s)
build_etcd
build_helm
build_k8s
log "done in $(( $(date +%s) - start ))s; cache $BIN"
echo "$BIN"
