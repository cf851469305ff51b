package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/das-mysql/das/internal/event"
	"github.com/das-mysql/das/internal/mysql"
	"github.com/das-mysql/das/internal/tables"
)

const (
	bufSize = 32 << 10
	// handshakeMaxPacket bounds connection-phase packets: garbage announcing
	// a huge length must not make the proxy allocate it.
	handshakeMaxPacket = 1 << 20
	// keepBuf: read buffers grown beyond this by a large packet are dropped
	// after it, so idle sessions stay small.
	keepBuf = 1 << 20
)

// Capabilities the proxy never lets through: sessions stay uncompressed.
const maskedCaps = mysql.ClientCompress | mysql.ClientZstdCompressionAlgorithm

// Error codes of the errors the proxy itself reports.
const (
	codeHandshakeError = 1043 // ER_HANDSHAKE_ERROR
	codeConnError      = 2003 // CR_CONN_HOST_ERROR
	codeServerLost     = 2013 // CR_SERVER_LOST
	codeSSLError       = 2026 // CR_SSL_CONNECTION_ERROR
	codeSecureRequired = 3159 // ER_SECURE_TRANSPORT_REQUIRED
	codeRefused        = 3032 // ER_SERVER_OFFLINE_MODE: fail_closed
)

// wireCode keeps the ERR packets the proxy sends within the server's range
// of error codes: libmariadb (the mariadb CLI) reports an ERR from the server
// carrying a client-side code (2000-2999) as "2027 Received malformed
// packet" and drops the message. The client gets ER_HANDSHAKE_ERROR with the
// proxy's message; the event keeps the precise code.
func wireCode(pkt []byte) []byte {
	if len(pkt) < 3 {
		return pkt
	}
	if code := uint16(pkt[1]) | uint16(pkt[2])<<8; code >= 2000 && code < 3000 {
		pkt = append([]byte(nil), pkt...)
		pkt[1], pkt[2] = codeHandshakeError&0xff, codeHandshakeError>>8
	}
	return pkt
}

var (
	errClientClosed = errors.New("client closed the connection")
	errServerClosed = errors.New("server closed the connection")
	errClientQuit   = errors.New("client quit")
	// errTruncated: a connection ended inside a packet.
	errTruncated = errors.New("truncated packet: the connection closed inside it")
)

// readErr turns a failed read of side's connection ("client" or "server")
// into the session's end reason; the caller has handled a clean end
// between packets. An end inside a packet is a protocol error.
func readErr(side string, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return &protoError{side, errTruncated}
	}
	return &connError{side, err}
}

// connError is a failed read or write on side's connection ("client" or
// "server"): a reset, a broken pipe, a timeout. On the goroutine relay err
// is the net package's (a *net.OpError), on an event loop the syscall's
// errno.
type connError struct {
	side string
	err  error
}

func (e *connError) Error() string { return e.side + " connection: " + e.err.Error() }
func (e *connError) Unwrap() error { return e.err }

// disconnectMessage is the DISCONNECT's errorMessage for a session that
// e ended: the same on both relays, which see the failure differently.
func (e *connError) disconnectMessage() string {
	if errors.Is(e.err, syscall.ECONNRESET) || errors.Is(e.err, syscall.EPIPE) {
		return "das: connection reset by the " + e.side
	}
	what := e.err.Error()
	var errno syscall.Errno
	if errors.As(e.err, &errno) {
		what = errno.Error() // without the net package's addresses
	}
	return "das: the " + e.side + " connection failed: " + what
}

// protoError is a protocol violation by one side; it ends the session.
type protoError struct {
	side string // "client" or "server"
	err  error
}

func (e *protoError) Error() string {
	return "das: protocol error from the " + e.side + ": " + e.err.Error()
}
func (e *protoError) Unwrap() error { return e.err }

// panicError is a recovered panic: a bug in das, contained to one session.
type panicError struct{ v any }

func (e *panicError) Error() string { return fmt.Sprintf("das: internal error: %v", e.v) }

// session is one client connection and its server connection.
type session struct {
	p          *Proxy
	id         uint64 // the proxy's own number, for logs before the server's id is known
	client     net.Conn
	server     net.Conn
	cr, sr     *bufio.Reader
	cw, sw     *bufio.Writer
	log        *slog.Logger
	start      time.Time
	remoteHost string
	remotePort string

	// Set by the connection phase, read-only afterwards.
	sessionID     string
	serverVersion string

	endOnce sync.Once
	endErr  error

	// connMu guards the raw TCP connections for closing from other
	// goroutines (Shutdown) while the connection phase still sets them up.
	connMu    sync.Mutex
	closed    bool
	rawClient net.Conn
	rawServer net.Conn
	// cfd and sfd are the duplicated descriptors of a session on an event
	// loop (-1 otherwise); loopDone is closed when the loop ends it.
	cfd, sfd int
	loopDone chan struct{}
	onLoop   bool         // owned by the loop while set
	lo       *loopSession // set once the session went onto a loop

	// Owned by the relay goroutine of one direction each.
	clientBytes, serverBytes uint64
	srvPacket                int // bytes of the server's current continued packet

	// mu serializes the two directions' use of the protocol state and the
	// event fields that commands change.
	mu          sync.Mutex
	ms          *mysql.Session
	user, db    string
	app         *string
	pend        []cmdRec
	ph          int
	cursors     map[uint32]*event.Event
	stmtSeq     int64
	lastPrepare string
	quit        bool
	ls          *loginState // the connection phase; nil afterwards
	serverErr   *mysql.ERR  // an ERR the server sent with no command in flight
	// objNames remembers AUX objectNames (db.table) for objDB, so that a
	// session's statements on the same tables build them once.
	objDB    string
	objNames map[string]string
	// tablesMemo remembers the tables of the session's last statements: a
	// prepared statement's text is the same string at each execute, which
	// compares in constant time, before the proxy's shared cache (a lock
	// and a scan of the text) is asked.
	tablesMemo [8]tablesMemo
	// mbCharset: the client's character set may have been one whose
	// two-byte characters end in \ or ` (GBK, Big5, SJIS, ...); it stays
	// set for the session. Its ambiguous statements are then scanned in
	// every reading (charset.Ambiguous, charset.Families).
	mbCharset bool
	// noBackslash: the server's last status said NO_BACKSLASH_ESCAPES is
	// in the session's sql_mode, so a backslash in a literal escapes
	// nothing; its statements with a backslash are read by tables.ScanNoEscapes.
	noBackslash bool
	// prepared holds the texts of the session's SQL prepared statements
	// (PREPARE name FROM '...') by name, "" when an expression gave it.
	prepared map[string]string
	// handlers: the session's open HANDLERs by name (lower case), and
	// the table each reads (relay.go, handler).
	handlers map[string]tables.Access
	// cmdSeq numbers the session's commands; lastVars holds what the last
	// statement (of command lastVarsSeq) set user variables to, when it
	// was a SET of literals only.
	cmdSeq      uint64
	lastVars    []tables.Assign
	lastVarsSeq uint64
	tablesNext  int
	aux         []event.Event // a statement's AUX events, reused
}

type tablesMemo struct {
	text    string
	acc     []tables.Access
	scanned bool // found by tables.Scan: the grammar did not parse the text
}

// cmdRec is what the proxy remembers of a command awaiting its answer.
type cmdRec struct {
	code    mysql.CommandCode
	start   time.Time
	text    string
	arg     string // COM_INIT_DB schema
	params  []string
	stmtID  uint32
	cu      *mysql.ChangeUser
	results []stmtResult // outcomes of a multi-result command, until the last
	cut     bool         // the text or a bound value was cut for the event
	full    string       // the whole text, when text was cut
	seq     uint64       // the command's number in the session
}

type stmtResult struct {
	seq       uint64 // the command's, cmdRec.seq
	ev        event.Event
	ok        bool
	hasStatus bool // status is the server's (an OK or a result set's end)
	status    uint16
}

func (p *Proxy) newSession(conn net.Conn) *session {
	s := &session{
		p:         p,
		id:        p.nextID.Add(1),
		client:    conn,
		rawClient: conn,
		start:     p.now(),
		cfd:       -1,
		sfd:       -1,
	}
	if ta, ok := conn.RemoteAddr().(*net.TCPAddr); ok {
		s.remoteHost, s.remotePort = ta.IP.String(), strconv.Itoa(ta.Port)
	} else if h, port, err := net.SplitHostPort(conn.RemoteAddr().String()); err == nil {
		s.remoteHost, s.remotePort = h, port
	}
	s.log = p.log.With("conn", s.id, "client", conn.RemoteAddr().String())
	s.cr = bufio.NewReaderSize(conn, bufSize)
	s.cw = bufio.NewWriterSize(conn, bufSize)
	return s
}

// run is the session's goroutine: connection phase, then relay.
func (s *session) run() {
	defer func() {
		// Last resort: finish() itself failed. Nothing more to record.
		if r := recover(); r != nil {
			s.p.panics.Add(1)
			s.log.Error("proxy: panic while ending a session", "panic", r, "stack", string(debug.Stack()))
		}
		s.closeConns()
	}()
	if err := s.guard(s.login); err != nil {
		s.loginFailed(err)
		return
	}
	s.relay()
}

// guard runs f, turning a panic into an error.
func (s *session) guard(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			s.p.panics.Add(1)
			s.log.Error("proxy: panic in session", "session", s.sessionID, "panic", r, "stack", string(debug.Stack()))
			err = &panicError{r}
		}
	}()
	return f()
}

// end records why the session ends (the first reason wins) and closes both
// connections, which stops both relay directions.
func (s *session) end(err error) {
	s.endOnce.Do(func() {
		s.endErr = err
		s.closeConns()
	})
}

func (s *session) abort(err error) { s.end(err) }

// closeConns closes both TCP connections (under TLS too: the TLS layer
// then fails, which is all that is needed to stop the relay).
func (s *session) closeConns() {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	s.closed = true
	s.rawClient.Close()
	if s.rawServer != nil {
		s.rawServer.Close()
	}
	s.shutdownFDs()
}

// ---- connection phase ----

// loginError ends the connection phase without a session.
type loginError struct {
	code     uint16 // exitCode of the FAILED_CONNECT event
	msg      string // its errorMessage
	toClient []byte // ERR payload to send the client, if any
	relayed  bool   // the server's ERR was already relayed
	silent   bool   // no event: the client left before saying anything
	proto    bool   // a protocol error (counted, logged as a warning)
	cause    error
}

func (e *loginError) Error() string { return e.msg }

// loginState is the connection phase's bookkeeping.
type loginState struct {
	l          *mysql.Login
	cseq, sseq uint8 // next sequence id on the client and the server connection
}

func (s *session) login() error {
	o := &s.p.o
	deadline := s.start.Add(o.HandshakeTimeout)
	_ = s.client.SetDeadline(deadline)
	s.ls = &loginState{l: mysql.NewLogin()}
	ls := s.ls

	if o.Admit != nil {
		if err := o.Admit(); err != nil {
			msg := "das: " + err.Error()
			return &loginError{code: codeRefused, msg: msg, toClient: mysql.ErrorPacketNoState(codeRefused, msg), cause: err}
		}
	}
	d := net.Dialer{Timeout: o.DialTimeout}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	conn, err := d.DialContext(ctx, "tcp", o.Upstream)
	cancel()
	if err != nil {
		msg := fmt.Sprintf("das: cannot connect to the server %s: %v", o.Upstream, err)
		return &loginError{code: codeConnError, msg: msg, toClient: mysql.ErrorPacketNoState(codeConnError, msg), cause: err}
	}
	s.connMu.Lock()
	closed := s.closed
	s.rawServer = conn
	s.connMu.Unlock()
	if closed {
		conn.Close()
		return &loginError{code: codeServerLost, msg: errShutdown.Error(), cause: errShutdown}
	}
	s.server = conn
	_ = conn.SetDeadline(deadline)
	s.sr = bufio.NewReaderSize(conn, bufSize)
	s.sw = bufio.NewWriterSize(conn, bufSize)

	// The greeting.
	greeting, err := s.readLogin(s.sr, &ls.sseq, "server")
	if err != nil {
		return s.serverLoginErr(err, "reading the server's greeting")
	}
	lev, err := ls.l.ServerPacket(greeting)
	if err != nil {
		return s.serverLoginErr(&protoError{"server", err}, "")
	}
	if lev.Kind == mysql.LoginFailed {
		// Refused before the handshake (too many connections, host
		// blocked): pass the refusal on as it is.
		_ = s.writeLogin(s.cw, &ls.cseq, greeting)
		return &loginError{code: lev.Err.Code, msg: lev.Err.Message, relayed: true}
	}
	g := ls.l.Greeting
	s.sessionID = strconv.FormatUint(uint64(g.ConnectionID), 10)
	s.serverVersion = serverVersion(g.ServerVersion)
	s.log = s.log.With("session", s.sessionID)
	caps := g.Capabilities &^ maskedCaps
	if o.TLS != nil {
		caps |= mysql.ClientSSL
	} else {
		caps &^= mysql.ClientSSL
	}
	fwd := append([]byte(nil), greeting...)
	if err := mysql.SetCapabilities(fwd, caps); err != nil {
		return s.serverLoginErr(&protoError{"server", err}, "")
	}
	if err := s.writeLogin(s.cw, &ls.cseq, fwd); err != nil {
		return &loginError{silent: true, msg: "client connection: " + err.Error(), cause: err}
	}

	// SSLRequest or handshake response.
	resp, err := s.readLogin(s.cr, &ls.cseq, "client")
	if err != nil {
		return s.clientLoginErr(err, ls)
	}
	var sslRequest []byte
	if mysql.IsSSLRequest(resp) {
		if _, err := ls.l.ClientPacket(resp); err != nil {
			return s.clientLoginErr(&protoError{"client", err}, ls)
		}
		if o.TLS == nil {
			return s.clientLoginErr(&protoError{"client", errors.New("SSLRequest, but the proxy offers no TLS")}, ls)
		}
		// The client sends its ClientHello right after the SSLRequest,
		// so it may already sit in the read buffer.
		tc := tls.Server(bufferedConn{s.client, s.cr}, o.TLS)
		if err := tc.Handshake(); err != nil {
			return &loginError{code: codeSSLError, msg: "das: TLS handshake with the client failed: " + err.Error(), cause: err}
		}
		s.client = tc
		s.cr = bufio.NewReaderSize(tc, bufSize)
		s.cw.Reset(tc)
		sslRequest = resp
		if resp, err = s.readLogin(s.cr, &ls.cseq, "client"); err != nil {
			return s.clientLoginErr(err, ls)
		}
	}
	clientTLS := sslRequest != nil
	protocol41 := len(resp) >= 32 && mysql.Capability(binary.LittleEndian.Uint32(resp))&mysql.ClientProtocol41 != 0
	if protocol41 {
		if err := mysql.SetResponseCapabilities(resp, responseCaps(resp)&^maskedCaps); err != nil {
			return s.clientLoginErr(&protoError{"client", err}, ls)
		}
	}
	if lev, err := ls.l.ClientPacket(resp); err != nil || lev.Kind != mysql.LoginResponse {
		if err == nil {
			err = errors.New("expected a handshake response")
		}
		return s.clientLoginErr(&protoError{"client", err}, ls)
	}
	if o.RequireTLS && !clientTLS {
		msg := "Connections using insecure transport are prohibited while das requires TLS"
		return &loginError{code: codeSecureRequired, msg: msg, toClient: mysql.ErrorPacket(codeSecureRequired, "HY000", msg)}
	}

	// TLS towards the server.
	serverTLS := g.Capabilities.Has(mysql.ClientSSL) && o.UpstreamTLS != nil
	var upTLS bool
	switch o.UpstreamTLSMode {
	case UpstreamTLSFollow:
		upTLS = serverTLS && clientTLS
	case UpstreamTLSPreferred:
		upTLS = serverTLS
	case UpstreamTLSRequired:
		if !serverTLS {
			msg := "das: TLS to the server is required, but the server does not offer it"
			if o.UpstreamTLS == nil {
				msg = "das: TLS to the server is required, but no TLS configuration is set"
			}
			return &loginError{code: codeSSLError, msg: msg, toClient: mysql.ErrorPacket(codeSSLError, "08S01", msg)}
		}
		upTLS = true
	}
	if upTLS && !protocol41 {
		upTLS = false // a pre-4.1 client cannot be upgraded; it never asks anyway
	}
	if upTLS {
		src := resp
		if sslRequest != nil {
			src = sslRequest
		}
		req := append([]byte(nil), src[:32]...)
		if err := mysql.SetResponseCapabilities(req, (responseCaps(req)|mysql.ClientSSL)&^maskedCaps); err != nil {
			return s.clientLoginErr(&protoError{"client", err}, ls)
		}
		if err := s.writeLogin(s.sw, &ls.sseq, req); err != nil {
			return s.serverLoginErr(err, "sending the SSLRequest")
		}
		tc := tls.Client(bufferedConn{s.server, s.sr}, o.UpstreamTLS)
		if err := tc.Handshake(); err != nil {
			msg := "das: TLS handshake with the server failed: " + err.Error()
			return &loginError{code: codeSSLError, msg: msg, toClient: mysql.ErrorPacket(codeSSLError, "08S01", msg), cause: err}
		}
		s.server = tc
		s.sr = bufio.NewReaderSize(tc, bufSize)
		s.sw.Reset(tc)
	}
	if protocol41 {
		c := responseCaps(resp)
		if upTLS {
			c |= mysql.ClientSSL
		} else {
			c &^= mysql.ClientSSL
		}
		if err := mysql.SetResponseCapabilities(resp, c); err != nil {
			return s.clientLoginErr(&protoError{"client", err}, ls)
		}
	}
	if err := s.writeLogin(s.sw, &ls.sseq, resp); err != nil {
		return s.serverLoginErr(err, "sending the handshake response")
	}

	// The authentication exchange, relayed untouched but renumbered.
	for {
		pkt, err := s.readLogin(s.sr, &ls.sseq, "server")
		if err != nil {
			return s.serverLoginErr(err, "during authentication")
		}
		lev, err := ls.l.ServerPacket(pkt)
		if err != nil {
			return s.serverLoginErr(&protoError{"server", err}, "")
		}
		if err := s.writeLogin(s.cw, &ls.cseq, pkt); err != nil {
			return &loginError{code: codeServerLost, msg: "das: client connection lost during authentication: " + err.Error(), cause: err}
		}
		switch lev.Kind {
		case mysql.LoginSucceeded:
			return s.loggedIn(ls.l)
		case mysql.LoginFailed:
			return &loginError{code: lev.Err.Code, msg: lev.Err.Message, relayed: true}
		}
		if !ls.l.ClientNext() {
			continue
		}
		pkt, err = s.readLogin(s.cr, &ls.cseq, "client")
		if err != nil {
			return s.clientLoginErr(err, ls)
		}
		if _, err := ls.l.ClientPacket(pkt); err != nil {
			return s.clientLoginErr(&protoError{"client", err}, ls)
		}
		if err := s.writeLogin(s.sw, &ls.sseq, pkt); err != nil {
			return s.serverLoginErr(err, "during authentication")
		}
	}
}

func (s *session) loggedIn(l *mysql.Login) error {
	_ = s.client.SetDeadline(time.Time{})
	_ = s.server.SetDeadline(time.Time{})
	s.ms = l.Session()
	s.ls = nil
	r := l.Response
	s.user, s.db, s.app = r.Username, r.Database, programName(r.Attrs)
	// The client's collation sets the session's character set; the
	// server's default (in its greeting) does where the server ignores
	// the client's (skip-character-set-client-handshake).
	s.mbCharset = mbCollation(uint16(r.Charset)) || l.Greeting != nil && mbCollation(uint16(l.Greeting.Charset))
	s.cursors = make(map[uint32]*event.Event)
	e := s.newEvent(event.CommandConnect, s.start, s.p.now())
	s.submit(e)
	s.log.Debug("proxy: session connected", "user", s.user, "database", s.db)
	return nil
}

// bufferedConn reads what a bufio.Reader already holds before reading the
// connection directly again, so that a TLS layer put on a connection after
// plaintext packets neither loses bytes nor copies through the old buffer.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c bufferedConn) Read(p []byte) (int, error) {
	if c.r.Buffered() > 0 {
		return c.r.Read(p)
	}
	return c.Conn.Read(p)
}

// responseCaps reads the capability flags of a HandshakeResponse41 or
// SSLRequest (at least 32 bytes), MariaDB's extended ones included.
func responseCaps(p []byte) mysql.Capability {
	c := mysql.Capability(binary.LittleEndian.Uint32(p))
	if c&mysql.ClientMySQL == 0 {
		c |= mysql.Capability(binary.LittleEndian.Uint32(p[28:])) << 32
	}
	return c
}

func programName(attrs map[string]string) *string {
	if v, ok := attrs["program_name"]; ok {
		return &v
	}
	return nil
}

// serverVersion names the server as Aurora does ("MySQL 5.7.12"); MariaDB's
// "5.5.5-" compatibility prefix is dropped.
func serverVersion(v string) string {
	if strings.Contains(v, "MariaDB") {
		return "MariaDB " + strings.TrimPrefix(v, "5.5.5-")
	}
	return "MySQL " + v
}

func (s *session) readLogin(r *bufio.Reader, next *uint8, side string) ([]byte, error) {
	p, seq, err := mysql.ReadPacket(r, nil, min(s.p.o.MaxPacket, handshakeMaxPacket))
	if err != nil {
		if errors.Is(err, mysql.ErrSequence) || errors.Is(err, mysql.ErrPacketTooLarge) {
			return nil, &protoError{side, err}
		}
		return nil, err
	}
	if seq != *next {
		return nil, &protoError{side, fmt.Errorf("handshake packet with sequence id %d, want %d: %w", seq, *next, mysql.ErrSequence)}
	}
	*next += uint8(mysql.FrameCount(len(p)))
	return p, nil
}

func (s *session) writeLogin(w *bufio.Writer, next *uint8, p []byte) error {
	n, err := mysql.WritePacket(w, *next, p)
	*next = n
	if err != nil {
		return err
	}
	return w.Flush()
}

// clientLoginErr turns a failure to read or understand the client during
// the connection phase into a loginError.
func (s *session) clientLoginErr(err error, ls *loginState) error {
	var pe *protoError
	switch {
	case errors.As(err, &pe):
		// What a server says to a client that does not speak the protocol.
		return &loginError{code: codeHandshakeError, msg: pe.Error(), proto: true, cause: err,
			toClient: mysql.ErrorPacket(codeHandshakeError, "08S01", "Bad handshake")}
	case errors.Is(err, io.EOF) && ls.l.Response == nil && !ls.l.TLS:
		return &loginError{silent: true, msg: "client left before logging in", cause: err}
	}
	return &loginError{code: codeServerLost, msg: "das: client connection lost during the handshake: " + err.Error(), cause: err}
}

// serverLoginErr does the same for the server side; the client is told.
func (s *session) serverLoginErr(err error, during string) error {
	var pe *protoError
	if errors.As(err, &pe) {
		return &loginError{code: codeHandshakeError, msg: pe.Error(), proto: true, cause: err,
			toClient: mysql.ErrorPacket(codeServerLost, "08S01", "das: the server broke the protocol")}
	}
	msg := fmt.Sprintf("das: server connection lost %s: %v", during, err)
	return &loginError{code: codeServerLost, msg: msg, cause: err, toClient: mysql.ErrorPacket(codeServerLost, "08S01", msg)}
}

// loginFailed reports a failed connection phase: an ERR to the client when
// the proxy refuses, a FAILED_CONNECT event, a log line.
func (s *session) loginFailed(err error) {
	le, ok := err.(*loginError)
	if !ok { // a panic
		var resp *mysql.HandshakeResponse
		if s.ls != nil {
			resp = s.ls.l.Response
		}
		s.submit(s.failedConnect(codeHandshakeError, err.Error(), resp))
		return
	}
	if le.proto {
		s.p.protocolErrors.Add(1)
	}
	if le.silent {
		s.log.Debug("proxy: connection closed before login", "reason", le.msg)
		return
	}
	var resp *mysql.HandshakeResponse
	if s.ls != nil {
		resp = s.ls.l.Response
		if le.toClient != nil {
			// cseq is the sequence id the client expects next, on the
			// connection (plaintext or TLS) it uses now.
			_ = s.client.SetWriteDeadline(time.Now().Add(time.Second))
			if _, werr := mysql.WritePacket(s.cw, s.ls.cseq, wireCode(le.toClient)); werr == nil {
				_ = s.cw.Flush()
			}
		}
	}
	s.submit(s.failedConnect(le.code, le.msg, resp))
	if le.proto {
		s.log.Warn("proxy: session closed during login", "reason", le.msg)
	} else {
		s.log.Info("proxy: login failed", "code", le.code, "reason", le.msg)
	}
}
