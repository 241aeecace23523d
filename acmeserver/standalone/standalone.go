// Package standalone runs kacme on one machine: an embedded store in a data
// directory, CAs generated on first start, configuration from the same YAML
// manifests used in a cluster.
package standalone

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kacme/kacme/acmeserver/ca"
	"github.com/kacme/kacme/acmeserver/dashboard"
	"github.com/kacme/kacme/acmeserver/metrics"
	"github.com/kacme/kacme/acmeserver/profile"
	"github.com/kacme/kacme/acmeserver/server"
	"github.com/kacme/kacme/acmeserver/storage"
	"github.com/kacme/kacme/acmeserver/storage/embedded"
	"github.com/kacme/kacme/acmeserver/wfe"
	"github.com/kacme/kacme/api/v1alpha1"
)

// Namespace of every object in standalone mode.
const Namespace = "default"

// Options configure a standalone server.
type Options struct {
	DataDir     string
	ConfigDir   string
	Listen      string // host:port
	ExternalURL string // default https://<listen>
	Log         *slog.Logger
	// Metrics, when set, records request, validation and issuance metrics.
	Metrics *metrics.Metrics
	// Now replaces the RA's clock (tests of expiry).
	Now func() time.Time
	// ShutdownDelay is how long Close keeps serving after /readyz starts failing.
	ShutdownDelay time.Duration
	// HTTPListen, when set, serves CRLs, CA certificates and OCSP (only those) over
	// plain HTTP on this address, as RFC 5280 relying parties fetch them.
	HTTPListen string
	// PKIURL is the base URL issued certificates name for their CRL and
	// issuing CA certificate. Default: http://<HTTPListen address>, else the
	// external URL.
	PKIURL string
}

// Server is a running standalone kacme.
type Server struct {
	*server.Server
	DirectoryURL string
	// PKIURL is where certificates point for CRLs (<PKIURL>/crl/<ca>) and
	// their issuer's certificate (<PKIURL>/ca/<ca>).
	PKIURL   string
	RootPath string
	Store    storage.Store
	Config   *profile.Config
	// DashboardURL is the web dashboard; DashboardToken signs in to it
	// (created and stored in the data directory on the first start, when
	// DashboardTokenCreated is true: print it then, and only then).
	DashboardURL          string
	DashboardToken        string
	DashboardTokenCreated bool
}

// Start loads configuration, opens the store, loads or generates CAs and
// starts serving HTTPS (and, with HTTPListen, CRLs, CA certificates and OCSP over
// plain HTTP). Stop it with Close: it drains requests, then closes the store.
func Start(ctx context.Context, o Options) (*Server, error) {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.DataDir == "" {
		o.DataDir = "kacme-data"
	}
	dataDir, err := filepath.Abs(o.DataDir)
	if err != nil {
		return nil, err
	}
	if err := ca.MkdirAllSynced(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	m, err := loadManifests(o.ConfigDir)
	if err != nil {
		return nil, err
	}
	var undo server.Undo
	s, err := start(ctx, o, dataDir, m, &undo)
	if err != nil {
		return nil, undo.Fail(err)
	}
	s.Serve()
	return s, nil
}

// start does the part of Start that holds resources (undo releases them).
func start(ctx context.Context, o Options, dataDir string, m *Manifests, undo *server.Undo) (*Server, error) {
	ln, plainLn, ext, err := listen(o, undo)
	if err != nil {
		return nil, err
	}
	pkiURL, err := wfe.PKIURL(o.PKIURL, ext, plainLn)
	if err != nil {
		return nil, err
	}
	cfg, err := buildConfig(dataDir, m, pkiURL, o.Log)
	if err != nil {
		return nil, err
	}
	rootPath := filepath.Join(dataDir, "ca.crt")
	if err := writeRoots(rootPath, cfg); err != nil {
		return nil, err
	}
	token, created, err := dashboard.LoadOrCreateToken(dataDir)
	if err != nil {
		return nil, fmt.Errorf("dashboard token: %w", err)
	}
	store, err := embedded.OpenWith(filepath.Join(dataDir, "kacme.db"), embedded.Options{Log: o.Log})
	if err != nil {
		return nil, err
	}
	undo.Add(func() { _ = store.Close() })
	if err := provisionAccounts(ctx, store, m); err != nil {
		return nil, err
	}
	srv, err := server.New(ctx, server.Options{Store: store, Config: cfg, Secrets: m.Secrets, Namespace: Namespace,
		ExternalURL: ext, Listener: ln, PlainListener: plainLn, DashboardAuth: token,
		SessionKey: dashboard.SessionKey([]byte(token.Token())), Retention: true, ShutdownDelay: o.ShutdownDelay,
		Log: o.Log, Metrics: o.Metrics, Now: o.Now})
	if err != nil {
		return nil, err
	}
	undo.Add(srv.RA.Close)
	if err := srv.CheckCertificate(); err != nil {
		return nil, err
	}
	srv.AfterDrain(store.Close)
	return &Server{Server: srv, DirectoryURL: ext + "/acme/directory", PKIURL: pkiURL, RootPath: rootPath, Store: store,
		Config: cfg, DashboardURL: ext + "/dashboard/", DashboardToken: token.Token(), DashboardTokenCreated: created}, nil
}

// loadManifests reads the configuration directory; without a profile, the
// built-in CA and profile serve.
func loadManifests(dir string) (*Manifests, error) {
	m, err := LoadDir(dir)
	if err != nil || len(m.Profiles) > 0 {
		return m, err
	}
	b, err := builtin()
	if err != nil {
		return nil, err
	}
	if len(m.Authorities) == 0 {
		m.Authorities = b.Authorities
	}
	m.Profiles = b.Profiles
	m.Profiles[0].Spec.CertificateAuthority = m.Authorities[0].Name
	return m, nil
}

// listen opens the HTTPS listener (and the plain-HTTP one with HTTPListen)
// and works out the external URL.
func listen(o Options, undo *server.Undo) (ln, plainLn net.Listener, ext string, err error) {
	ln, err = net.Listen("tcp", o.Listen)
	if err != nil {
		return nil, nil, "", fmt.Errorf("listen %s: %w", o.Listen, err)
	}
	undo.Add(func() { _ = ln.Close() })
	ext = strings.TrimRight(o.ExternalURL, "/")
	if ext == "" {
		ext = "https://" + ln.Addr().String()
	} else if u, err := url.Parse(ext); err != nil || u.Scheme != "https" || u.Host == "" || u.Path != "" || u.RawQuery != "" {
		return nil, nil, "", fmt.Errorf("--external-url %q must be https://host[:port] with no path (RFC 8555 §6.1)", o.ExternalURL)
	}
	if o.HTTPListen != "" {
		if plainLn, err = net.Listen("tcp", o.HTTPListen); err != nil {
			return nil, nil, "", fmt.Errorf("listen %s (--http-listen: plain HTTP for CRLs, CA certificates and OCSP; \"\" turns it off): %w", o.HTTPListen, err)
		}
		undo.Add(func() { _ = plainLn.Close() })
	}
	return ln, plainLn, ext, nil
}

func buildConfig(dataDir string, m *Manifests, pkiURL string, log *slog.Logger) (*profile.Config, error) {
	authorities := map[string]*ca.Authority{}
	if err := loadAuthorities(dataDir, m, pkiURL, authorities, log); err != nil {
		return nil, err
	}
	for i := range m.Profiles {
		if err := checkName("AcmeProfile", m.Profiles[i].Name); err != nil {
			return nil, err
		}
	}
	cfg, errs := profile.NewConfig(authorities, m.Profiles)
	if names := sortedKeys(errs); len(names) > 0 {
		return nil, fmt.Errorf("AcmeProfile %s: %w", names[0], errs[names[0]])
	}
	return cfg, nil
}

// loadAuthorities loads every CertificateAuthority, issuers before the
// intermediates they sign; generated CAs live in <data-dir>/ca/<secretName>.
func loadAuthorities(dataDir string, m *Manifests, pkiURL string, out map[string]*ca.Authority, log *slog.Logger) error {
	pending := map[string]*v1alpha1.CertificateAuthority{}
	for i := range m.Authorities {
		obj := &m.Authorities[i]
		if err := checkName("CertificateAuthority", obj.Name); err != nil {
			return err
		}
		pending[obj.Name] = obj
	}
	for len(pending) > 0 {
		progress := false
		for _, name := range sortedKeys(pending) {
			obj := pending[name]
			auth, err := loadAuthority(dataDir, obj, m.Secrets, out, log)
			if err != nil {
				return fmt.Errorf("CertificateAuthority %s: %w", name, err)
			}
			if auth == nil {
				continue // its issuer is not loaded yet
			}
			auth.ConfigureURLs(obj.Spec.CRL, obj.Spec.OCSP, pkiURL)
			out[name] = auth
			delete(pending, name)
			progress = true
		}
		if !progress {
			var names []string
			for _, name := range sortedKeys(pending) {
				names = append(names, fmt.Sprintf("%s (issuer %q)", name, pending[name].Spec.Intermediate.Issuer))
			}
			return fmt.Errorf("intermediate CAs whose issuer is missing or part of a cycle: %s", strings.Join(names, ", "))
		}
	}
	return nil
}

// loadAuthority loads one CA, or returns nil when its issuer is not loaded yet.
func loadAuthority(dataDir string, obj *v1alpha1.CertificateAuthority, secrets SecretMap, loaded map[string]*ca.Authority, log *slog.Logger) (*ca.Authority, error) {
	s := obj.Spec
	if !s.HasOneSource() {
		return nil, errors.New(v1alpha1.ErrSourceCount)
	}
	if s.SecretRef != nil {
		data, ok := secrets[s.SecretRef.Name]
		if !ok {
			return nil, fmt.Errorf("secretRef: secret %q is not defined in the config directory", s.SecretRef.Name)
		}
		auth, err := ca.FromTLSSecret(obj.Name, data)
		if err != nil {
			return nil, fmt.Errorf("secretRef %s: %w", s.SecretRef.Name, err)
		}
		return auth, nil
	}
	var gen ca.Generator
	if s.SelfSigned != nil {
		gen = func() (crypto.Signer, []*x509.Certificate, error) {
			return ca.GenerateSelfSigned(obj.Name, *s.SelfSigned)
		}
	} else {
		issuer, ok := loaded[s.Intermediate.Issuer]
		if !ok {
			return nil, nil
		}
		gen = func() (crypto.Signer, []*x509.Certificate, error) {
			return ca.GenerateIntermediate(obj.Name, *s.Intermediate, issuer)
		}
	}
	dir := filepath.Join(dataDir, "ca", obj.KeySecretName())
	auth, created, err := ca.LoadOrGenerateDir(obj.Name, dir, gen)
	if err != nil {
		return nil, err
	}
	if created {
		log.Info("generated CA", "ca", obj.Name, "subject", auth.Cert.Subject.String(), "dir", dir)
	}
	return auth, nil
}

// writeRoots writes every CA's root, so clients can trust the server and its certificates.
func writeRoots(path string, cfg *profile.Config) error {
	var out []byte
	seen := map[string]bool{}
	for _, name := range sortedKeys(cfg.Authorities) {
		root := cfg.Authorities[name].Root()
		if seen[string(root.Raw)] {
			continue
		}
		seen[string(root.Raw)] = true
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: root.Raw})...)
	}
	return ca.WriteFileAtomic(path, out, 0o644)
}

// provisionAccounts stores declared pre-provisioned (EAB) accounts that are
// not stored yet; stored ones keep their state (a bound account stays bound).
func provisionAccounts(ctx context.Context, store storage.Store, m *Manifests) error {
	for i := range m.Accounts {
		a := m.Accounts[i].DeepCopy()
		a.Namespace = Namespace
		a.ResourceVersion, a.UID, a.CreationTimestamp = "", "", metav1.Time{}
		// Server-owned: never taken from a manifest.
		a.Status = v1alpha1.AcmeAccountStatus{}
		a.Spec.ClearServerFields()
		if a.Labels == nil {
			a.Labels = map[string]string{}
		}
		a.Labels[v1alpha1.LabelEABKeyID] = v1alpha1.EABKeyLabel(a.Spec.ExternalAccountBinding.KeyID)
		a.Labels[v1alpha1.LabelProfile] = a.Spec.Profile
		if _, ok := m.Secrets[a.Spec.ExternalAccountBinding.SecretName]; !ok {
			return fmt.Errorf("AcmeAccount %s: secret %q is not defined in the config directory", a.Name, a.Spec.ExternalAccountBinding.SecretName)
		}
		err := store.Create(ctx, a)
		if storage.IsAlreadyExists(err) {
			err = refreshDeclaredAccount(ctx, store, a)
		}
		if err != nil {
			return fmt.Errorf("AcmeAccount %s: %w", a.Name, err)
		}
	}
	return nil
}

// refreshDeclaredAccount applies a changed manifest to a stored pre-provisioned
// account: its binding key and allowed identifiers follow the manifest; its
// contacts and its server-owned status (a binding that happened) are kept.
func refreshDeclaredAccount(ctx context.Context, store storage.Store, declared *v1alpha1.AcmeAccount) error {
	var cur v1alpha1.AcmeAccount
	if err := store.Get(ctx, Namespace, declared.Name, &cur); err != nil {
		return err
	}
	if cur.Spec.ExternalAccountBinding == nil || cur.Spec.Profile != declared.Spec.Profile {
		return fmt.Errorf("a stored account of that name was not declared for profile %q", declared.Spec.Profile)
	}
	if reflect.DeepEqual(cur.Spec.AllowedIdentifiers, declared.Spec.AllowedIdentifiers) &&
		reflect.DeepEqual(cur.Spec.ExternalAccountBinding, declared.Spec.ExternalAccountBinding) {
		return nil
	}
	cur.Spec.AllowedIdentifiers = declared.Spec.AllowedIdentifiers
	cur.Spec.ExternalAccountBinding = declared.Spec.ExternalAccountBinding
	if cur.Spec.Key == "" {
		cur.Labels[v1alpha1.LabelEABKeyID] = declared.Labels[v1alpha1.LabelEABKeyID]
	}
	return store.Update(ctx, &cur)
}
