package embedded_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kacme/kacme/acmeserver/storage"
	"github.com/kacme/kacme/acmeserver/storage/embedded"
	"github.com/kacme/kacme/acmeserver/storage/embedded/embeddedtest"
	"github.com/kacme/kacme/acmeserver/storage/storagetest"
	"github.com/kacme/kacme/api/v1alpha1"
)

func TestConformance(t *testing.T) {
	// The default cache, one object per kind (most reads go to the file),
	// and none (every read does).
	for _, limit := range []int{0, 1, -1} {
		t.Run(fmt.Sprintf("cache=%d", limit), func(t *testing.T) {
			storagetest.Run(t, func(t *testing.T) (storage.Store, string) {
				return embeddedtest.Open(t, embedded.Options{CachedObjects: limit}), "default"
			})
		})
	}
}

func TestReopenKeepsEverything(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kacme.db")
	s, err := embedded.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	a := &v1alpha1.AcmeAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "a1",
		Labels: map[string]string{v1alpha1.LabelKeyThumbprint: "tp"}}, Spec: v1alpha1.AcmeAccountSpec{State: "valid"}}
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
	if len(list.Items) != 1 || list.Items[0].Spec.State != "valid" || list.Items[0].ResourceVersion != a.ResourceVersion {
		t.Fatalf("after reopen: %+v", list.Items)
	}
	// A second writer on the same file must fail clearly instead of corrupting it.
	if _, err := embedded.Open(path); err == nil {
		t.Fatal("second Open of a held store succeeded")
	}
}

// TestOpensOlderFile opens a store written before reads moved to memory: it
// carries a label index bucket and its version; the objects are found by
// label all the same (the index is rebuilt in memory) and the old bucket
// is removed.
func TestOpensOlderFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kacme.db")
	o := storagetest.Order("default", "old", "a1")
	o.ResourceVersion, o.APIVersion, o.Kind = "7", v1alpha1.GroupVersion.String(), "AcmeOrder"
	data, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for name, kv := range map[string][2]string{
			"objects/AcmeOrder": {"default/old", string(data)},
			"labels":            {"AcmeOrder\x00default\x00acme.kacme.io/account=a1\x00old", ""},
			"meta":              {"index-version", "2"},
		} {
			b, err := tx.CreateBucket([]byte(name))
			if err != nil {
				return err
			}
			if err := b.Put([]byte(kv[0]), []byte(kv[1])); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := embedded.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	var list v1alpha1.AcmeOrderList
	if err := s.List(context.Background(), storage.AllNamespaces, &list, storage.ListOptions{Labels: map[string]string{v1alpha1.LabelAccount: "a1"}}); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 || list.Items[0].Name != "old" || list.Items[0].ResourceVersion != "7" {
		t.Fatalf("the older file's order by label: %+v", list.Items)
	}
	// New writes continue the file's versions.
	got := list.Items[0]
	got.Status.Status = "ready"
	if err := s.Update(context.Background(), &got); err != nil || got.ResourceVersion == "7" {
		t.Fatalf("update of an object from the older file: %v (version %s)", err, got.ResourceVersion)
	}
	db = closeAndOpenFile(t, s, path)
	_ = db.View(func(tx *bolt.Tx) error {
		if tx.Bucket([]byte("labels")) != nil || tx.Bucket([]byte("meta")).Get([]byte("index-version")) != nil {
			t.Error("the older label index is still in the file")
		}
		return nil
	})
}

// TestCorruptRecordIsQuarantined: a record that does not decode, or whose
// key is not its name, does not stop the store from opening; it is moved,
// bytes intact, to the quarantine bucket and logged, and the rest loads.
func TestCorruptRecordIsQuarantined(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kacme.db")
	s, err := embedded.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, name := range []string{"good", "torn", "moved"} {
		if err := s.Create(ctx, &v1alpha1.AcmeAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	const torn = `{"apiVersion":"acme.kacme.io/v1alpha1","kind":"AcmeAccount","metadata":{"name":"torn","nam`
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("objects/AcmeAccount"))
		moved := append([]byte(nil), b.Get([]byte("default/moved"))...)
		if err := b.Put([]byte("default/torn"), []byte(torn)); err != nil {
			return err
		}
		return b.Put([]byte("default/elsewhere"), moved) // a record under another object's key
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	var logged bytes.Buffer
	s, err = embedded.OpenWith(path, embedded.Options{Log: slog.New(slog.NewTextHandler(&logged, nil))})
	if err != nil {
		t.Fatalf("one corrupt record stopped the store from opening: %v", err)
	}
	q := s.Quarantined()
	if len(q) != 2 || !strings.Contains(logged.String(), "quarantine") || !strings.Contains(logged.String(), "default/torn") {
		t.Fatalf("quarantined %+v; log:\n%s", q, logged.String())
	}
	var a v1alpha1.AcmeAccount
	for name, want := range map[string]bool{"good": true, "moved": true, "torn": false, "elsewhere": false} {
		err := s.Get(ctx, "default", name, &a)
		if (err == nil) != want {
			t.Errorf("Get %s: %v, want found=%v", name, err, want)
		}
	}
	// The store goes on working: the quarantined name can be used again.
	if err := s.Create(ctx, &v1alpha1.AcmeAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "torn"}}); err != nil {
		t.Fatal(err)
	}
	db = closeAndOpenFile(t, s, path)
	_ = db.View(func(tx *bolt.Tx) error {
		if got := tx.Bucket([]byte("quarantine")).Get([]byte("AcmeAccount/default/torn")); string(got) != torn {
			t.Errorf("the quarantined bytes are %q, want them as they were", got)
		}
		return nil
	})
}

// TestWriteAfterClose: a write that comes after Close (a validation that
// outlived a bounded shutdown) fails with ErrClosed instead of panicking.
func TestWriteAfterClose(t *testing.T) {
	s, err := embedded.Open(filepath.Join(t.TempDir(), "kacme.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	err = s.Create(context.Background(), &v1alpha1.AcmeAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "late"}})
	if !errors.Is(err, embedded.ErrClosed) {
		t.Fatalf("write after Close: %v, want ErrClosed", err)
	}
}

// closeAndOpenFile closes the store and opens its file with bbolt itself
// (closed when the test ends), to look at what is in it.
func closeAndOpenFile(t *testing.T, s *embedded.Store, path string) *bolt.DB {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}
