package va

import (
	"context"
	"errors"
	"strings"

	"github.com/kacme/kacme/acmeserver/acme"
	"github.com/kacme/kacme/api/v1alpha1"
)

// validateDNS01 looks up TXT _acme-challenge.{name} (RFC 8555 §8.4), or for
// dns-account-01 TXT _{account label}._acme-challenge.{name}
// (acme.DNSAccount01Name); CNAMEs are followed by the resolver. Any matching
// record validates.
func (v *VA) validateDNS01(ctx context.Context, res Resolver, req Request) Result {
	if req.Identifier.Type != acme.IdentifierDNS {
		return Result{Problem: acme.MalformedProblem("%s applies only to dns identifiers", req.Type)}
	}
	name := "_acme-challenge." + strings.TrimPrefix(req.Identifier.Value, "*.")
	if req.Type == v1alpha1.ChallengeDNSAccount01 {
		if req.AccountURI == "" {
			return Result{Problem: acme.InternalProblem(nil, "dns-account-01 needs the account URL")}
		}
		name = acme.DNSAccount01Name(req.AccountURI, strings.TrimPrefix(req.Identifier.Value, "*."))
	}
	rec := v1alpha1.ValidationRecord{Hostname: req.Identifier.Value, Query: "TXT " + name}
	if r, ok := res.(*DNSResolver); ok && len(r.servers) > 0 {
		rec.Resolver = strings.Join(r.servers, ",")
	}
	txts, err := res.LookupTXT(ctx, name)
	if err != nil {
		if errors.Is(err, ErrNoRecords) {
			return Result{Records: []v1alpha1.ValidationRecord{rec},
				Problem: acme.ValidationProblem(acme.IncorrectResponse, "no TXT record found at %s", name)}
		}
		return Result{Records: []v1alpha1.ValidationRecord{rec}, Problem: dnsProblem(err, name)}
	}
	want := acme.DNS01Value(req.KeyAuthorization)
	for _, t := range txts {
		if t == want {
			return Result{Records: []v1alpha1.ValidationRecord{rec}}
		}
	}
	return Result{Records: []v1alpha1.ValidationRecord{rec}, Problem: acme.ValidationProblem(acme.IncorrectResponse,
		"no TXT record at %s matches the key authorization digest (%d records found)", name, len(txts))}
}
