package cluster

import (
	"testing"

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
