package signer

import (
	"fmt"

	"github.com/go-logr/logr"
	certv1 "k8s.io/api/certificates/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	ctrl "sigs.k8s.io/controller-runtime"
)

// Setup registers the signer's reconcilers. Where the cluster does not serve
// PodCertificateRequests or ClusterTrustBundles (certificates.k8s.io/v1),
// their parts are left out, every signer says so in a condition (and an
// Event), and the rest works.
func Setup(mgr ctrl.Manager, s *Signer, log logr.Logger) error {
	registerMetrics()
	served := func(kind string) bool {
		_, err := mgr.GetRESTMapper().RESTMapping(certv1.SchemeGroupVersion.WithKind(kind).GroupKind(), certv1.SchemeGroupVersion.Version)
		if err != nil && !meta.IsNoMatchError(err) {
			log.Error(err, "discovery", "kind", kind)
		}
		return err == nil
	}
	podAPI, bundleAPI := served("PodCertificateRequest"), served("ClusterTrustBundle")
	if !podAPI || !bundleAPI {
		log.Info("part of the Kubernetes signer is off: the cluster does not serve it", "podCertificateRequests", podAPI, "clusterTrustBundles", bundleAPI)
	}
	if err := (Signers{Signer: s, PodAPI: podAPI, BundleAPI: bundleAPI}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("kubernetessigner controller: %w", err)
	}
	if podAPI {
		if err := (PodCertificates{s}).SetupWithManager(mgr); err != nil {
			return fmt.Errorf("podcertificaterequest controller: %w", err)
		}
	}
	return CSRs{s}.SetupWithManager(mgr)
}
