package standalone

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kacme/kacme/acmeserver/ca"
	"github.com/kacme/kacme/acmeserver/profile"
	"github.com/kacme/kacme/api/v1alpha1"
)

// TestExampleFor (issue 13): the banner's certbot and lego commands are
// derived from the profile actually served — a name it allows, its http-01
// port, EAB when required — or it says why none can be printed.
func TestExampleFor(t *testing.T) {
	t.Parallel()
	key, chain, err := ca.GenerateSelfSigned("root", v1alpha1.SelfSignedCA{})
	if err != nil {
		t.Fatal(err)
	}
	auth, err := ca.New("root", chain[0], key, nil)
	if err != nil {
		t.Fatal(err)
	}
	profile := func(spec v1alpha1.AcmeProfileSpec) *profile.Profile {
		spec.CertificateAuthority = "root"
		p, err := profile.NewProfile(&v1alpha1.AcmeProfile{ObjectMeta: metav1.ObjectMeta{Name: "default"}, Spec: spec}, map[string]*ca.Authority{"root": auth})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	b, err := builtin()
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		spec             v1alpha1.AcmeProfileSpec
		host             string
		port             int
		eab              bool
		notes, reasonHas string
	}{
		"built-in":          {spec: b.Profiles[0].Spec, host: "app.localhost", port: 5002},
		"any name, port 80": {host: "app.localhost", port: 80, notes: "needs root"},
		"own suffix only": {spec: v1alpha1.AcmeProfileSpec{Identifiers: v1alpha1.IdentifierPolicy{AllowedDNSSuffixes: []string{"corp.example"}},
			Validation: v1alpha1.ValidationSpec{HTTP01Port: 8080}}, host: "app.corp.example", port: 8080, notes: "must resolve to this machine"},
		"localhost denied": {spec: v1alpha1.AcmeProfileSpec{Identifiers: v1alpha1.IdentifierPolicy{AllowedDNSSuffixes: []string{"localhost", "corp.example"},
			DeniedNames: []string{"*.localhost"}}, Validation: v1alpha1.ValidationSpec{HTTP01Port: 8080}}, host: "app.corp.example", port: 8080},
		"eab": {spec: v1alpha1.AcmeProfileSpec{ExternalAccountBinding: &v1alpha1.ExternalAccountBindingPolicy{Required: true},
			Validation: v1alpha1.ValidationSpec{HTTP01Port: 5002}}, host: "app.localhost", port: 5002, eab: true, notes: "external account binding"},
		"dns-01 only": {spec: v1alpha1.AcmeProfileSpec{Validation: v1alpha1.ValidationSpec{ChallengeTypes: []v1alpha1.ChallengeType{v1alpha1.ChallengeDNS01}}},
			reasonHas: "does not offer http-01"},
		"nothing allowed": {spec: v1alpha1.AcmeProfileSpec{Identifiers: v1alpha1.IdentifierPolicy{AllowedDNSSuffixes: []string{"corp.example"},
			DeniedNames: []string{"app.corp.example"}}}, reasonHas: "allows none of app.localhost, app.corp.example"},
	} {
		t.Run(name, func(t *testing.T) {
			ex := ExampleFor(profile(tc.spec))
			if tc.reasonHas != "" {
				if !strings.Contains(ex.Reason, tc.reasonHas) {
					t.Fatalf("reason %q, want it to say %q", ex.Reason, tc.reasonHas)
				}
				return
			}
			if ex.Reason != "" || ex.Name != tc.host || ex.Port != tc.port || ex.EAB != tc.eab {
				t.Fatalf("example %+v, want %s on port %d (eab %v)", ex, tc.host, tc.port, tc.eab)
			}
			if !strings.Contains(strings.Join(ex.Notes, "; "), tc.notes) {
				t.Fatalf("notes %q, want %q", ex.Notes, tc.notes)
			}
		})
	}
}
