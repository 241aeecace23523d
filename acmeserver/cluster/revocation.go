package cluster

import (
	"context"
	"log/slog"

	corev1 "k8s.io/api/core/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	"github.com/kacme/kacme/acmeserver/ra"
	"github.com/kacme/kacme/api/v1alpha1"
)

// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// ReasonRevoked is the Event reason on an AcmeCertificate an administrator
// revoked through spec.revocationReason.
const ReasonRevoked = "Revoked"

// watchRevocationRequests carries out spec.revocationReason when it appears
// on an AcmeCertificate (and, at start, where it was set while no server
// ran). Every replica sees the change; one records it.
func watchRevocationRequests(ctx context.Context, c cache.Cache, r *ra.RA, rec events.EventRecorder, log *slog.Logger) error {
	inf, err := c.GetInformer(ctx, &v1alpha1.AcmeCertificate{})
	if err != nil {
		return err
	}
	handle := func(obj any) {
		cert, ok := obj.(*v1alpha1.AcmeCertificate)
		if !ok || cert.Spec.RevocationReason == nil || cert.Status.Revocation != nil {
			return
		}
		go func() {
			revoked, err := r.RevokeRequested(ctx, cert.Namespace, cert.Name)
			switch {
			case err != nil && ctx.Err() == nil:
				log.Error("revoke on spec.revocationReason", "certificate", cert.Namespace+"/"+cert.Name, "err", err)
				rec.Eventf(cert, nil, corev1.EventTypeWarning, "RevocationFailed", "Revoke", "%v", err)
			case revoked:
				rec.Eventf(cert, nil, corev1.EventTypeNormal, ReasonRevoked, "Revoke",
					"revoked with reason %d (spec.revocationReason); the CRL lists it", *cert.Spec.RevocationReason)
			}
		}()
	}
	_, err = inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    handle,
		UpdateFunc: func(_, obj any) { handle(obj) },
	})
	return err
}
