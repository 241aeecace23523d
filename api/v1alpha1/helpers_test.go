package v1alpha1_test

import (
	"encoding/json"
	"testing"

	"github.com/kacme/kacme/api/v1alpha1"
)

// TestMoveLegacyFields: an account and a certificate as earlier versions
// stored them (the server's fields in status) read with the current layout,
// and an object already in it is left alone.
func TestMoveLegacyFields(t *testing.T) {
	var a v1alpha1.AcmeAccount
	legacy := `{"spec":{"profile":"default"},"status":{"status":"deactivated","key":"{\"kty\":\"EC\"}","keyThumbprint":"tp",` +
		`"termsOfServiceAgreed":true,"binding":"jws","createdAt":"2026-01-02T03:04:05Z","orders":3}}`
	if err := json.Unmarshal([]byte(legacy), &a); err != nil {
		t.Fatal(err)
	}
	if !v1alpha1.MoveLegacyFields(&a) {
		t.Fatal("nothing moved")
	}
	s := a.Spec
	if s.State != "deactivated" || s.Key != `{"kty":"EC"}` || s.KeyThumbprint != "tp" || !s.TermsOfServiceAgreed || s.Binding != "jws" ||
		s.CreatedAt == nil || a.Status.Orders != 3 {
		t.Fatalf("moved account: %+v / %+v", a.Spec, a.Status)
	}
	out, _ := json.Marshal(a.Status)
	if string(out) != `{"orders":3}` {
		t.Fatalf("status written back as %s", out)
	}
	if v1alpha1.MoveLegacyFields(&a) {
		t.Fatal("moved twice")
	}

	var c v1alpha1.AcmeCertificate
	if err := json.Unmarshal([]byte(`{"spec":{"serial":"0a"},"status":{"revocation":{"reason":1,"revokedAt":"2026-01-02T03:04:05Z"}}}`), &c); err != nil {
		t.Fatal(err)
	}
	if !v1alpha1.MoveLegacyFields(&c) || c.Spec.Revocation == nil || c.Spec.Revocation.Reason != 1 || c.Status.LegacyRevocation != nil {
		t.Fatalf("moved certificate: %+v / %+v", c.Spec, c.Status)
	}
}
