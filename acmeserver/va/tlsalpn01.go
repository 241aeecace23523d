package va

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/asn1"
	"net/netip"
	"strconv"
	"strings"

	"github.com/kacme/kacme/acmeserver/acme"
	"github.com/kacme/kacme/api/v1alpha1"
)

// ALPNProto is the acme-tls/1 protocol name (RFC 8737 §6.2).
const ALPNProto = "acme-tls/1"

// IDPeACMEIdentifier is id-pe-acmeIdentifier (RFC 8737 §6.1).
var IDPeACMEIdentifier = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 31}

// validateTLSALPN01 performs RFC 8737 (and RFC 8738 §6 for ip identifiers).
func (v *VA) validateTLSALPN01(ctx context.Context, res Resolver, req Request) Result {
	port := req.Settings.TLSPort
	if port == 0 {
		port = 443
	}
	rec := v1alpha1.ValidationRecord{Hostname: req.Identifier.Value, Port: strconv.Itoa(port)}
	fail := func(p *acme.Problem) Result { return Result{Records: []v1alpha1.ValidationRecord{rec}, Problem: p} }
	if strings.HasPrefix(req.Identifier.Value, "*.") {
		return fail(acme.MalformedProblem("tls-alpn-01 cannot validate wildcards"))
	}
	addrs, p := resolveTarget(ctx, res, req.Identifier, &rec)
	if p != nil {
		return fail(p)
	}
	sni := req.Identifier.Value
	var ip netip.Addr
	if req.Identifier.Type == acme.IdentifierIP {
		ip = addrs[0]
		sni = acme.ReverseName(ip)
	}
	raw, used, err := v.dialFirst(ctx, addrs, port)
	rec.AddressUsed = used
	if err != nil {
		return fail(connectionProblem(err, "connecting to "+req.Identifier.Value))
	}
	defer raw.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = raw.SetDeadline(dl)
	}
	conn := tls.Client(raw, &tls.Config{
		ServerName:         sni,
		NextProtos:         []string{ALPNProto},
		InsecureSkipVerify: true, //nolint:gosec // RFC 8737 §3: the certificate is checked by hand below
		MinVersion:         tls.VersionTLS12,
	})
	if err := conn.HandshakeContext(ctx); err != nil {
		return fail(acme.ValidationProblem(acme.TLS, "TLS handshake with %s: %s", req.Identifier.Value, sanitize(err)))
	}
	defer conn.Close() // RFC 8737 §4: no application data
	cs := conn.ConnectionState()
	if cs.NegotiatedProtocol != ALPNProto {
		return fail(acme.ValidationProblem(acme.TLS, "server did not negotiate %s", ALPNProto))
	}
	if len(cs.PeerCertificates) == 0 {
		return fail(acme.ValidationProblem(acme.TLS, "no certificate presented"))
	}
	leaf := cs.PeerCertificates[0]
	if req.Identifier.Type == acme.IdentifierIP {
		if len(leaf.DNSNames) != 0 || len(leaf.IPAddresses) != 1 || len(leaf.EmailAddresses)+len(leaf.URIs) != 0 {
			return fail(acme.ValidationProblem(acme.IncorrectResponse, "certificate must have exactly one iPAddress SAN"))
		}
		if a, ok := netip.AddrFromSlice(leaf.IPAddresses[0]); !ok || a.Unmap() != ip.Unmap() {
			return fail(acme.ValidationProblem(acme.IncorrectResponse, "certificate iPAddress SAN does not match %s", ip))
		}
	} else {
		if len(leaf.DNSNames) != 1 || len(leaf.IPAddresses)+len(leaf.EmailAddresses)+len(leaf.URIs) != 0 {
			return fail(acme.ValidationProblem(acme.IncorrectResponse, "certificate must have exactly one dNSName SAN"))
		}
		if !strings.EqualFold(leaf.DNSNames[0], req.Identifier.Value) {
			// The name the target presented is not quoted: what a validation target answers is never echoed.
			return fail(acme.ValidationProblem(acme.IncorrectResponse, "the certificate's dNSName is not %s", req.Identifier.Value))
		}
	}
	sum := sha256.Sum256([]byte(req.KeyAuthorization))
	want, _ := asn1.Marshal(sum[:])
	for _, ext := range leaf.Extensions {
		if !ext.Id.Equal(IDPeACMEIdentifier) {
			continue
		}
		if !ext.Critical {
			return fail(acme.ValidationProblem(acme.IncorrectResponse, "acmeIdentifier extension must be critical"))
		}
		if !bytes.Equal(ext.Value, want) {
			return fail(acme.ValidationProblem(acme.IncorrectResponse, "acmeIdentifier extension does not match the key authorization"))
		}
		return Result{Records: []v1alpha1.ValidationRecord{rec}}
	}
	return fail(acme.ValidationProblem(acme.IncorrectResponse, "certificate has no acmeIdentifier extension"))
}
