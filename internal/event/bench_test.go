package event

import (
	"bytes"
	"encoding/json"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"
)

func benchEvent() Event {
	e := New(time.Date(2026, 3, 1, 12, 0, 0, 123456000, time.UTC))
	e.Command = CommandQuery
	q := "SELECT c.id, c.name, o.total FROM customers c JOIN orders o ON o.customer_id = c.id WHERE o.created_at > '2026-01-01' AND c.region IN ('eu-west-1', 'us-east-1') "
	e.CommandText = strings.Repeat(q, 1024/len(q)+1)[:1024]
	e.DatabaseName = "shop"
	e.DBUserName = "app"
	e.PID = 2830
	e.RemoteHost = "10.0.12.34"
	e.RemotePort = "53122"
	e.RowCount = 17
	e.ServerHost = "db-primary-1"
	e.ServerVersion = "MySQL 8.4.3"
	e.SessionID = "725121"
	e.StatementID = 65469218
	e.ObjectName = "customers,orders"
	return e
}

func BenchmarkAppendJSON(b *testing.B) {
	e := benchEvent()
	buf := e.AppendJSON(nil)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		buf = e.AppendJSON(buf[:0])
	}
}

// BenchmarkEncodingJSON is the reflection baseline: the same fields through
// encoding/json, with the times already formatted (which flatters it).
func BenchmarkEncodingJSON(b *testing.B) {
	e := benchEvent()
	s := stdEvent{Class: e.Class, Command: e.Command, CommandText: e.CommandText, DatabaseName: e.DatabaseName,
		DBProtocol: e.DBProtocol, DBUserName: e.DBUserName, EndTime: fmtTime(e.EndTime), ExitCode: e.ExitCode,
		LogTime: fmtTime(e.LogTime), NetProtocol: e.NetProtocol, ObjectName: e.ObjectName, ObjectType: e.ObjectType,
		PID: e.PID, RemoteHost: e.RemoteHost, RemotePort: e.RemotePort, RowCount: e.RowCount, ServerHost: e.ServerHost,
		ServerType: e.ServerType, ServerVersion: e.ServerVersion, ServiceName: e.ServiceName, SessionID: e.SessionID,
		StartTime: fmtTime(e.StartTime), StatementID: e.StatementID, SubstatementID: e.SubstatementID,
		TransactionID: e.TransactionID, Type: e.Type}
	out, _ := json.Marshal(s)
	b.SetBytes(int64(len(out)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := json.Marshal(s); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnmarshal(b *testing.B) {
	e := benchEvent()
	in := e.AppendJSON(nil)
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		var d Event
		if err := d.UnmarshalJSON(in); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFormatTime(b *testing.B) {
	t := time.Date(2026, 3, 1, 12, 0, 0, 123456000, time.UTC)
	buf := make([]byte, 0, 32)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendTime(buf[:0], t)
	}
}

// An event tagged with extra fields (the proxy's dasSource, a record's
// dasSeq) encodes without allocating.
func TestAppendJSONExtraDoesNotAllocate(t *testing.T) {
	e := benchEvent()
	e.Extra = Fields{{"dasSource", json.RawMessage(`"proxy"`)}, {"dasSeq", json.RawMessage(`42`)}} // unsorted: sorted on the stack
	buf := e.AppendJSON(nil)
	if !bytes.Contains(buf, []byte(`"dasSeq":42,"dasSource":"proxy"`)) {
		t.Fatalf("extra fields missing or unsorted: %s", buf)
	}
	if n := testing.AllocsPerRun(100, func() { buf = e.AppendJSON(buf[:0]) }); n != 0 {
		t.Fatalf("%v allocations per event", n)
	}
}

// auditPayload is a record of n events shaped like the audit tailer's under
// sysbench: eight sessions interleaved, short statements, das's extras.
func auditPayload(n int) *Payload {
	p := &Payload{Type: "DatabaseActivityMonitoringRecord", ClusterID: "cluster-BENCH", InstanceID: "db-1"}
	t := time.Date(2026, 11, 25, 16, 54, 4, 0, time.UTC)
	src := json.RawMessage(`"server_audit"`)
	for i := range n {
		e := New(t)
		e.Command = CommandQuery
		e.CommandText = "SELECT c FROM sbtest" + string(rune('1'+i%4)) + " WHERE id=" + strconv.Itoa(i%10000)
		e.DBUserName, e.DatabaseName, e.RemoteHost = "sbtest", "sbtest", "localhost"
		e.SessionID = strconv.Itoa(10 + i%8)
		e.StatementID = int64(i)
		e.ServerHost = "vm"
		e.NetProtocol = "SOCKET"
		e.Extra = Fields{{Key: "dasAuditPos", Value: json.RawMessage(`"65024:9978101:1795689476742089539:` + strconv.Itoa(95*i) + `"`)}, {Key: "dasSource", Value: src}}
		p.Events = append(p.Events, e)
	}
	return p
}

// BenchmarkWriteJSONAudit is sealing's JSON half for a record of 4096
// audit-log events, in the pieces the sealer hands gzip.
func BenchmarkWriteJSONAudit(b *testing.B) {
	p := auditPayload(4096)
	benchWriteJSON(b, p)
}

// benchWriteJSON measures p's encoding in the pieces the sealer hands gzip.
func benchWriteJSON(b *testing.B, p *Payload) {
	var n int64
	buf, _ := p.WriteJSON(countWriter{&n}, nil, 32<<10)
	b.SetBytes(n)
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = p.WriteJSON(io.Discard, buf, 32<<10)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(p.Events)), "ns/event")
}

type countWriter struct{ n *int64 }

func (w countWriter) Write(p []byte) (int, error) { *w.n += int64(len(p)); return len(p), nil }

// BenchmarkWriteJSONMainAux is the same for the proxy's point selects: each
// statement's MAIN event, then the AUX READ of its table.
func BenchmarkWriteJSONMainAux(b *testing.B) {
	p := auditPayload(4096)
	for i := range p.Events {
		e := &p.Events[i]
		if i%2 == 1 {
			table := "sbtest" + string(rune('1'+i%4))
			e.Class, e.SubstatementID, e.Command, e.CommandText = ClassAux, 2, "READ", table
			e.ObjectName, e.ExitCode, e.StatementID = "sbtest."+table, "", int64(i-1)
		}
		e.Extra = Fields{{Key: "dasSource", Value: json.RawMessage(`"proxy"`)}}
	}
	benchWriteJSON(b, p)
}
