package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/kacme/kacme/acmeserver/storage"
	"github.com/kacme/kacme/acmeserver/storage/kube"
)

// containerMemory is the memory limit the stored-issuances benchmark gives
// kacme server and controller in cluster mode: what docs/kubernetes.md
// recommends for each (server.resources.limits.memory,
// controller.resources.limits.memory) at 100,000 stored issuances.
const containerMemory = 1 << 30

// benchScaleCluster is the stored-issuances benchmark in cluster mode: the
// same phases as benchScale, with the n issuances created through the API
// server (an order, its authorization and its certificate each, cloned from
// a real issuance) while kacme runs, then kacme server and controller
// restarted on them. RSS is reported for both processes.
func benchScaleCluster(bin string, resp *responder, n int, steady time.Duration, rateHz float64, samples int) (*scaleResult, error) {
	res := &scaleResult{steady: steady, rate: rateHz, cluster: true}
	dir, err := os.MkdirTemp("", "acmebench-scale-cluster")
	if err != nil {
		return nil, err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	s, err := startKacmeCluster(bin, dir, 80)
	if err != nil {
		return nil, err
	}
	defer s.stop()
	fmt.Fprintf(os.Stderr, "scale (cluster): issuing at 8 clients on an empty store for %s...\n", min(steady, time.Minute))
	var emptyHook, fullHook func(time.Time, time.Duration)
	var emptyShare, fullShare float64
	if profileAPIServer {
		res.apiProfiles = &apiServerProfiles{bin: s.processes["kube-apiserver"], dir: dir, empty: "apiserver-empty.pb.gz", full: "apiserver-full.pb.gz"}
		emptyHook = res.apiProfiles.during(s, res.apiProfiles.empty, &emptyShare)
		fullHook = res.apiProfiles.during(s, res.apiProfiles.full, &fullShare)
	}
	empty := runLevelDuring(s, resp, 8, 2*time.Second, min(steady, time.Minute), nil, emptyHook)
	if res.apiProfiles != nil {
		res.apiProfiles.emptyFlows = emptyShare * float64(empty.flows)
	}
	res.emptyRate, res.emptyP50, res.emptyErrors, res.emptyCores = empty.throughput(), empty.pct(0.5), empty.errors, empty.cores

	fmt.Fprintf(os.Stderr, "scale (cluster): storing %d issuances through the API server...\n", n)
	t0 := time.Now()
	st := kube.New(s.kube, s.kube) // no cache: reads and writes go to the API server
	ctx := context.Background()
	if err := cloneFrom(ctx, st, clusterNS, n, 32, func(ctx context.Context, obj storage.Object) error {
		return s.kube.Create(ctx, obj)
	}); err != nil {
		return nil, err
	}
	res.fill, res.stored = time.Since(t0), n

	fmt.Fprintln(os.Stderr, "scale (cluster): restarting kacme server and controller...")
	// From here both run as in a container with a memory limit of
	// containerMemory: kacme sets the Go runtime's soft limit to 90 % of a
	// container's limit itself (cmd/kacme/memlimit.go); outside a container
	// the same limit comes from GOMEMLIMIT.
	res.goMemLimit = containerMemory / 10 * 9
	s.restartEnv = []string{fmt.Sprintf("GOMEMLIMIT=%d", res.goMemLimit)}
	t0 = time.Now()
	s.startWait = 15 * time.Minute // reported below as "start until the directory answers"
	if err := s.restart(); err != nil {
		return nil, err
	}
	res.startup = time.Since(t0)
	time.Sleep(5 * time.Second)
	res.rssRestart, res.ctrlRestart = sampleRSS(s.pid(), ""), sampleRSS(s.controller.pid(), "")
	if err := fullStorePhases(s, resp, res, n, samples, "scale (cluster)", fullHook); err != nil {
		return nil, err
	}
	if res.apiProfiles != nil {
		res.apiProfiles.fullFlows = fullShare * float64(res.fullFlows)
		res.apiProfiles.rendered = res.apiProfiles.render() // before dir goes
	}
	res.rssSteady, res.ctrlSteady = sampleRSS(s.pid(), ""), sampleRSS(s.controller.pid(), "")
	return res, nil
}
