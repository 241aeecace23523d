package dashboard

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kacme/kacme/acmeserver/storage"
)

// summaries returns the summaries of every object of kind ("AcmeOrder")
// in the namespaces the session may list resource in: from memory in both
// modes (the embedded store's index, cluster mode's informer cache), so a
// page's filtering, counting and sorting reads no object.
func (d *Dashboard) summaries(ctx context.Context, s *session, kind, resource string) ([]storage.Summary, error) {
	all, err := storage.ListSummaries(ctx, d.o.Store, storage.AllNamespaces, kind, nil)
	if err != nil {
		return nil, err
	}
	return visible(ctx, d, s, resource, all, func(x *storage.Summary) string { return x.Namespace }), nil
}

// count returns how many objects of kind are in the namespaces the
// session may list resource in.
func (d *Dashboard) count(ctx context.Context, s *session, kind, resource string) (int, error) {
	byNS, err := storage.CountByNamespace(ctx, d.o.Store, kind)
	if err != nil {
		return 0, err
	}
	all := d.may(ctx, s, "list", resource, "")
	n := 0
	for ns, c := range byNS {
		if all || d.may(ctx, s, "list", resource, ns) {
			n += c
		}
	}
	return n, nil
}

// rowOrder orders rows by a time (newest first when desc), then by
// namespace and name: stores list in no particular order and many objects
// share a second, so without the tie-break page 2 could repeat page 1.
func rowOrder(at func(*storage.Summary) time.Time, desc bool) func(a, b *storage.Summary) int {
	return func(a, b *storage.Summary) int {
		if c := at(a).Compare(at(b)); c != 0 {
			if desc {
				return -c
			}
			return c
		}
		if c := strings.Compare(a.Namespace, b.Namespace); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	}
}

// selectRange reorders rows so that rows[lo:hi] hold, in order, what a
// full sort by cmp (a strict total order) would put there, in expected
// linear time plus the range's sort: a page of 50 among 100,000 rows
// costs a few comparisons per row instead of a full sort's seventeen.
func selectRange[T any](rows []T, lo, hi int, cmp func(a, b T) int) {
	if lo >= hi {
		return
	}
	nthElement(rows, lo, cmp)
	nthElement(rows[lo:], hi-lo-1, cmp)
	slices.SortFunc(rows[lo:hi], cmp)
}

// nthElement puts into a[k] what a sort would, with nothing greater before
// it and nothing smaller after it (quickselect, median-of-three pivots).
func nthElement[T any](a []T, k int, cmp func(a, b T) int) {
	l, r := 0, len(a)-1
	for r > l {
		if r-l < 16 {
			slices.SortFunc(a[l:r+1], cmp)
			return
		}
		m := l + (r-l)/2
		if cmp(a[m], a[l]) < 0 {
			a[m], a[l] = a[l], a[m]
		}
		if cmp(a[r], a[l]) < 0 {
			a[r], a[l] = a[l], a[r]
		}
		if cmp(a[r], a[m]) < 0 {
			a[r], a[m] = a[m], a[r]
		}
		a[m], a[r] = a[r], a[m] // the median is the pivot, at r
		i := l
		for j := l; j < r; j++ {
			if cmp(a[j], a[r]) < 0 {
				a[i], a[j] = a[j], a[i]
				i++
			}
		}
		a[i], a[r] = a[r], a[i]
		switch {
		case k == i:
			return
		case k < i:
			r = i - 1
		default:
			l = i + 1
		}
	}
}

// pageOf cuts the requested page (?page=) of rows in the given order and
// reads the page's objects (one Get each: at most a page size of them). A
// row whose object was deleted since it was listed is left out.
func pageOf[T any, P interface {
	*T
	storage.Object
}](ctx context.Context, d *Dashboard, r *http.Request, rows []*storage.Summary, total int, what string,
	at func(*storage.Summary) time.Time, desc bool) (pager, []P, error) {
	pg, lo, hi := paginate(r, len(rows), d.o.PageSize, total, what)
	selectRange(rows, lo, hi, rowOrder(at, desc))
	out := make([]P, 0, hi-lo)
	ctx = storage.WithoutPEM(ctx) // list pages show no PEM (its download reads the whole certificate)
	for _, row := range rows[lo:hi] {
		obj := P(new(T))
		if err := d.o.Store.Get(ctx, row.Namespace, row.Name, obj); err != nil {
			if storage.IsNotFound(err) {
				continue
			}
			return pg, nil, err
		}
		out = append(out, obj)
	}
	return pg, out, nil
}

func created(s *storage.Summary) time.Time { return s.Created }

// pager is a list page's position, shown by the "pager" template.
type pager struct {
	PageNo, Pages int
	// Total is how many objects of the kind the user may see, What their name.
	Total      int
	What       string
	Prev, Next string
}

// paginate says which rows [lo, hi) the requested page (?page=, 1-based,
// clamped) shows.
func paginate(r *http.Request, rows, size, total int, what string) (p pager, lo, hi int) {
	p = pager{Pages: max(1, (rows+size-1)/size), Total: total, What: what}
	p.PageNo, _ = strconv.Atoi(r.URL.Query().Get("page"))
	p.PageNo = min(max(p.PageNo, 1), p.Pages)
	p.Prev, p.Next = pageURL(r, p.PageNo-1), pageURL(r, p.PageNo+1)
	lo = (p.PageNo - 1) * size
	return p, lo, min(lo+size, rows)
}

func pageURL(r *http.Request, page int) string {
	q := r.URL.Query()
	q.Set("page", strconv.Itoa(page))
	return r.URL.Path + "?" + q.Encode()
}
