// Package kube keeps ACME state as custom resources: the storage seam over
// the Kubernetes API. Reads come from an informer cache, writes go to the API
// server with resourceVersion compare-and-swap. Because a cache lags behind
// the writes that a process has just made, the store keeps a short-lived
// overlay of its own writes so that a read after a write sees it
// (read-your-writes) without an API GET on the request path.
package kube

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http2"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	k8slabels "k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/selection"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/client-go/util/flowcontrol"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kacme/kacme/acmeserver/storage"
	"github.com/kacme/kacme/api/v1alpha1"
)

// Store implements storage.Store over the Kubernetes API.
type Store struct {
	writer    client.Client
	reader    client.Reader
	api       client.Reader           // uncached; nil: a cache miss is final
	apiRate   flowcontrol.RateLimiter // bounds the misses passed to api
	overlay   *overlay
	indexed   bool                    // the reader has the indexes of RegisterIndexes
	pageSize  int64                   // ListSummaries reads the reader in pages of this many (0: at once)
	summaries *summaries              // WithSummaries; nil: summaries come from Lists
	fetcher   client.Reader           // WithFetches: reads what a compacted cache leaves out
	fetchRate flowcontrol.RateLimiter // bounds fetcher's reads
}

var (
	_ storage.Store         = (*Store)(nil)
	_ storage.SummaryLister = (*Store)(nil)
	_ storage.Counter       = (*Store)(nil)
)

// New returns a store that writes through writer and reads through reader
// (normally the manager's cache).
func New(writer client.Client, reader client.Reader) *Store {
	return &Store{writer: writer, reader: reader, overlay: newOverlay(30 * time.Second)}
}

// WithAPIReader makes a miss in the cache and in this process's own writes
// ask the API server (api must not be a cache). Replicas need it: an object
// another replica created a moment ago may not have reached this one's cache.
// A single server leaves it off, so a request for a name that does not exist
// costs no API read.
//
// Misses are what a request for a made-up account or order causes, so at
// most 20 per second (bursts of 50) go to the API server; beyond that a miss
// is final, as without an API reader.
func (s *Store) WithAPIReader(api client.Reader) *Store {
	s.api = api
	s.apiRate = flowcontrol.NewTokenBucketRateLimiter(20, 50)
	return s
}

// apiGet reads one object from the API server, bounded by RequestTimeout.
func (s *Store) apiGet(ctx context.Context, ns, name string, obj storage.Object) error {
	ctx, cancel := context.WithTimeout(ctx, RequestTimeout)
	defer cancel()
	if err := s.api.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, obj); err != nil {
		return err
	}
	v1alpha1.MoveLegacyFields(obj) // as the cache's transform does
	return nil
}

// askAPI reports whether a miss may be read from the API server.
func (s *Store) askAPI() bool { return s.api != nil && s.apiRate.TryAccept() }

// Close implements storage.Store; the clients belong to the caller.
func (s *Store) Close() error { return nil }

func mapErr(err error, kind, ns, name string) error {
	switch {
	case err == nil:
		return nil
	case apierrors.IsNotFound(err):
		return fmt.Errorf("%s %s/%s: %w", kind, ns, name, storage.ErrNotFound)
	case apierrors.IsConflict(err):
		return fmt.Errorf("%s %s/%s: %w", kind, ns, name, storage.ErrConflict)
	case apierrors.IsAlreadyExists(err):
		return fmt.Errorf("%s %s/%s: %w", kind, ns, name, storage.ErrAlreadyExists)
	case unavailable(err):
		return fmt.Errorf("%s %s/%s: %w: %w", kind, ns, name, storage.ErrUnavailable, err)
	case apierrors.IsForbidden(err) && strings.Contains(err.Error(), "exceeded quota"):
		// The ResourceQuota admission plugin's refusal (a namespace's object
		// count is used up), not RBAC.
		return fmt.Errorf("%s %s/%s: %w: %w", kind, ns, name, storage.ErrQuotaExceeded, err)
	}
	return fmt.Errorf("%s %s/%s: %w", kind, ns, name, err)
}

// RequestTimeout bounds every request this store sends to the API server, so
// that an API server that stopped answering (not refusing: a partition, a
// stuck connection) costs an ACME request a bounded wait and a retryable
// answer instead of a hang.
const RequestTimeout = 10 * time.Second

// unavailable reports an error that says the API server could not be reached
// or did not complete the request, rather than that the request was wrong:
// transport failures, timeouts, 429, and the 5xx answers the API server gives
// while it or etcd is unhealthy.
func unavailable(err error) bool {
	switch {
	case apierrors.IsServiceUnavailable(err), apierrors.IsServerTimeout(err), apierrors.IsTimeout(err),
		apierrors.IsTooManyRequests(err), apierrors.IsInternalError(err), apierrors.IsUnexpectedServerError(err),
		errors.Is(err, context.DeadlineExceeded),
		utilnet.IsConnectionRefused(err), utilnet.IsConnectionReset(err), utilnet.IsProbableEOF(err),
		// The connection ended after the answer's headers, in its body:
		// client-go wraps what the read returned ("unexpected error when
		// reading response body. Please retry. Original error: %w"), which
		// IsProbableEOF, comparing with ==, does not see; over HTTP/2 the
		// stream is reset instead. Whether the API server applied a write
		// is then unknown, as with a connection reset: the caller retries.
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.As(err, new(http2.StreamError)):
		return true
	}
	var ne net.Error // *url.Error: the request never got an answer
	return errors.As(err, &ne)
}

// Get implements storage.Reader: the cache's copy, or this process's own
// newer write.
func (s *Store) Get(ctx context.Context, ns, name string, obj storage.Object) error {
	kind, err := storage.KindOf(obj)
	if err != nil {
		return err
	}
	if ns == storage.AllNamespaces {
		return s.getAnyNamespace(ctx, kind, name, obj)
	}
	cached, err := storage.NewObject(kind)
	if err != nil {
		return err
	}
	if s.api != nil && storage.IsConsistent(ctx) {
		if err := s.apiGet(ctx, ns, name, cached); err != nil {
			return mapErr(err, kind, ns, name)
		}
		storage.CopyInto(obj, cached)
		return nil
	}
	// The overlay is read before the cache: an entry is only forgotten once
	// the cache holds its version, so whatever the cache says afterwards is
	// at least as new as a missing entry.
	k := key(kind, ns, name)
	e := s.overlay.lookup(k)
	cerr := s.reader.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, cached)
	if cerr != nil && !apierrors.IsNotFound(cerr) {
		return mapErr(cerr, kind, ns, name)
	}
	var cachedRV string
	if cerr == nil {
		cachedRV = cached.GetResourceVersion()
	}
	partial := cerr == nil && compacted(cached)
	if e != nil && s.overlay.newer(k, e, cachedRV, partial) {
		if e.deleted {
			return mapErr(apierrors.NewNotFound(schemaGR(kind), name), kind, ns, name)
		}
		storage.CopyInto(obj, e.obj)
		return nil
	}
	if partial && storage.IsWithoutPEM(ctx) {
		partial = false // the cached copy is all the caller needs
	}
	if partial {
		// The cache left out part of this object (Compact): this process's
		// own write of the same version has it, else the API server.
		if e != nil && !e.deleted && e.rv == parseRV(cachedRV) {
			storage.CopyInto(obj, e.obj)
			return nil
		}
		if err := s.fetch(ctx, ns, name, cached); err != nil {
			return mapErr(err, kind, ns, name)
		}
		storage.CopyInto(obj, cached)
		return nil
	}
	if cerr != nil && e == nil && !storage.IsExpectMiss(ctx) && s.askAPI() {
		cerr = s.apiGet(ctx, ns, name, cached)
	}
	if cerr != nil {
		return mapErr(cerr, kind, ns, name)
	}
	restore(cached)
	storage.CopyInto(obj, cached)
	return nil
}

// WithFetches lets Get read from api (not a cache) what a compacted cache
// leaves out (Compact: the PEM of a certificate). Those reads are what a
// download or revocation of a certificate issued more than a few seconds ago
// costs, so at most 50 per second (bursts of 100) go to the API server;
// beyond that Get answers storage.ErrUnavailable (the client retries).
func (s *Store) WithFetches(api client.Reader) *Store {
	s.fetcher = api
	s.fetchRate = flowcontrol.NewTokenBucketRateLimiter(50, 100)
	return s
}

// fetch reads the whole object from the API server.
func (s *Store) fetch(ctx context.Context, ns, name string, obj storage.Object) error {
	if s.fetcher == nil {
		return fmt.Errorf("the cache keeps part of it only and the store has no API reader (kube.Store.WithFetches)")
	}
	if !s.fetchRate.TryAccept() {
		return fmt.Errorf("%w: too many reads of what the cache leaves out; retry", storage.ErrUnavailable)
	}
	ctx, cancel := context.WithTimeout(ctx, RequestTimeout)
	defer cancel()
	if err := s.fetcher.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, obj); err != nil {
		return err
	}
	v1alpha1.MoveLegacyFields(obj)
	return nil
}

// getAnyNamespace finds the object called name in whichever namespace holds
// it (names derive from random IDs, so at most one does) through the name
// index or the summaries' name map, or among this process's own recent
// writes.
func (s *Store) getAnyNamespace(ctx context.Context, kind, name string, obj storage.Object) error {
	ns, err := s.cachedNamespace(ctx, kind, name)
	if err != nil {
		return err
	}
	if ns == "" {
		if e := s.overlay.find(kind, name); e != nil {
			ns = e.ns
		} else if storage.IsExpectMiss(ctx) && !storage.IsConsistent(ctx) {
			return mapErr(apierrors.NewNotFound(schemaGR(kind), name), kind, "*", name) // the cache's answer will do
		} else if ns, err = s.findInAPI(ctx, kind, name); err != nil {
			return err
		} else if ns == "" {
			return mapErr(apierrors.NewNotFound(schemaGR(kind), name), kind, "*", name)
		}
	}
	return s.Get(ctx, ns, name, obj)
}

// cachedNamespace is the namespace of the cached object of kind called
// name ("" when the cache has none).
func (s *Store) cachedNamespace(ctx context.Context, kind, name string) (string, error) {
	if kindIndexes[kind].names && s.summaries.ready(kind) {
		return s.summaries.namespaceOf(kind, name), nil
	}
	list, err := storage.NewList(kind)
	if err != nil {
		return "", err
	}
	opts := []client.ListOption{client.UnsafeDisableDeepCopy}
	if s.byName(kind) {
		opts = append(opts, client.MatchingFields{nameIndex: name})
	}
	if err := s.reader.List(ctx, list, opts...); err != nil {
		return "", fmt.Errorf("get %s %s in any namespace: %w", kind, name, err)
	}
	ns := ""
	err = meta.EachListItem(list, func(it runtime.Object) error {
		if o := it.(storage.Object); ns == "" && o.GetName() == name {
			ns = o.GetNamespace()
		}
		return nil
	})
	return ns, err
}

// findInAPI is the namespace of the object called name according to the
// API server ("" when none or without an API reader).
func (s *Store) findInAPI(ctx context.Context, kind, name string) (string, error) {
	if !s.askAPI() {
		return "", nil
	}
	list, err := storage.NewList(kind)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, RequestTimeout)
	defer cancel()
	if err := s.api.List(ctx, list, client.MatchingFields{"metadata.name": name}); err != nil {
		return "", mapErr(err, kind, "*", name)
	}
	items, err := meta.ExtractList(list)
	if err != nil || len(items) == 0 {
		return "", err
	}
	return items[0].(storage.Object).GetNamespace(), nil
}

// List implements storage.Reader.
func (s *Store) List(ctx context.Context, ns string, list storage.ObjectList, opts storage.ListOptions) error {
	kind, err := storage.KindOf(list)
	if err != nil {
		return err
	}
	snap := s.overlay.snapshot(kind, ns) // before the cache, as in Get
	lo := s.listOptions(kind, ns, opts.Labels)
	if opts.Shared {
		lo = append(lo, client.UnsafeDisableDeepCopy)
	}
	if err := s.reader.List(ctx, list, lo...); err != nil {
		return fmt.Errorf("list %s in %s: %w", kind, ns, err)
	}
	// Each item is a copy (a shallow one when Shared): its labels can be
	// restored without touching the cache's object.
	if err := meta.EachListItem(list, func(it runtime.Object) error {
		restore(it.(storage.Object))
		return nil
	}); err != nil {
		return err
	}
	if len(snap) == 0 && len(opts.Labels) <= 1 {
		// Nothing of this process's is newer than the cache, and the cache
		// matched the one label itself: its answer stands, without copying
		// every item a second time (a dashboard page lists whole kinds).
		return nil
	}
	items, err := meta.ExtractList(list)
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	var out []runtime.Object
	for _, it := range items {
		o := it.(storage.Object)
		seen[o.GetNamespace()+"/"+o.GetName()] = true
		if !matches(o.GetLabels(), opts.Labels) {
			continue // an index matched one label; the others are checked here
		}
		k := key(kind, o.GetNamespace(), o.GetName())
		if e := snap[k]; e != nil && s.overlay.newer(k, e, o.GetResourceVersion(), kind == "AcmeCertificate") {
			if e.deleted || !matches(e.obj.GetLabels(), opts.Labels) {
				continue
			}
			out = append(out, e.obj.DeepCopyObject())
			continue
		}
		out = append(out, it)
	}
	// Objects this process created that the cache has not seen yet.
	for _, e := range snap {
		if !seen[e.ns+"/"+e.obj.GetName()] && !e.deleted && matches(e.obj.GetLabels(), opts.Labels) {
			out = append(out, e.obj.DeepCopyObject())
		}
	}
	return meta.SetList(list, out)
}

func matches(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

// Create implements storage.Writer.
func (s *Store) Create(ctx context.Context, obj storage.Object) error {
	kind, err := storage.KindOf(obj)
	if err != nil {
		return err
	}
	stampExpires(obj)
	ctx, cancel := context.WithTimeout(ctx, RequestTimeout)
	defer cancel()
	if err := s.writer.Create(ctx, obj); err != nil {
		return mapErr(err, kind, obj.GetNamespace(), obj.GetName())
	}
	s.overlay.put(key(kind, obj.GetNamespace(), obj.GetName()), kind, obj, false)
	return nil
}

// Update implements storage.Writer: compare-and-swap on resourceVersion.
func (s *Store) Update(ctx context.Context, obj storage.Object) error {
	kind, err := storage.KindOf(obj)
	if err != nil {
		return err
	}
	if obj.GetResourceVersion() == "" {
		return fmt.Errorf("update %s: resourceVersion is required", kind)
	}
	stampExpires(obj)
	ctx, cancel := context.WithTimeout(ctx, RequestTimeout)
	defer cancel()
	if err := s.writer.Update(ctx, obj); err != nil {
		return mapErr(err, kind, obj.GetNamespace(), obj.GetName())
	}
	s.overlay.put(key(kind, obj.GetNamespace(), obj.GetName()), kind, obj, false)
	return nil
}

// Delete implements storage.Writer; with a resourceVersion it is compare-and-swap.
func (s *Store) Delete(ctx context.Context, obj storage.Object) error {
	kind, err := storage.KindOf(obj)
	if err != nil {
		return err
	}
	var opts []client.DeleteOption
	if rv := obj.GetResourceVersion(); rv != "" {
		opts = append(opts, client.Preconditions{ResourceVersion: &rv})
	}
	ctx, cancel := context.WithTimeout(ctx, RequestTimeout)
	defer cancel()
	if err := s.writer.Delete(ctx, obj, opts...); err != nil {
		return mapErr(err, kind, obj.GetNamespace(), obj.GetName())
	}
	s.overlay.put(key(kind, obj.GetNamespace(), obj.GetName()), kind, obj, true)
	return nil
}

func key(kind, ns, name string) string { return kind + "/" + ns + "/" + name }

// overlay remembers this process's writes until the cache has caught up.
type overlay struct {
	mu      sync.Mutex
	ttl     time.Duration
	entries map[string]*entry
	puts    int
}

type entry struct {
	kind, ns string
	obj      storage.Object
	rv       uint64
	deleted  bool
	at       time.Time
}

func newOverlay(ttl time.Duration) *overlay {
	return &overlay{ttl: ttl, entries: map[string]*entry{}}
}

// parseRV reads a resourceVersion as etcd's revision. Kubernetes calls the
// value opaque; comparing it only decides which of two copies of one object
// is newer, and an unparseable one is treated as oldest.
func parseRV(rv string) uint64 {
	n, _ := strconv.ParseUint(rv, 10, 64)
	return n
}

func (o *overlay) put(k, kind string, obj storage.Object, deleted bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	rv := parseRV(obj.GetResourceVersion())
	if cur, ok := o.entries[k]; ok && cur.rv > rv && !deleted {
		return
	}
	o.entries[k] = &entry{kind: kind, ns: obj.GetNamespace(), obj: obj.DeepCopyObject().(storage.Object), rv: rv, deleted: deleted, at: time.Now()}
	// Entries nobody reads again (a deleted object, a certificate never
	// downloaded) are dropped here once expired, so the overlay holds at
	// most about ttl's worth of writes; the sweep is amortised over puts.
	if o.puts++; o.puts%1024 == 0 {
		for k, e := range o.entries {
			if time.Since(e.at) > o.ttl {
				delete(o.entries, k)
			}
		}
	}
}

// lookup returns the live entry for k, if any.
func (o *overlay) lookup(k string) *entry {
	o.mu.Lock()
	defer o.mu.Unlock()
	e, ok := o.entries[k]
	if !ok {
		return nil
	}
	if time.Since(e.at) > o.ttl {
		delete(o.entries, k)
		return nil
	}
	return e
}

// newer reports whether entry e (read before the cache) is newer than the
// cache's copy (cachedRV "" means the cache has none), and forgets e once the
// cache has caught up with it, unless keep (the cache's copy is partial:
// the entry is the whole object until it expires).
func (o *overlay) newer(k string, e *entry, cachedRV string, keep bool) bool {
	caughtUp := false
	if cachedRV == "" {
		caughtUp = e.deleted // the cache has seen the deletion
	} else if c := parseRV(cachedRV); c > e.rv || (c == e.rv && !e.deleted) {
		caughtUp = true // the cache has caught up (or the object was recreated)
	}
	if !caughtUp {
		return true
	}
	if keep {
		return false
	}
	o.mu.Lock()
	if o.entries[k] == e {
		delete(o.entries, k)
	}
	o.mu.Unlock()
	return false
}

// find returns a live entry of kind called name in any namespace.
func (o *overlay) find(kind, name string) *entry {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, e := range o.entries {
		if e.kind == kind && e.obj.GetName() == name && time.Since(e.at) <= o.ttl && !e.deleted {
			return e
		}
	}
	return nil
}

// snapshot returns the live entries of a kind in a namespace (or all), by key.
func (o *overlay) snapshot(kind, ns string) map[string]*entry {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := map[string]*entry{}
	for k, e := range o.entries {
		if time.Since(e.at) > o.ttl {
			delete(o.entries, k)
			continue
		}
		if e.kind == kind && (ns == storage.AllNamespaces || e.ns == ns) {
			out[k] = e
		}
	}
	return out
}

// WithPagedLists makes ListSummaries read the reader in pages of n objects
// and keep only each page's summaries, so that summarizing a kind with
// 100,000 objects through an uncached reader (the API server) never holds
// more than one page decoded. For a store that lists through the API server
// (the controller's retention sweeps); it reads the reader only, not this
// process's recent writes.
func (s *Store) WithPagedLists(n int64) *Store {
	s.pageSize = n
	return s
}

// ListSummaries implements storage.SummaryLister.
func (s *Store) ListSummaries(ctx context.Context, ns, kind string, labels map[string]string) ([]storage.Summary, error) {
	if len(labels) == 0 && s.summaries.ready(kind) {
		return s.summaries.list(kind, ns, s.overlay.snapshot(kind, ns)), nil
	}
	if s.pageSize == 0 {
		return storage.SummarizeList(ctx, s, ns, kind, labels)
	}
	return s.pagedSummaries(ctx, ns, kind, k8slabels.SelectorFromSet(labels))
}

// ListExpired implements storage.ExpiryLister. With paged lists (the
// controller's sweeps through the API server) the API server leaves out what
// ends too late by v1alpha1.LabelExpires, before encoding anything: one
// selection of the objects labelled with an expiry up to before's second,
// one of those without the label (written before kacme set it); each
// summary is then checked against before exactly. Through the cache it
// filters ListSummaries.
func (s *Store) ListExpired(ctx context.Context, ns, kind string, labels map[string]string, before time.Time) ([]storage.Summary, error) {
	var out []storage.Summary
	if s.pageSize == 0 {
		all, err := s.ListSummaries(ctx, ns, kind, labels)
		if err != nil {
			return nil, err
		}
		out = all
	} else {
		labelled, err := k8slabels.NewRequirement(v1alpha1.LabelExpires, selection.LessThan, []string{strconv.FormatInt(before.Unix()+1, 10)})
		if err != nil {
			return nil, err
		}
		unlabelled, err := k8slabels.NewRequirement(v1alpha1.LabelExpires, selection.DoesNotExist, nil)
		if err != nil {
			return nil, err
		}
		for _, r := range []*k8slabels.Requirement{labelled, unlabelled} {
			sel := k8slabels.SelectorFromSet(labels).Add(*r)
			got, err := s.pagedSummaries(ctx, ns, kind, sel)
			if err != nil {
				return nil, err
			}
			out = append(out, got...)
		}
	}
	return slices.DeleteFunc(out, func(sum storage.Summary) bool { return !sum.At.Before(before) }), nil
}

// pagedSummaries summarizes the objects of kind in ns that sel selects,
// through the reader, a page at a time.
func (s *Store) pagedSummaries(ctx context.Context, ns, kind string, sel k8slabels.Selector) ([]storage.Summary, error) {
	var out []storage.Summary
	cont := ""
	for {
		list, err := storage.NewList(kind)
		if err != nil {
			return nil, err
		}
		opts := []client.ListOption{client.Limit(s.pageSize), client.Continue(cont)}
		if ns != storage.AllNamespaces {
			opts = append(opts, client.InNamespace(ns))
		}
		if !sel.Empty() {
			opts = append(opts, client.MatchingLabelsSelector{Selector: sel})
		}
		lctx, cancel := context.WithTimeout(ctx, RequestTimeout)
		err = s.reader.List(lctx, list, opts...)
		cancel()
		if err != nil {
			return nil, mapErr(err, kind, ns, "")
		}
		err = meta.EachListItem(list, func(o runtime.Object) error {
			if obj, ok := o.(storage.Object); ok {
				v1alpha1.MoveLegacyFields(obj)
				out = append(out, storage.Summarize(obj))
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		if cont = list.GetContinue(); cont == "" {
			return out, nil
		}
	}
}
