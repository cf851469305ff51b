package proxy

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/das-mysql/das/internal/event"
	"github.com/das-mysql/das/internal/mysql"
	"github.com/das-mysql/das/internal/testenv"
)

// sha2RSAKey is the fake MySQL 8 server's RSA key pair (2048 bits, as
// MySQL generates it), made once: generating it is slow under -race.
var sha2RSAKey = sync.OnceValues(func() (*rsa.PrivateKey, error) {
	return rsa.GenerateKey(rand.Reader, 2048)
})

// sha2Server is a fake MySQL 8 server whose accounts all use
// caching_sha2_password, implemented as sql/auth/sha2_password.cc does:
//
//   - the greeting carries a 20-byte scramble and the default plugin
//     (caching_sha2_password, or mysql_native_password, in which case the
//     server switches the client with an auth switch request carrying the
//     same scramble);
//   - the client answers XOR(SHA256(pw), SHA256(SHA256(SHA256(pw)), scramble));
//     when the account's SHA256(SHA256(pw)) is in the server's cache and
//     the answer matches it, the server sends 0x01 0x03 (fast auth
//     success) then OK;
//   - otherwise 0x01 0x04 (perform full authentication): over TLS the
//     client sends the password in cleartext; over plaintext it asks for
//     the public key (0x02), gets 0x01 + PEM, and sends the password XOR
//     the scramble encrypted with RSA-OAEP (SHA-1); anything else on a
//     plaintext connection is refused, as the server refuses it;
//   - a full authentication that succeeds fills the cache; a wrong
//     password is ERR 1045.
//
// Each connection's steps are recorded. After the login it answers
// "SELECT CURRENT_USER()" with a one-row result set and every other
// command with OK.
type sha2Server struct {
	t        testing.TB
	ln       net.Listener
	plugin   string      // the greeting's default plugin
	tls      *tls.Config // nil: no TLS offered
	key      *rsa.PrivateKey
	accounts map[string]string // user -> password

	mu    sync.Mutex
	cache map[string][32]byte // user -> SHA256(SHA256(password))
	steps [][]string          // per connection
	errs  []error
}

func startSha2Server(t testing.TB, plugin string, tlsConf *tls.Config, accounts map[string]string, cached ...string) *sha2Server {
	t.Helper()
	key, err := sha2RSAKey()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &sha2Server{t: t, ln: ln, plugin: plugin, tls: tlsConf, key: key,
		accounts: accounts, cache: make(map[string][32]byte)}
	for _, u := range cached {
		s.cache[u] = sha256.Sum256(sha256Sum(accounts[u]))
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, err := range s.errs {
			t.Errorf("fake MySQL 8: %v", err)
		}
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.steps = append(s.steps, nil)
			id := len(s.steps)
			s.mu.Unlock()
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

func sha256Sum(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

// connections returns the steps of every connection so far.
func (s *sha2Server) connections() [][]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.steps)
}

func (s *sha2Server) step(id int, what string) {
	s.mu.Lock()
	s.steps[id-1] = append(s.steps[id-1], what)
	s.mu.Unlock()
}

// The capabilities of a MySQL 8.0 server (0xdfffffff less CLIENT_SSL when
// it has no certificate).
const sha2ServerCaps = mysql.Capability(0xdfffffff) &^ mysql.ClientSSL

// errMalformedAuth: a client packet the server does not accept. Like
// MySQL, the server answers it with ER_ACCESS_DENIED_ERROR.
var errMalformedAuth = errors.New("malformed authentication packet")

func (s *sha2Server) serve(raw net.Conn, id int) error {
	raw.SetDeadline(time.Now().Add(10 * time.Second))
	var c net.Conn = raw
	r := bufio.NewReader(c)
	var next uint8
	write := func(p []byte) error {
		var err error
		next, err = mysql.WritePacket(c, next, p)
		return err
	}
	read := func() ([]byte, error) {
		p, seq, err := mysql.ReadPacket(r, nil, 0)
		if err != nil {
			return nil, err
		}
		if seq != next {
			return nil, fmt.Errorf("packet with sequence id %d, want %d", seq, next)
		}
		next = seq + 1
		return p, nil
	}

	// MySQL's scramble: 20 random bytes in 1..127, without '$'.
	scramble := make([]byte, 20)
	rand.Read(scramble)
	for i := range scramble {
		scramble[i] &= 0x7f
		if scramble[i] == 0 || scramble[i] == '$' {
			scramble[i] = 'x'
		}
	}
	caps := sha2ServerCaps
	if s.tls != nil {
		caps |= mysql.ClientSSL
	}
	g := (&mysql.Handshake{
		ProtocolVersion: 10, ServerVersion: "8.0.36-fake", ConnectionID: uint32(id),
		AuthPluginData: scramble, Capabilities: caps, Charset: 255, Status: mysql.StatusAutocommit,
		AuthPluginDataLen: 21, AuthPlugin: s.plugin,
	}).Marshal()
	if err := write(g); err != nil {
		return err
	}
	p, err := read()
	if err != nil {
		return nil // the client left
	}
	secure := false
	if mysql.IsSSLRequest(p) {
		if s.tls == nil {
			return errors.New("SSLRequest, but no TLS offered")
		}
		tc := tls.Server(bufferedConn{raw, r}, s.tls)
		if err := tc.Handshake(); err != nil {
			return fmt.Errorf("TLS handshake: %w", err)
		}
		c, r, secure = tc, bufio.NewReader(tc), true
		s.step(id, "tls")
		if p, err = read(); err != nil {
			return nil
		}
	}
	hr, err := mysql.ParseHandshakeResponse(p)
	if err != nil {
		return err
	}
	if hr.Capabilities&mysql.ClientSSL != 0 && !secure {
		return errors.New("handshake response with CLIENT_SSL on a plaintext connection")
	}
	caps &= hr.Capabilities
	host, _, _ := net.SplitHostPort(raw.RemoteAddr().String())
	deny := func(usingPassword string) error {
		s.step(id, "denied")
		msg := fmt.Sprintf("Access denied for user '%s'@'%s' (using password: %s)", hr.Username, host, usingPassword)
		return write(mysql.ErrorPacket(1045, "28000", msg))
	}

	// The client's scramble answer, after an auth switch when it answered
	// for another plugin.
	answer := hr.AuthResponse
	if hr.AuthPlugin != "caching_sha2_password" {
		s.step(id, "switch")
		sw := append([]byte("\xfecaching_sha2_password\x00"), scramble...)
		if err := write(append(sw, 0)); err != nil {
			return err
		}
		if answer, err = read(); err != nil {
			return nil
		}
	}
	password, known := s.accounts[hr.Username]
	if len(answer) == 0 {
		return deny("NO")
	}
	if len(answer) != sha256.Size {
		s.step(id, "bad scramble")
		return deny("YES")
	}

	// Fast authentication: the cached digest checks the answer.
	s.mu.Lock()
	stage2, cached := s.cache[hr.Username]
	s.mu.Unlock()
	if cached {
		h := sha256.New()
		h.Write(stage2[:])
		h.Write(scramble)
		stage1 := h.Sum(nil)
		for i := range stage1 {
			stage1[i] ^= answer[i]
		}
		if sha256.Sum256(stage1) == stage2 {
			s.step(id, "fast")
			if err := write([]byte{0x01, mysql.CachingSHA2FastAuthOK}); err != nil {
				return err
			}
			return s.commands(c, r, id, hr, caps, write)
		}
	}

	// Full authentication.
	s.step(id, "full")
	if err := write([]byte{0x01, mysql.CachingSHA2FullAuth}); err != nil {
		return err
	}
	p, err = read()
	if err != nil {
		return nil
	}
	var got []byte
	if secure {
		s.step(id, "cleartext")
		got, _, _ = bytes.Cut(p, []byte{0})
	} else {
		if bytes.Equal(p, []byte{mysql.CachingSHA2RequestKey}) {
			s.step(id, "key")
			der, err := x509.MarshalPKIXPublicKey(&s.key.PublicKey)
			if err != nil {
				return err
			}
			if err := write(append([]byte{0x01}, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})...)); err != nil {
				return err
			}
			if p, err = read(); err != nil {
				return nil
			}
		}
		s.step(id, "rsa")
		if got, err = s.decrypt(p, scramble); err != nil {
			s.t.Logf("fake MySQL 8: connection %d: %v", id, err)
			return deny("YES")
		}
	}
	if !known || string(got) != password {
		return deny("YES")
	}
	s.mu.Lock()
	s.cache[hr.Username] = sha256.Sum256(sha256Sum(password))
	s.mu.Unlock()
	return s.commands(c, r, id, hr, caps, write)
}

// decrypt recovers the password from the RSA exchange: OAEP (SHA-1), then
// XOR with the scramble, then the NUL that ends the password.
func (s *sha2Server) decrypt(p, scramble []byte) ([]byte, error) {
	if len(p) != s.key.Size() {
		return nil, fmt.Errorf("%d bytes where the RSA-encrypted password (%d) should be: %w", len(p), s.key.Size(), errMalformedAuth)
	}
	plain, err := rsa.DecryptOAEP(sha1.New(), nil, s.key, p, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errMalformedAuth, err)
	}
	for i := range plain {
		plain[i] ^= scramble[i%len(scramble)]
	}
	pw, _, found := bytes.Cut(plain, []byte{0})
	if !found {
		return nil, fmt.Errorf("decrypted password without its NUL: %w", errMalformedAuth)
	}
	return pw, nil
}

// commands sends the login's OK and serves the command phase.
func (s *sha2Server) commands(c net.Conn, r *bufio.Reader, id int, hr *mysql.HandshakeResponse, caps mysql.Capability,
	write func([]byte) error) error {
	s.step(id, "ok")
	if err := write(mysql.OKPacket(0, 0, mysql.StatusAutocommit, 0)); err != nil {
		return err
	}
	for {
		p, seq, err := mysql.ReadPacket(r, nil, 0)
		if err != nil || len(p) == 0 || mysql.CommandCode(p[0]) == mysql.ComQuit {
			return nil
		}
		if seq != 0 {
			return fmt.Errorf("command with sequence id %d", seq)
		}
		var out []byte
		if mysql.CommandCode(p[0]) != mysql.ComQuery || string(p[1:]) != "SELECT CURRENT_USER()" {
			out, _ = mysql.AppendPacket(nil, 1, mysql.OKPacket(0, 0, mysql.StatusAutocommit, 0))
		} else {
			out = currentUserResult(hr.Username+"@%", caps&mysql.ClientDeprecateEOF != 0)
		}
		if _, err := c.Write(out); err != nil {
			return err
		}
	}
}

// currentUserResult is the framed text result set of SELECT CURRENT_USER().
func currentUserResult(user string, deprecateEOF bool) []byte {
	col := mysql.AppendLenencString(nil, []byte("def"))
	for _, f := range []string{"", "", "", "CURRENT_USER()", ""} {
		col = mysql.AppendLenencString(col, []byte(f))
	}
	col = append(col, 0x0c, 255, 0, 0, 1, 0, 0, 0xfd, 1, 0, 31, 0, 0) // utf8mb4, length 256, VAR_STRING, NOT NULL, 31 decimals
	eof := []byte{0xfe, 0, 0, byte(mysql.StatusAutocommit), 0}
	end := eof
	if deprecateEOF {
		end = []byte{0xfe, 0, 0, byte(mysql.StatusAutocommit), 0, 0, 0}
	}
	var b []byte
	seq := uint8(1)
	b, seq = mysql.AppendPacket(b, seq, []byte{1})
	b, seq = mysql.AppendPacket(b, seq, col)
	if !deprecateEOF {
		b, seq = mysql.AppendPacket(b, seq, eof)
	}
	b, seq = mysql.AppendPacket(b, seq, mysql.AppendLenencString(nil, []byte(user)))
	b, _ = mysql.AppendPacket(b, seq, end)
	return b
}

// sha2Outcome is what a go-sql-driver client sees of a login and a query,
// and what the server went through for it.
type sha2Outcome struct {
	err   string     // the login's error ("" when it succeeds)
	rows  [][]string // SELECT CURRENT_USER()
	steps []string   // the server's steps on the connection
}

// TestCachingSha2 logs in with go-sql-driver to a fake MySQL 8 server whose
// account uses caching_sha2_password, once directly and once through the
// proxy, for each path of the exchange: the client sees the same outcome,
// the server goes through the same steps, and the proxy records CONNECT and
// QUERY, or FAILED_CONNECT with the server's code and message.
func TestCachingSha2(t *testing.T) {
	const (
		user = "alice"
		pw   = "s3cret-Pa55"
		db   = "shop"
	)
	accounts := map[string]string{user: pw}
	certs := testenv.TLSCerts(t, t.TempDir())
	_, _, proxyCert := certs.IssueServer(t, "proxy", "127.0.0.1")
	_, _, serverCert := certs.IssueServer(t, "mysql8", "127.0.0.1")
	serverTLS := &tls.Config{Certificates: []tls.Certificate{serverCert}, MinVersion: tls.VersionTLS12}
	denied := fmt.Sprintf("Access denied for user '%s'@'127.0.0.1' (using password: YES)", user)

	cases := []struct {
		name      string
		plugin    string // the greeting's default plugin
		tls       bool   // client TLS (to the server, or to the proxy and on to the server)
		cached    bool   // the account's digest is in the server's cache
		password  string // the client's
		wantSteps []string
		wantErr   string // the server's message; "" when the login succeeds
	}{
		{"fast path", "caching_sha2_password", false, true, pw,
			[]string{"fast", "ok"}, ""},
		{"full auth over plaintext, RSA key exchange", "caching_sha2_password", false, false, pw,
			[]string{"full", "key", "rsa", "ok"}, ""},
		{"full auth over TLS, cleartext password", "caching_sha2_password", true, false, pw,
			[]string{"tls", "full", "cleartext", "ok"}, ""},
		{"fast path over TLS", "caching_sha2_password", true, true, pw,
			[]string{"tls", "fast", "ok"}, ""},
		{"auth switch from mysql_native_password, full auth", "mysql_native_password", false, false, pw,
			[]string{"switch", "full", "key", "rsa", "ok"}, ""},
		{"auth switch from mysql_native_password, fast path", "mysql_native_password", false, true, pw,
			[]string{"switch", "fast", "ok"}, ""},
		{"wrong password, fast auth misses, RSA", "caching_sha2_password", false, true, "wrong",
			[]string{"full", "key", "rsa", "denied"}, denied},
		{"wrong password over TLS", "caching_sha2_password", true, false, "wrong",
			[]string{"tls", "full", "cleartext", "denied"}, denied},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var srvTLS *tls.Config
			if tc.tls {
				srvTLS = serverTLS
			}
			var cached []string
			if tc.cached {
				cached = []string{user}
			}
			login := func(addr string, srv *sha2Server) sha2Outcome {
				t.Helper()
				c := config(user, tc.password, addr, db)
				c.ReadTimeout, c.WriteTimeout = 10*time.Second, 10*time.Second
				if tc.tls {
					c.TLS = certs.ClientTLS("127.0.0.1")
				}
				dbh := openDB(t, c)
				dbh.SetMaxOpenConns(1)
				var o sha2Outcome
				if err := dbh.Ping(); err != nil {
					o.err = err.Error()
				} else {
					o.rows = rows(t, dbh, "SELECT CURRENT_USER()")
				}
				dbh.Close()
				conns := srv.connections()
				if len(conns) != 1 {
					t.Fatalf("the server saw %d connections %q, want 1", len(conns), conns)
				}
				o.steps = conns[0]
				return o
			}

			srv := startSha2Server(t, tc.plugin, srvTLS, accounts, cached...)
			direct := login(srv.ln.Addr().String(), srv)
			wantErr := ""
			if tc.wantErr != "" {
				wantErr = (&gomysql.MySQLError{Number: 1045, SQLState: [5]byte{'2', '8', '0', '0', '0'}, Message: tc.wantErr}).Error()
			}
			want := sha2Outcome{err: wantErr, steps: tc.wantSteps}
			if wantErr == "" {
				want.rows = [][]string{{user + "@%"}}
			}
			if !reflect.DeepEqual(direct, want) {
				t.Fatalf("directly: %+v, want %+v", direct, want)
			}

			srv = startSha2Server(t, tc.plugin, srvTLS, accounts, cached...)
			o := Options{Upstream: srv.ln.Addr().String(), HandshakeTimeout: 5 * time.Second}
			if tc.tls {
				o.TLS = &tls.Config{Certificates: []tls.Certificate{proxyCert}, MinVersion: tls.VersionTLS12}
				o.UpstreamTLS = certs.ClientTLS("127.0.0.1")
				// TLS to the server too: a client on TLS sends its password in
				// cleartext for full authentication, which a MySQL 8 server
				// refuses on a plaintext connection (1045).
			}
			p, addr, sink := startProxy(t, o)
			if got := login(addr, srv); !reflect.DeepEqual(got, direct) {
				t.Fatalf("through the proxy: %+v\ndirectly:          %+v", got, direct)
			}

			sid := "1" // the fake server's first connection id
			if tc.wantErr != "" {
				e := sink.wait(t, "FAILED_CONNECT", bySession(sid, event.CommandFailedConnect))
				if e.DBUserName != user || e.DatabaseName != db || e.ExitCode != "1045" || e.ErrorMessage != tc.wantErr {
					t.Errorf("FAILED_CONNECT user=%q db=%q exitCode=%q errorMessage=%q, want %q %q %q %q",
						e.DBUserName, e.DatabaseName, e.ExitCode, e.ErrorMessage, user, db, "1045", tc.wantErr)
				}
			} else {
				e := sink.wait(t, "CONNECT", bySession(sid, event.CommandConnect))
				if e.DBUserName != user || e.DatabaseName != db || e.ExitCode != "0" {
					t.Errorf("CONNECT user=%q db=%q exitCode=%q, want %q %q %q", e.DBUserName, e.DatabaseName, e.ExitCode, user, db, "0")
				}
				q := sink.wait(t, "QUERY", queryText(sid, "SELECT CURRENT_USER()"))
				if q.DBUserName != user || q.DatabaseName != db || q.ExitCode != "0" || q.RowCount != 1 {
					t.Errorf("QUERY user=%q db=%q exitCode=%q rowCount=%d, want %q %q %q 1",
						q.DBUserName, q.DatabaseName, q.ExitCode, q.RowCount, user, db, "0")
				}
				sink.wait(t, "DISCONNECT", bySession(sid, event.CommandDisconnect))
			}
			if n := p.Stats().ProtocolErrors; n != 0 {
				t.Errorf("%d protocol errors", n)
			}
			var other []event.Event
			for _, e := range sink.all() {
				switch {
				case tc.wantErr != "" && e.Command == event.CommandFailedConnect,
					tc.wantErr == "" && e.Command != event.CommandFailedConnect:
				default:
					other = append(other, e)
				}
			}
			if len(other) > 0 {
				t.Errorf("unexpected events:\n%s", dumpEvents(other))
			}
		})
	}
}
