package proxy

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/das-mysql/das/internal/event"
)

// memSink collects events.
type memSink struct {
	mu  sync.Mutex
	evs []event.Event
}

func (s *memSink) Submit(e event.Event) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.evs = append(s.evs, e)
	return true
}

// batchMemSink takes a statement's events in one call, as the stream does.
type batchMemSink struct{ *memSink }

func (s batchMemSink) SubmitAll(evs []event.Event) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.evs = append(s.evs, evs...)
	return len(evs)
}

func (s *memSink) all() []event.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]event.Event(nil), s.evs...)
}

func (s *memSink) filter(pred func(event.Event) bool) []event.Event {
	var out []event.Event
	for _, e := range s.all() {
		if pred(e) {
			out = append(out, e)
		}
	}
	return out
}

// wait returns the first event matching pred, waiting up to 10s for it.
func (s *memSink) wait(t testing.TB, what string, pred func(event.Event) bool) event.Event {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if evs := s.filter(pred); len(evs) > 0 {
			return evs[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s event; have:\n%s", what, dumpEvents(s.all()))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func dumpEvents(evs []event.Event) string {
	var b strings.Builder
	for _, e := range evs {
		text := e.CommandText
		if len(text) > 100 {
			text = text[:100] + "..."
		}
		fmt.Fprintf(&b, "  %s session=%s stmt=%d user=%q db=%q text=%q rows=%d exit=%q err=%q params=%d\n",
			e.Command, e.SessionID, e.StatementID, e.DBUserName, e.DatabaseName, text, e.RowCount, e.ExitCode, e.ErrorMessage, len(e.ParamList))
	}
	return b.String()
}

func bySession(id string, command string) func(event.Event) bool {
	return func(e event.Event) bool { return e.SessionID == id && e.Command == command }
}

func queryText(id, text string) func(event.Event) bool {
	return func(e event.Event) bool {
		return e.SessionID == id && e.Command == event.CommandQuery && e.CommandText == text
	}
}

// testLogger writes the proxy's log into the test's.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// startProxy runs a proxy on 127.0.0.1:0 and stops it when the test ends.
func startProxy(t testing.TB, o Options) (*Proxy, string, *memSink) {
	t.Helper()
	sink := &memSink{}
	p, addr := startProxyWith(t, o, sink)
	return p, addr, sink
}

// startProxyWith is startProxy with the caller's sink.
func startProxyWith(t testing.TB, o Options, sink Sink) (*Proxy, string) {
	t.Helper()
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	if o.ServerHost == "" {
		o.ServerHost = "test-server"
	}
	p := New(o, sink)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Serve(context.Background(), ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := p.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-done; !errors.Is(err, ErrClosed) {
			t.Errorf("Serve returned %v, want ErrClosed", err)
		}
		if n := p.Stats().Panics; n != 0 {
			t.Errorf("%d sessions panicked", n)
		}
	})
	return p, ln.Addr().String()
}

// dialRecorder is a go-sql-driver DialFunc that keeps the connections.
type dialRecorder struct {
	mu    sync.Mutex
	conns []net.Conn
}

func (d *dialRecorder) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var nd net.Dialer
	c, err := nd.DialContext(ctx, network, addr)
	if err == nil {
		d.mu.Lock()
		d.conns = append(d.conns, c)
		d.mu.Unlock()
	}
	return c, err
}

func (d *dialRecorder) last() net.Conn {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.conns[len(d.conns)-1]
}

func config(user, pw, addr, db string) *gomysql.Config {
	c := gomysql.NewConfig()
	c.User, c.Passwd, c.Net, c.Addr, c.DBName = user, pw, "tcp", addr, db
	c.Timeout = 10 * time.Second
	return c
}

func openDB(t testing.TB, c *gomysql.Config) *sql.DB {
	t.Helper()
	conn, err := gomysql.NewConnector(c)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(conn)
	t.Cleanup(func() { db.Close() })
	return db
}

// rows runs a query and returns its rows as strings ("NULL" for NULL).
func rows(t testing.TB, q interface {
	Query(string, ...any) (*sql.Rows, error)
}, query string, args ...any) [][]string {
	t.Helper()
	rs, err := q.Query(query, args...)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	defer rs.Close()
	return scanAll(t, rs)
}

// queryResultSets runs q (several statements, or a CALL) and returns the
// rows of each of its result sets.
func queryResultSets(t testing.TB, db *sql.DB, q string) [][][]string {
	t.Helper()
	rs, err := db.Query(q)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	var sets [][][]string
	for {
		sets = append(sets, scanAll(t, rs))
		if !rs.NextResultSet() {
			return sets
		}
	}
}

func scanAll(t testing.TB, rs *sql.Rows) [][]string {
	t.Helper()
	cols, err := rs.Columns()
	if err != nil {
		t.Fatal(err)
	}
	var out [][]string
	for rs.Next() {
		vals := make([]sql.RawBytes, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rs.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		row := make([]string, len(cols))
		for i, v := range vals {
			if v == nil {
				row[i] = "NULL"
			} else {
				row[i] = string(v)
			}
		}
		out = append(out, row)
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func mustExec(t testing.TB, db interface {
	Exec(string, ...any) (sql.Result, error)
}, query string, args ...any) sql.Result {
	t.Helper()
	r, err := db.Exec(query, args...)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return r
}

func connectionID(t testing.TB, q interface {
	QueryRow(string, ...any) *sql.Row
}) string {
	t.Helper()
	var id string
	if err := q.QueryRow("SELECT CONNECTION_ID()").Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id
}

func mysqlErr(err error) *gomysql.MySQLError {
	var me *gomysql.MySQLError
	if errors.As(err, &me) {
		return me
	}
	return nil
}

// pingRetry connects db's pool, for an ed25519 account: when MariaDB's
// random 32-byte nonce ends in 0x00, go-sql-driver (v1.10.1) strips that
// byte as if it terminated the auth switch's data and fails the login with
// "malformed packet" before answering (1 login in 256, with or without the
// proxy; see TestPingRetryEd25519). A new connection draws a new nonce.
func pingRetry(t testing.TB, db *sql.DB) error {
	t.Helper()
	var err error
	for range 3 {
		if err = db.Ping(); !errors.Is(err, gomysql.ErrMalformPkt) {
			return err
		}
		t.Logf("go-sql-driver refused the ed25519 nonce (%v); connecting again", err)
	}
	return err
}

// auxOf lists the AUX events of main's statement as "COMMAND objectName",
// each followed by the values of the das members named in extra.
func auxOf(sink *memSink, main event.Event, extra ...string) []string {
	var out []string
	for _, e := range sink.all() {
		if e.SessionID != main.SessionID || e.StatementID != main.StatementID || e.Class != event.ClassAux {
			continue
		}
		s := e.Command + " " + e.ObjectName
		for _, k := range extra {
			s += " " + string(e.Extra.Get(k))
		}
		out = append(out, s)
	}
	return out
}
