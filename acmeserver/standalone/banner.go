package standalone

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"github.com/kacme/kacme/acmeserver/acme"
	"github.com/kacme/kacme/acmeserver/dashboard"
	"github.com/kacme/kacme/acmeserver/profile"
	"github.com/kacme/kacme/api/v1alpha1"
)

// Example is what the getting-started banner can show for the default
// profile: a name it allows and the http-01 port it validates on, or why no
// client command can be printed.
type Example struct {
	Name string
	Port int
	// EAB is set when the directory requires external account binding.
	EAB bool
	// Notes qualify the commands (the name must resolve to this machine, a
	// privileged port); Reason, when set, replaces them.
	Notes  []string
	Reason string
}

// ExampleFor derives the banner's client commands from the profile actually
// served: the first of app.localhost (RFC 6761: always this machine) and
// app.<suffix> for each allowed DNS suffix that its identifier policy
// accepts, on its http-01 port.
func ExampleFor(p *profile.Profile) Example {
	if !p.Offers(v1alpha1.ChallengeHTTP01) {
		return Example{Reason: fmt.Sprintf("profile %q does not offer http-01 (it offers %s), so there is no one-line certbot or lego command to print",
			p.Name, joinTypes(p.ChallengeTypes))}
	}
	candidates := []string{"app.localhost"}
	for _, s := range p.Spec.Identifiers.AllowedDNSSuffixes {
		if s != "localhost" && !strings.HasPrefix(s, "*") {
			candidates = append(candidates, "app."+s)
		}
	}
	var name string
	for _, c := range candidates {
		if p.Allows(acme.Identifier{Type: acme.IdentifierDNS, Value: c}) == nil {
			name = c
			break
		}
	}
	if name == "" {
		return Example{Reason: fmt.Sprintf("profile %q allows none of %s (spec.identifiers), so no example name can be printed",
			p.Name, strings.Join(candidates, ", "))}
	}
	ex := Example{Name: name, Port: p.Validation.HTTPPort, EAB: p.EABRequired()}
	if ex.Port == 0 {
		ex.Port = 80
	}
	if !strings.HasSuffix(name, ".localhost") {
		ex.Notes = append(ex.Notes, fmt.Sprintf("%s must resolve to this machine through the profile's resolvers for http-01 to reach the client", name))
	}
	if ex.Port < 1024 {
		ex.Notes = append(ex.Notes, fmt.Sprintf("the client listens on port %d (the profile's http-01 port), which needs root", ex.Port))
	}
	if ex.EAB {
		ex.Notes = append(ex.Notes, "this directory requires external account binding: the commands carry placeholders for the key ID and HMAC key of a pre-registered AcmeAccount")
	}
	return ex
}

func joinTypes(ts []v1alpha1.ChallengeType) string {
	var out []string
	for _, t := range ts {
		out = append(out, string(t))
	}
	return strings.Join(out, ", ")
}

// Banner is what kacme standalone prints when it starts: where things are,
// and a certbot and a lego command that work against the default profile as
// it is served (or why none can be printed).
func (s *Server) Banner(dataDir string) string {
	abs, _ := filepath.Abs(dataDir)
	var profiles []string
	for _, p := range s.Config.Profiles {
		profiles = append(profiles, fmt.Sprintf("%s/acme/%s/directory", s.URL, p.Path))
	}
	sort.Strings(profiles)
	var b strings.Builder
	fmt.Fprintf(&b, `
kacme standalone is running.

  ACME directory : %s
  profiles       : %s
  CA root        : %s   (trust this to verify kacme and its certificates)
  data           : %s   (stop with Ctrl-C; a restart keeps everything)

`, s.DirectoryURL, strings.Join(profiles, ", "), s.RootPath, abs)
	p := s.Config.Profiles[s.Config.DefaultProfile]
	ex := ExampleFor(p)
	if ex.Reason != "" {
		fmt.Fprintf(&b, "No client command is printed: %s.\n\n", ex.Reason)
	} else {
		certbotEAB, legoEAB := "", ""
		if ex.EAB {
			certbotEAB = " \\\n    --eab-kid <key ID> --eab-hmac-key <HMAC key>"
			legoEAB = " \\\n    --eab --kid <key ID> --hmac <HMAC key>"
		}
		fmt.Fprintf(&b, `Get a certificate for %[1]s with certbot (http-01 on port %[2]d):

  REQUESTS_CA_BUNDLE=%[3]s certbot certonly --standalone \
    --http-01-address 127.0.0.1 --http-01-port %[2]d \
    --server %[4]s \
    --agree-tos --register-unsafely-without-email --non-interactive \
    --config-dir %[5]s/clients/certbot --work-dir %[5]s/clients/certbot/work --logs-dir %[5]s/clients/certbot/logs%[6]s \
    -d %[1]s

or with lego:

  LEGO_CA_CERTIFICATES=%[3]s lego --server %[4]s \
    --accept-tos --email admin@example.com --path %[5]s/clients/lego%[7]s \
    --http --http.port 127.0.0.1:%[2]d --domains %[1]s run

`, ex.Name, ex.Port, s.RootPath, s.DirectoryURL, abs, certbotEAB, legoEAB)
		for _, n := range ex.Notes {
			fmt.Fprintf(&b, "Note: %s.\n", n)
		}
		if len(ex.Notes) > 0 {
			b.WriteString("\n")
		}
	}
	token := "the token in " + filepath.Join(abs, dashboard.TokenFile) + " (printed at the first start)"
	if s.DashboardTokenCreated {
		token = s.DashboardToken + "   (shown this once; also in " + filepath.Join(abs, dashboard.TokenFile) + ")"
	}
	fmt.Fprintf(&b, "Dashboard: %s   sign in with %s\n\n", s.DashboardURL, token)
	return b.String()
}
