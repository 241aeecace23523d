// Package embedded is the standalone store: one bbolt file, durable on every
// write (bbolt fsyncs each committed transaction; concurrent writes share
// one commit), and an in-memory index of every stored object (its key, its
// namespace, name and labels, and a storage.Summary) with a bounded cache of
// decoded objects, the recently written and read ones. The index is the
// standalone counterpart of cluster mode's informer cache, except that it is
// never stale: it changes right after the commit that changed the file, and
// before the writer is told the write is done. A read of a cached object
// decodes nothing and takes no file lock; any other object is read from the
// file and decoded. Memory grows by a few hundred bytes per stored object
// (the index), not by the object; the file's pages the process mapped are
// given back to the kernel's page cache after the store opens and then every
// 15 seconds of writing (see dropMapped), so that they do not stay in its resident set.
package embedded

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kacme/kacme/acmeserver/acme"
	"github.com/kacme/kacme/acmeserver/storage"
	"github.com/kacme/kacme/api/v1alpha1"
)

var (
	bucketMeta = []byte("meta")
	// Before the in-memory index, label indexes lived in the file; Open
	// removes them (and their version key, so an older kacme rebuilds them).
	legacyBucketLabels = []byte("labels")
	legacyIndexVersion = []byte("index-version")
)

const bucketPrefix = "objects/"

func bucketName(kind string) []byte { return []byte(bucketPrefix + kind) }

func objKey(ns, name string) []byte { return []byte(ns + "/" + name) }

// Store is a bbolt-backed storage.Store.
type Store struct {
	db     *bolt.DB
	queue  chan *writeReq
	closed chan struct{}
	once   sync.Once
	err    error
	// sending guards queue against Close: writers send under the read lock,
	// Close marks the store closed under the write lock, so a write that
	// comes after Close fails with ErrClosed instead of panicking.
	sending  sync.RWMutex
	isClosed bool

	mu    sync.RWMutex
	kinds map[string]*kindIndex
	// cacheLimit is how many decoded objects of each kind stay in memory.
	cacheLimit int
	// dropped is when the mapped file's pages were last given back.
	dropped time.Time
	log     *slog.Logger

	quarantined []Quarantined
}

// writeReq is one write waiting for the group commit. fn runs inside the
// transaction and returns the change to make in memory once it commits.
type writeReq struct {
	fn   func(*bolt.Tx) (*change, error)
	done chan error
}

// change is one committed write: obj stored under key, or deleted (nil);
// old are the labels of the version it replaced.
type change struct {
	kind, key string
	obj       storage.Object
	old       map[string]string
}

var _ storage.Store = (*Store)(nil)

// Options of OpenWith.
type Options struct {
	// Log receives what Open quarantined (default slog.Default()).
	Log *slog.Logger
	// CachedObjects is how many decoded objects of each kind stay in
	// memory, the most recently written or read (0: DefaultCachedObjects;
	// negative: none, every read decodes from the file).
	CachedObjects int
}

// DefaultCachedObjects is the decoded objects of each kind the store keeps
// in memory by default: far more than the flows in progress at once (a
// flow reads and writes an order, its authorizations and a certificate within
// seconds), and a few MiB per kind.
const DefaultCachedObjects = 4096

// Quarantined is a stored record Open could not load: moved, bytes intact,
// to the bucket "quarantine" under "<kind>/<key>", out of the server's way.
type Quarantined struct {
	Kind, Key, Reason string
}

// bucketQuarantine holds records that did not load, as they were.
var bucketQuarantine = []byte("quarantine")

// Open opens (creating if needed) the store file at path and loads every
// object into memory.
func Open(path string) (*Store, error) { return OpenWith(path, Options{}) }

// OpenWith is Open with options. A record that does not decode, or whose
// key is not its namespace/name, does not stop the store from opening: it
// is moved to the quarantine bucket and logged (one bad write, a disk
// error or a hand edit would otherwise keep the server down); a bucket of a
// kind this version does not know (a newer kacme's) is left as it is.
func OpenWith(path string, o Options) (*Store, error) {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, NoFreelistSync: true, FreelistType: bolt.FreelistMapType})
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w (is another kacme running on this data directory?)", path, err)
	}
	limit := o.CachedObjects
	switch {
	case limit == 0:
		limit = DefaultCachedObjects
	case limit < 0:
		limit = 0
	}
	s := &Store{db: db, queue: make(chan *writeReq, 1024), closed: make(chan struct{}), kinds: map[string]*kindIndex{},
		cacheLimit: limit, log: o.Log}
	err = db.Update(func(tx *bolt.Tx) error {
		mb, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		if tx.Bucket(legacyBucketLabels) != nil {
			if err := tx.DeleteBucket(legacyBucketLabels); err != nil {
				return err
			}
		}
		if err := mb.Delete(legacyIndexVersion); err != nil {
			return err
		}
		var bad []Quarantined
		err = tx.ForEach(func(bn []byte, b *bolt.Bucket) error {
			kind, ok := strings.CutPrefix(string(bn), bucketPrefix)
			if !ok {
				return nil
			}
			if _, err := storage.NewObject(kind); err != nil {
				o.Log.Warn("store: skipping records of an unknown kind (written by another kacme version?)", "kind", kind)
				return nil
			}
			return b.ForEach(func(k, v []byte) error {
				obj, err := decodeNew(kind, v)
				if err == nil && string(k) != string(objKey(obj.GetNamespace(), obj.GetName())) {
					err = fmt.Errorf("stored under %q but names %s/%s", k, obj.GetNamespace(), obj.GetName())
				}
				if err != nil {
					bad = append(bad, Quarantined{Kind: kind, Key: string(k), Reason: err.Error()})
					return nil
				}
				s.kind(kind).put(string(k), obj, nil, false)
				return nil
			})
		})
		if err != nil {
			return err
		}
		return s.quarantine(tx, bad, o.Log)
	})
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	s.dropMapped() // Open read every page
	// Open decoded every object once to build the index: hand the memory
	// that took back to the system now rather than over minutes.
	debug.FreeOSMemory()
	go s.commitLoop()
	return s, nil
}

// quarantine moves the records that did not load to the quarantine bucket.
func (s *Store) quarantine(tx *bolt.Tx, bad []Quarantined, log *slog.Logger) error {
	if len(bad) == 0 {
		return nil
	}
	qb, err := tx.CreateBucketIfNotExists(bucketQuarantine)
	if err != nil {
		return err
	}
	for _, q := range bad {
		b := tx.Bucket(bucketName(q.Kind))
		// Copy: a value is only valid while the transaction lasts, and Put
		// into another bucket before Delete keeps it whole.
		v := append([]byte(nil), b.Get([]byte(q.Key))...)
		if err := qb.Put([]byte(q.Kind+"/"+q.Key), v); err != nil {
			return err
		}
		if err := b.Delete([]byte(q.Key)); err != nil {
			return err
		}
		log.Error("store: a record could not be loaded; moved to the quarantine bucket, the server starts without it",
			"kind", q.Kind, "key", q.Key, "reason", q.Reason, "bytes", len(v))
	}
	s.quarantined = append(s.quarantined, bad...)
	return nil
}

// Quarantined lists the records this Open moved to quarantine.
func (s *Store) Quarantined() []Quarantined { return append([]Quarantined(nil), s.quarantined...) }

// ErrClosed is the error of a write to a closed store.
var ErrClosed = errors.New("the store is closed")

// Close stops the writer (after the writes already queued) and closes the file.
func (s *Store) Close() error {
	s.once.Do(func() {
		s.sending.Lock()
		s.isClosed = true
		close(s.queue)
		s.sending.Unlock()
		<-s.closed
		s.err = s.db.Close()
	})
	return s.err
}

// write runs fn in a read-write transaction shared with whatever other
// writes are waiting (group commit): a lone writer commits at once, and
// concurrent writers share one fsync instead of queueing for one each.
func (s *Store) write(fn func(*bolt.Tx) (*change, error)) error {
	req := &writeReq{fn: fn, done: make(chan error, 1)}
	s.sending.RLock()
	if s.isClosed {
		s.sending.RUnlock()
		return ErrClosed
	}
	s.queue <- req
	s.sending.RUnlock()
	return <-req.done
}

// isPrecondition reports errors a write function returns before it changes
// anything; such a write fails alone without spoiling its batch.
func isPrecondition(err error) bool {
	return storage.IsConflict(err) || storage.IsNotFound(err) || storage.IsAlreadyExists(err)
}

func (s *Store) commitLoop() {
	defer close(s.closed)
	for req := range s.queue {
		batch := []*writeReq{req}
	drain:
		for len(batch) < 256 {
			select {
			case r, ok := <-s.queue:
				if !ok {
					break drain
				}
				batch = append(batch, r)
			default:
				break drain
			}
		}
		results := make([]error, len(batch))
		changes := make([]*change, len(batch))
		err := s.db.Update(func(tx *bolt.Tx) error {
			for i, r := range batch {
				c, err := r.fn(tx)
				if err != nil {
					if !isPrecondition(err) {
						return err
					}
					results[i] = err
				}
				changes[i] = c
			}
			return nil
		})
		if err != nil {
			// Something failed mid-write: the batch rolled back; run each write alone.
			for _, r := range batch {
				var c *change
				err := s.db.Update(func(tx *bolt.Tx) (err error) {
					c, err = r.fn(tx)
					return err
				})
				if err == nil {
					s.apply(c)
				}
				r.done <- err
			}
			continue
		}
		s.apply(changes...)
		for i, r := range batch {
			r.done <- results[i]
		}
		if time.Since(s.dropped) >= dropEvery {
			s.dropMapped()
		}
	}
}

// dropEvery is how often the writer gives the mapped file's pages back.
const dropEvery = 15 * time.Second

// dropMapped gives the pages of the store file that the process has mapped
// back to the kernel (madvise MADV_DONTNEED on bbolt's read-only shared
// mapping; the page cache keeps them as the kernel sees fit, and a later read
// maps them again). Opening the store reads every page, and writes of random
// keys touch pages all over the file, so without this the resident set grows
// with the file. Only the writer (or Open, before it starts) calls it: bbolt
// remaps the file only while committing.
func (s *Store) dropMapped() {
	s.dropped = time.Now()
	var size int64
	if err := s.db.View(func(tx *bolt.Tx) error { size = tx.Size(); return nil }); err != nil {
		return
	}
	if err := releaseMapped(s.db.Info().Data, size); err != nil {
		s.log.Debug("store: could not release mapped pages", "err", err)
	}
}

// apply makes committed changes visible to readers, in commit order.
func (s *Store) apply(changes ...*change) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range changes {
		if c == nil {
			continue
		}
		ix := s.kind(c.kind)
		if c.obj == nil {
			ix.remove(c.key, c.old)
		} else {
			ix.put(c.key, c.obj, c.old, true)
		}
	}
}

// kind returns the index of kind, creating it; callers hold mu (or own s alone).
func (s *Store) kind(kind string) *kindIndex {
	ix := s.kinds[kind]
	if ix == nil {
		ix = newKindIndex(s.cacheLimit)
		s.kinds[kind] = ix
	}
	return ix
}

// Get implements storage.Reader.
func (s *Store) Get(_ context.Context, ns, name string, obj storage.Object) error {
	kind, err := storage.KindOf(obj)
	if err != nil {
		return err
	}
	var (
		stored  storage.Object
		key     string
		id, gen uint32
		found   bool
	)
	s.mu.RLock()
	ix := s.kinds[kind]
	if ix != nil {
		if ns != storage.AllNamespaces {
			id, found = ix.lookup(ns + "/" + name)
		} else {
			id, found = ix.byName(name) // names derive from random IDs: at most one namespace has it
		}
		if found {
			sl := &ix.slots[id]
			stored, key, gen = sl.obj, sl.key, sl.gen
		}
	}
	s.mu.RUnlock()
	if !found {
		return fmt.Errorf("%s %s/%s: %w", kind, ns, name, storage.ErrNotFound)
	}
	if stored == nil {
		read, err := s.readFile(kind, []string{key})
		if err != nil {
			return err
		}
		if stored = read[0]; stored == nil { // deleted since the lookup
			return fmt.Errorf("%s %s/%s: %w", kind, ns, name, storage.ErrNotFound)
		}
		s.mu.Lock()
		ix.cacheRead(id, gen, stored)
		s.mu.Unlock()
	}
	storage.CopyInto(obj, stored)
	return nil
}

// readFile reads and decodes the objects of kind stored under keys (nil
// for a key no longer stored), in one read transaction.
func (s *Store) readFile(kind string, keys []string) ([]storage.Object, error) {
	out := make([]storage.Object, len(keys))
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketName(kind))
		if b == nil {
			return nil
		}
		for i, k := range keys {
			v := b.Get([]byte(k))
			if v == nil {
				continue
			}
			obj, err := decodeNew(kind, v)
			if err != nil {
				return fmt.Errorf("read %s %s: %w", kind, k, err)
			}
			out[i] = obj
		}
		return nil
	})
	return out, err
}

// List implements storage.Reader.
func (s *Store) List(_ context.Context, ns string, list storage.ObjectList, opts storage.ListOptions) error {
	kind, err := storage.KindOf(list)
	if err != nil {
		return err
	}
	var items []runtime.Object
	var cold []string
	s.mu.RLock()
	if ix := s.kinds[kind]; ix != nil {
		ix.match(ns, opts.Labels, func(id uint32) {
			if sl := &ix.slots[id]; sl.obj != nil {
				items = append(items, sl.obj)
			} else {
				cold = append(cold, sl.key)
			}
		})
	}
	s.mu.RUnlock()
	if !opts.Shared {
		for i, it := range items {
			items[i] = it.DeepCopyObject()
		}
	}
	if len(cold) > 0 {
		// Decoded for this caller alone: nothing to copy, and not cached
		// (a list of many old objects would push out the ones in use).
		read, err := s.readFile(kind, cold)
		if err != nil {
			return err
		}
		for _, obj := range read {
			if obj != nil {
				items = append(items, obj)
			}
		}
	}
	return meta.SetList(list, items)
}

// ListSummaries implements storage.SummaryLister from memory.
func (s *Store) ListSummaries(_ context.Context, ns, kind string, labels map[string]string) ([]storage.Summary, error) {
	if _, err := storage.NewObject(kind); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	ix := s.kinds[kind]
	if ix == nil {
		return nil, nil
	}
	n := 0
	ix.match(ns, labels, func(uint32) { n++ })
	out := make([]storage.Summary, 0, n)
	ix.match(ns, labels, func(id uint32) { out = append(out, ix.summary(id)) })
	return out, nil
}

// VisitSummaries implements storage.SummaryVisitor from memory.
func (s *Store) VisitSummaries(_ context.Context, ns, kind string, fn func(*storage.Summary)) error {
	if _, err := storage.NewObject(kind); err != nil {
		return err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	ix := s.kinds[kind]
	if ix == nil {
		return nil
	}
	var sum storage.Summary // one for the whole visit: fn keeps copies
	ix.match(ns, nil, func(id uint32) {
		sum = ix.summary(id)
		fn(&sum)
	})
	return nil
}

// CountByNamespace implements storage.Counter from the index.
func (s *Store) CountByNamespace(_ context.Context, kind string) (map[string]int, error) {
	if _, err := storage.NewObject(kind); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := map[string]int{}
	if ix := s.kinds[kind]; ix != nil {
		for ns, set := range ix.ns {
			out[ns] = set.len()
		}
	}
	return out, nil
}

var (
	_ storage.SummaryLister  = (*Store)(nil)
	_ storage.SummaryVisitor = (*Store)(nil)
	_ storage.Counter        = (*Store)(nil)
)

// decodeNew decodes a stored object of kind.
func decodeNew(kind string, v []byte) (storage.Object, error) {
	obj, err := storage.NewObject(kind)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(v, obj); err != nil {
		return nil, fmt.Errorf("decode stored object: %w", err)
	}
	v1alpha1.MoveLegacyFields(obj)
	return obj, nil
}

// Create implements storage.Writer.
func (s *Store) Create(_ context.Context, obj storage.Object) error {
	kind, err := storage.KindOf(obj)
	if err != nil {
		return err
	}
	if obj.GetName() == "" {
		return fmt.Errorf("create %s: name is required", kind)
	}
	if obj.GetResourceVersion() != "" {
		return fmt.Errorf("create %s: resourceVersion must not be set", kind)
	}
	ns, name := obj.GetNamespace(), obj.GetName()
	var stored storage.Object
	err = s.write(func(tx *bolt.Tx) (*change, error) {
		b, err := tx.CreateBucketIfNotExists(bucketName(kind))
		if err != nil {
			return nil, err
		}
		if b.Get(objKey(ns, name)) != nil {
			return nil, fmt.Errorf("%s %s/%s: %w", kind, ns, name, storage.ErrAlreadyExists)
		}
		stored, err = put(tx, b, kind, obj, true)
		return &change{kind: kind, key: ns + "/" + name, obj: stored}, err
	})
	if err != nil {
		return err
	}
	// Hand back what is stored: creation time and UID as well as the version.
	obj.SetResourceVersion(stored.GetResourceVersion())
	obj.SetCreationTimestamp(stored.GetCreationTimestamp())
	obj.SetUID(stored.GetUID())
	return nil
}

// put stores a copy of obj under the next resourceVersion and returns what
// a reader will get: the stored bytes decoded, so that memory and file agree
// to the last detail (times in seconds, empty fields).
func put(tx *bolt.Tx, b *bolt.Bucket, kind string, obj storage.Object, create bool) (storage.Object, error) {
	rv, err := tx.Bucket(bucketMeta).NextSequence()
	if err != nil {
		return nil, err
	}
	// Work on a copy so a failed transaction leaves the caller's object untouched.
	cp, ok := obj.DeepCopyObject().(storage.Object)
	if !ok {
		return nil, fmt.Errorf("storage: %T does not deep-copy to an object", obj)
	}
	cp.SetResourceVersion(strconv.FormatUint(rv, 10))
	if create {
		cp.SetCreationTimestamp(metav1.NewTime(time.Now().UTC().Truncate(time.Second)))
		cp.SetUID(types.UID(acme.NewID()))
	}
	if ta, err := meta.TypeAccessor(cp); err == nil {
		ta.SetAPIVersion(v1alpha1.GroupVersion.String())
		ta.SetKind(kind)
	}
	data, err := json.Marshal(cp)
	if err != nil {
		return nil, err
	}
	if err := b.Put(objKey(cp.GetNamespace(), cp.GetName()), data); err != nil {
		return nil, err
	}
	return decodeNew(kind, data)
}

// checkVersion checks the caller's version against the one in the file (in
// this transaction: an earlier write of the same batch counts), and returns
// the stored version's labels (the index drops them).
func checkVersion(b *bolt.Bucket, kind string, obj storage.Object) (map[string]string, error) {
	ns, name := obj.GetNamespace(), obj.GetName()
	var v []byte
	if b != nil {
		v = b.Get(objKey(ns, name))
	}
	if v == nil {
		return nil, fmt.Errorf("%s %s/%s: %w", kind, ns, name, storage.ErrNotFound)
	}
	var stored metav1.PartialObjectMetadata
	if err := json.Unmarshal(v, &stored); err != nil {
		return nil, fmt.Errorf("decode stored object: %w", err)
	}
	if rv := obj.GetResourceVersion(); rv != "" && rv != stored.ResourceVersion {
		return nil, fmt.Errorf("%s %s/%s at version %s, stored %s: %w", kind, ns, name, rv, stored.ResourceVersion, storage.ErrConflict)
	}
	return stored.Labels, nil
}

// Update implements storage.Writer.
func (s *Store) Update(_ context.Context, obj storage.Object) error {
	kind, err := storage.KindOf(obj)
	if err != nil {
		return err
	}
	if obj.GetResourceVersion() == "" {
		return fmt.Errorf("update %s: resourceVersion is required", kind)
	}
	var stored storage.Object
	err = s.write(func(tx *bolt.Tx) (*change, error) {
		b := tx.Bucket(bucketName(kind))
		old, err := checkVersion(b, kind, obj)
		if err != nil {
			return nil, err
		}
		stored, err = put(tx, b, kind, obj, false)
		return &change{kind: kind, key: obj.GetNamespace() + "/" + obj.GetName(), obj: stored, old: old}, err
	})
	if err != nil {
		return err
	}
	obj.SetResourceVersion(stored.GetResourceVersion())
	return nil
}

// Delete implements storage.Writer.
func (s *Store) Delete(_ context.Context, obj storage.Object) error {
	kind, err := storage.KindOf(obj)
	if err != nil {
		return err
	}
	return s.write(func(tx *bolt.Tx) (*change, error) {
		b := tx.Bucket(bucketName(kind))
		old, err := checkVersion(b, kind, obj)
		if err != nil {
			return nil, err
		}
		return &change{kind: kind, key: obj.GetNamespace() + "/" + obj.GetName(), old: old}, b.Delete(objKey(obj.GetNamespace(), obj.GetName()))
	})
}
