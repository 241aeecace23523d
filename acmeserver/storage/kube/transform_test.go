package kube_test

import (
	"testing"

	"github.com/kacme/kacme/acmeserver/storage/kube"
	"github.com/kacme/kacme/api/v1alpha1"
)

// TestWithoutDerivedData: the cache drops status.offered of valid orders
// only; a pending or invalid order's authorizations are still derived from it.
func TestWithoutDerivedData(t *testing.T) {
	tr := kube.WithoutDerivedData(func(in any) (any, error) { return in, nil })
	for status, keep := range map[string]bool{"pending": true, "invalid": true, "valid": false} {
		o := &v1alpha1.AcmeOrder{Status: v1alpha1.AcmeOrderStatus{Status: status,
			Offered: []v1alpha1.OfferedAuthorization{{Name: "o-0"}}}}
		out, err := tr(o)
		if err != nil {
			t.Fatal(err)
		}
		if got := len(out.(*v1alpha1.AcmeOrder).Status.Offered) > 0; got != keep {
			t.Errorf("%s order: offered kept %v, want %v", status, got, keep)
		}
	}
	if out, err := tr(&v1alpha1.AcmeChallenge{}); err != nil || out == nil {
		t.Fatalf("another kind passes through: %v %v", out, err)
	}
}
