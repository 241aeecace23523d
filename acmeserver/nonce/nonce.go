// Package nonce issues and redeems anti-replay nonces (RFC 8555 §6.5). Nonces
// are authenticated-encrypted counters: nothing is stored per issued nonce and
// nothing is ever written to durable storage. A prefix names the replica that
// issued a nonce so a replica-aware front end can route it back.
package nonce

import (
	"container/heap"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// Source issues nonces.
type Source interface {
	Nonce() (string, error)
}

// Redeemer consumes a nonce: true exactly once for a nonce this service issued
// that is neither used nor expired.
type Redeemer interface {
	Redeem(ctx context.Context, nonce string) bool
}

// Service is both halves; a replica-aware implementation can replace it.
type Service interface {
	Source
	Redeemer
}

const (
	prefixLen = 4
	// maxUsed bounds memory: once that many nonces are used, the oldest
	// counters below the floor are refused like never-issued ones.
	defaultMaxUsed = 1 << 18
)

// InMemory is a single-replica Service.
type InMemory struct {
	prefix  string
	aead    cipher.AEAD
	maxAge  time.Duration
	maxUsed int
	now     func() time.Time

	mu      sync.Mutex
	counter uint64
	floor   uint64 // counters <= floor are invalid
	used    map[uint64]struct{}
	usedMin uint64Heap
}

// NewInMemory returns a nonce service whose nonces start with prefix (4
// base64url characters; empty picks a random one) and live for maxAge.
func NewInMemory(prefix string, maxAge time.Duration) (*InMemory, error) {
	if prefix == "" {
		var b [3]byte
		_, _ = rand.Read(b[:])
		prefix = base64.RawURLEncoding.EncodeToString(b[:])
	}
	if len(prefix) != prefixLen {
		return nil, fmt.Errorf("nonce prefix %q must be %d characters", prefix, prefixLen)
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	var start [8]byte
	_, _ = rand.Read(start[:4])
	return &InMemory{
		prefix: prefix, aead: aead, maxAge: maxAge, maxUsed: defaultMaxUsed, now: time.Now,
		counter: uint64(binary.BigEndian.Uint32(start[:4])), used: map[uint64]struct{}{},
	}, nil
}

// Prefix names this replica.
func (s *InMemory) Prefix() string { return s.prefix }

// Nonce implements Source.
func (s *InMemory) Nonce() (string, error) {
	s.mu.Lock()
	s.counter++
	c := s.counter
	s.mu.Unlock()
	var plain [16]byte
	binary.BigEndian.PutUint64(plain[:8], c)
	binary.BigEndian.PutUint64(plain[8:], uint64(s.now().Unix()))
	iv := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(iv); err != nil {
		return "", err
	}
	sealed := s.aead.Seal(iv, iv, plain[:], []byte(s.prefix))
	return s.prefix + base64.RawURLEncoding.EncodeToString(sealed), nil
}

var errInvalid = errors.New("invalid nonce")

func (s *InMemory) open(n string) (counter uint64, issued time.Time, err error) {
	if len(n) <= prefixLen || !strings.HasPrefix(n, s.prefix) {
		return 0, time.Time{}, errInvalid
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(n[prefixLen:])
	if err != nil || len(raw) < s.aead.NonceSize() {
		return 0, time.Time{}, errInvalid
	}
	iv := raw[:s.aead.NonceSize()]
	plain, err := s.aead.Open(nil, iv, raw[s.aead.NonceSize():], []byte(s.prefix))
	if err != nil || len(plain) != 16 {
		return 0, time.Time{}, errInvalid
	}
	return binary.BigEndian.Uint64(plain[:8]), time.Unix(int64(binary.BigEndian.Uint64(plain[8:])), 0), nil
}

// Redeem implements Redeemer.
func (s *InMemory) Redeem(_ context.Context, n string) bool {
	c, issued, err := s.open(n)
	if err != nil || s.now().Sub(issued) > s.maxAge {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if c <= s.floor || c > s.counter {
		return false
	}
	if _, dup := s.used[c]; dup {
		return false
	}
	s.used[c] = struct{}{}
	heap.Push(&s.usedMin, c)
	for len(s.used) > s.maxUsed {
		oldest := heap.Pop(&s.usedMin).(uint64)
		delete(s.used, oldest)
		s.floor = oldest
	}
	return true
}

type uint64Heap []uint64

func (h uint64Heap) Len() int           { return len(h) }
func (h uint64Heap) Less(i, j int) bool { return h[i] < h[j] }
func (h uint64Heap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *uint64Heap) Push(x any)        { *h = append(*h, x.(uint64)) }
func (h *uint64Heap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
