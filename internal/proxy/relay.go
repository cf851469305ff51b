package proxy

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/das-mysql/das/internal/charset"
	"github.com/das-mysql/das/internal/event"
	"github.com/das-mysql/das/internal/mysql"
	"github.com/das-mysql/das/internal/tables"
)

// relay runs the command phase: on an event loop when the session can go
// there (loop_linux.go), else this goroutine reads the client, another
// reads the server. Each direction writes what it reads to the other side
// unchanged, after showing it to the protocol state machine.
func (s *session) relay() {
	if s.p.loops.adopt(s) {
		<-s.loopDone
		s.finish()
		return
	}
	srvDone := make(chan error, 1)
	go func() {
		err := s.guard(s.serverLoop)
		s.end(err)
		srvDone <- err
	}()
	s.end(s.guard(s.clientLoop))
	<-srvDone
	s.finish()
}

// clientLoop relays client packets to the server. Packets are read whole
// (commands are parsed), and written back as the same frames.
func (s *session) clientLoop() error {
	small := make([]byte, 0, 4096)
	buf := small
	for {
		payload, seq, err := mysql.ReadPacket(s.cr, buf, s.p.o.MaxPacket)
		if err != nil {
			switch {
			case errors.Is(err, io.EOF):
				return errClientClosed
			case errors.Is(err, mysql.ErrSequence), errors.Is(err, mysql.ErrPacketTooLarge):
				return &protoError{"client", err}
			}
			return readErr("client", err)
		}
		s.clientBytes += uint64(len(payload) + mysql.HeaderLen*mysql.FrameCount(len(payload)))
		if err := s.clientPacket(payload, seq); err != nil {
			return &protoError{"client", err}
		}
		if _, err := mysql.WritePacket(s.sw, seq, payload); err != nil {
			return &connError{"server", err}
		}
		// Flush when the client has nothing more for now: pipelined
		// commands go out together, nothing waits for more.
		if s.cr.Buffered() == 0 {
			if err := s.sw.Flush(); err != nil {
				return &connError{"server", err}
			}
			s.p.bytesClient.Add(s.clientBytes)
			s.clientBytes = 0
		}
		if cap(payload) > keepBuf {
			buf = small
		} else {
			buf = payload[:0]
		}
	}
}

// clientPacket feeds one client packet to the state machine and remembers
// the command for its event.
func (s *session) clientPacket(payload []byte, seq uint8) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ms.AwaitingClientData() {
		return s.ms.ClientPacket(payload)
	}
	if seq != 0 {
		return fmt.Errorf("command with sequence id %d, want 0: %w", seq, mysql.ErrSequence)
	}
	now := s.p.now()
	before := s.ms.InFlight()
	cmd, err := s.ms.ClientCommand(payload)
	if err != nil {
		return err
	}
	if s.ms.InFlight() == before { // no answer comes
		switch cmd.Code {
		case mysql.ComStmtClose:
			s.closeCursor(cmd.StmtID, now)
		case mysql.ComQuit:
			s.quit = true
		}
		return nil
	}
	s.cmdSeq++
	rec := cmdRec{code: cmd.Code, start: now, seq: s.cmdSeq}
	switch cmd.Code {
	case mysql.ComQuery:
		rec.setText(string(cmd.Query), s.p.o.MaxCommandText)
	case mysql.ComStmtPrepare:
		rec.setText(string(cmd.Query), s.p.o.MaxCommandText)
		s.lastPrepare = rec.text
	case mysql.ComStmtExecute:
		rec.stmtID = cmd.StmtID
		if cmd.Stmt != nil {
			rec.setText(cmd.Stmt.Query, s.p.o.MaxCommandText)
			rec.stmtID = cmd.Stmt.ID
		} else if cmd.StmtID == 0xffffffff {
			// MariaDB's pipelined prepare+execute (statement id -1):
			// the parameters come with the first server event.
			rec.text = s.lastPrepare
		}
		if cmd.ParamsDecoded {
			rec.params = rec.paramStrings(cmd.Params, s.p.o.MaxCommandText)
		}
		s.closeCursor(rec.stmtID, now)
	case mysql.ComStmtBulkExecute:
		// MariaDB's array binding: one event for the batch, without values.
		if cmd.Stmt != nil {
			rec.setText(cmd.Stmt.Query, s.p.o.MaxCommandText)
		}
	case mysql.ComStmtReset:
		s.closeCursor(cmd.StmtID, now)
	case mysql.ComStmtFetch:
		rec.stmtID = cmd.StmtID
	case mysql.ComInitDB:
		rec.arg = string(cmd.Schema)
		rec.text = "USE " + quoteIdent(rec.arg)
	case mysql.ComCreateDB:
		rec.text = "CREATE DATABASE " + quoteIdent(string(cmd.Schema))
	case mysql.ComDropDB:
		rec.text = "DROP DATABASE " + quoteIdent(string(cmd.Schema))
	case mysql.ComProcessKill:
		rec.text = "KILL " + strconv.FormatUint(uint64(cmd.ConnectionID), 10)
	case mysql.ComChangeUser:
		rec.cu = cmd.ChangeUser
	}
	s.pend = append(s.pend, rec)
	return nil
}

// paramStrings renders bound values for paramList (NULL as "NULL"), each
// cut to max bytes like commandText; a value cut here or by the long-data
// limit marks the statement cut.
func (rec *cmdRec) paramStrings(ps []mysql.Param, max int) []string {
	if len(ps) == 0 {
		return nil
	}
	out := make([]string, len(ps))
	for i, p := range ps {
		if p.Null {
			out[i] = "NULL"
		} else {
			out[i] = rec.cutText(p.Value, max)
			rec.cut = rec.cut || p.Truncated
		}
	}
	return out
}

// setText sets the statement's text for its event, cut to max bytes; when
// cut, the whole text stays in full until the statement's outcome, so that
// its tables are found in all of it: padding a statement past the limit
// must not hide the tables named after it.
func (rec *cmdRec) setText(text string, max int) {
	rec.text = rec.cutText(text, max)
	if len(rec.text) < len(text) {
		rec.full = text
	}
}

// cutText is cutText, remembering that the statement's event holds less
// than the client sent.
func (rec *cmdRec) cutText(s string, max int) string {
	c := cutText(s, max)
	rec.cut = rec.cut || len(c) < len(s)
	return c
}

// serverLoop relays server frames to the client one by one, without joining
// continued packets. A frame that fits the read buffer is written from it
// directly.
func (s *session) serverLoop() error {
	var scratch []byte
	for {
		hdr, err := s.sr.Peek(mysql.HeaderLen)
		if err != nil {
			if errors.Is(err, io.EOF) && len(hdr) == 0 {
				return errServerClosed
			}
			return readErr("server", err)
		}
		n := int(hdr[0]) | int(hdr[1])<<8 | int(hdr[2])<<16
		if err := s.checkServerFrame(n); err != nil {
			return err
		}
		s.serverFrameRead(n)
		var frame []byte
		peeked := mysql.HeaderLen+n <= s.sr.Size()
		if peeked {
			frame, err = s.sr.Peek(mysql.HeaderLen + n)
		} else {
			frame, _, err = mysql.ReadFrame(s.sr, scratch)
			if cap(frame) <= keepBuf {
				scratch = frame[:0]
			}
		}
		if err != nil {
			return readErr("server", err)
		}
		if err := s.serverFrame(frame); err != nil {
			return &protoError{"server", err}
		}
		if _, err := s.cw.Write(frame); err != nil {
			return &connError{"client", err}
		}
		if peeked {
			_, _ = s.sr.Discard(len(frame))
		}
		s.serverBytes += uint64(len(frame))
		// Flush when the server has sent nothing more for now: a cursor
		// fetch or a LOCAL INFILE request must reach the client at once.
		if s.sr.Buffered() == 0 {
			if err := s.cw.Flush(); err != nil {
				return &connError{"client", err}
			}
			s.p.bytesServer.Add(s.serverBytes)
			s.serverBytes = 0
		}
	}
}

// checkServerFrame refuses a server frame of n bytes that takes its logical
// packet past MaxPacket.
func (s *session) checkServerFrame(n int) error {
	if total := s.srvPacket + n; total > s.p.o.MaxPacket {
		return &protoError{"server", fmt.Errorf("packet of at least %d bytes exceeds the maximum of %d: %w", total, s.p.o.MaxPacket, mysql.ErrPacketTooLarge)}
	}
	return nil
}

// serverFrameRead tracks the length of a continued server packet once its
// frame of n bytes is read.
func (s *session) serverFrameRead(n int) {
	if n == mysql.MaxPayload {
		s.srvPacket += n
	} else {
		s.srvPacket = 0
	}
}

// serverFrame feeds one server frame to the state machine and records the
// outcomes it completes.
func (s *session) serverFrame(frame []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ev, err := s.ms.ServerFrame(frame)
	if err != nil {
		return err
	}
	if ev.Kind == mysql.EventNone && ev.Exec == nil {
		return nil
	}
	if s.ph == len(s.pend) {
		// An ERR with no command in flight: the server is about to close
		// the connection (KILL, wait_timeout, shutdown).
		if ev.Kind == mysql.EventError {
			e := ev.Err
			s.serverErr = &e
		}
		return nil
	}
	rec := &s.pend[s.ph]
	if ev.Exec != nil {
		rec.params = rec.paramStrings(ev.Exec.Params, s.p.o.MaxCommandText)
	}
	switch ev.Kind {
	case mysql.EventOK, mysql.EventError, mysql.EventResultSet, mysql.EventPrepared, mysql.EventText:
		s.outcome(rec, &ev, s.p.now())
	}
	if ev.Done {
		s.pend[s.ph] = cmdRec{}
		s.ph++
		if s.ph == len(s.pend) {
			s.pend, s.ph = s.pend[:0], 0
		}
	}
	return nil
}

// outcome records what one server event means for the command in flight.
func (s *session) outcome(rec *cmdRec, ev *mysql.ServerEvent, now time.Time) {
	switch rec.code {
	case mysql.ComQuery, mysql.ComStmtExecute, mysql.ComStmtBulkExecute:
		r := s.result(rec, ev, now)
		if rec.code == mysql.ComStmtExecute && ev.Kind == mysql.EventResultSet && ev.Cursor {
			// The rows come with COM_STMT_FETCH: record the statement
			// when its cursor is exhausted or closed.
			s.closeCursor(rec.stmtID, now)
			r.ev.CommandText = rec.text
			r.ev.DatabaseName = s.db
			s.cursors[rec.stmtID] = &r.ev
			return
		}
		if !ev.More && len(rec.results) == 0 {
			s.emitStatement(r, rec.text, rec.full)
			return
		}
		rec.results = append(rec.results, r)
		if !ev.More {
			s.emitResults(rec)
		}
	case mysql.ComStmtPrepare:
		if ev.Kind == mysql.EventError {
			s.emitStatement(s.result(rec, ev, now), rec.text, rec.full)
		}
	case mysql.ComStmtFetch:
		c := s.cursors[rec.stmtID]
		if c == nil {
			return
		}
		switch ev.Kind {
		case mysql.EventResultSet:
			c.RowCount += int64(ev.Rows)
			if ev.OK.Status&mysql.StatusLastRowSent != 0 {
				s.closeCursor(rec.stmtID, now)
			}
		case mysql.EventError:
			c.RowCount += int64(ev.Rows)
			c.ExitCode, c.ErrorMessage = strconv.Itoa(int(ev.Err.Code)), ev.Err.Message
			s.closeCursor(rec.stmtID, now)
		}
	case mysql.ComInitDB:
		r := s.result(rec, ev, now)
		if r.ok {
			s.db = rec.arg
		}
		r.ev.CommandText, r.ev.DatabaseName = rec.text, s.db
		s.stmtSeq++
		r.ev.StatementID = s.stmtSeq
		s.submit(r.ev)
	case mysql.ComCreateDB, mysql.ComDropDB, mysql.ComProcessKill:
		s.emitStatement(s.result(rec, ev, now), rec.text, "")
	case mysql.ComResetConnection:
		if ev.Kind == mysql.EventOK {
			s.prepared, s.handlers = nil, nil
		}
	case mysql.ComChangeUser:
		cu := rec.cu
		if cu == nil {
			return
		}
		switch ev.Kind {
		case mysql.EventOK:
			s.user, s.db, s.app = cu.User, cu.Database, programName(cu.Attrs)
			if mbCollation(cu.Charset) {
				s.setMBCharset()
			}
			s.prepared, s.handlers = nil, nil // the server deallocates them
			s.submit(s.newEvent(event.CommandConnect, rec.start, now))
			s.log.Debug("proxy: user changed", "user", s.user)
		case mysql.EventError:
			e := s.newEvent(event.CommandFailedConnect, rec.start, now)
			e.DBUserName, e.DatabaseName = cu.User, cu.Database
			e.ExitCode, e.ErrorMessage = strconv.Itoa(int(ev.Err.Code)), ev.Err.Message
			s.submit(e)
		}
	}
}

// result makes the QUERY event of one statement outcome, without its text.
func (s *session) result(rec *cmdRec, ev *mysql.ServerEvent, now time.Time) stmtResult {
	e := s.newEvent(event.CommandQuery, rec.start, now)
	e.ParamList = rec.params
	if rec.cut {
		e.Extra = sourceProxyCut
	}
	r := stmtResult{ev: e, status: ev.OK.Status, seq: rec.seq}
	switch ev.Kind {
	case mysql.EventResultSet:
		r.ok, r.hasStatus, r.ev.RowCount = true, true, int64(ev.Rows)
	case mysql.EventOK:
		r.ok, r.hasStatus, r.ev.RowCount = true, true, int64(ev.OK.AffectedRows)
	case mysql.EventError:
		r.ev.RowCount = int64(ev.Rows)
		r.ev.ExitCode, r.ev.ErrorMessage = strconv.Itoa(int(ev.Err.Code)), ev.Err.Message
	default:
		r.ok = true
	}
	return r
}

// emitStatement stamps a statement's event with its text, database and
// statement id, submits it, and follows a database change it made. full,
// when not "", is the statement's whole text, of which text is the start.
func (s *session) emitStatement(r stmtResult, text, full string) {
	e := r.ev
	e.CommandText = text
	e.DatabaseName = s.db
	if r.ok {
		if db, ok := useTarget(text); ok {
			s.db = db
			e.DatabaseName = db
		}
		if setsMBCharset(text) {
			s.setMBCharset()
		}
		if r.status&mysql.StatusDBDropped != 0 {
			s.db = ""
		}
	}
	s.stmtSeq++
	e.StatementID = s.stmtSeq
	// The user variables the statement just before set to literals, in
	// this command or the one before: nothing can have changed them since.
	vars := s.lastVars
	if s.lastVarsSeq+1 < r.seq {
		vars = nil
	}
	s.lastVars = nil
	tablesText := cmp.Or(full, text)
	unknown := false
	if maybeDynamic(text) {
		tablesText, unknown = s.dynamicSQL(tablesText, r.ok, vars)
		// EXECUTE 'SET NAMES sjis' changes the character set as well;
		// SQL only the server knows may have (a wrong yes costs only a
		// second reading of ambiguous statements).
		if r.ok && (unknown || tablesText != text && setsMBCharset(tablesText)) {
			s.setMBCharset()
		}
	}
	if r.ok && maybeSet(text) {
		if as, ok := tables.SetVars(text); ok {
			s.lastVars, s.lastVarsSeq = as, r.seq
		}
	}
	var handlerAcc []tables.Access
	isHandler := false
	if maybeHandler(text) && len(splitStatements(text)) == 1 {
		// (A text of several statements the proxy could not split by its
		// results names the tables of all of them, from the scan.)
		var h tables.Handler
		if h, isHandler = tables.ParseHandler(text); isHandler {
			handlerAcc = s.handler(h, r.ok)
		}
	}
	opened := r.ok || tablesOpened(e.ExitCode)
	if opened && unknown {
		// It ran SQL whose text only the server knows: say so, rather
		// than let no AUX event pass for no table.
		e.Extra = e.Extra.With("dasTablesUnknown", json.RawMessage("true"))
	}
	var aux []event.Event
	switch {
	case opened && isHandler:
		aux = s.auxEvents(&e, handlerAcc, false)
	case opened:
		aux = s.tablesOf(&e, tablesText)
	}
	if r.hasStatus {
		// The server's answer says whether the session's sql_mode has
		// NO_BACKSLASH_ESCAPES, for the statements that follow.
		s.setNoBackslash(r.status&mysql.StatusNoBackslashEscapes != 0)
	}
	if opened {
		s.submitStatement(e, aux)
		return
	}
	s.submit(e)
}

// handler follows the session's HANDLER statements: an OPEN that succeeds
// names a handler (its alias, or the table's name) for the table, in the
// database of the moment; a READ reads the handler's table, which it
// returns; a CLOSE ends the handler. As in server_audit's record, only a
// READ names a table: opening and closing read no rows. A READ of a
// handler the session did not see opened names what it says.
func (s *session) handler(h tables.Handler, ok bool) []tables.Access {
	switch h.Op {
	case "OPEN":
		if ok {
			if s.handlers == nil {
				s.handlers = make(map[string]tables.Access)
			}
			if len(s.handlers) >= maxHandlers {
				clear(s.handlers) // bounded memory; the server limits nothing
			}
			s.handlers[h.Name] = tables.Access{Op: tables.Read, DB: cmp.Or(h.DB, s.db), Table: h.Table}
		}
		return nil
	case "CLOSE":
		if ok {
			delete(s.handlers, strings.ToLower(h.Table))
		}
		return nil
	}
	if a, found := s.handlers[strings.ToLower(h.Table)]; found {
		return []tables.Access{a}
	}
	return []tables.Access{{Op: tables.Read, Table: h.Table}}
}

// maxHandlers bounds the HANDLERs a session remembers.
const maxHandlers = 256

// maybeHandler tells cheaply whether text may be a HANDLER statement.
func maybeHandler(text string) bool {
	q := skipSpaceAndComments(text)
	return len(q) > 8 && (q[0]|0x20) == 'h' && strings.EqualFold(q[:7], "handler") && (isSpace(q[7]) || q[7] == '`' || q[7] == '/')
}

// setMBCharset records that the session's character set may be a
// multibyte one (mbCollation); the tables remembered for statement texts
// were read without that.
func (s *session) setMBCharset() {
	if !s.mbCharset {
		s.mbCharset = true
		s.tablesMemo = [len(s.tablesMemo)]tablesMemo{}
	}
}

// setNoBackslash records the session's NO_BACKSLASH_ESCAPES mode; the
// tables remembered for statement texts were read in the other mode.
func (s *session) setNoBackslash(on bool) {
	if on != s.noBackslash {
		s.noBackslash = on
		s.tablesMemo = [len(s.tablesMemo)]tablesMemo{}
	}
}

// dynamicSQL follows the session's SQL prepared statements and returns the
// text whose tables a statement touches: for EXECUTE, the text its PREPARE
// gave; for EXECUTE IMMEDIATE, its own; else text itself. A text from a
// user variable is known when vars (what the statement just before set to
// literals) has it. unknown tells that the statement runs SQL whose text
// only the server knows (an expression, a variable set otherwise).
// Without it, PREPARE s FROM '...' and EXECUTE s would read any table
// without an AUX event naming it.
func (s *session) dynamicSQL(text string, ok bool, vars []tables.Assign) (string, bool) {
	d, dyn := tables.DynamicSQL(text)
	if !dyn || len(splitStatements(text)) > 1 {
		// A text of several statements the proxy could not split by
		// its results: the tables of all of them, from the whole text.
		return text, false
	}
	if !d.Known && d.Var != "" {
		for _, a := range vars {
			if a.Var == d.Var {
				d.Text, d.Known = a.Text, true
			}
		}
	}
	switch d.Op {
	case tables.Prepare:
		if ok {
			if s.prepared == nil {
				s.prepared = make(map[string]string)
			}
			if len(s.prepared) >= maxSQLPrepared {
				clear(s.prepared) // the server's own limit is per server; keep memory bounded
			}
			s.prepared[d.Name] = d.Text
		}
		return "", false // preparing touches no table's data
	case tables.Deallocate:
		if ok {
			delete(s.prepared, d.Name)
		}
		return "", false
	case tables.Execute:
		t := s.prepared[d.Name]
		return t, t == ""
	case tables.ExecuteImmediate:
		return d.Text, !d.Known
	}
	return text, false
}

// maybeSet tells cheaply whether text may be a SET, before
// tables.SetVars reads it.
func maybeSet(text string) bool {
	q := skipSpaceAndComments(text)
	return len(q) > 4 && (q[0]|0x20) == 's' && (q[1]|0x20) == 'e' && (q[2]|0x20) == 't' && (isSpace(q[3]) || q[3] == '@')
}

// maxSQLPrepared bounds the SQL prepared statements a session remembers.
const maxSQLPrepared = 1024

// maybeDynamic tells cheaply whether text may be dynamic SQL (PREPARE,
// EXECUTE, DEALLOCATE or DROP PREPARE), before tables.DynamicSQL reads it.
func maybeDynamic(text string) bool {
	q := skipSpaceAndComments(text)
	if q == "" {
		return false
	}
	switch q[0] | 0x20 {
	case 'p', 'e', 'd', '/':
		return true
	}
	return false
}

// tablesOpened tells, for a statement that failed with code, whether the
// server had opened its tables, as server_audit then reports them: errors
// found before (a syntax error, a table or database that does not exist,
// privileges) leave none; errors of execution (a duplicate key, an unknown
// column) come after. TestServeTablesMatchServerAudit checks both kinds
// against the server's own TABLE events.
func tablesOpened(code string) bool {
	switch code {
	case "1044", // ER_DBACCESS_DENIED_ERROR
		"1049", // ER_BAD_DB_ERROR
		"1051", // ER_BAD_TABLE_ERROR
		"1064", // ER_PARSE_ERROR
		"1109", // ER_UNKNOWN_TABLE
		"1142", // ER_TABLEACCESS_DENIED_ERROR
		"1146", // ER_NO_SUCH_TABLE
		"1149": // ER_SYNTAX_ERROR
		return false
	}
	return true
}

// submitStatement submits a statement's AUX events, then its own event.
// The AUX events never wait: in sync mode the statement's event, durable
// after them in the same stream, holds the session's answer for all. In
// async mode all go in one call, under one lock of the queue.
func (s *session) submitStatement(main event.Event, aux []event.Event) {
	if len(aux) == 0 {
		s.submit(main)
		return
	}
	if s.p.batch != nil && !s.p.syncMode() {
		all := append(aux, main)
		n := s.p.batch.SubmitAll(all)
		s.p.events.Add(uint64(n))
		s.p.dropped.Add(uint64(len(all) - n))
		clear(all) // the queue has its copies: keep no references
		s.aux = all[:0]
		return
	}
	for _, e := range aux {
		s.p.submit(e, false)
	}
	clear(aux)
	s.submit(main)
}

// tablesOf returns an AUX event for each table the statement of main reads,
// writes, creates, alters, drops or renames, as server_audit's TABLE events
// and Aurora's AUX records name them, in a slice the session reuses. A
// statement the grammar does not parse has the tables tables.Scan finds,
// its AUX events marked dasTablesScanned.
func (s *session) tablesOf(main *event.Event, text string) []event.Event {
	m, ok := s.memoTables(text)
	if !ok {
		m.text = text
		switch {
		case s.noBackslash && strings.IndexByte(text, '\\') >= 0:
			// The grammar knows only backslash escapes: the scan reads
			// the literals as the server does.
			m.acc, m.scanned = tables.ScanNoEscapes(text), true
		case s.mbCharset && charset.Ambiguous(text):
			// Neither the grammar nor a shape knows the session's
			// character set: every reading, from the scan.
			m.acc, m.scanned = tables.Scan(text), true
		default:
			m.acc, m.scanned = s.p.tables.Of(text)
		}
		if len(text) <= 4<<10 {
			s.tablesMemo[s.tablesNext] = m
			s.tablesNext = (s.tablesNext + 1) % len(s.tablesMemo)
		}
	}
	return s.auxEvents(main, m.acc, m.scanned)
}

// auxEvents makes main's AUX events for acc, in a slice the session
// reuses; scanned marks them dasTablesScanned.
func (s *session) auxEvents(main *event.Event, acc []tables.Access, scanned bool) []event.Event {
	s.aux = s.aux[:0]
	for _, a := range acc {
		e := *main
		e.Class = event.ClassAux
		e.SubstatementID = 2
		e.Command = a.Op
		e.ExitCode, e.ErrorMessage, e.RowCount, e.ParamList = "", "", 0, nil
		db := a.DB
		if db == "" {
			db = main.DatabaseName
		}
		e.DatabaseName = db
		e.CommandText = a.Table
		e.ObjectName = s.objectName(db, a.Table)
		if a.Op == tables.Rename {
			to := qualify(cmp.Or(a.ToDB, db), a.ToTable)
			e.CommandText = a.Table + "|" + to
			e.ObjectName += "," + to
		}
		if scanned {
			e.Extra = sourceProxyScanned
			if main.Extra.Has("dasTruncated") {
				e.Extra = sourceProxyCutScanned
			}
		}
		s.aux = append(s.aux, e)
	}
	return s.aux
}

func (s *session) memoTables(text string) (tablesMemo, bool) {
	for i := range s.tablesMemo {
		if m := &s.tablesMemo[i]; len(m.text) == len(text) && m.text == text && text != "" {
			return *m, true
		}
	}
	return tablesMemo{}, false
}

// objectName is qualify(db, table), remembered for the session's database.
func (s *session) objectName(db, table string) string {
	if db != s.objDB || s.objNames == nil || len(s.objNames) >= 64 {
		s.objDB, s.objNames = db, make(map[string]string)
	}
	name, ok := s.objNames[table]
	if !ok {
		name = qualify(db, table)
		s.objNames[table] = name
	}
	return name
}

// qualify names a table db.table, as DAS objectName does.
func qualify(db, table string) string {
	if db == "" {
		return table
	}
	return db + "." + table
}

// emitResults records the outcomes of a multi-result command. Each gets its
// own statement's text when the text splits into as many statements as
// there were outcomes, or into more when the last outcome is an error (the
// server stops at the first error); otherwise (a CALL, a compound
// statement) each gets the whole text.
func (s *session) emitResults(rec *cmdRec) {
	parts := splitStatements(rec.text)
	n := len(rec.results)
	split := len(parts) == n || len(parts) > n && !rec.results[n-1].ok
	for i, r := range rec.results {
		text, full := rec.text, rec.full
		if split {
			text, full = parts[i], ""
			if i == len(parts)-1 && rec.full != "" {
				// The part the cut fell in: its tables are in the rest
				// of the whole text.
				full = rec.full[strings.LastIndex(rec.text, text):]
			}
		}
		s.emitStatement(r, text, full)
	}
	if !split && rec.results[n-1].ok {
		// Every statement ran; a USE among them chose the database of
		// the statements that follow the batch.
		for _, p := range parts {
			if db, ok := useTarget(p); ok {
				s.db = db
			}
			if setsMBCharset(p) {
				s.setMBCharset()
			}
		}
	}
	rec.results = nil
}

// closeCursor records the statement whose cursor was open on stmtID.
func (s *session) closeCursor(stmtID uint32, now time.Time) {
	c := s.cursors[stmtID]
	if c == nil {
		return
	}
	delete(s.cursors, stmtID)
	c.EndTime, c.LogTime = event.Time{Time: now}, event.Time{Time: now}
	s.stmtSeq++
	c.StatementID = s.stmtSeq
	if c.ExitCode == "0" || tablesOpened(c.ExitCode) {
		s.submitStatement(*c, s.tablesOf(c, c.CommandText))
		return
	}
	s.submit(*c)
}

// The DISCONNECT's errorMessage when a connection ended the session without
// COM_QUIT, a protocol error or an ERR from the server.
const (
	msgClientClosed = "das: the client closed the connection without COM_QUIT"
	msgServerClosed = "das: the server closed the connection"
)

// finish records what the end of the session leaves: statements that never
// got their answer, open cursors, and the DISCONNECT.
func (s *session) finish() {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.p.now()
	reason := s.endErr
	var ce *connError
	if s.quit && (errors.Is(reason, errServerClosed) || errors.Is(reason, errClientClosed) || errors.As(reason, &ce)) {
		// After COM_QUIT the session is over whichever way its
		// connections then close.
		reason = errClientQuit
	}
	exitCode, msg := s.endReason(reason)
	// A statement cut off says why in the DISCONNECT's words, the same on
	// both relay paths (their raw errors differ).
	why := strings.TrimPrefix(msg, "das: ")
	if why == "" && reason != nil {
		why = reason.Error()
	}
	for i := s.ph; i < len(s.pend); i++ {
		rec := &s.pend[i]
		switch rec.code {
		case mysql.ComQuery, mysql.ComStmtExecute, mysql.ComStmtBulkExecute, mysql.ComStmtPrepare, mysql.ComInitDB,
			mysql.ComCreateDB, mysql.ComDropDB, mysql.ComProcessKill:
		default:
			continue
		}
		e := s.newEvent(event.CommandQuery, rec.start, now)
		e.ParamList = rec.params
		e.ExitCode = strconv.Itoa(codeServerLost)
		e.ErrorMessage = "das: the session ended before the server's answer was complete: " + why
		rec.results = append(rec.results, stmtResult{ev: e})
		s.emitResults(rec)
	}
	s.pend, s.ph = nil, 0
	for id := range s.cursors {
		s.closeCursor(id, now)
	}

	e := s.newEvent(event.CommandDisconnect, now, now)
	if exitCode != "" {
		e.ExitCode = exitCode
	}
	e.ErrorMessage = msg
	s.submit(e)
	s.p.bytesClient.Add(s.clientBytes)
	s.p.bytesServer.Add(s.serverBytes)
}

// endReason is the DISCONNECT's exitCode ("" keeps the default) and
// errorMessage for a session that reason ended, and logs it.
func (s *session) endReason(reason error) (exitCode, msg string) {
	var pe *protoError
	var pan *panicError
	var ce *connError
	switch {
	case errors.As(reason, &pe):
		s.p.protocolErrors.Add(1)
		s.log.Warn("proxy: session closed", "reason", pe.Error())
		return "", pe.Error()
	case errors.As(reason, &pan), errors.Is(reason, errShutdown):
		s.log.Info("proxy: session closed", "reason", reason.Error())
		return "", reason.Error()
	case s.serverErr != nil:
		s.log.Debug("proxy: session ended by the server", "code", s.serverErr.Code, "message", s.serverErr.Message)
		return strconv.Itoa(int(s.serverErr.Code)), s.serverErr.Message
	case errors.Is(reason, errClientQuit):
		// A clean logout: no errorMessage, as DAS records it.
		s.log.Debug("proxy: session ended", "reason", reason)
		return "", ""
	case errors.Is(reason, errClientClosed):
		s.log.Debug("proxy: session ended", "reason", msgClientClosed)
		return "", msgClientClosed
	case errors.Is(reason, errServerClosed):
		s.log.Info("proxy: session closed", "reason", msgServerClosed)
		return "", msgServerClosed
	case errors.As(reason, &ce):
		msg = ce.disconnectMessage()
		s.log.Info("proxy: session closed", "reason", msg, "err", reason)
		return "", msg
	case reason != nil:
		msg = reason.Error()
		if !strings.HasPrefix(msg, "das: ") {
			msg = "das: " + msg
		}
		s.log.Info("proxy: session closed", "reason", msg)
		return "", msg
	}
	s.log.Debug("proxy: session ended")
	return "", ""
}

// newEvent makes an event of this session. Callers hold s.mu after login.
func (s *session) newEvent(command string, start, end time.Time) event.Event {
	e := event.New(end)
	e.StartTime = event.Time{Time: start}
	e.Command = command
	e.DBUserName = s.user
	e.DatabaseName = s.db
	e.ClientApplication = s.app
	e.RemoteHost = s.remoteHost
	e.RemotePort = s.remotePort
	e.SessionID = s.sessionID
	e.ServerHost = s.p.o.ServerHost
	e.ServerVersion = s.serverVersion
	e.PID = s.p.pid
	e.Extra = sourceProxy
	return e
}

// sourceProxy tags the proxy's events, as the audit-log tailer tags its own
// "server_audit", so that a stream fed by both tells them apart. It is
// shared by every event and never modified.
var sourceProxy = event.Fields{{Key: "dasSource", Value: json.RawMessage(`"proxy"`)}}

// sourceProxyCut tags a statement whose text or a bound value was cut
// (max_command_text, the long-data limit), with the key the audit-log
// tailer uses for a query server_audit cut.
var sourceProxyCut = event.Fields{{Key: "dasSource", Value: json.RawMessage(`"proxy"`)}, {Key: "dasTruncated", Value: json.RawMessage(`true`)}}

// sourceProxyScanned tags an AUX event whose table tables.Scan found in a
// statement the grammar does not parse: a name in a table's place, which
// may be an alias the scan did not recognise, but no table is left out.
var (
	sourceProxyScanned    = event.Fields{{Key: "dasSource", Value: json.RawMessage(`"proxy"`)}, {Key: "dasTablesScanned", Value: json.RawMessage(`true`)}}
	sourceProxyCutScanned = event.Fields{{Key: "dasSource", Value: json.RawMessage(`"proxy"`)}, {Key: "dasTruncated", Value: json.RawMessage(`true`)}, {Key: "dasTablesScanned", Value: json.RawMessage(`true`)}}
)

func (s *session) failedConnect(code uint16, msg string, r *mysql.HandshakeResponse) event.Event {
	e := s.newEvent(event.CommandFailedConnect, s.start, s.p.now())
	if r != nil {
		e.DBUserName, e.DatabaseName, e.ClientApplication = r.Username, r.Database, programName(r.Attrs)
	}
	e.ExitCode, e.ErrorMessage = strconv.Itoa(int(code)), msg
	return e
}
