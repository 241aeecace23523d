package dashboard

import (
	"cmp"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestPageWindow: the page a pageWindow keeps of rows offered one at a time
// is exactly the slice of a full sort, for every page (near the start and
// near the end) of inputs sorted, reversed, random and with runs of equal
// leading keys (as objects created in the same second), and it never holds
// much more than the page needs.
func TestPageWindow(t *testing.T) {
	type row struct{ at, name int }
	byAt := func(a, b row) int {
		if c := cmp.Compare(a.at, b.at); c != 0 {
			return c
		}
		return cmp.Compare(a.name, b.name)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	inputs := map[string]func(n int) []row{
		"sorted": func(n int) []row {
			r := make([]row, n)
			for i := range r {
				r[i] = row{i, i}
			}
			return r
		},
		"reversed": func(n int) []row {
			r := make([]row, n)
			for i := range r {
				r[i] = row{n - i, i}
			}
			return r
		},
		"random": func(n int) []row {
			r := make([]row, n)
			for i := range r {
				r[i] = row{rng.IntN(n), i}
			}
			return r
		},
		"same second": func(n int) []row {
			r := make([]row, n)
			for i := range r {
				r[i] = row{rng.IntN(3), rng.IntN(1 << 30)}
			}
			return r
		},
	}
	for name, gen := range inputs {
		for _, n := range []int{0, 1, 7, 50, 51, 333, 2000} {
			for _, size := range []int{1, 7, 50} {
				for _, lo := range pageStarts(n, size) {
					hi := min(lo+size, n)
					rows := gen(n)
					want := slices.Clone(rows)
					slices.SortFunc(want, byAt)
					w := newPageWindow(n, lo, hi, byAt)
					held := 0
					for _, r := range rows {
						w.add(r)
						held = max(held, len(w.rows))
					}
					if got := w.page(); !slices.Equal(got, want[lo:hi]) {
						t.Fatalf("%s n=%d [%d,%d): got %v, want %v", name, n, lo, hi, got, want[lo:hi])
					}
					if limit := 2*min(hi, n-lo) + 256; held > limit {
						t.Fatalf("%s n=%d [%d,%d): held %d rows, more than %d", name, n, lo, hi, held, limit)
					}
				}
			}
		}
	}
}

// pageStarts returns the first row of about 40 pages of size among n rows,
// the first and the last included.
func pageStarts(n, size int) []int {
	var out []int
	step := max(size, n/40/size*size)
	for lo := 0; lo < n; lo += step {
		out = append(out, lo)
	}
	if last := (n - 1) / size * size; n > 0 && out[len(out)-1] != last {
		out = append(out, last)
	}
	return out
}
