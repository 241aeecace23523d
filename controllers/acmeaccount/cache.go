package acmeaccount

import (
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kacme/kacme/api/v1alpha1"
)

// CountedKinds are the kinds whose objects the controller counts per
// account, from metadata-only watches.
var CountedKinds = []string{"AcmeOrder", "AcmeCertificate"}

// CacheOptions is what the manager's cache keeps of the counted kinds: the
// metadata-only copies go through SlimMetadata, the rest through next.
func CacheOptions(next toolscache.TransformFunc) map[client.Object]cache.ByObject {
	out := map[client.Object]cache.ByObject{}
	for _, kind := range CountedKinds {
		out[metaOf(kind)] = cache.ByObject{Transform: SlimMetadata(next)}
	}
	return out
}

// SlimMetadata is a cache transform for the counted kinds' metadata-only
// copies: counting reads an object's namespace, name and account label, and
// the cache its resource version, so a copy keeps those and drops the rest
// (other labels, owner references, UID, times, managedFields). The label
// map is shared by every object of one account (nothing writes to a
// cached object's maps: a read hands out a deep copy). With 100,000
// stored issuances that is 200,000 cached copies. Anything else goes to
// next.
func SlimMetadata(next toolscache.TransformFunc) toolscache.TransformFunc {
	return func(in any) (any, error) {
		m, ok := in.(*metav1.PartialObjectMetadata)
		if !ok {
			if next == nil {
				return in, nil
			}
			return next(in)
		}
		slim := &metav1.PartialObjectMetadata{TypeMeta: internTypeMeta(m.TypeMeta)}
		slim.Name, slim.Namespace, slim.ResourceVersion = m.Name, labelMaps.intern(m.Namespace), m.ResourceVersion
		if a := m.Labels[v1alpha1.LabelAccount]; a != "" {
			slim.Labels = labelMaps.of(a)
		}
		return slim, nil
	}
}

var apiVersion = v1alpha1.GroupVersion.String()

// internTypeMeta gives the counted kinds' copies one shared set of strings.
func internTypeMeta(t metav1.TypeMeta) metav1.TypeMeta {
	if t.APIVersion == apiVersion {
		t.APIVersion = apiVersion
	}
	for _, k := range CountedKinds {
		if t.Kind == k {
			t.Kind = k
		}
	}
	return t
}

// sharedLabels hands out one label map per account (and one copy of each
// namespace name) for the cached copies. Entries are never dropped (an
// account deleted long ago keeps its map), so the table is bounded: past
// limit entries, new accounts and namespaces get maps and strings of their
// own, which costs memory per cached object but nothing else.
type sharedLabels struct {
	mu    sync.Mutex
	limit int
	maps  map[string]map[string]string
	strs  map[string]string
}

// maxSharedLabels bounds each table: 65,536 accounts are a few MiB.
const maxSharedLabels = 1 << 16

var labelMaps = newSharedLabels(maxSharedLabels)

func newSharedLabels(limit int) *sharedLabels {
	return &sharedLabels{limit: limit, maps: map[string]map[string]string{}, strs: map[string]string{}}
}

func (s *sharedLabels) of(account string) map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.maps[account]
	if !ok {
		m = map[string]string{v1alpha1.LabelAccount: account}
		if len(s.maps) < s.limit {
			s.maps[account] = m
		}
	}
	return m
}

func (s *sharedLabels) intern(v string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.strs[v]; ok {
		return c
	}
	if len(s.strs) < s.limit {
		s.strs[v] = v
	}
	return v
}
