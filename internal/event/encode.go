package event

import (
	"encoding/binary"
	"encoding/json"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// knownEventKeys are the JSON names Event encodes itself; Extra entries with
// these names are dropped so that the output never has duplicate keys.
var knownEventKeys = map[string]bool{
	"logTime": true, "type": true, "clientApplication": true, "pid": true,
	"dbUserName": true, "databaseName": true, "remoteHost": true, "remotePort": true,
	"command": true, "commandText": true, "paramList": true, "objectType": true,
	"objectName": true, "statementId": true, "substatementId": true, "exitCode": true,
	"sessionId": true, "rowCount": true, "serverHost": true, "serverType": true,
	"serviceName": true, "serverVersion": true, "startTime": true, "endTime": true,
	"transactionId": true, "dbProtocol": true, "netProtocol": true,
	"errorMessage": true, "class": true,
}

var knownPayloadKeys = map[string]bool{
	"type": true, "clusterId": true, "instanceId": true, "databaseActivityEventList": true,
}

// AppendJSON appends e's DAS JSON to dst and returns the extended slice.
//
// Fields come in the order Aurora MySQL writes them, then Extra sorted by
// key. Strings are escaped exactly as encoding/json does with HTML escaping
// off (invalid UTF-8 becomes \ufffd, U+2028/U+2029 are escaped). An Extra
// value that is not valid JSON is written as null.
func (e *Event) AppendJSON(dst []byte) []byte { return e.appendJSON(dst, nil) }

// runs remembers, while one payload is encoded, the JSON of the previous
// event's runs of fields that change slowly: within a record most events
// share a session's user, host and database, and all share the server's
// names. Copying a run the previous event encoded is cheaper than escaping
// its fields one by one; a run that changed is encoded and remembered.
type runs struct {
	who    whoRun
	obj    objRun
	server serverRun
	tail   tailRun
	buf    [4]runBuf

	// The last log time and its JSON: audit-log lines have whole seconds,
	// so most events of a record share it with the one before.
	logTime Time
	logN    int
	logAt   [40]byte
}

type runBuf struct {
	n  int // 0: nothing remembered
	at [192]byte
}

type whoRun struct {
	typ, app, user, db, host, port, command string
	hasApp                                  bool
	pid                                     int
}

type objRun struct{ typ, name string }

type serverRun struct{ host, typ, service, version string }

type tailRun struct{ tx, dbProto, netProto, errMsg, class string }

// copied appends the remembered run i when same holds, reporting whether it
// did.
func (r *runs) copied(dst *[]byte, i int, same bool) bool {
	if r == nil || r.buf[i].n == 0 || !same {
		return false
	}
	*dst = append(*dst, r.buf[i].at[:r.buf[i].n]...)
	return true
}

// keep remembers run i, encoded as run; a run too long to keep is not.
func (r *runs) keep(i int, run []byte) bool {
	if r == nil {
		return false
	}
	r.buf[i].n = 0
	if len(run) <= len(r.buf[i].at) {
		r.buf[i].n = copy(r.buf[i].at[:], run)
	}
	return r.buf[i].n > 0
}

func (e *Event) appendJSON(dst []byte, r *runs) []byte {
	dst = append(dst, `{"logTime":`...)
	logAt := len(dst)
	if r != nil && r.logN > 0 && e.LogTime.Equal(r.logTime.Time) {
		dst = append(dst, r.logAt[:r.logN]...)
	} else {
		dst = e.LogTime.appendJSON(dst)
		if r != nil && len(dst)-logAt <= len(r.logAt) {
			r.logTime, r.logN = e.LogTime, copy(r.logAt[:], dst[logAt:])
		}
	}
	logTime := dst[logAt:len(dst):len(dst)]

	app := ""
	if e.ClientApplication != nil {
		app = *e.ClientApplication
	}
	who := whoRun{e.Type, app, e.DBUserName, e.DatabaseName, e.RemoteHost, e.RemotePort, e.Command, e.ClientApplication != nil, e.PID}
	if !r.copied(&dst, 0, r != nil && who == r.who) {
		at := len(dst)
		dst = append(dst, `,"type":`...)
		dst = appendString(dst, e.Type)
		dst = append(dst, `,"clientApplication":`...)
		if e.ClientApplication == nil {
			dst = append(dst, "null"...)
		} else {
			dst = appendString(dst, *e.ClientApplication)
		}
		dst = append(dst, `,"pid":`...)
		dst = strconv.AppendInt(dst, int64(e.PID), 10)
		dst = append(dst, `,"dbUserName":`...)
		dst = appendString(dst, e.DBUserName)
		dst = append(dst, `,"databaseName":`...)
		dst = appendString(dst, e.DatabaseName)
		dst = append(dst, `,"remoteHost":`...)
		dst = appendString(dst, e.RemoteHost)
		dst = append(dst, `,"remotePort":`...)
		dst = appendString(dst, e.RemotePort)
		dst = append(dst, `,"command":`...)
		dst = appendString(dst, e.Command)
		if r.keep(0, dst[at:]) {
			r.who = who
		}
	}
	dst = append(dst, `,"commandText":`...)
	dst = appendString(dst, e.CommandText)
	dst = append(dst, `,"paramList":`...)
	if e.ParamList == nil {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, '[')
		for i, p := range e.ParamList {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendString(dst, p)
		}
		dst = append(dst, ']')
	}
	obj := objRun{e.ObjectType, e.ObjectName}
	if !r.copied(&dst, 1, r != nil && obj == r.obj) {
		at := len(dst)
		dst = append(dst, `,"objectType":`...)
		dst = appendString(dst, e.ObjectType)
		dst = append(dst, `,"objectName":`...)
		dst = appendString(dst, e.ObjectName)
		if r.keep(1, dst[at:]) {
			r.obj = obj
		}
	}
	dst = append(dst, `,"statementId":`...)
	dst = strconv.AppendInt(dst, e.StatementID, 10)
	dst = append(dst, `,"substatementId":`...)
	dst = strconv.AppendInt(dst, int64(e.SubstatementID), 10)
	dst = append(dst, `,"exitCode":`...)
	dst = appendString(dst, e.ExitCode)
	dst = append(dst, `,"sessionId":`...)
	dst = appendString(dst, e.SessionID)
	dst = append(dst, `,"rowCount":`...)
	dst = strconv.AppendInt(dst, e.RowCount, 10)
	server := serverRun{e.ServerHost, e.ServerType, e.ServiceName, e.ServerVersion}
	if !r.copied(&dst, 2, r != nil && server == r.server) {
		at := len(dst)
		dst = append(dst, `,"serverHost":`...)
		dst = appendString(dst, e.ServerHost)
		dst = append(dst, `,"serverType":`...)
		dst = appendString(dst, e.ServerType)
		dst = append(dst, `,"serviceName":`...)
		dst = appendString(dst, e.ServiceName)
		dst = append(dst, `,"serverVersion":`...)
		dst = appendString(dst, e.ServerVersion)
		if r.keep(2, dst[at:]) {
			r.server = server
		}
	}
	// Start and end are mostly the log time (always, from the audit log):
	// copy its text rather than format it again.
	dst = append(dst, `,"startTime":`...)
	dst = e.StartTime.appendSame(dst, e.LogTime, logTime)
	dst = append(dst, `,"endTime":`...)
	dst = e.EndTime.appendSame(dst, e.LogTime, logTime)
	tail := tailRun{e.TransactionID, e.DBProtocol, e.NetProtocol, e.ErrorMessage, e.Class}
	if !r.copied(&dst, 3, r != nil && tail == r.tail) {
		at := len(dst)
		dst = append(dst, `,"transactionId":`...)
		dst = appendString(dst, e.TransactionID)
		dst = append(dst, `,"dbProtocol":`...)
		dst = appendString(dst, e.DBProtocol)
		dst = append(dst, `,"netProtocol":`...)
		dst = appendString(dst, e.NetProtocol)
		dst = append(dst, `,"errorMessage":`...)
		dst = appendString(dst, e.ErrorMessage)
		dst = append(dst, `,"class":`...)
		dst = appendString(dst, e.Class)
		if r.keep(3, dst[at:]) {
			r.tail = tail
		}
	}
	dst = appendExtra(dst, e.Extra, knownEventKeys)
	return append(dst, '}')
}

// MarshalJSON implements json.Marshaler using AppendJSON.
func (e Event) MarshalJSON() ([]byte, error) {
	return e.AppendJSON(make([]byte, 0, 640+len(e.CommandText))), nil
}

// AppendJSON appends p's JSON to dst: type, clusterId, instanceId,
// databaseActivityEventList (never null), then Extra sorted by key.
func (p *Payload) AppendJSON(dst []byte) []byte {
	var r classRuns
	dst = p.appendHead(dst)
	for i := range p.Events {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = p.Events[i].appendJSON(dst, r.of(&p.Events[i]))
	}
	return p.appendTail(dst)
}

// classRuns keeps runs per class: a statement's MAIN event and its AUX
// events alternate, and each is most like the previous one of its class
// (the same command, table, error message).
type classRuns [2]runs

func (r *classRuns) of(e *Event) *runs {
	if e.Class == ClassAux {
		return &r[1]
	}
	return &r[0]
}

// WriteJSON writes the bytes of AppendJSON to w in pieces of about chunk
// bytes, encoding each into buf (returned, possibly grown, for reuse).
// Sealing a record of thousands of events this way hands gzip text that is
// still in the CPU's cache, instead of megabytes it must fetch again.
func (p *Payload) WriteJSON(w io.Writer, buf []byte, chunk int) ([]byte, error) {
	var r classRuns
	b := p.appendHead(buf[:0])
	for i := range p.Events {
		if i > 0 {
			b = append(b, ',')
		}
		b = p.Events[i].appendJSON(b, r.of(&p.Events[i]))
		if len(b) >= chunk {
			if _, err := w.Write(b); err != nil {
				return b, err
			}
			b = b[:0]
		}
	}
	b = p.appendTail(b)
	_, err := w.Write(b)
	return b, err
}

// appendHead is the payload's JSON up to its first event.
func (p *Payload) appendHead(dst []byte) []byte {
	dst = append(dst, `{"type":`...)
	dst = appendString(dst, p.Type)
	dst = append(dst, `,"clusterId":`...)
	dst = appendString(dst, p.ClusterID)
	dst = append(dst, `,"instanceId":`...)
	dst = appendString(dst, p.InstanceID)
	return append(dst, `,"databaseActivityEventList":[`...)
}

// appendTail is the payload's JSON after its last event.
func (p *Payload) appendTail(dst []byte) []byte {
	dst = append(dst, ']')
	dst = appendExtra(dst, p.Extra, knownPayloadKeys)
	return append(dst, '}')
}

// MarshalJSON implements json.Marshaler using AppendJSON.
func (p Payload) MarshalJSON() ([]byte, error) {
	n := 128
	for i := range p.Events {
		n += 640 + len(p.Events[i].CommandText)
	}
	return p.AppendJSON(make([]byte, 0, n)), nil
}

func appendExtra(dst []byte, extra Fields, known map[string]bool) []byte {
	if len(extra) == 0 {
		return dst
	}
	// Keys go out sorted and once (the last value wins, as in a map).
	// Producers mostly append in order: then there is nothing to sort.
	// Otherwise an insertion sort of indexes, on the stack for the handful
	// an event carries.
	var small [8]int
	var order []int
	for i := 1; i < len(extra); i++ {
		if extra[i-1].Key >= extra[i].Key {
			order = small[:0]
			if len(extra) > len(small) {
				order = make([]int, 0, len(extra))
			}
			for j := range extra {
				k := len(order)
				order = append(order, j)
				for ; k > 0 && extra[order[k-1]].Key > extra[j].Key; k-- {
					order[k] = order[k-1]
				}
				order[k] = j
			}
			break
		}
	}
	at := func(i int) *Field {
		if order != nil {
			return &extra[order[i]]
		}
		return &extra[i]
	}
	for i := range extra {
		f := at(i)
		// das's own keys ("das...") name no DAS field: no lookup for them.
		if (!strings.HasPrefix(f.Key, "das") && known[f.Key]) || (i+1 < len(extra) && at(i+1).Key == f.Key) {
			continue
		}
		dst = append(dst, ',')
		dst = appendString(dst, f.Key)
		dst = append(dst, ':')
		if !validRaw(f.Value) {
			dst = append(dst, "null"...)
			continue
		}
		dst = append(dst, f.Value...)
	}
	return dst
}

// validRaw reports whether v is one JSON value, like json.Valid but without
// its cost for the shapes das itself puts in Extra (plain strings, integers,
// true/false/null), which are checked by a byte scan.
func validRaw(v []byte) bool {
	if len(v) == 0 {
		return false
	}
	switch string(v) {
	case "true", "false", "null":
		return true
	}
	plain := false
	switch {
	case len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"':
		plain = plainString(v[1 : len(v)-1])
	case v[0] >= '1' && v[0] <= '9' || v[0] == '-' && len(v) > 1 && v[1] >= '1' && v[1] <= '9':
		plain = len(v) <= 20
		for _, c := range v[1:] {
			if c < '0' || c > '9' {
				plain = false
				break
			}
		}
	}
	return plain || json.Valid(v)
}

// plainString reports whether b needs no escaping inside quotes: no control
// character, quote or backslash. Eight bytes at a time while all are ASCII.
func plainString(b []byte) bool {
	i := 0
	for ; i+8 <= len(b); i += 8 {
		if escapeMask(binary.LittleEndian.Uint64(b[i:])) != 0 {
			break
		}
	}
	for _, c := range b[i:] {
		if c < 0x20 || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string, byte for byte what encoding/json
// writes with SetEscapeHTML(false). Plain ASCII runs are scanned eight bytes
// at a time, which is what makes a 1 KiB commandText cheap.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	i := 0
	for i < len(s) {
		// Fast path: skip 16, then 8 bytes at a time while none needs
		// attention.
		for i+16 <= len(s) && escapeMask(load64(s, i))|escapeMask(load64(s, i+8)) == 0 {
			i += 16
		}
		for i+8 <= len(s) && escapeMask(load64(s, i)) == 0 {
			i += 8
		}
		if i >= len(s) {
			break
		}
		b := s[i]
		if b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		c, size := utf8.DecodeRuneInString(s[i:])
		if c == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		if c == '\u2028' || c == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[c&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// escapeMask is non-zero if any of the 8 bytes in x is a control character,
// '"', '\\' or non-ASCII (it may also flag a neighbour of such a byte, which
// only sends that byte down the slow path).
func escapeMask(x uint64) uint64 {
	ctl := (x - 0x20*lsb) & ^x // high bit where a byte is < 0x20
	q := x ^ ('"' * lsb)       // zero byte where '"'
	bs := x ^ ('\\' * lsb)     // zero byte where '\\'
	return (ctl | (q-lsb)&^q | (bs-lsb)&^bs | x) & msb
}

// load64 reads 8 bytes of s at i, little endian; the compiler merges the
// byte loads into one.
func load64(s string, i int) uint64 {
	b := s[i : i+8]
	return uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
		uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
}
