package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/das-mysql/das/internal/embeddb"
	"github.com/das-mysql/das/internal/event"
	"github.com/das-mysql/das/internal/testenv"
)

// startServe runs `das serve` and waits until it accepts connections. stop
// sends SIGTERM and returns the exit code and stderr.
func startServe(t *testing.T, args ...string) (addr string, stop func() (int, string)) {
	t.Helper()
	addr = fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	if !slices.Contains(args, "--admin-listen") {
		args = append(args, "--admin-listen", fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)))
	}
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
	// The wrong password's FAILED_CONNECT (a client that drops a connection
	// during its handshake is a FAILED_CONNECT too, with 2013).
	if e := find(evs, func(e *event.Event) bool { return e.Command == "FAILED_CONNECT" && e.ExitCode != "2013" }); e == nil || e.ExitCode != "1045" || e.DBUserName != testenv.TestUser || !strings.Contains(e.ErrorMessage, "Access denied") {
		t.Fatalf("FAILED_CONNECT: %+v\n%s", e, r.stdout)
	}
	q := find(evs, func(e *event.Event) bool { return strings.HasPrefix(e.CommandText, "SELECT @@version") })
	if q == nil || q.DatabaseName != testenv.TestDatabase || q.RowCount != 1 || !strings.Contains(q.ServerVersion, "MariaDB") {
		t.Fatalf("query event: %+v\n%s", q, r.stdout)
	}
}

func lookTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is missing: run scripts/install-test-deps.sh", name)
		}
		t.Skipf("%s is missing: run scripts/install-test-deps.sh", name)
	}
	return p
}

// TestServeSysbench runs sysbench oltp_read_write (prepared statements,
// transactions, 4 threads) through das against MariaDB: sysbench sees no
// error, and every statement it counts is in the stream.
func TestServeSysbench(t *testing.T) {
	sysbench := lookTool(t, "sysbench")
	db := testenv.MariaDB(t)
	data := t.TempDir()
	addr, stop := startServe(t, "--data-dir", data, "--upstream", db.Addr())
	host, port, _ := net.SplitHostPort(addr)
	args := []string{"oltp_read_write", "--db-driver=mysql", "--mysql-host=" + host, "--mysql-port=" + port,
		"--mysql-user=" + testenv.TestUser, "--mysql-password=" + db.UserPassword(), "--mysql-db=" + testenv.TestDatabase,
		"--tables=2", "--table-size=1000", "--threads=4", "--time=3", "--events=0", "--report-interval=0", "--mysql-ssl=off"}
	if out, err := exec.Command(sysbench, append(args, "prepare")...).CombinedOutput(); err != nil {
		t.Fatalf("sysbench prepare through das: %v\n%s", err, out)
	}
	out, err := exec.Command(sysbench, append(args, "run")...).CombinedOutput()
	if err != nil {
		t.Fatalf("sysbench run through das: %v\n%s", err, out)
	}
	var total, errs int
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 && f[0] == "total:" && total == 0 {
			fmt.Sscan(f[1], &total)
		}
		if len(f) >= 2 && f[0] == "ignored" && f[1] == "errors:" {
			fmt.Sscan(f[2], &errs)
		}
	}
	// Ignored errors are deadlocks that sysbench retries, as it does directly.
	if total < 100 || errs > total/100 {
		t.Fatalf("sysbench: %d queries, %d errors:\n%s", total, errs, out)
	}
	if code, stderr := stop(); code != 0 {
		t.Fatalf("das serve exited %d: %s", code, stderr)
	}
	r := das(t, nil, "consume", "--from", data, "--command", "QUERY")
	if r.code != 0 {
		t.Fatalf("consume: %s", r.stderr)
	}
	// The run phase's statements are those of its 4 sessions; sysbench
	// counts each executed statement once, BEGIN and COMMIT included.
	evs := consumed(t, r.stdout)
	runSessions := map[string]bool{}
	for _, e := range evs {
		if strings.HasPrefix(e.CommandText, "SELECT c FROM sbtest") {
			runSessions[e.SessionID] = true
		}
	}
	n := 0
	for _, e := range evs {
		if runSessions[e.SessionID] {
			n++
		}
	}
	if n < total || n > total+len(runSessions)*4 {
		t.Fatalf("the stream holds %d statements of the run's %d sessions; sysbench ran %d", n, len(runSessions), total)
	}
	// Each point select reads its table: an AUX READ names it, with the
	// statement's session and statement id.
	r = das(t, nil, "consume", "--from", data, "--class", "AUX")
	if r.code != 0 {
		t.Fatalf("consume --class AUX: %s", r.stderr)
	}
	reads := map[string]string{}
	for _, e := range consumed(t, r.stdout) {
		if e.Command == "READ" {
			reads[e.SessionID+"/"+strconv.FormatInt(e.StatementID, 10)] = e.ObjectName
		}
	}
	selects := 0
	for _, e := range evs {
		table, ok := strings.CutPrefix(e.CommandText, "SELECT c FROM ")
		if !ok || !runSessions[e.SessionID] || e.ExitCode != "0" {
			continue
		}
		table, _, _ = strings.Cut(table, " ")
		selects++
		if got := reads[e.SessionID+"/"+strconv.FormatInt(e.StatementID, 10)]; got != testenv.TestDatabase+"."+table {
			t.Fatalf("%q (session %s, statement %d): AUX READ %q, want %s.%s", e.CommandText, e.SessionID, e.StatementID, got, testenv.TestDatabase, table)
		}
	}
	if selects == 0 {
		t.Fatal("no point select in the stream")
	}
	if r := das(t, nil, "verify", "--from", data); r.code != 0 {
		t.Fatalf("verify: %s", r.stdout)
	}
	t.Logf("sysbench ran %d statements through das; %d events in the stream", total, n)
}

// TestServeUpstreamRestart restarts MariaDB under load: sessions that were
// open end with an event, new sessions work once it is back, das goes on.
func TestServeUpstreamRestart(t *testing.T) {
	db := testenv.MariaDB(t)
	data := t.TempDir()
	addr, stop := startServe(t, "--data-dir", data, "--upstream", db.Addr(), "--upstream-tls-ca", db.Certs().CAFile)
	pw := db.UserPassword()
	var lastErr string
	load := func(tag string, until time.Time) (ok, failed int) {
		for time.Now().Before(until) {
			out, err := mariadbCLI(t, addr, "-u", testenv.TestUser, "-p"+pw, testenv.TestDatabase,
				"-e", "SELECT '"+tag+"', SLEEP(0.05)")
			if err == nil && strings.Contains(out, tag) {
				ok++
			} else {
				failed++
				lastErr = fmt.Sprint(err, out)
			}
		}
		return
	}
	done := make(chan [2]int)
	go func() { o, f := load("during", time.Now().Add(3*time.Second)); done <- [2]int{o, f} }()
	time.Sleep(time.Second)
	db.Restart(t)
	during := <-done
	after, failed := load("after", time.Now().Add(time.Second))
	if after == 0 || failed != 0 {
		_, stderr := stop()
		t.Fatalf("after the restart %d sessions worked, %d failed: %s\ndas: %s", after, failed, lastErr, stderr)
	}
	if code, stderr := stop(); code != 0 {
		t.Fatalf("das serve exited %d: %s", code, stderr)
	}
	r := das(t, nil, "consume", "--from", data)
	evs := consumed(t, r.stdout)
	connects, disconnects := 0, 0
	for _, e := range evs {
		switch e.Command {
		case "CONNECT":
			connects++
		case "DISCONNECT":
			disconnects++
		}
	}
	if connects == 0 || disconnects != connects {
		t.Fatalf("%d CONNECT and %d DISCONNECT events: every session must end with one", connects, disconnects)
	}
	if r := das(t, nil, "verify", "--from", data); r.code != 0 {
		t.Fatalf("verify: %s", r.stdout)
	}
	t.Logf("during the restart: %d sessions ok, %d failed; after: %d ok", during[0], during[1], after)
}

// TestServeClearErrors: when das cannot complete a session (the database's
// certificate fails verification, the database is down), the real mariadb
// client shows das's reason, not a malformed packet.
func TestServeClearErrors(t *testing.T) {
	db := testenv.MariaDB(t)
	addr, stop := startServe(t, "--data-dir", t.TempDir(), "--upstream", db.Addr()) // no upstream CA given
	out, err := mariadbCLI(t, addr, "--ssl", "-u", testenv.TestUser, "-p"+db.UserPassword(), "-e", "SELECT 1")
	if err == nil || !strings.Contains(out, "das: TLS handshake with the server failed") || !strings.Contains(out, "certificate") {
		t.Fatalf("unverifiable upstream: %v %s", err, out)
	}
	db.Stop()
	out, err = mariadbCLI(t, addr, "-u", testenv.TestUser, "-p"+db.UserPassword(), "-e", "SELECT 1")
	if err == nil || !strings.Contains(out, "das: cannot connect to the server "+db.Addr()) {
		t.Fatalf("database down: %v %s", err, out)
	}
	if code, stderr := stop(); code != 0 {
		t.Fatalf("das serve exited %d: %s", code, stderr)
	}
}

// TestServeAdmin drives the stream through the admin API with the CLI verbs:
// describe, stop (the proxy keeps relaying, unrecorded; fail_closed refuses
// new sessions), start in sync mode (recorded again), and the events.
func TestServeAdmin(t *testing.T) {
	data := t.TempDir()
	var hookMu sync.Mutex
	var hooked []string
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev struct{ ID string }
		json.NewDecoder(r.Body).Decode(&ev)
		hookMu.Lock()
		hooked = append(hooked, ev.ID)
		hookMu.Unlock()
	}))
	defer hook.Close()
	adminAddr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	addr, stop := startServe(t, "--data-dir", data, "--admin-listen", adminAddr, "--fail-closed", "--webhooks", hook.URL)
	cli := func(args ...string) result {
		return das(t, nil, append(args, "--admin", adminAddr, "--data-dir", data)...)
	}
	login := []string{"-u", embeddb.DefaultUser, "-p" + embeddb.DefaultPassword, embeddb.DefaultDatabase}
	r := cli("describe-activity-streams", "--json")
	if r.code != 0 || !strings.Contains(r.stdout, `"Status": "started"`) && !strings.Contains(r.stdout, `"Status":"started"`) {
		t.Fatalf("describe: %d %s %s", r.code, r.stdout, r.stderr)
	}
	if st, _ := os.Stat(filepath.Join(data, "admin.token")); st == nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("admin token file: %v", st)
	}
	if out, err := mariadbCLI(t, addr, append(login, "-e", "SELECT 'recorded-1'")...); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	if r := cli("stop-activity-stream"); r.code != 0 {
		t.Fatalf("stop: %s %s", r.stdout, r.stderr)
	}
	if r := cli("stop-activity-stream"); r.code != 0 || !strings.Contains(r.stdout+r.stderr, "already") {
		t.Fatalf("stopping a stopped stream must be a clear idempotent answer: %d %s %s", r.code, r.stdout, r.stderr)
	}
	out, err := mariadbCLI(t, addr, append(login, "-e", "SELECT 'refused'")...)
	if err == nil || !strings.Contains(out, "not recording") {
		t.Fatalf("fail_closed let a session in while stopped: %v %s", err, out)
	}
	if r := cli("start-activity-stream", "--mode", "sync"); r.code != 0 {
		t.Fatalf("start: %s %s", r.stdout, r.stderr)
	}
	if out, err := mariadbCLI(t, addr, append(login, "-e", "SELECT 'recorded-2'")...); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	r = cli("describe-activity-streams")
	if !strings.Contains(r.stdout, "sync") {
		t.Fatalf("describe after start --mode sync: %s", r.stdout)
	}
	// Bad token: 401, nothing changes.
	bad := filepath.Join(t.TempDir(), "bad.token")
	os.WriteFile(bad, []byte("not-the-token-0123456789"), 0o600)
	if r := das(t, nil, "stop-activity-stream", "--admin", adminAddr, "--admin-token-file", bad); r.code == 0 {
		t.Fatal("a bad token stopped the stream")
	}
	code, stderr := stop()
	if code != 0 {
		t.Fatalf("das serve exited %d: %s", code, stderr)
	}
	for _, id := range []string{"DAS-EVENT-0002", "DAS-EVENT-0003", "DAS-EVENT-0004", "DAS-EVENT-0040", "DAS-EVENT-0041"} {
		if !strings.Contains(stderr, id) {
			t.Errorf("event %s was not logged", id)
		}
	}
	// The webhook received the lifecycle in order (das flushes it at exit).
	hookMu.Lock()
	got := strings.Join(hooked, " ")
	hookMu.Unlock()
	want := "DAS-EVENT-0001 DAS-EVENT-0002 DAS-EVENT-0041 DAS-EVENT-0003 DAS-EVENT-0004 DAS-EVENT-0040 DAS-EVENT-0001 DAS-EVENT-0002 DAS-EVENT-0041"
	if !strings.HasPrefix(got, want) {
		t.Fatalf("webhook got %q, want it to start with %q", got, want)
	}
	r = das(t, nil, "consume", "--from", data)
	if !strings.Contains(r.stdout, "recorded-1") || !strings.Contains(r.stdout, "recorded-2") || strings.Contains(r.stdout, "'refused'") {
		t.Fatalf("stream content: %s", r.stdout)
	}
}

// TestServeKinesis streams the proxy's activity to a real Kinesis API server
// (kinesalite) under DAS's stream name, and reads it back from there.
func TestServeKinesis(t *testing.T) {
	endpoint := testenv.Kinesalite(t)
	data := t.TempDir()
	sink := "kinesis://?region=" + testenv.Region + "&endpoint=" + endpoint
	addr, stop := startServe(t, "--data-dir", data, "--sink", sink)
	login := []string{"-u", embeddb.DefaultUser, "-p" + embeddb.DefaultPassword, embeddb.DefaultDatabase}
	if out, err := mariadbCLI(t, addr, append(login, "-e", "SELECT 'to-kinesis'")...); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	if code, stderr := stop(); code != 0 {
		t.Fatalf("das serve exited %d: %s", code, stderr)
	}
	id, _ := os.ReadFile(filepath.Join(data, "stream-id"))
	from := "kinesis://aws-rds-das-" + strings.TrimSpace(string(id)) + "?region=" + testenv.Region + "&endpoint=" + endpoint
	r := das(t, nil, "consume", "--from", from, "--data-dir", data)
	if r.code != 0 || !strings.Contains(r.stdout, "to-kinesis") {
		t.Fatalf("consume from Kinesis: %d %s %s", r.code, r.stdout, r.stderr)
	}
	if r := das(t, nil, "verify", "--from", from, "--data-dir", data); r.code != 0 || !strings.HasPrefix(r.stdout, "intact:") {
		t.Fatalf("verify from Kinesis: %d %s %s", r.code, r.stdout, r.stderr)
	}
}

// TestServeKafka streams the proxy's activity to a Kafka cluster (franz-go's
// kfake, a real Kafka wire-protocol implementation on loopback) and reads it
// back from the topic.
func TestServeKafka(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.DefaultNumPartitions(2))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	brokers := strings.Join(cluster.ListenAddrs(), ",")
	data := t.TempDir()
	addr, stop := startServe(t, "--data-dir", data, "--sink", "kafka://"+brokers+"/das-activity", "--mode", "sync")
	login := []string{"-u", embeddb.DefaultUser, "-p" + embeddb.DefaultPassword, embeddb.DefaultDatabase}
	if out, err := mariadbCLI(t, addr, append(login, "-e", "SELECT 'to-kafka'")...); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	if code, stderr := stop(); code != 0 {
		t.Fatalf("das serve exited %d: %s", code, stderr)
	}
	from := "kafka://" + brokers + "/das-activity"
	r := das(t, nil, "consume", "--from", from, "--data-dir", data)
	if r.code != 0 || !strings.Contains(r.stdout, "to-kafka") {
		t.Fatalf("consume from Kafka: %d %s %s", r.code, r.stdout, r.stderr)
	}
	if r := das(t, nil, "verify", "--from", from, "--data-dir", data); r.code != 0 || !strings.HasPrefix(r.stdout, "intact:") {
		t.Fatalf("verify from Kafka: %d %s %s", r.code, r.stdout, r.stderr)
	}
}

// TestServeAuditLog follows MariaDB's server_audit log beside the proxy: a
// statement through das appears from both sources, tagged; one that bypasses
// das (run directly against the server) appears from the audit log; after a
// restart of das the tailer resumes with nothing lost or repeated.
func TestServeAuditLog(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "audit", "server_audit.log")
	os.MkdirAll(filepath.Dir(logPath), 0o755)
	db := testenv.MariaDB(t, testenv.MariaDBArgs("--plugin-load-add=server_audit", "--server-audit-logging=ON",
		"--server-audit-file-path="+logPath, "--server-audit-file-rotate-size=4000",
		"--server-audit-file-rotations=20", "--server-audit-events=CONNECT,QUERY"))
	data := t.TempDir()
	args := []string{"--data-dir", data, "--upstream", db.Addr(), "--upstream-tls", "off", "--audit-log", logPath}
	addr, stop := startServe(t, args...)
	login := []string{"-u", testenv.TestUser, "-p" + db.UserPassword(), testenv.TestDatabase}
	if out, err := mariadbCLI(t, addr, append(login, "-e", "SELECT 'through-das'")...); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	var direct []string
	for i := range 20 {
		q := fmt.Sprintf("SELECT 'bypass-%d'", i)
		direct = append(direct, q)
		if out, err := mariadbCLI(t, db.Addr(), append(login, "-e", q)...); err != nil {
			t.Fatalf("%v %s", err, out)
		}
	}
	time.Sleep(time.Second) // the tailer polls the file
	if code, stderr := stop(); code != 0 {
		t.Fatalf("das serve exited %d: %s", code, stderr)
	}
	// More activity while das is down, then das again: it resumes.
	for i := 20; i < 40; i++ {
		q := fmt.Sprintf("SELECT 'bypass-%d'", i)
		direct = append(direct, q)
		if out, err := mariadbCLI(t, db.Addr(), append(login, "-e", q)...); err != nil {
			t.Fatalf("%v %s", err, out)
		}
	}
	_, stop = startServe(t, args...)
	time.Sleep(2 * time.Second)
	if code, stderr := stop(); code != 0 {
		t.Fatalf("das serve exited %d: %s", code, stderr)
	}

	r := das(t, nil, "consume", "--from", data, "--command", "QUERY")
	if r.code != 0 {
		t.Fatalf("consume: %s", r.stderr)
	}
	count := map[string]map[string]int{}
	for _, e := range consumed(t, r.stdout) {
		src := strings.Trim(string(e.Extra.Get("dasSource")), `"`)
		if count[e.CommandText] == nil {
			count[e.CommandText] = map[string]int{}
		}
		count[e.CommandText][src]++
	}
	if c := count["SELECT 'through-das'"]; c["proxy"] != 1 || c["server_audit"] != 1 {
		t.Fatalf("a statement through das: %v, want once from each source", c)
	}
	for _, q := range direct {
		if c := count[q]; c["server_audit"] != 1 || c["proxy"] != 0 {
			t.Errorf("%s: %v, want exactly once from server_audit", q, c)
		}
	}
	if r := das(t, nil, "verify", "--from", data); r.code != 0 {
		t.Fatalf("verify: %s", r.stdout)
	}
}
