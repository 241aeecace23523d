#!/usr/bin/env bash
# Builds what a real single-node Kubernetes needs (test/node brings one up in
# a network namespace; make node runs one with kacme installed) once into the
# user cache, and prints the directory:
#   kubelet, kube-proxy, kube-controller-manager, kube-scheduler  k8s.io/kubernetes v1.37.2 (hack/node/kubernetes)
#   kube-apiserver, etcd                                          hack/envtest.sh
#   kubectl                                                       hack/kubectl.sh
#   containerd, containerd-shim-runc-v2, ctr                      github.com/containerd/containerd/v2 v2.2.9
#   cni/bridge, cni/host-local, cni/loopback, cni/portmap         github.com/containernetworking/plugins v1.10.0
# runc, iptables, conntrack, nsenter and mount come from Debian (make installs
# them as root).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/kacme/tools"
dir="$CACHE/node-k8s-v1.37.2-containerd-v2.2.9-cni-v1.10.0"
mkdir -p "$dir/cni"

# The version the API server and kubelet report (Helm's kubeVersion checks
# read it); built from the module, they would say v0.0.0-master.
K8S_LDFLAGS="-s -w -X k8s.io/component-base/version.gitVersion=v1.37.2 -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=37 -X k8s.io/component-base/version.gitTreeState=clean"

say() { echo "hack/node.sh: $*" >&2; }

build_k8s() { # name
  local name=$1
  [[ -x "$dir/$name" ]] && return
  say "building $name v1.37.2 (once; cached in $dir)"
  if ! (cd "$root/hack/node/kubernetes" && CGO_ENABLED=0 go build -trimpath -ldflags "$K8S_LDFLAGS" -o "$dir/$name.tmp" "k8s.io/kubernetes/cmd/$name") >&2; then
    say "building $name failed; check that the Go module proxy is reachable"
    exit 1
  fi
  mv "$dir/$name.tmp" "$dir/$name"
}

install_go() { # destination dir, binary name, package@version
  local dest=$1 name=$2 pkg=$3
  [[ -x "$dest/$name" ]] && return
  say "building $name from $pkg (once; cached in $dest)"
  local tmp
  tmp="$(mktemp -d)"
  if ! (cd "$tmp" && CGO_ENABLED=0 GOBIN="$tmp/bin" GOFLAGS=-mod=mod go install -trimpath -ldflags "-s -w" "$pkg") >&2; then
    say "building $pkg failed; check that the Go module proxy is reachable"
    exit 1
  fi
  mv "$tmp/bin/$(basename "${pkg%@*}")" "$dest/$name"
  rm -rf "$tmp"
}

for c in kubelet kube-proxy kube-controller-manager kube-scheduler; do build_k8s "$c"; done
install_go "$dir" containerd github.com/containerd/containerd/v2/cmd/containerd@v2.2.9
install_go "$dir" containerd-shim-runc-v2 github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2@v2.2.9
install_go "$dir" ctr github.com/containerd/containerd/v2/cmd/ctr@v2.2.9
for pkg in main/bridge ipam/host-local main/loopback meta/portmap; do
  install_go "$dir/cni" "$(basename "$pkg")" "github.com/containernetworking/plugins/plugins/$pkg@v1.10.0"
done
assets="$("$root/hack/envtest.sh")"
for b in kube-apiserver etcd; do ln -sf "$assets/$b" "$dir/$b"; done
ln -sf "$("$root/hack/kubectl.sh")" "$dir/kubectl"
echo "$dir"
