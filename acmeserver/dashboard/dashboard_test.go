package dashboard_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/kacme/kacme/acmeserver/dashboard"
	"github.com/kacme/kacme/acmeserver/profile"
	"github.com/kacme/kacme/acmeserver/storage/embedded"
	"github.com/kacme/kacme/acmeserver/storage/storagetest"
	"github.com/kacme/kacme/api/v1alpha1"
)

type noRA struct{}

func (noRA) Config() *profile.Config { return &profile.Config{} }
func (noRA) RevokeAsAdmin(context.Context, string, string, int, string) (bool, error) {
	return false, nil
}
func (noRA) DeactivateAsAdmin(context.Context, string, string, string) (bool, error) {
	return false, nil
}
func (noRA) Chains(c *v1alpha1.AcmeCertificate) ([][]byte, error) {
	return [][]byte{[]byte(c.Spec.Certificate)}, nil
}
func (noRA) OrderAuthorizations(context.Context, *v1alpha1.AcmeOrder) ([]*v1alpha1.AcmeChallenge, error) {
	return nil, nil
}

// TestOrderPagesPartitionTheOrders: orders created within the same second
// (the resolution of creation timestamps), listed by a store in no
// particular order, appear on exactly one page each, newest first.
func TestOrderPagesPartitionTheOrders(t *testing.T) {
	dir := t.TempDir()
	store, err := embedded.Open(filepath.Join(dir, "kacme.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = store.Close() }()
	const n = 120
	for i := 0; i < n; i++ {
		if err := store.Create(context.Background(), storagetest.Order("default", fmt.Sprintf("o%03d", i), "a1")); err != nil {
			t.Fatal(err)
		}
	}
	token, _, err := dashboard.LoadOrCreateToken(dir)
	if err != nil {
		t.Fatal(err)
	}
	d, err := dashboard.New(dashboard.Options{Store: store, RA: noRA{}, Auth: token})
	if err != nil {
		t.Fatal(err)
	}
	cookie := signIn(t, d, token.Token(), "192.0.2.1:1234")
	link := regexp.MustCompile(`href="/dashboard/orders/default/(o\d+)"`)
	seen := map[string]int{}
	for page := 1; page <= 3; page++ {
		req := httptest.NewRequest(http.MethodGet, fmt.Sprintf("/dashboard/orders?page=%d", page), nil)
		req.AddCookie(cookie)
		rec := httptest.NewRecorder()
		d.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			t.Fatalf("page %d: %d %s", page, rec.Code, rec.Body)
		}
		for _, m := range link.FindAllStringSubmatch(rec.Body.String(), -1) {
			seen[m[1]]++
		}
	}
	if len(seen) != n {
		t.Fatalf("three pages of 50 showed %d distinct orders of %d", len(seen), n)
	}
	for name, k := range seen {
		if k != 1 {
			t.Fatalf("order %s on %d pages", name, k)
		}
	}
}
