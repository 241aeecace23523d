// Package storagetest is the conformance suite every storage backend must pass.
package storagetest

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kacme/kacme/acmeserver/storage"
	"github.com/kacme/kacme/api/v1alpha1"
)

// Factory returns a fresh, empty store and the namespace to use; the
// namespace ns+"-b" must exist too (AllNamespaces tests).
type Factory func(t *testing.T) (storage.Store, string)

// Run runs the conformance suite against the backend.
func Run(t *testing.T, newStore Factory) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(*testing.T, storage.Store, string)
	}{
		{"CreateGet", testCreateGet},
		{"CreateDuplicate", testCreateDuplicate},
		{"GetMissing", testGetMissing},
		{"UpdateCAS", testUpdateCAS},
		{"UpdateMissing", testUpdateMissing},
		{"DeleteCAS", testDeleteCAS},
		{"ListLabels", testListLabels},
		{"LabelIndexFollowsUpdates", testLabelIndexFollowsUpdates},
		{"KindsAndNamespacesAreSeparate", testSeparation},
		{"ConcurrentCAS", testConcurrentCAS},
		{"ConcurrentCreateSameName", testConcurrentCreate},
		{"FieldsClearedOnUpdate", testFieldsCleared},
		{"AllNamespaces", testAllNamespaces},
		{"ReadersGetCopies", testReadersGetCopies},
		{"Summaries", testSummaries},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, ns := newStore(t)
			tc.fn(t, s, ns)
		})
	}
}

// Order is a realistic order: it satisfies the CRD schema, as backends on a
// real API server require.
func Order(ns, name, account string) *v1alpha1.AcmeOrder {
	expires := metav1.NewTime(time.Now().Add(time.Hour).UTC().Truncate(time.Second))
	id := v1alpha1.Identifier{Type: "dns", Value: name + ".example"}
	return &v1alpha1.AcmeOrder{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{v1alpha1.LabelAccount: account,
			v1alpha1.LabelProfile: "default"}}, // as the RA labels an order
		Spec: v1alpha1.AcmeOrderSpec{Account: account, Profile: "default", IssuanceProfile: "default",
			Identifiers: []v1alpha1.Identifier{id}},
		Status: v1alpha1.AcmeOrderStatus{Status: "pending", Expires: expires, Authorizations: []string{name + "-authz"}},
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func testCreateGet(t *testing.T, s storage.Store, ns string) {
	ctx := context.Background()
	o := Order(ns, "o1", "a1")
	must(t, s.Create(ctx, o))
	if o.ResourceVersion == "" {
		t.Fatal("Create did not set resourceVersion")
	}
	var got v1alpha1.AcmeOrder
	must(t, s.Get(ctx, ns, "o1", &got))
	if got.ResourceVersion != o.ResourceVersion || got.Spec.Identifiers[0].Value != "o1.example" || got.Status.Status != "pending" {
		t.Fatalf("Get returned %+v, want what was created (%s)", got, o.ResourceVersion)
	}
}

func testCreateDuplicate(t *testing.T, s storage.Store, ns string) {
	ctx := context.Background()
	must(t, s.Create(ctx, Order(ns, "dup", "a1")))
	err := s.Create(ctx, Order(ns, "dup", "a2"))
	if !storage.IsAlreadyExists(err) {
		t.Fatalf("second Create: got %v, want ErrAlreadyExists", err)
	}
	var got v1alpha1.AcmeOrder
	must(t, s.Get(ctx, ns, "dup", &got))
	if got.Spec.Account != "a1" {
		t.Fatalf("failed Create changed the stored object: account %q", got.Spec.Account)
	}
}

func testGetMissing(t *testing.T, s storage.Store, ns string) {
	var got v1alpha1.AcmeOrder
	if err := s.Get(context.Background(), ns, "nope", &got); !storage.IsNotFound(err) {
		t.Fatalf("got %v, want ErrNotFound", err)
	}
}

func testUpdateCAS(t *testing.T, s storage.Store, ns string) {
	ctx := context.Background()
	o := Order(ns, "cas", "a1")
	must(t, s.Create(ctx, o))
	stale := o.DeepCopy()
	o.Status.Status = "ready"
	must(t, s.Update(ctx, o))
	if o.ResourceVersion == stale.ResourceVersion {
		t.Fatal("Update did not change resourceVersion")
	}
	stale.Status.Status = "invalid"
	if err := s.Update(ctx, stale); !storage.IsConflict(err) {
		t.Fatalf("stale Update: got %v, want ErrConflict", err)
	}
	var got v1alpha1.AcmeOrder
	must(t, s.Get(ctx, ns, "cas", &got))
	if got.Status.Status != "ready" {
		t.Fatalf("stale Update changed state to %q", got.Status.Status)
	}
}

func testUpdateMissing(t *testing.T, s storage.Store, ns string) {
	o := Order(ns, "ghost", "a1")
	o.ResourceVersion = "1"
	if err := s.Update(context.Background(), o); !storage.IsNotFound(err) && !storage.IsConflict(err) {
		t.Fatalf("got %v, want ErrNotFound", err)
	}
}

func testDeleteCAS(t *testing.T, s storage.Store, ns string) {
	ctx := context.Background()
	o := Order(ns, "del", "a1")
	must(t, s.Create(ctx, o))
	stale := o.DeepCopy()
	o.Status.Status = "ready" // a real change: the API server does not bump the version of a no-op update
	must(t, s.Update(ctx, o))
	if err := s.Delete(ctx, stale); !storage.IsConflict(err) {
		t.Fatalf("stale Delete: got %v, want ErrConflict", err)
	}
	must(t, s.Delete(ctx, o))
	var got v1alpha1.AcmeOrder
	if err := s.Get(ctx, ns, "del", &got); !storage.IsNotFound(err) {
		t.Fatalf("after Delete: got %v, want ErrNotFound", err)
	}
	var list v1alpha1.AcmeOrderList
	must(t, s.List(ctx, ns, &list, storage.ListOptions{Labels: map[string]string{v1alpha1.LabelAccount: "a1"}}))
	if len(list.Items) != 0 {
		t.Fatalf("deleted object still listed: %v", list.Items)
	}
}

func names(items []v1alpha1.AcmeOrder) map[string]bool {
	m := map[string]bool{}
	for _, i := range items {
		m[i.Name] = true
	}
	return m
}

func testListLabels(t *testing.T, s storage.Store, ns string) {
	ctx := context.Background()
	for i, acct := range []string{"a1", "a1", "a2"} {
		o := Order(ns, fmt.Sprintf("l%d", i), acct)
		o.Labels[v1alpha1.LabelState] = map[bool]string{true: "even", false: "odd"}[i%2 == 0]
		must(t, s.Create(ctx, o))
	}
	var all v1alpha1.AcmeOrderList
	must(t, s.List(ctx, ns, &all, storage.ListOptions{}))
	if len(all.Items) != 3 {
		t.Fatalf("List all: %d items, want 3", len(all.Items))
	}
	var a1 v1alpha1.AcmeOrderList
	must(t, s.List(ctx, ns, &a1, storage.ListOptions{Labels: map[string]string{v1alpha1.LabelAccount: "a1"}}))
	if n := names(a1.Items); len(n) != 2 || !n["l0"] || !n["l1"] {
		t.Fatalf("List a1: %v", n)
	}
	var both v1alpha1.AcmeOrderList
	must(t, s.List(ctx, ns, &both, storage.ListOptions{Labels: map[string]string{v1alpha1.LabelAccount: "a1", v1alpha1.LabelState: "even"}}))
	if n := names(both.Items); len(n) != 1 || !n["l0"] {
		t.Fatalf("List a1+even: %v", n)
	}
}

func testLabelIndexFollowsUpdates(t *testing.T, s storage.Store, ns string) {
	ctx := context.Background()
	o := Order(ns, "moves", "a1")
	must(t, s.Create(ctx, o))
	o.Labels[v1alpha1.LabelAccount] = "a9"
	must(t, s.Update(ctx, o))
	var old, cur v1alpha1.AcmeOrderList
	must(t, s.List(ctx, ns, &old, storage.ListOptions{Labels: map[string]string{v1alpha1.LabelAccount: "a1"}}))
	must(t, s.List(ctx, ns, &cur, storage.ListOptions{Labels: map[string]string{v1alpha1.LabelAccount: "a9"}}))
	if len(old.Items) != 0 || len(cur.Items) != 1 {
		t.Fatalf("label index stale after relabel: old=%d new=%d", len(old.Items), len(cur.Items))
	}
}

func testSeparation(t *testing.T, s storage.Store, ns string) {
	ctx := context.Background()
	must(t, s.Create(ctx, Order(ns, "same", "a1")))
	acct := &v1alpha1.AcmeAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "same", Labels: map[string]string{v1alpha1.LabelAccount: "a1"}},
		Spec: v1alpha1.AcmeAccountSpec{Profile: "default"}}
	must(t, s.Create(ctx, acct))
	var accts v1alpha1.AcmeAccountList
	must(t, s.List(ctx, ns, &accts, storage.ListOptions{Labels: map[string]string{v1alpha1.LabelAccount: "a1"}}))
	if len(accts.Items) != 1 {
		t.Fatalf("kinds leak into each other's lists: %d accounts", len(accts.Items))
	}
	var other v1alpha1.AcmeOrderList
	must(t, s.List(ctx, ns+"-other", &other, storage.ListOptions{}))
	if len(other.Items) != 0 {
		t.Fatalf("namespaces leak: %d orders in another namespace", len(other.Items))
	}
}

// testAllNamespaces finds objects by name and by label in every namespace;
// other tests may share the backend, so names and labels are unique here.
func testAllNamespaces(t *testing.T, s storage.Store, ns string) {
	ctx := context.Background()
	nsB := ns + "-b"
	acct := ns + "-acct"
	must(t, s.Create(ctx, Order(ns, ns+"-o1", acct)))
	must(t, s.Create(ctx, Order(nsB, ns+"-o2", acct)))
	must(t, s.Create(ctx, Order(nsB, ns+"-o3", ns+"-other")))
	var got v1alpha1.AcmeOrder
	must(t, s.Get(ctx, storage.AllNamespaces, ns+"-o2", &got))
	if got.Namespace != nsB || got.Spec.Account != acct {
		t.Fatalf("Get in all namespaces found %s/%s (account %s), want %s/%s-o2", got.Namespace, got.Name, got.Spec.Account, nsB, ns)
	}
	if err := s.Get(ctx, storage.AllNamespaces, ns+"-missing", &got); !storage.IsNotFound(err) {
		t.Fatalf("Get of a missing name in all namespaces: %v, want not found", err)
	}
	var list v1alpha1.AcmeOrderList
	must(t, s.List(ctx, storage.AllNamespaces, &list, storage.ListOptions{Labels: map[string]string{v1alpha1.LabelAccount: acct}}))
	found := map[string]bool{}
	for _, o := range list.Items {
		found[o.Namespace+"/"+o.Name] = true
	}
	if len(list.Items) != 2 || !found[ns+"/"+ns+"-o1"] || !found[nsB+"/"+ns+"-o2"] {
		t.Fatalf("List in all namespaces by label = %v, want %s/%s-o1 and %s/%s-o2", found, ns, ns, nsB, ns)
	}
	// The index follows a deletion.
	o2 := got
	must(t, s.Get(ctx, nsB, ns+"-o2", &o2))
	must(t, s.Delete(ctx, &o2))
	if err := s.Get(ctx, storage.AllNamespaces, ns+"-o2", &got); !storage.IsNotFound(err) {
		t.Fatalf("Get after delete in all namespaces: %v, want not found", err)
	}
	list = v1alpha1.AcmeOrderList{}
	must(t, s.List(ctx, storage.AllNamespaces, &list, storage.ListOptions{Labels: map[string]string{v1alpha1.LabelAccount: acct}}))
	if len(list.Items) != 1 {
		t.Fatalf("List in all namespaces after delete: %d items, want 1", len(list.Items))
	}
}

// testConcurrentCAS has many writers increment a counter through
// read-modify-write with retries on conflict: no increment may be lost, and
// conflicts must actually be reported.
func testConcurrentCAS(t *testing.T, s storage.Store, ns string) {
	ctx := context.Background()
	o := Order(ns, "counter", "a1")
	must(t, s.Create(ctx, o))
	const writers, each = 8, 15
	var conflicts atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				for {
					var cur v1alpha1.AcmeOrder
					if err := s.Get(ctx, ns, "counter", &cur); err != nil {
						errs <- err
						return
					}
					cur.Status.Authorizations = append(cur.Status.Authorizations, "x") // (an order's spec is immutable)
					err := s.Update(ctx, &cur)
					if err == nil {
						break
					}
					if !storage.IsConflict(err) {
						errs <- err
						return
					}
					conflicts.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var got v1alpha1.AcmeOrder
	must(t, s.Get(ctx, ns, "counter", &got))
	if n := len(got.Status.Authorizations) - 1; n != writers*each {
		t.Fatalf("lost updates: %d increments stored, want %d", n, writers*each)
	}
	if conflicts.Load() == 0 {
		t.Log("no conflicts observed (writers never overlapped)")
	}
}

func testConcurrentCreate(t *testing.T, s storage.Store, ns string) {
	ctx := context.Background()
	const n = 10
	var wins atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			err := s.Create(ctx, Order(ns, "race", fmt.Sprintf("a%d", i)))
			switch {
			case err == nil:
				wins.Add(1)
			case !errors.Is(err, storage.ErrAlreadyExists):
				t.Errorf("Create: %v", err)
			}
		}(i)
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d concurrent Creates of one name succeeded, want 1", wins.Load())
	}
}

func testFieldsCleared(t *testing.T, s storage.Store, ns string) {
	ctx := context.Background()
	o := Order(ns, "clear", "a1")
	o.Status.Error = &v1alpha1.Problem{Type: "x"}
	must(t, s.Create(ctx, o))
	o.Status.Error = nil
	must(t, s.Update(ctx, o))
	got := Order(ns, "junk", "zz") // a non-empty target must be overwritten, not merged
	got.Status.Error = &v1alpha1.Problem{Type: "stale"}
	must(t, s.Get(ctx, ns, "clear", got))
	if got.Status.Error != nil || got.Name != "clear" {
		t.Fatalf("Get merged into its target or kept a cleared field: %+v", got.Status.Error)
	}
}

// testReadersGetCopies changes what Get and List returned: the store must
// not change with it (a backend that keeps objects in memory hands out
// copies); a Shared List sees the same objects.
func testReadersGetCopies(t *testing.T, s storage.Store, ns string) {
	ctx := context.Background()
	// Other tests may share the backend and Get looks in every namespace
	// below: the name and label are unique.
	acct, name := ns+"-copies", ns+"-copy"
	must(t, s.Create(ctx, Order(ns, name, acct)))
	var got v1alpha1.AcmeOrder
	must(t, s.Get(ctx, ns, name, &got))
	got.Labels[v1alpha1.LabelAccount] = "changed"
	got.Spec.Identifiers[0].Value = "changed"
	var list v1alpha1.AcmeOrderList
	must(t, s.List(ctx, ns, &list, storage.ListOptions{Labels: map[string]string{v1alpha1.LabelAccount: acct}}))
	if len(list.Items) != 1 || list.Items[0].Spec.Identifiers[0].Value != name+".example" {
		t.Fatalf("changing what Get returned changed the store: %+v", list.Items)
	}
	list.Items[0].Status.Authorizations[0] = "changed"
	var shared v1alpha1.AcmeOrderList
	must(t, s.List(ctx, ns, &shared, storage.ListOptions{Labels: map[string]string{v1alpha1.LabelAccount: acct}, Shared: true}))
	if len(shared.Items) != 1 || shared.Items[0].Status.Authorizations[0] != name+"-authz" || shared.Items[0].Name != name {
		t.Fatalf("changing what List returned changed the store, or a shared List differs: %+v", shared.Items)
	}
	must(t, s.Get(ctx, storage.AllNamespaces, name, &got))
	if got.Labels[v1alpha1.LabelAccount] != acct || got.Spec.Identifiers[0].Value != name+".example" {
		t.Fatalf("Get after changes to earlier results: %+v", got)
	}
}

// checkVisit: storage.VisitSummaries hands out what ListSummaries lists, in
// namespace ns and in all of them.
func checkVisit(t *testing.T, s storage.Store, ns string) {
	t.Helper()
	ctx := context.Background()
	for _, where := range []string{ns, storage.AllNamespaces} {
		listed, err := storage.ListSummaries(ctx, s, where, "AcmeOrder", nil)
		must(t, err)
		want := map[string]storage.Summary{}
		for _, sum := range listed {
			want[sum.Namespace+"/"+sum.Name] = sum
		}
		visited := 0
		must(t, storage.VisitSummaries(ctx, s, where, "AcmeOrder", func(sum *storage.Summary) {
			visited++
			if w, ok := want[sum.Namespace+"/"+sum.Name]; !ok || !w.Created.Equal(sum.Created) || w.Status != sum.Status || w.Text != sum.Text {
				t.Errorf("visited %+v, listed %+v", *sum, w)
			}
		}))
		if visited != len(want) {
			t.Fatalf("visited %d summaries in %q, listed %d", visited, where, len(want))
		}
	}
}

// testSummaries: storage.ListSummaries agrees with Summarize over List, for
// a label and a namespace, after updates that change labels and status and
// after a delete.
func testSummaries(t *testing.T, s storage.Store, ns string) {
	ctx := context.Background()
	acct := ns + "-sum"
	var names []string
	for i := range 4 {
		o := Order(ns, fmt.Sprintf("%s-%d", acct, i), acct)
		must(t, s.Create(ctx, o))
		names = append(names, o.Name)
	}
	var o v1alpha1.AcmeOrder
	must(t, s.Get(ctx, ns, names[1], &o))
	o.Status.Status = "valid"
	must(t, s.Update(ctx, &o))
	must(t, s.Get(ctx, ns, names[2], &o))
	o.Labels[v1alpha1.LabelAccount] = acct + "-moved"
	must(t, s.Update(ctx, &o))
	must(t, s.Get(ctx, ns, names[3], &o))
	must(t, s.Delete(ctx, &o))
	check := func(labels map[string]string, want ...string) {
		t.Helper()
		var list v1alpha1.AcmeOrderList
		must(t, s.List(ctx, ns, &list, storage.ListOptions{Labels: labels}))
		byName := map[string]storage.Summary{}
		for i := range list.Items {
			byName[list.Items[i].Name] = storage.Summarize(&list.Items[i])
		}
		got, err := storage.ListSummaries(ctx, s, ns, "AcmeOrder", labels)
		must(t, err)
		var gotNames []string
		for _, sum := range got {
			if !strings.HasPrefix(sum.Name, acct) {
				continue
			}
			gotNames = append(gotNames, sum.Name)
			w, ok := byName[sum.Name]
			if !ok || !sum.Created.Equal(w.Created) || !sum.At.Equal(w.At) || sum.Created.IsZero() || sum.At.IsZero() {
				t.Fatalf("summary %+v, listed object's %+v", sum, w)
			}
			sum.Created, sum.At, w.Created, w.At = time.Time{}, time.Time{}, time.Time{}, time.Time{}
			if sum != w {
				t.Fatalf("summary %+v, listed object's %+v", sum, w)
			}
		}
		sort.Strings(gotNames)
		if strings.Join(gotNames, ",") != strings.Join(want, ",") {
			t.Fatalf("summaries of %v: %v, want %v", labels, gotNames, want)
		}
	}
	check(map[string]string{v1alpha1.LabelAccount: acct}, names[0], names[1])
	check(map[string]string{v1alpha1.LabelAccount: acct + "-moved"}, names[2])
	check(nil, names[0], names[1], names[2])
	checkVisit(t, s, ns)
	got, err := storage.ListSummaries(ctx, s, ns, "AcmeOrder", map[string]string{v1alpha1.LabelAccount: acct})
	must(t, err)
	for _, sum := range got {
		if sum.Name == names[1] && sum.Status != "valid" || sum.Profile != "default" || sum.Text != sum.Name+".example" {
			t.Fatalf("summary %+v", sum)
		}
	}
	counts, err := storage.CountByNamespace(ctx, s, "AcmeOrder")
	must(t, err)
	var all v1alpha1.AcmeOrderList
	must(t, s.List(ctx, ns, &all, storage.ListOptions{}))
	if counts[ns] != len(all.Items) || len(all.Items) == 0 {
		t.Fatalf("CountByNamespace says %d in %s, List finds %d", counts[ns], ns, len(all.Items))
	}
}
