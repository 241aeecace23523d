#!/usr/bin/env bash
# Builds the control plane envtest runs — kube-apiserver from k8s.io/kubernetes
# v1.37.2 and etcd v3.7.3, through the wrapper modules in hack/envtest/ — once
# into the user cache, and prints the directory to use as KUBEBUILDER_ASSETS.
# (setup-envtest's download cannot work here: only the Go module proxy is reachable.)
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/kacme/tools"
dir="$CACHE/envtest-k8s-v1.37.2-etcd-v3.7.3"
mkdir -p "$dir"

build() { # name, wrapper dir, package
  local name=$1 wrapper=$2 pkg=$3
  if [[ -x "$dir/$name" ]]; then return; fi
  echo "hack/envtest.sh: building $name (once, 10-20 minutes on 2 cores; cached in $dir)" >&2
  if ! (cd "$root/hack/envtest/$wrapper" && CGO_ENABLED=0 go build -trimpath -o "$dir/$name.tmp" "$pkg") >&2; then
    echo "hack/envtest.sh: building $name failed; check that the Go module proxy is reachable" >&2
    exit 1
  fi
  mv "$dir/$name.tmp" "$dir/$name"
}

build etcd etcd go.etcd.io/etcd/server/v3
build kube-apiserver kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver
echo "$dir"
