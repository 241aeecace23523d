package dashboard

import (
	"context"
	"net/http"
	"sort"
	"time"

	"github.com/kacme/kacme/acmeserver/storage"
)

func (d *Dashboard) overview(ctx context.Context, w http.ResponseWriter, _ *http.Request, s *session) error {
	accts, err := d.count(ctx, s, "AcmeAccount", "acmeaccounts")
	if err != nil {
		return err
	}
	ords, err := d.count(ctx, s, "AcmeOrder", "acmeorders")
	if err != nil {
		return err
	}
	now := time.Now()
	perHour := make([]int, 24)  // issuances per hour over the last day, oldest first
	expiring := make([]int, 30) // certificates expiring per day over the next 30 days
	crts := 0
	err = d.scan(ctx, s, "AcmeCertificate", "acmecertificates", func(c *storage.Summary) {
		crts++
		if age := now.Sub(c.Created); age >= 0 && age < 24*time.Hour {
			perHour[23-int(age/time.Hour)]++
		}
		if left := c.At.Sub(now); left >= 0 && left < 30*24*time.Hour && c.Status != storage.StatusRevoked {
			expiring[int(left/(24*time.Hour))]++
		}
	})
	if err != nil {
		return err
	}
	cfg := d.o.RA.Config()
	type caRow struct {
		Name, Subject string
		NotAfter      time.Time
		DaysLeft      int
		Rotated       bool
	}
	var cas []caRow
	for name, a := range cfg.Authorities {
		cas = append(cas, caRow{Name: name, Subject: a.Cert.Subject.String(), NotAfter: a.Cert.NotAfter,
			DaysLeft: int(time.Until(a.Cert.NotAfter).Hours() / 24), Rotated: a.Previous != nil})
	}
	sort.Slice(cas, func(i, j int) bool { return cas[i].Name < cas[j].Name })
	type profileRow struct{ Name, Path, CA, NotServed string }
	var profiles []profileRow
	for _, p := range cfg.Profiles {
		profiles = append(profiles, profileRow{Name: p.Name, Path: "/acme/" + p.Path + "/directory", CA: p.CA.Name})
	}
	for name, err := range cfg.NotServed {
		profiles = append(profiles, profileRow{Name: name, NotServed: err.Error()})
	}
	sort.Slice(profiles, func(i, j int) bool { return profiles[i].Name < profiles[j].Name })
	return d.render(w, "overview", s, map[string]any{"CAs": cas, "Profiles": profiles, "Accounts": accts,
		"Orders": ords, "Certificates": crts, "PerHour": bars(perHour), "Expiring": bars(expiring)})
}

// bar is one column of a chart drawn with plain HTML (no script).
type bar struct {
	N      int
	Height int // percent of the tallest
}

func bars(ns []int) []bar {
	top := 1
	for _, n := range ns {
		top = max(top, n)
	}
	out := make([]bar, len(ns))
	for i, n := range ns {
		out[i] = bar{N: n, Height: n * 100 / top}
	}
	return out
}
