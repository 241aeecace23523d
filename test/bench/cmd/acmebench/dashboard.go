package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The dashboard benchmark: fill a kacme server with real issuances until it
// stores dashboardOrders orders, then time the dashboard's pages as one
// signed-in user loading them one after another.
const dashboardOrders = 10000

// dashboardPage is one timed page.
type dashboardPage struct {
	name, path string
	times      []time.Duration // sorted
	bytes      int
	// shown is what the page says it counts ("10012 orders you may see"), a
	// check that the page really read every stored order.
	shown string
}

func (p dashboardPage) pct(q float64) time.Duration {
	return p.times[int(float64(len(p.times)-1)*q)]
}

// dashboardResult is the page times of one server.
type dashboardResult struct {
	orders int
	fill   time.Duration
	pages  []dashboardPage
	// rss is the kacme server process's resident memory after the pages, in MiB.
	rss float64
}

// fillOrders runs full flows with c clients until the server has created at
// least n orders.
func fillOrders(s *server, resp *responder, c, n int) error {
	hc := s.httpClient(c)
	ctx := context.Background()
	var wg sync.WaitGroup
	var failures atomic.Int64
	var firstErr atomic.Value
	for i := 0; i < c; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl, err := s.register(ctx, hc)
			if err != nil {
				firstErr.CompareAndSwap(nil, "register: "+err.Error())
				failures.Add(1)
				return
			}
			csr := benchCSR()
			for s.orders.Load() < int64(n) && failures.Load() < 100 {
				if err := flow(ctx, cl, resp, csr, &s.orders); err != nil {
					firstErr.CompareAndSwap(nil, err.Error())
					failures.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if s.orders.Load() < int64(n) {
		return fmt.Errorf("%s: %d orders created, then too many failures; first: %v", s.name, s.orders.Load(), firstErr.Load())
	}
	return nil
}

// benchDashboard fills s to dashboardOrders orders and times its pages.
func benchDashboard(s *server, resp *responder, samples int) (*dashboardResult, error) {
	res := &dashboardResult{}
	t0 := time.Now()
	fmt.Fprintf(os.Stderr, "%s dashboard: issuing until %d orders are stored (%d so far)...\n", s.name, dashboardOrders, s.orders.Load())
	if err := fillOrders(s, resp, 16, dashboardOrders); err != nil {
		return nil, err
	}
	res.fill, res.orders = time.Since(t0), int(s.orders.Load())
	token, err := s.dashboardToken()
	if err != nil {
		return nil, fmt.Errorf("%s: dashboard token: %w", s.name, err)
	}
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar, Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.roots}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	base := s.directory[:len(s.directory)-len("/acme/directory")]
	r, err := hc.PostForm(base+"/dashboard/login", url.Values{"token": {token}})
	if err != nil {
		return nil, err
	}
	_ = r.Body.Close()
	if r.StatusCode != http.StatusSeeOther {
		return nil, fmt.Errorf("%s: dashboard sign-in: %s", s.name, r.Status)
	}
	lastPage := strconv.Itoa((res.orders + 49) / 50)
	pages := []dashboardPage{
		{name: "overview", path: "/dashboard/"},
		{name: "orders, newest 50", path: "/dashboard/orders"},
		{name: "orders, last page", path: "/dashboard/orders?page=" + lastPage},
		{name: "orders, filter matching none (status=invalid)", path: "/dashboard/orders?status=invalid"},
		{name: "orders, filter by identifier", path: "/dashboard/orders?identifier=127.0.0.1"},
		{name: "certificates, first 50", path: "/dashboard/certificates"},
	}
	counted := regexp.MustCompile(`\((\d+) orders you may see\)|<b>(\d+)</b>orders`)
	for i := range pages {
		p := &pages[i]
		for j := 0; j < samples+3; j++ { // three unmeasured loads first
			start := time.Now()
			r, err := hc.Get(base + p.path)
			if err != nil {
				return nil, err
			}
			body, err := io.ReadAll(r.Body)
			_ = r.Body.Close()
			d := time.Since(start)
			if err != nil {
				return nil, err
			}
			if r.StatusCode != http.StatusOK {
				return nil, fmt.Errorf("%s %s: %s", s.name, p.path, r.Status)
			}
			p.bytes = len(body)
			if m := counted.FindSubmatch(body); m != nil {
				p.shown = string(m[1]) + string(m[2])
			}
			if j >= 3 {
				p.times = append(p.times, d)
			}
		}
		sort.Slice(p.times, func(a, b int) bool { return p.times[a] < p.times[b] })
		fmt.Fprintf(os.Stderr, "  %s: p50 %v, p95 %v (%d bytes, counts %s)\n", p.name, p.pct(0.5).Round(time.Microsecond*100),
			p.pct(0.95).Round(time.Microsecond*100), p.bytes, p.shown)
	}
	res.pages = pages
	res.rss = rssMiB(s.cmd.Process.Pid)
	return res, nil
}

// rssMiB reads a process's resident set size from /proc.
func rssMiB(pid int) float64 { return procStatusMiB(pid, "VmRSS") }

// procStatusMiB reads a kB field of /proc/<pid>/status (VmRSS, RssAnon,
// RssFile) in MiB; 0 when it cannot.
func procStatusMiB(pid int, field string) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

func renderDashboard(results map[string]*dashboardResult, versions map[string]string) string {
	if len(results) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("\n## Dashboard with 10,000 orders\n\n" +
		"After its load levels, each kacme server above is filled with more of the same real issuances until it stores at\n" +
		"least 10,000 orders (each with its authorization and certificate); then one signed-in user loads each dashboard page\n" +
		"over HTTPS one after another: three unmeasured loads, then the timed ones (time to the last byte, as the browser\n" +
		"gets it). \"counts\" is what the page itself reports having counted, a check that it saw every stored order.\n\n")
	b.WriteString("| mode | page | loads | p50 | p95 | max | size | counts |\n|---|---|---:|---:|---:|---:|---:|---:|\n")
	for _, name := range []string{"kacme", "kacme-cluster"} {
		r := results[name]
		if r == nil {
			continue
		}
		mode := "standalone (bbolt)"
		if name == "kacme-cluster" {
			mode = "cluster (informer cache)"
		}
		for _, p := range r.pages {
			fmt.Fprintf(&b, "| %s | %s `%s` | %d | %s | %s | %s | %d kB | %s |\n", mode, p.name, p.path, len(p.times),
				ms(p.pct(0.5)), ms(p.pct(0.95)), ms(p.times[len(p.times)-1]), (p.bytes+512)/1024, p.shown)
		}
	}
	b.WriteString("\n")
	for _, name := range []string{"kacme", "kacme-cluster"} {
		if r := results[name]; r != nil {
			fmt.Fprintf(&b, "%s %s: %d orders stored (filled in %s); the kacme server process then used %.0f MiB of memory (RSS).\n",
				name, versions[name], r.orders, r.fill.Round(time.Second), r.rss)
		}
	}
	return b.String()
}
