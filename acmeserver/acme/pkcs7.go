package acme

import (
	"encoding/asn1"
	"errors"
)

// CertsOnlyPKCS7 encodes certificates (DER) as a degenerate PKCS #7
// SignedData without content or signers (RFC 2315 §9.1, the "certs-only"
// message of RFC 8551 §3.2.2): what RFC 8555 §7.4.2 serves as
// application/pkcs7-mime and what `openssl pkcs7 -print_certs` and Windows
// read. Go's standard library and go-jose have no PKCS #7; it is a handful
// of fixed ASN.1 structures around the certificates.
func CertsOnlyPKCS7(ders [][]byte) ([]byte, error) {
	if len(ders) == 0 {
		return nil, errors.New("pkcs7: no certificates")
	}
	var certs []byte
	for _, d := range ders {
		var raw asn1.RawValue
		if rest, err := asn1.Unmarshal(d, &raw); err != nil || len(rest) > 0 || raw.Tag != asn1.TagSequence {
			return nil, errors.New("pkcs7: a certificate is not one DER SEQUENCE")
		}
		certs = append(certs, d...)
	}
	type contentInfo struct {
		ContentType asn1.ObjectIdentifier
	}
	type signedData struct {
		Version          int
		DigestAlgorithms asn1.RawValue // SET OF, empty
		ContentInfo      contentInfo   // data, no content
		Certificates     asn1.RawValue // [0] IMPLICIT SET OF Certificate
		SignerInfos      asn1.RawValue // SET OF, empty
	}
	emptySet := asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSet, IsCompound: true, Bytes: []byte{}}
	sd, err := asn1.Marshal(signedData{
		Version:          1,
		DigestAlgorithms: emptySet,
		ContentInfo:      contentInfo{ContentType: oidData},
		Certificates:     asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: certs},
		SignerInfos:      emptySet,
	})
	if err != nil {
		return nil, err
	}
	// ContentInfo: content is [0] EXPLICIT (a RawValue ignores the
	// explicit tag option, so the wrapper is written out).
	return asn1.Marshal(struct {
		ContentType asn1.ObjectIdentifier
		Content     asn1.RawValue
	}{oidSignedData, asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: sd}})
}

var (
	oidData       = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
	oidSignedData = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}
)
