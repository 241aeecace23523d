package setup

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// ctxReader records the deadline of each call's context.
type ctxReader struct{ deadlines []time.Time }

func (r *ctxReader) Get(ctx context.Context, _ client.ObjectKey, _ client.Object, _ ...client.GetOption) error {
	d, _ := ctx.Deadline()
	r.deadlines = append(r.deadlines, d)
	return nil
}

func (r *ctxReader) List(ctx context.Context, _ client.ObjectList, _ ...client.ListOption) error {
	d, _ := ctx.Deadline()
	r.deadlines = append(r.deadlines, d)
	return nil
}

// TestDeadlineReader: every direct API read the controllers make carries a
// deadline of APIReadTimeout, also when the caller's context has none.
func TestDeadlineReader(t *testing.T) {
	inner := &ctxReader{}
	r := deadlineReader{inner}
	start := time.Now()
	_ = r.Get(context.Background(), client.ObjectKey{Name: "p"}, &corev1.Pod{})
	_ = r.List(context.Background(), &corev1.PodList{})
	for i, d := range inner.deadlines {
		if d.IsZero() || d.Before(start.Add(APIReadTimeout-time.Second)) || d.After(time.Now().Add(APIReadTimeout)) {
			t.Fatalf("call %d: deadline %v, want about %v from now", i, d, APIReadTimeout)
		}
	}
	if len(inner.deadlines) != 2 {
		t.Fatalf("%d calls reached the reader", len(inner.deadlines))
	}
}
