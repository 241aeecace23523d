package integration

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kacme/kacme/api/v1alpha1"
	kenvtest "github.com/kacme/kacme/test/envtest"
)

// TestControllerProcess runs "kacme controller" as a process against a real
// API server: a root, an intermediate and a profile become ready.
func TestControllerProcess(t *testing.T) {
	_, c, kubeconfig := kenvtest.StartWithKubeconfig(t)
	ctx := context.Background()
	const ns = "kacme-system"
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	bin := buildKacme(t)
	startProcess(t, []string{"KUBECONFIG=" + kubeconfig}, bin, "controller", "--namespace", ns, "--external-url", "https://acme.example.test", "--leader-elect")
	for _, o := range []client.Object{
		&v1alpha1.CertificateAuthority{ObjectMeta: metav1.ObjectMeta{Name: "root"},
			Spec: v1alpha1.CertificateAuthoritySpec{SelfSigned: &v1alpha1.SelfSignedCA{KeyAlgorithm: v1alpha1.KeyECDSAP384}}},
		&v1alpha1.CertificateAuthority{ObjectMeta: metav1.ObjectMeta{Name: "issuing"},
			Spec: v1alpha1.CertificateAuthoritySpec{Intermediate: &v1alpha1.IntermediateCA{Issuer: "root"}}},
		&v1alpha1.AcmeProfile{ObjectMeta: metav1.ObjectMeta{Name: "default"}, Spec: v1alpha1.AcmeProfileSpec{CertificateAuthority: "issuing"}},
	} {
		if err := c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	var p v1alpha1.AcmeProfile
	kenvtest.WaitFor(t, "the profile to become ready", func() bool {
		if err := c.Get(ctx, client.ObjectKey{Name: "default"}, &p); err != nil {
			return false
		}
		return meta.IsStatusConditionTrue(p.Status.Conditions, "Ready")
	})
	if p.Status.DirectoryURL != "https://acme.example.test/acme/default/directory" {
		t.Fatalf("directory URL %q", p.Status.DirectoryURL)
	}
	var sec corev1.Secret
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "issuing-ca"}, &sec); err != nil {
		t.Fatalf("intermediate secret: %v", err)
	}
}

func buildKacme(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "kacme")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/kacme/kacme/cmd/kacme").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

// process is a command started by a test.
type process struct {
	cmd  *exec.Cmd
	logs bytes.Buffer
	done chan struct{}
}

// stop interrupts the process and waits for it (killing it after 10 s).
func (p *process) stop() {
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// startProcess runs a command until the test ends (or stop) and shows its
// output if the test failed.
func startProcess(t *testing.T, env []string, name string, args ...string) *process {
	t.Helper()
	p := &process{cmd: exec.Command(name, args...), done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = &p.logs, &p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("%s %s output:\n%s", filepath.Base(name), args[0], p.logs.String())
		}
	})
	return p
}
