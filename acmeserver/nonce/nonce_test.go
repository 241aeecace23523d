package nonce

import (
	"regexp"
	"sync"
	"testing"
	"time"
)

// NON-05: syntax and uniqueness; NON-06: single use, unknown nonces refused.
func TestNonceSyntaxUniqueSingleUse(t *testing.T) {
	t.Parallel()
	s, err := NewInMemory("", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	seen := map[string]bool{}
	for i := 0; i < 10000; i++ {
		n, err := s.Nonce()
		if err != nil {
			t.Fatal(err)
		}
		if !re.MatchString(n) || seen[n] {
			t.Fatalf("nonce %q is malformed or repeated", n)
		}
		seen[n] = true
	}
	n, _ := s.Nonce()
	if !s.Redeem(t.Context(), n) {
		t.Fatal("fresh nonce refused")
	}
	if s.Redeem(t.Context(), n) {
		t.Fatal("nonce accepted twice")
	}
	for _, bad := range []string{"", "AAAAAAAAAAAAAAAAAAAAAA", s.Prefix() + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "ab+c", n[:len(n)-1]} {
		if s.Redeem(t.Context(), bad) {
			t.Fatalf("invalid nonce %q accepted", bad)
		}
	}
	other, _ := NewInMemory(s.Prefix(), time.Hour) // same prefix, other key: e.g. after a restart
	o, _ := other.Nonce()
	if s.Redeem(t.Context(), o) {
		t.Fatal("nonce of another key accepted")
	}
}

func TestNonceExpiresAndFloor(t *testing.T) {
	t.Parallel()
	s, _ := NewInMemory("abcd", time.Minute)
	now := time.Now()
	s.now = func() time.Time { return now }
	old, _ := s.Nonce()
	now = now.Add(2 * time.Minute)
	if s.Redeem(t.Context(), old) {
		t.Fatal("expired nonce accepted")
	}
	s.maxUsed = 2
	a, _ := s.Nonce()
	b, _ := s.Nonce()
	c, _ := s.Nonce()
	d, _ := s.Nonce()
	for _, n := range []string{b, c, d} {
		if !s.Redeem(t.Context(), n) {
			t.Fatal("fresh nonce refused")
		}
	}
	if s.Redeem(t.Context(), a) { // below the floor once the used set overflowed
		t.Fatal("nonce below the floor accepted")
	}
}

func TestNonceConcurrent(t *testing.T) {
	t.Parallel()
	s, _ := NewInMemory("", time.Hour)
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	n, _ := s.Nonce()
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m, _ := s.Nonce()
			_ = s.Redeem(t.Context(), m)
			if s.Redeem(t.Context(), n) {
				mu.Lock()
				ok++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if ok != 1 {
		t.Fatalf("shared nonce redeemed %d times", ok)
	}
}
