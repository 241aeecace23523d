package dashboard

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/kacme/kacme/acmeserver/storage"
	"github.com/kacme/kacme/api/v1alpha1"
)

// filter is the orders list's query.
type filter struct{ Status, Profile, Namespace, Identifier string }

func (d *Dashboard) orders(ctx context.Context, w http.ResponseWriter, r *http.Request, s *session) error {
	q := r.URL.Query()
	f := filter{Status: q.Get("status"), Profile: q.Get("profile"), Namespace: q.Get("namespace"), Identifier: q.Get("identifier")}
	match := func(o *storage.Summary) bool {
		return (f.Status == "" || o.Status == f.Status) && (f.Profile == "" || o.Profile == f.Profile) &&
			(f.Namespace == "" || o.Namespace == f.Namespace) && (f.Identifier == "" || hasIdentifier(o.Text, f.Identifier))
	}
	pg, orders, err := pageOf[v1alpha1.AcmeOrder](ctx, d, r, s, "AcmeOrder", "acmeorders", "orders", match, created, true)
	if err != nil {
		return err
	}
	return d.render(w, "orders", s, map[string]any{"Orders": orders, "Filter": f, "Pager": pg})
}

// hasIdentifier reports whether one of the space-separated identifiers
// contains s. An s without a space can only occur inside one identifier,
// so one search of the whole string answers for it.
func hasIdentifier(identifiers, s string) bool {
	if !strings.Contains(s, " ") {
		return strings.Contains(identifiers, s)
	}
	for id := range strings.FieldsSeq(identifiers) {
		if strings.Contains(id, s) {
			return true
		}
	}
	return false
}

// challengeView is one challenge with what the client had to deploy, in plain words.
type challengeView struct {
	Type, Status, Token, Validated string
	Deploy                         []string
	Error                          *v1alpha1.Problem
}

func (d *Dashboard) order(ctx context.Context, w http.ResponseWriter, r *http.Request, s *session) error {
	ns, name := r.PathValue("ns"), r.PathValue("name")
	if !d.may(ctx, s, "list", "acmeorders", ns) {
		return errForbidden
	}
	var o v1alpha1.AcmeOrder
	if err := d.o.Store.Get(ctx, ns, name, &o); err != nil {
		return err
	}
	type authzView struct {
		Name, Identifier, Status string
		Expires                  time.Time
		Challenges               []challengeView
		Records                  []v1alpha1.ValidationRecord
	}
	var azs []authzView
	ports := [2]int{80, 443} // http-01 and tls-alpn-01 ports the profile validates on
	if p, ok := d.o.RA.Config().Profiles[o.Spec.Profile]; ok {
		if p.Validation.HTTPPort != 0 {
			ports[0] = p.Validation.HTTPPort
		}
		if p.Validation.TLSPort != 0 {
			ports[1] = p.Validation.TLSPort
		}
	}
	stored, err := d.o.RA.OrderAuthorizations(ctx, &o)
	if err != nil {
		return err
	}
	for _, az := range stored {
		v := authzView{Name: az.Name, Identifier: az.Spec.Identifier.Value, Status: az.Status.Status, Expires: az.Status.Expires.Time,
			Records: az.Status.Records}
		if az.Spec.Wildcard {
			v.Identifier = "*." + v.Identifier
		}
		for _, c := range az.Status.Challenges {
			cv := challengeView{Type: string(c.Type), Status: c.Status, Token: c.Token, Error: c.Error}
			if c.Validated != nil {
				cv.Validated = c.Validated.UTC().Format(time.RFC3339)
			}
			cv.Deploy = deployText(c, az.Spec.Identifier.Value, ports)
			v.Challenges = append(v.Challenges, cv)
		}
		azs = append(azs, v)
	}
	return d.render(w, "order", s, map[string]any{"Order": o, "Authorizations": azs})
}

// deployText says what the client had to put in place for a challenge.
func deployText(c v1alpha1.AcmeChallengeState, name string, ports [2]int) []string {
	host := func(port, std int) string {
		if port == std {
			return name
		}
		return name + ":" + strconv.Itoa(port)
	}
	switch c.Type {
	case "http-01":
		return []string{"URL: http://" + host(ports[0], 80) + c.Data.Path, "file content: " + c.Data.Content}
	case "dns-01", "dns-account-01":
		return []string{"TXT record: " + c.Data.RecordName, "value: " + c.Data.RecordValue}
	case "tls-alpn-01":
		return []string{"a certificate for " + name + " with the acmeIdentifier extension (SHA-256 " + c.Data.Digest + ") served with ALPN acme-tls/1 on " + host(ports[1], 443)}
	}
	return nil
}
