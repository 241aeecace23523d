// Package cluster runs the ACME server in a Kubernetes cluster: state in
// custom resources (storage/kube), profiles and CAs read from the API,
// CA keys from Secrets in the operator's namespace.
package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	certv1 "k8s.io/api/certificates/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/kacme/kacme/acmeserver/ca"
	"github.com/kacme/kacme/acmeserver/ca/kubeca"
	"github.com/kacme/kacme/acmeserver/dashboard"
	"github.com/kacme/kacme/acmeserver/metrics"
	"github.com/kacme/kacme/acmeserver/nonce"
	"github.com/kacme/kacme/acmeserver/profile"
	"github.com/kacme/kacme/acmeserver/server"
	"github.com/kacme/kacme/acmeserver/storage"
	"github.com/kacme/kacme/acmeserver/storage/kube"
	"github.com/kacme/kacme/acmeserver/va"
	"github.com/kacme/kacme/acmeserver/wfe"
	"github.com/kacme/kacme/api/v1alpha1"
)

// RBAC of "kacme server" (config/rbac/server): the ACME state kinds
// everywhere (accounts and their objects live in the accounts' namespaces),
// configuration read-only, Secrets read-only and only in its own namespace
// (CA keys, and EAB keys the controller copies there).
// +kubebuilder:rbac:groups=acme.kacme.io,resources=acmeaccounts;acmeorders;acmechallenges;acmecertificates,verbs=get;list;watch;create;update
// +kubebuilder:rbac:groups=acme.kacme.io,resources=acmeprofiles;certificateauthorities,verbs=get;list;watch
// +kubebuilder:rbac:groups="",namespace=kacme-system,resources=secrets,verbs=get;list;watch
// The dashboard signs users in and asks RBAC about them:
// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create

// Options configure the cluster-mode server.
type Options struct {
	Config      *rest.Config
	Namespace   string // its own namespace: CA and EAB Secrets, accounts registered without a pre-registration
	Listen      string
	ExternalURL string
	// TLSSecret, when set, is the kubernetes.io/tls Secret in Namespace the
	// server serves HTTPS with (kept by "kacme controller --serving-secret");
	// otherwise the server issues its own from the default profile's CA.
	TLSSecret string
	// InternalListen, when set, makes this server one of several replicas
	// sharing nonces: the internal endpoint peers redeem this replica's nonces
	// at (plain HTTP, HMAC-authenticated with the key in the Secret
	// InternalSecret in Namespace, default kacme-internal); InternalAdvertise
	// is the address peers dial (default: the listen address, e.g.
	// "$(POD_IP):8444" in a pod).
	InternalListen, InternalAdvertise, InternalSecret string
	// PodName and PodUID, when set (the chart passes them from the
	// downward API), make the replica's Pod the owner of its nonce Lease,
	// so that the Lease goes with the Pod even when the replica cannot
	// delete it (killed, or its RBAC removed first at helm uninstall).
	PodName, PodUID string
	Log             *slog.Logger
	Metrics         *metrics.Metrics
	// ShutdownDelay is how long Close keeps serving after /readyz starts
	// failing, so that endpoints stop routing here before the listener closes.
	ShutdownDelay time.Duration
	// HTTPListen, when set, serves CRLs, CA certificates and OCSP (only those) over
	// plain HTTP (the chart's Service port 80).
	HTTPListen string
	// PKIURL is the base URL issued certificates name for their CRL and
	// issuing CA certificate. Default: http://<host of the external URL>
	// (port 80) with HTTPListen, else the external URL.
	PKIURL string
}

// Server is a running cluster-mode ACME server.
type Server struct {
	*server.Server
	cancel  context.CancelFunc
	mgrDone chan error
	log     *slog.Logger
	reader  client.Reader
	ns      string
	tls     secretCertificate
	peering *peering
	pkiURL  string
	started atomic.Bool // s.RA is set: configuration changes reload it
}

// Start starts the informers, waits for them, and serves HTTPS (and, with
// HTTPListen, CRLs, CA certificates and OCSP over plain HTTP).
func Start(ctx context.Context, o Options) (*Server, error) {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.InternalSecret == "" {
		o.InternalSecret = "kacme-internal" // kacme controller's default
	}
	// The server's lifetime is not ctx's: ctx (cancelled at SIGTERM) only
	// aborts starting. Once started, the informers, the peering and the
	// background work live until Close has drained the listener, so that a
	// terminating pod keeps answering from a live cache during its shutdown
	// delay (objects other replicas create meanwhile are seen).
	parent := ctx
	ctx, cancel := context.WithCancel(context.WithoutCancel(parent))
	abortStart := context.AfterFunc(parent, cancel)
	undo := server.Undo{cancel}
	s, err := start(ctx, o, &undo)
	if err == nil && !abortStart() { // ctx ended while starting
		err = fmt.Errorf("starting: %w", parent.Err())
	}
	if err != nil {
		return nil, undo.Fail(err)
	}
	s.cancel = cancel
	s.Serve()
	return s, nil
}

// start does the part of Start that holds resources (undo releases them).
func start(ctx context.Context, o Options, undo *server.Undo) (*Server, error) {
	mgr, err := newManager(ctx, o)
	if err != nil {
		return nil, err
	}
	s := &Server{mgrDone: make(chan error, 1), log: o.Log, reader: mgr.GetCache(), ns: o.Namespace,
		tls: secretCertificate{r: mgr.GetCache(), key: client.ObjectKey{Namespace: o.Namespace, Name: o.TLSSecret}}}
	ln, plainLn, ext, err := listen(o, undo)
	if err != nil {
		return nil, err
	}
	if s.pkiURL, err = wfe.PKIURL(o.PKIURL, ext, plainLn); err != nil {
		return nil, err
	}
	go func() { s.mgrDone <- mgr.Start(ctx) }()
	if err := s.startInformers(ctx, mgr, o.InternalListen != ""); err != nil {
		return nil, err
	}
	cfg, err := buildConfig(ctx, s.reader, o.Namespace, s.pkiURL)
	if err != nil {
		return nil, err
	}
	store, err := kube.New(mgr.GetClient(), mgr.GetCache()).WithIndexes().WithFetches(mgr.GetAPIReader()).WithSummaries(ctx, mgr.GetCache())
	if err != nil {
		return nil, err
	}
	var nonces nonce.Service
	if o.InternalListen != "" {
		store = store.WithAPIReader(mgr.GetAPIReader()) // replicas: another's fresh objects may not be cached here yet
		if nonces, s.peering, err = startPeering(ctx, mgr.GetClient(), mgr.GetAPIReader(), mgr.GetCache(), o.Namespace,
			o.InternalSecret, o.InternalListen, o.InternalAdvertise, podOwner(o.PodName, o.PodUID), o.Log); err != nil {
			return nil, err
		}
		undo.Add(s.peering.close)
	}
	validator := va.New()
	validator.Services = serviceEndpoints{r: mgr.GetCache()}
	so := server.Options{Store: store, Config: cfg, Validator: validator, Secrets: secretReader{r: mgr.GetCache(), ns: o.Namespace},
		Nonces: nonces, Namespace: o.Namespace, ExternalURL: ext, Listener: ln, PlainListener: plainLn,
		DashboardAuth: &dashboard.KubeAuthorizer{Client: mgr.GetClient()}, ShutdownDelay: o.ShutdownDelay,
		SessionKey: sessionKey(ctx, mgr.GetCache(), o.Namespace, o.InternalSecret, o.Log), Log: o.Log, Metrics: o.Metrics}
	if _, err := mgr.GetRESTMapper().RESTMapping(certv1.SchemeGroupVersion.WithKind("PodCertificateRequest").GroupKind(), "v1"); err == nil {
		so.PodCertificates = podCertificates{r: mgr.GetAPIReader()}
	}
	if o.TLSSecret != "" {
		so.Certificate = func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) { return s.tls.get(hello.Context()) }
	}
	if s.Server, err = server.New(ctx, so); err != nil {
		return nil, err
	}
	s.started.Store(true) // from here on, configuration changes reload (s.RA is set)
	s.reload(ctx)         // and one that came while the RA was being built is not lost
	undo.Add(s.RA.Close)
	if err := watchAdminEdits(ctx, mgr.GetCache(), s.RA, mgr.GetEventRecorder("kacme-server"), o.Log); err != nil {
		return nil, err
	}
	if o.InternalListen != "" {
		go every(ctx, adoptEvery, func() { s.adopt(ctx) })
	}
	s.AfterDrain(s.stop)
	return s, nil
}

// newManager is the controller-runtime manager whose cache the server reads:
// Secrets and Leases only in its own namespace.
func newManager(ctx context.Context, o Options) (ctrl.Manager, error) {
	mgr, err := ctrl.NewManager(o.Config, ctrl.Options{
		Scheme:  storage.KubeScheme(),
		Metrics: metricsserver.Options{BindAddress: "0"},
		// Nothing reads managedFields: the cache does not keep them (they are
		// a large share of every cached object; an Update without them leaves
		// the API server's unchanged). Orders, authorizations and
		// certificates are cached compacted (kube.Compact); the store reads
		// them back whole.
		Cache: cache.Options{DefaultTransform: kube.Compact(v1alpha1.WithLegacyFieldsMoved(cache.TransformStripManagedFields())), ByObject: map[client.Object]cache.ByObject{
			&corev1.Secret{}:        {Namespaces: map[string]cache.Config{o.Namespace: {}}},
			&coordinationv1.Lease{}: {Namespaces: map[string]cache.Config{o.Namespace: {}}},
		}},
	})
	if err != nil {
		return nil, err
	}
	return mgr, kube.RegisterIndexes(ctx, mgr.GetFieldIndexer())
}

// listen opens the HTTPS listener (and the plain-HTTP one with HTTPListen)
// and works out the external URL.
func listen(o Options, undo *server.Undo) (ln, plainLn net.Listener, ext string, err error) {
	if ln, err = net.Listen("tcp", o.Listen); err != nil {
		return nil, nil, "", err
	}
	undo.Add(func() { _ = ln.Close() })
	if ext = o.ExternalURL; ext == "" {
		ext = "https://" + ln.Addr().String()
	}
	if o.HTTPListen != "" {
		if plainLn, err = net.Listen("tcp", o.HTTPListen); err != nil {
			return nil, nil, "", fmt.Errorf("listen %s (--http-listen): %w", o.HTTPListen, err)
		}
		undo.Add(func() { _ = plainLn.Close() })
	}
	return ln, plainLn, ext, nil
}

// startInformers starts the informers the server reads and waits for them:
// a change to a profile, CA or Secret rebuilds the configuration; Services
// and EndpointSlices (http-01 to Services) and peers' nonce Leases are
// started now rather than on first use, which would block on their list.
func (s *Server) startInformers(ctx context.Context, mgr ctrl.Manager, replicas bool) error {
	for _, obj := range []client.Object{&v1alpha1.AcmeProfile{}, &v1alpha1.CertificateAuthority{}, &corev1.Secret{}} {
		inf, err := mgr.GetCache().GetInformer(ctx, obj)
		if err != nil {
			return err
		}
		if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
			AddFunc: func(any) { s.reload(ctx) }, UpdateFunc: func(any, any) { s.reload(ctx) }, DeleteFunc: func(any) { s.reload(ctx) },
		}); err != nil {
			return err
		}
	}
	warm := []client.Object{&corev1.Service{}, &discoveryv1.EndpointSlice{}}
	if replicas {
		warm = append(warm, &coordinationv1.Lease{})
	}
	for _, obj := range warm {
		if _, err := mgr.GetCache().GetInformer(ctx, obj); err != nil {
			return err
		}
	}
	if !mgr.GetCache().WaitForCacheSync(ctx) {
		return errors.New("cache did not sync")
	}
	return nil
}

// adopt finishes the validations of a replica killed mid-validation (its
// challenges stay "processing").
func (s *Server) adopt(ctx context.Context) {
	grace := adoptGrace // and twice the longest validation timeout of a profile
	for _, p := range s.RA.Config().Profiles {
		grace = max(grace, 2*p.Validation.Timeout)
	}
	if _, err := s.RA.AdoptValidations(ctx, grace); err != nil && ctx.Err() == nil {
		s.log.Error("adopt validations", "err", err)
	}
}

// reload rebuilds the configuration after a change to profiles, CAs or Secrets.
func (s *Server) reload(ctx context.Context) {
	if !s.started.Load() {
		return // initial sync: Start builds the first configuration
	}
	cfg, err := buildConfig(ctx, s.reader, s.ns, s.pkiURL)
	if err != nil {
		s.log.Error("reload configuration", "err", err)
		return
	}
	s.RA.SetConfig(cfg)
}

// DrainTimeout bounds how long Close waits for in-flight requests.
const DrainTimeout = server.DrainTimeout

// stop runs after Close has drained requests: peers may redeem this
// replica's nonces for NonceGrace more; then the informers stop.
func (s *Server) stop() error {
	if s.peering != nil {
		// Peers redeem this replica's nonces until the last one it
		// handed out has had NonceGrace to come back through them.
		if wait := time.Until(s.peering.routed.LastIssued().Add(NonceGrace)); wait > 0 {
			time.Sleep(wait)
		}
		s.peering.close()
	}
	s.cancel()
	if err := <-s.mgrDone; err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// buildConfig turns the Ready CAs and the profiles into the RA's configuration;
// a profile whose CA is not usable is left out (its controller reports why).
func buildConfig(ctx context.Context, r client.Reader, ns, pkiURL string) (*profile.Config, error) {
	authorities := map[string]*ca.Authority{}
	var cas v1alpha1.CertificateAuthorityList
	if err := r.List(ctx, &cas); err != nil {
		return nil, err
	}
	for i := range cas.Items {
		c := &cas.Items[i]
		if !kubeca.Ready(c) {
			continue
		}
		auth, err := kubeca.Load(ctx, r, ns, c)
		if err != nil {
			continue
		}
		auth.ConfigureURLs(c.Spec.CRL, c.Spec.OCSP, pkiURL)
		authorities[c.Name] = auth
	}
	var profiles v1alpha1.AcmeProfileList
	if err := r.List(ctx, &profiles); err != nil {
		return nil, err
	}
	sort.Slice(profiles.Items, func(i, j int) bool { return profiles.Items[i].Name < profiles.Items[j].Name })
	cfg, _ := profile.NewConfig(authorities, profiles.Items) // profiles that do not load: their controller reports why
	return cfg, nil
}

// sessionKey is the dashboard's session key, derived from the replicas'
// internal HMAC key (kacme controller creates it), so that a session signed
// in at one replica is good at every one; without it, a key of this process.
func sessionKey(ctx context.Context, r client.Reader, ns, secret string, log *slog.Logger) []byte {
	if secret == "" {
		secret = "kacme-internal"
	}
	var sec corev1.Secret
	if err := r.Get(ctx, client.ObjectKey{Namespace: ns, Name: secret}, &sec); err == nil && len(sec.Data[InternalKeyDataKey]) >= 32 {
		return dashboard.SessionKey(sec.Data[InternalKeyDataKey])
	}
	log.Warn("dashboard sessions are signed with a key of this process: they are good at this replica only, until it restarts",
		"missing", ns+"/"+secret)
	return nil
}

// secretReader reads EAB keys from the copies the controller keeps in the
// server's namespace (api/v1alpha1.EABMirrorSecretName).
type secretReader struct {
	r  client.Reader
	ns string
}

func (s secretReader) EABKey(ctx context.Context, a *v1alpha1.AcmeAccount) ([]byte, error) {
	name := v1alpha1.EABMirrorSecretName(a.Namespace, a.Name)
	var sec corev1.Secret
	if err := s.r.Get(ctx, client.ObjectKey{Namespace: s.ns, Name: name}, &sec); err != nil {
		return nil, fmt.Errorf("EAB key of account %s/%s (secret %s/%s, kept by kacme controller): %w", a.Namespace, a.Name, s.ns, name, err)
	}
	v, ok := sec.Data[v1alpha1.EABMirrorDataKey]
	if !ok {
		return nil, fmt.Errorf("secret %s/%s has no key %q", s.ns, name, v1alpha1.EABMirrorDataKey)
	}
	return v, nil
}

// secretCertificate serves the certificate of a kubernetes.io/tls Secret from
// the informer cache, parsed again only when the Secret changed.
type secretCertificate struct {
	r   client.Reader
	key client.ObjectKey

	mu   sync.Mutex
	rv   string
	cert *tls.Certificate
}

func (c *secretCertificate) get(ctx context.Context) (*tls.Certificate, error) {
	var sec corev1.Secret
	if err := c.r.Get(ctx, c.key, &sec); err != nil {
		return nil, fmt.Errorf("serving certificate Secret %s (kacme controller --serving-secret issues it): %w", c.key, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cert != nil && c.rv == sec.ResourceVersion {
		return c.cert, nil
	}
	cert, err := tls.X509KeyPair(sec.Data[corev1.TLSCertKey], sec.Data[corev1.TLSPrivateKeyKey])
	if err != nil {
		if c.cert != nil {
			return c.cert, nil // keep the last good one
		}
		return nil, fmt.Errorf("serving certificate Secret %s: %w", c.key, err)
	}
	c.cert, c.rv = &cert, sec.ResourceVersion
	return c.cert, nil
}
