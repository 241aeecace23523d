package standalone

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/kacme/kacme/api/v1alpha1"
)

// Manifests are the objects read from --config-dir: the same YAML a cluster
// would get with kubectl apply.
type Manifests struct {
	Authorities []v1alpha1.CertificateAuthority
	Profiles    []v1alpha1.AcmeProfile
	Accounts    []v1alpha1.AcmeAccount
	Secrets     SecretMap
}

// SecretMap holds Secret data by name and key; it is the standalone ra.SecretReader.
type SecretMap map[string]map[string][]byte

// EABKey implements ra.SecretReader: the key the account's manifest names.
func (s SecretMap) EABKey(ctx context.Context, a *v1alpha1.AcmeAccount) ([]byte, error) {
	ref := a.Spec.ExternalAccountBinding
	if ref == nil {
		return nil, fmt.Errorf("account %s has no external account binding", a.Name)
	}
	return s.SecretValue(ctx, ref.SecretName, ref.DataKey())
}

// SecretValue returns a value of a Secret defined in the config directory.
func (s SecretMap) SecretValue(_ context.Context, name, key string) ([]byte, error) {
	data, ok := s[name]
	if !ok {
		return nil, fmt.Errorf("secret %q is not defined in the config directory", name)
	}
	v, ok := data[key]
	if !ok {
		return nil, fmt.Errorf("secret %q has no key %q", name, key)
	}
	return v, nil
}

type typeMeta struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
}

type secretManifest struct {
	Metadata struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Data       map[string]string `json:"data"`
	StringData map[string]string `json:"stringData"`
}

var docSep = regexp.MustCompile(`(?m)^---\s*$`)

// LoadDir reads every *.yaml, *.yml and *.json file in dir (not recursive).
// Unknown kinds are an error, so a typo does not silently drop configuration.
func LoadDir(dir string) (*Manifests, error) {
	m := &Manifests{Secrets: SecretMap{}}
	if dir == "" {
		return m, nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("config dir: %w", err)
	}
	var files []string
	for _, e := range entries {
		ext := strings.ToLower(filepath.Ext(e.Name()))
		if !e.IsDir() && (ext == ".yaml" || ext == ".yml" || ext == ".json") {
			files = append(files, filepath.Join(dir, e.Name()))
		}
	}
	sort.Strings(files)
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		for i, doc := range docSep.Split(string(data), -1) {
			if strings.TrimSpace(stripComments(doc)) == "" {
				continue
			}
			if err := m.add([]byte(doc)); err != nil {
				return nil, fmt.Errorf("%s (document %d): %w", f, i+1, err)
			}
		}
	}
	return m, nil
}

func stripComments(doc string) string {
	var b strings.Builder
	for _, l := range strings.Split(doc, "\n") {
		if t := strings.TrimSpace(l); t != "" && !strings.HasPrefix(t, "#") {
			b.WriteString(l)
			b.WriteByte('\n')
		}
	}
	return b.String()
}

func (m *Manifests) add(doc []byte) error {
	var tm typeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return err
	}
	strict := func(v any) error { return yaml.UnmarshalStrict(doc, v) }
	switch {
	case tm.APIVersion == v1alpha1.GroupVersion.String() && tm.Kind == "CertificateAuthority":
		var o v1alpha1.CertificateAuthority
		if err := strict(&o); err != nil {
			return err
		}
		m.Authorities = append(m.Authorities, o)
	case tm.APIVersion == v1alpha1.GroupVersion.String() && tm.Kind == "AcmeProfile":
		var o v1alpha1.AcmeProfile
		if err := strict(&o); err != nil {
			return err
		}
		m.Profiles = append(m.Profiles, o)
	case tm.APIVersion == v1alpha1.GroupVersion.String() && tm.Kind == "AcmeAccount":
		var o v1alpha1.AcmeAccount
		if err := strict(&o); err != nil {
			return err
		}
		if o.Spec.ExternalAccountBinding == nil {
			return fmt.Errorf("AcmeAccount %s: only pre-provisioned accounts with spec.externalAccountBinding can be declared", o.Name)
		}
		m.Accounts = append(m.Accounts, o)
	case tm.APIVersion == "v1" && tm.Kind == "Secret":
		var s secretManifest
		if err := yaml.Unmarshal(doc, &s); err != nil {
			return err
		}
		data := map[string][]byte{}
		for k, v := range s.Data {
			b, err := base64.StdEncoding.DecodeString(v)
			if err != nil {
				return fmt.Errorf("secret %s: data.%s is not base64: %w", s.Metadata.Name, k, err)
			}
			data[k] = b
		}
		for k, v := range s.StringData {
			data[k] = []byte(v)
		}
		m.Secrets[s.Metadata.Name] = data
	case tm.APIVersion == v1alpha1.GroupVersion.String() && tm.Kind == "KubernetesSigner":
		return errors.New("KubernetesSigner: a Kubernetes signer works in cluster mode only (kubelets and CertificateSigningRequests ask for its certificates); remove it from the standalone configuration")
	default:
		return fmt.Errorf("unsupported kind %s/%s", tm.APIVersion, tm.Kind)
	}
	return nil
}

// Names must be valid object names: they appear in paths and file names.
var nameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

func checkName(kind, name string) error {
	if !nameRE.MatchString(name) || len(name) > 63 {
		return fmt.Errorf("%s name %q must be a lowercase DNS label", kind, name)
	}
	return nil
}

// builtinManifests is the configuration used when --config-dir has no
// profile: one generated ECDSA P-256 CA and one open profile whose http-01
// port is 5002 so certbot and lego can answer without root.
const builtinManifests = `
apiVersion: acme.kacme.io/v1alpha1
kind: CertificateAuthority
metadata:
  name: default
spec:
  selfSigned:
    subject: {commonName: kacme standalone CA}
    keyAlgorithm: ECDSAP256
---
apiVersion: acme.kacme.io/v1alpha1
kind: AcmeProfile
metadata:
  name: default
spec:
  certificateAuthority: default
  description: kacme standalone default profile
  identifiers:
    allowedCIDRs: ["127.0.0.0/8", "::1/128"]
  validation:
    http01Port: 5002
    tlsALPN01Port: 5001
  keys:
    allowEd25519: true
  issuanceProfiles:
  - name: default
    description: Server certificates valid for 90 days
  - name: shortlived
    description: Server certificates valid for 7 days
    certificateLifetime: 168h
  - name: mtls
    description: Server and client certificates valid for 30 days
    certificateLifetime: 720h
    clientAuth: true
`

func builtin() (*Manifests, error) {
	m := &Manifests{Secrets: SecretMap{}}
	for _, doc := range docSep.Split(builtinManifests, -1) {
		if len(bytes.TrimSpace([]byte(doc))) == 0 {
			continue
		}
		if err := m.add([]byte(doc)); err != nil {
			return nil, err
		}
	}
	return m, nil
}
