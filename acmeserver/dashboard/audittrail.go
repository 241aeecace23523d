package dashboard

import (
	"context"
	"net/http"
	"time"

	"github.com/kacme/kacme/acmeserver/storage"
)

// auditTrail shows this process's recent audit records. They span every
// namespace, so in a cluster only users who may list accounts everywhere
// see them.
func (d *Dashboard) auditTrail(ctx context.Context, w http.ResponseWriter, _ *http.Request, s *session) error {
	if d.o.Audit == nil {
		return storage.ErrNotFound
	}
	if !d.may(ctx, s, "list", "acmeaccounts", "") {
		return errForbidden
	}
	type row struct {
		Time  time.Time
		Event string
		Attrs []string
	}
	var rows []row
	for _, e := range d.o.Audit.Recent(200) {
		r := row{Time: e.Time, Event: e.Event}
		for _, a := range e.Attrs {
			r.Attrs = append(r.Attrs, a.Key+"="+a.Value.String())
		}
		rows = append(rows, r)
	}
	return d.render(w, "audit", s, map[string]any{"Records": rows})
}
