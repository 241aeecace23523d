// Package controllers holds one folder per reconciled kind: controller.go
// (wiring and watches), sync.go (the reconcile logic), status.go (status
// writes). CertificateAuthority is reconciled in certificateauthority/;
// AcmeProfile and AcmeAccount follow with the Kubernetes mode.
package controllers
