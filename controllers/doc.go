// Package controllers holds one folder per reconciled kind or background
// job. controller.go holds the wiring, the watches and the reconcile; the
// larger ones split the reconcile into sync.go (certificateauthority,
// acmeprofile) and status.go (certificateauthority); retention is a
// leader-elected runnable (retention.go) and setup builds the manager.
// Controllers import acmeserver's shared packages (profile, retention,
// ca/kubeca), never the request path (make lint enforces it).
package controllers

// Leader election (kacme controller --leader-elect):
// +kubebuilder:rbac:groups=coordination.k8s.io,namespace=kacme-system,resources=leases,verbs=get;list;watch;create;update;patch;delete
// Leader election records "became leader" as a core Event on its Lease:
// +kubebuilder:rbac:groups="",namespace=kacme-system,resources=events,verbs=create;patch
