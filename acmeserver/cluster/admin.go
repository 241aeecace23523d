package cluster

import (
	"context"
	"log/slog"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kacme/kacme/acmeserver/acme"
	"github.com/kacme/kacme/acmeserver/ra"
	"github.com/kacme/kacme/api/v1alpha1"
)

// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Event reasons of the administrative edits the server carries out.
const (
	// ReasonRevoked is on an AcmeCertificate revoked through spec.revocationReason.
	ReasonRevoked = "Revoked"
	// ReasonAccountDeactivated is on an AcmeAccount deactivated through spec.deactivated.
	ReasonAccountDeactivated = "AccountDeactivated"
)

// adminEdit is one kind of edit an administrator makes on a resource and
// the server carries out, through the same RA code as the ACME request.
type adminEdit struct {
	obj client.Object
	// pending reports whether obj asks for something not done yet.
	pending func(obj any) (client.Object, bool)
	// apply carries it out; done is true for the replica that made the change.
	apply func(ctx context.Context, o client.Object) (done bool, err error)
	// The Event: reason (or failed) and its note.
	reason, failed, action string
	ok                     func(o client.Object) string
}

// watchAdminEdits carries out spec.revocationReason on AcmeCertificates and
// spec.deactivated on AcmeAccounts when they appear (and, at start, where
// they were set while no server ran). Every replica sees the change; the
// one whose compare-and-swap wins records it (audit) and posts the Event.
func watchAdminEdits(ctx context.Context, c cache.Cache, r *ra.RA, rec events.EventRecorder, log *slog.Logger) error {
	edits := []adminEdit{
		{
			obj: &v1alpha1.AcmeCertificate{},
			pending: func(obj any) (client.Object, bool) {
				cert, ok := obj.(*v1alpha1.AcmeCertificate)
				return cert, ok && cert.Spec.RevocationReason != nil && cert.Spec.Revocation == nil
			},
			apply: func(ctx context.Context, o client.Object) (bool, error) {
				return r.RevokeRequested(ctx, o.GetNamespace(), o.GetName())
			},
			reason: ReasonRevoked, failed: "RevocationFailed", action: "Revoke",
			ok: func(o client.Object) string {
				return "revoked with reason " + strconv.Itoa(*o.(*v1alpha1.AcmeCertificate).Spec.RevocationReason) +
					" (spec.revocationReason); the CRL lists it"
			},
		},
		{
			obj: &v1alpha1.AcmeAccount{},
			pending: func(obj any) (client.Object, bool) {
				a, ok := obj.(*v1alpha1.AcmeAccount)
				return a, ok && a.Spec.Deactivated && a.Spec.State == acme.StatusValid
			},
			apply: func(ctx context.Context, o client.Object) (bool, error) {
				return r.DeactivateRequested(ctx, o.GetNamespace(), o.GetName())
			},
			reason: ReasonAccountDeactivated, failed: "DeactivationFailed", action: "Deactivate",
			ok: func(client.Object) string {
				return "deactivated (spec.deactivated): its requests are refused and its pending orders cancelled"
			},
		},
	}
	for _, e := range edits {
		inf, err := c.GetInformer(ctx, e.obj)
		if err != nil {
			return err
		}
		handle := func(obj any) {
			o, ok := e.pending(obj)
			if !ok {
				return
			}
			go func() {
				done, err := e.apply(ctx, o)
				switch {
				case err != nil && ctx.Err() == nil:
					log.Error("administrative edit", "action", e.action, "object", o.GetNamespace()+"/"+o.GetName(), "err", err)
					rec.Eventf(o, nil, corev1.EventTypeWarning, e.failed, e.action, "%v", err)
				case done:
					rec.Eventf(o, nil, corev1.EventTypeNormal, e.reason, e.action, "%s", e.ok(o))
				}
			}()
		}
		if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
			AddFunc:    handle,
			UpdateFunc: func(_, obj any) { handle(obj) },
		}); err != nil {
			return err
		}
	}
	return nil
}
