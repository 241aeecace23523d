// Package profile turns AcmeProfile objects and loaded CAs into the
// configuration the ACME server serves: defaults applied, fields checked
// (errors name the field, for a status condition), the CA resolved. The
// server (ra) and the AcmeProfile controller both build profiles here.
package profile

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/miekg/dns"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kacme/kacme/acmeserver/ca"
	"github.com/kacme/kacme/acmeserver/va"
	"github.com/kacme/kacme/api/v1alpha1"
)

// Profile is an AcmeProfile with defaults applied and its CA resolved.
type Profile struct {
	Name string
	// Path is the directory's URL path segment (spec.directoryPath, default Name).
	Path            string
	Spec            v1alpha1.AcmeProfileSpec
	CA              *ca.Authority
	ChallengeTypes  []v1alpha1.ChallengeType
	Issuance        map[string]v1alpha1.IssuanceProfile
	IssuanceOrder   []string
	DefaultIssuance string
	OrderLifetime   time.Duration
	AuthzLifetime   time.Duration
	// AuthzReuse is how old (since validation) an account's valid
	// authorization may be for a new order to use it (0: no reuse).
	AuthzReuse     time.Duration
	Retention      Retention
	Validation     va.Settings
	AllowedCIDRs   []netip.Prefix
	MaxIdentifiers int
	MinRSABits     int
	// Limits are spec.rateLimits with defaults applied.
	Limits Limits
}

// EABRequired reports whether new accounts need an external account binding.
func (p *Profile) EABRequired() bool {
	return p.Spec.ExternalAccountBinding != nil && p.Spec.ExternalAccountBinding.Required
}

// Offers reports whether the profile offers challenge type t.
func (p *Profile) Offers(t v1alpha1.ChallengeType) bool {
	for _, c := range p.ChallengeTypes {
		if c == t {
			return true
		}
	}
	return false
}

// Lifetime of certificates under issuance profile ip.
func Lifetime(ip v1alpha1.IssuanceProfile) (def, max time.Duration) {
	def = 90 * 24 * time.Hour
	if ip.CertificateLifetime != nil && ip.CertificateLifetime.Duration > 0 {
		def = ip.CertificateLifetime.Duration
	}
	max = def
	if ip.MaxCertificateLifetime != nil && ip.MaxCertificateLifetime.Duration > 0 {
		max = ip.MaxCertificateLifetime.Duration
	}
	return def, max
}

// Config is the set of profiles the server serves.
type Config struct {
	Profiles       map[string]*Profile
	DefaultProfile string
	Authorities    map[string]*ca.Authority
	// NotServed are the profiles that did not load, with why (shown on the dashboard).
	NotServed map[string]error
}

// NewConfig builds the served configuration from loaded CAs and profile
// objects. The default profile is the one named "default", else the first in
// the given order. A profile that does not load is left out and its error is
// returned by name, so a caller can refuse to start (standalone) or serve the
// others while a controller reports the problem (cluster).
func NewConfig(authorities map[string]*ca.Authority, profiles []v1alpha1.AcmeProfile) (*Config, map[string]error) {
	cfg := &Config{Profiles: map[string]*Profile{}, Authorities: authorities}
	errs := map[string]error{}
	for i := range profiles {
		obj := &profiles[i]
		p, err := NewProfile(obj, authorities)
		if err == nil {
			if other, taken := cfg.ByPath(p.Path); taken {
				err = PathConflictError(p.Path, other.Name)
			}
		}
		if err != nil {
			errs[obj.Name] = err
			continue
		}
		cfg.Profiles[p.Name] = p
		if cfg.DefaultProfile == "" || p.Name == "default" {
			cfg.DefaultProfile = p.Name
		}
	}
	cfg.NotServed = errs
	return cfg, errs
}

// DefaultRetention is how long expired orders, and expired certificates,
// are kept by default.
const DefaultRetention = 30 * 24 * time.Hour

// Retention is how long finished objects are kept after they expire.
type Retention struct {
	Orders       time.Duration // orders and their authorizations
	Certificates time.Duration
}

// RetentionOf is a profile's spec.retention and spec.certificateRetention.
func RetentionOf(p *v1alpha1.AcmeProfile) Retention {
	return Retention{Orders: durationOr(p.Spec.Retention, DefaultRetention),
		Certificates: durationOr(p.Spec.CertificateRetention, DefaultRetention)}
}

// ByPath finds the profile serving the directory path (profiles are few).
func (c *Config) ByPath(path string) (*Profile, bool) {
	for _, p := range c.Profiles {
		if p.Path == path {
			return p, true
		}
	}
	return nil, false
}

// PathConflictError is the error of a profile whose directory path another profile serves.
func PathConflictError(path, other string) error {
	return fmt.Errorf("spec.directoryPath: %q is already served by AcmeProfile %q", path, other)
}

func durationOr(d *metav1.Duration, def time.Duration) time.Duration {
	if d != nil && d.Duration > 0 {
		return d.Duration
	}
	return def
}

// MaxCAAAge is how old a CAA check may be when the authorization it was
// made for is reused (CA/Browser Forum BR §3.2.2.8: 8 hours).
const MaxCAAAge = 8 * time.Hour

// validationOf checks spec.validation (and the caaIdentities its checkCAA
// needs) and returns the challenge types offered and the validator's
// settings.
func validationOf(s v1alpha1.AcmeProfileSpec) ([]v1alpha1.ChallengeType, va.Settings, error) {
	types := s.Validation.ChallengeTypes
	if len(types) == 0 {
		types = []v1alpha1.ChallengeType{v1alpha1.ChallengeHTTP01, v1alpha1.ChallengeDNS01, v1alpha1.ChallengeTLSALPN01}
	}
	for _, t := range types {
		switch t {
		case v1alpha1.ChallengeHTTP01, v1alpha1.ChallengeDNS01, v1alpha1.ChallengeTLSALPN01, v1alpha1.ChallengeDNSAccount01:
		default:
			return nil, va.Settings{}, fmt.Errorf("spec.validation.challengeTypes: unknown type %q", t)
		}
	}
	set := va.Settings{
		HTTPPort: s.Validation.HTTP01Port, TLSPort: s.Validation.TLSALPN01Port,
		Resolvers: s.Validation.Resolvers, Timeout: durationOr(s.Validation.Timeout, 10*time.Second),
		ServiceRoutes: s.Validation.ServiceRoutes,
	}
	for i, r := range s.Validation.Resolvers {
		if _, err := netip.ParseAddrPort(r); err != nil {
			return nil, va.Settings{}, fmt.Errorf("spec.validation.resolvers[%d]: %q is not ip:port", i, r)
		}
	}
	if s.Validation.CheckCAA {
		if len(s.CAAIdentities) == 0 {
			return nil, va.Settings{}, fmt.Errorf("spec.validation.checkCAA needs spec.caaIdentities: the issuer-domain-names CAA records name this CA by")
		}
		for i, id := range s.CAAIdentities {
			if _, ok := dns.IsDomainName(id); !ok || strings.ContainsAny(id, " ;=") {
				return nil, va.Settings{}, fmt.Errorf("spec.caaIdentities[%d]: %q is not a domain name", i, id)
			}
		}
		set.CAAIdentities = s.CAAIdentities
	}
	return types, set, nil
}

// NewProfile validates an AcmeProfile and applies defaults. Errors name the
// field so they can become a status condition and an Event in cluster mode.
func NewProfile(obj *v1alpha1.AcmeProfile, authorities map[string]*ca.Authority) (*Profile, error) {
	s := obj.Spec
	auth, ok := authorities[s.CertificateAuthority]
	if !ok {
		return nil, fmt.Errorf("spec.certificateAuthority: CertificateAuthority %q is not loaded", s.CertificateAuthority)
	}
	p := &Profile{
		Name: obj.Name, Path: obj.Path(), Spec: s, CA: auth, Issuance: map[string]v1alpha1.IssuanceProfile{},
		OrderLifetime:  durationOr(s.OrderLifetime, 24*time.Hour),
		AuthzLifetime:  durationOr(s.AuthorizationLifetime, 24*time.Hour),
		Retention:      RetentionOf(obj),
		MaxIdentifiers: s.Identifiers.MaxIdentifiers,
		MinRSABits:     s.Keys.MinRSABits,
		Limits:         LimitsOf(s.RateLimits),
	}
	if p.MaxIdentifiers == 0 {
		p.MaxIdentifiers = 100
	}
	if p.MinRSABits == 0 {
		p.MinRSABits = 2048
	}
	var err error
	if p.ChallengeTypes, p.Validation, err = validationOf(s); err != nil {
		return nil, err
	}
	if s.IncludeOCSPURL && auth.OCSP == nil {
		return nil, fmt.Errorf("spec.includeOCSPURL: CertificateAuthority %q runs no OCSP responder (set its spec.ocsp)", s.CertificateAuthority)
	}
	if r := s.AuthorizationReuse; r != nil {
		if r.Duration < 0 {
			return nil, fmt.Errorf("spec.authorizationReuse: %s is negative", r.Duration)
		}
		p.AuthzReuse = r.Duration
	}
	if len(p.Validation.CAAIdentities) > 0 && p.AuthzReuse > MaxCAAAge {
		p.AuthzReuse = MaxCAAAge
	}
	for i, c := range s.Identifiers.AllowedCIDRs {
		pfx, err := netip.ParsePrefix(c)
		if err != nil {
			return nil, fmt.Errorf("spec.identifiers.allowedCIDRs[%d]: %v", i, err)
		}
		p.AllowedCIDRs = append(p.AllowedCIDRs, pfx.Masked())
	}
	for i := range p.Spec.Identifiers.AllowedDNSSuffixes {
		p.Spec.Identifiers.AllowedDNSSuffixes[i] = strings.Trim(strings.ToLower(p.Spec.Identifiers.AllowedDNSSuffixes[i]), ".")
	}
	ips := s.IssuanceProfiles
	if len(ips) == 0 {
		ips = []v1alpha1.IssuanceProfile{{Name: "default", Description: "Server certificates with the default lifetime"}}
	}
	for i, ip := range ips {
		if ip.Name == "" {
			return nil, fmt.Errorf("spec.issuanceProfiles[%d].name is required", i)
		}
		if _, dup := p.Issuance[ip.Name]; dup {
			return nil, fmt.Errorf("spec.issuanceProfiles[%d]: duplicate name %q", i, ip.Name)
		}
		if def, max := Lifetime(ip); max < def {
			return nil, fmt.Errorf("spec.issuanceProfiles[%d]: maxCertificateLifetime is shorter than certificateLifetime", i)
		}
		p.Issuance[ip.Name] = ip
		p.IssuanceOrder = append(p.IssuanceOrder, ip.Name)
	}
	p.DefaultIssuance = s.DefaultIssuanceProfile
	if p.DefaultIssuance == "" {
		p.DefaultIssuance = p.IssuanceOrder[0]
	} else if _, ok := p.Issuance[p.DefaultIssuance]; !ok {
		return nil, fmt.Errorf("spec.defaultIssuanceProfile: %q is not among spec.issuanceProfiles", p.DefaultIssuance)
	}
	return p, nil
}

// Limits are a profile's rate limits with the defaults applied; 0 is off.
type Limits struct {
	NewAccountsPerIP                int
	NewOrdersPerAccount             int
	PendingAuthorizationsPerAccount int
	FailedValidationsPerAccount     int
}

// LimitsOf applies the defaults to spec.rateLimits.
func LimitsOf(s v1alpha1.RateLimitSpec) Limits {
	or := func(v *int32, def int) int {
		if v == nil {
			return def
		}
		return int(*v)
	}
	return Limits{
		NewAccountsPerIP:                or(s.NewAccountsPerIP, v1alpha1.DefaultNewAccountsPerIP),
		NewOrdersPerAccount:             or(s.NewOrdersPerAccount, v1alpha1.DefaultNewOrdersPerAccount),
		PendingAuthorizationsPerAccount: or(s.PendingAuthorizationsPerAccount, v1alpha1.DefaultPendingAuthorizationsPerAccount),
		FailedValidationsPerAccount:     or(s.FailedValidationsPerAccount, 0),
	}
}
