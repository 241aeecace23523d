package kube

import (
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kacme/kacme/api/v1alpha1"
)

// TestOverlayForgetsUnreadEntries: writes that are never read again do not
// pile up; the overlay keeps about ttl's worth of them.
func TestOverlayForgetsUnreadEntries(t *testing.T) {
	o := newOverlay(20 * time.Millisecond)
	put := func(prefix string, n int) {
		for i := 0; i < n; i++ {
			name := fmt.Sprintf("%s%d", prefix, i)
			obj := &v1alpha1.AcmeCertificate{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, ResourceVersion: "1"}}
			o.put(key("AcmeCertificate", "ns", name), "AcmeCertificate", obj, false)
		}
	}
	put("old-", 1000)
	time.Sleep(40 * time.Millisecond)
	put("new-", 1100)
	o.mu.Lock()
	n := len(o.entries)
	o.mu.Unlock()
	if n > 1100 {
		t.Fatalf("%d entries kept, want the expired ones dropped (≤ 1100)", n)
	}
}
