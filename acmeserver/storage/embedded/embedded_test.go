package embedded_test

import (
	"context"
	"path/filepath"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kacme/kacme/acmeserver/storage"
	"github.com/kacme/kacme/acmeserver/storage/embedded"
	"github.com/kacme/kacme/acmeserver/storage/storagetest"
	"github.com/kacme/kacme/api/v1alpha1"
)

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) (storage.Store, string) {
		s, err := embedded.Open(filepath.Join(t.TempDir(), "kacme.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s, "default"
	})
}

func TestReopenKeepsEverything(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kacme.db")
	s, err := embedded.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	a := &v1alpha1.AcmeAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "a1",
		Labels: map[string]string{v1alpha1.LabelKeyThumbprint: "tp"}}, Status: v1alpha1.AcmeAccountStatus{Status: "valid"}}
	if err := s.Create(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = embedded.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var list v1alpha1.AcmeAccountList
	if err := s.List(ctx, "default", &list, storage.ListOptions{Labels: map[string]string{v1alpha1.LabelKeyThumbprint: "tp"}}); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 || list.Items[0].Status.Status != "valid" || list.Items[0].ResourceVersion != a.ResourceVersion {
		t.Fatalf("after reopen: %+v", list.Items)
	}
	// A second writer on the same file must fail clearly instead of corrupting it.
	if _, err := embedded.Open(path); err == nil {
		t.Fatal("second Open of a held store succeeded")
	}
}
