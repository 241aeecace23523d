package v1alpha1_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

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

// TestBounds: what a hostile validation target makes the server store fits
// the CRD's bounds (a write over them would be refused, losing the result).
func TestBounds(t *testing.T) {
	long := strings.Repeat("é", 5000) // two bytes each: cuts must not split one
	p := (&v1alpha1.Problem{Type: "t", Detail: long}).Bounded()
	if len(p.Detail) > v1alpha1.MaxProblemDetail || !utf8.ValidString(p.Detail) || !strings.HasSuffix(p.Detail, "…") {
		t.Fatalf("detail of %d bytes, valid UTF-8 %v", len(p.Detail), utf8.ValidString(p.Detail))
	}
	if short := (&v1alpha1.Problem{Detail: "ok"}).Bounded(); short.Detail != "ok" {
		t.Fatalf("a short detail changed: %q", short.Detail)
	}
	recs := make([]v1alpha1.ValidationRecord, 100)
	for i := range recs {
		recs[i].URL = "http://x/" + long
		for j := 0; j < 1000; j++ {
			recs[i].AddressesResolved = append(recs[i].AddressesResolved, "192.0.2.1")
		}
	}
	out := v1alpha1.BoundRecords(recs)
	if len(out) != v1alpha1.MaxValidationRecords || len(out[0].AddressesResolved) != v1alpha1.MaxRecordAddresses || len(out[0].URL) > 2048 {
		t.Fatalf("%d records, %d addresses, URL of %d bytes", len(out), len(out[0].AddressesResolved), len(out[0].URL))
	}
	if len(recs[0].AddressesResolved) != 1000 {
		t.Fatal("the input was changed")
	}
}

// TestServerFieldsAgree: the account spec fields MoveLegacyFields fills
// from status are exactly those ClearServerFields empties, so that a field
// added to one list and not the other fails here.
func TestServerFieldsAgree(t *testing.T) {
	var a v1alpha1.AcmeAccount
	setFields(t, reflect.ValueOf(&a.Status).Elem(), "Legacy") // every legacy field set to something
	v1alpha1.MoveLegacyFields(&a)
	moved := nonZero(a.Spec)
	// What ClearServerFields empties of a spec with every field set.
	var full v1alpha1.AcmeAccountSpec
	setFields(t, reflect.ValueOf(&full).Elem(), "")
	full.ClearServerFields()
	var cleared []string
	for i := range reflect.TypeOf(full).NumField() {
		if reflect.ValueOf(full).Field(i).IsZero() {
			cleared = append(cleared, reflect.TypeOf(full).Field(i).Name)
		}
	}
	if len(moved) == 0 || strings.Join(moved, ",") != strings.Join(cleared, ",") {
		t.Fatalf("MoveLegacyFields fills %v; ClearServerFields clears %v", moved, cleared)
	}
}

// setFields sets every field of the struct v whose name has prefix to a
// non-zero value.
func setFields(t *testing.T, v reflect.Value, prefix string) {
	t.Helper()
	for i := range v.NumField() {
		f, name := v.Field(i), v.Type().Field(i).Name
		if !strings.HasPrefix(name, prefix) {
			continue
		}
		switch f.Kind() {
		case reflect.String:
			f.SetString("x")
		case reflect.Bool:
			f.SetBool(true)
		case reflect.Pointer:
			f.Set(reflect.New(f.Type().Elem()))
		case reflect.Slice:
			f.Set(reflect.MakeSlice(f.Type(), 1, 1))
		default:
			t.Fatalf("field %s of kind %s: extend setFields", name, f.Kind())
		}
	}
}

func nonZero(v any) []string {
	rv := reflect.ValueOf(v)
	var out []string
	for i := range rv.NumField() {
		if !rv.Field(i).IsZero() {
			out = append(out, rv.Type().Field(i).Name)
		}
	}
	return out
}
