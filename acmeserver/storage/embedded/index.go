package embedded

import (
	"strings"
	"time"

	"github.com/kacme/kacme/acmeserver/storage"
)

// kindIndex is what the store keeps in memory about the objects of one
// kind: each object's key and summary, the sets of objects by namespace, by
// name and by each label value, and a bounded cache of decoded objects (the
// recently written and read ones); an object out of the cache is read from
// the file when asked for. Each object has a small integer id; a set holds
// ids, and the many sets of one member (a name, an order label) hold it
// inline instead of in a map of their own. So memory grows by a few hundred
// bytes per stored object, not by the object (issue 17: 100,000 issuances
// in 1 GiB).
type kindIndex struct {
	ids    map[string]uint32 // "namespace/name" → id
	slots  []slot            // by id; key "" for a free id
	free   []uint32
	ns     map[string]idSet
	names  map[string]idSet
	labels map[string]map[string]idSet // label key → value → ids

	// The cache: at most limit slots hold their decoded object; fifo holds
	// (id, gen) in the order objects entered it, the oldest leaving first.
	// An entry whose slot has since changed (another gen) is stale and skipped.
	limit  int
	cached int
	fifo   []cacheRef
	intern map[string]string
}

type slot struct {
	key string
	// obj is the decoded object while it is cached. Shared with readers:
	// replaced on write, never changed.
	obj storage.Object
	// gen changes on every write of the slot, so that a reader that decoded
	// the object from the file caches it only if it is still current.
	gen uint32
	sum summary
}

type cacheRef struct{ id, gen uint32 }

// summary is storage.Summary without the namespace and name (in the key),
// with times in seconds (what the store keeps of them) and the few-valued
// strings interned.
type summary struct {
	created, at     int64
	status, profile string
	text            string
	offered         int32
}

func newKindIndex(limit int) *kindIndex {
	return &kindIndex{ids: map[string]uint32{}, ns: map[string]idSet{}, names: map[string]idSet{},
		labels: map[string]map[string]idSet{}, limit: limit, intern: map[string]string{}}
}

// idSet is a set of ids: one inline, more in a map.
type idSet struct {
	one  uint32
	many map[uint32]struct{} // nil while the set has one member
}

func (s idSet) len() int {
	if s.many != nil {
		return len(s.many)
	}
	return 1
}

func (s idSet) has(id uint32) bool {
	if s.many == nil {
		return s.one == id
	}
	_, ok := s.many[id]
	return ok
}

func (s idSet) each(fn func(uint32)) {
	if s.many == nil {
		fn(s.one)
		return
	}
	for id := range s.many {
		fn(id)
	}
}

// add puts id in the set stored under k in m.
func add(m map[string]idSet, k string, id uint32) {
	s, ok := m[k]
	switch {
	case !ok:
		s = idSet{one: id}
	case s.many == nil:
		if s.one == id {
			return
		}
		s.many = map[uint32]struct{}{s.one: {}, id: {}}
	default:
		s.many[id] = struct{}{}
	}
	m[k] = s
}

// del takes id out of the set stored under k in m, dropping an empty set.
func del(m map[string]idSet, k string, id uint32) {
	s, ok := m[k]
	if !ok {
		return
	}
	if s.many == nil {
		if s.one == id {
			delete(m, k)
		}
		return
	}
	delete(s.many, id)
	if len(s.many) == 1 {
		for rest := range s.many {
			s = idSet{one: rest}
		}
	}
	m[k] = s
}

// splitKey returns a key's namespace and name.
func splitKey(key string) (ns, name string) {
	ns, name, _ = strings.Cut(key, "/")
	return ns, name
}

func (ix *kindIndex) lookup(key string) (uint32, bool) {
	id, ok := ix.ids[key]
	return id, ok
}

// byName returns the id of an object called name in any namespace.
func (ix *kindIndex) byName(name string) (uint32, bool) {
	set, ok := ix.names[name]
	if !ok {
		return 0, false
	}
	var out uint32
	found := false
	set.each(func(id uint32) {
		if !found {
			out, found = id, true
		}
	})
	return out, found
}

// internStr returns the index's copy of a few-valued string (a status, a
// profile), so that 100,000 summaries share a handful of them.
func (ix *kindIndex) internStr(s string) string {
	if v, ok := ix.intern[s]; ok {
		return v
	}
	if len(ix.intern) < 4096 {
		ix.intern[s] = s
	}
	return s
}

func (ix *kindIndex) summarize(obj storage.Object) summary {
	s := storage.Summarize(obj)
	sum := summary{created: s.Created.Unix(), status: ix.internStr(s.Status), profile: ix.internStr(s.Profile), text: s.Text, offered: int32(s.Offered)}
	if !s.At.IsZero() {
		sum.at = s.At.Unix()
	}
	return sum
}

func (ix *kindIndex) summary(id uint32) storage.Summary {
	sl := &ix.slots[id]
	ns, name := splitKey(sl.key)
	out := storage.Summary{Namespace: ns, Name: name, Created: time.Unix(sl.sum.created, 0).UTC(),
		Status: sl.sum.status, Profile: sl.sum.profile, Text: sl.sum.text, Offered: int(sl.sum.offered)}
	if sl.sum.at != 0 {
		out.At = time.Unix(sl.sum.at, 0).UTC()
	}
	return out
}

// put records the object stored under key; old are the labels of the
// version it replaces (nil for a new object). With cache, the decoded
// object stays in memory (it was just written: likely read next).
func (ix *kindIndex) put(key string, obj storage.Object, old map[string]string, cache bool) {
	id, ok := ix.ids[key]
	if ok {
		ix.dropLabels(id, old)
	} else {
		if n := len(ix.free); n > 0 {
			id, ix.free = ix.free[n-1], ix.free[:n-1]
		} else {
			id = uint32(len(ix.slots))
			ix.slots = append(ix.slots, slot{})
		}
		ix.ids[key] = id
		ns, name := splitKey(key)
		add(ix.ns, ix.internStr(ns), id)
		add(ix.names, name, id)
		ix.slots[id].key = key
	}
	sl := &ix.slots[id]
	sl.gen++
	sl.sum = ix.summarize(obj)
	ix.setCached(id, nil)
	if cache {
		ix.setCached(id, obj)
	}
	for k, v := range obj.GetLabels() {
		vals := ix.labels[k]
		if vals == nil {
			vals = map[string]idSet{}
			ix.labels[k] = vals
		}
		add(vals, v, id)
	}
}

func (ix *kindIndex) dropLabels(id uint32, labels map[string]string) {
	for k, v := range labels {
		if vals := ix.labels[k]; vals != nil {
			del(vals, v, id)
			if len(vals) == 0 {
				delete(ix.labels, k)
			}
		}
	}
}

// remove forgets the object stored under key; old are its labels.
func (ix *kindIndex) remove(key string, old map[string]string) {
	id, ok := ix.ids[key]
	if !ok {
		return
	}
	ns, name := splitKey(key)
	del(ix.ns, ns, id)
	del(ix.names, name, id)
	ix.dropLabels(id, old)
	ix.setCached(id, nil)
	delete(ix.ids, key)
	gen := ix.slots[id].gen + 1
	ix.slots[id] = slot{gen: gen}
	ix.free = append(ix.free, id)
}

// setCached puts obj in id's slot (nil: takes it out) and evicts the
// oldest cached objects over the limit.
func (ix *kindIndex) setCached(id uint32, obj storage.Object) {
	sl := &ix.slots[id]
	switch {
	case obj == nil && sl.obj != nil:
		ix.cached--
	case obj != nil && sl.obj == nil:
		ix.cached++
	}
	sl.obj = obj
	if obj == nil {
		return
	}
	ix.fifo = append(ix.fifo, cacheRef{id: id, gen: sl.gen})
	for ix.cached > ix.limit && len(ix.fifo) > 0 {
		ref := ix.fifo[0]
		ix.fifo = ix.fifo[1:]
		if s := &ix.slots[ref.id]; s.gen == ref.gen && s.obj != nil {
			s.obj = nil
			ix.cached--
		}
	}
	if len(ix.fifo) > 4*ix.limit+64 {
		// Mostly stale entries (objects written again or removed since):
		// keep the live ones, in order, in a fresh array.
		live := make([]cacheRef, 0, ix.cached)
		for _, ref := range ix.fifo {
			if s := &ix.slots[ref.id]; s.gen == ref.gen && s.obj != nil {
				live = append(live, ref)
			}
		}
		ix.fifo = live
	}
}

// cacheRead keeps an object a reader decoded from the file, if its slot is
// still the version the reader looked up (gen).
func (ix *kindIndex) cacheRead(id, gen uint32, obj storage.Object) {
	if int(id) < len(ix.slots) && ix.slots[id].gen == gen && ix.slots[id].obj == nil && ix.slots[id].key != "" {
		ix.setCached(id, obj)
	}
}

// match calls fn with the id of every object in namespace ns (or every
// namespace) with all of labels: it walks the smallest of the sets that
// constrain the match and checks the others by membership.
func (ix *kindIndex) match(ns string, labels map[string]string, fn func(uint32)) {
	var sets []idSet
	if ns != storage.AllNamespaces {
		s, ok := ix.ns[ns]
		if !ok {
			return
		}
		sets = append(sets, s)
	}
	for k, v := range labels {
		s, ok := ix.labels[k][v]
		if !ok {
			return // nothing has this label value
		}
		sets = append(sets, s)
	}
	if len(sets) == 0 {
		for id := range ix.slots {
			if ix.slots[id].key != "" {
				fn(uint32(id))
			}
		}
		return
	}
	best := 0
	for i, s := range sets {
		if s.len() < sets[best].len() {
			best = i
		}
	}
	sets[0], sets[best] = sets[best], sets[0]
	sets[0].each(func(id uint32) {
		for _, s := range sets[1:] {
			if !s.has(id) {
				return
			}
		}
		fn(id)
	})
}
