package ra

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strings"

	"github.com/kacme/kacme/acmeserver/acme"
	"github.com/kacme/kacme/acmeserver/profile"
	"github.com/kacme/kacme/api/v1alpha1"
)

// CheckedCSR is a CSR that passed every finalize check.
type CheckedCSR struct {
	PublicKey crypto.PublicKey
	DNSNames  []string
	IPs       []net.IP
}

// ParseCSR decodes and checks a CSR against an order (RFC 8555 §7.4, §11.1):
// signature, signature algorithm, key policy, key ≠ account key, identifier
// set equal to the order's, no SAN types beyond dNSName and iPAddress.
func ParseCSR(der []byte, p *profile.Profile, o *v1alpha1.AcmeOrder, accountKey crypto.PublicKey) (*CheckedCSR, *acme.Problem) {
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, acme.BadCSRProblem("CSR cannot be parsed: %v", err)
	}
	switch csr.SignatureAlgorithm {
	case x509.SHA256WithRSA, x509.SHA384WithRSA, x509.SHA512WithRSA,
		x509.SHA256WithRSAPSS, x509.SHA384WithRSAPSS, x509.SHA512WithRSAPSS,
		x509.ECDSAWithSHA256, x509.ECDSAWithSHA384, x509.ECDSAWithSHA512, x509.PureEd25519:
	default:
		return nil, acme.BadCSRProblem("CSR signature algorithm %s is not accepted", csr.SignatureAlgorithm)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, acme.BadCSRProblem("CSR signature is invalid")
	}
	if pr := checkCSRKey(csr.PublicKey, p); pr != nil {
		return nil, pr
	}
	if eq, ok := csr.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); ok && eq.Equal(accountKey) {
		return nil, acme.BadCSRProblem("the CSR key must not be the account key")
	}
	if len(csr.EmailAddresses)+len(csr.URIs) > 0 {
		return nil, acme.BadCSRProblem("CSR may only request dNSName and iPAddress subject alternative names")
	}
	names := map[string]bool{}
	for _, n := range csr.DNSNames {
		names["dns:"+strings.ToLower(n)] = true
	}
	for _, ip := range csr.IPAddresses {
		a, _ := netip.AddrFromSlice(ip)
		names["ip:"+a.Unmap().String()] = true
	}
	if cn := strings.ToLower(csr.Subject.CommonName); cn != "" {
		if a, err := netip.ParseAddr(cn); err == nil {
			if !names["ip:"+a.Unmap().String()] {
				return nil, acme.BadCSRProblem("CSR common name %q is not among its subject alternative names", acme.Clip(cn))
			}
		} else {
			names["dns:"+cn] = true // RFC 8555 §7.4: a name may appear in the CN only
		}
	}
	want := map[string]bool{}
	for _, id := range o.Spec.Identifiers {
		want[id.Type+":"+id.Value] = true
	}
	var missing, extra []string
	for n := range want {
		if !names[n] {
			missing = append(missing, strings.SplitN(n, ":", 2)[1])
		}
	}
	for n := range names {
		if !want[n] {
			extra = append(extra, strings.SplitN(n, ":", 2)[1])
		}
	}
	if len(missing)+len(extra) > 0 {
		return nil, acme.BadCSRProblem("CSR identifiers differ from the order's: missing %v, not in order %v", clipList(missing), clipList(extra))
	}
	out := &CheckedCSR{PublicKey: csr.PublicKey}
	for _, id := range o.Spec.Identifiers {
		if id.Type == acme.IdentifierIP {
			out.IPs = append(out.IPs, net.IP(netip.MustParseAddr(id.Value).AsSlice()))
		} else {
			out.DNSNames = append(out.DNSNames, id.Value)
		}
	}
	return out, nil
}

func checkCSRKey(pub crypto.PublicKey, p *profile.Profile) *acme.Problem {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if n := k.N.BitLen(); n < p.MinRSABits || n > 8192 {
			return acme.BadCSRProblem("RSA key of %d bits is not accepted (%d–8192)", n, p.MinRSABits)
		}
	case *ecdsa.PublicKey:
		switch {
		case k.Curve == elliptic.P256():
		case k.Curve == elliptic.P384() && !p.Spec.Keys.DisallowP384:
		default:
			return acme.BadCSRProblem("ECDSA curve %s is not accepted", k.Curve.Params().Name)
		}
	case ed25519.PublicKey:
		if !p.Spec.Keys.AllowEd25519 {
			return acme.BadCSRProblem("Ed25519 keys are not accepted by this profile")
		}
	default:
		return acme.BadCSRProblem("key type %T is not accepted", pub)
	}
	return nil
}

// clipList sorts names and bounds how many, and how much of each, a problem repeats.
func clipList(names []string) []string {
	sort.Strings(names)
	out := make([]string, 0, min(len(names), 6))
	for i, n := range names {
		if i == 5 {
			out = append(out, fmt.Sprintf("(and %d more)", len(names)-5))
			break
		}
		out = append(out, acme.Clip(n))
	}
	return out
}
