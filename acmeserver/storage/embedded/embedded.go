// Package embedded is the standalone store: one bbolt file, durable on every
// write (bbolt fsyncs each committed transaction), with label indexes so that
// lookups by account, key thumbprint or EAB key ID do not scan.
package embedded

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"reflect"
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
	bucketMeta   = []byte("meta")
	bucketLabels = []byte("labels")
	sep          = []byte{0}
	// indexVersion in the meta bucket; an older index is rebuilt on Open.
	indexVersionKey = []byte("index-version")
	indexVersion    = []byte("2")
)

// The label index holds each label of an object twice: under its namespace,
// and under anyNS with "namespace/name" as the entry, for lookups in every
// namespace; anyNS also indexes every object by name.
const (
	anyNS     = "\x01"
	nameLabel = "\x01name"
)

// Store is a bbolt-backed storage.Store.
type Store struct {
	db     *bolt.DB
	queue  chan *writeReq
	closed chan struct{}
	once   sync.Once
	err    error
}

// writeReq is one write waiting for the group commit.
type writeReq struct {
	fn   func(*bolt.Tx) error
	done chan error
}

var _ storage.Store = (*Store)(nil)

// Open opens (creating if needed) the store file at path.
func Open(path string) (*Store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, NoFreelistSync: true, FreelistType: bolt.FreelistMapType})
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w (is another kacme running on this data directory?)", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketMeta, bucketLabels} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		if bytes.Equal(tx.Bucket(bucketMeta).Get(indexVersionKey), indexVersion) {
			return nil
		}
		return rebuildIndex(tx)
	})
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	s := &Store{db: db, queue: make(chan *writeReq, 1024), closed: make(chan struct{})}
	go s.commitLoop()
	return s, nil
}

// Close stops the writer and closes the file.
func (s *Store) Close() error {
	s.once.Do(func() {
		close(s.queue)
		<-s.closed
		s.err = s.db.Close()
	})
	return s.err
}

// write runs fn in a read-write transaction shared with whatever other
// writes are waiting (group commit): a lone writer commits at once, and
// concurrent writers share one fsync instead of queueing for one each.
func (s *Store) write(fn func(*bolt.Tx) error) error {
	req := &writeReq{fn: fn, done: make(chan error, 1)}
	s.queue <- req
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
		err := s.db.Update(func(tx *bolt.Tx) error {
			for i, r := range batch {
				if err := r.fn(tx); err != nil {
					if !isPrecondition(err) {
						return err
					}
					results[i] = err
				}
			}
			return nil
		})
		if err != nil {
			// Something failed mid-write: the batch rolled back; run each write alone.
			for _, r := range batch {
				r.done <- s.db.Update(r.fn)
			}
			continue
		}
		for i, r := range batch {
			r.done <- results[i]
		}
	}
}

func objKey(ns, name string) []byte { return []byte(ns + "/" + name) }

func labelKey(kind, ns, k, v, name string) []byte {
	return bytes.Join([][]byte{[]byte(kind), []byte(ns), []byte(k + "=" + v), []byte(name)}, sep)
}

func labelPrefix(kind, ns, k, v string) []byte {
	return append(bytes.Join([][]byte{[]byte(kind), []byte(ns), []byte(k + "=" + v)}, sep), 0)
}

func bucketName(kind string) []byte { return []byte("objects/" + kind) }

// indexKeys are the label index entries of an object.
func indexKeys(kind, ns, name string, labels map[string]string) [][]byte {
	keys := [][]byte{labelKey(kind, anyNS, nameLabel, name, ns+"/"+name)}
	for k, v := range labels {
		keys = append(keys, labelKey(kind, ns, k, v, name), labelKey(kind, anyNS, k, v, ns+"/"+name))
	}
	return keys
}

// rebuildIndex recreates the label index from the stored objects (a store
// written by an older version).
func rebuildIndex(tx *bolt.Tx) error {
	if err := tx.DeleteBucket(bucketLabels); err != nil {
		return err
	}
	lb, err := tx.CreateBucket(bucketLabels)
	if err != nil {
		return err
	}
	err = tx.ForEach(func(bn []byte, b *bolt.Bucket) error {
		kind, ok := bytes.CutPrefix(bn, []byte("objects/"))
		if !ok {
			return nil
		}
		return b.ForEach(func(_, v []byte) error {
			var m metav1.PartialObjectMetadata
			if err := json.Unmarshal(v, &m); err != nil {
				return fmt.Errorf("decode stored object: %w", err)
			}
			for _, k := range indexKeys(string(kind), m.Namespace, m.Name, m.Labels) {
				if err := lb.Put(k, nil); err != nil {
					return err
				}
			}
			return nil
		})
	})
	if err != nil {
		return err
	}
	return tx.Bucket(bucketMeta).Put(indexVersionKey, indexVersion)
}

// scan calls fn with the namespace and name of each index entry under prefix.
func scanIndex(tx *bolt.Tx, prefix []byte, ns string, fn func(ns, name string) error) error {
	c := tx.Bucket(bucketLabels).Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		entry := string(k[len(prefix):])
		objNS, name := ns, entry
		if ns == storage.AllNamespaces {
			objNS, name, _ = strings.Cut(entry, "/")
		}
		if err := fn(objNS, name); err != nil {
			return err
		}
	}
	return nil
}

// Get implements storage.Reader.
func (s *Store) Get(_ context.Context, ns, name string, obj storage.Object) error {
	kind, err := storage.KindOf(obj)
	if err != nil {
		return err
	}
	return s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketName(kind))
		var v []byte
		if b != nil && ns == storage.AllNamespaces {
			// Names derive from random IDs: at most one namespace has it.
			_ = scanIndex(tx, labelPrefix(kind, anyNS, nameLabel, name), ns, func(objNS, n string) error {
				v = b.Get(objKey(objNS, n))
				return nil
			})
		} else if b != nil {
			v = b.Get(objKey(ns, name))
		}
		if v == nil {
			return fmt.Errorf("%s %s/%s: %w", kind, ns, name, storage.ErrNotFound)
		}
		return decode(v, obj)
	})
}

func decode(v []byte, obj runtime.Object) error {
	// Unmarshal into a zeroed object: fields absent from v must not survive.
	rv := reflect.ValueOf(obj).Elem()
	rv.Set(reflect.Zero(rv.Type()))
	if err := json.Unmarshal(v, obj); err != nil {
		return fmt.Errorf("decode stored object: %w", err)
	}
	return nil
}

// List implements storage.Reader.
func (s *Store) List(_ context.Context, ns string, list storage.ObjectList, opts storage.ListOptions) error {
	kind, err := storage.KindOf(list)
	if err != nil {
		return err
	}
	var items []runtime.Object
	err = s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketName(kind))
		if b == nil {
			return nil
		}
		add := func(v []byte) error {
			obj, err := storage.NewObject(kind)
			if err != nil {
				return err
			}
			if err := decode(v, obj); err != nil {
				return err
			}
			if matches(obj.GetLabels(), opts.Labels) {
				items = append(items, obj)
			}
			return nil
		}
		if len(opts.Labels) == 0 {
			c := b.Cursor()
			var prefix []byte
			if ns != storage.AllNamespaces {
				prefix = []byte(ns + "/")
			}
			for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
				if err := add(v); err != nil {
					return err
				}
			}
			return nil
		}
		// Scan the index of one label, then check the rest on the objects.
		var lk, lv string
		for lk, lv = range opts.Labels {
			break
		}
		idxNS := ns
		if ns == storage.AllNamespaces {
			idxNS = anyNS
		}
		return scanIndex(tx, labelPrefix(kind, idxNS, lk, lv), ns, func(objNS, name string) error {
			if v := b.Get(objKey(objNS, name)); v != nil {
				return add(v)
			}
			return nil
		})
	})
	if err != nil {
		return err
	}
	return meta.SetList(list, items)
}

func matches(have, want map[string]string) bool {
	for k, v := range want {
		if hv, ok := have[k]; !ok || hv != v {
			return false
		}
	}
	return true
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
	var rv uint64
	err = s.write(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketName(kind))
		if err != nil {
			return err
		}
		if b.Get(objKey(ns, name)) != nil {
			return fmt.Errorf("%s %s/%s: %w", kind, ns, name, storage.ErrAlreadyExists)
		}
		rv, err = tx.Bucket(bucketMeta).NextSequence()
		if err != nil {
			return err
		}
		return put(tx, b, kind, obj, rv, nil, true)
	})
	if err != nil {
		return err
	}
	obj.SetResourceVersion(strconv.FormatUint(rv, 10))
	return nil
}

// put encodes obj with resourceVersion rv and maintains the label index.
func put(tx *bolt.Tx, b *bolt.Bucket, kind string, obj storage.Object, rv uint64, old map[string]string, create bool) error {
	// Work on a copy so a failed transaction leaves the caller's object untouched.
	cp, ok := obj.DeepCopyObject().(storage.Object)
	if !ok {
		return fmt.Errorf("storage: %T does not deep-copy to an object", obj)
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
		return err
	}
	ns, name := cp.GetNamespace(), cp.GetName()
	lb := tx.Bucket(bucketLabels)
	if !create {
		for _, k := range indexKeys(kind, ns, name, old) {
			if err := lb.Delete(k); err != nil {
				return err
			}
		}
	}
	for _, k := range indexKeys(kind, ns, name, cp.GetLabels()) {
		if err := lb.Put(k, nil); err != nil {
			return err
		}
	}
	if err := b.Put(objKey(ns, name), data); err != nil {
		return err
	}
	// Hand back what is stored: creation time and UID as well as the version.
	if create {
		obj.SetCreationTimestamp(cp.GetCreationTimestamp())
		obj.SetUID(cp.GetUID())
	}
	return nil
}

// current loads the stored version's labels and checks the caller's version.
func current(b *bolt.Bucket, kind string, obj storage.Object) (map[string]string, error) {
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
	var rv uint64
	err = s.write(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketName(kind))
		old, err := current(b, kind, obj)
		if err != nil {
			return err
		}
		rv, err = tx.Bucket(bucketMeta).NextSequence()
		if err != nil {
			return err
		}
		return put(tx, b, kind, obj, rv, old, false)
	})
	if err != nil {
		return err
	}
	obj.SetResourceVersion(strconv.FormatUint(rv, 10))
	return nil
}

// Delete implements storage.Writer.
func (s *Store) Delete(_ context.Context, obj storage.Object) error {
	kind, err := storage.KindOf(obj)
	if err != nil {
		return err
	}
	return s.write(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketName(kind))
		old, err := current(b, kind, obj)
		if err != nil {
			return err
		}
		lb := tx.Bucket(bucketLabels)
		for _, k := range indexKeys(kind, obj.GetNamespace(), obj.GetName(), old) {
			if err := lb.Delete(k); err != nil {
				return err
			}
		}
		return b.Delete(objKey(obj.GetNamespace(), obj.GetName()))
	})
}
