package redact

import "github.com/das-mysql/das/internal/charset"

type kind uint8

const (
	kEOF    kind = iota
	kWord        // keyword or unquoted identifier
	kString      // '...' or "...", with an introducer (_utf8mb4'x', N'x') if any
	kIdent       // `quoted identifier`
	kVar         // @var, @@var
	kPunct       // one other byte, in c
)

type token struct {
	kind       kind
	c          byte
	start, end int
}

// is reports whether the word token is w (lower-case ASCII), ignoring case.
func (t token) is(s, w string) bool {
	return t.end-t.start == len(w) && hasFoldPrefix(s[t.start:t.end], w)
}

// lexer splits MySQL text into tokens, skipping whitespace and comments.
// The content of executable comments (/*! ... */, /*!50700 ... */,
// MariaDB's /*M! ... */) is read as SQL, since the server runs it.
type lexer struct {
	s      string
	i      int
	inExec bool           // inside an executable comment: "*/" closes it
	mb     charset.Family // how two-byte characters read (None: byte by byte)
	noEsc  bool           // a backslash escapes nothing (sql_mode NO_BACKSLASH_ESCAPES)
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

func isWordByte(c byte) bool {
	return c >= 0x80 || c == '_' || c == '$' || (c|0x20 >= 'a' && c|0x20 <= 'z') || (c >= '0' && c <= '9')
}

func (l *lexer) next() token {
	s := l.s
	for l.i < len(s) {
		i := l.i
		c := s[i]
		switch {
		case isSpace(c):
			l.i++
		case c == '/' && i+1 < len(s) && s[i+1] == '*':
			j := i + 2
			if j < len(s) && s[j] == 'M' && j+1 < len(s) && s[j+1] == '!' {
				j++
			}
			if j < len(s) && s[j] == '!' && !l.inExec {
				j++
				for j < len(s) && s[j] >= '0' && s[j] <= '9' {
					j++
				}
				l.i = j
				l.inExec = true
				continue
			}
			l.i = len(s)
			for k := i + 2; k+1 < len(s); k++ {
				if s[k] == '*' && s[k+1] == '/' {
					l.i = k + 2
					break
				}
			}
		case c == '*' && l.inExec && i+1 < len(s) && s[i+1] == '/':
			l.i += 2
			l.inExec = false
		case c == '#' || (c == '-' && i+1 < len(s) && s[i+1] == '-' && (i+2 == len(s) || s[i+2] <= ' ')):
			l.i = len(s)
			for k := i + 1; k < len(s); k++ {
				if s[k] == '\n' {
					l.i = k + 1
					break
				}
			}
		case c == '\'' || c == '"':
			return token{kind: kString, start: i, end: l.quoted(i)}
		case c == '`':
			return token{kind: kIdent, start: i, end: l.quoted(i)}
		case c == '@' && i+1 < len(s) && (isWordByte(s[i+1]) || s[i+1] == '@'):
			j := i + 1
			if s[j] == '@' {
				j++
			}
			for j < len(s) && isWordByte(s[j]) {
				j++
			}
			l.i = j
			return token{kind: kVar, start: i, end: j}
		case isWordByte(c):
			j := i
			for j < len(s) && isWordByte(s[j]) {
				if l.mb.Pair(s, j) {
					j++ // a lead byte: the next is its character's
				}
				j++
			}
			j = min(j, len(s))
			// A character set introducer or N/X/B prefix glued to a literal
			// belongs to it.
			if j < len(s) && (s[j] == '\'' || s[j] == '"') && (c == '_' || (j == i+1 && (c|0x20 == 'n' || c|0x20 == 'x' || c|0x20 == 'b'))) {
				return token{kind: kString, start: i, end: l.quoted(j)}
			}
			l.i = j
			return token{kind: kWord, start: i, end: j}
		default:
			l.i++
			return token{kind: kPunct, c: c, start: i, end: i + 1}
		}
	}
	return token{kind: kEOF, start: len(s), end: len(s)}
}

// quoted scans the literal or quoted identifier whose opening quote is at
// i, sets l.i past it and returns that end. A doubled quote stands for one;
// in string literals a backslash escapes the next byte. An unterminated
// literal runs to the end of the text.
func (l *lexer) quoted(i int) int {
	s := l.s
	q := s[i]
	j := i + 1
	for j < len(s) {
		if l.mb.Pair(s, j) {
			j += 2 // a two-byte character
			continue
		}
		switch s[j] {
		case '\\':
			if q != '`' && !l.noEsc {
				j += 2
				continue
			}
		case q:
			if j+1 < len(s) && s[j+1] == q {
				j += 2
				continue
			}
			l.i = j + 1
			return l.i
		}
		j++
	}
	l.i = len(s)
	return l.i
}
