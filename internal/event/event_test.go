package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustTime(t testing.TB, s string) Time {
	t.Helper()
	v, err := ParseTime(s)
	if err != nil {
		t.Fatal(err)
	}
	return Time{v}
}

// The Aurora MySQL CONNECT example from AWS's documentation decodes to the
// expected values and encodes back to the very same bytes, field order
// included.
func TestGoldenConnect(t *testing.T) {
	golden := bytes.TrimSpace(readFile(t, "connect.json"))
	var e Event
	if err := json.Unmarshal(golden, &e); err != nil {
		t.Fatal(err)
	}
	want := Event{
		Class: ClassMain, Command: CommandConnect, DBProtocol: "MySQL", DBUserName: "rdsadmin",
		EndTime: mustTime(t, "2020-05-22 18:07:13.267213+00"), ExitCode: "0",
		LogTime: mustTime(t, "2020-05-22 18:07:13.267214+00"), NetProtocol: "TCP",
		ObjectType: "TABLE", PID: 2830, RemoteHost: "localhost", RemotePort: "11053",
		ServerHost: "master", ServerType: "MySQL", ServerVersion: "MySQL 5.7.12",
		ServiceName: "Amazon Aurora MySQL", SessionID: "725121",
		StartTime: mustTime(t, "2020-05-22 18:07:13.267207+00"), SubstatementID: 1,
		TransactionID: "0", Type: TypeRecord,
	}
	if !reflect.DeepEqual(e, want) {
		t.Fatalf("decoded\n%+v\nwant\n%+v", e, want)
	}
	got := e.AppendJSON(nil)
	if !bytes.Equal(got, golden) {
		t.Fatalf("encoded\n%s\nwant\n%s", got, golden)
	}
	viaStd, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(viaStd, golden) {
		t.Fatalf("json.Marshal\n%s\nwant\n%s", viaStd, golden)
	}
}

// A full payload from the docs (the AUX half of a CREATE TABLE) round-trips
// to its compact form.
func TestGoldenPayload(t *testing.T) {
	src := readFile(t, "payload_aux.json")
	var p Payload
	if err := json.Unmarshal(src, &p); err != nil {
		t.Fatal(err)
	}
	if p.Type != PayloadType || p.ClusterID != "cluster-some_id" || p.InstanceID != "db-some_id" || len(p.Events) != 1 {
		t.Fatalf("payload header: %+v", p)
	}
	ev := p.Events[0]
	if ev.Class != ClassAux || ev.Command != CommandCreate || ev.ExitCode != "" || ev.SubstatementID != 2 ||
		ev.StatementID != 65459278 || ev.CommandText != "test1" {
		t.Fatalf("event: %+v", ev)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, src); err != nil {
		t.Fatal(err)
	}
	got, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, compact.Bytes()) {
		t.Fatalf("encoded\n%s\nwant\n%s", got, compact.Bytes())
	}
}

func TestPayloadEmptyList(t *testing.T) {
	p := Payload{Type: PayloadType, ClusterID: "c", InstanceID: "i"}
	got := string(p.AppendJSON(nil))
	want := `{"type":"DatabaseActivityMonitoringRecord","clusterId":"c","instanceId":"i","databaseActivityEventList":[]}`
	if got != want {
		t.Fatalf("got %s want %s", got, want)
	}
	// Decoding into a used Payload replaces its content.
	old := Payload{Events: []Event{{Command: "X"}}, Extra: Fields{{"a", json.RawMessage("1")}}}
	if err := json.Unmarshal([]byte(want), &old); err != nil {
		t.Fatal(err)
	}
	if len(old.Events) != 0 || old.Extra != nil || old.ClusterID != "c" {
		t.Fatalf("reused payload: %+v", old)
	}
}

// Aurora PostgreSQL's CONNECT example: nulls and other wire types decode.
func TestDecodeAuroraPostgres(t *testing.T) {
	var e Event
	if err := json.Unmarshal(readFile(t, "postgres_connect.json"), &e); err != nil {
		t.Fatal(err)
	}
	if e.ClientApplication == nil || *e.ClientApplication != "psql" {
		t.Fatalf("clientApplication: %v", e.ClientApplication)
	}
	if e.ParamList == nil || len(e.ParamList) != 0 {
		t.Fatalf("paramList [] must decode to an empty, non-nil list: %#v", e.ParamList)
	}
	if e.ExitCode != "" || e.RowCount != 0 || e.CommandText != "" || e.ObjectType != "" || e.SessionID != "5ce5f7f0.474b" {
		t.Fatalf("event: %+v", e)
	}
	if !e.EndTime.IsZero() || e.LogTime.Time != time.Date(2019, 10, 30, 0, 39, 49, 990579000, time.UTC) {
		t.Fatalf("times: %v %v", e.EndTime, e.LogTime)
	}
	if !strings.Contains(string(e.AppendJSON(nil)), `"paramList":[]`) {
		t.Fatal("empty paramList must encode as []")
	}
}

func TestDecodeLooseTypes(t *testing.T) {
	tests := []struct {
		in    string
		check func(e Event) bool
	}{
		{`{"exitCode":0}`, func(e Event) bool { return e.ExitCode == "0" }},
		{`{"exitCode":"0"}`, func(e Event) bool { return e.ExitCode == "0" }},
		{`{"exitCode":1045}`, func(e Event) bool { return e.ExitCode == "1045" }},
		{`{"exitCode":null}`, func(e Event) bool { return e.ExitCode == "" }},
		{`{"pid":"2830"}`, func(e Event) bool { return e.PID == 2830 }},
		{`{"pid":" 2830 "}`, func(e Event) bool { return e.PID == 2830 }},
		{`{"pid":2830.0}`, func(e Event) bool { return e.PID == 2830 }},
		{`{"pid":2.83e3}`, func(e Event) bool { return e.PID == 2830 }},
		{`{"pid":""}`, func(e Event) bool { return e.PID == 0 }},
		{`{"rowCount":null}`, func(e Event) bool { return e.RowCount == 0 }},
		{`{"rowCount":"-3"}`, func(e Event) bool { return e.RowCount == -3 }},
		{`{"statementId":9007199254740993}`, func(e Event) bool { return e.StatementID == 9007199254740993 }},
		{`{"sessionId":725121}`, func(e Event) bool { return e.SessionID == "725121" }},
		{`{"remotePort":11053}`, func(e Event) bool { return e.RemotePort == "11053" }},
		{`{"transactionId":0}`, func(e Event) bool { return e.TransactionID == "0" }},
		{`{"substatementId":"2"}`, func(e Event) bool { return e.SubstatementID == 2 }},
		{`{"clientApplication":"mysql"}`, func(e Event) bool { return e.ClientApplication != nil && *e.ClientApplication == "mysql" }},
		{`{"clientApplication":null}`, func(e Event) bool { return e.ClientApplication == nil }},
		{`{"paramList":["1",2,null,true]}`, func(e Event) bool { return reflect.DeepEqual(e.ParamList, []string{"1", "2", "", "true"}) }},
		{`{"paramList":"x"}`, func(e Event) bool { return reflect.DeepEqual(e.ParamList, []string{"x"}) }},
		{`{"logTime":null,"endTime":""}`, func(e Event) bool { return e.LogTime.IsZero() && e.EndTime.IsZero() }},
		{`{"logTime":"2020-05-22 18:07:13+00"}`, func(e Event) bool {
			return e.LogTime.Time.Equal(time.Date(2020, 5, 22, 18, 7, 13, 0, time.UTC))
		}},
		{`{"commandText":"a\"b\\c\u00e9\n"}`, func(e Event) bool { return e.CommandText == "a\"b\\cé\n" }},
		{`{"Command":"QUERY"}`, func(e Event) bool { return e.Command == "" && string(e.Extra.Get("Command")) == `"QUERY"` }},
	}
	for _, tt := range tests {
		var e Event
		if err := json.Unmarshal([]byte(tt.in), &e); err != nil {
			t.Errorf("%s: %v", tt.in, err)
			continue
		}
		if !tt.check(e) {
			t.Errorf("%s: decoded %+v", tt.in, e)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	for _, in := range []string{
		`[]`, `null`, `"x"`, `{"pid":"abc"}`, `{"pid":1.5}`, `{"pid":true}`, `{"pid":1e30}`,
		`{"commandText":{}}`, `{"commandText":[1]}`, `{"logTime":"yesterday"}`, `{"logTime":5}`,
		`{"paramList":[{}]}`, `{"class":"MAIN"`,
	} {
		var e Event
		if err := e.UnmarshalJSON([]byte(in)); err == nil {
			t.Errorf("%s: no error, got %+v", in, e)
		} else if !strings.HasPrefix(err.Error(), "event: ") {
			t.Errorf("%s: error without package context: %v", in, err)
		}
	}
	var p Payload
	for _, in := range []string{`[]`, `null`, `{"databaseActivityEventList":{}}`, `{"databaseActivityEventList":[{"pid":"x"}]}`} {
		if err := p.UnmarshalJSON([]byte(in)); err == nil {
			t.Errorf("payload %s: no error", in)
		}
	}
}

// Unknown fields survive a round trip with their values; encoding sorts them
// after the DAS fields, drops ones that shadow known names and writes invalid
// raw values as null.
func TestRoundTripExtra(t *testing.T) {
	in := `{"logTime":"2020-05-22 18:07:13.267214+00","type":"record","command":"QUERY",` +
		`"engineNativeAuditFields":{"UNIFIED_AUDIT_POLICIES":"P","INSTANCE_ID":1},"zeta":[1,"two",null],"dbid":"0123",` +
		`"seq":12345678901234567890}`
	var e Event
	if err := json.Unmarshal([]byte(in), &e); err != nil {
		t.Fatal(err)
	}
	if len(e.Extra) != 4 {
		t.Fatalf("extra: %v", e.Extra)
	}
	out := e.AppendJSON(nil)
	if !strings.HasSuffix(string(out), `"class":"","dbid":"0123","engineNativeAuditFields":{"UNIFIED_AUDIT_POLICIES":"P","INSTANCE_ID":1},"seq":12345678901234567890,"zeta":[1,"two",null]}`) {
		t.Fatalf("extra not kept in order: %s", out)
	}
	var e2 Event
	if err := json.Unmarshal(out, &e2); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(e, e2) {
		t.Fatalf("round trip:\n%+v\n%+v", e, e2)
	}

	e.Extra = Fields{{"command", json.RawMessage(`"DROP"`)}, {"bad", json.RawMessage(`{`)}, {"empty", nil}, {"dup", json.RawMessage(`1`)}, {"dup", json.RawMessage(`2`)}}
	out = e.AppendJSON(nil)
	if !json.Valid(out) {
		t.Fatalf("invalid JSON: %s", out)
	}
	var m map[string]any
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatal(err)
	}
	if m["command"] != "QUERY" || m["bad"] != nil || m["empty"] != nil || m["dup"] != 2.0 ||
		strings.Count(string(out), `"command"`) != 1 || strings.Count(string(out), `"dup"`) != 1 {
		t.Fatalf("shadowing/invalid extra: %s", out)
	}
}

func TestNewAndHeartbeat(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 6789123, time.FixedZone("X", 3600))
	e := New(now)
	if e.DBProtocol != "MySQL" || e.ServerType != "MySQL" || e.ServiceName != "das" || e.NetProtocol != "TCP" ||
		e.ObjectType != "TABLE" || e.SubstatementID != 1 || e.Class != ClassMain || e.Type != TypeRecord ||
		e.TransactionID != "0" || e.ExitCode != "0" || !e.LogTime.Equal(now) || !e.StartTime.Equal(now) || !e.EndTime.Equal(now) {
		t.Fatalf("New: %+v", e)
	}
	if !strings.HasPrefix(string(e.AppendJSON(nil)), `{"logTime":"2026-01-02 02:04:05.006789+00","type":"record"`) {
		t.Fatalf("New encodes as %s", e.AppendJSON(nil))
	}

	h := Heartbeat(now, "db1", "MySQL 8.4.3", "das")
	if !h.IsHeartbeat() || e.IsHeartbeat() {
		t.Fatal("IsHeartbeat")
	}
	var m map[string]any
	if err := json.Unmarshal(h.AppendJSON(nil), &m); err != nil {
		t.Fatal(err)
	}
	if m["type"] != "heartbeat" || m["class"] != "" || m["command"] != "" || m["serverHost"] != "db1" ||
		m["serverVersion"] != "MySQL 8.4.3" || m["logTime"] != "2026-01-02 02:04:05.006789+00" || len(m) != 29 {
		t.Fatalf("heartbeat: %v", m)
	}
}

func TestTimeFormatParse(t *testing.T) {
	want := time.Date(2020, 5, 22, 18, 7, 13, 267214000, time.UTC)
	if s := FormatTime(want.Add(999)); s != "2020-05-22 18:07:13.267214+00" {
		t.Fatalf("FormatTime truncates to µs: %s", s)
	}
	if s := FormatTime(want.In(time.FixedZone("", -7*3600))); s != "2020-05-22 18:07:13.267214+00" {
		t.Fatalf("FormatTime converts to UTC: %s", s)
	}
	if s := FormatTime(time.Date(12345, 1, 1, 0, 0, 0, 0, time.UTC)); !strings.HasPrefix(s, "12345-01-01") {
		t.Fatalf("far year: %s", s)
	}
	ok := map[string]time.Time{
		"2020-05-22 18:07:13.267214+00":    want,
		"2020-05-22 18:07:13.267214":       want,
		"2020-05-22T18:07:13.267214Z":      want,
		"2020-05-22 18:07:13.2672140+00":   want,
		"2020-05-22 18:07:13.267214000+00": want,
		"2020-05-22 18:07:13.26+00":        time.Date(2020, 5, 22, 18, 7, 13, 260000000, time.UTC),
		"2020-05-22 18:07:13+00":           time.Date(2020, 5, 22, 18, 7, 13, 0, time.UTC),
		"2020-05-22 20:07:13.267214+02":    want,
		"2020-05-22 20:37:13.267214+0230":  want,
		"2020-05-22 15:37:13.267214-02:30": want,
		"2024-02-29 00:00:00+00":           time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC),
	}
	for s, w := range ok {
		got, err := ParseTime(s)
		if err != nil || !got.Equal(w) || got.Location() != time.UTC {
			t.Errorf("ParseTime(%q) = %v, %v; want %v", s, got, err, w)
		}
	}
	for _, s := range []string{
		"", "2020-05-22", "2020-05-22 18:07:13.", "2020-05-22 18:07:13.1234567890+00",
		"2020-13-22 18:07:13+00", "2023-02-29 18:07:13+00", "2020-05-22 24:07:13+00",
		"2020-05-22 18:07:13+0", "2020-05-22 18:07:13 +00", "2020/05/22 18:07:13", "2020-05-22 18:07:13+25",
		"2020-05-22 18:07:1x",
	} {
		if _, err := ParseTime(s); err == nil {
			t.Errorf("ParseTime(%q): no error", s)
		}
	}
}

func TestTimeZeroAndText(t *testing.T) {
	var z Time
	b, _ := json.Marshal(z)
	if string(b) != `""` {
		t.Fatalf("zero Time encodes as %s", b)
	}
	txt, _ := Time{time.Date(2020, 5, 22, 18, 7, 13, 267214000, time.UTC)}.MarshalText()
	if string(txt) != "2020-05-22 18:07:13.267214+00" {
		t.Fatalf("MarshalText: %s", txt)
	}
	var back Time
	if err := back.UnmarshalText(txt); err != nil || !back.Equal(time.Date(2020, 5, 22, 18, 7, 13, 267214000, time.UTC)) {
		t.Fatalf("UnmarshalText: %v %v", back, err)
	}
	// Time is usable as a standalone JSON value too.
	var s struct{ T Time }
	if err := json.Unmarshal([]byte(`{"T":"2020-05-22 18:07:13.5+00"}`), &s); err != nil || s.T.Nanosecond() != 500000000 {
		t.Fatalf("struct field: %v %v", s.T, err)
	}
}

// Strings the property tests draw from: everything that needs escaping,
// invalid UTF-8, JSONP separators and HTML characters.
var nasty = []string{
	"", "\"", "\\", "\x00", "\x01", "\x1f", "\x7f", "\b", "\f", "\n", "\r", "\t", "\u2028", "\u2029",
	"\xff", "\xc3", "\xe2\x80", "\xed\xa0\x80", "é", "日本", "😀", "<", ">", "&", "'", "/", "a", "SELECT ",
	"IDENTIFIED BY 'x'", "\ufffd", "\xf4\x90\x80\x80",
}

func randString(r *rand.Rand) string {
	var b strings.Builder
	n := r.IntN(12)
	for range n {
		if r.IntN(3) == 0 {
			b.WriteByte(byte(r.IntN(256)))
		} else {
			b.WriteString(nasty[r.IntN(len(nasty))])
		}
	}
	if r.IntN(8) == 0 { // long runs exercise the 8-byte fast path
		b.WriteString(strings.Repeat("abcdefgh", r.IntN(5)))
		b.WriteString(nasty[r.IntN(len(nasty))])
	}
	return b.String()
}

// stdString is what encoding/json writes for s with HTML escaping off.
func stdString(t testing.TB, s string) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		t.Fatal(err)
	}
	return strings.TrimSuffix(buf.String(), "\n")
}

func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	cases := append([]string{}, nasty...)
	for range 20000 {
		cases = append(cases, randString(r))
	}
	for i := range 300 { // every byte at every position of an 8-byte window
		c := []byte("0123456789abcdef")
		c[i%16] = byte(i)
		cases = append(cases, string(c))
	}
	for _, s := range cases {
		if got, want := string(appendString(nil, s)), stdString(t, s); got != want {
			t.Fatalf("appendString(%q) = %s, encoding/json %s", s, got, want)
		}
	}
}

// sanitize returns s as it comes back from a JSON round trip through
// encoding/json (each invalid UTF-8 byte becomes U+FFFD).
func sanitize(s string) string {
	var out string
	b, _ := json.Marshal(s)
	_ = json.Unmarshal(b, &out)
	return out
}

func randEvent(r *rand.Rand) Event {
	rt := func() Time {
		if r.IntN(10) == 0 {
			return Time{}
		}
		return Time{time.Unix(r.Int64N(4102444800), r.Int64N(1e9)).UTC().Truncate(time.Microsecond)}
	}
	e := Event{
		Class: randString(r), Command: randString(r), CommandText: randString(r), DatabaseName: randString(r),
		DBProtocol: randString(r), DBUserName: randString(r), EndTime: rt(), ErrorMessage: randString(r),
		ExitCode: randString(r), LogTime: rt(), NetProtocol: randString(r), ObjectName: randString(r),
		ObjectType: randString(r), PID: int(r.Int32()), RemoteHost: randString(r), RemotePort: randString(r),
		RowCount: r.Int64() - r.Int64(), ServerHost: randString(r), ServerType: randString(r),
		ServerVersion: randString(r), ServiceName: randString(r), SessionID: randString(r), StartTime: rt(),
		StatementID: r.Int64(), SubstatementID: r.IntN(3), TransactionID: randString(r), Type: randString(r),
	}
	if r.IntN(2) == 0 {
		s := randString(r)
		e.ClientApplication = &s
	}
	if r.IntN(2) == 0 {
		e.ParamList = []string{}
		for range r.IntN(4) {
			e.ParamList = append(e.ParamList, randString(r))
		}
	}
	if r.IntN(3) == 0 {
		for range 1 + r.IntN(3) {
			k := sanitize(randString(r))
			if knownEventKeys[k] {
				continue
			}
			v, _ := json.Marshal(sanitize(randString(r)))
			e.Extra = e.Extra.With(k, v)
		}
		e.Extra.sort()
	}
	return e
}

func sanitizeEvent(e Event) Event {
	v := reflect.ValueOf(&e).Elem()
	for i := range v.NumField() {
		if f := v.Field(i); f.Kind() == reflect.String {
			f.SetString(sanitize(f.String()))
		}
	}
	if e.ClientApplication != nil {
		s := sanitize(*e.ClientApplication)
		e.ClientApplication = &s
	}
	if e.ParamList != nil {
		pl := make([]string, len(e.ParamList))
		for i, p := range e.ParamList {
			pl[i] = sanitize(p)
		}
		e.ParamList = pl
	}
	if len(e.Extra) == 0 {
		e.Extra = nil
	}
	return e
}

// stdEvent mirrors the DAS fields with plain tags, so encoding/json can check
// the hand-written encoder without going through this package's decoder.
type stdEvent struct {
	Class             string   `json:"class"`
	ClientApplication *string  `json:"clientApplication"`
	Command           string   `json:"command"`
	CommandText       string   `json:"commandText"`
	DatabaseName      string   `json:"databaseName"`
	DBProtocol        string   `json:"dbProtocol"`
	DBUserName        string   `json:"dbUserName"`
	EndTime           string   `json:"endTime"`
	ErrorMessage      string   `json:"errorMessage"`
	ExitCode          string   `json:"exitCode"`
	LogTime           string   `json:"logTime"`
	NetProtocol       string   `json:"netProtocol"`
	ObjectName        string   `json:"objectName"`
	ObjectType        string   `json:"objectType"`
	ParamList         []string `json:"paramList"`
	PID               int      `json:"pid"`
	RemoteHost        string   `json:"remoteHost"`
	RemotePort        string   `json:"remotePort"`
	RowCount          int64    `json:"rowCount"`
	ServerHost        string   `json:"serverHost"`
	ServerType        string   `json:"serverType"`
	ServerVersion     string   `json:"serverVersion"`
	ServiceName       string   `json:"serviceName"`
	SessionID         string   `json:"sessionId"`
	StartTime         string   `json:"startTime"`
	StatementID       int64    `json:"statementId"`
	SubstatementID    int      `json:"substatementId"`
	TransactionID     string   `json:"transactionId"`
	Type              string   `json:"type"`
}

func fmtTime(t Time) string {
	if t.IsZero() {
		return ""
	}
	return FormatTime(t.Time)
}

func TestAppendJSONProperty(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := range 3000 {
		e := randEvent(r)
		out := e.AppendJSON(nil)
		if !json.Valid(out) {
			t.Fatalf("#%d invalid JSON: %s", i, out)
		}
		// encoding/json reads back every field with the right type and value.
		var std stdEvent
		if err := json.Unmarshal(out, &std); err != nil {
			t.Fatalf("#%d encoding/json: %v\n%s", i, err, out)
		}
		se := sanitizeEvent(e)
		want := stdEvent{se.Class, se.ClientApplication, se.Command, se.CommandText, se.DatabaseName,
			se.DBProtocol, se.DBUserName, fmtTime(se.EndTime), se.ErrorMessage, se.ExitCode, fmtTime(se.LogTime),
			se.NetProtocol, se.ObjectName, se.ObjectType, se.ParamList, se.PID, se.RemoteHost, se.RemotePort,
			se.RowCount, se.ServerHost, se.ServerType, se.ServerVersion, se.ServiceName, se.SessionID,
			fmtTime(se.StartTime), se.StatementID, se.SubstatementID, se.TransactionID, se.Type}
		if !reflect.DeepEqual(std, want) {
			t.Fatalf("#%d encoding/json read\n%+v\nwant\n%+v", i, std, want)
		}
		// Our decoder gives back the same Event, and re-encoding is stable.
		var back Event
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatalf("#%d: %v\n%s", i, err, out)
		}
		if !reflect.DeepEqual(back, se) {
			t.Fatalf("#%d round trip\n%#v\nwant\n%#v", i, back, se)
		}
		if again, want := back.AppendJSON(nil), se.AppendJSON(nil); !bytes.Equal(again, want) {
			t.Fatalf("#%d re-encode differs:\n%s\n%s", i, again, want)
		}
	}
}

func TestAppendJSONAppends(t *testing.T) {
	e := New(time.Unix(0, 0))
	prefix := []byte("PREFIX")
	out := e.AppendJSON(prefix)
	if !bytes.HasPrefix(out, prefix) || !json.Valid(out[len(prefix):]) {
		t.Fatalf("AppendJSON must append: %s", out)
	}
}

func FuzzUnmarshal(f *testing.F) {
	f.Add(readFile(f, "connect.json"))
	f.Add(readFile(f, "postgres_connect.json"))
	f.Add([]byte(`{"pid":"12","exitCode":0,"paramList":["a",1],"x":{"y":[]}}`))
	f.Add([]byte(`{"logTime":"2020-05-22 18:07:13.2+05:30","commandText":"\ud800"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var e Event
		if err := e.UnmarshalJSON(b); err != nil {
			return
		}
		out := e.AppendJSON(nil)
		if !json.Valid(out) {
			t.Fatalf("invalid JSON from decoded input %q: %s", b, out)
		}
		var e2 Event
		if err := e2.UnmarshalJSON(out); err != nil {
			t.Fatalf("re-decode: %v\n%s", err, out)
		}
		if again := e2.AppendJSON(nil); !bytes.Equal(again, out) {
			t.Fatalf("unstable:\n%s\n%s", out, again)
		}
	})
}

// The hand-written date arithmetic agrees with the time package everywhere
// four-digit years reach, and falls back to it beyond.
func TestAppendTimeMatchesTimeFormat(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	min := time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	max := time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	check := func(tm time.Time) {
		if got, want := FormatTime(tm), tm.UTC().Format(TimeLayout); got != want {
			t.Fatalf("FormatTime(%v) = %s, want %s", tm, got, want)
		}
	}
	for _, y := range []int{0, 1, 1600, 1899, 1900, 1969, 1970, 2000, 2024, 2100, 9999} {
		check(time.Date(y, 1, 1, 0, 0, 0, 0, time.UTC))
		check(time.Date(y, 2, 28, 23, 59, 59, 999999999, time.UTC))
		check(time.Date(y, 3, 1, 0, 0, 0, 0, time.UTC))
		check(time.Date(y, 12, 31, 23, 59, 59, 0, time.UTC))
	}
	for range 100000 {
		check(time.Unix(min+r.Int64N(max-min), r.Int64N(1e9)))
	}
	check(time.Date(-5, 6, 7, 8, 9, 10, 0, time.UTC))
	check(time.Date(10001, 6, 7, 8, 9, 10, 0, time.UTC))
}

// errWriter fails after n writes.
type errWriter struct {
	n   int
	out bytes.Buffer
}

func (w *errWriter) Write(p []byte) (int, error) {
	if w.n == 0 {
		return 0, errWrite
	}
	w.n--
	return w.out.Write(p)
}

var errWrite = errors.New("write refused")

// TestWriteJSONMatchesAppendJSON: streaming a payload in pieces writes the
// very bytes AppendJSON makes, whatever the piece size, and stops at the
// writer's first error.
func TestWriteJSONMatchesAppendJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	var evs []Event
	for range 200 {
		evs = append(evs, randEvent(r))
	}
	extra := Fields{{Key: "dasNote", Value: json.RawMessage(`"x"`)}}
	for _, c := range []struct {
		name   string
		events []Event
		extra  Fields
	}{
		{"no events", nil, nil},
		{"one event", evs[:1], nil},
		{"many events and extra", evs, extra},
	} {
		p := Payload{Type: "DatabaseActivityMonitoringRecord", ClusterID: "cluster-X", InstanceID: "db-Y", Events: c.events, Extra: c.extra}
		want := p.AppendJSON(nil)
		for _, chunk := range []int{1, 700, 32 << 10, 1 << 30} {
			var out bytes.Buffer
			buf, err := p.WriteJSON(&out, make([]byte, 0, 16), chunk)
			if err != nil {
				t.Fatalf("%s, chunk %d: %v", c.name, chunk, err)
			}
			if !bytes.Equal(out.Bytes(), want) {
				t.Fatalf("%s, chunk %d: streamed\n%s\nwant\n%s", c.name, chunk, out.Bytes(), want)
			}
			if cap(buf) == 0 {
				t.Fatalf("%s, chunk %d: no buffer returned for reuse", c.name, chunk)
			}
		}
	}
	p := Payload{Type: "DatabaseActivityMonitoringRecord", Events: evs}
	w := &errWriter{n: 2}
	if _, err := p.WriteJSON(w, nil, 100); err != errWrite {
		t.Fatalf("WriteJSON over a failing writer: %v, want %v", err, errWrite)
	}
	if w.n != 0 || w.out.Len() == 0 {
		t.Fatalf("writes before the failure: %d left, %d bytes", w.n, w.out.Len())
	}
}

// TestPayloadRunsMatchEvents: a payload copies the runs of fields its
// previous event encoded when they are the same; the bytes must be those
// of each event encoded alone, whichever field changed, including nil
// against empty clientApplication and runs too long to remember.
func TestPayloadRunsMatchEvents(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	long := strings.Repeat("h", 300)
	empty := ""
	// Mostly a few short values, so that runs repeat and are copied.
	short := []string{"", "a", "sbtest", "localhost", "\"\n"}
	pick := func() string {
		if r.IntN(4) == 0 {
			return randString(r)
		}
		return short[r.IntN(len(short))]
	}
	mutate := []func(e *Event){
		func(e *Event) { e.Type = pick() },
		func(e *Event) { e.ClientApplication = nil },
		func(e *Event) { e.ClientApplication = &empty },
		func(e *Event) { s := pick(); e.ClientApplication = &s },
		func(e *Event) { e.PID++ },
		func(e *Event) { e.DBUserName = pick() },
		func(e *Event) { e.DatabaseName = pick() },
		func(e *Event) { e.RemoteHost = pick() },
		func(e *Event) { e.RemoteHost = long },
		func(e *Event) { e.RemotePort = pick() },
		func(e *Event) { e.Command = pick() },
		func(e *Event) { e.ObjectType = pick() },
		func(e *Event) { e.ObjectName = pick() },
		func(e *Event) { e.ObjectName = long },
		func(e *Event) { e.ServerHost = pick() },
		func(e *Event) { e.ServerType = pick() },
		func(e *Event) { e.ServiceName = pick() },
		func(e *Event) { e.ServerVersion = pick() },
		func(e *Event) { e.ServerVersion = long },
		func(e *Event) { e.TransactionID = pick() },
		func(e *Event) { e.DBProtocol = pick() },
		func(e *Event) { e.NetProtocol = pick() },
		func(e *Event) { e.ErrorMessage = pick() },
		func(e *Event) { e.ErrorMessage = long },
		func(e *Event) { e.Class = pick() },
		func(e *Event) { e.Class = ClassAux },
		func(e *Event) { e.Class = ClassMain },
		func(e *Event) { e.CommandText = pick() },
		func(e *Event) { e.LogTime = Time{e.LogTime.Add(time.Microsecond)} },
		func(e *Event) { e.LogTime = Time{} },
		func(e *Event) { e.LogTime = Time{time.Unix(r.Int64N(4e9), 0)} },
		func(e *Event) { e.StartTime = Time{e.LogTime.Add(time.Second)} },
		func(e *Event) { e.StartTime, e.EndTime = e.LogTime, e.LogTime },
		func(e *Event) { *e = randEvent(r) },
	}
	evs := []Event{New(time.Unix(1, 0))}
	for range 3000 {
		e := evs[len(evs)-1]
		for range r.IntN(3) {
			mutate[r.IntN(len(mutate))](&e)
		}
		evs = append(evs, e)
	}
	p := Payload{Type: "DatabaseActivityMonitoringRecord", ClusterID: "cluster-X", InstanceID: "db-Y", Events: evs}
	want := p.appendHead(nil)
	for i := range evs {
		if i > 0 {
			want = append(want, ',')
		}
		want = evs[i].AppendJSON(want)
	}
	want = p.appendTail(want)
	if got := p.AppendJSON(nil); !bytes.Equal(got, want) {
		i := 0
		for i < min(len(got), len(want)) && got[i] == want[i] {
			i++
		}
		t.Fatalf("payload differs from its events encoded alone at byte %d:\n%s\nwant\n%s", i, got[max(0, i-200):min(len(got), i+100)], want[max(0, i-200):min(len(want), i+100)])
	}
}
