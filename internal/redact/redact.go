// Package redact masks passwords in SQL text before an activity event leaves
// the process.
//
// It follows MariaDB's server_audit plugin, which Aurora MySQL's activity
// streams are built on and which das's tailer reads: the whole string literal
// holding a password, quotes included, becomes Mask, so
//
//	CREATE USER u IDENTIFIED BY 'secret'  ->  CREATE USER u IDENTIFIED BY *****
//	SET PASSWORD FOR u = PASSWORD('x')    ->  SET PASSWORD FOR u = PASSWORD(*****)
//
// and a statement captured by the proxy reads the same as one taken from a
// server_audit file. Unlike server_audit, which searches the raw text, SQL
// tokenizes: it does not touch literals that merely contain the keywords
// (SELECT 'IDENTIFIED BY x'), and it finds passwords inside executable
// comments (/*!50700 ... */), after comments, in every statement of a
// multi-statement text and in every user of a multi-user CREATE USER.
//
// In the client character sets GBK, GB18030, Big5, SJIS and CP932 a
// two-byte character may end in a backslash or a backquote (0xBF 0x5C), so
// the server and a byte-wise reader can disagree on where a literal ends.
// A text where they could (a byte 0x81-0xFE before \\ or `) is read byte
// by byte and each of those sets' ways (they disagree on which bytes begin
// a character), and every literal any reading takes for a password is
// masked.
//
// sql_mode NO_BACKSLASH_ESCAPES ends a literal at 'a\', where the default
// mode reads on; the session's mode is not known here. A text with a
// backslash is therefore also read without escapes, and what that reading
// takes for a password is masked too. So, read every way, more is masked,
// never less. An unterminated literal (a query cut by a log limit) is
// masked to the end of the text.
package redact

import (
	"slices"
	"strings"

	"github.com/das-mysql/das/internal/charset"
)

// Mask replaces each password literal.
const Mask = "*****"

// SQL returns q with passwords masked. A text that contains neither
// "IDENTIFIED" nor "PASSWORD" (in any case) is returned as is, without
// allocating; so is a text in which nothing needed masking.
func SQL(q string) string {
	if !mayHavePassword(q) {
		return q
	}
	p := parser{lx: lexer{s: q}}
	p.run()
	var spans []span
	mb, esc := charset.Ambiguous(q), strings.IndexByte(q, '\\') >= 0
	if mb || esc {
		// Every other reading the server may make of the text: each
		// multibyte character set's, with and without escapes.
		spans = union(spans, &p)
		fams := []charset.Family{charset.None}
		if mb {
			fams = append(fams, charset.Families[:]...)
		}
		for _, f := range fams {
			for _, noEsc := range []bool{false, true} {
				if f == charset.None && !noEsc || noEsc && !esc {
					continue // the first reading, or no backslash to read
				}
				o := parser{lx: lexer{s: q, mb: f, noEsc: noEsc}}
				o.run()
				spans = union(spans, &o)
			}
		}
		if len(spans) == 0 {
			spans = nil
		}
	}
	if p.n == 0 && spans == nil {
		return q
	}
	var b strings.Builder
	b.Grow(len(q))
	last := 0
	mask := func(sp span) {
		b.WriteString(q[last:sp.start])
		// A mask must not make a comment's opener or closer with a slash
		// beside it ('pw'/ would become */): the masked text would read
		// differently from the original, and again differently when
		// masked once more.
		if sp.start > 0 && q[sp.start-1] == '/' {
			b.WriteByte(' ')
		}
		b.WriteString(Mask)
		if sp.end < len(q) && q[sp.end] == '/' {
			b.WriteByte(' ')
		}
		last = sp.end
	}
	if spans != nil {
		for _, sp := range spans {
			mask(sp)
		}
	} else {
		for i := range p.n {
			mask(p.span(i))
		}
	}
	b.WriteString(q[last:])
	return b.String()
}

// union merges the spans parser p found into spans, keeping them ordered
// and disjoint.
func union(spans []span, p *parser) []span {
	for i := range p.n {
		spans = append(spans, p.span(i))
	}
	if len(spans) == 0 {
		return spans
	}
	slices.SortFunc(spans, func(x, y span) int { return x.start - y.start })
	out := spans[:1]
	for _, sp := range spans[1:] {
		if last := &out[len(out)-1]; sp.start <= last.end {
			last.end = max(last.end, sp.end)
		} else {
			out = append(out, sp)
		}
	}
	return out
}

// mayHavePassword reports whether q contains IDENTIFIED or PASSWORD in any
// case. Every rule below is anchored on one of them (MASTER_PASSWORD,
// SOURCE_PASSWORD and OLD_PASSWORD contain the latter).
//
// It is a Horspool search for both words at once over an 8-byte window
// ("password" and "identifi"): most windows are skipped by several bytes
// without looking at them, which keeps the common case (no keyword) at a
// fraction of a byte-by-byte scan.
func mayHavePassword(q string) bool {
	const m = 8
	for i := 0; i+m <= len(q); {
		c := q[i+m-1] | 0x20
		if c == 'd' && hasFoldPrefix(q[i:], "password") ||
			c == 'i' && hasFoldPrefix(q[i:], "identified") {
			return true
		}
		i += int(skip[q[i+m-1]])
	}
	return false
}

// skip is the Horspool shift table for "password" and "identifi", for both
// cases of each letter. It is computed once and never written again.
var skip = func() (t [256]uint8) {
	for i := range t {
		t[i] = 8
	}
	for _, w := range []string{"password", "identifi"} {
		for k := 0; k < len(w)-1; k++ {
			sh := uint8(len(w) - 1 - k)
			for _, c := range []byte{w[k], w[k] - ('a' - 'A')} {
				t[c] = min(t[c], sh)
			}
		}
	}
	return t
}()

// hasFoldPrefix reports whether s starts with the lower-case ASCII word w,
// ignoring case.
func hasFoldPrefix(s, w string) bool {
	if len(s) < len(w) {
		return false
	}
	for i := 0; i < len(w); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != w[i] {
			return false
		}
	}
	return true
}

type span struct{ start, end int }

// parser finds the spans to mask, in order. The first few live in an
// array so that the parser stays on the stack.
type parser struct {
	lx     lexer
	pk     token
	peeked bool
	n      int
	first  [4]span
	more   []span
}

func (p *parser) add(sp span) {
	if p.n < len(p.first) {
		p.first[p.n] = sp
	} else {
		p.more = append(p.more, sp)
	}
	p.n++
}

func (p *parser) span(i int) span {
	if i < len(p.first) {
		return p.first[i]
	}
	return p.more[i-len(p.first)]
}

func (p *parser) next() token {
	if p.peeked {
		p.peeked = false
		return p.pk
	}
	return p.lx.next()
}

func (p *parser) peek() token {
	if !p.peeked {
		p.pk = p.lx.next()
		p.peeked = true
	}
	return p.pk
}

// run walks the statements of the text.
func (p *parser) run() {
	for {
		t := p.next()
		for t.kind == kPunct && (t.c == ';' || t.c == '(') {
			t = p.next()
		}
		if t.kind == kEOF {
			return
		}
		p.statement(t)
	}
}

// statement handles one statement, from its first token to ';' or the end.
func (p *parser) statement(first token) {
	lx := &p.lx
	// Bare PASSWORD = 'x' (CREATE SERVER ... OPTIONS (PASSWORD 'x'),
	// START REPLICA ... PASSWORD='x', SET PASSWORD = 'x') is a password only in
	// these statements; elsewhere it is likely a column (UPDATE t SET password=...).
	admin := first.kind == kWord && (first.is(lx.s, "create") || first.is(lx.s, "alter") ||
		first.is(lx.s, "grant") || first.is(lx.s, "set") || first.is(lx.s, "start") || first.is(lx.s, "change"))
	// SET PASSWORD [FOR user] {= | TO} ...: the value follows '=' or TO.
	setPassword := first.kind == kWord && first.is(lx.s, "set") && p.peek().kind == kWord && p.peek().is(lx.s, "password")
	// Inside one user's IDENTIFIED clause, until ',' or the statement's end.
	identified := false
	depth := 0
	var prev token
	for t := first; t.kind != kEOF; prev, t = t, p.next() {
		if t.kind == kPunct {
			switch t.c {
			case ';':
				return
			case '(':
				depth++
			case ')':
				depth--
			case ',':
				if depth == 0 {
					identified = false
				}
			case '=':
				if setPassword {
					p.value()
				}
			}
			continue
		}
		if t.kind != kWord || (prev.kind == kPunct && prev.c == '.') {
			continue // a qualified name (t.password) is no keyword
		}
		s := lx.s
		switch {
		case t.is(s, "identified"):
			identified = true
		case identified && (t.is(s, "by") || t.is(s, "as") || t.is(s, "using") || t.is(s, "replace")):
			p.value()
		case setPassword && (t.is(s, "to") || t.is(s, "replace")):
			p.value()
		case t.is(s, "password") || t.is(s, "old_password"):
			switch pk := p.peek(); {
			case pk.kind == kPunct && pk.c == '(':
				p.funcArg()
			case admin && t.is(s, "password") && pk.kind == kPunct && pk.c == '=':
				p.next()
				p.literals()
			case admin && t.is(s, "password"):
				p.literals()
			}
		case t.is(s, "master_password") || t.is(s, "source_password"):
			if pk := p.peek(); pk.kind == kPunct && pk.c == '=' {
				p.next()
			}
			p.literals()
		}
	}
}

// value masks what follows a keyword that introduces a password: a literal,
// PASSWORD 'hash' (IDENTIFIED BY PASSWORD), or PASSWORD('x') and
// OLD_PASSWORD('x').
func (p *parser) value() {
	pk := p.peek()
	if pk.kind == kWord && (pk.is(p.lx.s, "password") || pk.is(p.lx.s, "old_password")) {
		p.next()
		if pk := p.peek(); pk.kind == kPunct && pk.c == '(' {
			p.funcArg()
			return
		}
	}
	p.literals()
}

// funcArg masks the literal argument of PASSWORD( or OLD_PASSWORD(; the
// parenthesis is the next token.
func (p *parser) funcArg() {
	p.next()
	p.literals()
	if pk := p.peek(); pk.kind == kPunct && pk.c == ')' {
		p.next()
	}
}

// literals masks a run of adjacent string literals, which MySQL concatenates
// ('pa' 'ss' is 'pass'), as one span.
func (p *parser) literals() {
	first := p.peek()
	if first.kind != kString {
		return
	}
	last := first
	for p.peek().kind == kString {
		last = p.next()
	}
	p.add(span{first.start, last.end})
}
