package ocsp

import (
	"container/list"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"io"
	"sync"
	"time"

	xocsp "golang.org/x/crypto/ocsp"

	"github.com/kacme/kacme/acmeserver/ca"
	"github.com/kacme/kacme/acmeserver/ra"
)

// signed is a signed response and what it was signed from.
type signed struct {
	der                    []byte
	thisUpdate, nextUpdate time.Time
	fp                     string
}

// sign signs the response to req saying st, by key (one of a CA's keys) or
// its delegated responder, with the nonce extension value nonce when it is
// not nil. nextUpdate is thisUpdate plus the CA's OCSP validity, never
// after the signing certificate expires.
func (o *Responder) sign(key *ca.Authority, req *request, st ra.CertStatus, now time.Time, nonce []byte) (*signed, error) {
	this := now.UTC().Truncate(time.Second)
	tmpl := xocsp.Response{SerialNumber: req.serial, ThisUpdate: this, NextUpdate: this.Add(key.OCSP.Validity),
		IssuerHash: req.hash, Status: xocsp.Unknown}
	if st.Known {
		tmpl.Status = xocsp.Good
		if st.Revoked {
			// A reason of 0 (unspecified) is left out (REV-05): x/crypto
			// omits the optional field when it is zero.
			tmpl.Status, tmpl.RevokedAt, tmpl.RevocationReason = xocsp.Revoked, st.RevokedAt.UTC(), st.Reason
		}
	}
	signer, cert := key.Signer, key.Cert
	if _, ed := key.Cert.PublicKey.(ed25519.PublicKey); ed || key.OCSP.Delegated {
		d, err := o.delegate(key, now)
		if err != nil {
			return nil, err
		}
		signer, cert, tmpl.Certificate = d.key, d.cert, d.cert
	}
	if cert.NotAfter.Before(tmpl.NextUpdate) {
		tmpl.NextUpdate = cert.NotAfter
	}
	var der []byte
	var err error
	if nonce == nil {
		der, err = xocsp.CreateResponse(key.Cert, cert, tmpl, signer)
	} else {
		der, err = createWithNonce(key.Cert, cert, tmpl, signer, nonce)
	}
	if err != nil {
		return nil, err
	}
	return &signed{der: der, thisUpdate: tmpl.ThisUpdate, nextUpdate: tmpl.NextUpdate}, nil
}

// delegate returns the delegated responder certificate of key, issuing a
// new one (and key) when there is none yet or two thirds of its life have
// passed. It lives 3 × the response validity, at least 7 days, never
// longer than the CA, so that it outlives every response it signs.
func (o *Responder) delegate(key *ca.Authority, now time.Time) (*delegate, error) {
	sum := sha256.Sum256(key.Cert.Raw)
	o.mu.Lock()
	defer o.mu.Unlock()
	if d := o.delegates[sum]; d != nil && !now.Before(d.cert.NotBefore) {
		life := d.cert.NotAfter.Sub(d.cert.NotBefore)
		if now.Before(d.cert.NotBefore.Add(life*2/3)) || !d.cert.NotAfter.Before(key.Cert.NotAfter) {
			return d, nil
		}
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	life := max(7*24*time.Hour, 3*key.OCSP.Validity)
	cert, err := key.IssueOCSPResponder(k.Public(), now.Add(-time.Minute), now.Add(life))
	if err != nil {
		return nil, err
	}
	if len(o.delegates) >= 64 {
		clear(o.delegates) // CA certificates that were replaced; the current ones get new delegates
	}
	d := &delegate{cert: cert, key: k}
	o.delegates[sum] = d
	o.log.Info("issued an OCSP responder certificate", "ca", key.Name, "serial", fmt.Sprintf("%x", cert.SerialNumber),
		"notAfter", cert.NotAfter)
	return d, nil
}

// unsigned is a crypto.Signer that signs nothing: x/crypto/ocsp builds the
// response around it, and createWithNonce signs the result.
type unsigned struct{ crypto.Signer }

func (unsigned) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) { return nil, nil }

// hashes are the digests of the signature algorithms x/crypto/ocsp picks.
var hashes = map[string]crypto.Hash{
	"1.2.840.10045.4.3.2": crypto.SHA256, "1.2.840.10045.4.3.3": crypto.SHA384, "1.2.840.10045.4.3.4": crypto.SHA512,
	"1.2.840.113549.1.1.11": crypto.SHA256, "1.2.840.113549.1.1.12": crypto.SHA384, "1.2.840.113549.1.1.13": crypto.SHA512,
}

// createWithNonce is xocsp.CreateResponse with the nonce extension among
// the responseExtensions (RFC 8954 §2.1), which x/crypto/ocsp does not
// write (its template's extensions go into the singleResponse): it builds
// the response unsigned, appends responseExtensions to the ResponseData —
// the last field of that SEQUENCE — and signs that.
func createWithNonce(issuer, responder *x509.Certificate, tmpl xocsp.Response, signer crypto.Signer, nonce []byte) ([]byte, error) {
	der, err := xocsp.CreateResponse(issuer, responder, tmpl, unsigned{signer})
	if err != nil {
		return nil, err
	}
	var outer struct {
		Status   asn1.Enumerated
		Response struct {
			Type     asn1.ObjectIdentifier
			Response []byte
		} `asn1:"explicit,tag:0"`
	}
	if _, err := asn1.Unmarshal(der, &outer); err != nil {
		return nil, err
	}
	var basic struct {
		TBS       asn1.RawValue
		Algorithm pkix.AlgorithmIdentifier
		Signature asn1.BitString
		Certs     []asn1.RawValue `asn1:"explicit,tag:0,optional"`
	}
	if _, err := asn1.Unmarshal(outer.Response.Response, &basic); err != nil {
		return nil, err
	}
	h, ok := hashes[basic.Algorithm.Algorithm.String()]
	if !ok {
		return nil, fmt.Errorf("OCSP response signature algorithm %s", basic.Algorithm.Algorithm)
	}
	exts, err := asn1.Marshal([]pkix.Extension{{Id: oidNonce, Value: nonce}})
	if err != nil {
		return nil, err
	}
	tagged, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 1, IsCompound: true, Bytes: exts})
	if err != nil {
		return nil, err
	}
	content := append(append([]byte{}, basic.TBS.Bytes...), tagged...)
	tbs, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSequence, IsCompound: true, Bytes: content})
	if err != nil {
		return nil, err
	}
	digest := h.New()
	digest.Write(tbs)
	sig, err := signer.Sign(rand.Reader, digest.Sum(nil), h)
	if err != nil {
		return nil, err
	}
	basic.TBS = asn1.RawValue{FullBytes: tbs}
	basic.Signature = asn1.BitString{Bytes: sig, BitLength: 8 * len(sig)}
	if outer.Response.Response, err = asn1.Marshal(basic); err != nil {
		return nil, err
	}
	return asn1.Marshal(outer)
}

// lru keeps the most recently used signed responses.
type lru struct {
	mu    sync.Mutex
	max   int
	order *list.List // of *lruEntry, most recent first
	m     map[cacheKey]*list.Element
}

type cacheKey struct {
	ca     [32]byte // the CA certificate (sha256 of its DER)
	serial string
	hash   crypto.Hash // the request's CertID hash: the response's CertID uses it too
}

type lruEntry struct {
	k cacheKey
	v *signed
}

func newLRU(n int) *lru { return &lru{max: n, order: list.New(), m: map[cacheKey]*list.Element{}} }

func (l *lru) get(k cacheKey) (*signed, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.m[k]
	if !ok {
		return nil, false
	}
	l.order.MoveToFront(e)
	return e.Value.(*lruEntry).v, true
}

func (l *lru) put(k cacheKey, v *signed) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e, ok := l.m[k]; ok {
		e.Value.(*lruEntry).v = v
		l.order.MoveToFront(e)
		return
	}
	l.m[k] = l.order.PushFront(&lruEntry{k: k, v: v})
	for l.order.Len() > l.max {
		last := l.order.Back()
		l.order.Remove(last)
		delete(l.m, last.Value.(*lruEntry).k)
	}
}
