package auditlog

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/das-mysql/das/internal/event"
	"github.com/das-mysql/das/internal/redact"
)

// Record is one server_audit line, fields as the plugin wrote them (the
// object unescaped).
type Record struct {
	Time         time.Time
	ServerHost   string
	User         string
	Host         string // without the port
	Port         string // from MariaDB 12's "host:port"; "" before
	ConnectionID string // digits
	QueryID      int64
	Operation    string // as written: QUERY, CONNECT, CHANGE_USER, READ, ...
	Database     string
	Object       string   // the SQL (unescaped) for QUERY, the table for table events
	ObjectLen    int      // bytes of a quoted object as written, escapes included (what the plugin's query limit bounds)
	RetCode      string   // "" on table events
	Quoted       bool     // the object was a quoted string (a query)
	Unterminated bool     // the quoted object had no closing quote (cut line): read leniently
	Extra        []string // columns after the tenth (the RDS fork adds some)
}

// ParseError says why a line is not a server_audit record.
type ParseError struct {
	Field string
	Msg   string
}

func (e *ParseError) Error() string { return "auditlog: parse " + e.Field + ": " + e.Msg }

func perr(field, msg string) error { return &ParseError{Field: field, Msg: msg} }

var errEmpty = perr("line", "empty")

// ParseLine parses one server_audit line, without its trailing newline (a
// trailing "\n" or "\r\n" is tolerated). Times are read in loc (the server's
// time zone; UTC when nil), except Aurora's epoch-microsecond form, which is
// absolute.
func ParseLine(line []byte, loc *time.Location) (Record, error) {
	var c strCache
	return parseLine(line, loc, &c)
}

// strCache keeps the last string of each short column: consecutive lines
// mostly repeat the server, user, host, database and return code, and a
// few connection ids, which then cost no allocation.
type strCache struct {
	serverHost, user, host, port, database, retCode string
	conns                                           [8]string
	next                                            int

	// The last timestamp: lines of one second share it, and time.Date in
	// a zone is the costly part of parsing it.
	timeText [17]byte
	timeN    int
	timeLoc  *time.Location
	time     time.Time
}

// parseTime is parseTime, reusing the last line's result for the same
// text in the same location.
func (c *strCache) parseTime(b []byte, loc *time.Location) (time.Time, error) {
	if c.timeN > 0 && c.timeLoc == loc && string(b) == string(c.timeText[:c.timeN]) {
		return c.time, nil
	}
	t, err := parseTime(b, loc)
	if err == nil && len(b) <= len(c.timeText) {
		c.timeN, c.timeLoc, c.time = copy(c.timeText[:], b), loc, t
	}
	return t, err
}

func (c *strCache) str(prev *string, b []byte) string {
	if string(b) != *prev {
		*prev = string(b)
	}
	return *prev
}

func (c *strCache) conn(b []byte) string {
	for _, s := range c.conns {
		if s == string(b) {
			return s
		}
	}
	s := string(b)
	c.conns[c.next] = s
	c.next = (c.next + 1) % len(c.conns)
	return s
}

func parseLine(line []byte, loc *time.Location, c *strCache) (Record, error) {
	var r Record
	if n := len(line); n > 0 && line[n-1] == '\n' {
		line = line[:n-1]
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
	}
	if len(line) == 0 {
		return r, errEmpty
	}
	if loc == nil {
		loc = time.UTC
	}
	p := line
	f, p, ok := field(p)
	if !ok {
		return r, perr("timestamp", "no comma after it")
	}
	t, err := c.parseTime(f, loc)
	if err != nil {
		return r, err
	}
	r.Time = t
	if f, p, ok = field(p); !ok {
		return r, perr("serverhost", "missing")
	}
	r.ServerHost = c.str(&c.serverHost, f)
	if f, p, ok = field(p); !ok {
		return r, perr("username", "missing")
	}
	r.User = c.str(&c.user, f)
	if f, p, ok = field(p); !ok {
		return r, perr("host", "missing")
	}
	h, port := splitHostPort(f)
	r.Host, r.Port = c.str(&c.host, h), c.str(&c.port, port)
	if f, p, ok = field(p); !ok {
		return r, perr("connectionid", "missing")
	}
	if !digits(f) {
		return r, perr("connectionid", fmt.Sprintf("%q is not a number", f))
	}
	r.ConnectionID = c.conn(f)
	if f, p, ok = field(p); !ok {
		return r, perr("queryid", "missing")
	}
	if !digits(f) {
		return r, perr("queryid", fmt.Sprintf("%q is not a number", f))
	}
	if r.QueryID, err = strconv.ParseInt(string(f), 10, 64); err != nil {
		return r, perr("queryid", err.Error())
	}
	if f, p, ok = field(p); !ok {
		return r, perr("operation", "missing")
	}
	if len(f) == 0 || !opChars(f) {
		return r, perr("operation", fmt.Sprintf("%q is not an operation", f))
	}
	r.Operation = internOp(f)
	if f, p, ok = field(p); !ok {
		return r, perr("database", "missing")
	}
	r.Database = c.str(&c.database, f)

	// The object: a quoted, escaped query, or a bare table name.
	if len(p) > 0 && p[0] == '\'' {
		r.Quoted = true
		obj, rest, ok := quoted(p[1:])
		if !ok {
			// No closing quote: a cut line. Take what is there.
			r.Object, r.ObjectLen, r.Unterminated = unescape(p[1:]), len(p)-1, true
			return r, nil
		}
		r.Object, r.ObjectLen = obj, len(p)-2-len(rest)
		if len(rest) > 0 {
			if rest[0] != ',' {
				return r, perr("object", "closing quote not followed by a comma")
			}
			rest = rest[1:]
		} else {
			return r, perr("retcode", "missing")
		}
		p = rest
	} else {
		if f, p, ok = field(p); !ok {
			return r, perr("object", "missing")
		}
		r.Object = string(f)
	}
	f, p, ok = field(p)
	r.RetCode = c.str(&c.retCode, f)
	if r.RetCode != "" && !retcode(f) {
		return r, perr("retcode", fmt.Sprintf("%q is not a number", f))
	}
	if ok {
		// Table events end with a comma (empty retcode); the RDS fork adds
		// columns. Keep any non-empty rest.
		if len(p) > 0 || r.RetCode != "" {
			r.Extra = strings.Split(string(p), ",")
		}
	}
	return r, nil
}

// field cuts p at the next comma. ok is false when there is none.
func field(p []byte) (f, rest []byte, ok bool) {
	for i, c := range p {
		if c == ',' {
			return p[:i], p[i+1:], true
		}
	}
	return p, nil, false
}

func digits(b []byte) bool {
	if len(b) == 0 || len(b) > 19 {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func retcode(b []byte) bool {
	if len(b) > 0 && b[0] == '-' {
		b = b[1:]
	}
	return digits(b)
}

func opChars(b []byte) bool {
	for _, c := range b {
		if (c < 'A' || c > 'Z') && c != '_' {
			return false
		}
	}
	return true
}

var knownOps = []string{"QUERY", "READ", "WRITE", "CONNECT", "DISCONNECT", "FAILED_CONNECT",
	"CREATE", "ALTER", "DROP", "RENAME", "CHANGEUSER", "CHANGE_USER", "PROXY_CONNECT",
	"QUERY_DDL", "QUERY_DML", "QUERY_DML_NO_SELECT", "QUERY_DCL", "TABLE"}

// internOp avoids an allocation for the operations the plugin writes.
func internOp(b []byte) string {
	for _, k := range knownOps {
		if string(b) == k {
			return k
		}
	}
	return string(b)
}

// parseTime reads "YYYYMMDD HH:MM:SS" in loc, or Aurora's epoch microseconds.
func parseTime(b []byte, loc *time.Location) (time.Time, error) {
	if len(b) == 17 && b[8] == ' ' && b[11] == ':' && b[14] == ':' {
		n := func(i, j int) (int, bool) {
			v := 0
			for _, c := range b[i:j] {
				if c < '0' || c > '9' {
					return 0, false
				}
				v = v*10 + int(c-'0')
			}
			return v, true
		}
		y, ok1 := n(0, 4)
		mo, ok2 := n(4, 6)
		d, ok3 := n(6, 8)
		h, ok4 := n(9, 11)
		mi, ok5 := n(12, 14)
		s, ok6 := n(15, 17)
		if ok1 && ok2 && ok3 && ok4 && ok5 && ok6 && mo >= 1 && mo <= 12 && d >= 1 && d <= 31 && h < 24 && mi < 60 && s < 61 {
			return time.Date(y, time.Month(mo), d, h, mi, s, 0, loc), nil
		}
	} else if len(b) >= 13 && len(b) <= 17 && digits(b) {
		// Aurora MySQL writes microseconds since the epoch.
		v, err := strconv.ParseInt(string(b), 10, 64)
		if err == nil {
			return time.UnixMicro(v), nil
		}
	}
	return time.Time{}, perr("timestamp", fmt.Sprintf("%q is neither YYYYMMDD HH:MM:SS nor epoch microseconds", b))
}

// splitHostPort splits MariaDB 12's "host:port". An IPv6 address without
// brackets is ambiguous ("::1:3306"); only a bracketed one is split.
func splitHostPort(b []byte) (host, port []byte) {
	if len(b) > 0 && b[0] == '[' {
		for i := len(b) - 1; i > 0; i-- {
			if b[i] == ']' {
				if i+1 < len(b) && b[i+1] == ':' && digits(b[i+2:]) {
					return b[1:i], b[i+2:]
				}
				break
			}
		}
		return b, nil
	}
	colon := -1
	for i, c := range b {
		if c == ':' {
			if colon >= 0 {
				return b, nil // IPv6
			}
			colon = i
		}
	}
	if colon > 0 && digits(b[colon+1:]) {
		return b[:colon], b[colon+1:]
	}
	return b, nil
}

// quoted reads an escaped string up to its closing quote (p starts after the
// opening one). ok is false when the line ends first.
func quoted(p []byte) (s string, rest []byte, ok bool) {
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case '\'':
			return string(p[:i]), p[i+1:], true
		case '\\':
			// Slow path from the first escape on.
			buf := make([]byte, 0, len(p))
			buf = append(buf, p[:i]...)
			for ; i < len(p); i++ {
				c := p[i]
				switch c {
				case '\'':
					return string(buf), p[i+1:], true
				case '\\':
					if i+1 == len(p) {
						return "", nil, false
					}
					i++
					buf = appendUnescaped(buf, p[i])
				default:
					buf = append(buf, c)
				}
			}
			return "", nil, false
		}
	}
	return "", nil, false
}

func appendUnescaped(buf []byte, c byte) []byte {
	switch c {
	case 'n':
		return append(buf, '\n')
	case 'r':
		return append(buf, '\r')
	case 't':
		return append(buf, '\t')
	case 'b':
		return append(buf, '\b')
	case 'f':
		return append(buf, '\f')
	case '\'', '\\':
		return append(buf, c)
	}
	// Not an escape server_audit writes: keep it as it is.
	return append(buf, '\\', c)
}

// unescape reads an unterminated quoted object leniently.
func unescape(p []byte) string {
	buf := make([]byte, 0, len(p))
	for i := 0; i < len(p); i++ {
		if p[i] == '\\' && i+1 < len(p) {
			i++
			buf = appendUnescaped(buf, p[i])
			continue
		}
		buf = append(buf, p[i])
	}
	return string(buf)
}

// Commands of the events that are not statements.
const (
	// CommandUnparsed marks a line that is not a server_audit record; its
	// text is in commandText (valid UTF-8) or Extra "dasRawBase64".
	CommandUnparsed = "UNPARSED"
	// CommandWarning marks a problem of the tailer itself (rotation outran
	// the reader, truncation, a checkpoint that does not match, a file that
	// cannot be read); errorMessage says what, Extra "dasWarning" names it.
	CommandWarning = "DAS_WARNING"
)

// Source is the Extra "dasSource" value of every event from a server_audit log.
const Source = "server_audit"

var (
	jsonSource = json.RawMessage(`"` + Source + `"`)
	jsonTrue   = json.RawMessage(`true`)
)

// EventOptions tune Record.Event.
type EventOptions struct {
	// ServerHost replaces the line's serverhost when set.
	ServerHost string
	// QueryLogLimit is the server's server_audit_query_log_limit; a query
	// written (escaped) at least this long less one may have been cut
	// (Extra "dasTruncated"). 0 means the plugin default, 1024; negative
	// disables the check.
	QueryLogLimit int
	// Extra, when it has room for das's fields (capacity 3 or more), holds
	// them instead of a new slice: the tailer carves these from a slab.
	Extra event.Fields
}

// Event maps the record to a DAS event. Times are the line's (second
// precision); sessionId is the connection id, statementId the query id.
func (r *Record) Event(o EventOptions) event.Event {
	var e event.Event
	r.fillEvent(&e, o)
	return e
}

// fillEvent is Event writing into e, which the tailer's batch holds: an
// event is ~500 bytes, and each copy of it was a cost per line.
func (r *Record) fillEvent(e *event.Event, o EventOptions) {
	*e = event.New(r.Time)
	e.DBUserName = r.User
	e.RemoteHost, e.RemotePort = r.Host, r.Port
	// A unix socket login shows as "localhost" with no port. Over TCP the
	// host is an IP, or a resolved name ("localhost" for 127.0.0.1 when
	// name resolution is on, which is then reported as SOCKET too).
	if r.Host == "localhost" && r.Port == "" {
		e.NetProtocol = event.NetProtocolSocket
	}
	e.SessionID = r.ConnectionID
	e.StatementID = r.QueryID
	e.DatabaseName = r.Database
	e.ServerHost = r.ServerHost
	if o.ServerHost != "" {
		e.ServerHost = o.ServerHost
	}
	e.ExitCode = r.RetCode
	// One allocation at most for das's fields: the source, the position
	// the tailer adds, and room for a flag.
	extra := o.Extra[:0]
	if cap(extra) < 3 {
		extra = make(event.Fields, 0, 3)
	}
	e.Extra = append(extra, event.Field{Key: "dasSource", Value: jsonSource})

	switch r.Operation {
	case "CONNECT", "PROXY_CONNECT":
		e.Command = event.CommandConnect
	case "DISCONNECT":
		e.Command = event.CommandDisconnect
	case "FAILED_CONNECT":
		e.Command = event.CommandFailedConnect
	case "CHANGEUSER", "CHANGE_USER":
		e.Command = event.CommandChangeUser
	case "QUERY", "QUERY_DDL", "QUERY_DML", "QUERY_DML_NO_SELECT", "QUERY_DCL":
		e.Command = event.CommandQuery
		e.CommandText = r.Object
		limit := o.QueryLogLimit
		if limit == 0 {
			limit = 1024
		}
		// The plugin cuts the query as written, escaped: log_statement_ex
		// (MariaDB plugin/server_audit/server_audit.c) caps it at limit
		// bytes and gives escape_string room for limit bytes of output,
		// which stops at limit, or at limit-1 when the next byte needs a
		// two-byte escape (\' \\ \b \t \n \f \r). So an object written
		// limit-1 bytes long or longer may have been cut; unescaped, it can
		// be far shorter. Not seen: escape_string_hide_passwords also stops
		// before a masked password that does not fit, earlier still.
		// (len(Object) covers a Record made by hand.)
		if n := max(r.ObjectLen, len(r.Object)); r.Unterminated || (limit > 0 && n >= limit-1) {
			e.Extra = append(e.Extra, event.Field{Key: "dasTruncated", Value: jsonTrue})
		}
	case "READ", "WRITE", "CREATE", "ALTER", "DROP", "RENAME":
		e.Class = event.ClassAux
		e.SubstatementID = 2
		e.Command = r.Operation
		e.CommandText = r.Object
		e.ObjectName = qualify(r.Database, r.Object)
		if r.Operation == "RENAME" {
			// "old|newdb.new": both names, as DAS lists objects.
			if old, new, ok := strings.Cut(r.Object, "|"); ok {
				e.ObjectName = qualify(r.Database, old) + "," + qualify(r.Database, new)
			}
		}
		e.ExitCode = ""
	default:
		// An operation this reader does not know: keep it verbatim.
		e.Command = r.Operation
		e.CommandText = r.Object
	}
	if !utf8.ValidString(e.CommandText) {
		// The encoder writes U+FFFD for invalid bytes; say so.
		e.Extra = append(e.Extra, event.Field{Key: "dasInvalidUTF8", Value: jsonTrue})
	}
	if len(r.Extra) > 0 {
		b, _ := json.Marshal(r.Extra)
		e.Extra = append(e.Extra, event.Field{Key: "dasAuditExtra", Value: b})
	}
}

// qualify names a table db.table unless it already has a database.
func qualify(db, table string) string {
	if db == "" || table == "" || strings.Contains(table, ".") {
		return table
	}
	return db + "." + table
}

// unparsedEvent keeps a line that is not a record: never dropped, its
// passwords masked.
func unparsedEvent(line []byte, err error, now time.Time, serverHost string) event.Event {
	e := event.New(now)
	e.Command = CommandUnparsed
	e.ExitCode = ""
	e.ServerHost = serverHost
	e.ErrorMessage = err.Error()
	e.Extra = event.Fields{{Key: "dasSource", Value: jsonSource}}
	text := redactRaw(line)
	if utf8.ValidString(text) {
		e.CommandText = text
	} else {
		// The pipeline redacts commandText only: mask this copy here.
		b, _ := json.Marshal(base64.StdEncoding.EncodeToString([]byte(text)))
		e.Extra = append(e.Extra, event.Field{Key: "dasRawBase64", Value: b})
	}
	return e
}

// redactRaw masks passwords in a line that is not a record as redact.SQL
// masks commandText. A line shaped like a record holds its SQL escaped
// inside quotes, where redact.SQL sees a single string literal: so the
// first quoted part is unescaped, redacted and, when something was masked,
// written back escaped as the plugin escapes. Then the whole line is
// redacted as SQL, for a line of bare SQL. redact.SQL works on bytes: any
// invalid UTF-8 outside the masked literals is kept.
func redactRaw(line []byte) string {
	s := string(line)
	if i := strings.IndexByte(s, '\''); i >= 0 {
		body := line[i+1:]
		obj, rest, ok := quoted(body)
		tail := "'" + string(rest)
		if !ok {
			obj, tail = unescape(body), ""
		}
		if m := redact.SQL(obj); m != obj {
			s = s[:i+1] + string(appendEscaped(nil, m)) + tail
		}
	}
	return redact.SQL(s)
}

// appendEscaped appends s escaped as server_audit escapes a query (the
// inverse of appendUnescaped).
func appendEscaped(buf []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\'', '\\':
			buf = append(buf, '\\', c)
		case '\n':
			buf = append(buf, '\\', 'n')
		case '\r':
			buf = append(buf, '\\', 'r')
		case '\t':
			buf = append(buf, '\\', 't')
		case '\b':
			buf = append(buf, '\\', 'b')
		case '\f':
			buf = append(buf, '\\', 'f')
		default:
			buf = append(buf, c)
		}
	}
	return buf
}

// IsParseError reports whether err came from ParseLine.
func IsParseError(err error) bool {
	var pe *ParseError
	return errors.As(err, &pe)
}
