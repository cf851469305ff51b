package proxy

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/das-mysql/das/internal/mysql"
	"github.com/das-mysql/das/internal/testenv"
)

// edPassword is 32 bytes long: MariaDB's ed25519 key is derived from the
// password as standard Ed25519 derives it from a 32-byte seed, so the fake
// server checks signatures with crypto/ed25519.
const edPassword = "ed25519-password-of-32-bytes-abc"

// edServer is a fake MariaDB whose accounts all use ed25519, reached by an
// auth switch from mysql_native_password as on the real server. Each
// connection gets the next of nonces (random when they run out); it answers
// every command with OK.
type edServer struct {
	t      testing.TB
	ln     net.Listener
	nonces [][]byte

	mu       sync.Mutex
	conns    int
	loggedIn int
	errs     []error
}

func startEdServer(t testing.TB, nonces ...[]byte) *edServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &edServer{t: t, ln: ln, nonces: nonces}
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
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns++
			nonce := make([]byte, 32)
			if len(s.nonces) > 0 {
				copy(nonce, s.nonces[0])
				s.nonces = s.nonces[1:]
			} else {
				rand.Read(nonce)
				nonce[31] |= 1
			}
			id := uint32(s.conns)
			s.mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				if err := s.serve(c, id, nonce); err != nil {
					s.mu.Lock()
					s.errs = append(s.errs, fmt.Errorf("connection %d: %w", id, err))
					s.mu.Unlock()
				}
			}()
		}
	}()
	return s
}

const edServerCaps = mysql.ClientLongFlag | mysql.ClientConnectWithDB | mysql.ClientProtocol41 |
	mysql.ClientTransactions | mysql.ClientSecureConnection | mysql.ClientMultiResults |
	mysql.ClientPluginAuth | mysql.ClientConnectAttrs | mysql.ClientPluginAuthLenencClientData

func (s *edServer) serve(c net.Conn, id uint32, nonce []byte) error {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	// The greeting of a MariaDB server (CLIENT_MYSQL clear, no extended
	// capabilities) whose default plugin is mysql_native_password.
	g := (&mysql.Handshake{
		ProtocolVersion: 10, ServerVersion: "5.5.5-10.11.0-MariaDB-fake", ConnectionID: id,
		AuthPluginData: []byte("abcdefghijklmnopqrst"), Capabilities: edServerCaps,
		Charset: 45, Status: 2, AuthPluginDataLen: 21, AuthPlugin: "mysql_native_password",
	}).Marshal()
	if _, err := mysql.WritePacket(c, 0, g); err != nil {
		return err
	}
	p, seq, err := mysql.ReadPacket(r, nil, 0)
	if err != nil {
		return nil // the client left
	}
	if seq != 1 {
		return fmt.Errorf("handshake response with sequence id %d, want 1", seq)
	}
	hr, err := mysql.ParseHandshakeResponse(p)
	if err != nil {
		return err
	}
	if hr.Capabilities&mysql.ClientSSL != 0 {
		return errors.New("handshake response with CLIENT_SSL on a plaintext connection")
	}
	sw := append([]byte("\xfeclient_ed25519\x00"), nonce...)
	if _, err := mysql.WritePacket(c, 2, sw); err != nil {
		return err
	}
	p, seq, err = mysql.ReadPacket(r, nil, 0)
	if err != nil {
		return nil // the client gave up on the nonce
	}
	pub := ed25519.NewKeyFromSeed([]byte(edPassword)).Public().(ed25519.PublicKey)
	if seq != 3 || len(p) != ed25519.SignatureSize || !ed25519.Verify(pub, nonce, p) {
		_, err := mysql.WritePacket(c, 4, mysql.ErrorPacket(1045, "28000", "Access denied"))
		if err != nil {
			return err
		}
		return fmt.Errorf("auth switch response (sequence id %d, %d bytes) is not the nonce's signature", seq, len(p))
	}
	if _, err := mysql.WritePacket(c, 4, mysql.OKPacket(0, 0, mysql.StatusAutocommit, 0)); err != nil {
		return err
	}
	s.mu.Lock()
	s.loggedIn++
	s.mu.Unlock()
	for {
		p, seq, err := mysql.ReadPacket(r, nil, 0)
		if err != nil || len(p) == 0 || mysql.CommandCode(p[0]) == mysql.ComQuit {
			return nil
		}
		if seq != 0 {
			return fmt.Errorf("command with sequence id %d", seq)
		}
		if _, err := mysql.WritePacket(c, 1, mysql.OKPacket(0, 0, mysql.StatusAutocommit, 0)); err != nil {
			return err
		}
	}
}

// A nonce ending in 0x00 (1 in 256 of MariaDB's random ones) reaches the
// client intact through the proxy, with plaintext and with TLS on the client
// side, and so does the client's signature on its way back.
func TestEd25519NonceEndingInZero(t *testing.T) {
	nonce := bytes.Repeat([]byte{0x5a}, 32)
	nonce[31] = 0
	certs := testenv.TLSCerts(t, t.TempDir())
	_, _, cert := certs.IssueServer(t, "proxy", "127.0.0.1")
	proxyTLS := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}

	for _, clientTLS := range []bool{false, true} {
		t.Run(fmt.Sprintf("clientTLS=%v", clientTLS), func(t *testing.T) {
			srv := startEdServer(t, nonce)
			_, addr, _ := startProxy(t, Options{Upstream: srv.ln.Addr().String(), TLS: proxyTLS})
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			var conn net.Conn = c
			r := bufio.NewReader(conn)
			read := func(wantSeq uint8) []byte {
				t.Helper()
				p, seq, err := mysql.ReadPacket(r, nil, 0)
				if err != nil {
					t.Fatalf("read: %v", err)
				}
				if seq != wantSeq {
					t.Fatalf("packet %q with sequence id %d, want %d", p, seq, wantSeq)
				}
				return p
			}
			read(0) // greeting
			caps := uint32(edServerCaps)
			seq := uint8(1)
			if clientTLS {
				req := binary.LittleEndian.AppendUint32(nil, caps|uint32(mysql.ClientSSL))
				req = binary.LittleEndian.AppendUint32(req, 1<<24)
				req = append(req, 45)
				req = append(req, make([]byte, 23)...)
				if _, err := mysql.WritePacket(c, seq, req); err != nil {
					t.Fatal(err)
				}
				seq++
				tc := tls.Client(c, certs.ClientTLS("127.0.0.1"))
				if err := tc.Handshake(); err != nil {
					t.Fatal(err)
				}
				conn, r = tc, bufio.NewReader(tc)
				caps |= uint32(mysql.ClientSSL)
			}
			resp := binary.LittleEndian.AppendUint32(nil, caps)
			resp = binary.LittleEndian.AppendUint32(resp, 1<<24)
			resp = append(resp, 45)
			resp = append(resp, make([]byte, 23)...)
			resp = append(resp, "ed\x00"...)
			resp = append(resp, 20)
			resp = append(resp, make([]byte, 20)...) // a native password answer the server ignores
			resp = append(resp, "db\x00mysql_native_password\x00"...)
			resp = append(resp, 0) // no attributes
			if _, err := mysql.WritePacket(conn, seq, resp); err != nil {
				t.Fatal(err)
			}
			sw := read(seq + 1)
			if want := append([]byte("\xfeclient_ed25519\x00"), nonce...); !bytes.Equal(sw, want) {
				t.Fatalf("auth switch %x, want %x", sw, want)
			}
			sig := ed25519.Sign(ed25519.NewKeyFromSeed([]byte(edPassword)), nonce)
			if _, err := mysql.WritePacket(conn, seq+2, sig); err != nil {
				t.Fatal(err)
			}
			if p := read(seq + 3); !mysql.IsOK(p) {
				t.Fatalf("after the signature: %q, want OK", p)
			}
			// The first command after the login.
			if _, err := mysql.WritePacket(conn, 0, []byte{byte(mysql.ComPing)}); err != nil {
				t.Fatal(err)
			}
			if p := read(1); !mysql.IsOK(p) {
				t.Fatalf("COM_PING: %q, want OK", p)
			}
		})
	}
}

// go-sql-driver takes a trailing 0x00 of an auth switch's data for a NUL
// terminator and drops it, then refuses the 31-byte ed25519 nonce with
// "malformed packet": 1 connection in 256 to MariaDB fails so, directly as
// through the proxy. pingRetry draws a new nonce; TestMariaDB relies on it.
func TestPingRetryEd25519(t *testing.T) {
	nonce := bytes.Repeat([]byte{0x5a}, 32)
	nonce[31] = 0
	certs := testenv.TLSCerts(t, t.TempDir())
	_, _, cert := certs.IssueServer(t, "proxy", "127.0.0.1")
	srv := startEdServer(t, nonce)
	_, addr, _ := startProxy(t, Options{Upstream: srv.ln.Addr().String(),
		TLS: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}})
	c := config("ed", edPassword, addr, "db")
	c.TLS = certs.ClientTLS("127.0.0.1")
	db := openDB(t, c)
	db.SetMaxOpenConns(1)
	if err := pingRetry(t, db); err != nil {
		t.Fatalf("ed25519 login through the proxy: %v", err)
	}
	if _, err := db.Exec("DO 1"); err != nil {
		t.Fatalf("first statement: %v", err)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if srv.loggedIn != 1 || srv.conns > 2 {
		t.Errorf("%d logins in %d connections, want 1 in at most 2", srv.loggedIn, srv.conns)
	}
}
