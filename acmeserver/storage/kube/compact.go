package kube

import (
	"maps"
	"strconv"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"

	"github.com/kacme/kacme/acmeserver/storage"
	"github.com/kacme/kacme/api/v1alpha1"
)

// Compact returns a cache transform that runs next and then makes the
// cached copies of orders, authorizations and certificates smaller without
// losing anything a reader of this Store can see:
//
//   - The labels kacme puts on them (account, order, profile, and the
//     expiry) repeat their spec and status. When an object's labels are
//     exactly those, or those but the expiry (written before kacme set it),
//     the cached copy keeps none (a map of three strings is about a fifth of
//     a cached order; derivedButExpires tells the two apart), and
//     every read through the Store, the indexes and List's label matching
//     derive them again from the spec (labelsOf). Any other label (a state,
//     a replaced certificate, one an administrator added) keeps the whole
//     map as it is. An object stored with no labels at all therefore reads
//     back with the derived ones, and a kacme Update of it writes them: they
//     are kacme's bookkeeping, and its indexes need them.
//   - A certificate's PEM is left out (unless it is revoked: the CRL reads
//     revoked leaves), leaving a marker (compacted). Get reads such a
//     certificate whole: from this process's own write of the same version
//     when it has one (a download right after issuance), else from the API
//     server (WithFetches). List hands certificates out without their PEM.
//   - Strings that many objects share (namespaces, profile, CA and account
//     names, label keys, statuses, challenge types) point at one copy
//     instead of one per object (intern).
//
// Strings are immutable and every map is replaced, never written in place,
// so the sharing is invisible to readers; Get and List hand out restored
// copies (restore), so an Update never sends a compacted object.
func Compact(next toolscache.TransformFunc) toolscache.TransformFunc {
	return func(in any) (any, error) {
		if next != nil {
			var err error
			if in, err = next(in); err != nil {
				return in, err
			}
		}
		compact(in)
		return in, nil
	}
}

func compact(in any) {
	switch o := in.(type) {
	case *v1alpha1.AcmeOrder:
		sp := &o.Spec
		sp.Account, sp.Profile, sp.IssuanceProfile = intern(sp.Account), intern(sp.Profile), intern(sp.IssuanceProfile)
		sp.Identifiers, o.Status.Authorizations = exact(sp.Identifiers), exact(o.Status.Authorizations)
		for i := range sp.Identifiers {
			sp.Identifiers[i].Type = intern(sp.Identifiers[i].Type)
		}
		o.Status.Status = intern(o.Status.Status)
		for i := range o.Status.Offered {
			for j := range o.Status.Offered[i].Challenges {
				c := &o.Status.Offered[i].Challenges[j]
				c.Type = v1alpha1.ChallengeType(intern(string(c.Type)))
			}
		}
	case *v1alpha1.AcmeChallenge:
		for i := range o.OwnerReferences {
			r := &o.OwnerReferences[i]
			r.APIVersion, r.Kind = intern(r.APIVersion), intern(r.Kind)
		}
		sp := &o.Spec
		sp.Account, sp.Profile, sp.Identifier.Type = intern(sp.Account), intern(sp.Profile), intern(sp.Identifier.Type)
		o.Status.Status = intern(o.Status.Status)
		o.Status.Challenges, o.Status.Records = exact(o.Status.Challenges), exact(o.Status.Records)
		for i := range o.Status.Challenges {
			c := &o.Status.Challenges[i]
			c.Type, c.Status = v1alpha1.ChallengeType(intern(string(c.Type))), intern(c.Status)
		}
	case *v1alpha1.AcmeCertificate:
		sp := &o.Spec
		sp.Account, sp.Profile, sp.IssuanceProfile = intern(sp.Account), intern(sp.Profile), intern(sp.IssuanceProfile)
		sp.CertificateAuthority, sp.Names = intern(sp.CertificateAuthority), exact(sp.Names)
		if sp.Serial == o.Name {
			sp.Serial = o.Name // the serial is the name: one copy
		}
		if sp.Revocation == nil && sp.RevocationReason == nil && (sp.Certificate != "" || sp.Chain != "") {
			// Downloads come right after issuance (the overlay has the
			// write) or rarely; revoked certificates (the CRL reads their
			// leaves) keep theirs.
			sp.Certificate, sp.Chain = "", trimmedPEM
		}
	default:
		return
	}
	obj := in.(metav1.Object)
	obj.SetNamespace(intern(obj.GetNamespace()))
	if derived := derivedLabels(obj); maps.Equal(obj.GetLabels(), derived) {
		obj.SetLabels(nil)
	} else if equalButExpires(obj.GetLabels(), derived) {
		obj.SetLabels(derivedButExpires) // written before kacme set LabelExpires
	} else if l := obj.GetLabels(); len(l) > 0 {
		out := make(map[string]string, len(l))
		for k, v := range l {
			switch k {
			case v1alpha1.LabelAccount, v1alpha1.LabelProfile, v1alpha1.LabelState:
				v = intern(v)
			}
			out[intern(k)] = v
		}
		obj.SetLabels(out)
	}
}

// derivedButExpires stands, in the cache, for the derived labels without
// v1alpha1.LabelExpires (an object written before kacme set it): an empty
// map that is not nil, where nil stands for all of them. Every cached object
// shares this one; a deep copy keeps it empty and not nil.
var derivedButExpires = map[string]string{}

// equalButExpires reports whether l is d without its v1alpha1.LabelExpires
// (which d has), without building that map: the transform runs for every
// object the informer delivers.
func equalButExpires(l, d map[string]string) bool {
	if _, ok := d[v1alpha1.LabelExpires]; !ok || len(l) == 0 || len(l) != len(d)-1 {
		return false
	}
	for k, v := range l {
		if dv, ok := d[k]; !ok || dv != v || k == v1alpha1.LabelExpires {
			return false
		}
	}
	return true
}

// trimmedPEM marks a cached certificate whose PEM Compact left out (a
// constant: it costs no memory per object). A stored chain is PEM and never
// reads so.
const trimmedPEM = "(left out of the cache by kacme)"

// compacted reports whether obj, as cached, lacks something the API server
// has (a certificate's PEM): Get reads it whole from the API server, and
// List hands it out without (restore).
func compacted(obj any) bool {
	c, ok := obj.(*v1alpha1.AcmeCertificate)
	return ok && c.Spec.Chain == trimmedPEM
}

// exact is s in an array of its length (a decoded slice grows by doubling:
// three challenges take the room of four).
func exact[T any](s []T) []T {
	if cap(s) == len(s) {
		return s
	}
	return append(make([]T, 0, len(s)), s...)
}

// labeled is an object with labels.
type labeled interface {
	GetLabels() map[string]string
	SetLabels(map[string]string)
}

// derivedLabels are the labels kacme gives obj, from its spec (nil for a
// kind without such labels). Values that are empty are left out.
func derivedLabels(obj any) map[string]string {
	var account, order, profile string
	switch o := obj.(type) {
	case *v1alpha1.AcmeOrder:
		account, profile = o.Spec.Account, o.Spec.Profile
	case *v1alpha1.AcmeChallenge:
		account, order, profile = o.Spec.Account, o.Spec.Order, o.Spec.Profile
	case *v1alpha1.AcmeCertificate:
		account, order, profile = o.Spec.Account, o.Spec.Order, o.Spec.Profile
	default:
		return nil
	}
	out := make(map[string]string, 3)
	add := func(k, v string) {
		if v != "" {
			out[k] = v
		}
	}
	add(v1alpha1.LabelAccount, account)
	add(v1alpha1.LabelOrder, order)
	add(v1alpha1.LabelProfile, profile)
	exp, _ := expiresLabel(obj)
	add(v1alpha1.LabelExpires, exp)
	return out
}

// expiresLabel is obj's v1alpha1.LabelExpires value: when an order or
// authorization expires, when a certificate's validity ends, in Unix
// seconds ("" when that time is unset); ok is false for other kinds.
func expiresLabel(obj any) (v string, ok bool) {
	var at time.Time
	switch o := obj.(type) {
	case *v1alpha1.AcmeOrder:
		at = o.Status.Expires.Time
	case *v1alpha1.AcmeChallenge:
		at = o.Status.Expires.Time
	case *v1alpha1.AcmeCertificate:
		at = o.Spec.NotAfter.Time
	default:
		return "", false
	}
	if at.IsZero() || at.Unix() < 0 {
		return "", true
	}
	return strconv.FormatInt(at.Unix(), 10), true
}

// stampExpires gives obj, about to be written, the v1alpha1.LabelExpires
// its expiry calls for (or takes a stale one off), in a new label map: the
// one obj has may be a cached object's.
func stampExpires(obj storage.Object) {
	v, ok := expiresLabel(obj)
	if !ok {
		return
	}
	l := obj.GetLabels()
	if have, set := l[v1alpha1.LabelExpires]; (v == "" && !set) || (v != "" && have == v) {
		return
	}
	out := make(map[string]string, len(l)+1)
	for k, val := range l {
		out[k] = val
	}
	if v == "" {
		delete(out, v1alpha1.LabelExpires)
	} else {
		out[v1alpha1.LabelExpires] = v
	}
	obj.SetLabels(out)
}

// labelsOf is what obj's labels read as: its own, or the derived ones when
// Compact dropped them.
func labelsOf(obj labeled) map[string]string {
	if l := obj.GetLabels(); len(l) > 0 {
		return l
	}
	if d := dropped(obj); len(d) > 0 {
		return d
	}
	return obj.GetLabels()
}

// dropped is what Compact left out of obj's (empty) labels: the derived
// ones, without v1alpha1.LabelExpires when the labels are empty but not nil
// (derivedButExpires).
func dropped(obj labeled) map[string]string {
	d := derivedLabels(obj)
	if obj.GetLabels() != nil {
		delete(d, v1alpha1.LabelExpires)
	}
	return d
}

// restore gives obj (a copy out of the cache, never the cache's own object)
// the labels Compact dropped, and takes the marker off a certificate whose
// PEM it left out (a List of certificates hands them out without PEM; Get
// reads them whole).
func restore(obj labeled) {
	if c, ok := obj.(*v1alpha1.AcmeCertificate); ok && c.Spec.Chain == trimmedPEM {
		c.Spec.Chain = ""
	}
	if len(obj.GetLabels()) == 0 {
		if d := dropped(obj); len(d) > 0 {
			obj.SetLabels(d)
		}
	}
}

// internTable holds one copy of each interned string. It is bounded: past
// maxInterned strings (a flood of accounts), new ones are kept as they are.
var internTable = struct {
	sync.RWMutex
	m map[string]string
}{m: map[string]string{}}

const maxInterned = 1 << 14

// intern returns the table's copy of s, adding s while there is room.
func intern(s string) string {
	if s == "" {
		return s
	}
	internTable.RLock()
	v, ok := internTable.m[s]
	internTable.RUnlock()
	if ok {
		return v
	}
	internTable.Lock()
	defer internTable.Unlock()
	if v, ok := internTable.m[s]; ok {
		return v
	}
	if len(internTable.m) >= maxInterned {
		return s
	}
	internTable.m[s] = s
	return s
}
