package dashboard

import (
	"context"
	"net/http"
	"time"

	"github.com/kacme/kacme/acmeserver/storage"
)

// PodCertificate is one PodCertificateRequest for a kacme signer name, as
// the pod certificates page shows it.
type PodCertificate struct {
	Namespace, Name, Pod, ServiceAccount, SignerName string
	// Status is Issued, Denied, Failed or Pending; Reason and Message its condition's.
	Status, Reason, Message string
	Names                   []string // DNS and URI names of the issued leaf
	Serial                  string
	NotAfter, Created       time.Time
}

// PodCertificateLister reads one page of pod certificates from the API
// server (not a cache: the requests are many and short-lived), continuing
// after token; it returns the token of the next page ("" at the end).
type PodCertificateLister interface {
	PodCertificates(ctx context.Context, token string, limit int) ([]PodCertificate, string, error)
}

// podCertificateListPage bounds one page of the pod certificates list.
const podCertificateListPage = 100

// podCertificates lists the requests for kacme's signer names, a page at a
// time, newest API order. They span every namespace, so only users who may
// list KubernetesSigners (cluster-scoped) see them.
func (d *Dashboard) podCertificates(ctx context.Context, w http.ResponseWriter, r *http.Request, s *session) error {
	if d.o.PodCertificates == nil {
		return storage.ErrNotFound
	}
	if !d.may(ctx, s, "list", "kubernetessigners", "") {
		return errForbidden
	}
	token := r.URL.Query().Get("continue")
	rows, next, err := d.o.PodCertificates.PodCertificates(ctx, token, podCertificateListPage)
	if err != nil {
		return err
	}
	return d.render(w, "podcertificates", s, map[string]any{"Rows": rows, "Next": next, "First": token == ""})
}
