package integration

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	xacme "golang.org/x/crypto/acme"
	xocsp "golang.org/x/crypto/ocsp"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kacme/kacme/api/v1alpha1"
	kenvtest "github.com/kacme/kacme/test/envtest"
	"github.com/kacme/kacme/test/harness"
)

// TestOCSPAcrossReplicas (issue 18, Done #1): a CertificateAuthority with
// spec.ocsp and a profile with includeOCSPURL, served by three server
// replicas, each with its own plain-HTTP listener. openssl ocsp at every
// replica reports good for a fresh certificate and unknown for a serial
// never issued; after an ACME revocation through one replica, every
// replica answers revoked within 5 seconds (polled every 50 ms), and
// openssl then shows the reason and the time.
func TestOCSPAcrossReplicas(t *testing.T) {
	e := newClusterEnv(t, false)
	ctx := context.Background()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var root v1alpha1.CertificateAuthority
		if err := e.c.Get(ctx, client.ObjectKey{Name: "root"}, &root); err != nil {
			return err
		}
		root.Spec.OCSP = &v1alpha1.OCSPSpec{}
		return e.c.Update(ctx, &root)
	})
	if err != nil {
		t.Fatal(err)
	}
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var p v1alpha1.AcmeProfile
		if err := e.c.Get(ctx, client.ObjectKey{Name: "default"}, &p); err != nil {
			return err
		}
		p.Spec.IncludeOCSPURL = true
		return e.c.Update(ctx, &p)
	})
	if err != nil {
		t.Fatal(err)
	}
	kenvtest.WaitFor(t, "profile default to accept includeOCSPURL", func() bool {
		var p v1alpha1.AcmeProfile
		if e.c.Get(ctx, client.ObjectKey{Name: "default"}, &p) != nil {
			return false
		}
		for _, c := range p.Status.Conditions {
			if c.Type == "Ready" {
				return c.Status == "True" && c.ObservedGeneration == p.Generation
			}
		}
		return false
	})
	var pki []string
	for range 3 {
		pki = append(pki, fmt.Sprintf("127.0.0.1:%d", harness.FreePort(t)))
	}
	_, backends := startReplicasWith(t, e, 3, func(i int) []string {
		return []string{"--http-listen", pki[i], "--pki-url", "http://" + pki[0]}
	})
	startRoundRobin(t, e, backends)
	resp := startResponder(t, e.httpPort)
	cl := e.client(t)
	ders := issueChainHTTP01(ctx, t, cl, resp, "ocsp.localhost")
	leaf, _ := x509.ParseCertificate(ders[0])
	if want := "http://" + pki[0] + "/ocsp/root"; len(leaf.OCSPServer) != 1 || leaf.OCSPServer[0] != want {
		t.Fatalf("AIA OCSP %v, want [%s]", leaf.OCSPServer, want)
	}
	issuer, _ := x509.ParseCertificate(ders[len(ders)-1])
	dir := t.TempDir()
	leafPath := filepath.Join(dir, "leaf.pem")
	if err := os.WriteFile(leafPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ders[0]}), 0o600); err != nil {
		t.Fatal(err)
	}
	ocsp := func(replica int, args ...string) string {
		t.Helper()
		args = append([]string{"ocsp", "-issuer", e.rootPath, "-CAfile", e.rootPath, "-url", "http://" + pki[replica] + "/ocsp/root", "-timeout", "10"}, args...)
		out, err := exec.Command("openssl", args...).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "Response verify OK") {
			t.Fatalf("replica %d: openssl %s: %v\n%s", replica, strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	unknown := "0x" + strings.ToUpper(new(big.Int).Add(leaf.SerialNumber, big.NewInt(1)).Text(16))
	for i := range pki {
		if out := ocsp(i, "-cert", leafPath); !strings.Contains(out, leafPath+": good") {
			t.Fatalf("replica %d, fresh certificate:\n%s", i, out)
		}
		if out := ocsp(i, "-serial", unknown); !strings.Contains(out, unknown+": unknown") {
			t.Fatalf("replica %d, serial never issued:\n%s", i, out)
		}
	}

	req, err := xocsp.CreateRequest(leaf, issuer, nil)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := cl.RevokeCert(ctx, nil, ders[0], xacme.CRLReasonKeyCompromise); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	seen := make([]time.Duration, len(pki))
	for i := range pki {
		wg.Go(func() {
			for time.Since(start) < 10*time.Second {
				r, err := http.Post("http://"+pki[i]+"/ocsp/root", "application/ocsp-request", bytes.NewReader(req))
				if err == nil {
					body, _ := io.ReadAll(r.Body)
					r.Body.Close()
					if got, err := xocsp.ParseResponseForCert(body, leaf, issuer); err == nil && got.Status == xocsp.Revoked {
						seen[i] = time.Since(start)
						return
					}
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
	wg.Wait()
	for i, d := range seen {
		t.Logf("replica %d answered revoked %v after the revocation request began", i, d.Round(time.Millisecond))
		if d == 0 || d > 5*time.Second {
			t.Errorf("replica %d: revoked not answered within 5 s (%v)", i, d)
		}
	}
	for i := range pki {
		if out := ocsp(i, "-cert", leafPath); !strings.Contains(out, leafPath+": revoked") ||
			!strings.Contains(out, "Reason: keyCompromise") || !strings.Contains(out, "Revocation Time:") {
			t.Errorf("replica %d after the revocation:\n%s", i, out)
		}
	}
}
