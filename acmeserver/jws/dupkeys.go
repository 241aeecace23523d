package jws

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// ErrDuplicateMember is a JSON object with a member name twice.
var ErrDuplicateMember = errors.New("duplicate member")

// checkUniqueMembers refuses JSON in which an object, at any depth, names a
// member twice. RFC 7515 §5.2 lets a JWS parser either refuse duplicate
// header parameters or take the last; kacme refuses them everywhere (body,
// protected header, payload), so that no two parsers — kacme's checks and
// go-jose's, or a proxy's — can read one request two ways (RFC 8259 §4:
// behaviour with duplicates is unpredictable).
//
// Most input is one small object of plain ASCII member names, which
// uniqueScan checks without allocating; whatever it cannot decide (an escape,
// a non-ASCII name, deep nesting, a large object, anything not valid JSON)
// goes to tokenUniqueMembers, encoding/json's tokenizer, whose answer is the
// reference: FuzzUniqueMembers checks that the two never disagree.
func checkUniqueMembers(data []byte) error {
	if err, decided := uniqueScan(data); decided {
		return err
	}
	return tokenUniqueMembers(data)
}

// tokenUniqueMembers is checkUniqueMembers on encoding/json's tokenizer.
func tokenUniqueMembers(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	// One set of names per open object; nil for an open array.
	var stack []map[string]bool
	expectKey := false
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{':
				stack = append(stack, map[string]bool{})
				expectKey = true
				continue
			case '[':
				stack = append(stack, nil)
			case '}', ']':
				stack = stack[:len(stack)-1]
			}
		case string:
			if expectKey {
				top := stack[len(stack)-1]
				if top[v] {
					return fmt.Errorf("%w %q", ErrDuplicateMember, truncate(v, 40))
				}
				top[v] = true
				expectKey = false
				continue
			}
		}
		// After a value inside an object, the next token is a key.
		expectKey = len(stack) > 0 && stack[len(stack)-1] != nil
	}
}

// Bounds of uniqueScan's fast path: past them it leaves the input to the tokenizer.
const (
	scanMaxDepth   = 32
	scanMaxMembers = 32 // in one object
	scanMaxNames   = 64 // in every open object together
)

// uniqueScan checks one JSON value, followed by nothing but whitespace, for
// duplicate member names, comparing names as the bytes between their quotes.
// decided is false when it cannot answer exactly as tokenUniqueMembers would:
// a backslash anywhere (escapes make different bytes the same name), a byte
// outside printable ASCII in a member name (invalid UTF-8 decodes to U+FFFD),
// more than scanMaxMembers members in an object, nesting deeper than
// scanMaxDepth, or input that is not a single valid JSON value.
func uniqueScan(data []byte) (err error, decided bool) {
	var (
		s        = scanner{data: data}
		stackBuf [scanMaxDepth]scanFrame
		stack    = stackBuf[:0]
	)
	for {
		// A value.
		s.space()
		if s.i >= len(data) {
			return nil, false
		}
		switch c := data[s.i]; {
		case c == '{' || c == '[':
			if len(stack) == scanMaxDepth {
				return nil, false
			}
			s.i++
			stack = append(stack, scanFrame{object: c == '{', first: s.n})
			s.space()
			if s.i < len(data) && (data[s.i] == '}' || data[s.i] == ']') {
				if (data[s.i] == '}') != (c == '{') {
					return nil, false
				}
				s.i++
				stack = stack[:len(stack)-1]
				break
			}
			if c == '{' {
				if e, ok := s.member(stack[len(stack)-1].first); !ok || e != nil {
					return e, ok
				}
			}
			continue // the first element's value
		case c == '"':
			if _, ok := s.str(false); !ok {
				return nil, false
			}
		case c == '-' || (c >= '0' && c <= '9'):
			if !s.number() {
				return nil, false
			}
		case !s.literal():
			return nil, false
		}
		// After a value: close containers, or go on to the next element.
	next:
		for {
			s.space()
			if len(stack) == 0 {
				return nil, s.i == len(data)
			}
			if s.i >= len(data) {
				return nil, false
			}
			top := stack[len(stack)-1]
			switch c := data[s.i]; {
			case c == ',':
				s.i++
				if top.object {
					if e, ok := s.member(top.first); !ok || e != nil {
						return e, ok
					}
				}
				break next
			case (c == '}' && top.object) || (c == ']' && !top.object):
				s.i++
				s.n = top.first
				stack = stack[:len(stack)-1]
			default:
				return nil, false
			}
		}
	}
}

// scanFrame is an open object or array.
type scanFrame struct {
	object bool
	first  int // index in scanner.names of an object's first member name
}

// scanner is uniqueScan's position in its input and the member names
// (offsets into data) of every open object.
type scanner struct {
	data  []byte
	i     int
	names [scanMaxNames][2]int
	n     int // names in use
}

func (s *scanner) space() {
	for s.i < len(s.data) {
		switch s.data[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// str scans a string at its opening quote and returns the offset where its
// contents end; ok is false where uniqueScan cannot decide.
func (s *scanner) str(name bool) (end int, ok bool) {
	for s.i++; s.i < len(s.data); s.i++ {
		switch c := s.data[s.i]; {
		case c == '"':
			s.i++
			return s.i - 1, true
		case c == '\\' || c < 0x20 || (name && c >= 0x7f):
			return 0, false
		}
	}
	return 0, false
}

// member scans a member name and the colon after it, checking the name
// against the object's earlier ones (s.names[first:]).
func (s *scanner) member(first int) (err error, decided bool) {
	s.space()
	if s.i >= len(s.data) || s.data[s.i] != '"' {
		return nil, false
	}
	start := s.i + 1
	end, ok := s.str(true)
	if !ok || s.n-first >= scanMaxMembers || s.n == scanMaxNames {
		return nil, false
	}
	name := s.data[start:end]
	for _, o := range s.names[first:s.n] {
		if bytes.Equal(s.data[o[0]:o[1]], name) {
			return fmt.Errorf("%w %q", ErrDuplicateMember, truncate(string(name), 40)), true
		}
	}
	s.names[s.n] = [2]int{start, end}
	s.n++
	s.space()
	if s.i >= len(s.data) || s.data[s.i] != ':' {
		return nil, false
	}
	s.i++
	return nil, true
}

// number scans a JSON number (RFC 8259 §6); false if there is none.
func (s *scanner) number() bool {
	digits := func() int {
		k := s.i
		for s.i < len(s.data) && s.data[s.i] >= '0' && s.data[s.i] <= '9' {
			s.i++
		}
		return s.i - k
	}
	if s.data[s.i] == '-' {
		s.i++
	}
	if s.i < len(s.data) && s.data[s.i] == '0' {
		s.i++
	} else if digits() == 0 {
		return false
	}
	if s.i < len(s.data) && s.data[s.i] == '.' {
		s.i++
		if digits() == 0 {
			return false
		}
	}
	if s.i < len(s.data) && (s.data[s.i] == 'e' || s.data[s.i] == 'E') {
		s.i++
		if s.i < len(s.data) && (s.data[s.i] == '+' || s.data[s.i] == '-') {
			s.i++
		}
		if digits() == 0 {
			return false
		}
	}
	return true
}

// literal scans true, false or null.
func (s *scanner) literal() bool {
	for _, l := range [...]string{"true", "false", "null"} {
		if len(s.data)-s.i >= len(l) && string(s.data[s.i:s.i+len(l)]) == l {
			s.i += len(l)
			return true
		}
	}
	return false
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
