package cluster

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/kacme/kacme/acmeserver/acme"
	"github.com/kacme/kacme/acmeserver/ca"
	"github.com/kacme/kacme/acmeserver/profile"
	"github.com/kacme/kacme/api/v1alpha1"
)

func TestServiceFor(t *testing.T) {
	routes := []v1alpha1.ServiceRoute{{Suffix: "apps.example", Namespace: "ingress", Name: "gateway"}}
	for _, tc := range []struct{ host, ns, name string }{
		{"web.team.svc", "team", "web"},
		{"Web.Team.svc.cluster.local.", "team", "web"},
		{"apps.example", "ingress", "gateway"},
		{"a.b.apps.example", "ingress", "gateway"},
		{"xapps.example", "", ""},
		{"web.team.svc.other", "", ""},
		{"team.svc", "", ""},
	} {
		ns, name, ok := ServiceFor(tc.host, routes)
		if ns != tc.ns || name != tc.name || ok != (tc.ns != "") {
			t.Errorf("ServiceFor(%q) = %s/%s %v, want %s/%s", tc.host, ns, name, ok, tc.ns, tc.name)
		}
	}
}

// TestSamplesServeServiceNames (issue 14): the cluster samples (which the
// chart's README says to apply) validate http-01 on port 80 and allow the
// names that map to a Service, short and long, on both directories, and the
// team account may order its Service's names.
func TestSamplesServeServiceNames(t *testing.T) {
	dir := filepath.Join("..", "..", "config", "samples", "cluster")
	files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	key, chain, err := ca.GenerateSelfSigned("internal", v1alpha1.SelfSignedCA{})
	if err != nil {
		t.Fatal(err)
	}
	auth, err := ca.New("internal", chain[0], key, nil)
	if err != nil {
		t.Fatal(err)
	}
	profiles, accounts := 0, 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, doc := range strings.Split(string(data), "\n---") {
			var tm metav1.TypeMeta
			if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			switch tm.Kind {
			case "AcmeProfile":
				var obj v1alpha1.AcmeProfile
				if err := yaml.UnmarshalStrict([]byte(doc), &obj); err != nil {
					t.Fatal(err)
				}
				p, err := profile.NewProfile(&obj, map[string]*ca.Authority{"internal": auth})
				if err != nil {
					t.Fatal(err)
				}
				if port := p.Validation.HTTPPort; port != 0 && port != 80 {
					t.Errorf("profile %s validates http-01 on port %d: a Service's port 80 would not be found", obj.Name, port)
				}
				for _, name := range []string{"web.team-a.svc", "web.team-a.svc.cluster.local"} {
					if _, _, ok := ServiceFor(name, p.Validation.ServiceRoutes); !ok {
						t.Fatalf("%s does not map to a Service", name)
					}
					if pr := p.Allows(acme.Identifier{Type: acme.IdentifierDNS, Value: name}); pr != nil {
						t.Errorf("profile %s refuses %s: %s", obj.Name, name, pr.Detail)
					}
				}
				profiles++
			case "AcmeAccount":
				var obj v1alpha1.AcmeAccount
				if err := yaml.UnmarshalStrict([]byte(doc), &obj); err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(strings.Join(obj.Spec.AllowedIdentifiers, " "), obj.Name+"."+obj.Namespace+".svc") {
					t.Errorf("account %s/%s may not order its Service's name: %v", obj.Namespace, obj.Name, obj.Spec.AllowedIdentifiers)
				}
				accounts++
			}
		}
	}
	if profiles != 2 || accounts != 1 {
		t.Fatalf("found %d profiles and %d accounts in %s", profiles, accounts, dir)
	}
}
