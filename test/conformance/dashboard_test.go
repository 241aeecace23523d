package conformance

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path"
	"regexp"
	"strings"
	"testing"

	xacme "golang.org/x/crypto/acme"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kacme/kacme/acmeserver/ra"
	"github.com/kacme/kacme/acmeserver/standalone"
	"github.com/kacme/kacme/api/v1alpha1"
)

// dashboardClient is a browser-like client: cookies, no redirect following.
func (e *env) dashboardClient() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Transport: e.http.Transport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func page(t *testing.T, c *http.Client, u string) (int, string) {
	t.Helper()
	r, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	return r.StatusCode, string(b)
}

func postForm(t *testing.T, c *http.Client, u string, v url.Values) int {
	t.Helper()
	r, err := c.PostForm(u, v)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, r.Body)
	r.Body.Close()
	return r.StatusCode
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// TestDashboardStandalone (issue 6, first part): the dashboard under
// /dashboard/ signs in with the admin token only; it lists a good and a
// failed order, shows the failed one's validation error and the data the
// client had to deploy; a contact holding markup is rendered inert; an action
// without the CSRF token is refused and changes nothing; with it, the
// revocation goes through the RA (ACME status and CRL) and the deactivation
// too.
func TestDashboardStandalone(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	base := e.srv.URL + "/dashboard"
	anon := e.dashboardClient()
	if code, _ := page(t, anon, base+"/"); code != http.StatusSeeOther {
		t.Fatalf("overview without signing in: %d, want 303 to the sign-in page", code)
	}
	if code := postForm(t, anon, base+"/login", url.Values{"token": {"wrong"}}); code != http.StatusUnauthorized {
		t.Fatalf("sign in with a wrong token: %d, want 401", code)
	}
	if code, _ := page(t, anon, base+"/orders"); code != http.StatusSeeOther {
		t.Fatalf("orders after a failed sign-in: %d", code)
	}

	// A good and a failed order.
	c := e.goClient("default")
	if _, err := c.Register(ctx, &xacme.Account{}, xacme.AcceptTOS); err != nil {
		t.Fatal(err)
	}
	ders, _ := e.issue(ctx, c, []xacme.AuthzID{{Type: "dns", Value: "good.localhost"}})
	leaf, _ := x509.ParseCertificate(ders[0])
	bad, err := c.AuthorizeOrder(ctx, []xacme.AuthzID{{Type: "dns", Value: "bad.localhost"}})
	if err != nil {
		t.Fatal(err)
	}
	z, err := c.GetAuthorization(ctx, bad.AuthzURLs[0])
	if err != nil {
		t.Fatal(err)
	}
	var ch *xacme.Challenge
	for _, x := range z.Challenges {
		if x.Type == "http-01" {
			ch = x
		}
	}
	e.resp.set(ch.Token, "not the key authorization")
	_, _ = c.Accept(ctx, ch)
	_, _ = c.WaitAuthorization(ctx, bad.AuthzURLs[0]) // fails: the answer is wrong
	// An account whose contact holds markup (stored directly: the ACME
	// server itself refuses such a contact).
	evil := &v1alpha1.AcmeAccount{ObjectMeta: metav1.ObjectMeta{Namespace: standalone.Namespace, Name: "evil",
		Labels: map[string]string{v1alpha1.LabelProfile: "default"}}, Spec: v1alpha1.AcmeAccountSpec{Profile: "default",
		Contact: []string{`mailto:<script>alert(1)</script>@evil.example`}}}
	if err := e.srv.Store.Create(ctx, evil); err != nil {
		t.Fatal(err)
	}

	b := e.dashboardClient()
	if code := postForm(t, b, base+"/login", url.Values{"token": {e.srv.DashboardToken}}); code != http.StatusSeeOther {
		t.Fatalf("sign in: %d", code)
	}
	code, body := page(t, b, base+"/")
	if code != http.StatusOK || !strings.Contains(body, "certificates") {
		t.Fatalf("overview: %d", code)
	}
	_, body = page(t, b, base+"/orders")
	if !strings.Contains(body, "good.localhost") || !strings.Contains(body, "bad.localhost") {
		t.Fatal("the orders list does not show both orders")
	}
	_, body = page(t, b, base+"/orders?status=invalid")
	if strings.Contains(body, "good.localhost") || !strings.Contains(body, "bad.localhost") {
		t.Fatal("the status filter does not work")
	}
	code, body = page(t, b, base+"/orders/"+standalone.Namespace+"/"+path.Base(bad.URI))
	if code != http.StatusOK || !strings.Contains(body, "incorrectResponse") || !strings.Contains(body, fmt.Sprintf("http://bad.localhost:%d/.well-known/acme-challenge/%s", e.resp.port, ch.Token)) {
		t.Fatalf("the failed order's page (%d) lacks its validation error or the prepared http-01 URL:\n%s", code, body)
	}
	_, body = page(t, b, base+"/accounts")
	if strings.Contains(body, "<script>alert(1)") || !strings.Contains(body, "&lt;script&gt;alert(1)&lt;/script&gt;") {
		t.Fatal("the contact's markup is not escaped")
	}

	// Revoke: without the CSRF token refused, with it done.
	serial := ra.SerialName(leaf.SerialNumber)
	revokeURL := base + "/certificates/" + standalone.Namespace + "/" + serial + "/revoke"
	if code := postForm(t, b, revokeURL, url.Values{"reason": {"4"}}); code != http.StatusForbidden {
		t.Fatalf("revoke without the CSRF token: %d, want 403", code)
	}
	if code := postForm(t, b, revokeURL, url.Values{"reason": {"4"}, "csrf": {"forged"}}); code != http.StatusForbidden {
		t.Fatalf("revoke with a forged CSRF token: %d, want 403", code)
	}
	if code := postForm(t, anon, revokeURL, url.Values{"reason": {"4"}}); code != http.StatusSeeOther {
		t.Fatalf("revoke without signing in: %d, want 303 to sign in", code)
	}
	var cert v1alpha1.AcmeCertificate
	if err := e.srv.Store.Get(ctx, standalone.Namespace, serial, &cert); err != nil || cert.Spec.Revocation != nil {
		t.Fatalf("a refused action changed the certificate: %+v %v", cert.Spec.Revocation, err)
	}
	_, confirm := page(t, b, revokeURL)
	m := csrfField.FindStringSubmatch(confirm)
	if m == nil {
		t.Fatal("the confirmation page has no CSRF field")
	}
	if code := postForm(t, b, revokeURL, url.Values{"reason": {"4"}, "csrf": {m[1]}}); code != http.StatusSeeOther {
		t.Fatalf("revoke: %d", code)
	}
	if err := e.srv.Store.Get(ctx, standalone.Namespace, serial, &cert); err != nil || cert.Spec.Revocation == nil || cert.Spec.Revocation.Reason != 4 {
		t.Fatalf("after the dashboard's revocation: %+v %v", cert.Spec.Revocation, err)
	}
	der, err := e.srv.RA.CRL(ctx, e.srv.Config.Profiles["default"].CA.Name, "")
	if err != nil {
		t.Fatal(err)
	}
	crl, _ := x509.ParseRevocationList(der)
	listed := false
	for _, en := range crl.RevokedCertificateEntries {
		listed = listed || en.SerialNumber.Cmp(leaf.SerialNumber) == 0
	}
	if !listed {
		t.Fatal("the CRL does not list the certificate revoked in the dashboard")
	}
	// The certificates page shows the revocation (spec.revocation); the PEM
	// download is the leaf followed by the chain of the key that signed it.
	code, body = page(t, b, base+"/certificates")
	if code != http.StatusOK || !strings.Contains(body, serial) || !strings.Contains(body, "status-revoked") {
		t.Fatalf("the certificates page (%d) does not show %s as revoked:\n%s", code, serial, body)
	}
	code, body = page(t, b, base+"/certificates/"+standalone.Namespace+"/"+serial+"/pem")
	first, rest := pem.Decode([]byte(body))
	if code != http.StatusOK || first == nil || !bytes.Equal(first.Bytes, leaf.Raw) || !strings.Contains(string(rest), "BEGIN CERTIFICATE") {
		t.Fatalf("the PEM download (%d) is not the leaf followed by its chain:\n%s", code, body)
	}
	code, body = page(t, b, base+"/audit")
	if code != http.StatusOK || !strings.Contains(body, "certificate.revoked") || !strings.Contains(body, "by=dashboard:admin") ||
		!strings.Contains(body, "challenge.failed") {
		t.Fatalf("the audit page (%d) lacks the revocation or the failed challenge:\n%s", code, body)
	}

	// Deactivate the ACME account.
	acct, err := c.GetReg(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	deactURL := base + "/accounts/" + standalone.Namespace + "/" + path.Base(acct.URI) + "/deactivate"
	if _, body := page(t, b, base+"/accounts"); !strings.Contains(body, strings.TrimPrefix(deactURL, base)) {
		t.Fatal("the accounts page offers no deactivation for a valid account (spec.state)")
	}
	_, confirm = page(t, b, deactURL)
	m = csrfField.FindStringSubmatch(confirm)
	if m == nil || postForm(t, b, deactURL, url.Values{"csrf": {m[1]}}) != http.StatusSeeOther {
		t.Fatal("deactivate through the dashboard")
	}
	if _, err := c.AuthorizeOrder(ctx, []xacme.AuthzID{{Type: "dns", Value: "after.localhost"}}); err == nil {
		t.Fatal("the deactivated account can still order")
	}
}
