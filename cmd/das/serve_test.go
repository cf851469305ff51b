package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/das-mysql/das/internal/embeddb"
	"github.com/das-mysql/das/internal/event"
	"github.com/das-mysql/das/internal/testenv"
)

// startServe runs `das serve` and waits until it accepts connections. stop
// sends SIGTERM and returns the exit code and stderr.
func startServe(t *testing.T, args ...string) (addr string, stop func() (int, string)) {
	t.Helper()
	addr = fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	cmd := exec.Command(dasBin, append([]string{"serve", "--listen", addr}, args...)...)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-done:
			t.Fatalf("das serve exited: %s", errb.String())
		default:
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("das serve does not listen on %s: %s", addr, errb.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	stopped := false
	stop = func() (int, string) {
		if !stopped {
			stopped = true
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-done:
			case <-time.After(60 * time.Second):
				cmd.Process.Kill()
				<-done
				t.Errorf("das serve did not stop within 60s of SIGTERM")
			}
		}
		return cmd.ProcessState.ExitCode(), errb.String()
	}
	t.Cleanup(func() { stop() })
	return addr, stop
}

// mariadbCLI runs the mariadb command-line client against addr.
func mariadbCLI(t *testing.T, addr string, args ...string) (string, error) {
	t.Helper()
	bin, err := exec.LookPath("mariadb")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("the mariadb client is missing: run scripts/install-test-deps.sh")
		}
		t.Skip("the mariadb client is missing: run scripts/install-test-deps.sh")
	}
	host, port, _ := net.SplitHostPort(addr)
	out, err := exec.Command(bin, append([]string{"--no-defaults", "-h", host, "-P", port, "--protocol=TCP", "--batch"}, args...)...).CombinedOutput()
	return string(out), err
}

func find(evs []event.Event, pred func(e *event.Event) bool) *event.Event {
	for i := range evs {
		if pred(&evs[i]) {
			return &evs[i]
		}
	}
	return nil
}

// TestServeEmbedded is the README's first command: das serve with no
// upstream starts an embedded database; a mariadb client session through it
// shows up in das consume, and the stream verifies.
func TestServeEmbedded(t *testing.T) {
	data := t.TempDir()
	addr, stop := startServe(t, "--data-dir", data)
	out, err := mariadbCLI(t, addr, "-u", embeddb.DefaultUser, "-p"+embeddb.DefaultPassword, embeddb.DefaultDatabase,
		"-e", "CREATE TABLE t (a INT PRIMARY KEY, b VARCHAR(20)); INSERT INTO t VALUES (1,'x'),(2,'y'); SELECT a, b FROM t ORDER BY a")
	if err != nil {
		t.Fatalf("mariadb through das: %v\n%s", err, out)
	}
	if !strings.Contains(out, "1\tx\n2\ty") {
		t.Fatalf("the client did not get its rows: %q", out)
	}
	if code, stderr := stop(); code != 0 {
		t.Fatalf("das serve exited %d after SIGTERM: %s", code, stderr)
	}
	r := das(t, nil, "consume", "--from", data)
	if r.code != 0 {
		t.Fatalf("consume: %d %s", r.code, r.stderr)
	}
	evs := consumed(t, r.stdout)
	if e := find(evs, func(e *event.Event) bool { return e.Command == "CONNECT" }); e == nil || e.DBUserName != embeddb.DefaultUser || e.RemoteHost != "127.0.0.1" || e.RemotePort == "" {
		t.Fatalf("no CONNECT event for the session: %+v\n%s", e, r.stdout)
	}
	sel := find(evs, func(e *event.Event) bool { return strings.HasPrefix(e.CommandText, "SELECT a, b FROM t") })
	if sel == nil || sel.RowCount != 2 || sel.ExitCode != "0" || sel.Command != "QUERY" {
		t.Fatalf("SELECT event: %+v\n%s", sel, r.stdout)
	}
	if ins := find(evs, func(e *event.Event) bool { return strings.HasPrefix(e.CommandText, "INSERT INTO t") }); ins == nil || ins.RowCount != 2 {
		t.Fatalf("INSERT event: %+v", ins)
	}
	if find(evs, func(e *event.Event) bool { return e.Command == "DISCONNECT" }) == nil {
		t.Fatal("no DISCONNECT event")
	}
	if r := das(t, nil, "verify", "--from", data); r.code != 0 {
		t.Fatalf("verify: %s %s", r.stdout, r.stderr)
	}
}

// TestServeMariaDB fronts a real MariaDB with TLS on both sides.
func TestServeMariaDB(t *testing.T) {
	db := testenv.MariaDB(t)
	data := t.TempDir()
	addr, stop := startServe(t, "--data-dir", data, "--upstream", db.Addr(), "--upstream-tls-ca", db.Certs().CAFile)
	ca := filepath.Join(data, "tls", "proxy.crt")
	out, err := mariadbCLI(t, addr, "--ssl", "--ssl-ca", ca, "--ssl-verify-server-cert", "-u", testenv.TestUser, "-p"+db.UserPassword(), testenv.TestDatabase,
		"-e", "SELECT @@version, 'it''s' AS q; SHOW STATUS LIKE 'Ssl_cipher'")
	if err != nil {
		t.Fatalf("mariadb --ssl through das: %v\n%s", err, out)
	}
	if !strings.Contains(out, "MariaDB") || !strings.Contains(out, "it's") {
		t.Fatalf("unexpected answer %q", out)
	}
	if strings.Contains(out, "Ssl_cipher\t\n") || !strings.Contains(out, "Ssl_cipher\t") {
		t.Fatalf("the upstream session does not use TLS: %q", out)
	}
	if out, err := mariadbCLI(t, addr, "-u", testenv.TestUser, "-pwrong-password", "-e", "SELECT 1"); err == nil || !strings.Contains(out, "1045") {
		t.Fatalf("a wrong password was not refused: %v %s", err, out)
	}
	if code, stderr := stop(); code != 0 {
		t.Fatalf("das serve exited %d: %s", code, stderr)
	}
	r := das(t, nil, "consume", "--from", data)
	evs := consumed(t, r.stdout)
	if e := find(evs, func(e *event.Event) bool { return e.Command == "FAILED_CONNECT" }); e == nil || e.ExitCode != "1045" || e.DBUserName != testenv.TestUser || !strings.Contains(e.ErrorMessage, "Access denied") {
		t.Fatalf("FAILED_CONNECT: %+v\n%s", e, r.stdout)
	}
	q := find(evs, func(e *event.Event) bool { return strings.HasPrefix(e.CommandText, "SELECT @@version") })
	if q == nil || q.DatabaseName != testenv.TestDatabase || q.RowCount != 1 || !strings.Contains(q.ServerVersion, "MariaDB") {
		t.Fatalf("query event: %+v\n%s", q, r.stdout)
	}
}
