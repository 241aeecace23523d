// Package integration runs kacme's API against a real kube-apiserver.
package integration

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kacme/kacme/api/v1alpha1"
	kenvtest "github.com/kacme/kacme/test/envtest"
)

// TestCRDValidation asserts the API server's exact answer to invalid objects:
// the OpenAPI bounds and CEL rules the markers in api/v1alpha1 generate.
func TestCRDValidation(t *testing.T) {
	_, c := kenvtest.Start(t)
	meta := func(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Name: name} }
	nsMeta := func(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Name: name, Namespace: "default"} }
	ca := func(name string, spec v1alpha1.CertificateAuthoritySpec) client.Object {
		return &v1alpha1.CertificateAuthority{ObjectMeta: meta(name), Spec: spec}
	}
	profile := func(name string, spec v1alpha1.AcmeProfileSpec) client.Object {
		return &v1alpha1.AcmeProfile{ObjectMeta: meta(name), Spec: spec}
	}
	tests := []struct {
		name string
		obj  client.Object
		want string // "" = accepted
	}{
		{"CA selfSigned", ca("ok-root", v1alpha1.CertificateAuthoritySpec{SelfSigned: &v1alpha1.SelfSignedCA{}}), ""},
		{"CA intermediate", ca("ok-inter", v1alpha1.CertificateAuthoritySpec{Intermediate: &v1alpha1.IntermediateCA{Issuer: "ok-root"}}), ""},
		{"CA with none of the three", ca("none", v1alpha1.CertificateAuthoritySpec{}),
			`CertificateAuthority.acme.kacme.io "none" is invalid: spec: Invalid value: exactly one of selfSigned, secretRef or intermediate is required`},
		{"CA with two of the three", ca("two", v1alpha1.CertificateAuthoritySpec{SelfSigned: &v1alpha1.SelfSignedCA{},
			SecretRef: &v1alpha1.CASecretReference{Name: "x"}}),
			`CertificateAuthority.acme.kacme.io "two" is invalid: spec: Invalid value: exactly one of selfSigned, secretRef or intermediate is required`},
		{"CA unknown key algorithm", ca("alg", v1alpha1.CertificateAuthoritySpec{SelfSigned: &v1alpha1.SelfSignedCA{KeyAlgorithm: "DSA"}}),
			`CertificateAuthority.acme.kacme.io "alg" is invalid: [spec.selfSigned.keyAlgorithm: Unsupported value: "DSA": supported values: "ECDSAP256", "ECDSAP384", "RSA2048", "RSA3072", "RSA4096", "Ed25519", <nil>: Invalid value: null: some validation rules were not checked because the object was invalid; correct the existing errors to complete validation]`},
		{"CA intermediate without issuer", ca("noissuer", v1alpha1.CertificateAuthoritySpec{Intermediate: &v1alpha1.IntermediateCA{}}),
			`CertificateAuthority.acme.kacme.io "noissuer" is invalid: spec.intermediate.issuer: Invalid value: "": spec.intermediate.issuer in body should be at least 1 chars long`},
		{"CA OCSP", ca("ocsp", v1alpha1.CertificateAuthoritySpec{SelfSigned: &v1alpha1.SelfSignedCA{},
			OCSP: &v1alpha1.OCSPSpec{Validity: &metav1.Duration{Duration: time.Hour}, Responder: v1alpha1.OCSPResponderDelegated}}), ""},
		{"CA OCSP validity below 5m", ca("ocspshort", v1alpha1.CertificateAuthoritySpec{SelfSigned: &v1alpha1.SelfSignedCA{},
			OCSP: &v1alpha1.OCSPSpec{Validity: &metav1.Duration{Duration: time.Minute}}}),
			`CertificateAuthority.acme.kacme.io "ocspshort" is invalid: spec.ocsp: Invalid value: validity must be between 5m and 168h`},
		{"CA OCSP validity above 168h", ca("ocsplong", v1alpha1.CertificateAuthoritySpec{SelfSigned: &v1alpha1.SelfSignedCA{},
			OCSP: &v1alpha1.OCSPSpec{Validity: &metav1.Duration{Duration: 200 * time.Hour}}}),
			`CertificateAuthority.acme.kacme.io "ocsplong" is invalid: spec.ocsp: Invalid value: validity must be between 5m and 168h`},
		{"CA OCSP unknown responder", ca("ocspwho", v1alpha1.CertificateAuthoritySpec{SelfSigned: &v1alpha1.SelfSignedCA{},
			OCSP: &v1alpha1.OCSPSpec{Responder: "Someone"}}),
			`CertificateAuthority.acme.kacme.io "ocspwho" is invalid: [spec.ocsp.responder: Unsupported value: "Someone": supported values: "CA", "Delegated", <nil>: Invalid value: null: some validation rules were not checked because the object was invalid; correct the existing errors to complete validation]`},
		{"CA OCSP responder URL not http(s)", ca("ocspurl", v1alpha1.CertificateAuthoritySpec{SelfSigned: &v1alpha1.SelfSignedCA{},
			OCSP: &v1alpha1.OCSPSpec{ResponderURL: "ldap://ocsp.example"}}),
			`CertificateAuthority.acme.kacme.io "ocspurl" is invalid: spec.ocsp.responderURL: Invalid value: "ldap://ocsp.example": spec.ocsp.responderURL in body should match '^https?://'`},
		{"profile ok", profile("ok", v1alpha1.AcmeProfileSpec{CertificateAuthority: "ok-root",
			IssuanceProfiles: []v1alpha1.IssuanceProfile{{Name: "short"}}, DefaultIssuanceProfile: "short"}), ""},
		{"profile without CA", profile("noca", v1alpha1.AcmeProfileSpec{}),
			`AcmeProfile.acme.kacme.io "noca" is invalid: spec.certificateAuthority: Invalid value: "": spec.certificateAuthority in body should be at least 1 chars long`},
		{"profile default issuance profile not offered", profile("baddefault", v1alpha1.AcmeProfileSpec{CertificateAuthority: "ok-root",
			IssuanceProfiles: []v1alpha1.IssuanceProfile{{Name: "short"}}, DefaultIssuanceProfile: "long"}),
			`AcmeProfile.acme.kacme.io "baddefault" is invalid: spec: Invalid value: defaultIssuanceProfile must name one of issuanceProfiles`},
		{"profile issuance profile name", profile("badname", v1alpha1.AcmeProfileSpec{CertificateAuthority: "ok-root",
			IssuanceProfiles: []v1alpha1.IssuanceProfile{{Name: "Short Lived"}}}),
			`AcmeProfile.acme.kacme.io "badname" is invalid: spec.issuanceProfiles[0].name: Invalid value: "Short Lived": spec.issuanceProfiles[0].name in body should match '^[a-z0-9][a-z0-9.-]{0,62}$'`},
		{"profile http-01 port out of range", profile("port", v1alpha1.AcmeProfileSpec{CertificateAuthority: "ok-root",
			Validation: v1alpha1.ValidationSpec{HTTP01Port: 70000}}),
			`AcmeProfile.acme.kacme.io "port" is invalid: spec.validation.http01Port: Invalid value: 70000: spec.validation.http01Port in body should be less than or equal to 65535`},
		{"profile unknown challenge type", profile("chal", v1alpha1.AcmeProfileSpec{CertificateAuthority: "ok-root",
			Validation: v1alpha1.ValidationSpec{ChallengeTypes: []v1alpha1.ChallengeType{"tls-sni-01"}}}),
			`AcmeProfile.acme.kacme.io "chal" is invalid: [spec.validation.challengeTypes[0]: Unsupported value: "tls-sni-01": supported values: "http-01", "dns-01", "tls-alpn-01", "dns-account-01", <nil>: Invalid value: null: some validation rules were not checked because the object was invalid; correct the existing errors to complete validation]`},
		{"profile RSA minimum below 2048", profile("rsa", v1alpha1.AcmeProfileSpec{CertificateAuthority: "ok-root",
			Keys: v1alpha1.KeyPolicy{MinRSABits: 1024}}),
			`AcmeProfile.acme.kacme.io "rsa" is invalid: spec.keys.minRSABits: Invalid value: 1024: spec.keys.minRSABits in body should be greater than or equal to 2048`},
		{"account EAB without key ID", &v1alpha1.AcmeAccount{ObjectMeta: nsMeta("eab"), Spec: v1alpha1.AcmeAccountSpec{Profile: "ok",
			ExternalAccountBinding: &v1alpha1.ExternalAccountKey{SecretName: "s"}}},
			`AcmeAccount.acme.kacme.io "eab" is invalid: spec.externalAccountBinding.keyID: Invalid value: "": spec.externalAccountBinding.keyID in body should be at least 1 chars long`},
		{"order identifier type", &v1alpha1.AcmeOrder{ObjectMeta: nsMeta("o"), Spec: v1alpha1.AcmeOrderSpec{Account: "a", Profile: "ok",
			Identifiers: []v1alpha1.Identifier{{Type: "email", Value: "a@b"}}},
			Status: v1alpha1.AcmeOrderStatus{Status: "pending", Expires: metav1.Now(), Authorizations: []string{}}},
			`AcmeOrder.acme.kacme.io "o" is invalid: [spec.identifiers[0].type: Unsupported value: "email": supported values: "dns", "ip"` + celSkipped},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := c.Create(context.Background(), tc.obj)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("valid object refused: %v", err)
			case tc.want != "" && err == nil:
				t.Fatalf("invalid object accepted")
			case tc.want != "" && err.Error() != tc.want:
				t.Fatalf("got  %s\nwant %s", err, tc.want)
			}
		})
	}
}
