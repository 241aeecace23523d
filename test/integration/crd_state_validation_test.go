package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kacme/kacme/api/v1alpha1"
	kenvtest "github.com/kacme/kacme/test/envtest"
)

// celSkipped ends the API server's answer to an object that breaks a schema
// rule of a kind that also has CEL rules: it checks those only on a valid object.
const celSkipped = ", <nil>: Invalid value: null: some validation rules were not checked because the object was invalid; " +
	"correct the existing errors to complete validation]"

// TestStateCRDValidation (issue 17, Done 5) asserts the API server's exact
// answer to bad writes of the state kinds: status values outside their
// enums, lists and strings over their bounds, and changes the CEL transition
// rules forbid (an order's or authorization's spec, an issued certificate,
// undoing a revocation or an account deactivation). A bad write is refused
// by the API server, so no cache ever holds it.
func TestStateCRDValidation(t *testing.T) {
	_, c := kenvtest.Start(t)
	ctx := context.Background()
	now := metav1.NewTime(time.Now().UTC().Truncate(time.Second))
	m := func(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Name: name, Namespace: "default"} }
	order := func(name string) *v1alpha1.AcmeOrder {
		return &v1alpha1.AcmeOrder{ObjectMeta: m(name), Spec: v1alpha1.AcmeOrderSpec{Account: "a", Profile: "p", IssuanceProfile: "default",
			Identifiers: []v1alpha1.Identifier{{Type: "dns", Value: "a.example"}}},
			Status: v1alpha1.AcmeOrderStatus{Status: "pending", Expires: now, Authorizations: []string{"z"}}}
	}
	authz := func(name string) *v1alpha1.AcmeChallenge {
		return &v1alpha1.AcmeChallenge{ObjectMeta: m(name), Spec: v1alpha1.AcmeChallengeSpec{Account: "a", Order: "o", Profile: "p",
			Identifier: v1alpha1.Identifier{Type: "dns", Value: "a.example"}},
			Status: v1alpha1.AcmeChallengeStatus{Status: "pending", Expires: now,
				Challenges: []v1alpha1.AcmeChallengeState{{Type: "http-01", Token: "t", Status: "pending"}}}}
	}
	cert := func(name string) *v1alpha1.AcmeCertificate {
		return &v1alpha1.AcmeCertificate{ObjectMeta: m(name), Spec: v1alpha1.AcmeCertificateSpec{Account: "a", Order: "o", Profile: "p",
			CertificateAuthority: "root", Serial: "0a", Certificate: "PEM", NotBefore: now, NotAfter: now}}
	}
	account := func(name, state string) *v1alpha1.AcmeAccount {
		return &v1alpha1.AcmeAccount{ObjectMeta: m(name), Spec: v1alpha1.AcmeAccountSpec{Profile: "p", State: state, Key: "{}"}}
	}
	conditions := func(n int) []metav1.Condition {
		var out []metav1.Condition
		for i := range n {
			out = append(out, metav1.Condition{Type: fmt.Sprintf("C%d", i), Status: "True", Reason: "R", LastTransitionTime: now})
		}
		return out
	}
	creates := []struct {
		name string
		obj  client.Object
		want string
	}{
		{"order status not in the enum", func() client.Object { o := order("o1"); o.Status.Status = "done"; return o }(),
			`AcmeOrder.acme.kacme.io "o1" is invalid: [status.status: Unsupported value: "done": supported values: "pending", "ready", "processing", "valid", "invalid"` + celSkipped},
		{"order with 1001 authorizations", func() client.Object {
			o := order("o2")
			o.Status.Authorizations = make([]string, 1001)
			for i := range o.Status.Authorizations {
				o.Status.Authorizations[i] = fmt.Sprint("z", i)
			}
			return o
		}(), `AcmeOrder.acme.kacme.io "o2" is invalid: [status.authorizations: Too many: 1001: must have at most 1000 items` + celSkipped},
		{"order error detail over 4096 bytes", func() client.Object {
			o := order("o3")
			o.Status.Error = &v1alpha1.Problem{Type: "t", Detail: strings.Repeat("x", 4097)}
			return o
		}(), `AcmeOrder.acme.kacme.io "o3" is invalid: [status.error.detail: Too long: may not be more than 4096 bytes` + celSkipped},
		{"order offering 1001 authorizations", func() client.Object {
			o := order("o4")
			o.Status.Offered = make([]v1alpha1.OfferedAuthorization, 1001)
			for i := range o.Status.Offered {
				o.Status.Offered[i] = v1alpha1.OfferedAuthorization{Name: fmt.Sprint("o4-", i), Identifier: v1alpha1.Identifier{Type: "dns", Value: "a.example"},
					Challenges: []v1alpha1.OfferedChallenge{{Type: "http-01", Token: "t"}}}
			}
			return o
		}(), `AcmeOrder.acme.kacme.io "o4" is invalid: [status.offered: Too many: 1001: must have at most 1000 items` + celSkipped},
		{"offered authorization with 9 challenges", func() client.Object {
			o := order("o5")
			o.Status.Offered = []v1alpha1.OfferedAuthorization{{Name: "o5-0", Identifier: v1alpha1.Identifier{Type: "dns", Value: "a.example"},
				Challenges: make([]v1alpha1.OfferedChallenge, 9)}}
			for i := range o.Status.Offered[0].Challenges {
				o.Status.Offered[0].Challenges[i] = v1alpha1.OfferedChallenge{Type: "http-01", Token: "t"}
			}
			return o
		}(), `AcmeOrder.acme.kacme.io "o5" is invalid: [status.offered[0].challenges: Too many: 9: must have at most 8 items` + celSkipped},
		{"offered challenge token over 128 bytes", func() client.Object {
			o := order("o6")
			o.Status.Offered = []v1alpha1.OfferedAuthorization{{Name: "o6-0", Identifier: v1alpha1.Identifier{Type: "dns", Value: "a.example"},
				Challenges: []v1alpha1.OfferedChallenge{{Type: "http-01", Token: strings.Repeat("t", 129)}}}}
			return o
		}(), `AcmeOrder.acme.kacme.io "o6" is invalid: [status.offered[0].challenges[0].token: Too long: may not be more than 128 bytes` + celSkipped},
		{"offered challenge type not in the enum", func() client.Object {
			o := order("o7")
			o.Status.Offered = []v1alpha1.OfferedAuthorization{{Name: "o7-0", Identifier: v1alpha1.Identifier{Type: "dns", Value: "a.example"},
				Challenges: []v1alpha1.OfferedChallenge{{Type: "smtp-01", Token: "t"}}}}
			return o
		}(), `AcmeOrder.acme.kacme.io "o7" is invalid: [status.offered[0].challenges[0].type: Unsupported value: "smtp-01": supported values: "http-01", "dns-01", "tls-alpn-01", "dns-account-01"` + celSkipped},
		{"authorization status not in the enum", func() client.Object { a := authz("z1"); a.Status.Status = "ready"; return a }(),
			`AcmeChallenge.acme.kacme.io "z1" is invalid: [status.status: Unsupported value: "ready": supported values: "pending", "valid", "invalid", "deactivated", "expired", "revoked"` + celSkipped},
		{"challenge status not in the enum", func() client.Object { a := authz("z2"); a.Status.Challenges[0].Status = "ok"; return a }(),
			`AcmeChallenge.acme.kacme.io "z2" is invalid: [status.challenges[0].status: Unsupported value: "ok": supported values: "pending", "processing", "valid", "invalid"` + celSkipped},
		{"authorization with 17 validation records", func() client.Object {
			a := authz("z3")
			a.Status.Records = make([]v1alpha1.ValidationRecord, 17)
			return a
		}(), `AcmeChallenge.acme.kacme.io "z3" is invalid: [status.records: Too many: 17: must have at most 16 items` + celSkipped},
		{"validation record with 65 addresses", func() client.Object {
			a := authz("z4")
			a.Status.Records = []v1alpha1.ValidationRecord{{AddressesResolved: make([]string, 65)}}
			return a
		}(), `AcmeChallenge.acme.kacme.io "z4" is invalid: [status.records[0].addressesResolved: Too many: 65: must have at most 64 items` + celSkipped},
		{"certificate serial not hex", func() client.Object { x := cert("c1"); x.Spec.Serial = "xyz"; return x }(),
			`AcmeCertificate.acme.kacme.io "c1" is invalid: spec.serial: Invalid value: "xyz": spec.serial in body should match '^[0-9a-f]+$'`},
		{"certificate revocation reason 2", func() client.Object {
			x := cert("c2")
			x.Spec.Revocation = &v1alpha1.Revocation{Reason: 2, RevokedAt: now}
			return x
		}(), `AcmeCertificate.acme.kacme.io "c2" is invalid: [spec.revocation.reason: Unsupported value: 2: supported values: "0", "1", "3", "4", "5"` + celSkipped},
		{"account state not in the enum", account("a1", "active"),
			`AcmeAccount.acme.kacme.io "a1" is invalid: [spec.state: Unsupported value: "active": supported values: "valid", "deactivated", "revoked"` + celSkipped},
		{"account with 17 conditions", func() client.Object { a := account("a2", "valid"); a.Status.Conditions = conditions(17); return a }(),
			`AcmeAccount.acme.kacme.io "a2" is invalid: [status.conditions: Too many: 17: must have at most 16 items` + celSkipped},
	}
	for _, tc := range creates {
		t.Run("create/"+tc.name, func(t *testing.T) {
			err := c.Create(ctx, tc.obj)
			if err == nil {
				t.Fatal("invalid object accepted")
			}
			if err.Error() != tc.want {
				t.Fatalf("got  %s\nwant %s", err, tc.want)
			}
		})
	}

	updates := []struct {
		name   string
		obj    client.Object
		change func(client.Object)
		want   string // "" = allowed
	}{
		{"order identifiers", order("u1"), func(o client.Object) {
			o.(*v1alpha1.AcmeOrder).Spec.Identifiers[0].Value = "b.example"
		}, `AcmeOrder.acme.kacme.io "u1" is invalid: spec: Invalid value: an order's spec is immutable`},
		{"order status", order("u2"), func(o client.Object) { o.(*v1alpha1.AcmeOrder).Status.Status = "valid" }, ""},
		{"authorization identifier", authz("u3"), func(o client.Object) {
			o.(*v1alpha1.AcmeChallenge).Spec.Identifier.Value = "b.example"
		}, `AcmeChallenge.acme.kacme.io "u3" is invalid: spec: Invalid value: an authorization's spec is immutable`},
		{"certificate notAfter", cert("u4"), func(o client.Object) {
			o.(*v1alpha1.AcmeCertificate).Spec.NotAfter = metav1.NewTime(now.Add(time.Hour))
		}, `AcmeCertificate.acme.kacme.io "u4" is invalid: spec: Invalid value: an issued certificate's fields are immutable`},
		{"certificate leaf", cert("u5"), func(o client.Object) { o.(*v1alpha1.AcmeCertificate).Spec.Certificate = "other" },
			`AcmeCertificate.acme.kacme.io "u5" is invalid: spec: Invalid value: certificate is immutable`},
		// The server caches certificates without their PEM (kube.Compact);
		// should such a copy ever be written back, the API server refuses it.
		{"certificate written without its PEM", cert("u12"), func(o client.Object) { o.(*v1alpha1.AcmeCertificate).Spec.Certificate = "" },
			`AcmeCertificate.acme.kacme.io "u12" is invalid: spec: Invalid value: certificate is immutable`},
		{"certificate revoked", cert("u6"), func(o client.Object) {
			x := o.(*v1alpha1.AcmeCertificate)
			reason := 1
			x.Spec.RevocationReason, x.Spec.Revocation = &reason, &v1alpha1.Revocation{Reason: 1, RevokedAt: now}
		}, ""},
		{"certificate revocation undone", func() client.Object {
			x := cert("u7")
			x.Spec.Revocation = &v1alpha1.Revocation{Reason: 1, RevokedAt: now}
			return x
		}(), func(o client.Object) { o.(*v1alpha1.AcmeCertificate).Spec.Revocation = nil },
			`AcmeCertificate.acme.kacme.io "u7" is invalid: spec: Invalid value: a revocation is final`},
		{"account deactivated", account("u8", "valid"), func(o client.Object) { o.(*v1alpha1.AcmeAccount).Spec.State = "deactivated" }, ""},
		{"account reactivated", account("u9", "deactivated"), func(o client.Object) { o.(*v1alpha1.AcmeAccount).Spec.State = "valid" },
			`AcmeAccount.acme.kacme.io "u9" is invalid: spec: Invalid value: a deactivated or revoked account stays so`},
		{"account profile", account("u10", "valid"), func(o client.Object) { o.(*v1alpha1.AcmeAccount).Spec.Profile = "other" },
			`AcmeAccount.acme.kacme.io "u10" is invalid: spec: Invalid value: profile is immutable`},
		{"account key rollover", account("u11", "valid"), func(o client.Object) { o.(*v1alpha1.AcmeAccount).Spec.Key = `{"kty":"EC"}` }, ""},
	}
	for _, tc := range updates {
		t.Run("update/"+tc.name, func(t *testing.T) {
			if err := c.Create(ctx, tc.obj); err != nil {
				t.Fatalf("create: %v", err)
			}
			tc.change(tc.obj)
			err := c.Update(ctx, tc.obj)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("allowed change refused: %v", err)
			case tc.want != "" && err == nil:
				t.Fatal("forbidden change accepted")
			case tc.want != "" && err.Error() != tc.want:
				t.Fatalf("got  %s\nwant %s", err, tc.want)
			}
		})
	}
}
