package charset

import "testing"

func TestPair(t *testing.T) {
	tests := []struct {
		s    string
		i    int
		want map[Family]bool // families that read s[i:i+2] as one character
	}{
		{"\xbf\\", 0, map[Family]bool{GBK: true, Big5: true}}, // 0xBF is SJIS katakana
		{"\xbb\xe0", 0, map[Family]bool{GBK: true, Big5: true}},
		{"\xe0\\", 0, map[Family]bool{GBK: true, Big5: true, SJIS: true}},
		{"\x81\xa1", 0, map[Family]bool{GBK: true, SJIS: true}}, // Big5 begins at 0xA1
		{"\xfa`", 0, map[Family]bool{GBK: true, SJIS: true}},    // past Big5's 0xF9
		{"\xfd`", 0, map[Family]bool{GBK: true}},                // past SJIS's 0xFC
		{"\xd7\"", 0, nil},                                      // a quote is never a trail byte
		{"\xd7'", 0, nil},
		{"\xd7 ", 0, nil},
		{"\xd7", 0, nil}, // no byte after it
		{"a\\", 0, nil},
	}
	for _, tc := range tests {
		for _, f := range append([]Family{None}, Families[:]...) {
			if got := f.Pair(tc.s, tc.i); got != tc.want[f] {
				t.Errorf("%s.Pair(%q, %d) = %v, want %v", f, tc.s, tc.i, got, tc.want[f])
			}
		}
	}
}

func TestAmbiguous(t *testing.T) {
	tests := []struct {
		s    string
		want bool
	}{
		{"SELECT 'a\\'b'", false},
		{"SELECT '\xbf\\' FROM t -- '", true},
		{"SELECT `\x81`", true},
		{"SELECT '\xbf' FROM t", false},
		{"\\", false},
		{"\xfe\\", true},
		{"\xff\\", false},           // no set begins a character with 0xFF
		{"SELECT `\xc3\xa9`", true}, // UTF-8 é ends in 0xA9: read every way, to no harm
		{"SELECT '\x80\\'", false},
		{"SELECT '\xff`'", false},
		{"SELECT 1", false},
	}
	for _, tc := range tests {
		if got := Ambiguous(tc.s); got != tc.want {
			t.Errorf("Ambiguous(%q) = %v, want %v", tc.s, got, tc.want)
		}
	}
}
