package storage

import (
	"context"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/kacme/kacme/api/v1alpha1"
)

// Summary is the little of a stored object that counts, sorted pages and
// periodic sweeps need, so that they do not have to read every object: a
// backend that does not keep every object in memory keeps this for each.
type Summary struct {
	Namespace, Name string
	// Created is the object's creation time.
	Created time.Time
	// Status: an order's or authorization's status, an account's state, and
	// "revoked" for a revoked certificate ("" otherwise).
	Status string
	// Profile is the AcmeProfile the object belongs to.
	Profile string
	// At: when an order or authorization expires, when a certificate's
	// validity ends (zero for accounts).
	At time.Time
	// Text: an order's identifiers (wildcards with their "*."), or a
	// certificate's names, space-separated; an authorization's identifier
	// as "<type>:<value>" ("dns:*.example.com" for a wildcard).
	Text string
	// Offered: how many authorizations an order offers that are derived
	// from it until they are stored (len(status.offered)).
	Offered int
}

// StatusRevoked is a revoked certificate's Summary.Status.
const StatusRevoked = "revoked"

// Summarize returns what Summary keeps of obj.
func Summarize(obj Object) Summary {
	s := Summary{Namespace: obj.GetNamespace(), Name: obj.GetName(), Created: obj.GetCreationTimestamp().Time}
	switch o := obj.(type) {
	case *v1alpha1.AcmeOrder:
		s.Status, s.Profile, s.At = o.Status.Status, o.Spec.Profile, o.Status.Expires.Time
		s.Offered = len(o.Status.Offered)
		ids := make([]string, len(o.Spec.Identifiers))
		for i, id := range o.Spec.Identifiers {
			ids[i] = id.Value
		}
		s.Text = strings.Join(ids, " ")
	case *v1alpha1.AcmeChallenge:
		s.Status, s.Profile, s.At = o.Status.Status, o.Spec.Profile, o.Status.Expires.Time
		s.Text = o.Spec.Identifier.Value
		if o.Spec.Wildcard {
			s.Text = "*." + s.Text
		}
		s.Text = o.Spec.Identifier.Type + ":" + s.Text
	case *v1alpha1.AcmeCertificate:
		s.Profile, s.At, s.Text = o.Spec.Profile, o.Spec.NotAfter.Time, strings.Join(o.Spec.Names, " ")
		if o.Spec.Revocation != nil {
			s.Status = StatusRevoked
		}
	case *v1alpha1.AcmeAccount:
		s.Status, s.Profile = o.Spec.State, o.Spec.Profile
	}
	return s
}

// SummaryLister is a Reader that answers ListSummaries without reading
// every object (the embedded store keeps the summaries in memory).
type SummaryLister interface {
	// ListSummaries returns the summaries of the objects of kind in
	// namespace (or AllNamespaces) with all of labels, in no particular order.
	ListSummaries(ctx context.Context, namespace, kind string, labels map[string]string) ([]Summary, error)
}

// ListSummaries returns the summaries of the objects of kind ("AcmeOrder")
// in namespace (or AllNamespaces) with all of labels: from r itself when it
// is a SummaryLister, otherwise by summarizing a Shared List.
func ListSummaries(ctx context.Context, r Reader, namespace, kind string, labels map[string]string) ([]Summary, error) {
	if sl, ok := r.(SummaryLister); ok {
		return sl.ListSummaries(ctx, namespace, kind, labels)
	}
	return SummarizeList(ctx, r, namespace, kind, labels)
}

// SummarizeList summarizes a Shared List of r: ListSummaries for a Reader
// that keeps no summaries.
func SummarizeList(ctx context.Context, r Reader, namespace, kind string, labels map[string]string) ([]Summary, error) {
	list, err := NewList(kind)
	if err != nil {
		return nil, err
	}
	if err := r.List(ctx, namespace, list, ListOptions{Labels: labels, Shared: true}); err != nil {
		return nil, err
	}
	out := make([]Summary, 0, meta.LenList(list))
	err = meta.EachListItem(list, func(o runtime.Object) error {
		if obj, ok := o.(Object); ok {
			out = append(out, Summarize(obj))
		}
		return nil
	})
	return out, err
}

// ExpiryLister is a Reader that can leave out, before reading them, the
// objects that end too late for a retention sweep.
type ExpiryLister interface {
	// ListExpired returns the summaries of the objects of kind in
	// namespace (or AllNamespaces) with all of labels whose At is before
	// before, in no particular order.
	ListExpired(ctx context.Context, namespace, kind string, labels map[string]string, before time.Time) ([]Summary, error)
}

// ListExpired returns the summaries of the objects of kind in namespace (or
// AllNamespaces) with all of labels that ended before before (Summary.At;
// a zero At counts as ended): from r itself when it is an ExpiryLister,
// otherwise by filtering ListSummaries.
func ListExpired(ctx context.Context, r Reader, namespace, kind string, labels map[string]string, before time.Time) ([]Summary, error) {
	if el, ok := r.(ExpiryLister); ok {
		return el.ListExpired(ctx, namespace, kind, labels, before)
	}
	all, err := ListSummaries(ctx, r, namespace, kind, labels)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(all, func(s Summary) bool { return !s.At.Before(before) }), nil
}

// SummaryVisitor is a Reader that hands out its summaries one at a time
// instead of copying them all (a dashboard page over 100,000 orders then
// allocates what the page keeps, not 100,000 summaries).
type SummaryVisitor interface {
	// VisitSummaries calls fn with each summary of kind in namespace (or
	// AllNamespaces), in no particular order, holding the store's read
	// lock: fn must copy what it keeps, must be quick, and must not call
	// the store.
	VisitSummaries(ctx context.Context, namespace, kind string, fn func(*Summary)) error
}

// VisitSummaries calls fn with each summary of kind in namespace (or
// AllNamespaces): from r itself when it is a SummaryVisitor (fn must then
// copy what it keeps and not call r), otherwise over ListSummaries.
func VisitSummaries(ctx context.Context, r Reader, namespace, kind string, fn func(*Summary)) error {
	if v, ok := r.(SummaryVisitor); ok {
		return v.VisitSummaries(ctx, namespace, kind, fn)
	}
	all, err := ListSummaries(ctx, r, namespace, kind, nil)
	if err != nil {
		return err
	}
	for i := range all {
		fn(&all[i])
	}
	return nil
}

// Counter is a Reader that counts objects without listing them.
type Counter interface {
	// CountByNamespace returns how many objects of kind each namespace holds.
	CountByNamespace(ctx context.Context, kind string) (map[string]int, error)
}

// CountByNamespace returns how many objects of kind ("AcmeOrder") each
// namespace holds: from r itself when it is a Counter, otherwise from
// ListSummaries.
func CountByNamespace(ctx context.Context, r Reader, kind string) (map[string]int, error) {
	if c, ok := r.(Counter); ok {
		return c.CountByNamespace(ctx, kind)
	}
	all, err := ListSummaries(ctx, r, AllNamespaces, kind, nil)
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	for i := range all {
		out[all[i].Namespace]++
	}
	return out, nil
}
