package acmeaccount

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kacme/kacme/api/v1alpha1"
)

// A counted object's cached copy keeps namespace, name, resource version
// and the account label, shares the label map with the account's other
// objects, and passes anything else to the next transform.
func TestSlimMetadata(t *testing.T) {
	nextCalled := false
	tr := SlimMetadata(func(in any) (any, error) { nextCalled = true; return in, nil })
	mk := func(name string) *metav1.PartialObjectMetadata {
		m := metaOf("AcmeOrder")
		m.Name, m.Namespace, m.ResourceVersion, m.UID = name, "team-a", "42", types.UID("uid-"+name)
		m.Labels = map[string]string{v1alpha1.LabelAccount: "acct1", v1alpha1.LabelProfile: "default", "other": "x"}
		m.Annotations = map[string]string{"a": "b"}
		m.OwnerReferences = []metav1.OwnerReference{{Name: "acct1", Kind: "AcmeAccount"}}
		m.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "kacme"}}
		return m
	}
	a, err := tr(mk("o1"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := tr(mk("o2"))
	sa, sb := a.(*metav1.PartialObjectMetadata), b.(*metav1.PartialObjectMetadata)
	want := metav1.PartialObjectMetadata{TypeMeta: metaOf("AcmeOrder").TypeMeta, ObjectMeta: metav1.ObjectMeta{
		Name: "o1", Namespace: "team-a", ResourceVersion: "42", Labels: map[string]string{v1alpha1.LabelAccount: "acct1"}}}
	if sa.TypeMeta != want.TypeMeta || sa.Name != want.Name || sa.Namespace != want.Namespace || sa.ResourceVersion != want.ResourceVersion ||
		len(sa.Labels) != 1 || sa.Labels[v1alpha1.LabelAccount] != "acct1" || sa.UID != "" || sa.Annotations != nil ||
		sa.OwnerReferences != nil || sa.ManagedFields != nil {
		t.Fatalf("slim copy: %+v", sa)
	}
	sa.Labels["probe"] = "shared"
	if sb.Labels["probe"] != "shared" {
		t.Error("the account's objects do not share one label map")
	}
	delete(sa.Labels, "probe")
	// Without the account label, no labels at all.
	m := mk("o3")
	delete(m.Labels, v1alpha1.LabelAccount)
	c, _ := tr(m)
	if c.(*metav1.PartialObjectMetadata).Labels != nil {
		t.Error("labels kept without an account")
	}
	if nextCalled {
		t.Error("metadata copies went to the next transform")
	}
	acct := &v1alpha1.AcmeAccount{}
	if out, _ := tr(acct); out != acct || !nextCalled {
		t.Error("a typed object did not go to the next transform")
	}
}

// The shared tables stop growing at their limit: later accounts get maps of
// their own (still right), earlier ones keep sharing.
func TestSharedLabelsBounded(t *testing.T) {
	s := newSharedLabels(2)
	a1 := s.of("a1")
	s.of("a2")
	if x := s.of("a3"); x[v1alpha1.LabelAccount] != "a3" || len(s.maps) != 2 {
		t.Fatalf("past the limit: %v, table of %d", x, len(s.maps))
	}
	a1["probe"] = "shared"
	if s.of("a1")["probe"] != "shared" || s.of("a2")["probe"] != "" {
		t.Error("an account within the limit no longer shares its map")
	}
	delete(a1, "probe")
	s.intern("ns1")
	s.intern("ns2")
	if v := s.intern("ns3"); v != "ns3" || len(s.strs) != 2 {
		t.Fatalf("strings past the limit: %q, table of %d", v, len(s.strs))
	}
}
