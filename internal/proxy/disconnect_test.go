package proxy

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/das-mysql/das/internal/event"
	"github.com/das-mysql/das/internal/mysql"
)

// TestDisconnectReason: the DISCONNECT of a session that ends without
// COM_QUIT names what ended it, and which side: the client closing its
// socket, a reset from either side, the server closing without an ERR. A
// logout with COM_QUIT has none. The proxy logs the resets and the
// server's close at info level, a client that just leaves at debug level.
// On the event loops (with ordinary and raw syscalls) and with the
// goroutine relay.
func TestDisconnectReason(t *testing.T) {
	srv := startScriptServer(t)
	tests := []struct {
		name  string
		end   func(rc *rawClient) // ends the logged-in session
		want  string              // the DISCONNECT's errorMessage
		level string              // the log record's with want as its reason ("" for none at info)
		cut   string              // the errorMessage of the statement cut off, if one was
	}{
		{
			name: "COM_QUIT",
			end: func(rc *rawClient) {
				rc.write(0, []byte{byte(mysql.ComQuit)})
				_, _ = io.ReadAll(rc.c)
				rc.c.Close()
			},
		},
		{
			name: "client closes",
			end:  func(rc *rawClient) { rc.c.Close() },
			want: "das: the client closed the connection without COM_QUIT",
		},
		{
			name: "client resets",
			end: func(rc *rawClient) {
				if err := rc.c.(*net.TCPConn).SetLinger(0); err != nil {
					rc.t.Fatal(err)
				}
				rc.c.Close()
			},
			want: "das: connection reset by the client", level: "INFO",
		},
		{
			name: "server closes",
			end:  func(rc *rawClient) { serverEnds(rc, "close after the answer") },
			want: "das: the server closed the connection", level: "INFO",
		},
		{
			name: "server resets",
			end:  func(rc *rawClient) { serverEnds(rc, "reset after the answer") },
			want: "das: connection reset by the server", level: "INFO",
		},
		{
			name: "server resets while the client waits",
			end: func(rc *rawClient) {
				rc.write(0, append([]byte{byte(mysql.ComQuery)}, "reset without an answer"...))
				_, _ = io.ReadAll(rc.r)
			},
			want: "das: connection reset by the server", level: "INFO",
			// In the DISCONNECT's words on every relay path, whose raw
			// errors differ (the goroutine relay's carry addresses).
			cut: "das: the session ended before the server's answer was complete: connection reset by the server",
		},
	}
	for _, leg := range []struct {
		loops int
		procs bool
	}{{0, false}, {1, true}, {-1, false}} {
		t.Run(fmt.Sprintf("EventLoops=%d,EventLoopProcs=%v", leg.loops, leg.procs), func(t *testing.T) {
			var logs syncBuffer
			logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
			p, addr, sink := startProxy(t, Options{Upstream: srv.ln.Addr().String(), EventLoops: leg.loops, EventLoopProcs: leg.procs, Logger: logger})
			for _, tt := range tests {
				rc := dialRaw(t, addr, "u", "pw", "db")
				if evs := rc.command([]byte{byte(mysql.ComPing)}); len(evs) != 1 || evs[0].Kind != mysql.EventOK {
					t.Fatalf("%s: COM_PING: %+v", tt.name, evs)
				}
				if leg.loops >= 0 && p.Stats().SessionsOnLoops == 0 {
					t.Fatalf("%s: the session is not on a loop", tt.name)
				}
				tt.end(rc)
				d := sink.wait(t, "DISCONNECT", bySession(rc.id, event.CommandDisconnect))
				if d.ErrorMessage != tt.want || d.ExitCode != "0" || d.DBUserName != "u" {
					t.Errorf("%s: DISCONNECT exitCode %q errorMessage %q dbUserName %q, want exitCode \"0\" errorMessage %q",
						tt.name, d.ExitCode, d.ErrorMessage, d.DBUserName, tt.want)
				}
				if tt.cut != "" {
					q := sink.wait(t, "the cut statement", bySession(rc.id, event.CommandQuery))
					if q.ErrorMessage != tt.cut || q.ExitCode != "2013" || q.CommandText != "reset without an answer" {
						t.Errorf("%s: statement exitCode %q errorMessage %q commandText %q, want 2013 %q",
							tt.name, q.ExitCode, q.ErrorMessage, q.CommandText, tt.cut)
					}
				}
				level := ""
				for _, r := range logs.records(t) {
					if r["session"] == rc.id && r["reason"] == tt.want && tt.want != "" {
						level, _ = r["level"].(string)
					}
				}
				if level != tt.level {
					t.Errorf("%s: logged at %q, want %q; log:\n%s", tt.name, level, tt.level, logs.b.String())
				}
			}
			if n := p.Stats().ProtocolErrors; n != 0 {
				t.Errorf("%d protocol errors", n)
			}
		})
	}
}

// serverEnds sends the fake server a query after which it ends the
// connection, and reads until the proxy closes the client's.
func serverEnds(rc *rawClient, query string) {
	rc.write(0, append([]byte{byte(mysql.ComQuery)}, query...))
	if p, _ := rc.read(); !mysql.IsOK(p) {
		rc.t.Fatalf("%s: answer %q", query, p)
	}
	if rest, err := io.ReadAll(rc.r); err != nil || len(rest) != 0 {
		rc.t.Fatalf("%s: after the answer the client got %q, %v; want the end of the connection", query, rest, err)
	}
}

// TestDisconnectWhilePaused: a sync-mode session on an event loop holds
// its answer until the stream says the statement is durable. A connection
// reset meanwhile is read from the socket's pending error (epoll reports
// it without a read), and the DISCONNECT says which side reset.
func TestDisconnectWhilePaused(t *testing.T) {
	srv := startScriptServer(t)
	for _, leg := range []struct {
		loops int
		procs bool
	}{{0, false}, {1, true}} {
		t.Run(fmt.Sprintf("EventLoops=%d,EventLoopProcs=%v", leg.loops, leg.procs), func(t *testing.T) {
			sink := &switchSink{}
			sink.sync.Store(true)
			p, addr := startProxyWith(t, Options{Upstream: srv.ln.Addr().String(), EventLoops: leg.loops, EventLoopProcs: leg.procs}, sink)
			for _, tt := range []struct {
				name, query, want string
				reset             func(rc *rawClient)
			}{
				{"client resets", "SELECT 1", "das: connection reset by the client", func(rc *rawClient) {
					if err := rc.c.(*net.TCPConn).SetLinger(0); err != nil {
						rc.t.Fatal(err)
					}
					rc.c.Close()
				}},
				// The server answers, then resets 50 ms later, the answer
				// still held.
				{"server resets", "reset after the answer", "das: connection reset by the server", func(*rawClient) {}},
			} {
				rc := dialRaw(t, addr, "u", "pw", "db")
				if evs := rc.command([]byte{byte(mysql.ComPing)}); len(evs) != 1 || evs[0].Kind != mysql.EventOK {
					t.Fatalf("%s: COM_PING: %+v", tt.name, evs)
				}
				if p.Stats().SessionsOnLoops == 0 {
					t.Fatalf("%s: the session is not on a loop", tt.name)
				}
				sink.holding.Store(true) // release, below, empties what is held
				rc.write(0, append([]byte{byte(mysql.ComQuery)}, tt.query...))
				sink.waitHeld(t, 1)
				time.Sleep(20 * time.Millisecond) // the answer reaches the proxy and is held
				tt.reset(rc)
				d := sink.wait(t, "DISCONNECT", bySession(rc.id, event.CommandDisconnect))
				if d.ErrorMessage != tt.want {
					t.Errorf("%s: DISCONNECT errorMessage %q, want %q", tt.name, d.ErrorMessage, tt.want)
				}
				sink.release()
				if q := sink.wait(t, "the statement", bySession(rc.id, event.CommandQuery)); q.CommandText != tt.query || q.ExitCode != "0" {
					t.Errorf("%s: statement %q exitCode %q errorMessage %q", tt.name, q.CommandText, q.ExitCode, q.ErrorMessage)
				}
			}
		})
	}
}
