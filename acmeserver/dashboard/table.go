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

// sortRows orders rows by a time (newest first when desc), then by
// namespace and name: stores list in no particular order and many objects
// share a second, so without the tie-break page 2 could repeat page 1.
func sortRows(rows []*storage.Summary, at func(*storage.Summary) time.Time, desc bool) {
	slices.SortFunc(rows, func(a, b *storage.Summary) int {
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
	})
}

// pageOf sorts rows, cuts the requested page (?page=) and reads the page's
// objects (one Get each: at most a page size of them). A row whose object
// was deleted since it was listed is left out.
func pageOf[T any, P interface {
	*T
	storage.Object
}](ctx context.Context, d *Dashboard, r *http.Request, rows []*storage.Summary, total int, what string,
	at func(*storage.Summary) time.Time, desc bool) (pager, []P, error) {
	sortRows(rows, at, desc)
	pg, rows := paginate(r, rows, d.o.PageSize, total, what)
	out := make([]P, 0, len(rows))
	for _, row := range rows {
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

// paginate cuts the rows of the requested page (?page=, 1-based, clamped).
func paginate[T any](r *http.Request, rows []T, size, total int, what string) (pager, []T) {
	p := pager{Pages: max(1, (len(rows)+size-1)/size), Total: total, What: what}
	p.PageNo, _ = strconv.Atoi(r.URL.Query().Get("page"))
	p.PageNo = min(max(p.PageNo, 1), p.Pages)
	p.Prev, p.Next = pageURL(r, p.PageNo-1), pageURL(r, p.PageNo+1)
	lo := (p.PageNo - 1) * size
	return p, rows[lo:min(lo+size, len(rows))]
}

func pageURL(r *http.Request, page int) string {
	q := r.URL.Query()
	q.Set("page", strconv.Itoa(page))
	return r.URL.Path + "?" + q.Encode()
}
