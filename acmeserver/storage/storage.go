// Package storage is the seam between the ACME server and where its state
// lives. Backends store the api/v1alpha1 objects themselves, so the standalone
// store and the Kubernetes store hold the very same objects.
//
// Concurrency is optimistic, as in Kubernetes: every object carries a
// resourceVersion; Update and Delete succeed only when the caller's version is
// the stored one, and fail with ErrConflict otherwise.
package storage

import (
	"context"
	"errors"
	"fmt"
	"reflect"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	"github.com/kacme/kacme/api/v1alpha1"
)

// Sentinel errors every backend returns (wrapped).
var (
	ErrNotFound      = errors.New("not found")
	ErrAlreadyExists = errors.New("already exists")
	ErrConflict      = errors.New("conflict: the object was modified")
	// ErrUnavailable: the store could not be reached or did not answer in
	// time (the API server restarting, etcd overloaded). The write may or
	// may not have happened; the caller retries later. The ACME edge turns
	// it into 503 serverInternal with Retry-After.
	ErrUnavailable = errors.New("the store is unavailable")
	// ErrQuotaExceeded: the store refused a new object because a quota on
	// its namespace is used up (a Kubernetes ResourceQuota). The ACME edge
	// turns it into 429 rateLimited.
	ErrQuotaExceeded = errors.New("the store's quota is used up")
)

// Object is a stored kacme object.
type Object interface {
	metav1.Object
	runtime.Object
}

// ObjectList is a list of stored objects (e.g. *v1alpha1.AcmeOrderList).
type ObjectList interface {
	metav1.ListInterface
	runtime.Object
}

// AllNamespaces as List's namespace lists every namespace.
const AllNamespaces = ""

// ListOptions filter List.
type ListOptions struct {
	// Labels that must all match exactly.
	Labels map[string]string
	// Shared: the caller only reads the items, so a backend that keeps
	// objects in memory may hand out its own instead of deep copies (the
	// list's item structs are still the caller's; maps, slices and pointers
	// inside them are shared). For pages that look at every object.
	Shared bool
}

// Reader reads objects.
type Reader interface {
	// Get fills obj with the object called name in namespace; with
	// AllNamespaces, in whichever namespace holds it (the server's names
	// derive from random IDs and are unique across namespaces).
	Get(ctx context.Context, namespace, name string, obj Object) error
	// List fills list with the objects of its kind in namespace (or in
	// AllNamespaces) matching opts, in no particular order.
	List(ctx context.Context, namespace string, list ObjectList, opts ListOptions) error
}

// Writer changes objects. Each call is one durable write.
type Writer interface {
	// Create stores a new object and sets its resourceVersion; ErrAlreadyExists if the name is taken.
	Create(ctx context.Context, obj Object) error
	// Update replaces an object if obj's resourceVersion is the stored one (compare-and-swap); ErrConflict otherwise.
	Update(ctx context.Context, obj Object) error
	// Delete removes an object; with a resourceVersion set it is compare-and-swap too.
	Delete(ctx context.Context, obj Object) error
}

// Store is everything the server persists.
type Store interface {
	Reader
	Writer
	Close() error
}

// Scheme knows the kacme kinds; backends use it to name buckets and build lists.
var Scheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}()

// KindOf returns the kind of a registered object or list ("AcmeOrder" for both).
func KindOf(obj runtime.Object) (string, error) {
	gvks, _, err := Scheme.ObjectKinds(obj)
	if err != nil || len(gvks) == 0 {
		return "", fmt.Errorf("storage: unregistered type %T: %w", obj, err)
	}
	k := gvks[0].Kind
	if len(k) > 4 && k[len(k)-4:] == "List" {
		k = k[:len(k)-4]
	}
	return k, nil
}

// NewObject returns an empty object of kind.
func NewObject(kind string) (Object, error) {
	o, err := Scheme.New(v1alpha1.GroupVersion.WithKind(kind))
	if err != nil {
		return nil, err
	}
	obj, ok := o.(Object)
	if !ok {
		return nil, fmt.Errorf("storage: %s is not an object", kind)
	}
	return obj, nil
}

// NewList returns an empty list of kind.
func NewList(kind string) (ObjectList, error) {
	o, err := Scheme.New(v1alpha1.GroupVersion.WithKind(kind + "List"))
	if err != nil {
		return nil, err
	}
	list, ok := o.(ObjectList)
	if !ok {
		return nil, fmt.Errorf("storage: %sList is not a list", kind)
	}
	return list, nil
}

// CopyInto makes dst (a pointer to the same type as src) a deep copy of
// src, replacing whatever dst held: how backends hand out what they keep.
func CopyInto(dst, src Object) {
	reflect.ValueOf(dst).Elem().Set(reflect.ValueOf(src.DeepCopyObject()).Elem())
}

// IsNotFound reports a (wrapped) ErrNotFound.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// IsConflict reports a (wrapped) ErrConflict.
func IsConflict(err error) bool { return errors.Is(err, ErrConflict) }

// IsUnavailable reports a (wrapped) ErrUnavailable.
func IsUnavailable(err error) bool { return errors.Is(err, ErrUnavailable) }

// IsQuotaExceeded reports a (wrapped) ErrQuotaExceeded.
func IsQuotaExceeded(err error) bool { return errors.Is(err, ErrQuotaExceeded) }

// IsAlreadyExists reports a (wrapped) ErrAlreadyExists.
func IsAlreadyExists(err error) bool { return errors.Is(err, ErrAlreadyExists) }

// KubeScheme is Scheme plus the core types a cluster component reads (Secrets, Events).
func KubeScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}

type consistentKey struct{}

// Consistent marks ctx for reads that must see every acknowledged write, by
// any replica: a backend that reads from a cache reads from the source of
// truth instead, where it can. For decisions a stale read would get wrong
// (refusing to finalize an order another replica just made ready).
func Consistent(ctx context.Context) context.Context {
	return context.WithValue(ctx, consistentKey{}, true)
}

type withoutPEMKey struct{}

// WithoutPEM marks ctx for reads that show an object in a list and need no
// certificate PEM (a dashboard page of 50 certificates): a backend whose
// cache leaves the PEM out hands out its cached copy instead of reading
// the whole object from the source of truth.
func WithoutPEM(ctx context.Context) context.Context {
	return context.WithValue(ctx, withoutPEMKey{}, true)
}

// IsWithoutPEM reports whether ctx says a certificate's PEM is not needed.
func IsWithoutPEM(ctx context.Context) bool {
	v, _ := ctx.Value(withoutPEMKey{}).(bool)
	return v
}

type expectMissKey struct{}

// ExpectMiss marks ctx for reads of objects that often do not exist (an
// authorization that is derived until it is first stored): a backend that
// reads from a cache takes the cache's "not found" as the answer instead of
// asking the source of truth. A Consistent ctx still asks it.
func ExpectMiss(ctx context.Context) context.Context {
	return context.WithValue(ctx, expectMissKey{}, true)
}

// IsExpectMiss reports whether ctx says a cache miss is the answer.
func IsExpectMiss(ctx context.Context) bool {
	v, _ := ctx.Value(expectMissKey{}).(bool)
	return v
}

// IsConsistent reports whether ctx asks for consistent reads.
func IsConsistent(ctx context.Context) bool {
	v, _ := ctx.Value(consistentKey{}).(bool)
	return v
}
