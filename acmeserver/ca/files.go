package ca

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/kacme/kacme/api/v1alpha1"
)

// Generator creates a CA key and chain (issuing certificate first).
type Generator func() (crypto.Signer, []*x509.Certificate, error)

// LoadOrGenerateDir loads the CA from dir/tls.key and dir/tls.crt (the
// standalone form of a kubernetes.io/tls Secret), generating it with gen on
// first start; later starts reuse it.
func LoadOrGenerateDir(name, dir string, gen Generator) (*Authority, bool, error) {
	keyPath, crtPath := filepath.Join(dir, "tls.key"), filepath.Join(dir, "tls.crt")
	created := false
	if _, err := os.Stat(keyPath); errors.Is(err, os.ErrNotExist) {
		key, chain, err := gen()
		if err != nil {
			return nil, false, fmt.Errorf("CA %s: generate: %w", name, err)
		}
		keyPEM, crtPEM, err := EncodePEM(key, chain)
		if err != nil {
			return nil, false, err
		}
		if err := MkdirAllSynced(dir, 0o700); err != nil {
			return nil, false, err
		}
		// Write the certificate first: a crash in between leaves no key without a cert.
		if err := WriteFileAtomic(crtPath, crtPEM, 0o644); err != nil {
			return nil, false, err
		}
		if err := WriteFileAtomic(keyPath, keyPEM, 0o600); err != nil {
			return nil, false, err
		}
		created = true
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, false, err
	}
	crtPEM, err := os.ReadFile(crtPath)
	if err != nil {
		return nil, false, err
	}
	a, err := FromPEM(name, keyPEM, crtPEM)
	if err != nil {
		return nil, false, err
	}
	return a, created, nil
}

// ConfigureURLs sets what issued certificates point to, under pkiURL (the
// base URL the server serves CRLs, OCSP and CA certificates at, plain HTTP
// when it has such a listener, as RFC 5280 relying parties expect): the CRL
// distribution point when the CA publishes a CRL (spec.crl; its
// distributionPointURL, or <pkiURL>/crl/<name>), the OCSP responder when it
// runs one (spec.ocsp; its responderURL, or <pkiURL>/ocsp/<name>), and the
// caIssuers URL <pkiURL>/ca/<name> always. An empty pkiURL sets only
// explicit URLs.
func (a *Authority) ConfigureURLs(crl *v1alpha1.CRLSpec, ocsp *v1alpha1.OCSPSpec, pkiURL string) {
	for c := a; c != nil; c = c.Previous {
		c.CRLURL, c.IssuerURL, c.OCSP = "", "", nil
		if pkiURL != "" {
			c.IssuerURL = pkiURL + "/ca/" + a.Name
		}
		if ocsp != nil {
			c.OCSP = &OCSPConfig{URL: ocsp.ResponderURL, Validity: DefaultOCSPValidity,
				Delegated: ocsp.Responder == v1alpha1.OCSPResponderDelegated}
			if c.OCSP.URL == "" && pkiURL != "" {
				c.OCSP.URL = pkiURL + "/ocsp/" + a.Name
			}
			if ocsp.Validity != nil && ocsp.Validity.Duration > 0 {
				c.OCSP.Validity = min(max(ocsp.Validity.Duration, MinOCSPValidity), MaxOCSPValidity)
			}
		}
		if crl == nil {
			continue
		}
		c.CRLURL = crl.DistributionPointURL
		if c.CRLURL == "" && pkiURL != "" {
			c.CRLURL = pkiURL + "/crl/" + a.Name
		}
		if crl.Validity != nil && crl.Validity.Duration > 0 {
			c.CRLValidity = crl.Validity.Duration
		}
	}
}

// Bounds of spec.ocsp.validity (the CRD refuses others; a standalone
// manifest's value is clamped to them).
const (
	MinOCSPValidity = 5 * time.Minute
	MaxOCSPValidity = 168 * time.Hour
)

// FromPEM builds an authority from a PKCS#8/EC/PKCS#1 key and a certificate chain.
func FromPEM(name string, keyPEM, chainPEM []byte) (*Authority, error) {
	kb, _ := pem.Decode(keyPEM)
	if kb == nil {
		return nil, fmt.Errorf("CA %s: no PEM key", name)
	}
	var key any
	var err error
	switch kb.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(kb.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(kb.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(kb.Bytes)
	default:
		err = fmt.Errorf("unsupported PEM block %q", kb.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("CA %s: parse key: %w", name, err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("CA %s: key cannot sign", name)
	}
	var chain []*x509.Certificate
	rest := chainPEM
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("CA %s: parse certificate: %w", name, err)
		}
		chain = append(chain, c)
	}
	if len(chain) == 0 {
		return nil, fmt.Errorf("CA %s: no certificate in chain", name)
	}
	return New(name, chain[0], signer, chain[1:])
}

// EncodePEM encodes a key (PKCS#8) and a chain.
func EncodePEM(key crypto.Signer, chain []*x509.Certificate) (keyPEM, chainPEM []byte, err error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	for _, c := range chain {
		chainPEM = append(chainPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return keyPEM, chainPEM, nil
}

// WriteFileAtomic writes data to path through a synced temporary file and a
// rename, then syncs the directory: a rename is durable only once the
// directory entry is on disk (without it a crash right after may leave the
// old file, or none, although the caller went on as if the new one was
// there — for a CA key, a server that issued under a key it no longer has).
// The temporary file is created with mode 0600 whatever lies around.
func WriteFileAtomic(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			_ = os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Chmod(mode); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	ok = true
	return syncDir(dir)
}

// MkdirAllSynced is os.MkdirAll that also syncs the parent of every
// directory it created, so that the new directories survive a crash.
func MkdirAllSynced(dir string, mode os.FileMode) error {
	dir = filepath.Clean(dir)
	var created []string
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil || filepath.Dir(d) == d {
			break
		}
		created = append(created, d)
	}
	if err := os.MkdirAll(dir, mode); err != nil {
		return err
	}
	for _, d := range created {
		if err := syncDir(filepath.Dir(d)); err != nil {
			return err
		}
	}
	return nil
}

// syncDir fsyncs a directory (a variable so tests can see that it happens).
var syncDir = func(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer func() { _ = d.Close() }()
	return d.Sync()
}

// FromTLSSecret builds an authority from the data of a kubernetes.io/tls
// Secret: tls.key, tls.crt (the CA certificate, then its issuers) and an
// optional ca.crt (the root, often repeating the end of tls.crt).
func FromTLSSecret(name string, data map[string][]byte) (*Authority, error) {
	if len(data["tls.crt"]) == 0 || len(data["tls.key"]) == 0 {
		return nil, errors.New("needs tls.crt and tls.key")
	}
	chain := append(append([]byte{}, data["tls.crt"]...), data["ca.crt"]...)
	a, err := FromPEM(name, data["tls.key"], dedupePEM(chain))
	if err != nil {
		return nil, err
	}
	if len(data[PreviousCertKey]) > 0 && len(data[PreviousKeyKey]) > 0 {
		if a.Previous, err = FromPEM(name, data[PreviousKeyKey], data[PreviousCertKey]); err != nil {
			return nil, fmt.Errorf("previous CA key: %w", err)
		}
	}
	return a, nil
}

// Keys of a CA Secret holding the certificate chain and key the CA had
// before its last key rotation.
const (
	PreviousCertKey = "previous.crt"
	PreviousKeyKey  = "previous.key"
)

// dedupePEM drops repeated certificates.
func dedupePEM(in []byte) []byte {
	var out []byte
	seen := map[string]bool{}
	for {
		var b *pem.Block
		b, in = pem.Decode(in)
		if b == nil {
			return out
		}
		if !seen[string(b.Bytes)] {
			seen[string(b.Bytes)] = true
			out = append(out, pem.EncodeToMemory(b)...)
		}
	}
}
