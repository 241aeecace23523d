// Package v1alpha1 holds the kacme API: the objects the ACME server is configured
// from (AcmeProfile, CertificateAuthority) and the objects it stores (AcmeAccount,
// AcmeOrder, AcmeChallenge, AcmeCertificate). The standalone store and the
// Kubernetes store hold these very same objects.
//
// +kubebuilder:object:generate=true
// +groupName=acme.kacme.io
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupVersion is the group and version of every kacme type.
var GroupVersion = schema.GroupVersion{Group: "acme.kacme.io", Version: "v1alpha1"}

var (
	// SchemeBuilder registers the kacme types with a runtime.Scheme.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)
	// AddToScheme adds the kacme types to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion,
		&CertificateAuthority{}, &CertificateAuthorityList{},
		&AcmeProfile{}, &AcmeProfileList{},
		&AcmeAccount{}, &AcmeAccountList{},
		&AcmeOrder{}, &AcmeOrderList{},
		&AcmeChallenge{}, &AcmeChallengeList{},
		&AcmeCertificate{}, &AcmeCertificateList{},
		&KubernetesSigner{}, &KubernetesSignerList{},
	)
	metaAddToGroupVersion(s)
	return nil
}
