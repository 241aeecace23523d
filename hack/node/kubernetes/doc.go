// Package kubernetes pins the node components the real-node test runs
// (hack/node.sh builds each from this module): kubelet, kube-proxy,
// kube-controller-manager and kube-scheduler of k8s.io/kubernetes v1.37.2.
package kubernetes

import (
	_ "k8s.io/kubernetes/cmd/kube-controller-manager/app" // keeps every dependency of the binaries in go.mod
	_ "k8s.io/kubernetes/cmd/kube-proxy/app"
	_ "k8s.io/kubernetes/cmd/kube-scheduler/app"
	_ "k8s.io/kubernetes/cmd/kubelet/app"
)
