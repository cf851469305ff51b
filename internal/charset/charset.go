// Package charset holds what das must know of the client character sets
// whose two-byte characters may end in a byte that is also a delimiter of
// SQL text: GBK and GB18030, Big5, SJIS and CP932. In those sets 0xBF 0x5C
// can be one character to the server but a byte and an escaping backslash
// to a byte-wise reader, which then takes the rest of a statement for a
// string: the classic way to hide SQL from a filter. The sets do not agree
// on which bytes begin a character (SJIS reads 0xA1-0xDF as single
// characters), so a reader that must not be fooled reads such text each
// set's way (Families) as well as byte by byte.
package charset

import "strings"

// Family is a way of reading two-byte characters, as MySQL's and
// MariaDB's lexers do (my_ismbchar): a lead byte and a valid trail byte
// are one character; any other byte is one alone.
type Family uint8

const (
	None Family = iota // byte by byte (utf8mb4, latin1, ...)
	GBK                // gbk and gb18030: lead 0x81-0xFE
	Big5               // big5: lead 0xA1-0xF9
	SJIS               // sjis and cp932: lead 0x81-0x9F and 0xE0-0xFC
)

// Families are the multibyte readings, each of which differs from the
// others on some text.
var Families = [...]Family{GBK, Big5, SJIS}

// String names the family.
func (f Family) String() string {
	switch f {
	case GBK:
		return "gbk"
	case Big5:
		return "big5"
	case SJIS:
		return "sjis"
	}
	return "none"
}

// lead reports whether c begins a two-byte character in f.
func (f Family) lead(c byte) bool {
	switch f {
	case GBK:
		return c >= 0x81 && c <= 0xfe
	case Big5:
		return c >= 0xa1 && c <= 0xf9
	case SJIS:
		return c >= 0x81 && c <= 0x9f || c >= 0xe0 && c <= 0xfc
	}
	return false
}

// Pair reports whether s[i] and s[i+1] are one character in f. Every
// family's trail bytes are at least 0x40; what it refuses above that
// (0x7F, 0xFF, Big5's 0x80-0xA0) is never a delimiter nor a lead byte of
// the same family, so taking it as a trail moves no boundary that
// matters, while a byte under 0x40 (a quote, a space, a comment's
// opener) is never a trail: the server ends a string at `\xd7"`.
// GB18030's four-byte characters end in a digit: read two bytes at a
// time they keep the same boundaries.
func (f Family) Pair(s string, i int) bool {
	return f != None && i+1 < len(s) && s[i+1] >= 0x40 && f.lead(s[i])
}

// Ambiguous reports whether s may read differently in one of the
// families than byte by byte: a byte from 0x81 to 0xFE just before a
// backslash or a backquote, the delimiters that can be a trail byte.
func Ambiguous(s string) bool {
	// Each byte's occurrences by IndexByte (vectorised): a bulk INSERT of
	// megabytes has few backslashes and backquotes.
	for _, c := range []byte{'\\', '`'} {
		for i := 1; i < len(s); {
			k := strings.IndexByte(s[i:], c)
			if k < 0 {
				break
			}
			i += k
			if b := s[i-1]; b >= 0x81 && b <= 0xfe {
				return true
			}
			i++
		}
	}
	return false
}
