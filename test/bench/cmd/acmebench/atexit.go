package main

import (
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// What this run started and must stop however it ends: the control planes
// (kube-apiserver and etcd, started by envtest) and, through Pdeathsig on
// each, the server processes. A benchmark that is interrupted or fails must
// not leave them running: they would share the machine with whatever is
// measured next.
var (
	exitMu  sync.Mutex
	exitFns = map[int]func(){}
	exitSeq int
)

// onExit registers f to run if the benchmark is interrupted or fails, and
// returns the function that runs f now (at most once, either way).
func onExit(f func()) func() {
	var once sync.Once
	run := func() { once.Do(f) }
	exitMu.Lock()
	exitSeq++
	id := exitSeq
	exitFns[id] = run
	exitMu.Unlock()
	return func() {
		exitMu.Lock()
		delete(exitFns, id)
		exitMu.Unlock()
		run()
	}
}

// runExitFns stops whatever is still registered.
func runExitFns() {
	exitMu.Lock()
	fns := make([]func(), 0, len(exitFns))
	for _, f := range exitFns {
		fns = append(fns, f)
	}
	clear(exitFns)
	exitMu.Unlock()
	for _, f := range fns {
		f()
	}
}

// stopOnSignal stops what is registered on SIGINT or SIGTERM, then exits.
func stopOnSignal() {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	go func() {
		sig := <-ch
		fmt.Fprintf(os.Stderr, "acmebench: %v: stopping the servers and control planes it started\n", sig)
		runExitFns()
		os.Exit(130)
	}()
}
