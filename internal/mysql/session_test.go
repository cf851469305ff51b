package mysql

import (
	"bytes"
	"errors"
	"testing"
)

// ev is the part of a ServerEvent a test checks.
type ev struct {
	kind    EventKind
	done    bool
	more    bool
	rows    uint64
	cols    uint64
	cursor  bool
	code    uint16 // ERR code
	status  uint16 // checked when non-zero
	applied uint64 // OK affected rows
}

func feed(t *testing.T, s *Session, p []byte) ServerEvent {
	t.Helper()
	e, err := s.ServerPacket(p)
	if err != nil {
		t.Fatalf("ServerPacket(% x): %v", p[:min(len(p), 16)], err)
	}
	return e
}

func check(t *testing.T, got ServerEvent, want ev) {
	t.Helper()
	if got.Kind != want.kind || got.Done != want.done || got.More != want.more || got.Rows != want.rows ||
		got.Columns != want.cols || got.Cursor != want.cursor || got.Err.Code != want.code ||
		got.OK.AffectedRows != want.applied || (want.status != 0 && got.OK.Status != want.status) {
		t.Fatalf("event %+v\nwant %+v", got, want)
	}
}

// feedAll sends packets that must all be EventNone, then the last one is checked.
func feedAll(t *testing.T, s *Session, want ev, pkts ...[]byte) ServerEvent {
	t.Helper()
	for _, p := range pkts[:len(pkts)-1] {
		if e := feed(t, s, p); e.Kind != EventNone || e.Done {
			t.Fatalf("packet % x: premature event %+v", p[:min(len(p), 16)], e)
		}
	}
	e := feed(t, s, pkts[len(pkts)-1])
	check(t, e, want)
	return e
}

func command(t *testing.T, s *Session, p []byte) Command {
	t.Helper()
	c, err := s.ClientCommand(p)
	if err != nil {
		t.Fatalf("ClientCommand: %v", err)
	}
	return c
}

const baseCaps = ClientProtocol41 | ClientSecureConnection | ClientPluginAuth | ClientTransactions |
	ClientMultiStatements | ClientMultiResults | ClientPSMultiResults | ClientLocalFiles

func bothEOFModes(t *testing.T, f func(t *testing.T, caps Capability, deprecate bool)) {
	t.Run("eof", func(t *testing.T) { f(t, baseCaps, false) })
	t.Run("deprecate_eof", func(t *testing.T) { f(t, baseCaps|ClientDeprecateEOF, true) })
}

// resultSet returns the packets of a text result set.
func resultSet(deprecate bool, status uint16, cols []string, rows ...[]byte) [][]byte {
	pkts := [][]byte{pColCount(uint64(len(cols)))}
	for _, c := range cols {
		pkts = append(pkts, pColDef(c, TypeVarString))
	}
	if !deprecate {
		pkts = append(pkts, pEOF(StatusAutocommit, 0))
	}
	pkts = append(pkts, rows...)
	if deprecate {
		pkts = append(pkts, pOKEOF(status, 0, ""))
	} else {
		pkts = append(pkts, pEOF(status, 0))
	}
	return pkts
}

func TestTextResultSetRowsThatLookLikeOtherPackets(t *testing.T) {
	bothEOFModes(t, func(t *testing.T, caps Capability, deprecate bool) {
		s := NewSession(caps)
		command(t, s, cQuery("SELECT a, b FROM t"))
		rows := [][]byte{
			pTextRow([]byte(""), []byte("x")),             // starts 0x00: looks like OK
			pTextRow(nil, []byte("y")),                    // starts 0xFB: looks like LOCAL INFILE
			pTextRow([]byte("\x11\x00"), nil),             // 0x02 0x11: COM_CHANGE_USER byte inside
			pTextRow([]byte{0xfe, 0, 0, 2, 0}, nil),       // string containing an EOF
			{0x01, 0xff, 0xfb},                            // 1-byte string 0xff, NULL
			pTextRow(bytes.Repeat([]byte{'z'}, 250), nil), // lenenc 0xfa
			pTextRow(bytes.Repeat([]byte{'z'}, 300), nil), // lenenc 0xfc prefix
		}
		pkts := resultSet(deprecate, StatusAutocommit, []string{"a", "b"}, rows...)
		feedAll(t, s, ev{kind: EventResultSet, done: true, rows: uint64(len(rows)), cols: 2, status: StatusAutocommit}, pkts...)
		if s.InFlight() != 0 {
			t.Fatal("command still in flight")
		}
	})
}

func TestTextRowStartingWith0xFE(t *testing.T) {
	// A first column of 2^24 bytes or more is length-encoded with the 0xFE
	// prefix: the row begins with 0xFE like an EOF, but is huge.
	bothEOFModes(t, func(t *testing.T, caps Capability, deprecate bool) {
		s := NewSession(caps)
		command(t, s, cQuery("SELECT big FROM t"))
		big := pTextRow(bytes.Repeat([]byte{'b'}, 1<<24))
		if big[0] != 0xfe {
			t.Fatalf("row starts 0x%02x", big[0])
		}
		pkts := resultSet(deprecate, 0, []string{"big"}, big, pTextRow([]byte("small")))
		feedAll(t, s, ev{kind: EventResultSet, done: true, rows: 2, cols: 1}, pkts...)

		// The same, relayed frame by frame without joining.
		s = NewSession(caps)
		command(t, s, cQuery("SELECT big FROM t"))
		var wire []byte
		seq := uint8(1)
		for _, p := range pkts {
			wire, seq = AppendPacket(wire, seq, p)
		}
		var last ServerEvent
		for len(wire) > 0 {
			n := int(wire[0]) | int(wire[1])<<8 | int(wire[2])<<16
			e, err := s.ServerFrame(wire[:HeaderLen+n])
			if err != nil {
				t.Fatal(err)
			}
			wire = wire[HeaderLen+n:]
			if e.Kind != EventNone {
				last = e
			}
		}
		check(t, last, ev{kind: EventResultSet, done: true, rows: 2, cols: 1})
	})
}

func TestServerFrameSequence(t *testing.T) {
	s := NewSession(baseCaps)
	command(t, s, cQuery("DO 1"))
	frame, _ := AppendPacket(nil, 2, pOK(0, 0, 0, 0))
	if _, err := s.ServerFrame(frame); !errors.Is(err, ErrSequence) {
		t.Fatalf("want ErrSequence, got %v", err)
	}
	frame, _ = AppendPacket(nil, 1, pOK(0, 0, 0, 0))
	e, err := s.ServerFrame(frame)
	if err != nil || e.Kind != EventOK || !e.Done {
		t.Fatalf("%+v %v", e, err)
	}
	if _, err := s.ServerFrame(frame[:5]); !errors.Is(err, ErrMalformed) {
		t.Fatalf("bad frame length: %v", err)
	}
}

func TestMultiStatementResults(t *testing.T) {
	bothEOFModes(t, func(t *testing.T, caps Capability, deprecate bool) {
		s := NewSession(caps)
		command(t, s, cQuery("INSERT INTO t VALUES (1); SELECT * FROM t; UPDATE t SET a=2; SELECT nope"))
		check(t, feed(t, s, pOK(1, 7, StatusMoreResultsExists|StatusAutocommit, 0)), ev{kind: EventOK, more: true, applied: 1})
		pkts := resultSet(deprecate, StatusMoreResultsExists, []string{"a"}, pTextRow([]byte("1")), pTextRow([]byte("2")))
		feedAll(t, s, ev{kind: EventResultSet, more: true, rows: 2, cols: 1}, pkts...)
		check(t, feed(t, s, pOK(3, 0, StatusMoreResultsExists, 0)), ev{kind: EventOK, more: true, applied: 3})
		check(t, feed(t, s, pERR(1054, "42S22", "Unknown column 'nope'")), ev{kind: EventError, done: true, code: 1054})
		if s.InFlight() != 0 {
			t.Fatal("still in flight")
		}
		// A CALL: result set, then the final OK.
		command(t, s, cQuery("CALL p()"))
		pkts = resultSet(deprecate, StatusMoreResultsExists, []string{"a"}, pTextRow([]byte("1")))
		feedAll(t, s, ev{kind: EventResultSet, more: true, rows: 1, cols: 1}, pkts...)
		check(t, feed(t, s, pOK(0, 0, StatusAutocommit, 0)), ev{kind: EventOK, done: true})
	})
}

func TestErrorMidResultSet(t *testing.T) {
	s := NewSession(baseCaps)
	command(t, s, cQuery("SELECT SLEEP(100) FROM t"))
	feedAll(t, s, ev{kind: EventError, done: true, rows: 1, cols: 1, code: 1317},
		pColCount(1), pColDef("s", TypeLong), pEOF(0, 0), pTextRow([]byte("0")), pERR(1317, "70100", "Query execution was interrupted"))
}

func TestLoadDataLocalInfile(t *testing.T) {
	s := NewSession(baseCaps)
	command(t, s, cQuery("LOAD DATA LOCAL INFILE '/tmp/x.csv' INTO TABLE t"))
	e := feed(t, s, append([]byte{0xfb}, "/tmp/x.csv"...))
	check(t, e, ev{kind: EventLocalInfile})
	if string(e.Filename) != "/tmp/x.csv" || !s.AwaitingClientData() {
		t.Fatalf("filename %q awaiting %v", e.Filename, s.AwaitingClientData())
	}
	if _, err := s.ClientCommand(cQuery("SELECT 1")); !errors.Is(err, ErrUnexpected) {
		t.Fatalf("command during file transfer: %v", err)
	}
	if _, err := s.ServerPacket(pOK(0, 0, 0, 0)); !errors.Is(err, ErrUnexpected) {
		t.Fatalf("server packet during file transfer: %v", err)
	}
	for _, chunk := range [][]byte{[]byte("1,a\n2,b\n"), {0x00, 0xff, 0xfe}, {}} {
		if err := s.ClientPacket(chunk); err != nil {
			t.Fatal(err)
		}
	}
	if s.AwaitingClientData() {
		t.Fatal("still awaiting data after the empty packet")
	}
	check(t, feed(t, s, pOK(2, 0, 0, 0)), ev{kind: EventOK, done: true, applied: 2})
	if err := s.ClientPacket([]byte("x")); !errors.Is(err, ErrUnexpected) {
		t.Fatalf("data with no transfer: %v", err)
	}

	// Refused by the server after the (empty) file.
	command(t, s, cQuery("LOAD DATA LOCAL INFILE 'nope' INTO TABLE t"))
	feed(t, s, append([]byte{0xfb}, "nope"...))
	_ = s.ClientPacket(nil)
	check(t, feed(t, s, pERR(2, "HY000", "File 'nope' not found")), ev{kind: EventError, done: true, code: 2})
}

func TestPrepareExecuteClose(t *testing.T) {
	bothEOFModes(t, func(t *testing.T, caps Capability, deprecate bool) {
		s := NewSession(caps)
		c := command(t, s, []byte("\x16SELECT a, b FROM t WHERE id = ? AND name = ?"))
		if c.Code != ComStmtPrepare {
			t.Fatal(c.Code)
		}
		pkts := [][]byte{pPrepareOK(7, 2, 2), pColDef("?", TypeVarString), pColDef("?", TypeVarString)}
		if !deprecate {
			pkts = append(pkts, pEOF(0, 0))
		}
		pkts = append(pkts, pColDef("a", TypeLong), pColDef("b", TypeLong))
		if !deprecate {
			pkts = append(pkts, pEOF(0, 0))
		}
		e := feedAll(t, s, ev{kind: EventPrepared, done: true}, pkts...)
		if e.Stmt == nil || e.Stmt.ID != 7 || e.Stmt.NumParams != 2 || e.Stmt.NumColumns != 2 || e.Stmt.Query != "SELECT a, b FROM t WHERE id = ? AND name = ?" {
			t.Fatalf("stmt %+v", e.Stmt)
		}

		params := []execParam{{t: TypeLongLong, val: le64(42)}, {t: TypeVarString, val: lenenc("bob")}}
		c = command(t, s, cExecute(7, 0, true, false, params))
		if !c.ParamsDecoded || c.Stmt != e.Stmt || c.Params[0].Value != "42" || c.Params[1].Value != "bob" {
			t.Fatalf("execute %+v", c)
		}
		binRows := [][]byte{pColCount(2), pColDef("a", TypeLong), pColDef("b", TypeLong)}
		if !deprecate {
			binRows = append(binRows, pEOF(0, 0))
		}
		binRows = append(binRows, pBinRow(1, 2), pBinRow(3, 4), pBinRow(5, 6))
		if deprecate {
			binRows = append(binRows, pOKEOF(0, 0, ""))
		} else {
			binRows = append(binRows, pEOF(0, 0))
		}
		feedAll(t, s, ev{kind: EventResultSet, done: true, rows: 3, cols: 2}, binRows...)

		// Second execute: types not resent, NULL for the second parameter.
		params[1].null = true
		c = command(t, s, cExecute(7, 0, false, false, params))
		if c.Params[0].Value != "42" || !c.Params[1].Null {
			t.Fatalf("re-execute %+v", c.Params)
		}
		check(t, feed(t, s, pERR(1146, "42S02", "Table 'test.t' doesn't exist")), ev{kind: EventError, done: true, code: 1146})

		// Long data replaces the value; no response to SEND_LONG_DATA.
		command(t, s, cStmt(ComStmtSendLongData, 7, append([]byte{1, 0}, "chunk1-"...)...))
		command(t, s, cStmt(ComStmtSendLongData, 7, append([]byte{1, 0}, "chunk2"...)...))
		if s.InFlight() != 0 {
			t.Fatal("SEND_LONG_DATA expects no response")
		}
		// The long-data parameter is absent from the packet: header, null
		// bitmap, bound flag, types, then only the first value.
		c = command(t, s, cat(cStmt(ComStmtExecute, 7, 0, 1, 0, 0, 0), []byte{0, 1}, []byte{byte(TypeLongLong), 0, byte(TypeBlob), 0}, le64(42)))
		if !c.Params[1].LongData || c.Params[1].Value != "chunk1-chunk2" || c.Params[0].Value != "42" {
			t.Fatalf("long data param %+v", c.Params)
		}
		check(t, feed(t, s, pOK(1, 0, 0, 0)), ev{kind: EventOK, done: true, applied: 1})

		// Reset, then close: close has no response and forgets the statement.
		command(t, s, cStmt(ComStmtReset, 7))
		check(t, feed(t, s, pOK(0, 0, 0, 0)), ev{kind: EventOK, done: true})
		command(t, s, cStmt(ComStmtClose, 7))
		if s.InFlight() != 0 || s.Stmt(7) != nil {
			t.Fatal("close")
		}
		// Executing an unknown statement: parameters undecoded, server refuses.
		c = command(t, s, cExecute(7, 0, true, false, params[:1]))
		if c.ParamsDecoded {
			t.Fatal("decoded an unknown statement")
		}
		check(t, feed(t, s, pERR(1243, "HY000", "Unknown prepared statement handler")), ev{kind: EventError, done: true, code: 1243})
	})
}

func TestPrepareVariants(t *testing.T) {
	bothEOFModes(t, func(t *testing.T, caps Capability, deprecate bool) {
		s := NewSession(caps)
		// No params, no columns: just the OK.
		command(t, s, []byte("\x16DO 1"))
		check(t, feed(t, s, pPrepareOK(1, 0, 0)), ev{kind: EventPrepared, done: true})
		// Params only.
		command(t, s, []byte("\x16INSERT INTO t VALUES (?)"))
		pkts := [][]byte{pPrepareOK(2, 0, 1), pColDef("?", TypeVarString)}
		if !deprecate {
			pkts = append(pkts, pEOF(0, 0))
		}
		feedAll(t, s, ev{kind: EventPrepared, done: true}, pkts...)
		// Columns only.
		command(t, s, []byte("\x16SELECT 1"))
		pkts = [][]byte{pPrepareOK(3, 1, 0), pColDef("1", TypeLongLong)}
		if !deprecate {
			pkts = append(pkts, pEOF(0, 0))
		}
		feedAll(t, s, ev{kind: EventPrepared, done: true}, pkts...)
		// Error.
		command(t, s, []byte("\x16SELEC"))
		check(t, feed(t, s, pERR(1064, "42000", "syntax")), ev{kind: EventError, done: true, code: 1064})
		// Execute of a statement without parameters; OK.
		command(t, s, cExecute(1, 0, false, false, nil))
		check(t, feed(t, s, pOK(0, 0, 0, 0)), ev{kind: EventOK, done: true})
	})
}

func TestCursorFetch(t *testing.T) {
	bothEOFModes(t, func(t *testing.T, caps Capability, deprecate bool) {
		s := NewSession(caps)
		command(t, s, []byte("\x16SELECT a FROM t"))
		pkts := [][]byte{pPrepareOK(5, 1, 0), pColDef("a", TypeLong)}
		if !deprecate {
			pkts = append(pkts, pEOF(0, 0))
		}
		feedAll(t, s, ev{kind: EventPrepared, done: true}, pkts...)

		command(t, s, cExecute(5, CursorTypeReadOnly, false, false, nil))
		open := [][]byte{pColCount(1), pColDef("a", TypeLong)}
		if deprecate {
			open = append(open, pOKEOF(StatusCursorExists|StatusAutocommit, 0, ""))
		} else {
			open = append(open, pEOF(StatusCursorExists|StatusAutocommit, 0))
		}
		feedAll(t, s, ev{kind: EventResultSet, done: true, cols: 1, cursor: true}, open...)

		end := pEOF(StatusCursorExists, 0)
		last := pEOF(StatusLastRowSent, 0)
		if deprecate {
			end, last = pOKEOF(StatusCursorExists, 0, ""), pOKEOF(StatusLastRowSent, 0, "")
		}
		c := command(t, s, cStmt(ComStmtFetch, 5, le32(2)...))
		if c.Stmt == nil || c.NumRows != 2 {
			t.Fatalf("fetch %+v", c)
		}
		feedAll(t, s, ev{kind: EventResultSet, done: true, rows: 2, status: StatusCursorExists}, pBinRow(1), pBinRow(2), end)
		command(t, s, cStmt(ComStmtFetch, 5, le32(2)...))
		feedAll(t, s, ev{kind: EventResultSet, done: true, rows: 1, status: StatusLastRowSent}, pBinRow(3), last)

		// A cursor requested on a statement that returns rows directly
		// (no CURSOR_EXISTS): rows follow as usual.
		command(t, s, cExecute(5, CursorTypeReadOnly, false, false, nil))
		direct := [][]byte{pColCount(1), pColDef("a", TypeLong)}
		if !deprecate {
			direct = append(direct, pEOF(0, 0))
		}
		direct = append(direct, pBinRow(9))
		if deprecate {
			direct = append(direct, pOKEOF(0, 0, ""))
		} else {
			direct = append(direct, pEOF(0, 0))
		}
		feedAll(t, s, ev{kind: EventResultSet, done: true, rows: 1, cols: 1}, direct...)
	})
}

func TestSimpleCommands(t *testing.T) {
	bothEOFModes(t, func(t *testing.T, caps Capability, deprecate bool) {
		s := NewSession(caps)
		command(t, s, []byte{byte(ComPing)})
		check(t, feed(t, s, pOK(0, 0, 0, 0)), ev{kind: EventOK, done: true})
		command(t, s, []byte("\x02nodb"))
		check(t, feed(t, s, pERR(1049, "42000", "Unknown database 'nodb'")), ev{kind: EventError, done: true, code: 1049})
		command(t, s, cat([]byte{0x0c}, le32(99)))
		check(t, feed(t, s, pOK(0, 0, 0, 0)), ev{kind: EventOK, done: true})

		command(t, s, []byte{byte(ComSetOption), 0, 0})
		if deprecate {
			check(t, feed(t, s, pOKEOF(StatusAutocommit, 0, "")), ev{kind: EventOK, done: true, status: StatusAutocommit})
		} else {
			check(t, feed(t, s, pEOF(StatusAutocommit, 0)), ev{kind: EventOK, done: true, status: StatusAutocommit})
		}

		command(t, s, []byte{byte(ComStatistics)})
		e := feed(t, s, []byte("Uptime: 5  Threads: 1  Questions: 9"))
		check(t, e, ev{kind: EventText, done: true})
		if string(e.Text) != "Uptime: 5  Threads: 1  Questions: 9" {
			t.Fatal(string(e.Text))
		}

		command(t, s, []byte("\x04t\x00"))
		term := pEOF(0, 0)
		if deprecate {
			term = pOKEOF(0, 0, "")
		}
		feedAll(t, s, ev{kind: EventResultSet, done: true, cols: 2}, pColDef("a", TypeLong), pColDef("b", TypeLong), term)

		command(t, s, []byte{byte(ComQuit)})
		if s.InFlight() != 0 {
			t.Fatal("COM_QUIT expects no response")
		}

		// Reset connection forgets prepared statements.
		command(t, s, []byte("\x16DO 1"))
		feed(t, s, pPrepareOK(1, 0, 0))
		command(t, s, []byte{byte(ComResetConnection)})
		check(t, feed(t, s, pOK(0, 0, 0, 0)), ev{kind: EventOK, done: true})
		if s.Stmt(1) != nil {
			t.Fatal("statement survived COM_RESET_CONNECTION")
		}
	})
}

func TestChangeUser(t *testing.T) {
	s := NewSession(baseCaps | ClientConnectAttrs)
	command(t, s, []byte("\x16DO 1"))
	feed(t, s, pPrepareOK(1, 0, 0))
	c := command(t, s, cat([]byte{byte(ComChangeUser)}, []byte("carol\x00"), []byte{20}, bytes.Repeat([]byte{1}, 20), []byte("shop\x00"), le16(255), []byte("caching_sha2_password\x00")))
	if c.ChangeUser == nil || c.ChangeUser.User != "carol" || c.ChangeUser.Database != "shop" || c.ChangeUser.AuthPlugin != "caching_sha2_password" {
		t.Fatalf("%+v", c.ChangeUser)
	}
	e := feed(t, s, append([]byte("\xfemysql_native_password\x00"), append(bytes.Repeat([]byte{'s'}, 20), 0)...))
	check(t, e, ev{kind: EventAuthSwitch})
	if e.Auth.Plugin != "mysql_native_password" || !s.AwaitingClientData() {
		t.Fatalf("%+v", e.Auth)
	}
	if err := s.ClientPacket(bytes.Repeat([]byte{2}, 20)); err != nil {
		t.Fatal(err)
	}
	check(t, feed(t, s, pOK(0, 0, 0, 0)), ev{kind: EventOK, done: true})
	if s.Stmt(1) != nil {
		t.Fatal("statements survive a change of user")
	}
	// Failure.
	command(t, s, cat([]byte{byte(ComChangeUser)}, []byte("mallory\x00"), []byte{0}, []byte("\x00")))
	e = feed(t, s, pERR(1045, "28000", "Access denied for user 'mallory'@'localhost'"))
	check(t, e, ev{kind: EventError, done: true, code: 1045})
	if e.Auth.Kind != AuthFailed {
		t.Fatal(e.Auth.Kind)
	}
}

func TestUnsolicitedAndUnexpected(t *testing.T) {
	s := NewSession(baseCaps)
	// MySQL 8 tells an idle client why it is disconnected.
	e := feed(t, s, pERR(4031, "HY000", "The client was disconnected by the server because of inactivity."))
	check(t, e, ev{kind: EventError, done: true, code: 4031})
	if _, err := s.ServerPacket(pOK(0, 0, 0, 0)); !errors.Is(err, ErrUnexpected) {
		t.Fatalf("OK with nothing in flight: %v", err)
	}
	// Binary rows always begin with 0x00.
	s.stmts[1] = &Stmt{ID: 1}
	command(t, s, cExecute(1, 0, false, false, nil))
	feed(t, s, pColCount(1))
	feed(t, s, pColDef("a", TypeLong))
	feed(t, s, pEOF(0, 0))
	if _, err := s.ServerPacket([]byte{0x03, 'a', 'b', 'c'}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("text row in a binary result: %v", err)
	}
	// Missing EOF after the column definitions.
	s = NewSession(baseCaps)
	command(t, s, cQuery("SELECT 1"))
	feed(t, s, pColCount(1))
	feed(t, s, pColDef("1", TypeLong))
	if _, err := s.ServerPacket(pTextRow([]byte("1"))); !errors.Is(err, ErrMalformed) {
		t.Fatalf("row instead of EOF: %v", err)
	}
	// Empty packets and absurd column counts.
	s = NewSession(baseCaps)
	command(t, s, cQuery("SELECT 1"))
	if _, err := s.ServerPacket(nil); !errors.Is(err, ErrMalformed) {
		t.Fatal(err)
	}
	if _, err := s.ServerPacket([]byte{0xfd, 0xff, 0xff, 0xff}); !errors.Is(err, ErrMalformed) {
		t.Fatal(err)
	}
}

func TestMariaDBProgressReport(t *testing.T) {
	s := NewSession(baseCaps | MariaDBClientProgress)
	command(t, s, cQuery("ALTER TABLE t ADD c INT"))
	progress := cat([]byte{0xff, 0xff, 0xff}, []byte{1, 1, 1}, []byte{0x10, 0x27, 0}, lenenc("copy to tmp table"))
	check(t, feed(t, s, progress), ev{})
	check(t, feed(t, s, pOK(0, 0, 0, 0)), ev{kind: EventOK, done: true})
}

func TestMariaDBMetadataSkipped(t *testing.T) {
	caps := baseCaps | ClientDeprecateEOF | MariaDBClientCacheMetadata
	s := NewSession(caps)
	s.stmts[3] = &Stmt{ID: 3, NumColumns: 1}
	command(t, s, cExecute(3, 0, false, false, nil))
	// Column count 1, metadata follows = 0: rows come right after.
	feedAll(t, s, ev{kind: EventResultSet, done: true, rows: 1, cols: 1}, []byte{1, 0}, pBinRow(5), pOKEOF(0, 0, ""))
	command(t, s, cExecute(3, 0, false, false, nil))
	feedAll(t, s, ev{kind: EventResultSet, done: true, rows: 1, cols: 1}, []byte{1, 1}, pColDef("a", TypeLong), pBinRow(5), pOKEOF(0, 0, ""))
}

func TestMariaDBPipelinedPrepareExecute(t *testing.T) {
	s := NewSession(baseCaps | ClientDeprecateEOF)
	command(t, s, []byte("\x16SELECT ?"))
	c := command(t, s, cExecute(stmtLastPrepared, 0, true, false, []execParam{{t: TypeLong, val: le32(7)}}))
	if c.ParamsDecoded {
		t.Fatal("decoded before the statement was known")
	}
	if s.InFlight() != 2 {
		t.Fatal(s.InFlight())
	}
	feedAll(t, s, ev{kind: EventPrepared, done: true}, pPrepareOK(11, 1, 1), pColDef("?", TypeLong), pColDef("?", TypeLong))
	e := feed(t, s, pColCount(1))
	if e.Exec == nil || !e.Exec.ParamsDecoded || e.Exec.Params[0].Value != "7" || e.Exec.Stmt.ID != 11 {
		t.Fatalf("deferred execute %+v", e.Exec)
	}
	feedAll(t, s, ev{kind: EventResultSet, done: true, rows: 1, cols: 1}, pColDef("?", TypeLong), pBinRow(7), pOKEOF(0, 0, ""))
}

func TestPipelinedQueries(t *testing.T) {
	s := NewSession(baseCaps)
	command(t, s, cQuery("SELECT 1"))
	command(t, s, cQuery("DO 2"))
	e := feedAll(t, s, ev{kind: EventResultSet, done: true, rows: 1, cols: 1}, resultSet(false, 0, []string{"1"}, pTextRow([]byte("1")))...)
	if e.Command != ComQuery || s.InFlight() != 1 {
		t.Fatal(s.InFlight())
	}
	check(t, feed(t, s, pOK(0, 0, 0, 0)), ev{kind: EventOK, done: true})
}

func TestBinlogDump(t *testing.T) {
	s := NewSession(baseCaps)
	command(t, s, cat([]byte{byte(ComBinlogDump)}, le32(4), le16(1), le32(2), []byte("bin.000001")))
	big := make([]byte, MaxPayload+100) // a large row event
	feedAll(t, s, ev{kind: EventOK, done: true}, []byte{0, 1, 2, 3}, big, pEOF(0, 0))
}
