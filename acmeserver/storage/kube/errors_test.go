package kube

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"syscall"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kacme/kacme/acmeserver/storage"
	"github.com/kacme/kacme/api/v1alpha1"
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

// TestCutAnswerUnavailable: an API server that sends an answer's headers and
// then drops the connection (HTTP/1.1) or resets the stream (HTTP/2) in the
// body makes a store write fail as ErrUnavailable — the ACME side answers 503
// with Retry-After, not 500. client-go wraps the read error in its own text,
// which utilnet.IsProbableEOF does not unwrap (a CI run saw the 500).
func TestCutAnswerUnavailable(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	for _, h2 := range []bool{false, true} {
		t.Run(fmt.Sprintf("http2=%v", h2), func(t *testing.T) {
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.Header().Set("Content-Length", "4096")
				w.WriteHeader(http.StatusCreated)
				_, _ = w.Write([]byte(`{"kind":"AcmeOrder","apiVersion":"acme.kacme.io/v1alpha1","metadata":{"name":`))
				w.(http.Flusher).Flush()
				panic(http.ErrAbortHandler) // HTTP/1.1: connection closed; HTTP/2: RST_STREAM
			}))
			srv.EnableHTTP2 = h2
			srv.Config.ErrorLog = log.New(io.Discard, "", 0)
			srv.StartTLS()
			defer srv.Close()
			cfg := &rest.Config{Host: srv.URL, TLSClientConfig: rest.TLSClientConfig{Insecure: true}}
			if !h2 {
				cfg.NextProtos = []string{"http/1.1"}
			}
			mapper := meta.NewDefaultRESTMapper(nil)
			mapper.Add(v1alpha1.GroupVersion.WithKind("AcmeOrder"), meta.RESTScopeNamespace)
			c, err := client.New(cfg, client.Options{Scheme: scheme, Mapper: mapper})
			if err != nil {
				t.Fatal(err)
			}
			store := New(c, c)
			o := &v1alpha1.AcmeOrder{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "o"}}
			err = store.Create(context.Background(), o)
			if !storage.IsUnavailable(err) {
				t.Fatalf("Create through a cut answer: %v, want ErrUnavailable", err)
			}
			t.Log(err)
		})
	}
}
