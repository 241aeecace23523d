package kube

import (
	"context"
	"fmt"
	"sync"
	"time"

	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	"github.com/kacme/kacme/acmeserver/storage"
)

// summaries keeps a storage.Summary of every object of some kinds, kept
// current by the informers' events, so that whole-kind summaries (a
// dashboard page over 100,000 orders, the counts of its overview) copy
// small structs out of a map instead of listing and summarizing every
// cached object on each request.
type summaries struct {
	mu     sync.RWMutex
	byKind map[string]map[objKey]kept   // kind → object → summary
	names  map[string]map[string]string // kind → name → namespace, for kinds found by name (kindIndex.names)
	synced map[string]func() bool       // kind → whether its handler has seen the initial list
}

// kept is an object's storage.Summary as kept (its namespace and name are
// the key; times in Unix seconds, which is all a resource's timestamps
// hold; about half a Summary's size), and the resourceVersion it was made
// from.
type kept struct {
	created, at           int64
	status, profile, text string
	offered               int32
	rv                    uint64
}

func keep(sum storage.Summary, rv uint64) kept {
	k := kept{status: intern(sum.Status), profile: intern(sum.Profile), text: sum.Text, offered: int32(sum.Offered), rv: rv}
	if !sum.Created.IsZero() {
		k.created = sum.Created.Unix()
	}
	if !sum.At.IsZero() {
		k.at = sum.At.Unix()
	}
	return k
}

func (k kept) summary(key objKey) storage.Summary {
	sum := storage.Summary{Namespace: key.ns, Name: key.name, Status: k.status, Profile: k.profile, Text: k.text, Offered: int(k.offered)}
	if k.created != 0 {
		sum.Created = time.Unix(k.created, 0)
	}
	if k.at != 0 {
		sum.At = time.Unix(k.at, 0)
	}
	return sum
}

// objKey names an object; its strings are the object's own, so a key costs
// no allocation of its own.
type objKey struct{ ns, name string }

// WithSummaries keeps summaries of kinds (default: every state kind) from
// the informers of c, and answers ListSummaries without labels and
// CountByNamespace from them once each kind's informer has synced. Label
// lookups still go through the indexes (they match few objects).
func (s *Store) WithSummaries(ctx context.Context, c cache.Informers, kinds ...storage.Object) (*Store, error) {
	if len(kinds) == 0 {
		kinds = stateKinds
	}
	sm := &summaries{byKind: map[string]map[objKey]kept{}, names: map[string]map[string]string{},
		synced: map[string]func() bool{}}
	for _, obj := range kinds {
		kind, err := storage.KindOf(obj)
		if err != nil {
			return nil, err
		}
		inf, err := c.GetInformer(ctx, obj)
		if err != nil {
			return nil, fmt.Errorf("informer of %s: %w", kind, err)
		}
		sm.byKind[kind] = map[objKey]kept{}
		names := kindIndexes[kind].names
		if names {
			sm.names[kind] = map[string]string{}
		}
		put := func(o any) {
			if so, ok := o.(storage.Object); ok {
				sum := storage.Summarize(so)
				sm.mu.Lock()
				sm.byKind[kind][objKey{sum.Namespace, sum.Name}] = keep(sum, parseRV(so.GetResourceVersion()))
				if names {
					sm.names[kind][sum.Name] = sum.Namespace
				}
				sm.mu.Unlock()
			}
		}
		reg, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
			AddFunc:    put,
			UpdateFunc: func(_, o any) { put(o) },
			DeleteFunc: func(o any) {
				if t, ok := o.(toolscache.DeletedFinalStateUnknown); ok {
					o = t.Obj
				}
				if so, ok := o.(storage.Object); ok {
					sm.mu.Lock()
					delete(sm.byKind[kind], objKey{so.GetNamespace(), so.GetName()})
					if names && sm.names[kind][so.GetName()] == so.GetNamespace() {
						delete(sm.names[kind], so.GetName())
					}
					sm.mu.Unlock()
				}
			},
		})
		if err != nil {
			return nil, fmt.Errorf("summaries of %s: %w", kind, err)
		}
		sm.synced[kind] = reg.HasSynced
	}
	s.summaries = sm
	return s, nil
}

// ready reports whether kind's summaries are kept and complete.
func (sm *summaries) ready(kind string) bool {
	if sm == nil {
		return false
	}
	synced, ok := sm.synced[kind]
	return ok && synced()
}

// list copies the summaries of kind in ns (or every namespace), with
// this process's writes the informer has not delivered yet (snap, the
// overlay's entries of kind in ns) in place of what it has.
func (sm *summaries) list(kind, ns string, snap map[string]*entry) []storage.Summary {
	sm.mu.RLock()
	n := len(sm.byKind[kind])
	sm.mu.RUnlock()
	out := make([]storage.Summary, 0, n)
	sm.visit(kind, ns, snap, func(s *storage.Summary) { out = append(out, *s) })
	return out
}

// visit calls fn with the summary of each object of kind in ns (or every
// namespace), with this process's writes the informer has not delivered
// yet (snap) in place of what it has, holding the read lock.
func (sm *summaries) visit(kind, ns string, snap map[string]*entry, fn func(*storage.Summary)) {
	sm.mu.RLock()
	defer sm.mu.RUnlock()
	m := sm.byKind[kind]
	var mine map[objKey]*entry
	for _, e := range snap {
		k := objKey{e.ns, e.obj.GetName()}
		if c, ok := m[k]; e.deleted && ok && c.rv <= e.rv || !e.deleted && (!ok || c.rv < e.rv) {
			if mine == nil {
				mine = map[objKey]*entry{}
			}
			mine[k] = e
		}
	}
	var sum storage.Summary
	for k, kept := range m {
		if _, ok := mine[k]; !ok && (ns == storage.AllNamespaces || k.ns == ns) {
			sum = kept.summary(k)
			fn(&sum)
		}
	}
	for _, e := range mine {
		if !e.deleted {
			sum = storage.Summarize(e.obj)
			fn(&sum)
		}
	}
}

// namespaceOf is the namespace of the object of kind called name ("" when
// there is none); kind must be one with kindIndex.names.
func (sm *summaries) namespaceOf(kind, name string) string {
	sm.mu.RLock()
	defer sm.mu.RUnlock()
	return sm.names[kind][name]
}

// count counts the objects of kind by namespace, with this process's
// creations and deletions the informer has not delivered yet (snap).
func (sm *summaries) count(kind string, snap map[string]*entry) map[string]int {
	sm.mu.RLock()
	defer sm.mu.RUnlock()
	m := sm.byKind[kind]
	out := map[string]int{}
	for k := range m {
		out[k.ns]++
	}
	for _, e := range snap {
		c, ok := m[objKey{e.ns, e.obj.GetName()}]
		switch {
		case e.deleted && ok && c.rv <= e.rv && out[e.ns] > 0:
			out[e.ns]--
		case !e.deleted && !ok:
			out[e.ns]++
		}
	}
	return out
}

// VisitSummaries implements storage.SummaryVisitor from the summaries the
// informers keep (once kind's has synced; before, over ListSummaries).
func (s *Store) VisitSummaries(ctx context.Context, ns, kind string, fn func(*storage.Summary)) error {
	if s.summaries.ready(kind) {
		s.summaries.visit(kind, ns, s.overlay.snapshot(kind, ns), fn)
		return nil
	}
	all, err := s.ListSummaries(ctx, ns, kind, nil)
	if err != nil {
		return err
	}
	for i := range all {
		fn(&all[i])
	}
	return nil
}

// CountByNamespace implements storage.Counter.
func (s *Store) CountByNamespace(ctx context.Context, kind string) (map[string]int, error) {
	if s.summaries.ready(kind) {
		return s.summaries.count(kind, s.overlay.snapshot(kind, storage.AllNamespaces)), nil
	}
	list, err := s.ListSummaries(ctx, storage.AllNamespaces, kind, nil)
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	for _, sum := range list {
		out[sum.Namespace]++
	}
	return out, nil
}
