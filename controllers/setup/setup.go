// Package setup builds the manager "kacme controller" runs: its cache (what
// the controller may hold in memory) and every reconciler. The binary and
// the tests build it here, so that a test sees the very cache the process
// has.
package setup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/kacme/kacme/acmeserver/audit"
	"github.com/kacme/kacme/acmeserver/storage"
	"github.com/kacme/kacme/api/v1alpha1"
	"github.com/kacme/kacme/controllers/acmeaccount"
	"github.com/kacme/kacme/controllers/acmeprofile"
	"github.com/kacme/kacme/controllers/cabundle"
	"github.com/kacme/kacme/controllers/certificateauthority"
	"github.com/kacme/kacme/controllers/retention"
	"github.com/kacme/kacme/controllers/serving"
	"github.com/kacme/kacme/controllers/signer"
	"github.com/kacme/kacme/controllers/trustbundle"
)

// Options of the controller manager (the flags of kacme controller).
type Options struct {
	// Namespace is the operator's namespace: CA, mirror and serving Secrets.
	Namespace   string
	ExternalURL string
	LeaderElect bool
	// MetricsAddr and ProbeAddr serve metrics and /healthz, /readyz ("0"/"": off).
	MetricsAddr, ProbeAddr string
	// ServingSecret, ServingCA and ServingDNSNames: the ACME server's HTTPS certificate (optional).
	ServingSecret, ServingCA string
	ServingDNSNames          []string
	InternalSecret           string
	// EABNamespaces are the namespaces besides Namespace where the
	// controller may mint and read EAB Secrets (the chart's namespaced
	// mode); empty: every namespace.
	EABNamespaces []string
	Log           logr.Logger
	// SkipNameValidation lets tests start several managers in one process.
	SkipNameValidation bool
}

// SecretCache is what the manager caches of Secrets: everything in the
// operator's namespace (CA keys, EAB mirrors, serving and internal keys),
// and elsewhere only the EAB Secrets kacme minted or was pointed at (label
// acme.kacme.io/eab-secret) — in every other namespace, or only in
// eabNamespaces. A Secret of a team that is not labelled never enters the
// cache (the controller reads a user-supplied EAB Secret by name, once).
func SecretCache(namespace string, eabNamespaces []string) cache.ByObject {
	req, _ := labels.NewRequirement(v1alpha1.LabelEABSecret, selection.Exists, nil)
	eab := cache.Config{LabelSelector: labels.NewSelector().Add(*req)}
	ns := map[string]cache.Config{namespace: {}}
	if len(eabNamespaces) == 0 {
		ns[cache.AllNamespaces] = eab
	}
	for _, n := range eabNamespaces {
		if n != namespace {
			ns[n] = eab
		}
	}
	return cache.ByObject{Namespaces: ns}
}

// NewManager builds the manager with every reconciler registered.
func NewManager(cfg *rest.Config, o Options) (ctrl.Manager, error) {
	scheme := storage.KubeScheme()
	if err := cmapi.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if o.MetricsAddr == "" {
		o.MetricsAddr = "0"
	}
	skip := o.SkipNameValidation
	defaultTransform := v1alpha1.WithLegacyFieldsMoved(cache.TransformStripManagedFields())
	byObject := acmeaccount.CacheOptions(defaultTransform)
	byObject[&corev1.ConfigMap{}] = trustbundle.CacheOptions()
	byObject[&corev1.Secret{}] = SecretCache(o.Namespace, o.EABNamespaces)
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  scheme,
		Metrics:                 metricsserver.Options{BindAddress: o.MetricsAddr},
		HealthProbeBindAddress:  o.ProbeAddr,
		LeaderElection:          o.LeaderElect,
		LeaderElectionID:        "kacme-controller.acme.kacme.io",
		LeaderElectionNamespace: o.Namespace,
		Controller:              config.Controller{SkipNameValidation: &skip},
		// Nothing reads managedFields: the cache does not keep them (they are
		// a large share of every cached object; an Update without them leaves
		// the API server's unchanged).
		Cache: cache.Options{DefaultTransform: defaultTransform, ByObject: byObject},
	})
	if err != nil {
		return nil, err
	}
	if o.ProbeAddr != "" {
		// Live while the process serves; ready once the informers have synced.
		if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
			return nil, err
		}
		if err := mgr.AddReadyzCheck("informers", func(req *http.Request) error {
			if !mgr.GetCache().WaitForCacheSync(req.Context()) {
				return errors.New("informer caches have not synced")
			}
			return nil
		}); err != nil {
			return nil, err
		}
	}
	if err := register(mgr, o); err != nil {
		return nil, err
	}
	return mgr, nil
}

// APIReadTimeout bounds each read the controllers make straight from the
// API server (not from the cache): a slow or stuck API server must not hold
// a reconcile, and a pod certificate request behind it, forever.
const APIReadTimeout = 10 * time.Second

// deadlineReader is a client.Reader whose every call has APIReadTimeout.
type deadlineReader struct{ client.Reader }

func (r deadlineReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	ctx, cancel := context.WithTimeout(ctx, APIReadTimeout)
	defer cancel()
	return r.Reader.Get(ctx, key, obj, opts...)
}

func (r deadlineReader) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	ctx, cancel := context.WithTimeout(ctx, APIReadTimeout)
	defer cancel()
	return r.Reader.List(ctx, list, opts...)
}

func register(mgr ctrl.Manager, o Options) error {
	rec := mgr.GetEventRecorder("kacme-controller")
	c := mgr.GetClient()
	apiReader := deadlineReader{mgr.GetAPIReader()}
	if err := (&certificateauthority.Reconciler{Client: c, Namespace: o.Namespace, Recorder: rec}).SetupWithManager(mgr); err != nil {
		return err
	}
	if err := (&acmeprofile.Reconciler{Client: c, Namespace: o.Namespace, Recorder: rec, ExternalURL: o.ExternalURL}).SetupWithManager(mgr); err != nil {
		return err
	}
	if err := (&acmeaccount.Reconciler{Client: c, APIReader: apiReader, Recorder: rec, Namespace: o.Namespace,
		EABNamespaces: o.EABNamespaces}).SetupWithManager(mgr); err != nil {
		return err
	}
	if err := (&trustbundle.Reconciler{Client: c, Recorder: rec}).SetupWithManager(mgr); err != nil {
		return err
	}
	if o.ServingSecret != "" {
		if err := (&serving.Reconciler{Client: c, Recorder: rec, Namespace: o.Namespace, SecretName: o.ServingSecret,
			CAName: o.ServingCA, ExternalURL: o.ExternalURL, DNSNames: o.ServingDNSNames}).SetupWithManager(mgr); err != nil {
			return err
		}
	}
	aud := audit.New(slog.New(logr.ToSlogHandler(o.Log)))
	if err := signer.Setup(mgr, &signer.Signer{Client: c, APIReader: apiReader, Namespace: o.Namespace, Recorder: rec,
		Audit: aud}, o.Log.WithName("signer")); err != nil {
		return err
	}
	if err := cabundle.SetupWhenInstalled(mgr, cabundle.Reconciler{Client: c, Recorder: rec, ServingCA: o.ServingCA},
		time.Minute, o.Log.WithName("cabundle")); err != nil {
		return err
	}
	internal := o.InternalSecret
	if internal == "" {
		internal = "kacme-internal"
	}
	if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		return serving.EnsureInternalKey(ctx, c, o.Namespace, internal)
	})); err != nil {
		return err
	}
	// Retention reads through the kube store, which bounds each of its API
	// requests itself (kube.RequestTimeout).
	return mgr.Add(&retention.Sweeper{Client: c, APIReader: mgr.GetAPIReader(), Log: o.Log.WithName("retention")})
}

// CheckEABNamespaces refuses empty or repeated names in --eab-namespaces.
func CheckEABNamespaces(list []string) error {
	for i, n := range list {
		if n == "" || slices.Contains(list[:i], n) {
			return fmt.Errorf("--eab-namespaces: %q is empty or repeated", n)
		}
	}
	return nil
}
