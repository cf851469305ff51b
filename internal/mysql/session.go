package mysql

import "fmt"

// EventKind says what a server packet meant for the command in flight.
type EventKind uint8

const (
	// EventNone: the packet was consumed; the command is still in progress
	// (column definitions, rows, auth data, binlog events, progress reports).
	EventNone EventKind = iota
	// EventOK: a statement ended with an OK packet (OK).
	EventOK
	// EventError: the command (or a statement of it) ended with ERR (Err).
	EventError
	// EventResultSet: a result set ended; Rows and Columns are counted, and
	// OK.Status / OK.Warnings come from its terminator. Cursor is set when
	// COM_STMT_EXECUTE opened a cursor instead of sending rows.
	EventResultSet
	// EventPrepared: the COM_STMT_PREPARE response is complete (Stmt).
	EventPrepared
	// EventLocalInfile: the server asks for a local file (Filename); the
	// client's next packets are file contents: pass them to ClientPacket.
	EventLocalInfile
	// EventText: the string answer of COM_STATISTICS (Text).
	EventText
	// EventAuthSwitch: COM_CHANGE_USER's authentication exchange continues
	// (Auth); when Auth.ClientNext, pass the client's answer to ClientPacket.
	EventAuthSwitch
)

// ServerEvent is what one server packet meant.
type ServerEvent struct {
	Kind    EventKind
	Command CommandCode // the command the packet answers
	// Done: the command is complete; no more server packets belong to it.
	Done bool
	// More: SERVER_MORE_RESULTS_EXISTS was set: another outcome of the same
	// command follows (multi-statements, stored procedures).
	More    bool
	Rows    uint64
	Columns uint64
	Cursor  bool
	OK      OK
	Err     ERR
	Stmt    *Stmt
	// Filename: EventLocalInfile; Text: EventText. Both alias the payload.
	Filename []byte
	Text     []byte
	Auth     AuthPacket
	// Exec holds the decoded COM_STMT_EXECUTE when its statement was
	// still being prepared when the command was sent (MariaDB pipelining
	// with statement id -1); set on the first event of that command.
	Exec *Command
}

type respKind uint8

const (
	kindResult     respKind = iota // OK | ERR | LOCAL INFILE | result set(s)
	kindOK                         // OK | ERR | EOF
	kindPrepare                    // COM_STMT_PREPARE
	kindFieldList                  // column definitions until EOF
	kindStatistics                 // a string
	kindAuth                       // COM_CHANGE_USER
	kindFetch                      // binary rows until EOF
	kindBinlog                     // binlog events until EOF
)

type respState uint8

const (
	stFirst respState = iota
	stColumns
	stColumnsEOF
	stRows
	stInfileData
	stInfileResult
	stPrepParams
	stPrepParamsEOF
	stPrepCols
	stPrepColsEOF
)

// stmtLastPrepared is MariaDB's statement id -1: the last statement prepared.
const stmtLastPrepared = 0xffffffff

type pending struct {
	code       CommandCode
	kind       respKind
	state      respState
	binary     bool
	cursor     bool
	clientNext bool // kindAuth: the client answers next
	seq        uint8
	remain     uint64
	cols       uint64
	rows       uint64
	stmt       *Stmt
	query      string // COM_STMT_PREPARE text
	deferred   []byte // COM_STMT_EXECUTE waiting for its statement
	exec       *Command
}

// Session follows the command phase of one connection: it is fed every
// client command and every server packet in order and says what each server
// packet was. Commands may be pipelined: responses are matched to commands in
// order. A Session is not safe for concurrent use; the client and server
// directions of a proxy must serialize their calls (or use one goroutine).
type Session struct {
	caps Capability
	// LongDataLimit caps the bytes of COM_STMT_SEND_LONG_DATA kept per
	// parameter for paramList (the rest is counted but dropped).
	LongDataLimit int

	stmts   map[uint32]*Stmt
	last    *Stmt
	q       []pending
	qh      int
	srvCont bool // ServerFrame: inside a continued packet
}

// DefaultLongDataLimit is the default Session.LongDataLimit.
const DefaultLongDataLimit = 64 << 10

// NewSession returns a Session for the capabilities agreed at login.
func NewSession(caps Capability) *Session {
	return &Session{caps: caps, LongDataLimit: DefaultLongDataLimit, stmts: make(map[uint32]*Stmt), q: make([]pending, 0, 4)}
}

// Capabilities returns the session's capabilities.
func (s *Session) Capabilities() Capability { return s.caps }

// Stmt returns a prepared statement by id.
func (s *Session) Stmt(id uint32) *Stmt {
	if id == stmtLastPrepared {
		return s.last
	}
	return s.stmts[id]
}

// InFlight returns the number of commands awaiting (part of) their response.
func (s *Session) InFlight() int { return len(s.q) - s.qh }

// AwaitingClientData reports whether the client's next packet is not a
// command but data for the command in flight: LOCAL INFILE contents, or an
// authentication answer during COM_CHANGE_USER. Pass such packets to
// ClientPacket.
func (s *Session) AwaitingClientData() bool {
	if s.qh == len(s.q) {
		return false
	}
	pd := &s.q[s.qh]
	return pd.state == stInfileData || (pd.kind == kindAuth && pd.clientNext)
}

func (s *Session) deprecateEOF() bool { return s.caps&ClientDeprecateEOF != 0 }

// ClientCommand consumes a client command packet (sequence id 0) and returns
// it decoded. For COM_STMT_EXECUTE the parameters are decoded with the
// statement's remembered parameter count and types.
func (s *Session) ClientCommand(payload []byte) (Command, error) {
	if s.AwaitingClientData() {
		return Command{}, fmt.Errorf("mysql: session: command while %s waits for client data: %w", s.q[s.qh].code, ErrUnexpected)
	}
	c, err := ParseCommand(payload, s.caps)
	if err != nil {
		return c, err
	}
	pd := pending{code: c.Code, seq: uint8(FrameCount(len(payload)))}
	switch c.Code {
	case ComQuery, ComProcessInfo:
		pd.kind = kindResult
	case ComStmtPrepare:
		pd.kind, pd.query = kindPrepare, string(c.Query)
	case ComStmtExecute:
		pd.kind, pd.binary, pd.cursor = kindResult, true, c.Cursor()
		st := s.Stmt(c.StmtID)
		if c.StmtID == stmtLastPrepared && s.preparing() {
			pd.deferred = append([]byte(nil), payload...)
		} else if st != nil {
			if c, err = ParseStmtExecute(payload, s.caps, st); err != nil {
				return c, err
			}
			st.longData = nil // the server forgets long data after execute
			pd.stmt = st
		}
		// An unknown statement is the server's to refuse (ERR).
	case ComStmtBulkExecute:
		pd.kind, pd.stmt = kindResult, s.Stmt(c.StmtID)
		if pd.stmt != nil {
			pd.stmt.longData = nil
		}
	case ComStmtFetch:
		pd.kind, pd.state, pd.binary, pd.stmt = kindFetch, stRows, true, s.Stmt(c.StmtID)
	case ComStmtSendLongData:
		if st := s.Stmt(c.StmtID); st != nil {
			s.addLongData(st, c.ParamID, c.Data)
		}
		c.Stmt = s.Stmt(c.StmtID)
		return c, nil // no response
	case ComStmtClose:
		c.Stmt = s.Stmt(c.StmtID)
		if c.Stmt != nil {
			delete(s.stmts, c.Stmt.ID)
			if s.last == c.Stmt {
				s.last = nil
			}
		}
		return c, nil // no response
	case ComQuit:
		return c, nil // the server closes the connection
	case ComStmtReset:
		pd.kind, pd.stmt = kindOK, s.Stmt(c.StmtID)
		if pd.stmt != nil {
			pd.stmt.longData = nil
		}
	case ComFieldList:
		pd.kind, pd.state = kindFieldList, stColumns
	case ComStatistics:
		pd.kind = kindStatistics
	case ComChangeUser:
		pd.kind = kindAuth
	case ComBinlogDump, ComBinlogDumpGTID:
		pd.kind = kindBinlog
	case ComInitDB, ComPing, ComProcessKill, ComRefresh, ComShutdown, ComDebug,
		ComCreateDB, ComDropDB, ComSetOption, ComResetConnection, ComRegisterSlave,
		ComSleep, ComTime, ComConnect, ComDelayedInsert, ComTableDump, ComConnectOut, ComDaemon:
		pd.kind = kindOK
	default:
		pd.kind = kindResult
	}
	if c.Stmt == nil {
		c.Stmt = pd.stmt
	}
	s.q = append(s.q, pd)
	return c, nil
}

func (s *Session) preparing() bool {
	for i := s.qh; i < len(s.q); i++ {
		if s.q[i].kind == kindPrepare {
			return true
		}
	}
	return false
}

func (s *Session) addLongData(st *Stmt, id uint16, data []byte) {
	if st.longData == nil {
		st.longData = make(map[uint16]*longValue)
	}
	lv := st.longData[id]
	if lv == nil {
		lv = &longValue{}
		st.longData[id] = lv
	}
	room := s.LongDataLimit - len(lv.data)
	if room < len(data) {
		lv.truncated = true
		if room < 0 {
			room = 0
		}
		data = data[:room]
	}
	lv.data = append(lv.data, data...)
}

// ClientPacket consumes a client packet that is not a command: LOCAL INFILE
// contents (an empty packet ends the file) or an authentication answer
// during COM_CHANGE_USER.
func (s *Session) ClientPacket(payload []byte) error {
	if !s.AwaitingClientData() {
		return fmt.Errorf("mysql: session: client data packet with no command waiting for it: %w", ErrUnexpected)
	}
	pd := &s.q[s.qh]
	pd.seq += uint8(FrameCount(len(payload)))
	if pd.state == stInfileData {
		if len(payload) == 0 {
			pd.state = stInfileResult
		}
		return nil
	}
	pd.clientNext = false
	return nil
}

// ServerPacket consumes one logical server packet (continued frames joined).
func (s *Session) ServerPacket(payload []byte) (ServerEvent, error) {
	return s.serverPacket(payload, len(payload) >= MaxPayload)
}

// ServerFrame consumes one server frame (header and body, as returned by
// ReadFrame), for a proxy that relays frames without joining them. Only the
// first frame of a continued packet is inspected; the sequence id of every
// frame is checked (ErrSequence).
func (s *Session) ServerFrame(frame []byte) (ServerEvent, error) {
	if len(frame) < HeaderLen {
		return ServerEvent{}, fmt.Errorf("mysql: session: %d-byte frame: %w", len(frame), ErrMalformed)
	}
	n := int(frame[0]) | int(frame[1])<<8 | int(frame[2])<<16
	if n != len(frame)-HeaderLen {
		return ServerEvent{}, fmt.Errorf("mysql: session: frame header says %d bytes, frame has %d: %w", n, len(frame)-HeaderLen, ErrMalformed)
	}
	if s.qh < len(s.q) {
		pd := &s.q[s.qh]
		if frame[3] != pd.seq {
			return ServerEvent{}, fmt.Errorf("mysql: session: %s response: sequence id %d, want %d: %w", pd.code, frame[3], pd.seq, ErrSequence)
		}
		pd.seq++
	}
	if s.srvCont {
		s.srvCont = n == MaxPayload
		return ServerEvent{Command: s.current()}, nil
	}
	s.srvCont = n == MaxPayload
	return s.serverPacket(frame[HeaderLen:], s.srvCont)
}

func (s *Session) current() CommandCode {
	if s.qh < len(s.q) {
		return s.q[s.qh].code
	}
	return 0
}

func (s *Session) finish(ev *ServerEvent) {
	ev.Done = true
	s.q[s.qh] = pending{}
	s.qh++
	if s.qh == len(s.q) {
		s.q, s.qh = s.q[:0], 0
	}
}

func (s *Session) malformed(pd *pending, p []byte, format string, args ...any) error {
	return fmt.Errorf("mysql: session: %s response: %s (packet of %d bytes starting 0x%02x): %w",
		pd.code, fmt.Sprintf(format, args...), len(p), first(p), ErrMalformed)
}

// terminator decodes the status of an EOF, or of the OK that replaces it.
func (s *Session) terminator(p []byte, ev *ServerEvent) error {
	if IsEOF(p) && !(s.deprecateEOF() && len(p) > 5) {
		w, st, err := ParseEOF(p)
		ev.OK.Warnings, ev.OK.Status = w, st
		return err
	}
	ok, err := ParseOK(p, s.caps)
	ev.OK = ok
	return err
}

func (s *Session) serverPacket(p []byte, big bool) (ev ServerEvent, err error) {
	if s.qh == len(s.q) {
		if IsERR(p) && !big {
			// Servers send an ERR before closing an idle connection
			// (wait_timeout, shutdown, KILL).
			e, err := ParseERR(p, s.caps)
			if err != nil {
				return ev, err
			}
			return ServerEvent{Kind: EventError, Err: e, Done: true}, nil
		}
		return ev, fmt.Errorf("mysql: session: server packet (%d bytes starting 0x%02x) with no command in flight: %w", len(p), first(p), ErrUnexpected)
	}
	pd := &s.q[s.qh]
	ev.Command = pd.code
	if pd.exec != nil {
		ev.Exec, pd.exec = pd.exec, nil
	}
	if len(p) == 0 {
		if pd.kind == kindStatistics {
			ev.Kind = EventText
			s.finish(&ev)
			return ev, nil
		}
		return ev, s.malformed(pd, p, "empty packet")
	}
	h := p[0]
	if h == headerERR && !big {
		if len(p) >= 3 && p[1] == 0xff && p[2] == 0xff {
			return ev, nil // MariaDB progress report, not an error
		}
		if pd.state != stInfileData {
			ev.Kind, ev.Rows, ev.Columns = EventError, pd.rows, pd.cols
			ev.Err, err = ParseERR(p, s.caps)
			if pd.kind == kindAuth {
				ev.Auth = AuthPacket{Kind: AuthFailed, Err: ev.Err}
			}
			s.finish(&ev)
			return ev, err
		}
	}
	if big && !(pd.state == stRows || pd.kind == kindBinlog) {
		return ev, s.malformed(pd, p, "packet of %d bytes or more in state %d", MaxPayload, pd.state)
	}

	switch pd.state {
	case stFirst:
		return s.first(pd, p, ev)

	case stColumns:
		if pd.kind == kindFieldList {
			// Column definitions start with the catalog "def" (0x03), so
			// 0xFE can only be the terminator.
			if h == headerEOF {
				ev.Kind, ev.Columns = EventResultSet, pd.cols
				err = s.terminator(p, &ev)
				s.finish(&ev)
				return ev, err
			}
			pd.cols++
			return ev, nil
		}
		pd.remain--
		if pd.remain == 0 {
			s.afterColumns(pd)
		}
		return ev, nil

	case stColumnsEOF:
		if !IsEOF(p) {
			return ev, s.malformed(pd, p, "expected EOF after %d column definitions", pd.cols)
		}
		_, status, _ := ParseEOF(p)
		if pd.binary && pd.cursor && status&StatusCursorExists != 0 {
			ev.Kind, ev.Cursor, ev.Columns = EventResultSet, true, pd.cols
			ev.OK.Status = status
			s.finish(&ev)
			return ev, nil
		}
		pd.state = stRows
		return ev, nil

	case stRows:
		if h == headerEOF && !big && (s.deprecateEOF() || len(p) < 9 || pd.binary) {
			ev.Kind, ev.Rows, ev.Columns = EventResultSet, pd.rows, pd.cols
			if err = s.terminator(p, &ev); err != nil {
				return ev, err
			}
			status := ev.OK.Status
			if pd.kind == kindFetch {
				s.finish(&ev)
				return ev, nil
			}
			if pd.binary && pd.cursor && pd.rows == 0 && status&StatusCursorExists != 0 {
				ev.Cursor = true
			}
			if status&StatusMoreResultsExists != 0 {
				ev.More = true
				pd.state, pd.rows, pd.cols = stFirst, 0, 0
				return ev, nil
			}
			s.finish(&ev)
			return ev, nil
		}
		if pd.binary && h != 0x00 {
			return ev, s.malformed(pd, p, "binary row does not start with 0x00")
		}
		pd.rows++
		return ev, nil

	case stInfileData:
		return ev, fmt.Errorf("mysql: session: server packet while the client sends LOCAL INFILE data: %w", ErrUnexpected)

	case stInfileResult:
		if h != headerOK {
			return ev, s.malformed(pd, p, "expected OK or ERR after LOCAL INFILE data")
		}
		return s.okOutcome(pd, p, ev, true)

	case stPrepParams, stPrepCols:
		pd.remain--
		if pd.remain == 0 {
			s.afterPrepDefs(pd, &ev)
		}
		return ev, nil

	case stPrepParamsEOF, stPrepColsEOF:
		if !IsEOF(p) {
			return ev, s.malformed(pd, p, "expected EOF after definitions")
		}
		if pd.state == stPrepParamsEOF && pd.stmt.NumColumns > 0 {
			pd.state, pd.remain = stPrepCols, uint64(pd.stmt.NumColumns)
			if pd.cols == 0 { // metadata skipped
				pd.state = stPrepColsEOF
			}
			return ev, nil
		}
		s.prepared(pd, &ev)
		return ev, nil
	}
	return ev, s.malformed(pd, p, "invalid state %d", pd.state)
}

// first handles the first packet of a response (or of the next result).
func (s *Session) first(pd *pending, p []byte, ev ServerEvent) (ServerEvent, error) {
	h := p[0]
	switch pd.kind {
	case kindResult:
		switch h {
		case headerOK:
			return s.okOutcome(pd, p, ev, true)
		case headerLocalInfile:
			if pd.binary {
				return ev, s.malformed(pd, p, "LOCAL INFILE request in answer to a prepared statement")
			}
			ev.Kind, ev.Filename = EventLocalInfile, p[1:]
			pd.state = stInfileData
			return ev, nil
		case headerEOF:
			return ev, s.malformed(pd, p, "EOF where a result set or OK is expected")
		}
		d := decoder{b: p, what: "column count packet"}
		n, err := d.lenencInt("column count")
		if err != nil {
			return ev, err
		}
		if n == 0 || n > 1<<16 {
			return ev, s.malformed(pd, p, "column count %d", n)
		}
		pd.cols, pd.remain = n, n
		if d.left() > 0 && s.caps&(ClientOptionalResultsetMetadata|MariaDBClientCacheMetadata) != 0 && p[d.off] == 0 {
			pd.remain = 0 // metadata skipped
		}
		if pd.remain > 0 {
			pd.state = stColumns
		} else {
			s.afterColumns(pd)
		}
		return ev, nil

	case kindOK:
		switch h {
		case headerOK:
			return s.okOutcome(pd, p, ev, false)
		case headerEOF:
			// COM_SET_OPTION, COM_DEBUG, COM_SHUTDOWN answer EOF.
			ev.Kind = EventOK
			err := s.terminator(p, &ev)
			s.finish(&ev)
			return ev, err
		}
		return ev, s.malformed(pd, p, "expected OK or ERR")

	case kindPrepare:
		if h != headerOK {
			return ev, s.malformed(pd, p, "expected COM_STMT_PREPARE_OK or ERR")
		}
		d := decoder{b: p, off: 1, what: "COM_STMT_PREPARE_OK"}
		st := &Stmt{Query: pd.query}
		var err error
		if st.ID, err = d.u32("statement id"); err != nil {
			return ev, err
		}
		if st.NumColumns, err = d.u16("number of columns"); err != nil {
			return ev, err
		}
		if st.NumParams, err = d.u16("number of parameters"); err != nil {
			return ev, err
		}
		metadata := true
		if d.left() >= 4 && s.caps&ClientOptionalResultsetMetadata != 0 {
			d.off += 3 // reserved, warning count
			if d.left() > 0 && p[d.off] == 0 {
				metadata = false
			}
		}
		pd.stmt = st
		pd.cols = 1
		if !metadata {
			pd.cols = 0
		}
		switch {
		case st.NumParams > 0:
			pd.state, pd.remain = stPrepParams, uint64(st.NumParams)
			if !metadata {
				pd.remain = 0
				s.afterPrepDefs(pd, &ev)
			}
		case st.NumColumns > 0:
			pd.state, pd.remain = stPrepCols, uint64(st.NumColumns)
			if !metadata {
				pd.remain = 0
				s.afterPrepDefs(pd, &ev)
			}
		default:
			s.prepared(pd, &ev)
		}
		return ev, nil

	case kindStatistics:
		ev.Kind, ev.Text = EventText, p
		s.finish(&ev)
		return ev, nil

	case kindAuth:
		a, err := ParseAuthPacket(p, s.caps)
		if err != nil {
			return ev, err
		}
		ev.Auth = a
		switch a.Kind {
		case AuthOK:
			ev.Kind, ev.OK = EventOK, a.OK
			// A new user starts with a clean session.
			s.resetStmts()
			s.finish(&ev)
		default:
			ev.Kind = EventAuthSwitch
			pd.clientNext = a.ClientNext
		}
		return ev, nil

	case kindBinlog:
		if IsEOF(p) {
			ev.Kind = EventOK
			s.finish(&ev)
		}
		return ev, nil
	}
	return ev, s.malformed(pd, p, "invalid response kind %d", pd.kind)
}

// okOutcome reports an OK packet; with SERVER_MORE_RESULTS_EXISTS in a
// command that can have several results, the command goes on.
func (s *Session) okOutcome(pd *pending, p []byte, ev ServerEvent, multi bool) (ServerEvent, error) {
	ok, err := ParseOK(p, s.caps)
	if err != nil {
		return ev, err
	}
	ev.Kind, ev.OK = EventOK, ok
	if multi && ok.Status&StatusMoreResultsExists != 0 {
		ev.More = true
		pd.state, pd.rows, pd.cols = stFirst, 0, 0
		return ev, nil
	}
	if pd.code == ComResetConnection {
		s.resetStmts()
	}
	s.finish(&ev)
	return ev, nil
}

func (s *Session) afterColumns(pd *pending) {
	if s.deprecateEOF() {
		pd.state = stRows
	} else {
		pd.state = stColumnsEOF
	}
}

func (s *Session) afterPrepDefs(pd *pending, ev *ServerEvent) {
	st := pd.stmt
	if !s.deprecateEOF() {
		if pd.state == stPrepParams {
			pd.state = stPrepParamsEOF
		} else {
			pd.state = stPrepColsEOF
		}
		return
	}
	if pd.state == stPrepParams && st.NumColumns > 0 {
		pd.state, pd.remain = stPrepCols, uint64(st.NumColumns)
		if pd.cols == 0 { // metadata skipped
			s.prepared(pd, ev)
		}
		return
	}
	s.prepared(pd, ev)
}

func (s *Session) prepared(pd *pending, ev *ServerEvent) {
	st := pd.stmt
	s.stmts[st.ID] = st
	s.last = st
	ev.Kind, ev.Stmt = EventPrepared, st
	s.finish(ev)
	// Decode pipelined executes of the last prepared statement (MariaDB).
	for i := s.qh; i < len(s.q); i++ {
		q := &s.q[i]
		if q.kind == kindPrepare {
			break
		}
		if q.deferred != nil {
			c, err := ParseStmtExecute(q.deferred, s.caps, st)
			if err == nil {
				q.exec, q.stmt = &c, st
			}
			q.deferred = nil
			st.longData = nil
		}
	}
}

func (s *Session) resetStmts() {
	clear(s.stmts)
	s.last = nil
}
