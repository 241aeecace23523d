package jws

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckUniqueMembers(t *testing.T) {
	for in, bad := range map[string]bool{
		`{"a":1,"b":2}`: false, `{"a":1,"a":2}`: true, `{"a":{"b":1,"b":2}}`: true, `{"a":[{"b":1},{"b":2}]}`: false,
		`{"a":[{"b":1,"b":2}]}`: true, `[1,2,{"x":1}]`: false, `{"a":{"x":1},"b":{"x":1}}`: false, `{"a":[],"a":[]}`: true,
		`{"a":"a","b":"a"}`: false, `""`: false, `{"a":{},"c":1,"c":2}`: true, `{"k":["a","a"]}`: false,
		// Names equal only once unescaped, or once invalid UTF-8 becomes U+FFFD.
		`{"a":1,"\u0061":2}`: true, `{"\/":1,"/":2}`: true, "{\"\xff\":1,\"\xfe\":2}": true, `{"é":1,"é":2}`: true,
		`{"a\"":1,"a\"":2}`: true, `{"a\\":1,"a":2}`: false,
		// Past the fast path's bounds.
		`{"a":` + strings.Repeat(`[`, 40) + strings.Repeat(`]`, 40) + `,"a":1}`: true, manyMembers(40, false): false,
		manyMembers(40, true): true, `[` + strings.Repeat(manyMembers(20, false)+",", 4) + `{}]`: false,
		`{"a":{"b":{"c":{"d":1,"x":2},"x":3},"x":4},"x":5,"a":6}`: true,
		// Not JSON, or more than one value.
		`{"a" 1}`: true, `{"a":01}`: true, `{"a":1.}`: true, `{"a":-}`: true, `{"a":1e}`: true,
		`{"a":tru}`: true, `[1,]`: true, `[1}`: true, `{"a":1]`: true, "{\"a\":\"\x01\"}": true,
		` {"a" : -0.5e+3 , "b" : [ true , false , null , "x" ] } `: false,
	} {
		err, decided := uniqueScan([]byte(in))
		ref := tokenUniqueMembers([]byte(in))
		if decided && (err == nil) != (ref == nil) {
			t.Errorf("%s: fast path says %v, the tokenizer %v", in, err, ref)
		}
		if err := checkUniqueMembers([]byte(in)); (err != nil) != bad {
			t.Errorf("%s: %v", in, err)
		}
	}
	// The fast path decides the requests clients send, and names the member.
	for _, in := range []string{
		`{"protected":"eyJ","payload":"","signature":"abc"}`,
		`{"alg":"ES256","kid":"https://x/acct/1","nonce":"n","url":"https://x/new-order"}`,
		`{"identifiers":[{"type":"dns","value":"a.example"},{"type":"ip","value":"10.0.0.1"}],"notAfter":"2026-01-01T00:00:00Z"}`,
	} {
		if err, decided := uniqueScan([]byte(in)); !decided || err != nil {
			t.Errorf("%s: decided %v, %v", in, decided, err)
		}
	}
	// ... without allocating.
	body := []byte(`{"protected":"eyJhbGciOiJFUzI1NiJ9","payload":"e30","signature":"abc"}`)
	if n := testing.AllocsPerRun(100, func() { _, _ = uniqueScan(body) }); n != 0 {
		t.Errorf("uniqueScan allocates %.0f times per call", n)
	}
	err, decided := uniqueScan([]byte(`{"a":{"url":1,"url":2}}`))
	if !decided || !errors.Is(err, ErrDuplicateMember) || err.Error() != `duplicate member "url"` {
		t.Errorf("duplicate: decided %v, %v", decided, err)
	}
}

func manyMembers(n int, dup bool) string {
	var b strings.Builder
	b.WriteString("{")
	for i := range n {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(`"m`)
		b.WriteString(strings.Repeat("x", i))
		b.WriteString(`":1`)
	}
	if dup {
		b.WriteString(`,"m":2`)
	}
	b.WriteString("}")
	return b.String()
}

// FuzzUniqueMembers: whenever the fast path decides, it agrees with the
// tokenizer, error for error.
func FuzzUniqueMembers(f *testing.F) {
	for _, s := range []string{`{"a":1,"b":[1,{"c":null}]}`, `{"a":1,"a":2}`, `[1,2]`, `"x"`, `-1.5e3`, `{"a":{"b":true,"b":false}}`, `{} {}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		err, decided := uniqueScan(data)
		if !decided {
			return
		}
		ref := tokenUniqueMembers(data)
		if (err == nil) != (ref == nil) || (err != nil && err.Error() != ref.Error()) {
			t.Fatalf("%q: fast path %v, tokenizer %v", data, err, ref)
		}
	})
}
