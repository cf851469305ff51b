package proxy

import (
	"strings"
	"unicode/utf8"
)

// splitStatements cuts a multi-statement text at the semicolons that are
// outside quotes and comments, the way the server does when
// CLIENT_MULTI_STATEMENTS is on, and trims each part. Empty parts are
// dropped. It does not know compound statements (BEGIN ... END bodies), so
// callers use the result only when the count matches the number of results
// the server sent.
func splitStatements(q string) []string {
	var parts []string
	start := 0
	add := func(end int) {
		if s := strings.TrimSpace(q[start:end]); s != "" {
			parts = append(parts, s)
		}
	}
	for i := 0; i < len(q); {
		switch c := q[i]; c {
		case '\'', '"', '`':
			i = skipQuoted(q, i)
		case '#':
			i = skipLine(q, i)
		case '-':
			if strings.HasPrefix(q[i:], "-- ") || strings.HasPrefix(q[i:], "--\t") ||
				strings.HasPrefix(q[i:], "--\n") || q[i:] == "--" {
				i = skipLine(q, i)
			} else {
				i++
			}
		case '/':
			// Executable comments (/*! ... */) hold SQL, but never a
			// statement separator the server would honour: skip them whole.
			if strings.HasPrefix(q[i:], "/*") {
				if end := strings.Index(q[i+2:], "*/"); end >= 0 {
					i += end + 4
				} else {
					i = len(q)
				}
			} else {
				i++
			}
		case ';':
			add(i)
			i++
			start = i
		default:
			i++
		}
	}
	add(len(q))
	return parts
}

// skipQuoted returns the index after the quoted string or identifier that
// starts at q[i]. Backslash escapes apply in strings, doubled quotes in all.
func skipQuoted(q string, i int) int {
	quote := q[i]
	for i++; i < len(q); i++ {
		switch q[i] {
		case '\\':
			if quote != '`' {
				i++
			}
		case quote:
			if i+1 < len(q) && q[i+1] == quote {
				i++
				continue
			}
			return i + 1
		}
	}
	return len(q)
}

func skipLine(q string, i int) int {
	if n := strings.IndexByte(q[i:], '\n'); n >= 0 {
		return i + n + 1
	}
	return len(q)
}

// skipSpaceAndComments returns q without leading whitespace and comments.
func skipSpaceAndComments(q string) string {
	for {
		q = strings.TrimLeft(q, " \t\r\n\f\v")
		switch {
		case strings.HasPrefix(q, "#"), strings.HasPrefix(q, "-- "), strings.HasPrefix(q, "--\t"), strings.HasPrefix(q, "--\n"):
			q = q[skipLine(q, 0):]
		case strings.HasPrefix(q, "/*") && !strings.HasPrefix(q, "/*!") && !strings.HasPrefix(q, "/*M!"):
			end := strings.Index(q[2:], "*/")
			if end < 0 {
				return ""
			}
			q = q[end+4:]
		default:
			return q
		}
	}
}

// sqlStart is q from its first token, past spaces and comments. An
// executable comment there (/*!50000 ... */, /*M! ... */) stands for the
// SQL inside it, which the server runs: its opener and version are
// skipped, and its end ends the text.
func sqlStart(q string) string {
	q = skipSpaceAndComments(q)
	if strings.HasPrefix(q, "/*!") || strings.HasPrefix(q, "/*M!") {
		q = skipSpaceAndComments(strings.TrimLeft(q[strings.IndexByte(q, '!')+1:], "0123456789"))
		if end := strings.Index(q, "*/"); end >= 0 {
			q = q[:end]
		}
	}
	return q
}

// useTarget recognises "USE db" (db bare or `quoted`) and returns db.
func useTarget(q string) (string, bool) {
	q = sqlStart(q) // /*!50000 USE db */ changes the database too
	if len(q) < 4 || !strings.EqualFold(q[:3], "use") {
		return "", false
	}
	rest := q[3:]
	if c := rest[0]; c == '_' || c == '$' || c >= 0x80 || c >= '0' && c <= '9' || c|0x20 >= 'a' && c|0x20 <= 'z' {
		return "", false // USER..., a word that begins with "use"
	}
	rest = skipSpaceAndComments(rest)
	var db string
	if strings.HasPrefix(rest, "`") {
		end := skipQuoted(rest, 0)
		if end < 2 || rest[end-1] != '`' {
			return "", false
		}
		db = strings.ReplaceAll(rest[1:end-1], "``", "`")
		rest = rest[end:]
	} else {
		end := strings.IndexFunc(rest, func(r rune) bool { return r == ';' || r < utf8.RuneSelf && isSpace(byte(r)) })
		if end < 0 {
			end = len(rest)
		}
		db, rest = rest[:end], rest[end:]
	}
	rest = strings.TrimLeft(skipSpaceAndComments(rest), ";")
	if db == "" || skipSpaceAndComments(rest) != "" {
		return "", false
	}
	return db, true
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

// quoteIdent quotes an identifier with backticks.
func quoteIdent(s string) string {
	return "`" + strings.ReplaceAll(s, "`", "``") + "`"
}

// cutText cuts s to at most max bytes (max <= 0: no limit) on a rune
// boundary.
func cutText(s string, max int) string {
	if max <= 0 || len(s) <= max {
		return s
	}
	i := max
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	// A copy: the event, queued until sealed, must not hold the whole
	// text (up to the packet limit) through a substring.
	return strings.Clone(s[:i])
}

// mbCollation reports the collations (by id, as the handshake and
// COM_CHANGE_USER give them) of the character sets whose two-byte
// characters may end in \ or `: big5, sjis, gbk, cp932 (MySQL and
// MariaDB ids, MariaDB's NOPAD ones included) and MySQL 8's gb18030.
func mbCollation(id uint16) bool {
	switch id {
	case 1, 84, 1025, 1108, // big5
		13, 88, 1037, 1112, // sjis
		28, 87, 1052, 1111, // gbk
		95, 96, 1119, 1120, // cp932
		248, 249, 250: // gb18030
		return true
	}
	return false
}

// setsMBCharset reports whether a statement that succeeded may have made
// the client's character set, which is how the server reads statements,
// one of mbCollation's: SET NAMES x, SET CHARACTER SET x (CHARSET x) or
// an assignment to character_set_client, whose value names such a set or
// is anything other than a plain name (a variable, DEFAULT, a function),
// which only the server resolves. Assignments to user variables and to
// other settings do not count: mysqldump's
// SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT saves the set and
// changes nothing. It errs towards yes: a wrong yes costs only a second
// reading of the session's ambiguous statements.
func setsMBCharset(text string) bool {
	q := sqlStart(text)
	if len(q) < 4 || !strings.EqualFold(q[:3], "set") || !isSpace(q[3]) && q[3] != '@' && q[3] != '/' {
		return false
	}
	l := strings.ToLower(strings.TrimRight(strings.TrimSpace(q[3:]), ";"))
	for _, prefix := range []string{"names", "character set", "charset"} {
		if v, ok := strings.CutPrefix(l, prefix); ok && v != "" && (isSpace(v[0]) || v[0] == '\'' || v[0] == '"' || v[0] == '`') {
			return riskyCharset(strings.Fields(v)[0])
		}
	}
	for _, part := range strings.Split(l, ",") {
		target, value, ok := strings.Cut(part, "=")
		if !ok {
			continue
		}
		target = strings.TrimSuffix(strings.TrimSpace(target), ":")
		for _, scope := range []string{"global ", "session ", "local ", "@@global.", "@@session.", "@@local.", "@@"} {
			target = strings.TrimSpace(strings.TrimPrefix(target, scope))
		}
		if target == "character_set_client" {
			if f := strings.Fields(value); len(f) == 0 || riskyCharset(f[0]) {
				return true
			}
		}
	}
	return false
}

// riskyCharset reports whether v, the value given for the client's
// character set, may be one of mbCollation's sets: it names one, or it is
// not a plain name at all.
func riskyCharset(v string) bool {
	v = strings.Trim(v, "'\"`")
	switch v {
	case "gbk", "big5", "sjis", "cp932", "gb18030", "default", "":
		return true
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return true // @var, a function, anything the server evaluates
		}
	}
	return false
}
