package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// apiServerProfiles: with -scale-apiserver-profile, the cluster-mode
// stored-issuances benchmark reads kube-apiserver's CPU profile
// (/debug/pprof/profile, on by default in kube-apiserver) over the 8-client
// minute on the empty store and over the one on the full store, and reports
// where the difference goes. Profiling costs the API server a little CPU in
// both minutes alike; the report says the run was profiled.
type apiServerProfiles struct {
	bin         string // kube-apiserver, for pprof's symbols
	dir         string
	empty, full string // profile files
	// flows completed while each profile ran (estimated from the level's
	// flows, spread evenly over its window).
	emptyFlows, fullFlows float64
	err                   error
	rendered              string
}

// profileAPIServer is -scale-apiserver-profile.
var profileAPIServer bool

// during returns a runLevelDuring hook that writes the API server's profile
// over the measuring window to file and sets *share to the part of the
// window it covered (times the level's flows: the flows it covered).
func (p *apiServerProfiles) during(s *server, file string, share *float64) func(time.Time, time.Duration) {
	return func(from time.Time, measure time.Duration) {
		time.Sleep(time.Until(from))
		seconds := int(measure.Seconds()) - 1
		if seconds < 1 {
			seconds = 1
		}
		b, err := s.apiServerProfile(seconds)
		if err != nil {
			p.err = err
			return
		}
		if err := os.WriteFile(filepath.Join(p.dir, file), b, 0o644); err != nil {
			p.err = err
			return
		}
		*share = float64(seconds) / measure.Seconds()
	}
}

// render lists the functions whose cumulative CPU per issuance grew most
// from the empty to the full store, and the API server's total.
func (p *apiServerProfiles) render() string {
	if p == nil || p.err != nil || p.emptyFlows == 0 || p.fullFlows == 0 {
		if p != nil && p.err != nil {
			return fmt.Sprintf("\nThe API server's CPU profile failed: %v\n", p.err)
		}
		return ""
	}
	empty, err := pprofTop(p.bin, "-cum", "-nodecount=100000", filepath.Join(p.dir, p.empty))
	if err != nil {
		return fmt.Sprintf("\nThe API server's CPU profile (empty store) could not be read: %v\n", err)
	}
	full, err := pprofTop(p.bin, "-cum", "-nodecount=100000", filepath.Join(p.dir, p.full))
	if err != nil {
		return fmt.Sprintf("\nThe API server's CPU profile (full store) could not be read: %v\n", err)
	}
	perFlow := func(o *pprofOutput, flows float64) map[string]float64 {
		m := map[string]float64{}
		for _, l := range o.lines {
			m[l.name] = 1000 * pprofSeconds(l.cum) / flows
		}
		return m
	}
	e, f := perFlow(empty, p.emptyFlows), perFlow(full, p.fullFlows)
	type row struct {
		name        string
		empty, full float64
	}
	var rows []row
	for name, v := range f {
		rows = append(rows, row{name, e[name], v})
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].full-rows[i].empty > rows[j].full-rows[j].empty })
	var b strings.Builder
	fmt.Fprintf(&b, "\nWhere the API server's CPU per issuance goes (its pprof CPU profile over each 8-client minute; %.1f ms per issuance\n"+
		"in all on the empty store, %.1f ms on the full one): the 25 functions whose cumulative time per issuance grew most.\n\n",
		1000*empty.total/p.emptyFlows, 1000*full.total/p.fullFlows)
	b.WriteString("| function (cumulative) | empty store | full store |\n|---|---:|---:|\n")
	for i, r := range rows {
		if i == 25 {
			break
		}
		fmt.Fprintf(&b, "| `%s` | %.2f ms | %.2f ms |\n", r.name, r.empty, r.full)
	}
	return b.String()
}
