#!/usr/bin/env bash
# Builds pinned Go tools once into the user cache, outside the clone, so a
# fresh clone does not rebuild them. Usage: hack/tools.sh <tool>  (prints its path)
set -euo pipefail

CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/kacme/tools"

declare -A PKG=(
  [controller-gen]="sigs.k8s.io/controller-tools/cmd/controller-gen@v0.23.0"
  [golangci-lint]="github.com/golangci/golangci-lint/v2/cmd/golangci-lint@v2.15.0"
  [pebble]="github.com/letsencrypt/pebble/v2/cmd/pebble@v2.10.1"
  [step-ca]="github.com/smallstep/certificates/cmd/step-ca@v0.30.2"
  [step]="github.com/smallstep/cli/cmd/step@v0.30.2"
  [helm]="helm.sh/helm/v3/cmd/helm@v3.22.0"
  [coredns]="github.com/coredns/coredns@v1.15.0"
)

tool="${1:?usage: hack/tools.sh <$(echo "${!PKG[@]}" | tr ' ' '|')>}"
pkg="${PKG[$tool]:-}"
if [[ -z "$pkg" ]]; then
  echo "hack/tools.sh: unknown tool $tool" >&2
  exit 2
fi
version="${pkg##*@}"
dir="$CACHE/$tool-$version"
bin="$dir/$tool"
if [[ ! -x "$bin" ]]; then
  echo "hack/tools.sh: building $tool $version into $dir (once; cached)" >&2
  mkdir -p "$dir"
  cgo=0
  if ! (cd "$(mktemp -d)" && CGO_ENABLED=$cgo GOBIN="$dir" GOFLAGS=-mod=mod go install "$pkg") >&2; then
    echo "hack/tools.sh: could not build $pkg; check that the Go module proxy is reachable" >&2
    exit 1
  fi
fi
echo "$bin"
