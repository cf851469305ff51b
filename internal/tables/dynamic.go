package tables

import "strings"

// DynamicOp is a statement of dynamic SQL.
type DynamicOp uint8

const (
	NotDynamic       DynamicOp = iota
	Prepare                    // PREPARE name FROM ...
	Execute                    // EXECUTE name [USING ...]
	ExecuteImmediate           // EXECUTE IMMEDIATE ... (MariaDB)
	Deallocate                 // DEALLOCATE PREPARE name, DROP PREPARE name
)

// Dynamic is what a statement of dynamic SQL says. The tables a prepared
// statement touches are in its text, not in the statement that runs it:
// the proxy remembers each PREPARE's text by name, so that EXECUTE gets
// the tables of what it runs, as the server's own audit sees them.
type Dynamic struct {
	Op   DynamicOp
	Name string // the prepared statement's name, lower case (names are case-insensitive)
	// Text is the statement's SQL when string literals give it; Known
	// is false when an expression does (FROM @q), which only the server
	// evaluates.
	Text  string
	Known bool
	// Var is the user variable (lower case, without @) an expression
	// that is only @var takes the text from (PREPARE s FROM @q).
	Var string
}

// DynamicSQL reads a statement of dynamic SQL: PREPARE name FROM 'text',
// EXECUTE name, EXECUTE IMMEDIATE 'text', DEALLOCATE or DROP PREPARE name.
// ok is false for any other statement.
func DynamicSQL(sql string) (d Dynamic, ok bool) {
	lx := lexer{src: sql}
	t := lx.next()
	switch t.upper() {
	case "PREPARE":
		d.Op = Prepare
	case "EXECUTE":
		d.Op = Execute
	case "DEALLOCATE", "DROP":
		if n := lx.next(); n.upper() != "PREPARE" {
			return Dynamic{}, false
		}
		d.Op = Deallocate
	default:
		return Dynamic{}, false
	}
	n := lx.next()
	if d.Op == Execute && n.upper() == "IMMEDIATE" {
		d.Op = ExecuteImmediate
		d.Text, d.Known, d.Var = source(&lx)
		return d, true
	}
	if n.kind != tokWord && n.kind != tokQuoted {
		return Dynamic{}, false
	}
	d.Name = strings.ToLower(n.ident())
	if d.Op == Prepare {
		if f := lx.next(); f.upper() != "FROM" {
			return Dynamic{}, false
		}
		d.Text, d.Known, d.Var = source(&lx)
	}
	return d, true
}

// source reads what a PREPARE or EXECUTE IMMEDIATE takes its text from:
// literals, or a lone user variable, whose name it returns.
func source(lx *lexer) (text string, known bool, v string) {
	save := *lx
	if t := lx.next(); t.kind == tokPunct && t.text == "@" {
		if n := lx.next(); n.kind == tokWord || n.kind == tokQuoted {
			name := strings.ToLower(n.ident())
			e := lx.next()
			for ; e.kind == tokPunct && e.text == ";"; e = lx.next() {
			}
			if e.kind == tokEOF {
				return "", false, name
			}
		}
		return "", false, ""
	}
	*lx = save
	text, known = literal(lx)
	return text, known, ""
}

// Assign is one user variable a SET gives a text only literals make.
type Assign struct {
	Var  string // lower case, without @
	Text string
}

// SetVars reads a SET of user variables to literals: SET @a = 'x',
// @b := CONCAT('y', 'z'). ok is false unless every assignment in the
// statement is of that kind, so that a caller never keeps a value the
// statement changed in a way it cannot know.
func SetVars(sql string) (as []Assign, ok bool) {
	lx := lexer{src: sql}
	if lx.next().upper() != "SET" {
		return nil, false
	}
	for {
		if t := lx.next(); t.kind != tokPunct || t.text != "@" {
			return nil, false
		}
		n := lx.next()
		if n.kind != tokWord && n.kind != tokQuoted {
			return nil, false
		}
		a := Assign{Var: strings.ToLower(n.ident())}
		switch op := lx.next(); {
		case op.kind == tokPunct && op.text == "=":
		case op.kind == tokPunct && op.text == ":":
			if eq := lx.next(); eq.kind != tokPunct || eq.text != "=" {
				return nil, false
			}
		default:
			return nil, false
		}
		var b strings.Builder
		t := lx.next()
		concat := t.upper() == "CONCAT"
		if concat {
			if p := lx.next(); p.kind != tokPunct || p.text != "(" {
				return nil, false
			}
			t = lx.next()
		}
		for {
			if t.kind == tokWord && (t.text[0] == '_' || t.upper() == "N") {
				t = lx.next() // a character set introducer
			}
			if t.kind != tokString {
				return nil, false
			}
			for ; t.kind == tokString; t = lx.next() {
				b.WriteString(unquote(t.text))
			}
			if concat && t.kind == tokPunct && t.text == "," {
				t = lx.next()
				continue
			}
			break
		}
		if concat {
			if t.kind != tokPunct || t.text != ")" {
				return nil, false
			}
			t = lx.next()
		}
		a.Text = b.String()
		as = append(as, a)
		switch {
		case t.kind == tokPunct && t.text == ",":
			continue
		case t.kind == tokEOF, t.kind == tokPunct && t.text == ";":
			return as, true
		default:
			return nil, false
		}
	}
}

// literal reads a string expression that is only literals: adjacent
// strings concatenate ('SELECT * ' 'FROM t'), and a character set
// introducer (_utf8mb4'...', N'...') may precede the first. known is
// false for anything else (a variable, CONCAT(...)).
func literal(lx *lexer) (text string, known bool) {
	var b strings.Builder
	t := lx.next()
	if t.kind == tokWord && (t.text[0] == '_' || t.upper() == "N") {
		t = lx.next()
	}
	n := 0
	for ; t.kind == tokString; t = lx.next() {
		b.WriteString(unquote(t.text))
		n++
	}
	if n == 0 {
		return "", false
	}
	// Only the end of the statement may follow.
	for ; t.kind == tokPunct && t.text == ";"; t = lx.next() {
	}
	if t.kind != tokEOF {
		return "", false
	}
	return b.String(), true
}

// unquote returns the value of a single-quoted SQL string: its quotes
// removed, doubled quotes and backslash escapes resolved as MySQL does.
func unquote(s string) string {
	if len(s) < 2 || s[0] != '\'' {
		return ""
	}
	q := s[0]
	s = s[1:]
	if len(s) > 0 && s[len(s)-1] == q {
		s = s[:len(s)-1]
	}
	if !strings.ContainsAny(s, "\\'") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s):
			i++
			switch e := s[i]; e {
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			case 'r':
				b.WriteByte('\r')
			case '0':
				b.WriteByte(0)
			case 'b':
				b.WriteByte('\b')
			case 'Z':
				b.WriteByte(26)
			case '%', '_':
				b.WriteByte('\\') // kept: LIKE wildcards
				b.WriteByte(e)
			default:
				b.WriteByte(e)
			}
		case c == q && i+1 < len(s) && s[i+1] == q:
			b.WriteByte(q)
			i++
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
