package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// profileResult is where kacme standalone's CPU and allocations went in
// one unreported level: the top entries of its pprof profiles.
type profileResult struct {
	version  string
	clients  int
	flows    int
	seconds  float64 // length of the CPU profile
	cpuTotal float64 // CPU seconds sampled
	// flowsProfiled is how many flows ended inside the profile's window.
	flowsProfiled int
	groups        []profileGroup
	cpuTop        []pprofLine
	allocTop      []pprofLine
	allocTotal    string
}

type profileGroup struct {
	what    string
	seconds float64
}

// pprofLine is one row of `go tool pprof -top`.
type pprofLine struct {
	flat, flatPct, cum, cumPct, name string
}

// profileGroups name what one issuance's server CPU is spent on, each the
// cumulative time of the functions listed (GC assists are counted in the
// function that allocated; the background collector is its own row).
var profileGroups = []struct {
	what  string
	funcs []string
	minus []string
}{
	{"JWS signature checks (go-jose, crypto/ecdsa)", []string{"github.com/kacme/kacme/acmeserver/jws.(*Request).Verify"}, nil},
	{"JWS parsing and shape checks", []string{"github.com/kacme/kacme/acmeserver/jws.Parse"}, nil},
	{"signing the certificate (crypto/x509, with Go's check of its own signature)", []string{"github.com/kacme/kacme/acmeserver/ca.(*Authority).Issue"}, nil},
	{"parsing the CSR and checking its signature", []string{"github.com/kacme/kacme/acmeserver/ra.ParseCSR"}, nil},
	{"store: bbolt transactions and fsync (the committer goroutine)", []string{"github.com/kacme/kacme/acmeserver/storage/embedded.(*Store).commitLoop"}, nil},
	{"http-01 validation (resolve, dial, request)", []string{"github.com/kacme/kacme/acmeserver/va.(*VA).Validate",
		"net/http.(*Transport).dialConnFor", "net/http.(*persistConn).readLoop", "net/http.(*persistConn).writeLoop"}, nil},
	{"ACME handlers, the rest (state, storage reads, JSON, chains)", []string{"github.com/kacme/kacme/acmeserver/wfe.(*WFE).ServeHTTP"},
		[]string{"github.com/kacme/kacme/acmeserver/jws.(*Request).Verify", "github.com/kacme/kacme/acmeserver/jws.Parse",
			"github.com/kacme/kacme/acmeserver/ca.(*Authority).Issue", "github.com/kacme/kacme/acmeserver/ra.ParseCSR"}},
	{"HTTP and TLS outside the handlers (read, parse, write)", []string{"net/http.(*conn).serve"}, []string{"net/http.serverHandler.ServeHTTP"}},
	{"garbage collector (background mark and sweep)", []string{"runtime.gcBgMarkWorker", "runtime.bgsweep"}, nil},
}

// benchProfile runs kacme standalone with its pprof endpoint for one more
// level of c clients, not part of the report's measured levels (profiling
// costs CPU of its own), and reads the CPU profile and the allocations
// over the measuring window.
func benchProfile(bin string, resp *responder, httpPort, c int, warmup, measure time.Duration) (*profileResult, error) {
	dir, err := os.MkdirTemp("", "acmebench-profile")
	if err != nil {
		return nil, err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	debug := fmt.Sprintf("127.0.0.1:%d", freePort())
	s, err := startKacmeWith(bin, dir, httpPort, "", "--debug-addr", debug)
	if err != nil {
		return nil, err
	}
	defer s.stop()
	// A profile request answers after its seconds; nothing else waits long.
	hc := &http.Client{Timeout: measure + 30*time.Second}
	get := func(path, file string) error {
		resp, err := hc.Get("http://" + debug + path)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s", path, resp.Status)
		}
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, file), b, 0o644)
	}
	seconds := int(measure.Seconds()) - 1
	if seconds < 1 {
		seconds = 1
	}
	var perr error
	var profiledFrom, profiledTo time.Time
	fmt.Fprintf(os.Stderr, "profile: kacme at %d clients...\n", c)
	lvl := runLevelDuring(s, resp, c, warmup, measure, nil, func(from time.Time, _ time.Duration) {
		time.Sleep(time.Until(from))
		if perr = get("/debug/pprof/allocs", "allocs-base.pb.gz"); perr != nil {
			return
		}
		profiledFrom = time.Now()
		if perr = get(fmt.Sprintf("/debug/pprof/profile?seconds=%d", seconds), "cpu.pb.gz"); perr != nil {
			return
		}
		profiledTo = time.Now()
		perr = get("/debug/pprof/allocs", "allocs.pb.gz")
	})
	if perr != nil {
		return nil, fmt.Errorf("profile: %w", perr)
	}
	if lvl.errors > 0 {
		return nil, fmt.Errorf("profile level: %d errors, first: %s", lvl.errors, lvl.firstErr)
	}
	r := &profileResult{version: s.version, clients: c, flows: lvl.flows, seconds: float64(seconds)}
	// The level's flows are spread evenly enough over its window to count
	// the profiled share by time.
	r.flowsProfiled = int(float64(lvl.flows) * profiledTo.Sub(profiledFrom).Seconds() / measure.Seconds())
	cpu := filepath.Join(dir, "cpu.pb.gz")
	cum, err := pprofTop(bin, "-cum", "-nodecount=100000", cpu)
	if err != nil {
		return nil, err
	}
	byName := map[string]float64{}
	for _, l := range cum.lines {
		byName[l.name] = pprofSeconds(l.cum)
	}
	r.cpuTotal = cum.total
	for _, g := range profileGroups {
		var v float64
		for _, f := range g.funcs {
			v += byName[f]
		}
		for _, f := range g.minus {
			v -= byName[f]
		}
		r.groups = append(r.groups, profileGroup{g.what, v})
	}
	flat, err := pprofTop(bin, "-nodecount=20", cpu)
	if err != nil {
		return nil, err
	}
	r.cpuTop = flat.lines
	allocs, err := pprofTop(bin, "-sample_index=alloc_space", "-nodecount=15", "-base", filepath.Join(dir, "allocs-base.pb.gz"),
		filepath.Join(dir, "allocs.pb.gz"))
	if err != nil {
		return nil, err
	}
	r.allocTop, r.allocTotal = allocs.lines, allocs.totalText
	return r, nil
}

type pprofOutput struct {
	total     float64 // seconds, for a CPU profile
	totalText string
	lines     []pprofLine
}

// pprofTop runs `go tool pprof -top` with args and parses its rows.
func pprofTop(bin string, args ...string) (*pprofOutput, error) {
	cmd := exec.Command("go", append(append([]string{"tool", "pprof", "-top"}, args[:len(args)-1]...), bin, args[len(args)-1])...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go tool pprof %v: %w: %s", args, err, stderr.String())
	}
	res := &pprofOutput{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	rows := false
	for sc.Scan() {
		line := sc.Text()
		if i := strings.Index(line, "Total samples = "); i >= 0 { // CPU: "Duration: 9s, Total samples = 12.3s (136%)"
			res.totalText = strings.Fields(line[i+len("Total samples = "):])[0]
			res.total = pprofSeconds(res.totalText)
		}
		if strings.HasPrefix(line, "Showing nodes accounting for ") && res.totalText == "" { // allocations: "... of 5.36GB total"
			if f := strings.Fields(line); len(f) >= 2 && f[len(f)-1] == "total" {
				res.totalText = f[len(f)-2]
			}
		}
		f := strings.Fields(line)
		if len(f) >= 5 && f[0] == "flat" {
			rows = true
			continue
		}
		if rows && len(f) >= 6 {
			res.lines = append(res.lines, pprofLine{f[0], f[1], f[3], f[4], strings.Join(f[5:], " ")})
		}
	}
	if len(res.lines) == 0 {
		return nil, fmt.Errorf("go tool pprof %v printed no rows", args)
	}
	return res, nil
}

// pprofSeconds reads pprof's durations: "1.23s", "450ms", "0".
func pprofSeconds(v string) float64 {
	for _, u := range []struct {
		suffix string
		scale  float64
	}{{"ms", 1e-3}, {"us", 1e-6}, {"µs", 1e-6}, {"ns", 1e-9}, {"s", 1}, {"min", 60}, {"h", 3600}} {
		if strings.HasSuffix(v, u.suffix) {
			f, err := strconv.ParseFloat(strings.TrimSuffix(v, u.suffix), 64)
			if err == nil {
				return f * u.scale
			}
		}
	}
	f, _ := strconv.ParseFloat(v, 64)
	return f
}

func renderProfile(r *profileResult) string {
	if r == nil {
		return ""
	}
	var b strings.Builder
	perFlow := func(s float64) string {
		if r.flowsProfiled == 0 {
			return "—"
		}
		return fmt.Sprintf("%.2f ms", s*1000/float64(r.flowsProfiled))
	}
	fmt.Fprintf(&b, "\n## Where kacme's server CPU goes\n\n"+
		"kacme %s standalone, same setup, in one more level of %d clients that is not in the tables above (profiling costs\n"+
		"CPU of its own): a %.0f s CPU profile and the allocations over the same window, from kacme's `--debug-addr`\n"+
		"pprof endpoint, read with `go tool pprof -top`. %d flows completed in the level, about %d of them inside the\n"+
		"profile; %s of CPU sampled, **%s per issuance**. Each row is the cumulative time of the functions it names\n"+
		"(time the garbage collector makes an allocating goroutine spend counts where it allocates).\n\n",
		r.version, r.clients, r.seconds, r.flows, r.flowsProfiled, fmt.Sprintf("%.2f s", r.cpuTotal), perFlow(r.cpuTotal))
	b.WriteString("| where | CPU | share | per issuance |\n|---|---:|---:|---:|\n")
	var sum float64
	for _, g := range r.groups {
		sum += g.seconds
		fmt.Fprintf(&b, "| %s | %.2f s | %.0f %% | %s |\n", g.what, g.seconds, 100*g.seconds/r.cpuTotal, perFlow(g.seconds))
	}
	rest := r.cpuTotal - sum
	fmt.Fprintf(&b, "| everything else (scheduler, timers, nonces, logging) | %.2f s | %.0f %% | %s |\n\n", rest, 100*rest/r.cpuTotal, perFlow(rest))
	b.WriteString("Top functions by their own (flat) CPU time:\n\n| flat | flat % | cum | cum % | function |\n|---:|---:|---:|---:|---|\n")
	for _, l := range r.cpuTop {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | `%s` |\n", l.flat, l.flatPct, l.cum, l.cumPct, l.name)
	}
	fmt.Fprintf(&b, "\nTop allocation sites by bytes allocated during the profile (%s in all):\n\n"+
		"| flat | flat %% | cum | cum %% | function |\n|---:|---:|---:|---:|---|\n", r.allocTotal)
	for _, l := range r.allocTop {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | `%s` |\n", l.flat, l.flatPct, l.cum, l.cumPct, l.name)
	}
	return b.String()
}
