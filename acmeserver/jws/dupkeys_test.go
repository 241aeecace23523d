package jws

import "testing"

func TestCheckUniqueMembers(t *testing.T) {
	for in, bad := range map[string]bool{
		`{"a":1,"b":2}`: false, `{"a":1,"a":2}`: true, `{"a":{"b":1,"b":2}}`: true, `{"a":[{"b":1},{"b":2}]}`: false,
		`{"a":[{"b":1,"b":2}]}`: true, `[1,2,{"x":1}]`: false, `{"a":{"x":1},"b":{"x":1}}`: false, `{"a":[],"a":[]}`: true,
		`{"a":"a","b":"a"}`: false, `""`: false, `{"a":{},"c":1,"c":2}`: true, `{"k":["a","a"]}`: false,
	} {
		err := checkUniqueMembers([]byte(in))
		if (err != nil) != bad {
			t.Errorf("%s: %v", in, err)
		}
	}
}
