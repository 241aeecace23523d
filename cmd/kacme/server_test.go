package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	ctrl "sigs.k8s.io/controller-runtime"
)

// TestServerLogsControllerRuntime (issue 14): kacme server gives
// controller-runtime its logger, so what the manager, cache and client log
// reaches the process's JSON log (unset, it was lost, and controller-runtime
// printed a stack trace about it).
func TestServerLogsControllerRuntime(t *testing.T) {
	var buf bytes.Buffer
	useForControllerRuntime(slog.New(slog.NewJSONHandler(&buf, nil)))
	ctrl.Log.WithName("cache").Info("probe from controller-runtime")
	if !strings.Contains(buf.String(), `"msg":"probe from controller-runtime"`) {
		t.Fatalf("controller-runtime's log did not reach the server's: %q", buf.String())
	}
}
