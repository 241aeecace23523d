package integration

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kacme/kacme/api/v1alpha1"
	kenvtest "github.com/kacme/kacme/test/envtest"
)

// TestClusterModeDashboardRBAC (issue 6, Done #2 in a cluster): users sign
// in to the dashboard with a Kubernetes bearer token (a ServiceAccount token
// here), checked with TokenReview; RBAC decides through SubjectAccessReview:
// a token without rights on the kacme resources sees nothing and cannot act
// (403); a token with rights in one namespace sees that namespace only.
func TestClusterModeDashboardRBAC(t *testing.T) {
	e := newClusterEnv(t, false)
	e.startServer(t)
	ctx := context.Background()
	cfg, err := clientcmd.BuildConfigFromFlags("", e.kc.Admin)
	if err != nil {
		t.Fatal(err)
	}
	cs := kubernetes.NewForConfigOrDie(cfg)
	expires := metav1.NewTime(time.Now().Add(time.Hour).UTC().Truncate(time.Second))
	for ns, ident := range map[string]string{teamNS: "team-only.localhost", clusterNS: "system-only.localhost"} {
		o := &v1alpha1.AcmeOrder{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: strings.Split(ident, ".")[0],
			Labels: map[string]string{v1alpha1.LabelProfile: "default", v1alpha1.LabelAccount: "a"}},
			Spec:   v1alpha1.AcmeOrderSpec{Account: "a", Profile: "default", Identifiers: []v1alpha1.Identifier{{Type: "dns", Value: ident}}},
			Status: v1alpha1.AcmeOrderStatus{Status: "pending", Expires: expires, Authorizations: []string{}}}
		if err := e.c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	cert := &v1alpha1.AcmeCertificate{ObjectMeta: metav1.ObjectMeta{Namespace: teamNS, Name: "0abc",
		Labels: map[string]string{v1alpha1.LabelProfile: "default", v1alpha1.LabelAccount: "a"}},
		Spec: v1alpha1.AcmeCertificateSpec{Account: "a", Order: "team-only", Profile: "default", CertificateAuthority: "root",
			Serial: "0abc", Names: []string{"team-only.localhost"}, Chain: "-", NotBefore: metav1.Now(), NotAfter: expires}}
	if err := e.c.Create(ctx, cert); err != nil {
		t.Fatal(err)
	}
	for _, o := range []client.Object{
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: teamNS, Name: "viewer"}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: teamNS, Name: "nobody"}},
		&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: teamNS, Name: "kacme-view"}, Rules: []rbacv1.PolicyRule{{
			APIGroups: []string{"acme.kacme.io"}, Resources: []string{"acmeorders", "acmecertificates", "acmeaccounts"}, Verbs: []string{"get", "list"}}}},
		&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: teamNS, Name: "viewer"},
			RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "kacme-view"},
			Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "viewer", Namespace: teamNS}}},
	} {
		if err := e.c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	token := func(sa string) string {
		tr, err := cs.CoreV1().ServiceAccounts(teamNS).CreateToken(ctx, sa, &authnv1.TokenRequest{}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return tr.Status.Token
	}
	signIn := func(tok string) *http.Client {
		jar, _ := cookiejar.New(nil)
		c := &http.Client{Jar: jar, Transport: e.httpClient().Transport,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		r, err := c.PostForm(e.serverURL+"/dashboard/login", url.Values{"token": {tok}})
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		if r.StatusCode != http.StatusSeeOther {
			t.Fatalf("sign in: %d", r.StatusCode)
		}
		return c
	}
	get := func(c *http.Client, path string) (int, string) {
		r, err := c.Get(e.serverURL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		b, _ := io.ReadAll(r.Body)
		return r.StatusCode, string(b)
	}
	// A made-up token does not sign in.
	jar, _ := cookiejar.New(nil)
	anon := &http.Client{Jar: jar, Transport: e.httpClient().Transport}
	if r, err := anon.PostForm(e.serverURL+"/dashboard/login", url.Values{"token": {"not-a-token"}}); err != nil || r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("sign in with a made-up token: %v %v", r, err)
	}

	nobody := signIn(token("nobody"))
	_, body := get(nobody, "/dashboard/orders")
	if strings.Contains(body, "team-only") || strings.Contains(body, "system-only") {
		t.Fatal("a token without rights sees orders")
	}
	if code, _ := get(nobody, "/dashboard/orders/"+teamNS+"/team-only"); code != http.StatusForbidden {
		t.Fatalf("an order page without rights: %d, want 403", code)
	}
	revoke := "/dashboard/certificates/" + teamNS + "/0abc/revoke"
	if code, _ := get(nobody, revoke); code != http.StatusForbidden {
		t.Fatalf("the revoke confirmation without rights: %d, want 403", code)
	}

	viewer := signIn(token("viewer"))
	_, body = get(viewer, "/dashboard/orders")
	if !strings.Contains(body, "team-only.localhost") || strings.Contains(body, "system-only") {
		t.Fatalf("the team-a viewer should see team-a's order only:\n%s", body)
	}
	if code, _ := get(viewer, "/dashboard/audit"); code != http.StatusForbidden {
		t.Fatalf("the audit trail (every namespace) for a one-namespace viewer: %d, want 403", code)
	}
	if code, _ := get(viewer, "/dashboard/orders/"+clusterNS+"/system-only"); code != http.StatusForbidden {
		t.Fatalf("another namespace's order page: %d, want 403", code)
	}
	// Viewing is not acting: the viewer may not update, so the action is refused even with a valid CSRF token.
	if code, _ := get(viewer, revoke); code != http.StatusForbidden {
		t.Fatalf("the revoke confirmation for a viewer: %d, want 403", code)
	}
	_, page := get(viewer, "/dashboard/") // every signed-in page carries the session's CSRF token (sign-out form)
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatal("no CSRF token on the overview page")
	}
	r, err := viewer.PostForm(e.serverURL+revoke, url.Values{"reason": {"4"}, "csrf": {m[1]}})
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusForbidden {
		t.Fatalf("revoke by a viewer: %d, want 403", r.StatusCode)
	}
	var got v1alpha1.AcmeCertificate
	if err := e.c.Get(ctx, client.ObjectKeyFromObject(cert), &got); err != nil || got.Spec.Revocation != nil {
		t.Fatalf("the refused revocation changed the certificate: %+v %v", got.Spec.Revocation, err)
	}
	// The overview says which profiles are served, and why one is not.
	orphan := &v1alpha1.AcmeProfile{ObjectMeta: metav1.ObjectMeta{Name: "orphan"}, Spec: v1alpha1.AcmeProfileSpec{CertificateAuthority: "missing"}}
	if err := e.c.Create(ctx, orphan); err != nil {
		t.Fatal(err)
	}
	kenvtest.WaitFor(t, "the overview shows the profile that is not served", func() bool {
		_, page := get(viewer, "/dashboard/")
		return regexp.MustCompile(`<td>default</td>.*serving`).MatchString(page) &&
			regexp.MustCompile(`<td>orphan</td>.*no: spec.certificateAuthority: CertificateAuthority &#34;missing&#34; is not loaded`).MatchString(page)
	})
}
