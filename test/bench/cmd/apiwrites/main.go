// Command apiwrites measures what one write of kacme's state costs the API
// server: the kube-apiserver's CPU (from /proc) per AcmeChallenge create,
// and per create followed by an update, against the control plane of
// KUBEBUILDER_ASSETS with the kacme CRDs. It backs the cost figures in
// docs/architecture.md ("Writes per issuance"); it is not part of make bench.
//
//	KUBEBUILDER_ASSETS="$(hack/envtest.sh)" go run ./test/bench/cmd/apiwrites
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crenvtest "sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/kacme/kacme/acmeserver/acme"
	"github.com/kacme/kacme/acmeserver/storage"
	"github.com/kacme/kacme/api/v1alpha1"
)

// cpuSeconds is the user+system CPU time process pid has used.
func cpuSeconds(pid string) (float64, error) {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0, err
	}
	// Fields after the command name (which may hold spaces) start at ") ".
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	u, _ := strconv.ParseFloat(f[11], 64)
	s, _ := strconv.ParseFloat(f[12], 64)
	return (u + s) / 100, nil // USER_HZ
}

func main() {
	n := flag.Int("n", 2000, "objects per round")
	workers := flag.Int("workers", 16, "concurrent writers")
	rounds := flag.Int("rounds", 3, "rounds of (create, create+update)")
	flag.Parse()
	if err := run(*n, *workers, *rounds); err != nil {
		fmt.Fprintln(os.Stderr, "apiwrites:", err)
		os.Exit(1)
	}
}

func run(n, workers, rounds int) error {
	env := &crenvtest.Environment{CRDDirectoryPaths: []string{filepath.Join("config", "crd", "bases")},
		ErrorIfCRDPathMissing: true, BinaryAssetsDirectory: os.Getenv("KUBEBUILDER_ASSETS")}
	cfg, err := env.Start()
	if err != nil {
		return err
	}
	defer func() { _ = env.Stop() }()
	cfg.QPS, cfg.Burst = 5000, 5000
	c, err := client.New(cfg, client.Options{Scheme: storage.KubeScheme()})
	if err != nil {
		return err
	}
	ctx := context.Background()
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "bench"}}); err != nil {
		return err
	}
	out, err := exec.Command("pgrep", "-n", "kube-apiserver").Output()
	if err != nil {
		return fmt.Errorf("find kube-apiserver: %w", err)
	}
	pid := strings.TrimSpace(string(out))
	fmt.Printf("kube-apiserver CPU per write of an AcmeChallenge (%d objects per round, %d writers):\n", n, workers)
	for r := 0; r < rounds; r++ {
		for _, update := range []bool{false, true} {
			ms, rate, err := round(ctx, c, pid, n, workers, update)
			if err != nil {
				return err
			}
			what := "create"
			if update {
				what = "create + update"
			}
			fmt.Printf("  %-16s %6.2f ms CPU per object, %5.0f objects/s\n", what, ms, rate)
		}
	}
	return nil
}

// round writes n AcmeChallenges (each then updated, as a validation outcome
// would, when update) and returns the API server's CPU ms per object.
func round(ctx context.Context, c client.Client, pid string, n, workers int, update bool) (float64, float64, error) {
	c0, err := cpuSeconds(pid)
	if err != nil {
		return 0, 0, err
	}
	t0 := time.Now()
	jobs := make(chan struct{})
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range jobs {
				az := &v1alpha1.AcmeChallenge{
					ObjectMeta: metav1.ObjectMeta{Namespace: "bench", Name: acme.NewID() + "-0", Labels: map[string]string{
						v1alpha1.LabelAccount: "account", v1alpha1.LabelOrder: "order", v1alpha1.LabelProfile: "default"}},
					Spec: v1alpha1.AcmeChallengeSpec{Account: "account", Order: "order", Profile: "default",
						Identifier: v1alpha1.Identifier{Type: "dns", Value: "www.example.com"}},
					Status: v1alpha1.AcmeChallengeStatus{Status: acme.StatusPending, Expires: metav1.Now(),
						Challenges: []v1alpha1.AcmeChallengeState{{Type: v1alpha1.ChallengeHTTP01, Token: acme.NewToken(), Status: acme.StatusPending}}},
				}
				if err := c.Create(ctx, az); err != nil {
					errs <- err
					return
				}
				if update {
					az.Status.Status, az.Status.Challenges[0].Status = acme.StatusValid, acme.StatusValid
					if err := c.Update(ctx, az); err != nil {
						errs <- err
						return
					}
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		select {
		case jobs <- struct{}{}:
		case err := <-errs:
			close(jobs)
			wg.Wait()
			return 0, 0, err
		}
	}
	close(jobs)
	wg.Wait()
	select {
	case err := <-errs:
		return 0, 0, err
	default:
	}
	c1, err := cpuSeconds(pid)
	if err != nil {
		return 0, 0, err
	}
	return (c1 - c0) * 1000 / float64(n), float64(n) / time.Since(t0).Seconds(), nil
}
