package acme

import (
	"net/netip"
	"strings"
	"unicode"

	"golang.org/x/net/idna"
)

// NormalizeIdentifier checks an identifier's syntax and returns it in
// certificate form. dns values are lowercased (pinned: IDN-01), ip values are
// canonicalised (pinned: IDN-06). Syntax errors are rejectedIdentifier with
// the identifier attached so callers can build subproblems (RFC 8555 §6.7.1).
func NormalizeIdentifier(id Identifier) (Identifier, *Problem) {
	switch id.Type {
	case IdentifierDNS:
		v := strings.ToLower(id.Value)
		if err := checkDNSName(v); err != "" {
			return id, identifierProblem(Malformed, id, "invalid dns identifier %q: %s", Clip(id.Value), err)
		}
		return Identifier{Type: IdentifierDNS, Value: v}, nil
	case IdentifierIP:
		a, err := netip.ParseAddr(id.Value)
		if err != nil || a.Zone() != "" {
			return id, identifierProblem(Malformed, id, "invalid ip identifier %q", Clip(id.Value))
		}
		return Identifier{Type: IdentifierIP, Value: a.Unmap().String()}, nil
	case "":
		return id, identifierProblem(Malformed, id, "identifier type is missing")
	default:
		return id, identifierProblem(UnsupportedIdentifier, id, "identifier type %q is not supported (dns, ip)", Clip(id.Type))
	}
}

func identifierProblem(t ProblemType, id Identifier, format string, args ...any) *Problem {
	p := newProblem(t, 400, format, args...)
	idc := Identifier{Type: Clip(id.Type), Value: id.Value}
	if len(idc.Value) > 255 { // longer than any valid identifier: not repeated whole
		idc.Value = Clip(idc.Value)
	}
	p.Identifier = &idc
	return p
}

// checkDNSName returns why v is not a valid certificate-form name, or "".
func checkDNSName(v string) string {
	if v == "" {
		return "empty"
	}
	if len(v) > 253 {
		return "longer than 253 octets"
	}
	if strings.HasSuffix(v, ".") {
		return "trailing dot"
	}
	if _, err := netip.ParseAddr(v); err != nil && strings.Contains(v, ":") {
		return "not a host name"
	} else if err == nil {
		return "an IP address must use the ip identifier type"
	}
	labels := strings.Split(v, ".")
	for i, l := range labels {
		if l == "*" {
			if i != 0 {
				return "wildcard only allowed as the leftmost label"
			}
			if len(labels) < 3 {
				return "wildcard needs at least two labels after it"
			}
			continue
		}
		if l == "" {
			return "empty label"
		}
		if len(l) > 63 {
			return "label longer than 63 octets"
		}
		for j := 0; j < len(l); j++ {
			c := l[j]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return "invalid character (names must be ASCII A-labels)"
			}
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return "label starts or ends with a hyphen"
		}
		if strings.HasPrefix(l, "xn--") {
			// Valid IDNA: decodes, round-trips, and decodes to something non-ASCII.
			u, err := idna.Registration.ToUnicode(l)
			back, err2 := idna.Registration.ToASCII(u)
			if err != nil || err2 != nil || back != l || u == l || isASCII(u) || !idnaLetters(u) {
				return "invalid punycode label"
			}
		} else if len(l) >= 4 && l[2:4] == "--" {
			return "reserved label (hyphens in positions 3 and 4)"
		}
	}
	if _, err := netip.ParseAddr(labels[len(labels)-1]); err == nil || isAllDigits(labels[len(labels)-1]) {
		return "the last label is numeric"
	}
	return ""
}

func isAllDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// ReverseName is the RFC 8738 §6 reverse-DNS name of an address, used as SNI.
func ReverseName(a netip.Addr) string {
	const hexd = "0123456789abcdef"
	if a.Is4() {
		b := a.As4()
		return strings.Join([]string{itoa(b[3]), itoa(b[2]), itoa(b[1]), itoa(b[0])}, ".") + ".in-addr.arpa"
	}
	b := a.As16()
	var sb strings.Builder
	for i := 15; i >= 0; i-- {
		sb.WriteByte(hexd[b[i]&0xf])
		sb.WriteByte('.')
		sb.WriteByte(hexd[b[i]>>4])
		sb.WriteByte('.')
	}
	sb.WriteString("ip6.arpa")
	return sb.String()
}

func itoa(b byte) string {
	if b < 10 {
		return string('0' + b)
	}
	if b < 100 {
		return string([]byte{'0' + b/10, '0' + b%10})
	}
	return string([]byte{'0' + b/100, '0' + b/10%10, '0' + b%10})
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// idnaLetters approximates IDNA2008 PVALID: letters, marks, digits and
// hyphens; symbols and punctuation (DISALLOWED) fail.
func idnaLetters(s string) bool {
	for _, r := range s {
		if !(unicode.IsLetter(r) || unicode.IsMark(r) || unicode.IsDigit(r) || r == '-') {
			return false
		}
	}
	return true
}
