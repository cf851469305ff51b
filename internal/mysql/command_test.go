package mysql

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"testing"
)

func TestParseOKERREOF(t *testing.T) {
	ok, err := ParseOK(cat([]byte{0, 0xfc, 0x10, 0x27, 5}, le16(StatusAutocommit|StatusInTrans), le16(2), []byte("Rows matched: 1")), ClientProtocol41)
	if err != nil || ok.AffectedRows != 10000 || ok.LastInsertID != 5 || ok.Status != 3 || ok.Warnings != 2 || string(ok.Info) != "Rows matched: 1" {
		t.Fatalf("%+v %v", ok, err)
	}
	// Session tracking: info is length-encoded and session state follows.
	ok, err = ParseOK(cat([]byte{0, 1, 0}, le16(StatusSessionStateChange), le16(0), lenenc("info"), lenenc("\x01\x05\x04test")), ClientProtocol41|ClientSessionTrack)
	if err != nil || string(ok.Info) != "info" || ok.AffectedRows != 1 {
		t.Fatalf("%+v %v", ok, err)
	}
	if _, err := ParseOK([]byte{0, 0xfc, 1}, ClientProtocol41); !errors.Is(err, ErrMalformed) {
		t.Fatalf("truncated OK: %v", err)
	}

	e, err := ParseERR(pERR(1045, "28000", "Access denied for user 'x'@'localhost'"), ClientProtocol41)
	if err != nil || e.Code != 1045 || e.SQLState != "28000" || e.Message != "Access denied for user 'x'@'localhost'" {
		t.Fatalf("%+v %v", e, err)
	}
	// ERR sent instead of the greeting has no SQL state.
	e, err = ParseERR(ErrorPacketNoState(1130, "Host '10.0.0.1' is not allowed to connect"), 0)
	if err != nil || e.Code != 1130 || e.SQLState != "" || e.Message != "Host '10.0.0.1' is not allowed to connect" {
		t.Fatalf("%+v %v", e, err)
	}
	if got := (ERR{Code: 1064, SQLState: "42000", Message: "syntax"}).Error(); got != "ERROR 1064 (42000): syntax" {
		t.Error(got)
	}
	if got := ErrorPacket(2013, "HY", "lost"); !bytes.Equal(got, []byte("\xff\xdd\x07#HY000lost")) {
		t.Errorf("ErrorPacket pads the state: %q", got)
	}

	if !IsEOF(pEOF(2, 0)) || !IsEOF([]byte{0xfe}) || IsEOF(append([]byte{0xfe}, make([]byte, 8)...)) || IsEOF(nil) {
		t.Error("IsEOF")
	}
	w, st, err := ParseEOF(pEOF(StatusMoreResultsExists, 3))
	if err != nil || w != 3 || st != StatusMoreResultsExists {
		t.Errorf("ParseEOF %d %d %v", w, st, err)
	}
}

func TestParseCommand(t *testing.T) {
	caps := mysql8Caps &^ ClientQueryAttributes
	cu := cat([]byte{byte(ComChangeUser)}, []byte("bob\x00"), []byte{3}, []byte("xyz"), []byte("db2\x00"), le16(45),
		[]byte("mysql_native_password\x00"), lenenc(string(cat(lenenc("program_name"), lenenc("app")))))
	tests := []struct {
		name string
		in   []byte
		want Command
	}{
		{"query", cQuery("SELECT 1"), Command{Code: ComQuery, Query: []byte("SELECT 1")}},
		{"init db", []byte("\x02shop"), Command{Code: ComInitDB, Schema: []byte("shop")}},
		{"prepare", []byte("\x16SELECT ?"), Command{Code: ComStmtPrepare, Query: []byte("SELECT ?")}},
		{"field list", []byte("\x04t1\x00col%"), Command{Code: ComFieldList, Table: []byte("t1"), Wildcard: []byte("col%")}},
		{"process kill", cat([]byte{0x0c}, le32(77)), Command{Code: ComProcessKill, ConnectionID: 77}},
		{"set option", []byte{0x1b, 1, 0}, Command{Code: ComSetOption, Option: 1}},
		{"ping", []byte{0x0e}, Command{Code: ComPing}},
		{"quit", []byte{0x01}, Command{Code: ComQuit}},
		{"reset connection", []byte{0x1f}, Command{Code: ComResetConnection}},
		{"statistics", []byte{0x09}, Command{Code: ComStatistics}},
		{"close", cStmt(ComStmtClose, 9), Command{Code: ComStmtClose, StmtID: 9}},
		{"reset", cStmt(ComStmtReset, 9), Command{Code: ComStmtReset, StmtID: 9}},
		{"fetch", cStmt(ComStmtFetch, 9, le32(100)...), Command{Code: ComStmtFetch, StmtID: 9, NumRows: 100}},
		{"long data", cStmt(ComStmtSendLongData, 9, 1, 0, 'a', 'b'), Command{Code: ComStmtSendLongData, StmtID: 9, ParamID: 1, Data: []byte("ab")}},
		{"execute header", cExecute(9, CursorTypeReadOnly, true, false, nil), Command{Code: ComStmtExecute, StmtID: 9, Flags: 1, Iterations: 1}},
		{"change user", cu, Command{Code: ComChangeUser, ChangeUser: &ChangeUser{User: "bob", AuthResponse: []byte("xyz"),
			Database: "db2", Charset: 45, AuthPlugin: "mysql_native_password", Attrs: map[string]string{"program_name": "app"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseCommand(tt.in, caps)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
	for _, bad := range [][]byte{nil, {0x0c, 1}, {0x1c, 1, 0, 0, 0}, {0x11, 'b'}, {0x18, 1, 0, 0, 0, 1}} {
		if _, err := ParseCommand(bad, caps); !errors.Is(err, ErrMalformed) {
			t.Errorf("% x: err %v, want ErrMalformed", bad, err)
		}
	}
}

func TestParseQueryWithAttributes(t *testing.T) {
	// mysql client: query_attributes n1 v1 n2 v2; SELECT mysql_query_attribute_string('n1')
	p := cat([]byte{byte(ComQuery)}, []byte{3, 1}, []byte{0b100, 1},
		[]byte{byte(TypeVarString), 0}, lenenc("traceparent"),
		[]byte{byte(TypeLongLong), 0x80}, lenenc("retries"),
		[]byte{byte(TypeNull), 0}, lenenc("nothing"),
		lenenc("00-abc-01"), le64(3),
		[]byte("SELECT 1"))
	c, err := ParseCommand(p, ClientQueryAttributes)
	if err != nil {
		t.Fatal(err)
	}
	want := []Param{
		{Type: TypeVarString, Name: "traceparent", Value: "00-abc-01"},
		{Type: TypeLongLong, Unsigned: true, Name: "retries", Value: "3"},
		{Type: TypeNull, Name: "nothing", Null: true},
	}
	if string(c.Query) != "SELECT 1" || !reflect.DeepEqual(c.Attrs, want) {
		t.Fatalf("query %q attrs %+v", c.Query, c.Attrs)
	}
	// No attributes: two zero counts precede the query.
	c, err = ParseCommand([]byte("\x03\x00\x01SELECT 2"), ClientQueryAttributes)
	if err != nil || string(c.Query) != "SELECT 2" || c.Attrs != nil {
		t.Fatalf("%q %v %v", c.Query, c.Attrs, err)
	}
	// Without the capability the same bytes are query text.
	c, _ = ParseCommand([]byte("\x03\x00\x01SELECT 2"), 0)
	if string(c.Query) != "\x00\x01SELECT 2" {
		t.Fatalf("%q", c.Query)
	}
	if _, err := ParseCommand(p[:20], ClientQueryAttributes); !errors.Is(err, ErrMalformed) {
		t.Fatalf("truncated attributes: %v", err)
	}
}

// binaryValueCase is one golden case of testdata/binary_params.json.
type binaryValueCase struct {
	Name     string `json:"name"`
	Type     byte   `json:"type"`
	Unsigned bool   `json:"unsigned"`
	Hex      string `json:"hex"` // the value bytes as sent in COM_STMT_EXECUTE
	Want     string `json:"want"`
}

func TestExecuteParamsEveryType(t *testing.T) {
	raw, err := os.ReadFile("testdata/binary_params.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases []binaryValueCase
	if err := json.Unmarshal(raw, &cases); err != nil {
		t.Fatal(err)
	}
	params := make([]execParam, 0, len(cases)+1)
	for _, c := range cases {
		v, err := hex.DecodeString(c.Hex)
		if err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		params = append(params, execParam{t: FieldType(c.Type), unsigned: c.Unsigned, val: v})
	}
	params = append(params, execParam{t: TypeLong, null: true})
	st := &Stmt{ID: 1, NumParams: uint16(len(params))}
	cmd, err := ParseStmtExecute(cExecute(1, 0, true, false, params), 0, st)
	if err != nil {
		t.Fatal(err)
	}
	if !cmd.ParamsDecoded || !cmd.NewParamsBound || len(cmd.Params) != len(params) {
		t.Fatalf("decoded %v bound %v n %d", cmd.ParamsDecoded, cmd.NewParamsBound, len(cmd.Params))
	}
	for i, c := range cases {
		p := cmd.Params[i]
		if p.Null || p.Value != c.Want || p.Type != FieldType(c.Type) || p.Unsigned != c.Unsigned {
			t.Errorf("%s: got %+v, want %q", c.Name, p, c.Want)
		}
	}
	if last := cmd.Params[len(cases)]; !last.Null || last.Value != "" {
		t.Errorf("NULL param: %+v", last)
	}

	// Re-execute without types: the bound types are reused.
	cmd2, err := ParseStmtExecute(cExecute(1, 0, false, false, params), 0, st)
	if err != nil || cmd2.NewParamsBound || !reflect.DeepEqual(cmd2.Params, cmd.Params) {
		t.Fatalf("re-execute: %v", err)
	}
	// Never-bound types cannot be decoded.
	if _, err := ParseStmtExecute(cExecute(1, 0, false, false, params), 0, &Stmt{ID: 1, NumParams: uint16(len(params))}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("unbound types: %v", err)
	}
}

func TestExecuteWithQueryAttributes(t *testing.T) {
	st := &Stmt{ID: 4, NumParams: 1}
	params := []execParam{
		{t: TypeLong, val: le32(0xfffffffb)},
		{t: TypeVarString, name: "trace", val: lenenc("t-1")},
	}
	cmd, err := ParseStmtExecute(cExecute(4, ParameterCountAvailable, true, true, params), ClientQueryAttributes, st)
	if err != nil {
		t.Fatal(err)
	}
	if len(cmd.Params) != 1 || cmd.Params[0].Value != "-5" || len(cmd.Attrs) != 1 || cmd.Attrs[0].Name != "trace" || cmd.Attrs[0].Value != "t-1" {
		t.Fatalf("params %+v attrs %+v", cmd.Params, cmd.Attrs)
	}
	// A statement without parameters, with only attributes.
	st0 := &Stmt{ID: 5}
	cmd, err = ParseStmtExecute(cExecute(5, ParameterCountAvailable, true, true, params[1:]), ClientQueryAttributes, st0)
	if err != nil || len(cmd.Params) != 0 || len(cmd.Attrs) != 1 {
		t.Fatalf("%+v %v", cmd, err)
	}
	// No parameters, no attributes, no count flag: nothing after the header.
	cmd, err = ParseStmtExecute(cExecute(5, 0, false, false, nil), ClientQueryAttributes, st0)
	if err != nil || !cmd.ParamsDecoded {
		t.Fatalf("%+v %v", cmd, err)
	}
}

func TestBinaryValueErrors(t *testing.T) {
	for _, tc := range []struct {
		t   FieldType
		val []byte
	}{
		{TypeLong, []byte{1, 2}},
		{TypeDate, []byte{5, 1, 2, 3, 4, 5}},
		{TypeTime, []byte{3, 0, 0, 0}},
		{TypeVarString, []byte{0xfc, 0xff}},
		{TypeVarString, []byte{5, 'a'}},
		{FieldType(0x30), []byte{0}},
	} {
		st := &Stmt{ID: 1, NumParams: 1}
		_, err := ParseStmtExecute(cExecute(1, 0, true, false, []execParam{{t: tc.t, val: tc.val}}), 0, st)
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("%s % x: err %v", tc.t, tc.val, err)
		}
	}
}
