package embedded

import (
	"github.com/kacme/kacme/acmeserver/storage"
)

// kindIndex holds the stored objects of one kind and the sets of them by
// namespace, by name and by each label value. Each object has a small
// integer id; a set holds ids, and the many sets of one member (a name, an
// order label) hold it inline instead of in a map of their own, so that the
// index costs a few hundred bytes per object rather than a map per label
// value (issue 17: the index was a quarter of the standalone server's heap).
type kindIndex struct {
	ids    map[string]uint32 // "namespace/name" → id
	objs   []storage.Object  // by id; nil for a free id. Shared with readers: replaced on write, never changed.
	free   []uint32
	ns     map[string]idSet
	names  map[string]idSet
	labels map[string]map[string]idSet // label key → value → ids
}

func newKindIndex() *kindIndex {
	return &kindIndex{ids: map[string]uint32{}, ns: map[string]idSet{}, names: map[string]idSet{}, labels: map[string]map[string]idSet{}}
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

func (ix *kindIndex) get(key string) storage.Object {
	if id, ok := ix.ids[key]; ok {
		return ix.objs[id]
	}
	return nil
}

func (ix *kindIndex) byName(name string) storage.Object {
	set, ok := ix.names[name]
	if !ok {
		return nil
	}
	var out storage.Object
	set.each(func(id uint32) {
		if out == nil {
			out = ix.objs[id]
		}
	})
	return out
}

func (ix *kindIndex) put(key string, obj storage.Object) {
	ix.remove(key)
	var id uint32
	if n := len(ix.free); n > 0 {
		id, ix.free = ix.free[n-1], ix.free[:n-1]
		ix.objs[id] = obj
	} else {
		id = uint32(len(ix.objs))
		ix.objs = append(ix.objs, obj)
	}
	ix.ids[key] = id
	add(ix.ns, obj.GetNamespace(), id)
	add(ix.names, obj.GetName(), id)
	for k, v := range obj.GetLabels() {
		vals := ix.labels[k]
		if vals == nil {
			vals = map[string]idSet{}
			ix.labels[k] = vals
		}
		add(vals, v, id)
	}
}

func (ix *kindIndex) remove(key string) {
	id, ok := ix.ids[key]
	if !ok {
		return
	}
	old := ix.objs[id]
	del(ix.ns, old.GetNamespace(), id)
	del(ix.names, old.GetName(), id)
	for k, v := range old.GetLabels() {
		if vals := ix.labels[k]; vals != nil {
			del(vals, v, id)
			if len(vals) == 0 {
				delete(ix.labels, k)
			}
		}
	}
	delete(ix.ids, key)
	ix.objs[id] = nil
	ix.free = append(ix.free, id)
}

// list calls fn with every object of the smallest set each match belongs
// to (the namespace's, or a label value's), or every object when there is
// no such set; fn still checks the match.
func (ix *kindIndex) list(ns string, labels map[string]string, fn func(storage.Object)) {
	var best idSet
	found, empty := false, false
	consider := func(s idSet, ok bool) {
		switch {
		case !ok:
			empty = true // nothing has this namespace or label value
		case !found || s.len() < best.len():
			best, found = s, true
		}
	}
	if ns != storage.AllNamespaces {
		s, ok := ix.ns[ns]
		consider(s, ok)
	}
	for k, v := range labels {
		s, ok := ix.labels[k][v]
		consider(s, ok)
	}
	switch {
	case empty:
	case found:
		best.each(func(id uint32) { fn(ix.objs[id]) })
	default:
		for _, obj := range ix.objs {
			if obj != nil {
				fn(obj)
			}
		}
	}
}
