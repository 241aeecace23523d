package profile_test

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kacme/kacme/acmeserver/ca"
	"github.com/kacme/kacme/acmeserver/profile"
	"github.com/kacme/kacme/api/v1alpha1"
)

// TestCheckCAAConfig: validation.checkCAA needs caaIdentities that are
// domain names, and hands them to the validator.
func TestCheckCAAConfig(t *testing.T) {
	key, chain, err := ca.GenerateSelfSigned("root", v1alpha1.SelfSignedCA{})
	if err != nil {
		t.Fatal(err)
	}
	auth, err := ca.New("root", chain[0], key, chain[1:])
	if err != nil {
		t.Fatal(err)
	}
	mk := func(name string, ids ...string) v1alpha1.AcmeProfile {
		return v1alpha1.AcmeProfile{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1alpha1.AcmeProfileSpec{CertificateAuthority: "root",
			CAAIdentities: ids, Validation: v1alpha1.ValidationSpec{CheckCAA: true}}}
	}
	cfg, errs := profile.NewConfig(map[string]*ca.Authority{"root": auth},
		[]v1alpha1.AcmeProfile{mk("none"), mk("bad", "kacme.test; accounturi=x"), mk("good", "kacme.test")})
	if err := errs["none"]; err == nil || !strings.Contains(err.Error(), "spec.validation.checkCAA needs spec.caaIdentities") {
		t.Errorf("checkCAA without caaIdentities: %v", err)
	}
	if err := errs["bad"]; err == nil || !strings.Contains(err.Error(), "spec.caaIdentities[0]") {
		t.Errorf("a caaIdentity that is not a domain name: %v", err)
	}
	p, ok := cfg.Profiles["good"]
	if !ok || len(p.Validation.CAAIdentities) != 1 || p.Validation.CAAIdentities[0] != "kacme.test" {
		t.Fatalf("good profile: %v %+v", ok, p)
	}
	// CAA-09: with checkCAA an authorization (and its CAA answer) is reused
	// for 8h at most; without, for as long as configured.
	reuse := func(name string, checkCAA bool) v1alpha1.AcmeProfile {
		x := mk(name, "kacme.test")
		x.Spec.Validation.CheckCAA = checkCAA
		x.Spec.AuthorizationReuse = &metav1.Duration{Duration: 24 * time.Hour}
		return x
	}
	cfg, errs = profile.NewConfig(map[string]*ca.Authority{"root": auth}, []v1alpha1.AcmeProfile{reuse("caa", true), reuse("nocaa", false)})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if got := cfg.Profiles["caa"].AuthzReuse; got != profile.MaxCAAAge {
		t.Errorf("reuse with checkCAA: %s, want %s", got, profile.MaxCAAAge)
	}
	if got := cfg.Profiles["nocaa"].AuthzReuse; got != 24*time.Hour {
		t.Errorf("reuse without checkCAA: %s, want 24h", got)
	}
}

// TestIncludeOCSPURL: a profile with includeOCSPURL needs a CA with
// spec.ocsp, and its certificates then name the responder (AIA id-ad-ocsp);
// a profile without it leaves the URL out.
func TestIncludeOCSPURL(t *testing.T) {
	key, chain, err := ca.GenerateSelfSigned("root", v1alpha1.SelfSignedCA{})
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := ca.New("plain", chain[0], key, nil)
	plain.ConfigureURLs(nil, nil, "http://pki.test")
	withOCSP, _ := ca.New("ocsp", chain[0], key, nil)
	withOCSP.ConfigureURLs(nil, &v1alpha1.OCSPSpec{}, "http://pki.test")
	mk := func(name, caName string, include bool) v1alpha1.AcmeProfile {
		return v1alpha1.AcmeProfile{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: v1alpha1.AcmeProfileSpec{CertificateAuthority: caName, IncludeOCSPURL: include}}
	}
	cfg, errs := profile.NewConfig(map[string]*ca.Authority{"plain": plain, "ocsp": withOCSP},
		[]v1alpha1.AcmeProfile{mk("bad", "plain", true), mk("good", "ocsp", true)})
	if err := errs["bad"]; err == nil || !strings.Contains(err.Error(), "spec.includeOCSPURL") {
		t.Errorf("includeOCSPURL on a CA without spec.ocsp: %v", err)
	}
	if !cfg.Profiles["good"].Spec.IncludeOCSPURL {
		t.Fatal("profile good not loaded")
	}
	leafKey, _ := ca.GenerateKey(v1alpha1.KeyECDSAP256)
	for _, include := range []bool{true, false} {
		_, leaf, err := withOCSP.Issue(ca.IssueRequest{PublicKey: leafKey.Public(), DNSNames: []string{"a.test"},
			NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), OCSP: include})
		if err != nil {
			t.Fatal(err)
		}
		want := []string(nil)
		if include {
			want = []string{"http://pki.test/ocsp/ocsp"}
		}
		if strings.Join(leaf.OCSPServer, " ") != strings.Join(want, " ") {
			t.Errorf("OCSP %t: AIA OCSP %v, want %v", include, leaf.OCSPServer, want)
		}
	}
}
