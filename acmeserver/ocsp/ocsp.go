// Package ocsp is kacme's OCSP responder (RFC 6960, with RFC 5019's GET
// form and RFC 8954's nonce): one URL per CertificateAuthority with
// spec.ocsp, /ocsp/<ca>, on the plain-HTTP PKI listener and on HTTPS.
//
// Every request reads the certificate's current state from the store (an
// in-memory read in both modes), so a revocation shows in the next answer
// of every replica as soon as its store has it; signatures are what is
// cached: a response is signed once per serial and state and served again
// until half its validity has passed, then signed afresh, so a served
// response never nears its nextUpdate. Signing on demand is bounded: a
// request with a nonce or for a serial this server does not know costs a
// signature from a shared budget (SignRate); past it, a nonce is left out
// (RFC 8954 §2.1 lets a responder) and an unknown serial gets tryLater.
package ocsp

import (
	"bytes"
	"context"
	"crypto"
	_ "crypto/sha1" // CertIDs hash with SHA-1 by default (RFC 5019 §2.1.1)
	"crypto/sha256"
	_ "crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	xocsp "golang.org/x/crypto/ocsp"
	"golang.org/x/time/rate"

	"github.com/kacme/kacme/acmeserver/ca"
	"github.com/kacme/kacme/acmeserver/metrics"
	"github.com/kacme/kacme/acmeserver/ra"
)

// PathPrefix is where the responder answers: PathPrefix + <ca>[/<request>].
const PathPrefix = "/ocsp/"

// MaxRequestSize bounds an OCSP request (DER): one CertID and a nonce take
// about 120 bytes; 4 KiB leaves room for a requestor name and extensions.
const MaxRequestSize = 4 << 10

// Source is what the responder reads: the CAs, and a certificate's state.
type Source interface {
	Authorities() map[string]*ca.Authority
	CertificateStatus(ctx context.Context, caName string, key *ca.Authority, serial *big.Int) (ra.CertStatus, error)
}

// Options configure a Responder.
type Options struct {
	Source  Source
	Metrics *metrics.Metrics
	Log     *slog.Logger
	// SignRate bounds the signatures per second requests may cost beyond
	// one per certificate and state (nonces, unknown serials). Default 500.
	SignRate float64
	// CacheSize bounds the signed responses kept. Default 20,000.
	CacheSize int
	// Now replaces the clock (tests).
	Now func() time.Time
}

// Responder answers OCSP requests.
type Responder struct {
	src     Source
	metrics *metrics.Metrics
	log     *slog.Logger
	now     func() time.Time
	budget  *rate.Limiter

	cache      *lru
	mu         sync.Mutex
	delegates  map[[32]byte]*delegate // by CA certificate (sha256 of its DER)
	lookupWait time.Duration
}

// delegate is a delegated responder certificate and its key.
type delegate struct {
	cert *x509.Certificate
	key  crypto.Signer
}

// New returns a responder.
func New(o Options) *Responder {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.SignRate <= 0 {
		o.SignRate = 500
	}
	if o.CacheSize <= 0 {
		o.CacheSize = 20000
	}
	return &Responder{src: o.Source, metrics: o.Metrics, log: o.Log, now: o.Now,
		budget: rate.NewLimiter(rate.Limit(o.SignRate), int(o.SignRate)), cache: newLRU(o.CacheSize),
		delegates: map[[32]byte]*delegate{}, lookupWait: 5 * time.Second}
}

// Wrap sends the requests under PathPrefix to o and the rest to next. It
// must see requests before any ServeMux does: a ServeMux cleans paths, and
// answers one holding "//" (which base64 in the GET form may) with a
// redirect. A nil o sends everything to next.
func (o *Responder) Wrap(next http.Handler) http.Handler {
	if o == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, PathPrefix) {
			o.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// ServeHTTP answers GET <PathPrefix><ca>/<base64 request> (RFC 6960
// Appendix A.1; the request may hold '/' and '+', escaped or not, so the
// caller must hand over the raw path, not one a ServeMux cleaned) and POST
// <PathPrefix><ca> with an application/ocsp-request body.
func (o *Responder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start, code := o.now(), http.StatusOK
	defer func() { o.metrics.Request(PathPrefix+"{ca}", r.Method, code, o.now().Sub(start)) }()
	rest, _ := strings.CutPrefix(r.URL.EscapedPath(), PathPrefix)
	caName, encoded, _ := strings.Cut(rest, "/")
	caName, err := url.PathUnescape(caName)
	if err != nil {
		caName = ""
	}
	var der []byte
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		der, err = decodeGET(encoded)
	case http.MethodPost:
		if encoded != "" {
			code = http.StatusNotFound
			http.Error(w, "POST the OCSP request to "+PathPrefix+"<ca>", code)
			return
		}
		der, err = io.ReadAll(http.MaxBytesReader(w, r.Body, MaxRequestSize))
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			code = http.StatusRequestEntityTooLarge
			http.Error(w, fmt.Sprintf("an OCSP request is at most %d bytes", MaxRequestSize), code)
			return
		}
	default:
		code = http.StatusMethodNotAllowed
		w.Header().Set("Allow", "GET, HEAD, POST")
		http.Error(w, "OCSP requests are GET or POST", code)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), o.lookupWait)
	defer cancel()
	var resp *answer
	if err != nil {
		resp = o.failure(o.label(caName), xocsp.Malformed)
	} else {
		resp = o.respond(ctx, caName, der)
	}
	code = resp.write(w, r, o.now())
}

// decodeGET decodes the request of a GET: URL-escaped standard base64
// (what RFC 6960 asks), or URL-safe base64, padded or not.
func decodeGET(s string) ([]byte, error) {
	if s == "" || len(s) > MaxRequestSize*2 {
		return nil, errors.New("no OCSP request, or an oversized one")
	}
	u, err := url.PathUnescape(s)
	if err != nil {
		return nil, err
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if der, err := enc.DecodeString(u); err == nil && len(der) <= MaxRequestSize {
			return der, nil
		}
	}
	return nil, errors.New("the OCSP request is not base64")
}

// answer is a response ready to write.
type answer struct {
	der                    []byte
	thisUpdate, nextUpdate time.Time
	cacheable              bool // HTTP caches may keep it until nextUpdate
}

// write sends the answer and returns the HTTP status it sent.
func (a *answer) write(w http.ResponseWriter, r *http.Request, now time.Time) int {
	h := w.Header()
	h.Set("Content-Type", "application/ocsp-response")
	if a.cacheable && a.nextUpdate.After(now) {
		// RFC 5019 §6.2: caches may keep it until nextUpdate.
		sum := sha256.Sum256(a.der)
		h.Set("ETag", `"`+hex.EncodeToString(sum[:16])+`"`)
		h.Set("Expires", a.nextUpdate.UTC().Format(http.TimeFormat))
		h.Set("Cache-Control", fmt.Sprintf("max-age=%d, public, no-transform, must-revalidate", int(a.nextUpdate.Sub(now).Seconds())))
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			// A cache revalidating (If-None-Match, If-Modified-Since) gets
			// 304 Not Modified while the response it holds is the one
			// served. The standard library decides, with Last-Modified =
			// thisUpdate; a Range is ignored (an OCSP response is whole).
			if r.Header.Get("Range") != "" || r.Header.Get("If-Range") != "" {
				r = r.Clone(r.Context())
				r.Header.Del("Range")
				r.Header.Del("If-Range")
			}
			sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
			http.ServeContent(sw, r, "", a.thisUpdate, bytes.NewReader(a.der))
			return sw.code
		}
		h.Set("Last-Modified", a.thisUpdate.UTC().Format(http.TimeFormat))
	} else {
		h.Set("Cache-Control", "no-store")
	}
	h.Set("Content-Length", strconv.Itoa(len(a.der)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(a.der)
	return http.StatusOK
}

// statusWriter remembers the status http.ServeContent chose, for metrics.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (s *statusWriter) WriteHeader(code int) {
	s.code = code
	s.ResponseWriter.WriteHeader(code)
}

// failure is an unsigned error response (RFC 6960 §4.2.1).
func (o *Responder) failure(caName string, st xocsp.ResponseStatus) *answer {
	o.metrics.OCSP(caName, statusName(st))
	der, _ := asn1.Marshal(struct{ Status asn1.Enumerated }{asn1.Enumerated(st)})
	return &answer{der: der}
}

func statusName(st xocsp.ResponseStatus) string {
	switch st {
	case xocsp.Malformed:
		return "malformedRequest"
	case xocsp.InternalError:
		return "internalError"
	case xocsp.TryLater:
		return "tryLater"
	case xocsp.Unauthorized:
		return "unauthorized"
	}
	return strconv.Itoa(int(st))
}

// label is caName for metrics when it is a CA this server has (a request
// names any string), else "".
func (o *Responder) label(caName string) string {
	if _, ok := o.src.Authorities()[caName]; ok {
		return caName
	}
	return ""
}

// respond answers one DER request for CA caName.
func (o *Responder) respond(ctx context.Context, caName string, der []byte) *answer {
	req, err := parseRequest(der)
	if err != nil {
		return o.failure(o.label(caName), xocsp.Malformed)
	}
	auth := o.src.Authorities()[caName]
	if auth == nil || auth.OCSP == nil {
		return o.failure(o.label(caName), xocsp.Unauthorized) // RFC 5019 §2.2.3: not a CA this responder answers for
	}
	key := issuerKey(auth, req)
	if key == nil {
		return o.failure(caName, xocsp.Unauthorized)
	}
	st, err := o.src.CertificateStatus(ctx, caName, key, req.serial)
	if err != nil {
		o.log.Warn("OCSP: read certificate state", "ca", caName, "serial", fmt.Sprintf("%x", req.serial), "err", err)
		return o.failure(caName, xocsp.TryLater)
	}
	now := o.now()
	k := cacheKey{ca: sha256.Sum256(key.Cert.Raw), serial: string(req.serial.Bytes()), hash: req.hash}
	fp := fingerprint(st)
	if req.nonce != nil && o.budget.Allow() {
		resp, err := o.sign(key, req, st, now, req.nonce)
		if err != nil {
			return o.signFailed(caName, err)
		}
		o.metrics.OCSPSigned(caName, "nonce")
		o.metrics.OCSP(caName, statusLabel(st))
		return &answer{der: resp.der} // for this request alone: not cached
	}
	cached, ok := o.cache.get(k)
	if ok && cached.fp == fp && !now.Before(cached.thisUpdate) && now.Before(cached.thisUpdate.Add(key.OCSP.Validity/2)) && now.Before(cached.nextUpdate) {
		o.metrics.OCSP(caName, statusLabel(st))
		return &answer{der: cached.der, thisUpdate: cached.thisUpdate, nextUpdate: cached.nextUpdate, cacheable: true}
	}
	if !st.Known && !o.budget.Allow() {
		return o.failure(caName, xocsp.TryLater)
	}
	resp, err := o.sign(key, req, st, now, nil)
	if err != nil {
		return o.signFailed(caName, err)
	}
	resp.fp = fp
	o.cache.put(k, resp)
	why := "new"
	if ok {
		why = "refresh"
	}
	o.metrics.OCSPSigned(caName, why)
	o.metrics.OCSP(caName, statusLabel(st))
	return &answer{der: resp.der, thisUpdate: resp.thisUpdate, nextUpdate: resp.nextUpdate, cacheable: true}
}

func (o *Responder) signFailed(caName string, err error) *answer {
	o.log.Error("OCSP: sign response", "ca", caName, "err", err)
	return o.failure(caName, xocsp.InternalError)
}

// fingerprint is what a signed response says of a certificate, so that a
// cached response is served only while the certificate's state is the same.
func fingerprint(st ra.CertStatus) string {
	return fmt.Sprintf("%t/%t/%d/%d", st.Known, st.Revoked, st.RevokedAt.UnixNano(), st.Reason)
}

// request is an OCSP request as far as the responder reads it.
type request struct {
	hash              crypto.Hash
	nameHash, keyHash []byte
	serial            *big.Int
	nonce             []byte // the nonce extension's value (DER), nil without one
}

var oidNonce = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 2}

// parseRequest reads an OCSP request: its CertID through x/crypto/ocsp, and
// what that does not read (how many CertIDs, the nonce) from the
// structure itself.
func parseRequest(der []byte) (*request, error) {
	req, err := xocsp.ParseRequest(der)
	if err != nil {
		return nil, err
	}
	var raw struct {
		TBS struct {
			Version       int           `asn1:"explicit,tag:0,default:0,optional"`
			RequestorName asn1.RawValue `asn1:"explicit,tag:1,optional"`
			RequestList   []asn1.RawValue
			Extensions    []pkix.Extension `asn1:"explicit,tag:2,optional"`
		}
		Signature asn1.RawValue `asn1:"explicit,tag:0,optional"`
	}
	if rest, err := asn1.Unmarshal(der, &raw); err != nil || len(rest) > 0 {
		return nil, fmt.Errorf("OCSP request: %v", err)
	}
	if len(raw.TBS.RequestList) != 1 {
		return nil, errors.New("OCSP request: one certificate per request") // RFC 5019 §2.1.1
	}
	if req.SerialNumber == nil || req.SerialNumber.Sign() <= 0 || req.SerialNumber.BitLen() > 20*8 {
		return nil, errors.New("OCSP request: a serial is positive and at most 20 octets") // RFC 5280 §4.1.2.2
	}
	out := &request{hash: req.HashAlgorithm, nameHash: req.IssuerNameHash, keyHash: req.IssuerKeyHash, serial: req.SerialNumber}
	for _, e := range raw.TBS.Extensions {
		if !e.Id.Equal(oidNonce) {
			continue // RFC 6960 §4.4: unknown extensions are ignored
		}
		if out.nonce != nil {
			return nil, errors.New("OCSP request: two nonces")
		}
		n := e.Value
		var inner []byte
		if rest, err := asn1.Unmarshal(e.Value, &inner); err == nil && len(rest) == 0 {
			n = inner // Nonce ::= OCTET STRING (RFC 8954); some clients send the bytes bare
		}
		if len(n) < 1 || len(n) > 32 {
			return nil, errors.New("OCSP request: a nonce is 1 to 32 octets") // RFC 8954 §2.1
		}
		out.nonce = e.Value
	}
	return out, nil
}

// issuerKey is the key of auth (its current one or one it had before a
// rotation) the request's CertID names, or nil.
func issuerKey(auth *ca.Authority, req *request) *ca.Authority {
	if !req.hash.Available() {
		return nil
	}
	for c := auth; c != nil; c = c.Previous {
		var spki struct {
			Algorithm pkix.AlgorithmIdentifier
			PublicKey asn1.BitString
		}
		if _, err := asn1.Unmarshal(c.Cert.RawSubjectPublicKeyInfo, &spki); err != nil {
			continue
		}
		h := req.hash.New()
		h.Write(spki.PublicKey.RightAlign())
		if !bytes.Equal(h.Sum(nil), req.keyHash) {
			continue
		}
		h.Reset()
		h.Write(c.Cert.RawSubject)
		if bytes.Equal(h.Sum(nil), req.nameHash) {
			return c
		}
	}
	return nil
}

// statusLabel names what a response says, for metrics.
func statusLabel(st ra.CertStatus) string {
	switch {
	case !st.Known:
		return "unknown"
	case st.Revoked:
		return "revoked"
	}
	return "good"
}
