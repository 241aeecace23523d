// The lifecycle of orders, authorizations and accounts: deactivation,
// expiry and the orders list (ORD-06/07/09, AUTHZ-05/06/08, ACC-11).
package conformance

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kacme/kacme/acmeserver/acme"
	"github.com/kacme/kacme/acmeserver/standalone"
	"github.com/kacme/kacme/api/v1alpha1"
)

// TestStateMachine: ORD-06/AUTHZ-06 deactivation and ORD-07/AUTHZ-08 expiry.
func TestStateMachine(t *testing.T) {
	e := newEnv(t)
	k, kid := e.account("default")
	statusOf := func(u string) string {
		t.Helper()
		r, b := e.signed(k, kid, u, "")
		if r.StatusCode != 200 {
			t.Fatalf("fetch %s: %d %s", u, r.StatusCode, b)
		}
		var v struct {
			Status string        `json:"status"`
			Error  *acme.Problem `json:"error"`
		}
		_ = json.Unmarshal(b, &v)
		if v.Status == "invalid" && v.Error == nil && strings.Contains(u, "/order/") {
			t.Fatalf("ORD-06: invalid order without error: %s", b)
		}
		return v.Status
	}
	finalize := func(o acme.Order, name string) (int, acme.ProblemType) {
		der := csr(t, newKey(t, "ES256").signer, name)
		r, b := e.signed(k, kid, o.Finalize, fmt.Sprintf(`{"csr":%q}`, b64.EncodeToString(der)))
		if r.StatusCode == 200 {
			return 200, ""
		}
		return r.StatusCode, problem(t, r, b).Type
	}
	// AUTHZ-05/06: deactivating a valid authorization invalidates its ready order.
	u, o := e.readyOrder(k, kid, "deact.localhost")
	r, b := e.signed(k, kid, o.Authorizations[0], `{"status":"deactivated"}`)
	if r.StatusCode != 200 || !strings.Contains(string(b), `"deactivated"`) {
		t.Fatalf("AUTHZ-05: %d %s", r.StatusCode, b)
	}
	if s := statusOf(u); s != "invalid" {
		t.Fatalf("AUTHZ-06: order is %s after its authorization was deactivated", s)
	}
	if code, typ := finalize(o, "deact.localhost"); code != 403 || typ != acme.OrderNotReady {
		t.Fatalf("AUTHZ-06: finalize answered %d %s", code, typ)
	}
	// AUTHZ-05/06 for a pending authorization no challenge of which was
	// answered (derived from its order until this, its first write).
	pu, po := e.order(k, kid, "deact-pending.localhost")
	r, b = e.signed(k, kid, po.Authorizations[0], `{"status":"deactivated"}`)
	if r.StatusCode != 200 || !strings.Contains(string(b), `"deactivated"`) {
		t.Fatalf("AUTHZ-05 (pending): %d %s", r.StatusCode, b)
	}
	if s := statusOf(po.Authorizations[0]); s != "deactivated" {
		t.Fatalf("AUTHZ-05 (pending): authorization is %s after deactivation", s)
	}
	if s := statusOf(pu); s != "invalid" {
		t.Fatalf("AUTHZ-06 (pending): order is %s after its authorization was deactivated", s)
	}
	// ORD-07/AUTHZ-08: past expiry a pending order is invalid and its authorization expired.
	pendingURL, pending := e.order(k, kid, "late.localhost")
	readyURL, ready := e.readyOrder(k, kid, "ready-late.localhost")
	e.skew.Store(int64(25 * time.Hour))
	if s := statusOf(pendingURL); s != "invalid" {
		t.Fatalf("ORD-07: expired pending order is %s", s)
	}
	if s := statusOf(pending.Authorizations[0]); s != "expired" {
		t.Fatalf("AUTHZ-08: authorization is %s", s)
	}
	if s := statusOf(readyURL); s != "invalid" {
		t.Fatalf("ORD-07: expired ready order is %s", s)
	}
	if code, typ := finalize(ready, "ready-late.localhost"); code != 403 || typ != acme.OrderNotReady {
		t.Fatalf("ORD-07: finalize of an expired order answered %d %s", code, typ)
	}
	// ORD-09: invalid orders are not listed.
	r, b = e.signed(k, kid, kid+"/orders", "")
	if r.StatusCode != 200 || strings.Contains(string(b), pendingURL) || strings.Contains(string(b), u) {
		t.Fatalf("ORD-09: orders list %d %s", r.StatusCode, b)
	}
}

// TestDeactivationCancelsOrders (ACC-11): pending orders die with the account; certificates do not.
func TestDeactivationCancelsOrders(t *testing.T) {
	e := newEnv(t)
	k, kid := e.account("default")
	pendingURL, _ := e.order(k, kid, "p.localhost")
	if r, b := e.signed(k, kid, kid, `{"status":"deactivated"}`); r.StatusCode != 200 {
		t.Fatalf("deactivate: %d %s", r.StatusCode, b)
	}
	// The account can no longer read its orders (ACC-10), so look in the store.
	id := pendingURL[strings.LastIndex(pendingURL, "/")+1:]
	var o v1alpha1.AcmeOrder
	if err := e.srv.Store.Get(context.Background(), standalone.Namespace, id, &o); err != nil {
		t.Fatal(err)
	}
	if o.Status.Status != "invalid" || o.Status.Error == nil || o.Status.Error.Type != string(acme.Unauthorized) {
		t.Fatalf("ACC-11: pending order is %s (error %+v), want invalid with unauthorized", o.Status.Status, o.Status.Error)
	}
}

// TestAdminDeactivation: spec.deactivated set by an administrator (kubectl
// edit in a cluster; the store here) makes the next request unauthorized.
func TestAdminDeactivation(t *testing.T) {
	e := newEnv(t)
	k, kid := e.account("default")
	ctx := context.Background()
	var a v1alpha1.AcmeAccount
	if err := e.srv.Store.Get(ctx, standalone.Namespace, kid[strings.LastIndex(kid, "/")+1:], &a); err != nil {
		t.Fatal(err)
	}
	a.Spec.Deactivated = true
	if err := e.srv.Store.Update(ctx, &a); err != nil {
		t.Fatal(err)
	}
	r, b := e.signed(k, kid, e.dir["default"].NewOrder, orderPayload("dns:x.localhost"))
	if p := problem(t, r, b); r.StatusCode != 401 || p.Type != acme.Unauthorized {
		t.Fatalf("request of an administratively deactivated account: %d %s", r.StatusCode, p.Type)
	}
}

// TestOrdersList (ORD-09): an account's orders list holds its pending and
// valid orders, not the invalid ones, and pages with Link rel="next" (100 a
// page) until every order was listed once.
func TestOrdersList(t *testing.T) {
	e := newEnv(t)
	k, kid := e.account("default")
	var want []string
	invalidURL, invalid := e.readyOrder(k, kid, "gone.localhost")
	if r, b := e.signed(k, kid, invalid.Authorizations[0], `{"status":"deactivated"}`); r.StatusCode != 200 {
		t.Fatalf("deactivate: %d %s", r.StatusCode, b)
	}
	validURL, ready := e.readyOrder(k, kid, "done.localhost")
	der := csr(t, newKey(t, "ES256").signer, "done.localhost")
	if r, b := e.signed(k, kid, ready.Finalize, fmt.Sprintf(`{"csr":%q}`, b64.EncodeToString(der))); r.StatusCode != 200 {
		t.Fatalf("finalize: %d %s", r.StatusCode, b)
	}
	want = append(want, validURL)
	for i := range 101 {
		u, _ := e.order(k, kid, fmt.Sprintf("o%d.localhost", i))
		want = append(want, u)
	}
	var got []string
	next, pages := kid+"/orders", 0
	for next != "" {
		r, b := e.signed(k, kid, next, "")
		if r.StatusCode != 200 {
			t.Fatalf("ORD-09: %s answered %d %s", next, r.StatusCode, b)
		}
		var l struct{ Orders []string }
		if err := json.Unmarshal(b, &l); err != nil {
			t.Fatal(err)
		}
		got = append(got, l.Orders...)
		pages++
		next = ""
		for _, v := range r.Header.Values("Link") {
			if u, ok := strings.CutSuffix(v, `>;rel="next"`); ok {
				next = strings.TrimPrefix(u, "<")
			}
		}
	}
	// Oldest first, but orders of the same second are in name order: compare as sets.
	slices.Sort(got)
	slices.Sort(want)
	if pages != 2 || !slices.Equal(got, want) {
		t.Fatalf("ORD-09: %d pages listing %d orders; want 2 pages listing the valid order and 101 pending ones once each (the invalid %s not listed)",
			pages, len(got), invalidURL)
	}
}
