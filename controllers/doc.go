// Package controllers holds one folder per reconciled kind: controller.go
// (wiring and watches), sync.go (the reconcile logic), status.go (status
// writes). CertificateAuthority, AcmeProfile and (pre-registered)
// AcmeAccount objects are reconciled here.
package controllers

// Leader election (kacme controller --leader-elect):
// +kubebuilder:rbac:groups=coordination.k8s.io,resources=leases,verbs=get;list;watch;create;update;patch;delete
