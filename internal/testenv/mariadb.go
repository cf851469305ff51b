package testenv

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The account and database every MariaDB server is created with.
const (
	TestUser     = "das_test" // 'das_test'@'%', ALL PRIVILEGES ON dastest.*
	TestDatabase = "dastest"
)

const (
	mariadbReadyTimeout = 60 * time.Second
	mariadbStopTimeout  = 10 * time.Second
	installTimeout      = 120 * time.Second
	clientTimeout       = 60 * time.Second
)

// MariaDBServer is a mariadbd started for one test, listening on 127.0.0.1
// only, with its own data directory, socket, TLS certificates and error log.
type MariaDBServer struct {
	mariadbd, client string
	dataDir, runDir  string
	logPath          string
	port             int
	args             []string // full mariadbd command line after the binary
	env              []string // added to mariadbd's environment (MariaDBEnv)
	certs            *Certs
	rootPW, userPW   string

	mu   sync.Mutex
	proc *mariadbProc // nil when stopped
}

// mariadbProc is one run of mariadbd.
type mariadbProc struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once cmd has been waited for
	err  error         // cmd.Wait's result, set before done is closed
}

// MariaDBOption configures MariaDB.
type MariaDBOption func(*mariadbConfig)

type mariadbConfig struct {
	args  []string
	env   []string
	certs *Certs
}

// MariaDBArgs adds mariadbd command-line options. They come after the
// harness's own, so they override them; for example:
//
//	testenv.MariaDBArgs("--plugin-load-add=server_audit", "--server-audit-logging=ON",
//		"--server-audit-file-path="+path, "--server-audit-file-rotate-size=4096")
func MariaDBArgs(args ...string) MariaDBOption {
	return func(c *mariadbConfig) { c.args = append(c.args, args...) }
}

// MariaDBEnv adds KEY=VALUE variables to mariadbd's environment (not
// mariadb-install-db's), overriding the host's; for example TZ=Asia/Kolkata
// for a server whose local time, as server_audit writes it, is not the
// host's.
func MariaDBEnv(kv ...string) MariaDBOption {
	return func(c *mariadbConfig) { c.env = append(c.env, kv...) }
}

// MariaDBCerts makes the server use certs (for example to share one CA
// between several servers and a proxy) instead of a new TLSCerts.
func MariaDBCerts(certs *Certs) MariaDBOption {
	return func(c *mariadbConfig) { c.certs = certs }
}

// MariaDB starts a new MariaDB server from the host's mariadbd and stops it
// when the test ends. Every call makes a separate server: its own data
// directory (mariadb-install-db into a t.TempDir()), a free port on
// 127.0.0.1, TLS with certificates from TLSCerts (see Certs), a root
// password, and the account TestUser with a password and all privileges on
// TestDatabase. max_allowed_packet is 64M, so rows over 16 MiB fit.
//
// Without mariadbd, mariadb-install-db or the mariadb client the test fails
// when CI=true and is skipped otherwise; scripts/install-test-deps.sh
// installs them.
func MariaDB(t testing.TB, opts ...MariaDBOption) *MariaDBServer {
	t.Helper()
	var cfg mariadbConfig
	for _, o := range opts {
		o(&cfg)
	}
	mariadbd := findTool(t, "mariadbd", "/usr/sbin/mariadbd", "/usr/libexec/mariadbd")
	installDB := findTool(t, "mariadb-install-db", "/usr/bin/mariadb-install-db")
	client := findTool(t, "mariadb", "/usr/bin/mariadb")

	base := t.TempDir()
	// A unix socket path must fit in 108 bytes, which a t.TempDir() named
	// after a long test does not; keep socket and pid file in a short dir.
	runDir, err := os.MkdirTemp("", "mdb")
	if err != nil {
		t.Fatalf("testenv: mariadb run dir: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(runDir) })

	s := &MariaDBServer{
		mariadbd: mariadbd,
		client:   client,
		dataDir:  filepath.Join(base, "data"),
		runDir:   runDir,
		logPath:  filepath.Join(base, "mariadbd.err"),
		env:      cfg.env,
		certs:    cfg.certs,
		rootPW:   randomHex(t, 12),
		userPW:   randomHex(t, 12),
	}
	if s.certs == nil {
		s.certs = TLSCerts(t, filepath.Join(base, "tls"))
	}
	tmpDir := filepath.Join(base, "tmp")
	if err := os.Mkdir(tmpDir, 0o700); err != nil {
		t.Fatalf("testenv: mariadb tmp dir: %v", err)
	}

	// Sizes and durability settings for a fast, small, throwaway server.
	// They go to mariadb-install-db too, so its bootstrap is fast as well.
	tuning := []string{
		"--innodb-buffer-pool-size=32M",
		"--innodb-log-file-size=8M",
		"--innodb-log-buffer-size=4M",
		"--innodb-doublewrite=0",
		"--innodb-flush-log-at-trx-commit=2",
		"--innodb-flush-method=nosync",
		"--tmpdir=" + tmpDir,
	}
	var asRoot []string
	if os.Geteuid() == 0 {
		asRoot = []string{"--user=root"}
	}

	start := time.Now()
	s.install(t, installDB, base, append(tuning, asRoot...))
	installed := time.Since(start)

	s.args = append([]string{
		"--no-defaults", // must come first
		"--datadir=" + s.dataDir,
		"--socket=" + s.Socket(),
		"--pid-file=" + filepath.Join(runDir, "mariadbd.pid"),
		"--bind-address=127.0.0.1",
		"--skip-name-resolve",
		"--log-error=" + s.logPath,
		"--ssl-ca=" + s.certs.CAFile,
		"--ssl-cert=" + s.certs.ServerCertFile,
		"--ssl-key=" + s.certs.ServerKeyFile,
		"--character-set-server=utf8mb4",
		"--collation-server=utf8mb4_general_ci",
		"--max-allowed-packet=64M",
		"--skip-log-bin",
	}, asRoot...)
	s.args = append(s.args, tuning...)
	s.args = append(s.args, cfg.args...)

	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("testenv: mariadbd error log %s:\n%s", s.logPath, tail(s.logPath, 32<<10))
		}
	})

	// A port that was free may be taken before mariadbd binds it; try again
	// with another then.
	for attempt := 0; ; attempt++ {
		s.port = FreePort(t)
		err := s.start()
		if err == nil {
			break
		}
		if attempt < 3 && strings.Contains(tail(s.logPath, 8<<10), "Address already in use") {
			continue
		}
		t.Fatalf("testenv: mariadbd: %v (its error log follows)", err)
	}
	t.Logf("testenv: MariaDB on %s (install %v, start %v)", s.Addr(),
		installed.Round(time.Millisecond), (time.Since(start) - installed).Round(time.Millisecond))
	return s
}

// install creates the data directory and runs the setup SQL inside the
// bootstrap, so no client is needed for it and the first start is final.
func (s *MariaDBServer) install(t testing.TB, installDB, base string, extra []string) {
	t.Helper()
	// Bootstrap runs with --skip-grant-tables; FLUSH PRIVILEGES turns the
	// grant tables on so that account statements work. Only loopback root
	// accounts stay; anonymous and hostname accounts go.
	setup := fmt.Sprintf(`FLUSH PRIVILEGES;
DELETE FROM mysql.global_priv WHERE User='' OR (User='root' AND Host NOT IN ('localhost','127.0.0.1','::1'));
DELETE FROM mysql.proxies_priv WHERE Host NOT IN ('localhost','127.0.0.1','::1');
FLUSH PRIVILEGES;
CREATE USER IF NOT EXISTS 'root'@'127.0.0.1';
CREATE USER IF NOT EXISTS 'root'@'::1';
ALTER USER 'root'@'localhost' IDENTIFIED BY '%[1]s';
ALTER USER 'root'@'127.0.0.1' IDENTIFIED BY '%[1]s';
ALTER USER 'root'@'::1' IDENTIFIED BY '%[1]s';
GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
GRANT ALL PRIVILEGES ON *.* TO 'root'@'::1' WITH GRANT OPTION;
CREATE DATABASE %[3]s;
CREATE USER '%[4]s'@'%%' IDENTIFIED BY '%[2]s';
GRANT ALL PRIVILEGES ON %[3]s.* TO '%[4]s'@'%%';
`, s.rootPW, s.userPW, TestDatabase, TestUser)
	setupPath := filepath.Join(base, "setup.sql")
	if err := os.WriteFile(setupPath, []byte(setup), 0o600); err != nil {
		t.Fatalf("testenv: write setup SQL: %v", err)
	}
	defer os.Remove(setupPath) // it holds the passwords

	args := append([]string{
		"--no-defaults",
		"--datadir=" + s.dataDir,
		"--auth-root-authentication-method=normal",
		"--skip-test-db",
		"--skip-name-resolve",
		"--extra-file=" + setupPath,
	}, extra...)
	ctx, cancel := context.WithTimeout(context.Background(), installTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, installDB, args...)
	cmd.Env = cleanEnv()
	setProcAttr(cmd)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("testenv: %s: %v\n%s", installDB, err, out)
	}
}

// start runs mariadbd on s.port and waits until it greets a client.
func (s *MariaDBServer) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		return errors.New("already running")
	}
	logf, err := os.OpenFile(s.logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	args := append(append([]string(nil), s.args[:1]...), "--port="+strconv.Itoa(s.port))
	args = append(args, s.args[1:]...)
	cmd := exec.Command(s.mariadbd, args...)
	cmd.Env = append(cleanEnv(), s.env...) // the last of a duplicate key wins
	cmd.Dir = s.runDir
	// mariadbd writes to --log-error itself; this catches what it prints
	// before opening it.
	cmd.Stdout = logf
	cmd.Stderr = logf
	setProcAttr(cmd)
	begin := time.Now()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", s.mariadbd, err)
	}
	logf.Close() // the child has its own descriptor
	p := &mariadbProc{cmd: cmd, done: make(chan struct{})}
	s.proc = p
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()

	deadline := begin.Add(mariadbReadyTimeout)
	var last error
	for {
		select {
		case <-p.done:
			s.proc = nil
			return fmt.Errorf("exited while starting: %v", p.err)
		default:
		}
		if last = greet(s.Addr()); last == nil {
			return nil
		}
		if time.Now().After(deadline) {
			s.stopLocked()
			return fmt.Errorf("not accepting connections on %s after %v: %v", s.Addr(), mariadbReadyTimeout, last)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// greet dials addr and reads the server's first packet: a protocol 10
// handshake means mariadbd accepts connections.
func greet(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	var hdr [5]byte // 3-byte length, sequence id, first payload byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return fmt.Errorf("read greeting: %w", err)
	}
	if hdr[4] != 10 {
		rest := make([]byte, 256)
		n, _ := c.Read(rest)
		return fmt.Errorf("greeting starts with 0x%02x: %q", hdr[4], rest[:n])
	}
	return nil
}

// Stop shuts the server down: SIGTERM, then SIGKILL after 10s. The data
// directory stays, so Restart can start it again. Stopping a stopped server
// does nothing.
func (s *MariaDBServer) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked()
}

func (s *MariaDBServer) stopLocked() {
	p := s.proc
	if p == nil {
		return
	}
	s.proc = nil
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(mariadbStopTimeout):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// Restart stops the server and starts it again on the same port, with the
// same data and options; it returns when the server accepts connections.
func (s *MariaDBServer) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	begin := time.Now()
	if err := s.start(); err != nil {
		t.Fatalf("testenv: restart mariadbd: %v (its error log follows)", err)
	}
	t.Logf("testenv: MariaDB on %s restarted in %v", s.Addr(), time.Since(begin).Round(time.Millisecond))
}

// PID is the running mariadbd's process id, or 0 when it is stopped.
func (s *MariaDBServer) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return 0
	}
	return s.proc.cmd.Process.Pid
}

// Addr is "127.0.0.1:PORT".
func (s *MariaDBServer) Addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
}

// Port is the TCP port on 127.0.0.1.
func (s *MariaDBServer) Port() int { return s.port }

// Socket is the server's unix socket path.
func (s *MariaDBServer) Socket() string { return filepath.Join(s.runDir, "mariadbd.sock") }

// RootPassword is the password of root@127.0.0.1, root@::1 and root@localhost.
func (s *MariaDBServer) RootPassword() string { return s.rootPW }

// UserPassword is TestUser's password.
func (s *MariaDBServer) UserPassword() string { return s.userPW }

// RootDSN is a go-sql-driver/mysql DSN for root over TCP, with no default
// database: "root:PW@tcp(127.0.0.1:PORT)/". Append "?param=..." as needed.
func (s *MariaDBServer) RootDSN() string {
	return fmt.Sprintf("root:%s@tcp(%s)/", s.rootPW, s.Addr())
}

// UserDSN is a go-sql-driver/mysql DSN for TestUser over TCP with
// TestDatabase: "das_test:PW@tcp(127.0.0.1:PORT)/dastest".
func (s *MariaDBServer) UserDSN() string {
	return fmt.Sprintf("%s:%s@tcp(%s)/%s", TestUser, s.userPW, s.Addr(), TestDatabase)
}

// Certs is the server's PKI: its CA verifies the server certificate, and the
// client certificate is signed by the same CA.
func (s *MariaDBServer) Certs() *Certs { return s.certs }

// DataDir is the server's data directory.
func (s *MariaDBServer) DataDir() string { return s.dataDir }

// LogPath is the server's error log; its tail is logged when the test fails.
func (s *MariaDBServer) LogPath() string { return s.logPath }

// Client runs the mariadb command-line client against the server over TCP
// as root, with args appended (later options override earlier ones, so
// "--user=das_test", "--password=..." switch the account), and returns its
// standard output. The error includes the client's standard error.
// For example: s.Client(t, "--ssl", "--ssl-ca="+s.Certs().CAFile, "-e", "SELECT 1").
func (s *MariaDBServer) Client(t testing.TB, args ...string) (string, error) {
	t.Helper()
	all := append([]string{
		"--no-defaults",
		"--protocol=TCP",
		"--host=127.0.0.1",
		"--port=" + strconv.Itoa(s.port),
		"--user=root",
		"--password=" + s.rootPW,
		"--connect-timeout=10",
	}, args...)
	ctx, cancel := context.WithTimeout(context.Background(), clientTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.client, all...)
	cmd.Env = cleanEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("mariadb %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// findTool looks for a MariaDB program in PATH, then at the usual places.
func findTool(t testing.TB, name string, paths ...string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, p := range paths {
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	msg := fmt.Sprintf("testenv: %s not found (PATH, %s); run scripts/install-test-deps.sh",
		name, strings.Join(paths, ", "))
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// cleanEnv is the environment without the MYSQL_*/MARIADB_* variables that
// MariaDB programs read (host, port, password, ...), so the host's settings
// cannot redirect a test.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "MYSQL_") || strings.HasPrefix(kv, "MARIADB_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// tail returns up to the last n bytes of a file, or why it cannot.
func tail(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err.Error()
	}
	off := max(fi.Size()-n, 0)
	b := make([]byte, fi.Size()-off)
	if _, err := f.ReadAt(b, off); err != nil && !errors.Is(err, io.EOF) {
		return err.Error()
	}
	return string(b)
}
