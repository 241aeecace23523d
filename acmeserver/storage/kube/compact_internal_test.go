package kube

import (
	"testing"

	"github.com/kacme/kacme/api/v1alpha1"
)

func TestEqualButExpires(t *testing.T) {
	d := map[string]string{v1alpha1.LabelAccount: "a", v1alpha1.LabelProfile: "p", v1alpha1.LabelExpires: "100"}
	for _, c := range []struct {
		l    map[string]string
		want bool
	}{
		{map[string]string{v1alpha1.LabelAccount: "a", v1alpha1.LabelProfile: "p"}, true},
		{d, false}, // all of them: not "but expires"
		{map[string]string{v1alpha1.LabelAccount: "a", v1alpha1.LabelExpires: "100"}, false},
		{map[string]string{v1alpha1.LabelAccount: "a", v1alpha1.LabelProfile: "q"}, false},
		{map[string]string{v1alpha1.LabelAccount: "a", "team": "p"}, false},
		{map[string]string{}, false},
		{nil, false},
	} {
		if got := equalButExpires(c.l, d); got != c.want {
			t.Errorf("%v: %v, want %v", c.l, got, c.want)
		}
	}
	if equalButExpires(map[string]string{v1alpha1.LabelAccount: "a"}, map[string]string{v1alpha1.LabelAccount: "a", v1alpha1.LabelProfile: "p"}) {
		t.Error("derived labels without an expiry matched")
	}
}
