package metrics

import (
	"net/http"
	"testing"
)

func TestAPIVerb(t *testing.T) {
	for _, tc := range []struct{ method, url, verb, resource string }{
		{"GET", "/apis/acme.kacme.io/v1alpha1/namespaces/a/acmeorders/x", "get", "acmeorders"},
		{"GET", "/apis/acme.kacme.io/v1alpha1/acmeorders?limit=500", "list", "acmeorders"},
		{"GET", "/apis/acme.kacme.io/v1alpha1/acmeorders?watch=true&resourceVersion=5", "watch", "acmeorders"},
		{"POST", "/apis/acme.kacme.io/v1alpha1/namespaces/a/acmeorders", "create", "acmeorders"},
		{"PUT", "/apis/acme.kacme.io/v1alpha1/namespaces/a/acmeorders/x", "update", "acmeorders"},
		{"PUT", "/apis/acme.kacme.io/v1alpha1/acmeprofiles/p/status", "update", "acmeprofiles/status"},
		{"PATCH", "/api/v1/namespaces/a/secrets/s", "patch", "secrets"},
		{"DELETE", "/api/v1/namespaces/a/secrets/s", "delete", "secrets"},
		{"GET", "/api/v1/namespaces/a", "get", "namespaces"},
		{"GET", "/version", "get", "other"},
	} {
		req, _ := http.NewRequest(tc.method, "https://api.example"+tc.url, nil)
		if v, r := APIVerb(req); v != tc.verb || r != tc.resource {
			t.Errorf("%s %s = %s %s, want %s %s", tc.method, tc.url, v, r, tc.verb, tc.resource)
		}
	}
}
