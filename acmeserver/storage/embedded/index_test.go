package embedded

import (
	"sort"
	"strings"
	"testing"

	"github.com/kacme/kacme/acmeserver/storage"
	"github.com/kacme/kacme/acmeserver/storage/storagetest"
)

// TestKindIndexSets: sets move between one inline member and a map as
// objects come and go, ids are reused, and a lookup by a label value no
// object has finds nothing (not every object).
func TestKindIndexSets(t *testing.T) {
	ix := newKindIndex(2)
	names := func(ns string, labels map[string]string) []string {
		var out []string
		ix.match(ns, labels, func(id uint32) {
			_, name := splitKey(ix.slots[id].key)
			out = append(out, name)
		})
		sort.Strings(out)
		return out
	}
	labelsOf := map[string]map[string]string{} // what the store passes as the replaced version's labels
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
	put := func(ns, name, acct string) {
		o := storagetest.Order(ns, name, acct)
		ix.put(ns+"/"+name, o, labelsOf[ns+"/"+name], true)
		labelsOf[ns+"/"+name] = o.Labels
	}
	remove := func(key string) { ix.remove(key, labelsOf[key]); delete(labelsOf, key) }
	put("a", "o1", "x")
	eq(names("a", map[string]string{"acme.kacme.io/account": "x"}), "o1")
	put("a", "o2", "x") // the account set grows from inline to a map
	put("b", "o3", "y")
	eq(names("a", map[string]string{"acme.kacme.io/account": "x"}), "o1", "o2")
	eq(names(storage.AllNamespaces, nil), "o1", "o2", "o3")
	eq(names("a", map[string]string{"acme.kacme.io/account": "nobody"}))
	eq(names("c", nil))
	if ix.cached != 2 {
		t.Fatalf("%d objects cached, want the limit 2", ix.cached)
	}
	remove("a/o1") // back to one member
	eq(names("a", map[string]string{"acme.kacme.io/account": "x"}), "o2")
	put("b", "o1", "y") // reuses o1's id
	if len(ix.slots) != 3 || len(ix.free) != 0 {
		t.Fatalf("%d ids, %d free; want the freed id reused", len(ix.slots), len(ix.free))
	}
	eq(names("b", map[string]string{"acme.kacme.io/account": "y"}), "o1", "o3")
	if id, ok := ix.byName("o1"); !ok || ix.slots[id].key != "b/o1" {
		t.Fatalf("by name: %v %q", ok, ix.slots[id].key)
	}
	put("b", "o1", "z") // a relabelled object leaves its old label's set
	eq(names("b", map[string]string{"acme.kacme.io/account": "y"}), "o3")
	for _, k := range []string{"a/o2", "b/o1", "b/o3"} {
		remove(k)
	}
	if len(ix.ids) != 0 || len(ix.ns) != 0 || len(ix.names) != 0 || len(ix.labels) != 0 || ix.cached != 0 {
		t.Fatalf("empty index keeps %d ids, %d namespaces, %d names, %d label keys, %d cached", len(ix.ids), len(ix.ns), len(ix.names), len(ix.labels), ix.cached)
	}
}

// TestKindIndexCache: the cache keeps at most its limit of decoded objects,
// the most recently written; a write makes an object the newest again; a
// reader's decoded copy is kept only if the object did not change meanwhile.
func TestKindIndexCache(t *testing.T) {
	ix := newKindIndex(2)
	cached := func() []string {
		var out []string
		for _, sl := range ix.slots {
			if sl.obj != nil {
				_, name := splitKey(sl.key)
				out = append(out, name)
			}
		}
		sort.Strings(out)
		return out
	}
	want := func(names ...string) {
		t.Helper()
		if got := cached(); strings.Join(got, ",") != strings.Join(names, ",") || ix.cached != len(names) {
			t.Fatalf("cached %v (count %d), want %v", got, ix.cached, names)
		}
	}
	put := func(name string) { ix.put("a/"+name, storagetest.Order("a", name, "x"), map[string]string{}, true) }
	put("o1")
	put("o2")
	put("o3") // o1 leaves
	want("o2", "o3")
	put("o2") // written again: now the newest
	put("o4") // o3 leaves, not o2
	want("o2", "o4")
	id, _ := ix.lookup("a/o3")
	gen := ix.slots[id].gen
	put("o3") // changed after a reader looked it up...
	ix.cacheRead(id, gen, storagetest.Order("a", "o3", "stale"))
	if o := ix.slots[id].obj; o == nil || o.GetLabels()["acme.kacme.io/account"] != "x" {
		t.Fatalf("a reader's stale copy replaced the written object: %v", o)
	}
	for range 100 { // rewrites leave stale queue entries; the queue stays bounded
		put("o3")
	}
	if len(ix.fifo) > 4*ix.limit+64 {
		t.Fatalf("cache queue holds %d entries for a limit of %d", len(ix.fifo), ix.limit)
	}
	none := newKindIndex(0)
	none.put("a/o1", storagetest.Order("a", "o1", "x"), nil, true)
	if none.cached != 0 || none.slots[0].obj != nil {
		t.Fatal("a zero limit cached an object")
	}
	if s := ix.summary(id); s.Namespace != "a" || s.Name != "o3" || s.Text != "o3.example" {
		t.Fatalf("summary %+v", s)
	}
}
