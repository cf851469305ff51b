package auditlog

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"flag"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/das-mysql/das/internal/event"
)

var update = flag.Bool("update", false, "rewrite testdata golden files (the MariaDB test recaptures the server's lines)")

func TestParseLine(t *testing.T) {
	ts := time.Date(2026, 11, 25, 16, 54, 4, 0, time.UTC)
	tests := []struct {
		name, line string
		want       Record
	}{
		{"connect", `20261125 16:54:04,vm,root,127.0.0.1,4,0,CONNECT,,,0`,
			Record{Time: ts, ServerHost: "vm", User: "root", Host: "127.0.0.1", ConnectionID: "4", Operation: "CONNECT", RetCode: "0"}},
		{"failed connect, no user", `20261125 16:54:04,vm,,127.0.0.1,3,0,FAILED_CONNECT,,,1158`,
			Record{Time: ts, ServerHost: "vm", Host: "127.0.0.1", ConnectionID: "3", Operation: "FAILED_CONNECT", RetCode: "1158"}},
		{"query with escapes", `20261125 16:54:04,vm,root,127.0.0.1,4,2,QUERY,dastest,'INSERT INTO t VALUES (\'it\'\'s a \\\\ back\nnew\tline\r\b\f\')',0`,
			Record{Time: ts, ServerHost: "vm", User: "root", Host: "127.0.0.1", ConnectionID: "4", QueryID: 2, Operation: "QUERY", Database: "dastest",
				Object: "INSERT INTO t VALUES ('it''s a \\\\ back\nnew\tline\r\b\f')", ObjectLen: 63, RetCode: "0", Quoted: true}},
		{"query error code", `20261125 16:54:04,vm,das_test,127.0.0.1,6,16,QUERY,dastest,'CHANGE',1064`,
			Record{Time: ts, ServerHost: "vm", User: "das_test", Host: "127.0.0.1", ConnectionID: "6", QueryID: 16, Operation: "QUERY", Database: "dastest", Object: "CHANGE", ObjectLen: 6, RetCode: "1064", Quoted: true}},
		{"query with commas and quotes", `20261125 16:54:04,vm,u,h,1,2,QUERY,d,'SELECT \',\', 1,\'\\\'',0`,
			Record{Time: ts, ServerHost: "vm", User: "u", Host: "h", ConnectionID: "1", QueryID: 2, Operation: "QUERY", Database: "d", Object: `SELECT ',', 1,'\'`, ObjectLen: 22, RetCode: "0", Quoted: true}},
		{"older version: whitespace as spaces", `20261125 16:54:04,vm,u,h,1,2,QUERY,d,'SELECT  1  FROM  t',0`,
			Record{Time: ts, ServerHost: "vm", User: "u", Host: "h", ConnectionID: "1", QueryID: 2, Operation: "QUERY", Database: "d", Object: "SELECT  1  FROM  t", ObjectLen: 18, RetCode: "0", Quoted: true}},
		{"empty query", `20261125 16:54:04,vm,u,h,1,2,QUERY,d,'',0`,
			Record{Time: ts, ServerHost: "vm", User: "u", Host: "h", ConnectionID: "1", QueryID: 2, Operation: "QUERY", Database: "d", RetCode: "0", Quoted: true}},
		{"table event", `20261125 16:54:04,vm,root,127.0.0.1,4,3,READ,dastest,t1,`,
			Record{Time: ts, ServerHost: "vm", User: "root", Host: "127.0.0.1", ConnectionID: "4", QueryID: 3, Operation: "READ", Database: "dastest", Object: "t1"}},
		{"rename", `20261125 16:54:04,vm,root,127.0.0.1,4,4,RENAME,dastest,t1|dastest.t2,`,
			Record{Time: ts, ServerHost: "vm", User: "root", Host: "127.0.0.1", ConnectionID: "4", QueryID: 4, Operation: "RENAME", Database: "dastest", Object: "t1|dastest.t2"}},
		{"mariadb 12 host:port", `20261125 16:54:04,vm,root,10.0.0.7:53122,4,0,DISCONNECT,,,0`,
			Record{Time: ts, ServerHost: "vm", User: "root", Host: "10.0.0.7", Port: "53122", ConnectionID: "4", Operation: "DISCONNECT", RetCode: "0"}},
		{"bracketed ipv6 with port", `20261125 16:54:04,vm,root,[::1]:53122,4,0,CONNECT,,,0`,
			Record{Time: ts, ServerHost: "vm", User: "root", Host: "::1", Port: "53122", ConnectionID: "4", Operation: "CONNECT", RetCode: "0"}},
		{"bare ipv6", `20261125 16:54:04,vm,root,::1,4,0,CONNECT,,,0`,
			Record{Time: ts, ServerHost: "vm", User: "root", Host: "::1", ConnectionID: "4", Operation: "CONNECT", RetCode: "0"}},
		{"rds fork: more columns", `20261125 16:54:04,vm,root,10.0.0.7,4,9,QUERY,db,'SELECT 1',0,SSL,x`,
			Record{Time: ts, ServerHost: "vm", User: "root", Host: "10.0.0.7", ConnectionID: "4", QueryID: 9, Operation: "QUERY", Database: "db", Object: "SELECT 1", ObjectLen: 8, RetCode: "0", Quoted: true, Extra: []string{"SSL", "x"}}},
		{"aurora epoch microseconds", `1764089644123456,ip-10-0-0-1,admin,10.0.0.9,77,12,QUERY,db,'SELECT 1',0`,
			Record{Time: time.UnixMicro(1764089644123456), ServerHost: "ip-10-0-0-1", User: "admin", Host: "10.0.0.9", ConnectionID: "77", QueryID: 12, Operation: "QUERY", Database: "db", Object: "SELECT 1", ObjectLen: 8, RetCode: "0", Quoted: true}},
		{"change user", `20261125 16:54:04,vm,bob,localhost,8,0,CHANGE_USER,d,,0`,
			Record{Time: ts, ServerHost: "vm", User: "bob", Host: "localhost", ConnectionID: "8", Operation: "CHANGE_USER", Database: "d", RetCode: "0"}},
		{"crlf", "20261125 16:54:04,vm,u,h,1,0,DISCONNECT,,,0\r\n",
			Record{Time: ts, ServerHost: "vm", User: "u", Host: "h", ConnectionID: "1", Operation: "DISCONNECT", RetCode: "0"}},
		{"cut inside the query", `20261125 16:54:04,vm,u,h,1,2,QUERY,d,'SELECT \'abc`,
			Record{Time: ts, ServerHost: "vm", User: "u", Host: "h", ConnectionID: "1", QueryID: 2, Operation: "QUERY", Database: "d", Object: "SELECT 'abc", ObjectLen: 12, Quoted: true, Unterminated: true}},
		{"cut after a backslash", `20261125 16:54:04,vm,u,h,1,2,QUERY,d,'SELECT \`,
			Record{Time: ts, ServerHost: "vm", User: "u", Host: "h", ConnectionID: "1", QueryID: 2, Operation: "QUERY", Database: "d", Object: `SELECT \`, ObjectLen: 8, Quoted: true, Unterminated: true}},
		{"non-utf8 bytes", "20261125 16:54:04,vm,u,h,1,2,QUERY,d,'SELECT \xff\xfe',0",
			Record{Time: ts, ServerHost: "vm", User: "u", Host: "h", ConnectionID: "1", QueryID: 2, Operation: "QUERY", Database: "d", Object: "SELECT \xff\xfe", ObjectLen: 9, RetCode: "0", Quoted: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseLine([]byte(tt.line), time.UTC)
			if err != nil {
				t.Fatalf("ParseLine: %v", err)
			}
			if !got.Time.Equal(tt.want.Time) {
				t.Errorf("time %v, want %v", got.Time, tt.want.Time)
			}
			got.Time = tt.want.Time
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseLineLocation(t *testing.T) {
	loc := time.FixedZone("X", 3*3600)
	r, err := ParseLine([]byte(`20260101 01:30:00,vm,u,h,1,0,CONNECT,,,0`), loc)
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2025, 12, 31, 22, 30, 0, 0, time.UTC); !r.Time.Equal(want) {
		t.Errorf("time %v, want %v (server local time +03)", r.Time.UTC(), want)
	}
}

// Lines parsed one after another (as the tailer does, with one cache)
// keep their own times: the last line's is reused only for the same text
// in the same zone.
func TestParseLineTimeSequence(t *testing.T) {
	plus3 := time.FixedZone("X", 3*3600)
	var c strCache
	for i, tc := range []struct {
		stamp string
		loc   *time.Location
		want  time.Time
	}{
		{"20261125 16:54:04", time.UTC, time.Date(2026, 11, 25, 16, 54, 4, 0, time.UTC)},
		{"20261125 16:54:04", time.UTC, time.Date(2026, 11, 25, 16, 54, 4, 0, time.UTC)},
		{"20261125 16:54:05", time.UTC, time.Date(2026, 11, 25, 16, 54, 5, 0, time.UTC)},
		{"20261125 16:54:05", plus3, time.Date(2026, 11, 25, 13, 54, 5, 0, time.UTC)},
		{"1795689476742089", plus3, time.UnixMicro(1795689476742089)},
		{"20261125 16:54:04", time.UTC, time.Date(2026, 11, 25, 16, 54, 4, 0, time.UTC)},
	} {
		r, err := parseLine([]byte(tc.stamp+",vm,u,h,1,0,CONNECT,,,0"), tc.loc, &c)
		if err != nil {
			t.Fatalf("line %d: %v", i, err)
		}
		if !r.Time.Equal(tc.want) {
			t.Errorf("line %d (%s): time %v, want %v", i, tc.stamp, r.Time.UTC(), tc.want)
		}
	}
}

func TestParseLineErrors(t *testing.T) {
	for _, line := range []string{
		"",
		"hello world",
		"2026112 16:54:04,vm,u,h,1,0,CONNECT,,,0",
		"20261325 16:54:04,vm,u,h,1,0,CONNECT,,,0",
		"20261125 16:54:04,vm,u,h,x,0,CONNECT,,,0",
		"20261125 16:54:04,vm,u,h,1,-1,CONNECT,,,0",
		"20261125 16:54:04,vm,u,h,1,0,connect,,,0",
		"20261125 16:54:04,vm,u,h,1,0,CONNECT",
		"20261125 16:54:04,vm,u,h,1,0,QUERY,d,'x'y,0",
		"20261125 16:54:04,vm,u,h,1,0,QUERY,d,'x'",
		"20261125 16:54:04,vm,u,h,1,0,QUERY,d,'x',abc",
	} {
		if r, err := ParseLine([]byte(line), time.UTC); err == nil {
			t.Errorf("ParseLine(%q) = %+v, want an error", line, r)
		} else if !IsParseError(err) {
			t.Errorf("ParseLine(%q): %v is not a ParseError", line, err)
		}
	}
}

func TestEventMapping(t *testing.T) {
	parse := func(line string) event.Event {
		t.Helper()
		r, err := ParseLine([]byte(line), time.UTC)
		if err != nil {
			t.Fatal(err)
		}
		return r.Event(EventOptions{QueryLogLimit: 40})
	}
	e := parse(`20261125 16:54:04,vm,bob,localhost,8,0,CHANGE_USER,d,,0`)
	if e.Command != event.CommandChangeUser || e.NetProtocol != event.NetProtocolSocket || e.SessionID != "8" {
		t.Errorf("change user: %+v", e)
	}
	e = parse(`20261125 16:54:04,vm,root,127.0.0.1,4,4,RENAME,dastest,t1|dastest.t2,`)
	if e.Class != event.ClassAux || e.SubstatementID != 2 || e.Command != "RENAME" || e.ObjectName != "dastest.t1,dastest.t2" ||
		e.CommandText != "t1|dastest.t2" || e.ExitCode != "" || e.StatementID != 4 || e.NetProtocol != event.NetProtocolTCP {
		t.Errorf("rename: %+v", e)
	}
	// Every query operation the plugin's filters name is a QUERY; every
	// table operation an AUX event naming its table; an operation not known
	// is kept as written.
	for _, tc := range []struct{ op, class, command, object string }{
		{"QUERY", event.ClassMain, event.CommandQuery, ""},
		{"QUERY_DDL", event.ClassMain, event.CommandQuery, ""},
		{"QUERY_DML", event.ClassMain, event.CommandQuery, ""},
		{"QUERY_DML_NO_SELECT", event.ClassMain, event.CommandQuery, ""},
		{"QUERY_DCL", event.ClassMain, event.CommandQuery, ""},
		{"READ", event.ClassAux, "READ", "dastest.t1"},
		{"WRITE", event.ClassAux, "WRITE", "dastest.t1"},
		{"CREATE", event.ClassAux, "CREATE", "dastest.t1"},
		{"ALTER", event.ClassAux, "ALTER", "dastest.t1"},
		{"DROP", event.ClassAux, "DROP", "dastest.t1"},
		{"TABLE", event.ClassMain, "TABLE", ""},
	} {
		obj := "t1"
		if tc.class == event.ClassMain {
			obj = "'SELECT 1'"
		}
		ret := "0"
		if tc.class == event.ClassAux {
			ret = ""
		}
		e := parse("20261125 16:54:04,vm,root,127.0.0.1,4,3," + tc.op + ",dastest," + obj + "," + ret)
		if e.Class != tc.class || e.Command != tc.command || e.ObjectName != tc.object {
			t.Errorf("%s: class %s command %s object %q, want %s %s %q", tc.op, e.Class, e.Command, e.ObjectName, tc.class, tc.command, tc.object)
		}
	}
	e = parse(`20261125 16:54:04,vm,root,127.0.0.1,4,3,QUERY_DML,dastest,'SELECT 1',1146`)
	if e.Command != event.CommandQuery || e.CommandText != "SELECT 1" || e.ExitCode != "1146" || e.StatementID != 3 || e.Extra.Get("dasTruncated") != nil {
		t.Errorf("query: %+v", e)
	}
	if string(e.Extra.Get("dasSource")) != `"server_audit"` {
		t.Errorf("dasSource = %s", e.Extra.Get("dasSource"))
	}
	e = parse(`20261125 16:54:04,vm,root,127.0.0.1,4,3,QUERY,dastest,'` + strings.Repeat("x", 40) + `',0`)
	if e.Extra.Get("dasTruncated") == nil {
		t.Errorf("a query as long as the limit is not flagged as maybe cut")
	}
	e = parse("20261125 16:54:04,vm,root,127.0.0.1,4,3,QUERY,dastest,'SELECT \xff',0")
	if e.Extra.Get("dasInvalidUTF8") == nil {
		t.Errorf("invalid UTF-8 not flagged")
	}
	ue := unparsedEvent([]byte("junk\xff"), errEmpty, time.Now(), "h")
	if ue.Command != CommandUnparsed || string(ue.Extra.Get("dasRawBase64")) != `"anVua/8="` || ue.CommandText != "" {
		t.Errorf("unparsed: %+v", ue)
	}
}

// TestTruncatedFlag: the plugin cuts a query's escaped text (see Event),
// so the flag goes by the length as written, not as unescaped.
func TestTruncatedFlag(t *testing.T) {
	tests := []struct {
		name     string
		object   string // as written between the quotes
		limit    int
		cutQuote bool // the line ends inside the object
		want     bool
	}{
		{"plain, limit-2", `SELECT 12345678901`, 20, false, false},
		{"plain, limit-1", `SELECT 123456789012`, 20, false, true},
		{"plain, at the limit", `SELECT 1234567890123`, 20, false, true},
		{"quotes, limit-2 written", `SELECT \'abc\', 12`, 20, false, false},
		{"quotes, at the limit written, 16 unescaped", `SELECT \'a\', \'bc\'`, 20, false, true},
		{"quote, limit-1 written: cut before an escape", `SELECT 1, \'abcdefg`, 20, false, true},
		{"backslashes, 10 unescaped", strings.Repeat(`\\`, 10), 20, false, true},
		{"newlines, 16 unescaped", `SELECT\n1,\n2,\n3,\n`, 20, false, true},
		{"tab and carriage return, limit-1 written", `SELECT\t1\r\n234567`, 20, false, true},
		{"unterminated, short", `SELECT \'ab`, 20, true, true},
		{"check disabled", strings.Repeat("x", 40), -1, false, false},
		{"default limit, 1022 written", `SELECT \'` + strings.Repeat("x", 1013), 0, false, false},
		{"default limit, 1023 written", `SELECT \'` + strings.Repeat("x", 1014), 0, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			line := `20261125 16:54:04,vm,u,h,1,2,QUERY,d,'` + tt.object
			if !tt.cutQuote {
				line += `',0`
			}
			r, err := ParseLine([]byte(line), time.UTC)
			if err != nil {
				t.Fatal(err)
			}
			if r.ObjectLen != len(tt.object) {
				t.Errorf("ObjectLen %d, want %d", r.ObjectLen, len(tt.object))
			}
			e := r.Event(EventOptions{QueryLogLimit: tt.limit})
			if got := e.Extra.Has("dasTruncated"); got != tt.want {
				t.Errorf("dasTruncated %v, want %v (%d bytes written, %d unescaped, limit %d)", got, tt.want, len(tt.object), len(r.Object), tt.limit)
			}
		})
	}
}

// pluginEscapes is server_audit's esc_map (MariaDB 10.5+): the bytes it
// writes as a backslash and this letter.
var pluginEscapes = [256]byte{'\b': 'b', '\t': 't', '\n': 'n', '\f': 'f', '\r': 'r', '\'': '\'', '\\': '\\'}

// pluginObject is q as server_audit's log_statement_ex writes it with a
// query_log_limit of limit: q capped at limit bytes, then escape_string
// into limit+2 bytes of room, two of which it keeps free.
func pluginObject(q string, limit int) string {
	q = q[:min(len(q), limit)]
	var b []byte
	for i := 0; i < len(q) && len(b) < limit; i++ {
		if e := pluginEscapes[q[i]]; e != 0 {
			if len(b)+1 >= limit {
				break
			}
			b = append(b, '\\', e)
		} else {
			b = append(b, q[i])
		}
	}
	return string(b)
}

// Every query the plugin cuts is flagged, and only queries written at
// least limit-1 bytes long are.
func TestTruncatedFlagPlugin(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []string{"a", "b", " ", "'", "\\", "\n", "\t", "\r", "é", ","}
	for range 20000 {
		limit := 1 + rng.IntN(40)
		var q strings.Builder
		for range rng.IntN(2*limit + 2) {
			q.WriteString(alphabet[rng.IntN(len(alphabet))])
		}
		obj := pluginObject(q.String(), limit)
		whole := pluginObject(q.String(), 1<<30)
		r, err := ParseLine([]byte(`20261125 16:54:04,vm,u,h,1,2,QUERY,d,'`+obj+`',0`), time.UTC)
		if err != nil {
			t.Fatalf("%q: %v", obj, err)
		}
		flagged := r.Event(EventOptions{QueryLogLimit: limit}).Extra.Has("dasTruncated")
		switch {
		case obj != whole && !flagged:
			t.Fatalf("limit %d: %q was cut to %q (%q unescaped) and not flagged", limit, q.String(), obj, r.Object)
		case flagged && len(obj) < limit-1:
			t.Fatalf("limit %d: %q flagged, %d bytes written", limit, obj, len(obj))
		case !flagged && r.Object != q.String():
			t.Fatalf("limit %d: %q not flagged but reads %q", limit, q.String(), r.Object)
		}
	}
}

// A line that is not a record keeps its raw text, with passwords masked as
// in commandText: also when it is base64 (the pipeline redacts commandText
// only) and also inside the escaped SQL of a line shaped like a record
// (where redact.SQL alone would see one string literal).
func TestUnparsedRedacted(t *testing.T) {
	const head = `20261125 16:54:04,vm,u,h,1,x,QUERY,d,` // queryid "x": not a record
	tests := []struct {
		name, line, want string
		base64           bool // not UTF-8: in dasRawBase64
	}{
		{"bare SQL, invalid UTF-8", "\xff CREATE USER u IDENTIFIED BY 'secret'",
			"\xff CREATE USER u IDENTIFIED BY *****", true},
		{"record-shaped, invalid UTF-8", head + "'SELECT \\'\xff\\'; CREATE USER u IDENTIFIED BY \\'secret\\'',0",
			head + "'SELECT \\'\xff\\'; CREATE USER u IDENTIFIED BY *****',0", true},
		{"record-shaped, UTF-8, escapes kept", head + `'SET PASSWORD FOR u = PASSWORD(\'secret\')\n-- \\ \t',0`,
			head + `'SET PASSWORD FOR u = PASSWORD(*****)\n-- \\ \t',0`, false},
		{"record-shaped, cut inside the password (its invalid byte masked too)", head + "'ALTER USER u IDENTIFIED BY \\'secr\xfe",
			head + "'ALTER USER u IDENTIFIED BY *****", false},
		{"no password, kept byte for byte", head + "'SELECT \\'\xff\\' \\z IDENTIFIED',0",
			head + "'SELECT \\'\xff\\' \\z IDENTIFIED',0", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ParseLine([]byte(tt.line), time.UTC); err == nil {
				t.Fatalf("%q parses: not a test of an unparsed line", tt.line)
			}
			e := unparsedEvent([]byte(tt.line), errEmpty, time.Unix(0, 0), "h")
			got := e.CommandText
			if raw := e.Extra.Get("dasRawBase64"); raw != nil {
				var b64 string
				if err := json.Unmarshal(raw, &b64); err != nil {
					t.Fatal(err)
				}
				b, err := base64.StdEncoding.DecodeString(b64)
				if err != nil {
					t.Fatal(err)
				}
				got = string(b)
			}
			if (e.Extra.Get("dasRawBase64") != nil) != tt.base64 {
				t.Errorf("dasRawBase64 present: %v, want %v", !tt.base64, tt.base64)
			}
			if got != tt.want {
				t.Errorf("raw text\n%q, want\n%q", got, tt.want)
			}
		})
	}
}

// TestGolden parses lines the real server (MariaDB 10.11) wrote, captured
// by TestMariaDBExactlyOnce with -update, plus hand-made ones, and compares
// the events with the golden file.
func TestGolden(t *testing.T) {
	in, err := os.ReadFile(filepath.Join("testdata", "server_audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	// Shapes this server does not write (MariaDB 12, RDS, Aurora).
	hand, err := os.ReadFile(filepath.Join("testdata", "handmade.log"))
	if err != nil {
		t.Fatal(err)
	}
	in = append(in, hand...)
	var out bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(in))
	n := 0
	for sc.Scan() {
		r, err := ParseLine(sc.Bytes(), time.UTC)
		if err != nil {
			t.Errorf("line %d %q: %v", n+1, sc.Text(), err)
			continue
		}
		e := r.Event(EventOptions{})
		out.Write(e.AppendJSON(nil))
		out.WriteByte('\n')
		n++
	}
	if n < 50 {
		t.Fatalf("only %d lines in the capture", n)
	}
	goldenPath := filepath.Join("testdata", "server_audit.golden")
	if *update {
		if err := os.WriteFile(goldenPath, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(goldenPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), want) {
		gl, wl := strings.Split(out.String(), "\n"), strings.Split(string(want), "\n")
		for i := range min(len(gl), len(wl)) {
			if gl[i] != wl[i] {
				t.Fatalf("event %d differs:\ngot  %s\nwant %s", i+1, gl[i], wl[i])
			}
		}
		t.Fatalf("%d events, golden has %d", len(gl), len(wl))
	}
}

func FuzzParseLine(f *testing.F) {
	for _, s := range []string{
		`20261125 16:54:04,vm,root,127.0.0.1,4,0,CONNECT,,,0`,
		`20261125 16:54:04,vm,root,127.0.0.1,4,2,QUERY,dastest,'INSERT \'a\\b\n',0`,
		`20261125 16:54:04,vm,root,127.0.0.1,4,3,READ,dastest,t1,`,
		`1764089644123456,ip,admin,10.0.0.9:1,77,12,QUERY,db,'SELECT 1',0,x`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		r, err := ParseLine(line, time.UTC)
		if err != nil {
			ue := unparsedEvent(line, err, time.Unix(0, 0), "")
			if ue.CommandText == "" && ue.Extra.Get("dasRawBase64") == nil && len(line) > 0 {
				t.Fatalf("unparsed line lost: %q", line)
			}
			return
		}
		e := r.Event(EventOptions{})
		var m map[string]any
		if err := json.Unmarshal(e.AppendJSON(nil), &m); err != nil {
			t.Fatalf("event JSON of %q: %v", line, err)
		}
		// An escaped object re-escaped must parse back to itself.
		if r.Quoted && !r.Unterminated && utf8.Valid(line) {
			var b strings.Builder
			for _, c := range []byte(r.Object) {
				switch c {
				case '\'', '\\':
					b.WriteByte('\\')
					b.WriteByte(c)
				case '\n':
					b.WriteString(`\n`)
				default:
					b.WriteByte(c)
				}
			}
			l2 := "20261125 16:54:04,h,u,h,1,2,QUERY,d,'" + b.String() + "',0"
			r2, err := ParseLine([]byte(l2), time.UTC)
			if err != nil || r2.Object != r.Object {
				t.Fatalf("round trip of %q: %q, %v", r.Object, r2.Object, err)
			}
		}
	})
}

// BenchmarkParseLine parses a generated file of typical lines.
func BenchmarkParseLine(b *testing.B) {
	lines := benchLines(10000)
	var total int
	for _, l := range lines {
		total += len(l) + 1
	}
	b.ReportAllocs()
	b.SetBytes(int64(total / len(lines)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := ParseLine(lines[i%len(lines)], time.UTC); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lines/s")
}

// BenchmarkParseEvent parses and maps to events, as the tailer does.
func BenchmarkParseEvent(b *testing.B) {
	lines := benchLines(10000)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r, err := ParseLine(lines[i%len(lines)], time.UTC)
		if err != nil {
			b.Fatal(err)
		}
		e := r.Event(EventOptions{})
		_ = e
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lines/s")
}

func benchLines(n int) [][]byte {
	shapes := []string{
		`20261125 16:54:04,db-host-1,app,10.0.3.17,%d,%d,QUERY,shop,'SELECT c FROM sbtest1 WHERE id=%d',0`,
		`20261125 16:54:04,db-host-1,app,10.0.3.17,%d,%d,READ,shop,sbtest1,`,
		`20261125 16:54:04,db-host-1,app,10.0.3.17,%d,%d,QUERY,shop,'UPDATE sbtest1 SET c=\'it\\\'s\' WHERE id=%d',0`,
		`20261125 16:54:04,db-host-1,app,10.0.3.17,%d,%d,CONNECT,shop,,0`,
	}
	out := make([][]byte, n)
	for i := range out {
		s := shapes[i%len(shapes)]
		out[i] = []byte(strings.NewReplacer("%d", "1234").Replace(s))
	}
	return out
}
