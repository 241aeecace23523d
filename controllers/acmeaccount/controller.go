// Package acmeaccount reconciles AcmeAccount objects.
//
// For an account pre-registered with an External Account Binding key ID, the
// controller mints the HMAC key into the named Secret when it does not exist
// (RFC 8555 §7.3.4: the CA provides the MAC key out of band), labels the
// account so the server finds it by key ID, and keeps a copy of the key in
// the operator's namespace for the ACME server, whose RBAC only reads Secrets
// there; the copy is deleted once the key is used or the account is gone.
//
// For every account it writes the status the server does not: order and
// certificate counts and the Ready condition. Everything else about an
// account is written by the ACME server.
package acmeaccount

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/kacme/kacme/acmeserver/acme"
	"github.com/kacme/kacme/api/v1alpha1"
)

// Event reasons and Ready condition reasons.
const (
	ReasonMinted           = "EABKeyMinted"
	ReasonValid            = "Valid"
	ReasonAwaitingBinding  = "AwaitingBinding"
	ReasonDeactivated      = "Deactivated"
	ReasonEABSecretInvalid = "EABSecretInvalid"
	// ReasonEABNamespaceNotAllowed: the controller runs with Secret rights in
	// a list of namespaces (--eab-namespaces) that does not include this one.
	ReasonEABNamespaceNotAllowed = "EABNamespaceNotAllowed"
	ConditionReady               = "Ready"
)

// UnlabelledRecheck is how often a user-supplied EAB Secret without the
// acme.kacme.io/eab-secret label (which the controller does not watch) is
// read again while its account waits for a binding.
const UnlabelledRecheck = 2 * time.Minute

// Labels on the EAB key copies in the operator's namespace.
const (
	labelMirrorNamespace = "acme.kacme.io/account-namespace"
	labelMirrorAccount   = "acme.kacme.io/account-name"
)

// CountDelay is how long order and certificate changes are gathered before
// an account's counts are rewritten: at most one status write per account
// per CountDelay, however busy the account.
const CountDelay = 10 * time.Second

// Reconciler reconciles AcmeAccounts.
type Reconciler struct {
	Client   client.Client
	Recorder events.EventRecorder
	// Namespace is the operator's namespace, where the EAB key copies live.
	Namespace string
	// APIReader reads, by name and uncached, a user-supplied EAB Secret that
	// is not labelled (the manager's cache holds only labelled ones outside
	// Namespace: setup.SecretCache). Nil: the client's cache only.
	APIReader client.Reader
	// EABNamespaces, when set, are the only namespaces (besides Namespace)
	// where the controller may read and mint EAB Secrets.
	EABNamespaces []string

	countsWritten sync.Map // types.NamespacedName → time.Time of the last status write
}

// metaOf is the metadata-only form of a kind: counting needs labels only,
// so the controller neither receives nor decodes the objects themselves.
func metaOf(kind string) *metav1.PartialObjectMetadata {
	return &metav1.PartialObjectMetadata{TypeMeta: metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: kind}}
}

// accountIndex indexes metadata-only objects by their account label.
const accountIndex = "label:" + v1alpha1.LabelAccount

// +kubebuilder:rbac:groups=acme.kacme.io,resources=acmeaccounts,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=acme.kacme.io,resources=acmeorders;acmecertificates,verbs=get;list;watch
// EAB Secrets in the accounts' namespaces: create to mint; get, list and
// watch for the cache of labelled ones and for reading a supplied one. No
// update or delete: an existing Secret is never changed, and a minted one is
// owned by its account (garbage-collected with it). The chart's namespaced
// mode grants these in listed namespaces only (RoleBindings), not here.
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create
// The key copies the server reads live in the operator's namespace:
// +kubebuilder:rbac:groups="",namespace=kacme-system,resources=secrets,verbs=get;list;watch;create;update;delete

// SetupWithManager registers the controller and the index the counts are
// read through.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	for _, kind := range []string{"AcmeOrder", "AcmeCertificate"} {
		err := mgr.GetFieldIndexer().IndexField(context.Background(), metaOf(kind), accountIndex, func(o client.Object) []string {
			if a := o.GetLabels()[v1alpha1.LabelAccount]; a != "" {
				return []string{a}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	byAccount := delayedByLabel(CountDelay)
	return ctrl.NewControllerManagedBy(mgr).
		Named("acmeaccount").
		For(&v1alpha1.AcmeAccount{}).
		Owns(&corev1.Secret{}).
		Watches(metaOf("AcmeOrder"), byAccount, builder.OnlyMetadata).
		Watches(metaOf("AcmeCertificate"), byAccount, builder.OnlyMetadata).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
			l := o.GetLabels()
			if o.GetNamespace() != r.Namespace || l[labelMirrorAccount] == "" {
				return nil
			}
			return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: l[labelMirrorNamespace], Name: l[labelMirrorAccount]}}}
		})).
		Complete(r)
}

// delayedByLabel enqueues the account named by an object's account label
// after d; the queue merges the requests that arrive meanwhile.
func delayedByLabel(d time.Duration) handler.EventHandler {
	add := func(o client.Object, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
		if a := o.GetLabels()[v1alpha1.LabelAccount]; a != "" {
			q.AddAfter(reconcile.Request{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: a}}, d)
		}
	}
	return handler.Funcs{
		CreateFunc: func(_ context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			add(e.Object, q)
		},
		DeleteFunc: func(_ context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			add(e.Object, q)
		},
	}
}

// Reconcile mints and mirrors the EAB key and writes counts and conditions;
// the account is patched at most once, only when something changed, and only
// in the fields this controller owns (ownedFieldsPatch).
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var a v1alpha1.AcmeAccount
	if err := r.Client.Get(ctx, req.NamespacedName, &a); err != nil {
		if apierrors.IsNotFound(err) {
			r.countsWritten.Delete(req.NamespacedName)
			return ctrl.Result{}, r.deleteMirror(ctx, req.Namespace, req.Name)
		}
		return ctrl.Result{}, err
	}
	want := a.DeepCopy()
	var result ctrl.Result
	// No observedGeneration: without a status subresource every write,
	// status included, bumps the generation.
	ready := metav1.Condition{Type: ConditionReady, Status: metav1.ConditionTrue, Reason: ReasonValid,
		Message: "the account can order certificates"}
	switch {
	case a.Spec.Deactivated || a.Spec.State == acme.StatusDeactivated || a.Spec.State == acme.StatusRevoked:
		ready.Status, ready.Reason, ready.Message = metav1.ConditionFalse, ReasonDeactivated, "the account is deactivated"
		if err := r.deleteMirror(ctx, a.Namespace, a.Name); err != nil {
			return ctrl.Result{}, err
		}
	case a.Spec.Key != "":
		if err := r.deleteMirror(ctx, a.Namespace, a.Name); err != nil { // the binding key is used up
			return ctrl.Result{}, err
		}
	case a.Spec.ExternalAccountBinding != nil:
		recheck, err := r.preRegistration(ctx, &a, want, &ready)
		if err != nil {
			return ctrl.Result{}, err
		}
		if recheck {
			result.RequeueAfter = UnlabelledRecheck
		}
	default:
		ready.Status, ready.Reason, ready.Message = metav1.ConditionFalse, ReasonAwaitingBinding,
			"no ACME key yet and no externalAccountBinding to register with"
	}
	orders, certs, err := r.counts(ctx, &a)
	if err != nil {
		return ctrl.Result{}, err
	}
	want.Status.Orders, want.Status.Certificates = orders, certs
	if cur := meta.FindStatusCondition(a.Status.Conditions, ConditionReady); cur == nil || cur.Reason != ready.Reason {
		if ready.Reason == ReasonEABSecretInvalid || ready.Reason == ReasonEABNamespaceNotAllowed {
			r.Recorder.Eventf(&a, nil, corev1.EventTypeWarning, ready.Reason, "Reconcile", "%s", ready.Message)
		}
	}
	meta.SetStatusCondition(&want.Status.Conditions, ready)
	if equality.Semantic.DeepEqual(want.Labels, a.Labels) && equality.Semantic.DeepEqual(want.Status, a.Status) {
		return result, nil
	}
	if wait := r.countsWait(req.NamespacedName, &a, want); wait > 0 {
		// Only the counts changed, and they were written less than
		// CountDelay ago: write them when that is over. (The account's own
		// update event reconciles at once, so without this every write of
		// counts on a busy account would be followed by another.)
		if result.RequeueAfter == 0 || wait < result.RequeueAfter {
			result.RequeueAfter = wait
		}
		return result, nil
	}
	patch, err := ownedFieldsPatch(&a, want)
	if err != nil {
		return ctrl.Result{}, err
	}
	if err := r.Client.Patch(ctx, &a, client.RawPatch(types.MergePatchType, patch)); err != nil {
		if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
			return ctrl.Result{}, nil // written meanwhile: that change is an event that reconciles again
		}
		return ctrl.Result{}, err
	}
	r.countsWritten.Store(req.NamespacedName, time.Now())
	return result, nil
}

// countsWait is how long to wait before writing want when it differs from
// the account a only in its counts: what is left of CountDelay since this
// process last wrote the account's status (0: write now).
func (r *Reconciler) countsWait(key types.NamespacedName, a, want *v1alpha1.AcmeAccount) time.Duration {
	if !equality.Semantic.DeepEqual(want.Labels, a.Labels) || !equality.Semantic.DeepEqual(want.Status.Conditions, a.Status.Conditions) {
		return 0
	}
	last, ok := r.countsWritten.Load(key)
	if !ok {
		return 0
	}
	return CountDelay - time.Since(last.(time.Time))
}

// ownedFieldsPatch is a JSON merge patch of exactly the fields this
// controller decides on an AcmeAccount — the EAB key ID and profile labels
// of a pre-registration, status.conditions, status.orders and
// status.certificates — with the resourceVersion it decided from as a
// precondition (a write meanwhile makes it a conflict, and the event of that
// write reconciles again). Everything else belongs to the ACME server (its
// status: key, binding, status; its spec: contact, deactivation) or to whoever
// declared the account (spec), and is never sent.
func ownedFieldsPatch(cur, want *v1alpha1.AcmeAccount) ([]byte, error) {
	md := map[string]any{"resourceVersion": cur.ResourceVersion}
	labels := map[string]string{}
	for _, k := range []string{v1alpha1.LabelEABKeyID, v1alpha1.LabelProfile} {
		if v, ok := want.Labels[k]; ok && cur.Labels[k] != v {
			labels[k] = v
		}
	}
	if len(labels) > 0 {
		md["labels"] = labels
	}
	return json.Marshal(map[string]any{
		"metadata": md,
		"status": map[string]any{"conditions": want.Status.Conditions, "orders": want.Status.Orders,
			"certificates": want.Status.Certificates},
	})
}

// preRegistration handles an account pre-registered with an EAB key ID
// that no client has bound yet: its lookup labels (on want), its EAB Secret
// and the server's copy of the key, and its Ready condition (awaiting the
// binding, or why it cannot happen). recheck asks for another look later.
func (r *Reconciler) preRegistration(ctx context.Context, a, want *v1alpha1.AcmeAccount, ready *metav1.Condition) (recheck bool, err error) {
	ref := a.Spec.ExternalAccountBinding
	if want.Labels == nil {
		want.Labels = map[string]string{}
	}
	want.Labels[v1alpha1.LabelEABKeyID] = v1alpha1.EABKeyLabel(ref.KeyID)
	want.Labels[v1alpha1.LabelProfile] = a.Spec.Profile
	ready.Status, ready.Reason = metav1.ConditionFalse, ReasonAwaitingBinding
	ready.Message = fmt.Sprintf("waiting for an ACME client to register with EAB key ID %q (HMAC key in secret %s, key %q)",
		ref.KeyID, ref.SecretName, ref.DataKey())
	if !r.eabAllowed(a.Namespace) {
		ready.Reason = ReasonEABNamespaceNotAllowed
		ready.Message = fmt.Sprintf("kacme controller may not read or create Secrets in namespace %s: it manages EAB Secrets only in %s "+
			"(Helm value controller.eabNamespaces; flag --eab-namespaces)", a.Namespace, strings.Join(r.EABNamespaces, ", "))
		if err := r.deleteMirror(ctx, a.Namespace, a.Name); err != nil {
			return false, err
		}
		return false, nil
	}
	msg, recheck, err := r.ensureKey(ctx, a)
	if err != nil {
		return false, err
	}
	if msg != "" {
		ready.Reason, ready.Message = ReasonEABSecretInvalid, msg
	}
	return recheck, nil
}

// eabAllowed reports whether the controller manages EAB Secrets in ns.
func (r *Reconciler) eabAllowed(ns string) bool {
	return len(r.EABNamespaces) == 0 || ns == r.Namespace || slices.Contains(r.EABNamespaces, ns)
}

// counts are the account's orders and certificates, from the cache's index.
func (r *Reconciler) counts(ctx context.Context, a *v1alpha1.AcmeAccount) (int, int, error) {
	var n [2]int
	for i, kind := range []string{"AcmeOrderList", "AcmeCertificateList"} {
		list := &metav1.PartialObjectMetadataList{TypeMeta: metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: kind}}
		if err := r.Client.List(ctx, list, client.InNamespace(a.Namespace), client.MatchingFields{accountIndex: a.Name}); err != nil {
			return 0, 0, err
		}
		n[i] = len(list.Items)
	}
	return n[0], n[1], nil
}

// ensureKey mints the EAB Secret when it is missing (an existing Secret is
// never changed) and keeps the server's copy of the key current. A non-empty
// message says why the key is unusable; recheck asks for another look later
// (a supplied Secret without the label is not watched).
func (r *Reconciler) ensureKey(ctx context.Context, a *v1alpha1.AcmeAccount) (msg string, recheck bool, err error) {
	ref := a.Spec.ExternalAccountBinding
	sec, unwatched, err := r.eabSecret(ctx, a)
	if err != nil {
		return "", false, err
	}
	if sec == nil {
		minted, err := r.mint(ctx, a)
		if err != nil {
			return "", false, err
		}
		sec = &minted
	}
	key, ok := sec.Data[ref.DataKey()]
	if !ok {
		return fmt.Sprintf("secret %s has no key %q", ref.SecretName, ref.DataKey()), unwatched, r.deleteMirror(ctx, a.Namespace, a.Name)
	}
	if mac, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(strings.TrimSpace(string(key)), "=")); err != nil || len(mac) < 32 {
		return fmt.Sprintf("secret %s key %q must be a base64url HMAC key of at least 256 bits", ref.SecretName, ref.DataKey()),
			unwatched, r.deleteMirror(ctx, a.Namespace, a.Name)
	}
	return "", unwatched, r.mirror(ctx, a, key)
}

// eabSecret reads the account's EAB Secret: from the cache (the ones kacme
// minted or that carry the label), else, once, by name from the API — a
// Secret a team supplied without the label, which then stays out of the
// cache (unwatched). Nil when it does not exist.
func (r *Reconciler) eabSecret(ctx context.Context, a *v1alpha1.AcmeAccount) (sec *corev1.Secret, unwatched bool, err error) {
	key := client.ObjectKey{Namespace: a.Namespace, Name: a.Spec.ExternalAccountBinding.SecretName}
	var s corev1.Secret
	err = r.Client.Get(ctx, key, &s)
	if err == nil {
		return &s, false, nil
	}
	if !apierrors.IsNotFound(err) || r.APIReader == nil {
		return nil, false, client.IgnoreNotFound(err)
	}
	if err := r.APIReader.Get(ctx, key, &s); err != nil {
		return nil, false, client.IgnoreNotFound(err)
	}
	return &s, true, nil
}

func (r *Reconciler) mint(ctx context.Context, a *v1alpha1.AcmeAccount) (corev1.Secret, error) {
	ref := a.Spec.ExternalAccountBinding
	mac := make([]byte, 32) // 256 bits: the minimum for HS256 (RFC 7518 §3.2)
	if _, err := rand.Read(mac); err != nil {
		return corev1.Secret{}, err
	}
	sec := corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: a.Namespace, Name: ref.SecretName,
			Labels: map[string]string{"app.kubernetes.io/managed-by": "kacme", v1alpha1.LabelAccount: a.Name, v1alpha1.LabelEABSecret: "minted"}},
		Type: corev1.SecretTypeOpaque,
		Data: map[string][]byte{ref.DataKey(): []byte(base64.RawURLEncoding.EncodeToString(mac)), "keyID": []byte(ref.KeyID)},
	}
	if err := controllerutil.SetControllerReference(a, &sec, r.Client.Scheme()); err != nil {
		return sec, err
	}
	if err := r.Client.Create(ctx, &sec); err != nil {
		return sec, fmt.Errorf("create EAB secret: %w", err)
	}
	r.Recorder.Eventf(a, nil, corev1.EventTypeNormal, ReasonMinted, "Reconcile",
		"minted the HMAC key for EAB key ID %q into secret %s", ref.KeyID, ref.SecretName)
	return sec, nil
}

// mirror writes the key into the server's namespace.
func (r *Reconciler) mirror(ctx context.Context, a *v1alpha1.AcmeAccount, key []byte) error {
	name := v1alpha1.EABMirrorSecretName(a.Namespace, a.Name)
	var cur corev1.Secret
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: r.Namespace, Name: name}, &cur)
	if err == nil {
		if bytes.Equal(cur.Data[v1alpha1.EABMirrorDataKey], key) {
			return nil
		}
		cur.Data = map[string][]byte{v1alpha1.EABMirrorDataKey: key}
		return r.Client.Update(ctx, &cur)
	}
	if !apierrors.IsNotFound(err) {
		return err
	}
	return r.Client.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: r.Namespace, Name: name, Labels: map[string]string{
			"app.kubernetes.io/managed-by": "kacme", labelMirrorNamespace: a.Namespace, labelMirrorAccount: a.Name}},
		Type: corev1.SecretTypeOpaque,
		Data: map[string][]byte{v1alpha1.EABMirrorDataKey: key},
	})
}

// deleteMirror removes the server's copy of an account's key, if the cache
// has one (no API call otherwise).
func (r *Reconciler) deleteMirror(ctx context.Context, ns, name string) error {
	var sec corev1.Secret
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: r.Namespace, Name: v1alpha1.EABMirrorSecretName(ns, name)}, &sec)
	if err != nil {
		return client.IgnoreNotFound(err)
	}
	return client.IgnoreNotFound(r.Client.Delete(ctx, &sec))
}
