package tables

import (
	"strings"

	"github.com/das-mysql/das/internal/charset"
)

// Scan finds the tables a statement names without a grammar, from its
// tokens. It is the fallback for a statement the parser rejects but the
// server ran (MariaDB syntax the grammar lacks, such as SELECT
// HIGH_PRIORITY, INSERT DELAYED or DELETE ... RETURNING) and for one too
// long to parse: without it, such syntax would hide a statement's tables
// from the stream, and a client could read a table without an AUX event
// by choosing its words. Scan errs on the side of naming: every name in a
// table's place (after FROM, JOIN, INTO, UPDATE, TABLE, ..., and after a
// comma in a list of tables) is listed, so a name may be an alias or a
// CTE the scan did not recognise, but a table is not left out.
// Executable comments (/*! ... */, /*M! ... */) are read as SQL, as the
// server reads them. Operations follow the statement's verb: the target of
// INSERT, REPLACE, UPDATE, DELETE, LOAD DATA and TRUNCATE is WRITE; of
// CREATE, ALTER, DROP and RENAME TABLE those operations; everything else
// READ. It runs in one pass, linear in the statement's length.
//
// A text that charset.Ambiguous reports is scanned byte by byte and as each
// multibyte character set would have the server read it, and names the
// tables of every reading.
func Scan(sql string) []Access {
	return scan(sql, false)
}

// ScanNoEscapes is Scan for a session whose sql_mode has
// NO_BACKSLASH_ESCAPES (the server says so in the status of each answer):
// a backslash in a literal is then an ordinary character, and 'a\' ends
// at its second quote, where the grammar, which knows only the default
// mode, reads on and takes what follows for part of the string.
func ScanNoEscapes(sql string) []Access {
	return scan(sql, true)
}

func scan(sql string, noEsc bool) []Access {
	s := scanner{lx: lexer{src: sql, noEsc: noEsc}}
	s.run()
	if charset.Ambiguous(sql) {
		for _, f := range charset.Families {
			m := scanner{lx: lexer{src: sql, mb: f, noEsc: noEsc}}
			m.run()
			for _, a := range m.out {
				s.add(a)
			}
		}
	}
	return s.out
}

type scanner struct {
	lx      lexer
	tok     token // current token
	prev    token // the one before
	verb    string
	depth   int         // parentheses open
	lists   []tableList // lists of tables open, innermost last
	targets int         // tables still due as the verb's target (-1: until the list ends)
	deleted []string
	aliases map[string]Access
	cte     map[string]bool // names of common table expressions
	inWith  bool            // in a WITH clause, before its statement
	useDB   string          // the database a USE earlier in the text chose
	start   int             // the statement's first entry in out
	selects bool            // the statement has a SELECT
	replace bool            // CREATE OR REPLACE
	update  bool            // ... FOR UPDATE
	out     []Access
}

// tableList is a list of tables that commas continue (FROM a, b; DROP TABLE
// a, b) at a depth of parentheses; op is its tables' operation, or "" for
// the operation the verb's target rule gives.
type tableList struct {
	depth int
	op    string
}

func (s *scanner) next() token {
	s.prev = s.tok
	s.tok = s.lx.next()
	return s.tok
}

// run scans each statement of the text in turn: a text the proxy could
// not split into its statements (a compound statement, a CALL among
// others) names the tables of all of them.
func (s *scanner) run() {
	for {
		s.statement()
		if s.tok.kind == tokEOF {
			return
		}
	}
}

// statement scans one statement, from the token after s.tok to the ";"
// that ends it or the end of the text, where it leaves s.tok.
func (s *scanner) statement() {
	s.verb, s.depth, s.lists, s.targets = "", 0, s.lists[:0], 0
	s.deleted, s.aliases, s.cte, s.inWith = s.deleted[:0], nil, nil, false
	s.start, s.selects, s.replace, s.update = len(s.out), false, false, false
	t := s.next()
	for t.kind == tokPunct && t.text == "(" {
		s.depth++
		t = s.next()
	}
	s.verb = t.upper()
	switch s.verb {
	case "SHOW", "GRANT", "REVOKE":
		// Names there are not tables read.
		for t.kind != tokEOF && (t.kind != tokPunct || t.text != ";") {
			t = s.next()
		}
		return
	case "":
		if t.kind == tokEOF || t.kind == tokPunct && t.text == ";" {
			return
		}
	case "WITH":
		s.cte, s.inWith = map[string]bool{}, true
		s.next()
	case "USE":
		// The statements after it in the text name its tables.
		if t := s.next(); t.kind == tokWord || t.kind == tokQuoted {
			s.useDB = t.ident()
			s.next()
		}
	default:
		s.prefix()
	}
	s.loop()
	s.resolveDeleted()
	s.finish()
}

// finish adds what a statement's verb implies for the tables it named, as
// server_audit records it: CREATE TABLE ... SELECT writes the new table;
// CREATE OR REPLACE drops the old one (named whether or not there was one:
// the scan cannot know, and a table's data must not go unnamed; the
// server names the DROP only when it happened); OPTIMIZE TABLE alters and
// writes its tables; SELECT ... FOR UPDATE writes (locks for writing)
// what it reads.
func (s *scanner) finish() {
	n := len(s.out)
	for i := s.start; i < n; i++ {
		a := s.out[i]
		switch {
		case s.verb == "CREATE" && a.Op == Create && s.selects,
			s.verb == "OPTIMIZE" && a.Op == Alter:
			s.add(Access{Op: Write, DB: a.DB, Table: a.Table})
		case s.verb == "SELECT" && s.update && a.Op == Read:
			s.out[i].Op = Write
		}
		if s.verb == "CREATE" && a.Op == Create && s.replace {
			s.add(Access{Op: Drop, DB: a.DB, Table: a.Table})
		}
	}
}

// prefix reads what follows the verb at s.tok, up to the statement's first
// table where the verb puts one.
func (s *scanner) prefix() {
	switch s.verb {
	case "INSERT", "REPLACE":
		s.next()
		s.skipWords("LOW_PRIORITY", "DELAYED", "HIGH_PRIORITY", "IGNORE", "INTO")
		s.targets = 1
		s.table(Write, false)
	case "UPDATE":
		s.next()
		s.skipWords("LOW_PRIORITY", "IGNORE")
		s.targets = -1 // every table before SET
		s.table(Write, true)
	case "DELETE":
		s.next()
		s.skipWords("LOW_PRIORITY", "QUICK", "IGNORE")
		if s.tok.upper() == "FROM" {
			s.targets = -1 // the list after FROM
		} else {
			// Multiple-table DELETE: the names before FROM are its
			// targets, tables or aliases of the FROM clause.
			s.targetNames()
		}
	case "TRUNCATE":
		s.next()
		s.skipWords("TABLE")
		s.targets = 1
		s.table(Write, false)
	case "HANDLER", "DESCRIBE", "DESC", "EXPLAIN":
		// HANDLER t OPEN; DESCRIBE t (EXPLAIN SELECT ... goes on below).
		s.next()
		s.skipWords("EXTENDED", "PARTITIONS", "FORMAT", "ANALYZE")
		s.table(Read, false)
	default:
		s.next()
	}
}

// loop reads the statement's remaining tokens, starting with s.tok.
func (s *scanner) loop() {
	for t := s.tok; t.kind != tokEOF; {
		switch {
		case t.kind == tokPunct:
			switch t.text {
			case "(":
				s.depth++
			case ")":
				s.depth--
				for len(s.lists) > 0 && s.lists[len(s.lists)-1].depth > s.depth {
					s.lists = s.lists[:len(s.lists)-1]
				}
			case ",":
				if n := len(s.lists); n > 0 && s.lists[n-1].depth == s.depth {
					s.next()
					s.table(cmpOr(s.lists[n-1].op, s.op()), false)
					t = s.tok
					continue
				}
			case ";":
				if s.depth <= 0 {
					return // the statement's end
				}
			}
		case t.kind == tokWord:
			u := t.upper()
			if s.verb == "WITH" && s.depth == 0 {
				switch u {
				case "INSERT", "REPLACE", "UPDATE", "DELETE":
					// WITH ... UPDATE t ...: the statement's own verb.
					s.verb, s.inWith = u, false
					s.prefix()
					t = s.tok
					continue
				}
			}
			switch u {
			case "FROM", "JOIN", "STRAIGHT_JOIN":
				if u == "STRAIGHT_JOIN" && s.prev.kind == tokWord && selectOption(s.prev.upper()) {
					break // SELECT STRAIGHT_JOIN ...: an option, not a join
				}
				s.next()
				s.skipWords("LATERAL", "ONLY")
				s.table(s.op(), u == "FROM")
				t = s.tok
				continue
			case "INTO":
				if s.verb == "LOAD" || s.verb == "INSERT" || s.verb == "REPLACE" {
					s.next()
					s.skipWords("TABLE")
					s.targets = 1
					s.table(Write, false)
					t = s.tok
					continue
				}
				s.endList() // SELECT ... INTO @v, INTO OUTFILE
			case "SEQUENCE":
				// MariaDB's sequences are tables: CREATE SEQUENCE s creates
				// and writes it, as server_audit says; DROP SEQUENCE a, b.
				if s.depth == 0 && (s.verb == "CREATE" || s.verb == "ALTER" || s.verb == "DROP") {
					op := s.ddlOp()
					s.next()
					s.skipWords("IF", "NOT", "EXISTS")
					s.lists = append(s.lists, tableList{depth: s.depth, op: op})
					s.table(op, false)
					if op == Create && len(s.out) > 0 {
						s.add(Access{Op: Write, DB: s.out[len(s.out)-1].DB, Table: s.out[len(s.out)-1].Table})
					}
					t = s.tok
					continue
				}
			case "REPLACE":
				if s.verb == "CREATE" && s.prev.upper() == "OR" {
					s.replace = true
				}
			case "NEXTVAL", "SETVAL":
				// NEXTVAL(s) and SETVAL(s, n) write the sequence s.
				if n := s.next(); n.kind == tokPunct && n.text == "(" {
					s.depth++
					s.next()
					s.table(Write, false)
				}
				t = s.tok
				continue
			case "NEXT":
				// NEXT VALUE FOR s writes it too.
				if s.next().upper() == "VALUE" && s.next().upper() == "FOR" {
					s.next()
					s.table(Write, false)
				}
				t = s.tok
				continue
			case "TABLE", "TABLES":
				op := s.ddlOp()
				s.next()
				s.skipWords("IF", "NOT", "EXISTS")
				switch s.verb {
				case "CREATE", "ALTER", "TABLE", "TRUNCATE", "LOAD", "SELECT":
					s.table(op, false) // one table, then its definition
				default:
					s.lists = append(s.lists, tableList{depth: s.depth, op: op})
					s.table(op, false) // DROP TABLE a, b; LOCK TABLES a READ, b WRITE
				}
				t = s.tok
				continue
			case "ON":
				if (s.verb == "CREATE" || s.verb == "DROP") && s.depth == 0 && len(s.out) == 0 {
					// CREATE INDEX i ON t, CREATE TRIGGER ... ON t.
					s.next()
					s.table(Alter, false)
					t = s.tok
					continue
				}
			case "RENAME":
				// ALTER TABLE t ..., RENAME [TO|AS] u (not RENAME COLUMN,
				// INDEX or KEY): t is renamed, perhaps to another database.
				if s.verb == "ALTER" && s.depth == 0 && len(s.out) > s.start && s.out[s.start].Op == Alter {
					s.next()
					if w := s.tok.upper(); w == "COLUMN" || w == "INDEX" || w == "KEY" {
						t = s.tok
						continue
					}
					s.skipWords("TO", "AS")
					if db, name, ok := s.name(); ok {
						from := s.out[s.start]
						s.out = append(s.out, Access{Op: Rename, DB: from.DB, Table: from.Table, ToDB: cmpOr(db, s.useDB), ToTable: name})
					}
					t = s.tok
					continue
				}
			case "TO":
				if s.verb == "RENAME" && len(s.out) > 0 && s.out[len(s.out)-1].Op == Rename {
					s.next()
					if db, name, ok := s.name(); ok {
						last := &s.out[len(s.out)-1]
						last.ToDB, last.ToTable = cmpOr(db, s.useDB), name
					}
					t = s.tok
					continue
				}
			case "SET":
				if s.verb == "UPDATE" && s.targets < 0 {
					s.targets = 0
				}
				s.endList()
			case "WHERE", "GROUP", "HAVING", "ORDER", "LIMIT", "WINDOW", "UNION", "EXCEPT", "INTERSECT",
				"USING", "RETURNING", "FOR", "LOCK", "VALUES", "VALUE", "SELECT", "PARTITION":
				if u == "FOR" && s.depth == 0 && s.lx.peekWord() == "UPDATE" {
					s.update = true
				}
				if u == "SELECT" {
					s.selects = true
					if s.depth == 0 {
						s.inWith = false // the statement after its WITH clause
					}
				}
				s.endList()
			default:
				if s.inWith && s.depth == 0 {
					s.maybeCTE(t)
					t = s.tok
					continue
				}
			}
		}
		t = s.next()
	}
}

// maybeCTE reads a word of a WITH clause outside its parentheses: a name
// followed by AS ( or by a column list and AS ( is a common table
// expression, not a table.
func (s *scanner) maybeCTE(t token) {
	name := t.ident()
	n := s.next()
	if n.kind == tokWord && n.upper() == "AS" {
		if s.next().kind == tokPunct && s.tok.text == "(" {
			s.cte[strings.ToLower(name)] = true
		}
		return
	}
	if n.kind == tokPunct && n.text == "(" && !isKeyword(t.upper()) {
		// WITH name (a, b) AS (...): look past the column list.
		save := s.lx
		depth := 1
		for depth > 0 {
			m := s.lx.next()
			if m.kind == tokEOF {
				break
			}
			if m.kind == tokPunct && m.text == "(" {
				depth++
			} else if m.kind == tokPunct && m.text == ")" {
				depth--
			}
		}
		if as := s.lx.next(); as.kind == tokWord && as.upper() == "AS" {
			s.cte[strings.ToLower(name)] = true
		}
		s.lx = save // the tokens are read again by the loop
	}
}

// endList closes the lists of tables open at this depth: a clause that
// cannot hold a table's name has begun.
func (s *scanner) endList() {
	for len(s.lists) > 0 && s.lists[len(s.lists)-1].depth >= s.depth {
		s.lists = s.lists[:len(s.lists)-1]
	}
	if s.targets < 0 && s.verb == "DELETE" {
		s.targets = 0
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// op is the operation of the next table in a FROM or JOIN: the verb's
// target while one is due, else READ.
func (s *scanner) op() string {
	if s.targets != 0 {
		switch s.verb {
		case "INSERT", "REPLACE", "UPDATE", "DELETE", "LOAD", "TRUNCATE":
			return Write
		}
	}
	return Read
}

// ddlOp is the operation of a table after TABLE or TABLES.
func (s *scanner) ddlOp() string {
	switch s.verb {
	case "CREATE":
		if s.depth == 0 {
			return Create
		}
	case "ALTER":
		return Alter
	case "DROP":
		return Drop
	case "RENAME":
		return Rename
	case "TRUNCATE", "LOAD", "REPAIR":
		return Write
	case "OPTIMIZE":
		return Alter // and written (finish)
	}
	return Read
}

func (s *scanner) skipWords(words ...string) {
	for s.tok.kind == tokWord {
		u := s.tok.upper()
		found := false
		for _, w := range words {
			if u == w {
				found = true
				break
			}
		}
		if !found {
			return
		}
		s.next()
	}
}

// table reads a table reference at s.tok (name, optional alias) and adds
// it as op; list opens a list of tables that commas continue.
func (s *scanner) table(op string, list bool) {
	if list {
		s.lists = append(s.lists, tableList{depth: s.depth})
	}
	if s.tok.kind == tokPunct && s.tok.text == "(" {
		return // a subquery or a parenthesised join: the loop reads it
	}
	db, name, ok := s.name()
	if !ok {
		return
	}
	if s.targets > 0 {
		s.targets--
	}
	if db == "" && s.useDB != "" && !s.cte[strings.ToLower(name)] {
		db = s.useDB
	}
	a := Access{Op: op, DB: db, Table: name}
	if db == "" && s.cte[strings.ToLower(name)] {
		return
	}
	s.add(a)
	// An alias: [AS] name.
	t := s.tok
	if t.kind == tokWord && t.upper() == "AS" {
		t = s.next()
	}
	if (t.kind == tokWord && !isKeyword(t.upper())) || t.kind == tokQuoted {
		if s.aliases == nil {
			s.aliases = map[string]Access{}
		}
		s.aliases[strings.ToLower(t.ident())] = a
		s.next()
	}
}

// name reads [db.]table at s.tok, leaving s.tok on the token after it.
func (s *scanner) name() (db, name string, ok bool) {
	t := s.tok
	if !(t.kind == tokQuoted || t.kind == tokWord && !notName(t.upper())) {
		return "", "", false
	}
	name = t.ident()
	n := s.next()
	if n.kind == tokPunct && n.text == "." {
		m := s.next()
		if m.kind == tokQuoted || m.kind == tokWord {
			db, name = name, m.ident()
			s.next()
		}
	}
	if db == "" && strings.EqualFold(name, "dual") {
		return "", "", false
	}
	return db, name, true
}

// targetNames reads the names a multiple-table DELETE lists before FROM.
func (s *scanner) targetNames() {
	for {
		t := s.tok
		if !(t.kind == tokQuoted || t.kind == tokWord && !isKeyword(t.upper())) {
			return
		}
		name := t.ident()
		if n := s.next(); n.kind == tokPunct && n.text == "." {
			if m := s.next(); m.kind == tokQuoted || m.kind == tokWord {
				name += "." + m.ident()
				s.next()
			}
		}
		// t1.* names t1
		if s.tok.kind == tokPunct && s.tok.text == "*" {
			s.next()
		}
		s.deleted = append(s.deleted, strings.TrimSuffix(name, ".*"))
		if s.tok.kind != tokPunct || s.tok.text != "," {
			return
		}
		s.next()
	}
}

// resolveDeleted marks the tables a multiple-table DELETE names before
// FROM as written, through the FROM clause's aliases.
func (s *scanner) resolveDeleted() {
	for _, d := range s.deleted {
		db, name, _ := strings.Cut(d, ".")
		if name == "" {
			db, name = "", db
		}
		a, ok := s.aliases[strings.ToLower(name)]
		if !ok || db != "" {
			a = Access{DB: cmpOr(db, s.useDB), Table: name}
		}
		a.Op = Write
		s.add(a)
	}
	if len(s.deleted) > 0 {
		// A table written is not also listed as read.
		out := s.out[:0]
		for _, a := range s.out {
			if a.Op == Read && s.written(a) {
				continue
			}
			out = append(out, a)
		}
		s.out = out
	}
}

func (s *scanner) written(r Access) bool {
	for _, a := range s.out {
		if a.Op == Write && a.DB == r.DB && a.Table == r.Table {
			return true
		}
	}
	return false
}

func (s *scanner) add(a Access) {
	for i, o := range s.out {
		if o.DB == a.DB && o.Table == a.Table {
			if o.Op == a.Op || a.Op == Read {
				return
			}
			if o.Op == Read {
				s.out[i].Op = a.Op // written after all
				return
			}
		}
	}
	s.out = append(s.out, a)
}

func selectOption(u string) bool {
	switch u {
	case "SELECT", "ALL", "DISTINCT", "DISTINCTROW", "HIGH_PRIORITY", "SQL_SMALL_RESULT", "SQL_BIG_RESULT",
		"SQL_BUFFER_RESULT", "SQL_CACHE", "SQL_NO_CACHE", "SQL_CALC_FOUND_ROWS":
		return true
	}
	return false
}

// notName reports the reserved words that can stand where a table's
// name would (FROM (SELECT ...), INSERT INTO t SELECT, FROM JSON_TABLE(...)).
// Only these: a non-reserved keyword may name a table unquoted.
func notName(u string) bool {
	switch u {
	case "SELECT", "WITH", "VALUES", "SET", "WHERE", "ON", "USING", "JSON_TABLE", "LATERAL", "FOR",
		"LIMIT", "ORDER", "GROUP", "HAVING", "UNION", "EXCEPT", "INTERSECT", "INTO", "READ", "WRITE",
		"TO", "LIKE", "AS", "FROM", "JOIN", "NOT", "IF", "EXISTS", "DEFAULT", "PARTITION", "TABLE":
		return true
	}
	return false
}

// isKeyword reports the reserved words that can follow a place for a
// table without being one (unquoted, a reserved word cannot name a table).
func isKeyword(u string) bool {
	switch u {
	case "SELECT", "WITH", "VALUES", "VALUE", "SET", "WHERE", "ON", "USING", "LIMIT", "ORDER", "GROUP",
		"HAVING", "WINDOW", "UNION", "EXCEPT", "INTERSECT", "PARTITION", "FOR", "LOCK", "INTO", "JOIN",
		"INNER", "LEFT", "RIGHT", "CROSS", "NATURAL", "STRAIGHT_JOIN", "OUTER", "AS", "FROM", "DEFAULT",
		"USE", "IGNORE", "FORCE", "RETURNING", "TABLE", "LATERAL", "IF", "NOT", "LIKE", "READ",
		"WRITE", "LOW_PRIORITY", "TO", "AND", "OR", "IN", "IS", "NULL", "BY", "CHARACTER", "FIELDS",
		"COLUMNS", "LINES", "REPLACE", "DUAL", "KEY", "INDEX", "ADD", "DROP", "CHANGE", "MODIFY", "RENAME",
		"ALTER", "WAIT", "NOWAIT", "SKIP", "OF":
		return true
	}
	return false
}

type tokKind uint8

const (
	tokEOF    tokKind = iota
	tokWord           // an unquoted word: keyword, name or number
	tokQuoted         // a `quoted` or "quoted" name
	tokString         // a 'string', quotes included
	tokPunct          // one byte of punctuation
)

type token struct {
	kind tokKind
	text string // for tokQuoted, the text between the quotes, unescaped lazily by ident
	q    byte   // tokQuoted: the quote
}

func (t token) upper() string {
	if t.kind != tokWord {
		return ""
	}
	for i := 0; i < len(t.text); i++ {
		if c := t.text[i]; c >= 'a' && c <= 'z' {
			return strings.ToUpper(t.text)
		}
	}
	return t.text
}

// ident is the name a word or quoted name stands for.
func (t token) ident() string {
	if t.kind == tokQuoted {
		d := string([]byte{t.q, t.q})
		if strings.Contains(t.text, d) {
			return strings.ReplaceAll(t.text, d, string(t.q))
		}
	}
	return t.text
}

// lexer splits MySQL text into tokens, skipping comments, whitespace and
// the insides of strings; an executable comment's opener and closer are
// skipped and its contents read as SQL.
type lexer struct {
	src string
	i   int
	mb  charset.Family // how two-byte characters read (None: byte by byte)
	// noEsc: a backslash in a literal is an ordinary character
	// (sql_mode NO_BACKSLASH_ESCAPES).
	noEsc bool
}

// skipMB moves past a string or quoted name opened by q at l.i, reading
// two-byte characters as l.mb does, and returns the index of its closing
// quote.
func (l *lexer) skipMB(q byte) int {
	src := l.src
	for j := l.i + 1; j < len(src); {
		switch c := src[j]; {
		case l.mb.Pair(src, j):
			j += 2
		case c == '\\' && q != '`' && !l.noEsc:
			j += 2
		case c == q:
			if j+1 < len(src) && src[j+1] == q {
				j += 2
				continue
			}
			l.i = j + 1
			return j
		default:
			j++
		}
	}
	l.i = len(src)
	return len(src)
}

func (l *lexer) next() token {
	src := l.src
	for l.i < len(src) {
		c := src[l.i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			l.i++
		case c == '#':
			l.skipLine()
		case c == '-' && l.i+2 < len(src) && src[l.i+1] == '-' && src[l.i+2] <= ' ',
			c == '-' && l.i+2 == len(src) && src[l.i+1] == '-':
			l.skipLine()
		case c == '/' && l.i+1 < len(src) && src[l.i+1] == '*':
			j := l.i + 2
			if j < len(src) && src[j] == '!' || j+1 < len(src) && src[j] == 'M' && src[j+1] == '!' {
				// Executable: its SQL counts. Skip the opener and version.
				j = strings.IndexByte(src[j:], '!') + j + 1
				for j < len(src) && src[j] >= '0' && src[j] <= '9' {
					j++
				}
				l.i = j
				continue
			}
			if end := strings.Index(src[j:], "*/"); end >= 0 {
				l.i = j + end + 2
			} else {
				l.i = len(src)
			}
		case c == '*' && l.i+1 < len(src) && src[l.i+1] == '/':
			l.i += 2 // the end of an executable comment
		case l.mb != charset.None && (c == '\'' || c == '`' || c == '"'):
			start := l.i
			end := l.skipMB(c)
			if c == '\'' {
				return token{kind: tokString, text: src[start:l.i], q: c}
			}
			return token{kind: tokQuoted, text: src[start+1 : end], q: c}
		case c == '\'':
			start := l.i
			l.skipString(c)
			return token{kind: tokString, text: src[start:l.i], q: c}
		case c == '`' || c == '"':
			// A quoted name (a "string" too, unless ANSI_QUOTES: where a
			// table belongs, the scan reads it as a name).
			start := l.i + 1
			j := start
			for {
				k := strings.IndexByte(src[j:], c)
				if k < 0 {
					l.i = len(src)
					return token{kind: tokQuoted, text: src[start:], q: c}
				}
				j += k
				if c == '"' && !l.noEsc && j > start && backslashes(src[start:j])%2 == 1 {
					j++
					continue
				}
				if j+1 < len(src) && src[j+1] == c {
					j += 2
					continue
				}
				break
			}
			l.i = j + 1
			return token{kind: tokQuoted, text: src[start:j], q: c}
		case identByte(c):
			j := l.i
			for j < len(src) && identByte(src[j]) {
				if l.mb.Pair(src, j) {
					j++ // a lead byte: the next is its character's
				}
				j++
			}
			j = min(j, len(src))
			t := token{kind: tokWord, text: src[l.i:j]}
			l.i = j
			return t
		default:
			l.i++
			return token{kind: tokPunct, text: src[l.i-1 : l.i]}
		}
	}
	return token{kind: tokEOF}
}

func (l *lexer) skipLine() {
	if k := strings.IndexByte(l.src[l.i:], '\n'); k >= 0 {
		l.i += k + 1
	} else {
		l.i = len(l.src)
	}
}

// skipString moves past a string opened by quote q at l.i, with backslash
// escapes and doubled quotes.
func (l *lexer) skipString(q byte) {
	src := l.src
	j := l.i + 1
	for {
		k := strings.IndexByte(src[j:], q)
		if k < 0 {
			l.i = len(src)
			return
		}
		j += k
		if !l.noEsc && backslashes(src[l.i+1:j])%2 == 1 {
			j++
			continue
		}
		if j+1 < len(src) && src[j+1] == q {
			j += 2
			continue
		}
		l.i = j + 1
		return
	}
}

// backslashes counts the backslashes that end s.
func backslashes(s string) int {
	n := 0
	for n < len(s) && s[len(s)-1-n] == '\\' {
		n++
	}
	return n
}

// peekWord returns the next token's upper-case word ("" for any other
// token) without moving past it.
func (l *lexer) peekWord() string {
	save := *l
	t := l.next()
	*l = save
	return t.upper()
}
