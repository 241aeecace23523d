package integration

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	xacme "golang.org/x/crypto/acme"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kacme/kacme/acmeserver/cluster"
	"github.com/kacme/kacme/api/v1alpha1"
	kenvtest "github.com/kacme/kacme/test/envtest"
)

// writeRecorder records the write requests a process makes to AcmeAccounts.
type writeRecorder struct {
	next http.RoundTripper
	mu   sync.Mutex
	w    []recordedWrite
}

type recordedWrite struct {
	method string
	body   []byte
}

func (r *writeRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodGet && strings.Contains(req.URL.Path, "/acmeaccounts") {
		var body []byte
		if req.Body != nil {
			body, _ = io.ReadAll(req.Body)
			req.Body = io.NopCloser(bytes.NewReader(body))
		}
		r.mu.Lock()
		r.w = append(r.w, recordedWrite{req.Method, body})
		r.mu.Unlock()
	}
	return r.next.RoundTrip(req)
}

func (r *writeRecorder) writes() []recordedWrite {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.w)
}

// paths lists the leaf paths of a JSON document ("status.orders").
func paths(prefix string, v any, out *[]string) {
	m, ok := v.(map[string]any)
	if !ok || len(m) == 0 {
		*out = append(*out, prefix)
		return
	}
	for k, sub := range m {
		p := k
		if prefix != "" {
			p = prefix + "." + k
		}
		if prefix == "metadata.labels" || prefix+"."+k == "status.conditions" {
			*out = append(*out, p)
			continue
		}
		paths(p, sub, out)
	}
}

// TestAccountControllerWritesOnlyItsFields (issue 15): an AcmeAccount has
// two writers. The ACME server owns the account's ACME state (key, status,
// contact, binding); the AcmeAccount controller owns the counts and the
// Ready condition (and a pre-registration's lookup labels). The controller
// used to write the account whole; here both run against one account on a
// real API server — the server registering it, changing its contact and
// placing orders, the controller counting them — and every write the
// controller makes is a patch of its own fields, and the server's fields are
// what the server last wrote.
func TestAccountControllerWritesOnlyItsFields(t *testing.T) {
	_, c, kc := kenvtest.StartWithKubeconfig(t)
	ctx := context.Background()
	ctrlCfg := restConfig(t, kc.Controller)
	rec := &writeRecorder{}
	ctrlCfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { rec.next = rt; return rec })
	startController(t, ctrlCfg, nil)
	createAll(t, c, &v1alpha1.CertificateAuthority{ObjectMeta: metav1.ObjectMeta{Name: "root"},
		Spec: v1alpha1.CertificateAuthoritySpec{SelfSigned: &v1alpha1.SelfSignedCA{}}},
		&v1alpha1.AcmeProfile{ObjectMeta: metav1.ObjectMeta{Name: "default"}, Spec: v1alpha1.AcmeProfileSpec{CertificateAuthority: "root",
			Identifiers: v1alpha1.IdentifierPolicy{AllowedDNSSuffixes: []string{"example"}}}})
	waitProfileReady(t, c, "default")
	srv, err := cluster.Start(ctx, cluster.Options{Config: restConfig(t, kc.Server), Namespace: clusterNS, Listen: "127.0.0.1:0",
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = srv.Close() }()
	var root v1alpha1.CertificateAuthority
	if err := c.Get(ctx, client.ObjectKey{Name: "root"}, &root); err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(root.Status.Chain))
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	cl := &xacme.Client{Key: key, DirectoryURL: srv.URL + "/acme/directory",
		HTTPClient: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}}
	acct, err := cl.Register(ctx, &xacme.Account{Contact: []string{"mailto:first@example.com"}}, xacme.AcceptTOS)
	if err != nil {
		t.Fatal(err)
	}
	name := acct.URI[strings.LastIndex(acct.URI, "/")+1:]
	account := func() v1alpha1.AcmeAccount {
		t.Helper()
		var a v1alpha1.AcmeAccount
		if err := c.Get(ctx, client.ObjectKey{Namespace: clusterNS, Name: name}, &a); err != nil {
			t.Fatal(err)
		}
		return a
	}
	registered := account()
	// The server and the controller write the same account in turns and
	// at once: orders (the controller counts them) between contact changes.
	for i, contact := range []string{"mailto:second@example.com", "mailto:third@example.com", "mailto:last@example.com"} {
		if _, err := cl.AuthorizeOrder(ctx, xacme.DomainIDs("a"+string(rune('0'+i))+".example")); err != nil {
			t.Fatal(err)
		}
		acct.Contact = []string{contact}
		if _, err := cl.UpdateReg(ctx, acct); err != nil {
			t.Fatal(err)
		}
	}
	kenvtest.WaitFor(t, "the controller to count 3 orders", func() bool {
		a := account()
		return a.Status.Orders == 3 && len(a.Status.Conditions) > 0
	})
	got := account()
	// The server's fields: what the server last wrote.
	if !reflect.DeepEqual(got.Spec.Contact, []string{"mailto:last@example.com"}) {
		t.Errorf("contact %v, want the server's last update", got.Spec.Contact)
	}
	want := registered.Status
	want.Orders, want.Certificates, want.Conditions = got.Status.Orders, got.Status.Certificates, got.Status.Conditions
	if !reflect.DeepEqual(got.Status, want) {
		t.Errorf("the server's status fields changed:\n got %+v\nwant %+v", got.Status, want)
	}
	// The controller's writes: patches of its fields only.
	writes := rec.writes()
	if len(writes) == 0 {
		t.Fatal("the controller wrote nothing to the account (the test proves nothing)")
	}
	owned := []string{"metadata.resourceVersion", "metadata.labels", "status.conditions", "status.orders", "status.certificates"}
	for _, w := range writes {
		if w.method != http.MethodPatch {
			t.Errorf("the controller wrote the account with %s (the whole object): %.300s", w.method, w.body)
			continue
		}
		var doc map[string]any
		if err := json.Unmarshal(w.body, &doc); err != nil {
			t.Fatalf("patch %q: %v", w.body, err)
		}
		var ps []string
		paths("", doc, &ps)
		for _, p := range ps {
			if !slices.Contains(owned, p) {
				t.Errorf("the controller's patch sets %s, a field it does not own: %s", p, w.body)
			}
		}
	}
}
