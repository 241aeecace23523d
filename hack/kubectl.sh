#!/usr/bin/env bash
# Builds kubectl (k8s.io/kubectl v0.37.2, wrapper module hack/envtest/kubectl)
# once into the user cache and prints its path. Used to produce the real
# `kubectl get` output in docs/kubernetes.md (make docs-kubectl).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dir="${XDG_CACHE_HOME:-$HOME/.cache}/kacme/tools/kubectl-v0.37.2"
if [[ ! -x "$dir/kubectl" ]]; then
  echo "hack/kubectl.sh: building kubectl (once; cached in $dir)" >&2
  mkdir -p "$dir"
  (cd "$root/hack/envtest/kubectl" && CGO_ENABLED=0 go build -trimpath -o "$dir/kubectl.tmp" .) >&2
  mv "$dir/kubectl.tmp" "$dir/kubectl"
fi
echo "$dir/kubectl"
