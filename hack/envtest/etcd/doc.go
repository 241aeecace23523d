// Package etcd pins the etcd that envtest runs; hack/envtest.sh builds
// go.etcd.io/etcd/server/v3 (its main package is the module root) from this module.
package etcd

import _ "go.etcd.io/etcd/server/v3/etcdmain" // keeps every dependency of the binary in go.mod
