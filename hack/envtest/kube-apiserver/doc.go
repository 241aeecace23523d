// Package kubeapiserver pins the kube-apiserver that envtest runs; hack/envtest.sh
// builds k8s.io/kubernetes/cmd/kube-apiserver from this module.
package kubeapiserver

import _ "k8s.io/kubernetes/cmd/kube-apiserver/app" // keeps every dependency of the binary in go.mod
