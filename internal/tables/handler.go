package tables

import "strings"

// A Handler statement reads a table's rows through a handler the session
// opened on it: HANDLER t OPEN [AS h], HANDLER h READ ..., HANDLER h CLOSE.
// The READ names the handler, which may be an alias, so only a session that
// remembers its OPENs knows the table read (server_audit names it).
type Handler struct {
	Op string // "OPEN", "READ" or "CLOSE"
	// DB and Table: OPEN's table; for READ and CLOSE, Table is the
	// handler's name and DB is "".
	DB, Table string
	// Name is the handler an OPEN makes: its alias, or the table's name.
	Name string
}

// ParseHandler reads a HANDLER statement; ok is false for any other text.
func ParseHandler(sql string) (h Handler, ok bool) {
	s := scanner{lx: lexer{src: sql}}
	if s.next().upper() != "HANDLER" {
		return h, false
	}
	s.next()
	db, name, ok := s.name()
	if !ok {
		return h, false
	}
	h.Op = s.tok.upper()
	switch h.Op {
	case "OPEN":
		h.DB, h.Table, h.Name = db, name, name
		t := s.next()
		if t.upper() == "AS" {
			t = s.next()
		}
		if t.kind == tokQuoted || t.kind == tokWord {
			h.Name = t.ident()
		}
	case "READ", "CLOSE":
		if db != "" {
			return h, false // a handler's name is not qualified
		}
		h.Table = name
	default:
		return h, false
	}
	h.Name = strings.ToLower(h.Name)
	return h, true
}
