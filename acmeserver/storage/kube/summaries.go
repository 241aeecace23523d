package kube

import (
	"context"
	"fmt"
	"sync"

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
	byKind map[string]map[string]storage.Summary // kind → "ns/name" → summary
	synced map[string]func() bool                // kind → whether its handler has seen the initial list
}

// WithSummaries keeps summaries of kinds (default: every state kind) from
// the informers of c, and answers ListSummaries without labels and
// CountByNamespace from them once each kind's informer has synced. Label
// lookups still go through the indexes (they match few objects).
func (s *Store) WithSummaries(ctx context.Context, c cache.Informers, kinds ...storage.Object) (*Store, error) {
	if len(kinds) == 0 {
		kinds = stateKinds
	}
	sm := &summaries{byKind: map[string]map[string]storage.Summary{}, synced: map[string]func() bool{}}
	for _, obj := range kinds {
		kind, err := storage.KindOf(obj)
		if err != nil {
			return nil, err
		}
		inf, err := c.GetInformer(ctx, obj)
		if err != nil {
			return nil, fmt.Errorf("informer of %s: %w", kind, err)
		}
		sm.byKind[kind] = map[string]storage.Summary{}
		put := func(o any) {
			if so, ok := o.(storage.Object); ok {
				sum := storage.Summarize(so)
				sm.mu.Lock()
				sm.byKind[kind][sum.Namespace+"/"+sum.Name] = sum
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
					delete(sm.byKind[kind], so.GetNamespace()+"/"+so.GetName())
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

// list copies the summaries of kind in ns (or every namespace).
func (sm *summaries) list(kind, ns string) []storage.Summary {
	sm.mu.RLock()
	defer sm.mu.RUnlock()
	m := sm.byKind[kind]
	out := make([]storage.Summary, 0, len(m))
	for _, sum := range m {
		if ns == storage.AllNamespaces || sum.Namespace == ns {
			out = append(out, sum)
		}
	}
	return out
}

// count counts the objects of kind by namespace.
func (sm *summaries) count(kind string) map[string]int {
	sm.mu.RLock()
	defer sm.mu.RUnlock()
	out := map[string]int{}
	for _, sum := range sm.byKind[kind] {
		out[sum.Namespace]++
	}
	return out
}

// CountByNamespace implements storage.Counter.
func (s *Store) CountByNamespace(ctx context.Context, kind string) (map[string]int, error) {
	if s.summaries.ready(kind) {
		return s.summaries.count(kind), nil
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
