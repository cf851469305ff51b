package proxy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/das-mysql/das/internal/event"
	"github.com/das-mysql/das/internal/mysql"
)

// scriptServer is a fake server: it logs any client in with
// mysql_native_password (the password is not checked), then answers each
// COM_QUERY as its text says (see serve); anything else gets an OK.
type scriptServer struct {
	ln   net.Listener
	mu   sync.Mutex
	errs []error
}

func startScriptServer(t testing.TB) *scriptServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &scriptServer{ln: ln}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, err := range s.errs {
			t.Errorf("fake server: %v", err)
		}
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for id := uint32(1); ; id++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				if err := s.serve(c, id); err != nil {
					s.mu.Lock()
					s.errs = append(s.errs, fmt.Errorf("connection %d: %w", id, err))
					s.mu.Unlock()
				}
			}()
		}
	}()
	return s
}

const (
	// Sent by MySQL 8.0.24+ before it closes a connection idle for longer
	// than wait_timeout: an ERR with no command in flight.
	codeClientInteractionTimeout = 4031
	msgClientInteractionTimeout  = "The client was disconnected by the server because of inactivity. See wait_timeout and interactive_timeout for configuring this behavior."
)

func (s *scriptServer) serve(c net.Conn, id uint32) error {
	c.SetDeadline(time.Now().Add(20 * time.Second))
	r := bufio.NewReader(c)
	g := (&mysql.Handshake{
		ProtocolVersion: 10, ServerVersion: "8.0.36-fake", ConnectionID: id,
		AuthPluginData: []byte("abcdefghijklmnopqrst"), Capabilities: edServerCaps | mysql.ClientMySQL,
		Charset: 45, Status: 2, AuthPluginDataLen: 21, AuthPlugin: "mysql_native_password",
	}).Marshal()
	if _, err := mysql.WritePacket(c, 0, g); err != nil {
		return err
	}
	if _, _, err := mysql.ReadPacket(r, nil, 0); err != nil {
		return nil // the client left
	}
	if _, err := mysql.WritePacket(c, 2, mysql.OKPacket(0, 0, mysql.StatusAutocommit, 0)); err != nil {
		return err
	}
	ok := mysql.OKPacket(0, 0, mysql.StatusAutocommit, 0)
	for {
		p, _, err := mysql.ReadPacket(r, nil, 0)
		if err != nil || len(p) == 0 || mysql.CommandCode(p[0]) == mysql.ComQuit {
			return nil
		}
		if mysql.CommandCode(p[0]) != mysql.ComQuery {
			if _, err := mysql.WritePacket(c, 1, ok); err != nil {
				return err
			}
			continue
		}
		var b []byte
		switch q := string(p[1:]); q {
		case "truncated packet":
			// A frame announcing 100 bytes, 10 of them, then the end.
			b = append([]byte{100, 0, 0, 1}, "0123456789"...)
		case "wrong sequence id":
			b, _ = mysql.AppendPacket(nil, 5, ok)
		case "packet too large":
			b = []byte{0, 0, 0x20, 1} // 2 MiB announced; the proxy's MaxPacket is 1 MiB
		case "packet after the answer":
			b, _ = mysql.AppendPacket(nil, 1, ok)
			b, _ = mysql.AppendPacket(b, 2, ok)
		case "ERR then close":
			// The answer, then (the client idle) the ERR of a server
			// closing the connection.
			b, _ = mysql.AppendPacket(nil, 1, ok)
			if _, err := c.Write(b); err != nil {
				return err
			}
			time.Sleep(50 * time.Millisecond)
			b, _ = mysql.AppendPacket(nil, 0, mysql.ErrorPacket(codeClientInteractionTimeout, "HY000", msgClientInteractionTimeout))
		case "reset without an answer":
			// An RST while the client waits for its answer.
			return c.(*net.TCPConn).SetLinger(0)
		case "close after the answer", "reset after the answer":
			// The answer, then (the client idle) the end of the
			// connection without an ERR: a FIN, or an RST.
			if _, err := mysql.WritePacket(c, 1, ok); err != nil {
				return err
			}
			time.Sleep(50 * time.Millisecond)
			if q == "reset after the answer" {
				return c.(*net.TCPConn).SetLinger(0) // and Close sends an RST
			}
			return nil
		default:
			if _, err := mysql.WritePacket(c, 1, ok); err != nil {
				return err
			}
			continue
		}
		_, err = c.Write(b)
		return err // and close the connection
	}
}

// syncBuffer is a bytes.Buffer for a logger shared by goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *syncBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// records returns the JSON log records written so far.
func (w *syncBuffer) records(t testing.TB) []map[string]any {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(w.b.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// TestServerInputAfterLogin: a server that breaks the protocol after the
// login (a truncated packet, a wrong sequence id, a packet over MaxPacket,
// a packet nothing asked for), or a client that sends a truncated packet,
// ends that session only: its DISCONNECT names the reason, the proxy logs
// it (at info level or above), and a session open beside it goes on. A
// server that sends an ERR before it closes an idle connection is no
// protocol error: the DISCONNECT carries the server's code and message, and
// the client gets the ERR. On the event loops and with the goroutine relay.
func TestServerInputAfterLogin(t *testing.T) {
	srv := startScriptServer(t)
	tests := []struct {
		query     string // the COM_QUERY the client sends
		clientCut bool   // the client sends it truncated instead, and leaves
		queryExit string // the query's exitCode ("" for no QUERY event)
		want      string // the DISCONNECT's errorMessage starts so
	}{
		{query: "truncated packet", queryExit: "2013", want: "das: protocol error from the server: truncated packet"},
		{query: "wrong sequence id", queryExit: "2013", want: "das: protocol error from the server: mysql: session: COM_QUERY response: sequence id 5, want 1: wrong sequence id"},
		{query: "packet too large", queryExit: "2013", want: "das: protocol error from the server: packet of at least 2097152 bytes exceeds the maximum of 1048576: packet too large"},
		{query: "packet after the answer", queryExit: "0", want: "das: protocol error from the server: mysql: session: server packet (7 bytes starting 0x00) with no command in flight: unexpected packet"},
		{query: "client cut", clientCut: true, want: "das: protocol error from the client: truncated packet"},
		{query: "ERR then close", queryExit: "0", want: msgClientInteractionTimeout},
	}
	for _, loops := range []int{0, -1} {
		t.Run(fmt.Sprintf("EventLoops=%d", loops), func(t *testing.T) {
			var logs syncBuffer
			logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
			p, addr, sink := startProxy(t, Options{Upstream: srv.ln.Addr().String(), MaxPacket: 1 << 20, EventLoops: loops, Logger: logger})
			other := dialRaw(t, addr, "u", "pw", "db")
			protoErrs := 0
			for _, tt := range tests {
				rc := dialRaw(t, addr, "u", "pw", "db")
				q := append([]byte{byte(mysql.ComQuery)}, tt.query...)
				if tt.clientCut {
					b, _ := mysql.AppendPacket(nil, 0, q)
					rc.c.Write(b[:len(b)-3])
					rc.c.(*net.TCPConn).CloseWrite()
				} else {
					rc.write(0, q)
				}
				got, _ := io.ReadAll(rc.c)
				rc.c.Close()

				d := sink.wait(t, "DISCONNECT", bySession(rc.id, event.CommandDisconnect))
				if !strings.HasPrefix(d.ErrorMessage, tt.want) {
					t.Errorf("%s: DISCONNECT errorMessage %q, want %q...", tt.query, d.ErrorMessage, tt.want)
				}
				qs := sink.filter(queryText(rc.id, tt.query))
				switch {
				case tt.queryExit == "" && len(qs) != 0,
					tt.queryExit != "" && (len(qs) != 1 || qs[0].ExitCode != tt.queryExit):
					t.Errorf("%s: query events (want exitCode %q):\n%s", tt.query, tt.queryExit, dumpEvents(qs))
				case tt.queryExit == "2013" && qs[0].ErrorMessage != "das: the session ended before the server's answer was complete: "+strings.TrimPrefix(d.ErrorMessage, "das: "):
					t.Errorf("%s: the interrupted query's errorMessage %q", tt.query, qs[0].ErrorMessage)
				}
				if tt.query == "ERR then close" {
					// The server's own ending: its code on the DISCONNECT,
					// its ERR relayed to the client, no protocol error.
					wantERR, _ := mysql.AppendPacket(nil, 0, mysql.ErrorPacket(codeClientInteractionTimeout, "HY000", msgClientInteractionTimeout))
					if d.ExitCode != "4031" || d.ErrorMessage != msgClientInteractionTimeout || !bytes.HasSuffix(got, wantERR) {
						t.Errorf("%s: DISCONNECT exitCode %q errorMessage %q; the client got %q", tt.query, d.ExitCode, d.ErrorMessage, got)
					}
				} else {
					protoErrs++
					logged := false
					for _, r := range logs.records(t) {
						if r["session"] == rc.id && r["reason"] == d.ErrorMessage && r["level"] == "WARN" {
							logged = true
						}
					}
					if !logged {
						t.Errorf("%s: no warning with the reason %q for session %s; log:\n%s", tt.query, d.ErrorMessage, rc.id, logs.b.String())
					}
				}
				// The session beside it goes on.
				if evs := other.command([]byte{byte(mysql.ComPing)}); len(evs) != 1 || evs[0].Kind != mysql.EventOK {
					t.Fatalf("%s: the other session's COM_PING: %+v", tt.query, evs)
				}
			}
			if n := p.Stats().ProtocolErrors; n != uint64(protoErrs) {
				t.Errorf("ProtocolErrors %d, want %d", n, protoErrs)
			}
		})
	}
}
