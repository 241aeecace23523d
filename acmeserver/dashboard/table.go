package dashboard

import (
	"cmp"
	"context"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kacme/kacme/acmeserver/storage"
)

// scan offers fn, one at a time, the summary of every object of kind in
// the namespaces the session may list resource in: from memory in both
// modes (the embedded store's index, cluster mode's informer cache), so a
// page's filtering, counting and sorting reads no object, and nothing is
// copied but what fn keeps. Which namespaces are visible is decided before
// the store is read (fn runs under the store's read lock).
func (d *Dashboard) scan(ctx context.Context, s *session, kind, resource string, fn func(*storage.Summary)) error {
	if d.may(ctx, s, "list", resource, "") {
		return storage.VisitSummaries(ctx, d.o.Store, storage.AllNamespaces, kind, fn)
	}
	byNS, err := storage.CountByNamespace(ctx, d.o.Store, kind)
	if err != nil {
		return err
	}
	allowed := map[string]bool{}
	for ns := range byNS {
		if d.may(ctx, s, "list", resource, ns) {
			allowed[ns] = true
		}
	}
	if len(allowed) == 0 {
		return nil
	}
	return storage.VisitSummaries(ctx, d.o.Store, storage.AllNamespaces, kind, func(x *storage.Summary) {
		if allowed[x.Namespace] {
			fn(x)
		}
	})
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

// pageRow is what a page keeps of a summary while it looks for its rows:
// the sort key and the object's name (strings shared with the store's, so
// keeping one allocates nothing).
type pageRow struct {
	at       int64 // Unix nanoseconds
	ns, name string
}

// rowOrder orders rows by their time (newest first when desc), then by
// namespace and name: stores list in no particular order and many objects
// share a second, so without the tie-break page 2 could repeat page 1.
func rowOrder(desc bool) func(a, b pageRow) int {
	return func(a, b pageRow) int {
		if c := cmp.Compare(a.at, b.at); c != 0 {
			if desc {
				return -c
			}
			return c
		}
		if c := strings.Compare(a.ns, b.ns); c != 0 {
			return c
		}
		return strings.Compare(a.name, b.name)
	}
}

// pageWindow keeps, of rows offered one at a time, those a full sort by
// cmp (a strict total order) would put at [lo, hi) among n: the first hi
// rows in order, or, for a page nearer the end, the last n-lo in reverse
// order, holding about twice that many at most (expected linear time): a
// page of 50 among 100,000 rows keeps a few hundred, not 100,000.
type pageWindow[T any] struct {
	n, lo, hi, k int
	rev          bool
	cmp          func(a, b T) int
	rows         []T
}

func newPageWindow[T any](n, lo, hi int, cmp func(a, b T) int) *pageWindow[T] {
	w := &pageWindow[T]{n: n, lo: lo, hi: hi, k: hi, cmp: cmp}
	if n-lo < hi {
		w.k, w.rev = n-lo, true
		w.cmp = func(a, b T) int { return cmp(b, a) }
	}
	return w
}

func (w *pageWindow[T]) add(x T) {
	if w.k <= 0 {
		return
	}
	w.rows = append(w.rows, x)
	if len(w.rows) >= 2*w.k+256 {
		w.trim()
	}
}

// trim keeps the k first rows (in w.cmp order, unsorted).
func (w *pageWindow[T]) trim() {
	if len(w.rows) > w.k {
		nthElement(w.rows, w.k-1, w.cmp)
		w.rows = w.rows[:w.k]
	}
}

// page returns rows [lo, hi) in order (fewer when fewer than n were offered).
func (w *pageWindow[T]) page() []T {
	w.trim()
	from := w.lo // the kept rows are the first ones: the page starts at lo
	if w.rev {
		from = max(w.n-w.hi, 0) // rows[i] is position n-1-i
	}
	from = min(from, len(w.rows))
	selectRange(w.rows, from, len(w.rows), w.cmp) // sorts the page's rows only
	out := w.rows[from:]
	if w.rev {
		slices.Reverse(out)
	}
	return out
}

// selectRange reorders rows so that rows[lo:hi] hold, in order, what a
// full sort by cmp would put there, in expected linear time plus the
// range's sort.
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

// pageOf is the requested page (?page=) of the objects of kind the
// session may see and match accepts, in the given order, read with one Get
// each (at most a page size of them): one pass over the summaries counts,
// a second keeps what the page needs (pageWindow). A row whose object was
// deleted since it was counted is left out.
func pageOf[T any, P interface {
	*T
	storage.Object
}](ctx context.Context, d *Dashboard, r *http.Request, s *session, kind, resource, what string,
	match func(*storage.Summary) bool, at func(*storage.Summary) time.Time, desc bool) (pager, []P, error) {
	total, matched := 0, 0
	err := d.scan(ctx, s, kind, resource, func(x *storage.Summary) {
		total++
		if match(x) {
			matched++
		}
	})
	if err != nil {
		return pager{}, nil, err
	}
	pg, lo, hi := paginate(r, matched, d.o.PageSize, total, what)
	w := newPageWindow(matched, lo, hi, rowOrder(desc))
	err = d.scan(ctx, s, kind, resource, func(x *storage.Summary) {
		if match(x) {
			w.add(pageRow{at: at(x).UnixNano(), ns: x.Namespace, name: x.Name})
		}
	})
	if err != nil {
		return pg, nil, err
	}
	rows := w.page()
	out := make([]P, 0, len(rows))
	ctx = storage.WithoutPEM(ctx) // list pages show no PEM (its download reads the whole certificate)
	for _, row := range rows {
		obj := P(new(T))
		if err := d.o.Store.Get(ctx, row.ns, row.name, obj); err != nil {
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
