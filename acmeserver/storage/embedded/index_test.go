package embedded

import (
	"sort"
	"testing"

	"github.com/kacme/kacme/acmeserver/storage"
	"github.com/kacme/kacme/acmeserver/storage/storagetest"
)

// TestKindIndexSets: sets move between one inline member and a map as
// objects come and go, ids are reused, and a lookup by a label value no
// object has finds nothing (not every object).
func TestKindIndexSets(t *testing.T) {
	ix := newKindIndex()
	names := func(ns string, labels map[string]string) []string {
		var out []string
		ix.list(ns, labels, func(o storage.Object) {
			if matches(o.GetLabels(), labels) && (ns == storage.AllNamespaces || o.GetNamespace() == ns) {
				out = append(out, o.GetName())
			}
		})
		sort.Strings(out)
		return out
	}
	eq := func(got []string, want ...string) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("got %v, want %v", got, want)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("got %v, want %v", got, want)
			}
		}
	}
	put := func(ns, name, acct string) { ix.put(ns+"/"+name, storagetest.Order(ns, name, acct)) }
	put("a", "o1", "x")
	eq(names("a", map[string]string{"acme.kacme.io/account": "x"}), "o1")
	put("a", "o2", "x") // the account set grows from inline to a map
	put("b", "o3", "y")
	eq(names("a", map[string]string{"acme.kacme.io/account": "x"}), "o1", "o2")
	eq(names(storage.AllNamespaces, nil), "o1", "o2", "o3")
	eq(names("a", map[string]string{"acme.kacme.io/account": "nobody"}))
	eq(names("c", nil))
	ix.remove("a/o1") // back to one member
	eq(names("a", map[string]string{"acme.kacme.io/account": "x"}), "o2")
	put("b", "o1", "y") // reuses o1's id
	if len(ix.objs) != 3 || len(ix.free) != 0 {
		t.Fatalf("%d ids, %d free; want the freed id reused", len(ix.objs), len(ix.free))
	}
	eq(names("b", map[string]string{"acme.kacme.io/account": "y"}), "o1", "o3")
	if o := ix.byName("o1"); o == nil || o.GetNamespace() != "b" {
		t.Fatalf("by name: %v", o)
	}
	put("b", "o1", "z") // a relabelled object leaves its old label's set
	eq(names("b", map[string]string{"acme.kacme.io/account": "y"}), "o3")
	for _, k := range []string{"a/o2", "b/o1", "b/o3"} {
		ix.remove(k)
	}
	if len(ix.ids) != 0 || len(ix.ns) != 0 || len(ix.names) != 0 || len(ix.labels) != 0 {
		t.Fatalf("empty index keeps %d ids, %d namespaces, %d names, %d label keys", len(ix.ids), len(ix.ns), len(ix.names), len(ix.labels))
	}
}
