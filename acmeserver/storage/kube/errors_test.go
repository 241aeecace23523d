package kube

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"syscall"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/kacme/kacme/acmeserver/storage"
)

// TestMapErrUnavailable: what says "the API server did not complete the
// request" becomes ErrUnavailable; what says "the request was wrong" does not.
func TestMapErrUnavailable(t *testing.T) {
	gr := schema.GroupResource{Group: "acme.kacme.io", Resource: "acmeorders"}
	refused := &url.Error{Op: "Post", URL: "https://127.0.0.1:6443/apis", Err: fmt.Errorf("dial tcp: %w", syscall.ECONNREFUSED)}
	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"connection refused", refused, storage.ErrUnavailable},
		{"connection reset", &url.Error{Op: "Put", URL: "https://x", Err: syscall.ECONNRESET}, storage.ErrUnavailable},
		{"EOF", &url.Error{Op: "Put", URL: "https://x", Err: io.EOF}, storage.ErrUnavailable},
		{"request timeout", fmt.Errorf("wrapped: %w", context.DeadlineExceeded), storage.ErrUnavailable},
		{"503", apierrors.NewServiceUnavailable("apiserver is shutting down"), storage.ErrUnavailable},
		{"504", apierrors.NewTimeoutError("etcd timed out", 1), storage.ErrUnavailable},
		{"500 etcd", apierrors.NewInternalError(errors.New("etcdserver: leader changed")), storage.ErrUnavailable},
		{"429", apierrors.NewTooManyRequests("slow down", 1), storage.ErrUnavailable},
		{"conflict", apierrors.NewConflict(gr, "o", errors.New("changed")), storage.ErrConflict},
		{"not found", apierrors.NewNotFound(gr, "o"), storage.ErrNotFound},
		{"exists", apierrors.NewAlreadyExists(gr, "o"), storage.ErrAlreadyExists},
		{"invalid", apierrors.NewBadRequest("spec.x: Invalid value"), nil},
		{"forbidden", apierrors.NewForbidden(gr, "o", errors.New("RBAC")), nil},
		{"quota", apierrors.NewForbidden(gr, "o", errors.New("exceeded quota: acme, requested: count/acmeorders.acme.kacme.io=1, used: count/acmeorders.acme.kacme.io=500, limited: count/acmeorders.acme.kacme.io=500")), storage.ErrQuotaExceeded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := mapErr(tc.err, "AcmeOrder", "ns", "o")
			for _, sentinel := range []error{storage.ErrUnavailable, storage.ErrConflict, storage.ErrNotFound, storage.ErrAlreadyExists, storage.ErrQuotaExceeded} {
				if errors.Is(got, sentinel) != (sentinel == tc.want) {
					t.Errorf("mapErr(%v) = %v: errors.Is(%v) = %v", tc.err, got, sentinel, !(sentinel == tc.want))
				}
			}
		})
	}
}
