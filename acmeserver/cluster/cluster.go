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
	"net/http"
	"sort"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/kacme/kacme/acmeserver/audit"
	"github.com/kacme/kacme/acmeserver/ca"
	"github.com/kacme/kacme/acmeserver/dashboard"
	"github.com/kacme/kacme/acmeserver/metrics"
	"github.com/kacme/kacme/acmeserver/nonce"
	"github.com/kacme/kacme/acmeserver/ra"
	"github.com/kacme/kacme/acmeserver/storage"
	"github.com/kacme/kacme/acmeserver/storage/kube"
	"github.com/kacme/kacme/acmeserver/va"
	"github.com/kacme/kacme/acmeserver/wfe"
	"github.com/kacme/kacme/api/v1alpha1"
	"github.com/kacme/kacme/controllers/certificateauthority"
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
	// InternalSecret in Namespace); InternalAdvertise is the address peers dial
	// (default: the listen address, e.g. "$(POD_IP):8444" in a pod).
	InternalListen, InternalAdvertise, InternalSecret string
	Log                                               *slog.Logger
	Metrics                                           *metrics.Metrics
	// ShutdownDelay is how long Close keeps serving after /readyz starts
	// failing, so that endpoints stop routing here before the listener closes.
	ShutdownDelay time.Duration
}

// Server is a running cluster-mode ACME server.
type Server struct {
	RA       *ra.RA
	URL      string
	http     *http.Server
	cancel   context.CancelFunc
	done     chan error
	mgrDone  chan error
	log      *slog.Logger
	reader   client.Reader
	ns       string
	serving  *ca.Serving
	external string
	tls      secretCertificate
	peering  *peering
	front    *wfe.WFE
	delay    time.Duration
	closed   chan struct{} // closed once Close has drained and stopped everything
	closeErr error
	once     sync.Once
}

// Start starts the informers, waits for them, and serves HTTPS.
func Start(ctx context.Context, o Options) (*Server, error) {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	ctx, cancel := context.WithCancel(ctx)
	mgr, err := ctrl.NewManager(o.Config, ctrl.Options{
		Scheme:  storage.KubeScheme(),
		Metrics: metricsserver.Options{BindAddress: "0"},
		Cache: cache.Options{ByObject: map[client.Object]cache.ByObject{
			&corev1.Secret{}:        {Namespaces: map[string]cache.Config{o.Namespace: {}}},
			&coordinationv1.Lease{}: {Namespaces: map[string]cache.Config{o.Namespace: {}}},
		}},
	})
	if err != nil {
		cancel()
		return nil, err
	}
	if err := kube.RegisterIndexes(ctx, mgr.GetFieldIndexer()); err != nil {
		cancel()
		return nil, err
	}
	s := &Server{cancel: cancel, done: make(chan error, 1), mgrDone: make(chan error, 1), log: o.Log, delay: o.ShutdownDelay, closed: make(chan struct{}),
		reader: mgr.GetCache(), ns: o.Namespace, external: o.ExternalURL,
		tls: secretCertificate{r: mgr.GetCache(), key: client.ObjectKey{Namespace: o.Namespace, Name: o.TLSSecret}}}
	go func() { s.mgrDone <- mgr.Start(ctx) }()
	// Informers for what the configuration is built from; any change rebuilds it.
	for _, obj := range []client.Object{&v1alpha1.AcmeProfile{}, &v1alpha1.CertificateAuthority{}, &corev1.Secret{}} {
		inf, err := mgr.GetCache().GetInformer(ctx, obj)
		if err != nil {
			cancel()
			return nil, err
		}
		if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
			AddFunc: func(any) { s.reload(ctx) }, UpdateFunc: func(any, any) { s.reload(ctx) }, DeleteFunc: func(any) { s.reload(ctx) },
		}); err != nil {
			cancel()
			return nil, err
		}
	}
	// http-01 to Services reads these; start them now rather than on the
	// first validation (which would block on their initial list).
	warm := []client.Object{&corev1.Service{}, &discoveryv1.EndpointSlice{}}
	if o.InternalListen != "" {
		warm = append(warm, &coordinationv1.Lease{}) // peers' nonce Leases
	}
	for _, obj := range warm {
		if _, err := mgr.GetCache().GetInformer(ctx, obj); err != nil {
			cancel()
			return nil, err
		}
	}
	if !mgr.GetCache().WaitForCacheSync(ctx) {
		cancel()
		return nil, errors.New("cache did not sync")
	}
	cfg, err := buildConfig(ctx, s.reader, o.Namespace)
	if err != nil {
		cancel()
		return nil, err
	}
	store := kube.New(mgr.GetClient(), mgr.GetCache()).WithIndexes()
	if o.InternalListen != "" {
		store = store.WithAPIReader(mgr.GetAPIReader()) // replicas: another's fresh objects may not be cached here yet
	}
	validator := va.New()
	validator.Services = serviceEndpoints{r: mgr.GetCache()}
	aud := audit.New(o.Log)
	s.RA = ra.New(cfg, ra.Options{Store: store, Validator: validator, Secrets: secretReader{r: mgr.GetCache(), ns: o.Namespace}, Audit: aud,
		Log: o.Log, Namespace: o.Namespace, Metrics: o.Metrics})
	if err := watchAdminEdits(ctx, mgr.GetCache(), s.RA, mgr.GetEventRecorder("kacme-server"), o.Log); err != nil {
		cancel()
		return nil, err
	}
	if _, err := s.RA.ResumeValidations(ctx); err != nil {
		o.Log.Error("resume validations", "err", err)
	}
	if o.InternalListen != "" {
		// A replica killed mid-validation leaves its challenges "processing":
		// the others finish them.
		go every(ctx, adoptEvery, func() {
			grace := adoptGrace // and twice the longest validation timeout of a profile
			for _, p := range s.RA.Config().Profiles {
				grace = max(grace, 2*p.Validation.Timeout)
			}
			if _, err := s.RA.AdoptValidations(ctx, grace); err != nil && ctx.Err() == nil {
				o.Log.Error("adopt validations", "err", err)
			}
		})
	}
	var nonces nonce.Service
	if o.InternalListen == "" {
		nonces, err = nonce.NewInMemory("", time.Hour)
	} else {
		nonces, s.peering, err = startPeering(ctx, mgr.GetClient(), mgr.GetAPIReader(), mgr.GetCache(), o.Namespace,
			o.InternalSecret, o.InternalListen, o.InternalAdvertise, o.Log)
	}
	if err != nil {
		cancel()
		return nil, err
	}
	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		cancel()
		return nil, err
	}
	if s.external == "" {
		s.external = "https://" + ln.Addr().String()
	}
	s.URL = s.external
	s.serving = &ca.Serving{External: s.external}
	front := wfe.New(s.RA, nonces, s.external, o.Log)
	front.Metrics = o.Metrics
	s.front = front
	dash, err := dashboard.New(dashboard.Options{Store: store, RA: s.RA, Auth: &dashboard.KubeAuthorizer{Client: mgr.GetClient()}, Audit: aud, Log: o.Log})
	if err != nil {
		cancel()
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/dashboard/", dash)
	mux.Handle("/", front)
	s.http = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 60 * time.Second, IdleTimeout: 120 * time.Second, MaxHeaderBytes: 64 << 10,
		TLSConfig: &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: s.getCertificate}}
	go func() { s.done <- s.http.ServeTLS(ln, "", "") }()
	return s, nil
}

func (s *Server) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if s.tls.key.Name != "" {
		return s.tls.get(hello.Context())
	}
	cfg := s.RA.Config()
	var auth *ca.Authority
	if p, ok := cfg.Profiles[cfg.DefaultProfile]; ok {
		auth = p.CA
	}
	return s.serving.Get(auth)
}

// reload rebuilds the configuration after a change to profiles, CAs or Secrets.
func (s *Server) reload(ctx context.Context) {
	if s.RA == nil {
		return // initial sync: Start builds the first configuration
	}
	cfg, err := buildConfig(ctx, s.reader, s.ns)
	if err != nil {
		s.log.Error("reload configuration", "err", err)
		return
	}
	s.RA.SetConfig(cfg)
}

// Wait blocks until the server stops: after Close, once it has drained.
func (s *Server) Wait() error {
	err := <-s.done
	if errors.Is(err, http.ErrServerClosed) {
		<-s.closed
		return s.closeErr
	}
	return err
}

// DrainTimeout bounds how long Close waits for in-flight requests.
const DrainTimeout = 20 * time.Second

// Close shuts down gracefully: /readyz fails, requests keep being served
// for ShutdownDelay, then the listener closes and in-flight requests finish
// (up to DrainTimeout) before the background work and the informers stop.
func (s *Server) Close() error {
	s.once.Do(func() {
		defer close(s.closed)
		s.front.Drain()
		time.Sleep(s.delay)
		ctx, cancel := context.WithTimeout(context.Background(), DrainTimeout)
		defer cancel()
		err := s.http.Shutdown(ctx)
		if s.peering != nil {
			s.peering.close()
		}
		s.RA.Close()
		s.cancel()
		if mgrErr := <-s.mgrDone; err == nil && mgrErr != nil && !errors.Is(mgrErr, context.Canceled) {
			err = mgrErr
		}
		s.closeErr = err
	})
	return s.closeErr
}

// buildConfig turns the Ready CAs and the profiles into the RA's configuration;
// a profile whose CA is not usable is left out (its controller reports why).
func buildConfig(ctx context.Context, r client.Reader, ns string) (*ra.Config, error) {
	authorities := map[string]*ca.Authority{}
	var cas v1alpha1.CertificateAuthorityList
	if err := r.List(ctx, &cas); err != nil {
		return nil, err
	}
	for i := range cas.Items {
		c := &cas.Items[i]
		if !meta.IsStatusConditionTrue(c.Status.Conditions, certificateauthority.ConditionReady) {
			continue
		}
		auth, err := certificateauthority.Load(ctx, r, ns, c)
		if err != nil {
			continue
		}
		authorities[c.Name] = auth
	}
	var profiles v1alpha1.AcmeProfileList
	if err := r.List(ctx, &profiles); err != nil {
		return nil, err
	}
	sort.Slice(profiles.Items, func(i, j int) bool { return profiles.Items[i].Name < profiles.Items[j].Name })
	cfg, _ := ra.NewConfig(authorities, profiles.Items) // profiles that do not load: their controller reports why
	return cfg, nil
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
