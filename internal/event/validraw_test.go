package event

import (
	"encoding/json"
	"testing"
)

// validRaw agrees with json.Valid on every input: the fast paths only skip
// work, never the answer.
func TestValidRawAgreesWithJSONValid(t *testing.T) {
	for _, v := range []string{
		``, `true`, `false`, `null`, `tru`, `"x"`, `""`, `"`, `"a"b"`, `"a\"b"`, `"a\nb"`, "\"a\nb\"", `"\u0041"`,
		`"\x"`, `0`, `01`, `1`, `-1`, `-`, `-0`, `123456789012345678901234567890`, `1.5`, `1e5`, `12a`,
		`{"a":1}`, `[1,2]`, ` 1`, `1 `, `"1:2:3:4"`, "\"\xff\"", `"é"`,
	} {
		if got, want := validRaw([]byte(v)), json.Valid([]byte(v)); got != want {
			t.Errorf("validRaw(%q) = %v, json.Valid says %v", v, got, want)
		}
	}
}

func FuzzValidRaw(f *testing.F) {
	for _, s := range []string{`"dasSource"`, `42`, `true`, `"a\\b"`, `{"x":[1]}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		if got, want := validRaw(v), json.Valid(v); got != want {
			t.Fatalf("validRaw(%q) = %v, json.Valid says %v", v, got, want)
		}
	})
}
