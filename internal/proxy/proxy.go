// Package proxy is das's transparent MySQL wire-protocol proxy: it relays
// every session between clients and the real server and records what
// happens as DAS events.
//
// What a session looks like on the stream:
//
//   - CONNECT when the login succeeds (dbUserName, databaseName, remote host
//     and port, clientApplication from the program_name connection
//     attribute), FAILED_CONNECT when it fails (exitCode and errorMessage from
//     the server's ERR, or the protocol error / proxy refusal that ended it).
//     A client that disconnects before sending anything leaves no event
//     (load-balancer health checks).
//   - QUERY for each statement outcome: COM_QUERY (one event per result of a
//     multi-statement or CALL, statementId incrementing), COM_STMT_EXECUTE
//     (commandText is the prepared SQL, paramList the bound values, NULL as
//     "NULL"; MariaDB's COM_STMT_BULK_EXECUTE without values), a COM_STMT_PREPARE that fails (a successful prepare is not an
//     event: its executions are), COM_INIT_DB (as "USE `db`"), and the legacy
//     COM_CREATE_DB, COM_DROP_DB, COM_PROCESS_KILL (as the equivalent SQL).
//     COM_PING, COM_QUIT, COM_STATISTICS, COM_FIELD_LIST, COM_SET_OPTION,
//     COM_RESET_CONNECTION, COM_STMT_CLOSE/RESET/SEND_LONG_DATA and the
//     successful COM_STMT_PREPARE make no event. An execute that opens a
//     cursor is recorded when the cursor is exhausted or closed, with the rows
//     fetched through it.
//   - COM_CHANGE_USER: a new CONNECT (or FAILED_CONNECT) for the new user.
//   - DISCONNECT when the session ends, whoever ends it. After a logout
//     (COM_QUIT) errorMessage is empty, however the connections then close.
//     Otherwise it names what ended the session: the protocol error (a
//     connection that closes inside a packet is one: a truncated packet);
//     the server's ERR when it sent one before closing (exitCode is then
//     its code); or, with exitCode "0", "das: the client closed the
//     connection without COM_QUIT", "das: the server closed the
//     connection" (without an ERR: MariaDB after KILL), "das: connection
//     reset by the client" or "... by the server" (ECONNRESET or EPIPE on
//     that side's socket; MariaDB resets a session past its wait_timeout),
//     "das: the client connection failed: <error>" (or the server's) for
//     another socket error, and das's shutdown or internal error.
//     Statements still waiting for their answer then are recorded with
//     exitCode "2013" (lost connection) and that reason in their
//     errorMessage.
//
// sessionId is the server's connection id, so events match the server's own
// logs. The database of later events follows COM_INIT_DB, a successful
// "USE db" statement and a DROP of the current database.
//
// Compression is never used: CLIENT_COMPRESS and CLIENT_ZSTD_COMPRESSION are
// masked in the greeting the client sees and in the response the server sees.
//
// TLS: the proxy offers TLS to clients when Options.TLS is set. Towards the
// server, see UpstreamTLSMode. Sequence ids of the connection phase are
// renumbered when the proxy consumes or adds an SSLRequest on one side only.
package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/das-mysql/das/internal/event"
	"github.com/das-mysql/das/internal/pipeline"
	"github.com/das-mysql/das/internal/tables"
)

// Sink receives the events of every session. Submit must be safe for
// concurrent use and must not block; false means the event was dropped.
type Sink interface {
	Submit(ev event.Event) bool
}

// BatchSink is a Sink that takes several events in one call, in order, and
// says how many it took (a statement and its AUX events).
type BatchSink interface {
	SubmitAll(evs []event.Event) int
}

// SyncSink is a Sink that can hold a statement's answer until its event is
// durable (the stream's sync mode). The proxy submits a statement's event
// before it relays the packet that completes the answer, so in sync mode the
// client sees the answer only once the event is durable; SubmitWait bounds
// the wait itself and the session goes on after it either way.
type SyncSink interface {
	Sink
	Sync() bool
	SubmitWait(ctx context.Context, ev event.Event) error
	// SubmitNotify is SubmitWait without blocking, for the event loops:
	// done is called once, possibly before it returns, with nil when the
	// event is durable or an error (wrapping pipeline.ErrNotDurable at the
	// sync timeout).
	SubmitNotify(ev event.Event, done func(error))
}

// UpstreamTLSMode says when the proxy speaks TLS to the server.
type UpstreamTLSMode int

const (
	// UpstreamTLSFollow (the default): TLS to the server when the client
	// uses TLS, the server offers it and Options.UpstreamTLS is set; a
	// plaintext client is relayed in plaintext.
	UpstreamTLSFollow UpstreamTLSMode = iota
	// UpstreamTLSPreferred: TLS to the server whenever it offers it and
	// Options.UpstreamTLS is set, also for plaintext clients.
	UpstreamTLSPreferred
	// UpstreamTLSRequired: always TLS to the server; a session whose server
	// does not offer TLS (or with no Options.UpstreamTLS) is refused.
	UpstreamTLSRequired
)

// Options configure a Proxy.
type Options struct {
	// Upstream is the host:port of the real server.
	Upstream string
	// TLS is the proxy's client-facing TLS configuration; nil offers no TLS
	// to clients.
	TLS *tls.Config
	// RequireTLS refuses clients that do not ask for TLS (error 3159).
	RequireTLS bool
	// UpstreamTLS is the TLS configuration towards the server (the caller
	// decides verification); nil keeps the server side plaintext. An empty
	// ServerName is filled with Upstream's host.
	UpstreamTLS     *tls.Config
	UpstreamTLSMode UpstreamTLSMode
	// MaxPacket is the largest logical packet accepted from either side
	// (default 1 GiB, MySQL's own limit); a longer one ends the session.
	MaxPacket int
	// MaxCommandText cuts commandText to this many bytes (0: no limit).
	MaxCommandText int
	// Admit, when set, is asked before each new session; an error refuses
	// the session with that message (the stream's fail_closed policy).
	Admit func() error
	// DialTimeout bounds connecting to the server (default 10s).
	DialTimeout time.Duration
	// HandshakeTimeout bounds the connection phase, TLS and authentication
	// included (default 30s).
	HandshakeTimeout time.Duration
	// EventLoops is how many event loops relay plaintext sessions after
	// login (Linux): 0 is one per GOMAXPROCS, a negative number turns
	// them off (every session then has two goroutines).
	EventLoops int
	// EventLoopProcs adds one to GOMAXPROCS for each loop while it runs:
	// its thread holds a P (a scheduler slot) even while it waits in
	// epoll_wait, and without a spare P the rest of the process (sealing,
	// the sink) gets one only when the scheduler retakes it, which it then
	// tries every 20 µs. A loop stops after a second without sessions (in
	// sync mode, for one), and gives its P back.
	EventLoopProcs bool
	// ServerHost is the serverHost of every event.
	ServerHost string
	Logger     *slog.Logger
	Now        func() time.Time
}

// Stats are counters over the proxy's lifetime.
type Stats struct {
	SessionsActive   int64
	SessionsOnLoops  int64 // of the active ones, relayed by event loops
	SessionsTotal    uint64
	BytesFromClients uint64
	BytesFromServers uint64
	Events           uint64 // accepted by the sink
	EventsDropped    uint64 // refused by the sink
	ProtocolErrors   uint64 // sessions ended by a protocol error
	Panics           uint64 // sessions ended by a recovered panic (a bug)
}

// ErrClosed is returned by Serve after Shutdown.
var ErrClosed = errors.New("proxy: closed")

// Proxy relays MySQL sessions. Its methods are safe for concurrent use.
type Proxy struct {
	o    Options
	sink Sink
	log  *slog.Logger
	now  func() time.Time
	pid  int

	loops    *loops
	syncSink SyncSink      // sink as a SyncSink, nil if it is not one
	batch    BatchSink     // sink as a BatchSink, nil if it is not one
	tables   *tables.Cache // the tables of statements, by shape, for AUX events

	mu        sync.Mutex
	closing   bool
	listeners map[net.Listener]struct{}
	sessions  map[*session]struct{}
	wg        sync.WaitGroup

	nextID         atomic.Uint64
	active         atomic.Int64
	onLoops        atomic.Int64
	total          atomic.Uint64
	bytesClient    atomic.Uint64
	bytesServer    atomic.Uint64
	events         atomic.Uint64
	dropped        atomic.Uint64
	protocolErrors atomic.Uint64
	panics         atomic.Uint64
}

const (
	defaultMaxPacket        = 1 << 30
	defaultDialTimeout      = 10 * time.Second
	defaultHandshakeTimeout = 30 * time.Second
)

// New returns a Proxy that relays to o.Upstream and submits events to sink.
func New(o Options, sink Sink) *Proxy {
	if o.MaxPacket <= 0 {
		o.MaxPacket = defaultMaxPacket
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = defaultDialTimeout
	}
	if o.HandshakeTimeout <= 0 {
		o.HandshakeTimeout = defaultHandshakeTimeout
	}
	if o.UpstreamTLS != nil && o.UpstreamTLS.ServerName == "" && !o.UpstreamTLS.InsecureSkipVerify {
		if host, _, err := net.SplitHostPort(o.Upstream); err == nil {
			o.UpstreamTLS = o.UpstreamTLS.Clone()
			o.UpstreamTLS.ServerName = host
		}
	}
	p := &Proxy{
		o:         o,
		sink:      sink,
		log:       o.Logger,
		now:       o.Now,
		pid:       os.Getpid(),
		listeners: make(map[net.Listener]struct{}),
		sessions:  make(map[*session]struct{}),
		tables:    tables.NewCache(4096),
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.now == nil {
		p.now = time.Now
	}
	n := o.EventLoops
	if n == 0 {
		n = runtime.GOMAXPROCS(0)
	}
	p.loops = newLoops(p, n)
	p.syncSink, _ = sink.(SyncSink)
	p.batch, _ = sink.(BatchSink)
	return p
}

// Serve accepts sessions on ln until ln is closed, ctx ends or Shutdown is
// called; it then closes ln and returns (nil, or ErrClosed after Shutdown).
// Sessions already running go on: Shutdown ends them.
func (p *Proxy) Serve(ctx context.Context, ln net.Listener) error {
	p.mu.Lock()
	if p.closing {
		p.mu.Unlock()
		ln.Close()
		return ErrClosed
	}
	p.listeners[ln] = struct{}{}
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.listeners, ln)
		p.mu.Unlock()
		ln.Close()
	}()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()

	var backoff time.Duration
	for {
		conn, err := ln.Accept()
		if err != nil {
			p.mu.Lock()
			closing := p.closing
			p.mu.Unlock()
			switch {
			case closing:
				return ErrClosed
			case ctx.Err() != nil || errors.Is(err, net.ErrClosed):
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				// Out of file descriptors and the like: wait, do not spin.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				p.log.Warn("proxy: accept", "err", err, "retry_in", backoff)
				time.Sleep(backoff)
				continue
			}
			return fmt.Errorf("proxy: accept: %w", err)
		}
		backoff = 0
		s := p.newSession(conn)
		p.mu.Lock()
		if p.closing {
			p.mu.Unlock()
			conn.Close()
			return ErrClosed
		}
		p.sessions[s] = struct{}{}
		p.wg.Add(1)
		p.mu.Unlock()
		go p.run(s)
	}
}

func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

func (p *Proxy) run(s *session) {
	p.active.Add(1)
	p.total.Add(1)
	defer func() {
		p.mu.Lock()
		delete(p.sessions, s)
		p.mu.Unlock()
		p.active.Add(-1)
		p.wg.Done()
	}()
	s.run()
}

// Shutdown stops accepting, waits for the sessions to end until ctx is done,
// then closes the remaining ones (each still records its DISCONNECT) and
// waits for them. It returns ctx's error when it had to close sessions.
func (p *Proxy) Shutdown(ctx context.Context) error {
	p.mu.Lock()
	p.closing = true
	for ln := range p.listeners {
		ln.Close()
	}
	p.mu.Unlock()

	done := make(chan struct{})
	go func() {
		p.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	p.mu.Lock()
	for s := range p.sessions {
		s.abort(errShutdown)
	}
	p.mu.Unlock()
	<-done
	return ctx.Err()
}

var errShutdown = errors.New("das: proxy shutting down")

// Stats returns the proxy's counters.
func (p *Proxy) Stats() Stats {
	return Stats{
		SessionsActive:   p.active.Load(),
		SessionsOnLoops:  p.onLoops.Load(),
		SessionsTotal:    p.total.Load(),
		BytesFromClients: p.bytesClient.Load(),
		BytesFromServers: p.bytesServer.Load(),
		Events:           p.events.Load(),
		EventsDropped:    p.dropped.Load(),
		ProtocolErrors:   p.protocolErrors.Load(),
		Panics:           p.panics.Load(),
	}
}

// syncMode reports whether statements wait for durability now.
func (p *Proxy) syncMode() bool { return p.syncSink != nil && p.syncSink.Sync() }

// submit hands an event to the sink; a session on an event loop never
// waits (loopSubmit holds its answer instead).
func (s *session) submit(ev event.Event) {
	if s.onLoop {
		s.loopSubmit(ev)
		return
	}
	s.p.submit(ev, true)
}

func (p *Proxy) submit(ev event.Event, mayWait bool) {
	if mayWait && p.syncMode() {
		if err := p.syncSink.SubmitWait(context.Background(), ev); err != nil && !errors.Is(err, pipeline.ErrNotDurable) {
			p.dropped.Add(1) // not queued (the stream's loss window counts the late ones)
			return
		}
		p.events.Add(1)
		return
	}
	if p.sink.Submit(ev) {
		p.events.Add(1)
	} else {
		p.dropped.Add(1)
	}
}
