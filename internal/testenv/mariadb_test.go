package testenv

import (
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestMariaDB(t *testing.T) {
	t.Parallel()
	s := MariaDB(t)

	if !strings.HasPrefix(s.Addr(), "127.0.0.1:") || s.Addr() != "127.0.0.1:"+strconv.Itoa(s.Port()) {
		t.Errorf("Addr %q, Port %d", s.Addr(), s.Port())
	}
	if want := fmt.Sprintf("das_test:%s@tcp(127.0.0.1:%d)/dastest", s.UserPassword(), s.Port()); s.UserDSN() != want {
		t.Errorf("UserDSN %q, want %q", s.UserDSN(), want)
	}
	if want := fmt.Sprintf("root:%s@tcp(127.0.0.1:%d)/", s.RootPassword(), s.Port()); s.RootDSN() != want {
		t.Errorf("RootDSN %q, want %q", s.RootDSN(), want)
	}
	if _, err := os.Stat(filepath.Join(s.DataDir(), "mysql")); err != nil {
		t.Errorf("data dir: %v", err)
	}

	user := []string{"--user=" + TestUser, "--password=" + s.UserPassword(), TestDatabase}
	verified := []string{"--ssl", "--ssl-ca=" + s.Certs().CAFile, "--ssl-verify-server-cert"}
	query := func(t *testing.T, args ...string) string {
		t.Helper()
		out, err := s.Client(t, args...)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}

	t.Run("plain", func(t *testing.T) {
		got := query(t, append(user, "--skip-ssl", "--skip-column-names", "-e",
			"SELECT CURRENT_USER(), DATABASE(), VARIABLE_VALUE FROM information_schema.SESSION_STATUS WHERE VARIABLE_NAME='SSL_VERSION'")...)
		if want := "das_test@%\tdastest\t\n"; got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	})
	t.Run("tls", func(t *testing.T) {
		got := query(t, append(append(user, verified...), "--skip-column-names", "-e",
			"SELECT VARIABLE_VALUE FROM information_schema.SESSION_STATUS WHERE VARIABLE_NAME='SSL_VERSION'")...)
		if !strings.HasPrefix(got, "TLSv1.") {
			t.Errorf("Ssl_version %q, want TLSv1.x", got)
		}
	})
	t.Run("tls client certificate", func(t *testing.T) {
		got := query(t, append(append(user, verified...), "--ssl-cert="+s.Certs().ClientCertFile,
			"--ssl-key="+s.Certs().ClientKeyFile, "--skip-column-names", "-e", "SELECT 'ok'")...)
		if got != "ok\n" {
			t.Errorf("got %q", got)
		}
	})
	t.Run("tls wrong CA", func(t *testing.T) {
		other := TLSCerts(t, "")
		_, err := s.Client(t, append(user, "--ssl", "--ssl-ca="+other.CAFile, "--ssl-verify-server-cert", "-e", "SELECT 1")...)
		if err == nil {
			t.Error("client verifying against another CA connected")
		}
	})
	t.Run("tls from go", func(t *testing.T) {
		// What a proxy does: read the greeting, send SSLRequest, and verify
		// the server's certificate against the CA for 127.0.0.1.
		state := sslHandshake(t, s.Addr(), s.Certs().ClientTLS("127.0.0.1"))
		if len(state.PeerCertificates) == 0 || state.PeerCertificates[0].Subject.CommonName != "das test server" {
			t.Errorf("peer certificates %v", state.PeerCertificates)
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		_, err := s.Client(t, "--user="+TestUser, "--password=wrong", "-e", "SELECT 1")
		if err == nil || !strings.Contains(err.Error(), "1045") {
			t.Errorf("err = %v, want access denied (1045)", err)
		}
	})
	t.Run("user privileges", func(t *testing.T) {
		_, err := s.Client(t, append(user, "-e", "SELECT * FROM mysql.user")...)
		if err == nil || !strings.Contains(err.Error(), "1142") {
			t.Errorf("err = %v, want SELECT denied (1142)", err)
		}
	})

	query(t, append(user, "-e", "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20)); INSERT INTO t VALUES (1, 'before restart')")...)
	pid, port := s.PID(), s.Port()
	s.Restart(t)
	if s.PID() == pid || s.PID() == 0 {
		t.Errorf("pid %d after restart, was %d", s.PID(), pid)
	}
	if s.Port() != port {
		t.Errorf("port %d after restart, was %d", s.Port(), port)
	}
	if got := query(t, append(user, "--skip-column-names", "-e", "SELECT v FROM t WHERE id = 1")...); got != "before restart\n" {
		t.Errorf("after restart: %q", got)
	}
	if got := query(t, "--skip-column-names", "-e", "SELECT @@bind_address, @@max_allowed_packet"); got != "127.0.0.1\t67108864\n" {
		t.Errorf("root: %q", got)
	}

	s.Stop()
	if s.PID() != 0 {
		t.Error("PID after Stop")
	}
	if err := greet(s.Addr()); err == nil {
		t.Error("server still accepts connections after Stop")
	}
	s.Stop() // a second Stop is harmless
}

func TestMariaDBAuditPlugin(t *testing.T) {
	t.Parallel()
	audit := filepath.Join(t.TempDir(), "server_audit.log")
	s := MariaDB(t, MariaDBArgs(
		"--plugin-load-add=server_audit",
		"--server-audit-logging=ON",
		"--server-audit-events=CONNECT,QUERY",
		"--server-audit-file-path="+audit,
		"--server-audit-file-rotate-size=1000000",
	))
	if _, err := s.Client(t, "--user="+TestUser, "--password="+s.UserPassword(), TestDatabase,
		"-e", "SELECT 'audit marker'"); err != nil {
		t.Fatal(err)
	}
	// server_audit writes each line as it happens; allow a moment anyway.
	var log string
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, err := os.ReadFile(audit)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		log = string(b)
		if strings.Contains(log, ",DISCONNECT,") || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, want := range []string{
		",das_test,127.0.0.1,",
		",CONNECT,dastest,,0",
		",QUERY,dastest,'SELECT \\'audit marker\\'',0",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("audit log lacks %q:\n%s", want, log)
		}
	}
}

func TestMariaDBMissingTool(t *testing.T) {
	t.Setenv("PATH", "")
	nowhere := filepath.Join(t.TempDir(), "nowhere", "mariadbd")
	for _, ci := range []string{"true", ""} {
		t.Setenv("CI", ci)
		r := &tbRecorder{TB: t}
		done := make(chan struct{})
		go func() {
			defer close(done)
			findTool(r, "mariadbd", nowhere)
		}()
		<-done
		got, other := r.skipped, r.fatal
		if ci == "true" {
			got, other = r.fatal, r.skipped
		}
		if other != "" {
			t.Errorf("CI=%q: wrong outcome: %q", ci, other)
		}
		if !strings.Contains(got, "scripts/install-test-deps.sh") {
			t.Errorf("CI=%q: message %q lacks the install script", ci, got)
		}
	}
}

// sslHandshake reads a MySQL greeting from addr, answers with an SSLRequest
// and completes a TLS handshake with cfg.
func sslHandshake(t *testing.T, addr string, cfg *tls.Config) tls.ConnectionState {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	var hdr [4]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		t.Fatal(err)
	}
	greeting := make([]byte, int(hdr[0])|int(hdr[1])<<8|int(hdr[2])<<16)
	if _, err := io.ReadFull(c, greeting); err != nil {
		t.Fatal(err)
	}
	if greeting[0] != 10 {
		t.Fatalf("greeting %q", greeting)
	}
	const (
		clientProtocol41 = 0x200
		clientSSL        = 0x800
		clientSecureConn = 0x8000
	)
	req := make([]byte, 4+32)
	req[0], req[3] = 32, hdr[3]+1
	binary.LittleEndian.PutUint32(req[4:], clientProtocol41|clientSSL|clientSecureConn)
	binary.LittleEndian.PutUint32(req[8:], 1<<24)
	req[12] = 45 // utf8mb4_general_ci
	if _, err := c.Write(req); err != nil {
		t.Fatal(err)
	}
	tc := tls.Client(c, cfg)
	if err := tc.Handshake(); err != nil {
		t.Fatalf("TLS handshake with mariadbd: %v", err)
	}
	return tc.ConnectionState()
}

// tbRecorder stands in for a test to observe Skip and Fatal.
type tbRecorder struct {
	testing.TB
	skipped, fatal string
}

func (r *tbRecorder) Helper()                   {}
func (r *tbRecorder) Skip(args ...any)          { r.skipped = fmt.Sprint(args...); runtime.Goexit() }
func (r *tbRecorder) Fatal(args ...any)         { r.fatal = fmt.Sprint(args...); runtime.Goexit() }
func (r *tbRecorder) Fatalf(f string, a ...any) { r.Fatal(fmt.Sprintf(f, a...)) }
