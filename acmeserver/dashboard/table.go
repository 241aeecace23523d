package dashboard

import (
	"net/http"
	"sort"
	"strconv"
	"time"
)

// sortRows orders rows by a time (newest first when desc), then by
// namespace and name: stores list in no particular order and many objects
// share a second, so without the tie-break page 2 could repeat page 1.
func sortRows[T any, P interface {
	*T
	GetNamespace() string
	GetName() string
}](rows []P, at func(P) time.Time, desc bool) {
	sort.Slice(rows, func(i, j int) bool {
		ti, tj := at(rows[i]), at(rows[j])
		if !ti.Equal(tj) {
			return ti.After(tj) == desc
		}
		if a, b := rows[i].GetNamespace(), rows[j].GetNamespace(); a != b {
			return a < b
		}
		return rows[i].GetName() < rows[j].GetName()
	})
}

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
