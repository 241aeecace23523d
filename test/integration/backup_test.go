package integration

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	xacme "golang.org/x/crypto/acme"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kacme/kacme/acmeserver/ra"
	"github.com/kacme/kacme/api/v1alpha1"
	kenvtest "github.com/kacme/kacme/test/envtest"
	"github.com/kacme/kacme/test/harness"
)

// backupKinds are what a backup of kacme holds, in the order a restore
// creates them (Velero's: Secrets before custom resources, owners first).
var backupKinds = []schema.GroupVersionKind{
	corev1.SchemeGroupVersion.WithKind("Secret"),
	v1alpha1.GroupVersion.WithKind("CertificateAuthority"),
	v1alpha1.GroupVersion.WithKind("AcmeProfile"),
	v1alpha1.GroupVersion.WithKind("KubernetesSigner"),
	v1alpha1.GroupVersion.WithKind("AcmeAccount"),
	v1alpha1.GroupVersion.WithKind("AcmeOrder"),
	v1alpha1.GroupVersion.WithKind("AcmeChallenge"),
	v1alpha1.GroupVersion.WithKind("AcmeCertificate"),
}

// backup exports every object of backupKinds the way Velero restores them
// by default: without status, without ownerReferences, and without what
// the API server assigns (uid, resourceVersion, timestamps, managedFields).
func backup(t *testing.T, c client.Client) []*unstructured.Unstructured {
	t.Helper()
	var out []*unstructured.Unstructured
	for _, gvk := range backupKinds {
		var list unstructured.UnstructuredList
		list.SetGroupVersionKind(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
		if err := c.List(context.Background(), &list); err != nil {
			t.Fatalf("back up %s: %v", gvk.Kind, err)
		}
		for i := range list.Items {
			o := list.Items[i].DeepCopy()
			if ns := o.GetNamespace(); gvk.Kind == "Secret" && ns != clusterNS && ns != teamNS {
				continue
			}
			unstructured.RemoveNestedField(o.Object, "status")
			for _, f := range []string{"uid", "resourceVersion", "creationTimestamp", "managedFields", "generation", "ownerReferences", "selfLink"} {
				unstructured.RemoveNestedField(o.Object, "metadata", f)
			}
			out = append(out, o)
		}
	}
	return out
}

// restore creates objs in a fresh API server and runs "kacme controller"
// against it; the result serves at the same URL and ports as from.
func restore(t *testing.T, from *clusterEnv, objs []*unstructured.Unstructured) *clusterEnv {
	t.Helper()
	_, c, kc := kenvtest.StartWithKubeconfig(t)
	ctx := context.Background()
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: teamNS}}); err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if err := c.Create(ctx, o.DeepCopy()); err != nil {
			t.Fatalf("restore %s %s/%s: %v", o.GetKind(), o.GetNamespace(), o.GetName(), err)
		}
	}
	e := *from
	e.c, e.kc = c, kc
	e.startController(t)
	e.waitProfiles(t, "default", "teams")
	return &e
}

// TestBackupRestoreWithoutStatus (issue 17, Done 4): what kacme cannot
// recompute survives a restore that drops status. certbot and lego
// register, obtain certificates and lego revokes one; every kacme object and
// the operator's Secrets are exported as Velero restores them by default
// (no status, no ownerReferences) into a fresh API server. There the same
// certbot and lego accounts renew and revoke, the certificate revoked
// before the backup is still on the CRL, and the CA is the one backed up.
func TestBackupRestoreWithoutStatus(t *testing.T) {
	harness.Need(t, "certbot", "lego")
	e := newClusterEnv(t, false)
	srv := e.startServer(t)
	dir := t.TempDir()
	dirURL := e.serverURL + "/acme/default/directory"
	port := fmt.Sprint(e.httpPort)
	run := func(env []string, name string, args ...string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Env, cmd.Dir = append(os.Environ(), env...), dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, harness.Tail(string(out), 4000))
		}
	}
	cb := filepath.Join(dir, "certbot")
	certbot := func(args ...string) {
		t.Helper()
		run([]string{"REQUESTS_CA_BUNDLE=" + e.rootPath}, "certbot", append(args, "--non-interactive", "--config-dir", cb,
			"--work-dir", cb+"/work", "--logs-dir", cb+"/logs")...)
	}
	lego := func(args ...string) {
		t.Helper()
		run([]string{"LEGO_CA_CERTIFICATES=" + e.rootPath}, "lego", append([]string{"--server", dirURL, "--accept-tos",
			"--email", "ops@example.org", "--path", filepath.Join(dir, "lego"), "--http", "--http.port", "127.0.0.1:" + port}, args...)...)
	}
	read := func(path string) *x509.Certificate {
		t.Helper()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		blk, _ := pem.Decode(b)
		if blk == nil {
			t.Fatalf("%s holds no certificate", path)
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	cbCert := filepath.Join(cb, "live", "cb.localhost", "cert.pem")
	legoCert := func(name string) string { return filepath.Join(dir, "lego", "certificates", name+".crt") }

	certbot("certonly", "--standalone", "--http-01-address", "127.0.0.1", "--http-01-port", port, "--server", dirURL,
		"--agree-tos", "--register-unsafely-without-email", "-d", "cb.localhost")
	lego("--domains", "lg.localhost", "run")
	lego("--domains", "gone.localhost", "run")
	gone := read(legoCert("gone.localhost"))
	lego("--domains", "gone.localhost", "revoke")
	cbBefore, lgBefore := read(cbCert), read(legoCert("lg.localhost"))
	var secBefore corev1.Secret
	if err := e.c.Get(context.Background(), client.ObjectKey{Namespace: clusterNS, Name: "root-ca"}, &secBefore); err != nil {
		t.Fatal(err)
	}

	objs := backup(t, e.c)
	srv.Stop()
	r := restore(t, e, objs)
	r.startServer(t) // its HTTPS certificate verifies against the root backed up (e.pool)
	var secAfter corev1.Secret
	if err := r.c.Get(context.Background(), client.ObjectKey{Namespace: clusterNS, Name: "root-ca"}, &secAfter); err != nil || string(secAfter.Data["ca.crt"]) != string(secBefore.Data["ca.crt"]) {
		t.Fatalf("the restored cluster's CA is not the one backed up (%v)", err)
	}
	accounts, _, _, _ := r.list(t, teamNS)
	if acct, _, _, _ := r.list(t, clusterNS); len(acct.Items)+len(accounts.Items) < 2 {
		t.Fatalf("%d accounts restored, want certbot's and lego's", len(acct.Items)+len(accounts.Items))
	}

	// The revocation made before the backup holds.
	onCRL := func(serial *x509.Certificate) bool {
		t.Helper()
		resp, err := r.httpClient().Get(r.serverURL + "/crl/root")
		if err != nil {
			t.Fatal(err)
		}
		der, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		crl, err := x509.ParseRevocationList(der)
		if err != nil {
			t.Fatalf("CRL: %v", err)
		}
		for _, entry := range crl.RevokedCertificateEntries {
			if entry.SerialNumber.Cmp(serial.SerialNumber) == 0 {
				return true
			}
		}
		return false
	}
	if !onCRL(gone) {
		t.Fatal("the certificate revoked before the backup is not on the restored cluster's CRL")
	}
	var goneObj v1alpha1.AcmeCertificate
	name := ra.SerialName(gone.SerialNumber)
	if err := r.c.Get(context.Background(), client.ObjectKey{Namespace: clusterNS, Name: name}, &goneObj); err != nil || goneObj.Spec.Revocation == nil {
		t.Fatalf("restored AcmeCertificate %s: revocation %+v (%v)", name, goneObj.Spec.Revocation, err)
	}

	// An order and authorization restored without their status answer, to
	// lego's own account key, as finished: the order invalid (its state was
	// not restored), the authorization expired.
	legoKey, legoKID := legoAccount(t, filepath.Join(dir, "lego"))
	cl := &xacme.Client{Key: legoKey, KID: xacme.KeyID(legoKID), DirectoryURL: dirURL, HTTPClient: r.httpClient()}
	var orders v1alpha1.AcmeOrderList
	if err := r.c.List(context.Background(), &orders); err != nil {
		t.Fatal(err)
	}
	base := strings.TrimSuffix(dirURL, "directory")
	checked := 0
	for _, o := range orders.Items {
		if o.Spec.Account != path.Base(legoKID) {
			continue
		}
		got, err := cl.GetOrder(context.Background(), base+"order/"+o.Name)
		if err != nil || got.Status != xacme.StatusInvalid || got.Error == nil || !strings.Contains(got.Error.Detail, "not restored") {
			t.Fatalf("restored order %s without status: %+v, error %v (%v); want invalid, not restored", o.Name, got, got.Error, err)
		}
		var azs v1alpha1.AcmeChallengeList
		if err := r.c.List(context.Background(), &azs, client.InNamespace(o.Namespace), client.MatchingLabels{v1alpha1.LabelOrder: o.Name}); err != nil || len(azs.Items) == 0 {
			t.Fatalf("authorizations of restored order %s: %d (%v)", o.Name, len(azs.Items), err)
		}
		z, err := cl.GetAuthorization(context.Background(), base+"authz/"+azs.Items[0].Name)
		if err != nil || z.Status != xacme.StatusExpired {
			t.Fatalf("restored authorization %s without status: %+v (%v); want expired", azs.Items[0].Name, z, err)
		}
		checked++
	}
	if checked == 0 {
		t.Fatalf("no restored order of lego's account %s", legoKID)
	}

	// The same accounts renew and revoke.
	certbot("renew", "--force-renewal", "--no-random-sleep-on-renew", "--cert-name", "cb.localhost")
	lego("--domains", "lg.localhost", "renew", "--days", "100000", "--no-random-sleep")
	cbAfter, lgAfter := read(cbCert), read(legoCert("lg.localhost"))
	if cbAfter.SerialNumber.Cmp(cbBefore.SerialNumber) == 0 || lgAfter.SerialNumber.Cmp(lgBefore.SerialNumber) == 0 {
		t.Fatal("a renewal after the restore did not produce a new certificate")
	}
	certbot("revoke", "--server", dirURL, "--reason", "superseded", "--no-delete-after-revoke", "--cert-path", cbCert)
	lego("--domains", "lg.localhost", "revoke")
	if !onCRL(cbAfter) || !onCRL(lgAfter) {
		t.Fatal("a revocation after the restore is not on the CRL")
	}
}

// legoAccount reads the account key and URL lego keeps under dir.
func legoAccount(t *testing.T, dir string) (crypto.Signer, string) {
	t.Helper()
	accts, err := filepath.Glob(filepath.Join(dir, "accounts", "*", "*", "account.json"))
	if err != nil || len(accts) != 1 {
		t.Fatalf("lego accounts: %v (%v)", accts, err)
	}
	b, err := os.ReadFile(accts[0])
	if err != nil {
		t.Fatal(err)
	}
	var a struct {
		Registration struct {
			URI string `json:"uri"`
		} `json:"registration"`
	}
	if err := json.Unmarshal(b, &a); err != nil || a.Registration.URI == "" {
		t.Fatalf("lego account.json: %s (%v)", b, err)
	}
	keys, err := filepath.Glob(filepath.Join(filepath.Dir(accts[0]), "keys", "*.key"))
	if err != nil || len(keys) != 1 {
		t.Fatalf("lego account keys: %v (%v)", keys, err)
	}
	pemBytes, err := os.ReadFile(keys[0])
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(pemBytes)
	if blk == nil {
		t.Fatalf("lego account key %s is not PEM", keys[0])
	}
	key, err := x509.ParseECPrivateKey(blk.Bytes)
	if err != nil {
		k8, err8 := x509.ParsePKCS8PrivateKey(blk.Bytes)
		signer, ok := k8.(crypto.Signer)
		if err8 != nil || !ok {
			t.Fatalf("lego account key: %v / %v", err, err8)
		}
		return signer, a.Registration.URI
	}
	return key, a.Registration.URI
}
