package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kacme/kacme/acmeserver/nonce"
)

// Replicas share nonces this way (docs/architecture.md "Replicas"): each
// replica issues nonces under its own random prefix and announces, in a
// Lease named after the prefix, the address of its internal endpoint; a
// replica handed another's nonce redeems it there (nonce.Routed). Only
// addresses announced in Leases, which only the server may write, are ever
// dialled, and peers authenticate with an HMAC key from a Secret.

// +kubebuilder:rbac:groups=coordination.k8s.io,namespace=kacme-system,resources=leases,verbs=get;list;watch;create;update;delete

const (
	// adoptEvery/adoptGrace: how often a replica looks for validations a dead
	// replica left "processing", and how long one must stay so (well above a
	// validation's duration).
	adoptEvery    = 5 * time.Second
	adoptGrace    = 20 * time.Second
	leaseDuration = 30 * time.Second
	leaseRenew    = 10 * time.Second
	// NonceGrace is how long a terminating replica keeps redeeming its
	// nonces for its peers after the last one it handed out: a client whose
	// connection to it closed spends that nonce at another replica, which
	// redeems it here (without this, the client's next request would be a
	// badNonce). It counts from the last nonce, so an idle replica stops at once.
	NonceGrace = 5 * time.Second
	// InternalKeyDataKey is the key of the peers' HMAC key in the internal Secret.
	InternalKeyDataKey = "key"
)

// LeaseName is the Lease a replica with nonce prefix announces itself in.
func LeaseName(prefix string) string { return "kacme-nonce-" + hex.EncodeToString([]byte(prefix)) }

// alnumPrefix draws a nonce prefix from letters and digits.
func alnumPrefix() string {
	const chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 4)
	for i := range b {
		n, _ := rand.Int(rand.Reader, big.NewInt(int64(len(chars))))
		b[i] = chars[n.Int64()]
	}
	return string(b)
}

// leasePeers finds a peer's internal address in its Lease (informer cache).
type leasePeers struct {
	r  client.Reader
	ns string
}

func (p leasePeers) Address(ctx context.Context, prefix string) (string, bool) {
	var l coordinationv1.Lease
	if err := p.r.Get(ctx, client.ObjectKey{Namespace: p.ns, Name: LeaseName(prefix)}, &l); err != nil {
		return "", false
	}
	if l.Spec.HolderIdentity == nil || l.Spec.RenewTime == nil || l.Spec.LeaseDurationSeconds == nil ||
		time.Since(l.Spec.RenewTime.Time) > time.Duration(*l.Spec.LeaseDurationSeconds)*time.Second {
		return "", false // gone: its nonces are bad (the client retries with a fresh one)
	}
	return *l.Spec.HolderIdentity, true
}

// peering is this replica's part: the internal endpoint and its Lease.
type peering struct {
	c      client.Client
	api    client.Reader // uncached, after a lost write
	lease  *coordinationv1.Lease
	ns     string
	prefix string
	addr   string
	srv    *http.Server
	routed *nonce.Routed
	owner  []metav1.OwnerReference
}

// podOwner is the owner reference to the replica's Pod (none outside a pod).
func podOwner(name, uid string) []metav1.OwnerReference {
	if name == "" || uid == "" {
		return nil
	}
	return []metav1.OwnerReference{{APIVersion: "v1", Kind: "Pod", Name: name, UID: types.UID(uid)}}
}

// startPeering reads the HMAC key, serves the internal endpoint on listen,
// announces advertise (default: the listen address) and returns the nonce
// service for the ACME front end.
func startPeering(ctx context.Context, c client.Client, api, r client.Reader, ns, secret, listen, advertise string, owner []metav1.OwnerReference, log *slog.Logger) (*nonce.Routed, *peering, error) {
	var sec corev1.Secret
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := r.Get(ctx, client.ObjectKey{Namespace: ns, Name: secret}, &sec)
		if err == nil && len(sec.Data[InternalKeyDataKey]) >= 32 {
			break
		}
		if time.Now().After(deadline) {
			return nil, nil, fmt.Errorf("internal Secret %s/%s with a key of at least 32 bytes (kacme controller creates it): %v", ns, secret, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	prefix := alnumPrefix()
	local, err := nonce.NewInMemory(prefix, time.Hour)
	if err != nil {
		return nil, nil, err
	}
	routed := &nonce.Routed{Local: local, Peers: leasePeers{r: r, ns: ns}, Key: sec.Data[InternalKeyDataKey]}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, nil, err
	}
	if advertise == "" {
		advertise = ln.Addr().String()
	}
	p := &peering{c: c, api: api, ns: ns, prefix: prefix, addr: advertise, routed: routed, owner: owner,
		srv: &http.Server{Handler: routed.Handler(), ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second}}
	go func() { _ = p.srv.Serve(ln) }()
	if err := p.announce(ctx); err != nil {
		_ = p.srv.Close()
		return nil, nil, fmt.Errorf("announce nonce prefix in Lease %s/%s: %w", ns, LeaseName(prefix), err)
	}
	go every(ctx, leaseRenew, func() {
		if err := p.announce(ctx); err != nil && ctx.Err() == nil {
			log.Error("renew nonce Lease", "lease", LeaseName(prefix), "err", err)
		}
	})
	log.Info("sharing nonces with peer replicas", "prefix", prefix, "internal", advertise)
	return routed, p, nil
}

// announce creates the Lease, then renews the copy it last wrote (one write
// per renewal; after a failed write it starts over from the API server).
func (p *peering) announce(ctx context.Context) error {
	now := metav1.NewMicroTime(time.Now())
	if p.lease != nil {
		p.lease.Spec.RenewTime = &now
		if err := p.c.Update(ctx, p.lease); err != nil {
			p.lease = nil
			return err
		}
		return nil
	}
	l := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: p.ns, Name: LeaseName(p.prefix), OwnerReferences: p.owner,
		Labels: map[string]string{"app.kubernetes.io/managed-by": "kacme", "app.kubernetes.io/component": "nonce-peer"}},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To(p.addr), LeaseDurationSeconds: ptr.To(int32(leaseDuration / time.Second)),
			AcquireTime: &now, RenewTime: &now}}
	err := p.c.Create(ctx, l)
	if apierrors.IsAlreadyExists(err) {
		var cur coordinationv1.Lease
		if err := p.api.Get(ctx, client.ObjectKeyFromObject(l), &cur); err != nil {
			return err
		}
		cur.Spec, cur.OwnerReferences = l.Spec, l.OwnerReferences
		l, err = &cur, p.c.Update(ctx, &cur)
	}
	if err != nil {
		return err
	}
	p.lease = l
	return nil
}

// every runs fn every d until ctx ends.
func every(ctx context.Context, d time.Duration, fn func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn()
		}
	}
}

// close stops the endpoint and withdraws the Lease.
func (p *peering) close() {
	_ = p.srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = p.c.Delete(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: p.ns, Name: LeaseName(p.prefix)}})
}
