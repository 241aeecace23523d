package audit

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"testing"
)

// TestRecent: the in-memory window keeps the latest Keep records, newest first.
func TestRecent(t *testing.T) {
	a := New(slog.New(slog.NewTextHandler(io.Discard, nil)))
	if got := a.Recent(5); len(got) != 0 {
		t.Fatalf("empty logger: %d records", len(got))
	}
	for i := range Keep + 5 {
		a.Record(context.Background(), "e"+strconv.Itoa(i))
	}
	got := a.Recent(3)
	if len(got) != 3 || got[0].Event != "e"+strconv.Itoa(Keep+4) || got[2].Event != "e"+strconv.Itoa(Keep+2) {
		t.Fatalf("Recent(3) = %v", got)
	}
	all := a.Recent(10 * Keep)
	if len(all) != Keep || all[Keep-1].Event != "e5" {
		t.Fatalf("Recent(all): %d records, oldest %s; want %d, e5", len(all), all[len(all)-1].Event, Keep)
	}
}
