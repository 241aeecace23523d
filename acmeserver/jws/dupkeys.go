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
func checkUniqueMembers(data []byte) error {
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

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
