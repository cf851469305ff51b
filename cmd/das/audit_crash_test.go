package main

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"

	"github.com/das-mysql/das/internal/admin"
	"github.com/das-mysql/das/internal/auditlog"
	"github.com/das-mysql/das/internal/event"
	"github.com/das-mysql/das/internal/testenv"
)

// lockedBuffer collects a child's stderr while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// auditServe is a `das serve --listen ""` process: no proxy, only audit
// logs, so there is no MySQL port to wait for; ready once its admin API
// answers. Unlike startServe's, it can be killed with SIGKILL.
type auditServe struct {
	cmd    *exec.Cmd
	done   chan struct{}
	stderr *lockedBuffer
	admin  string
}

func startAuditServe(t *testing.T, args ...string) *auditServe {
	t.Helper()
	return startAuditServeEnv(t, nil, args...)
}

// startAuditServeEnv is startAuditServe with env added to das's environment.
func startAuditServeEnv(t *testing.T, env []string, args ...string) *auditServe {
	t.Helper()
	s := &auditServe{done: make(chan struct{}), stderr: &lockedBuffer{},
		admin: fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))}
	s.cmd = exec.Command(dasBin, append([]string{"serve", "--listen", "", "--admin-listen", s.admin}, args...)...)
	s.cmd.Env = append(os.Environ(), env...)
	s.cmd.Stderr = s.stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.cmd.Wait(); close(s.done) }()
	t.Cleanup(s.kill)
	hc := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if resp, err := hc.Get("http://" + s.admin + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				checkBatchScheduled(t, s.cmd.Process.Pid)
				return s
			}
		}
		select {
		case <-s.done:
			t.Fatalf("das serve exited: %s", s.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("das serve's admin API does not answer on %s: %s", s.admin, s.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill is kill -9: no final flush, no final checkpoint.
func (s *auditServe) kill() {
	select {
	case <-s.done:
		return
	default:
	}
	s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.done
}

// stop sends SIGTERM and returns the exit code.
func (s *auditServe) stop(t *testing.T) int {
	t.Helper()
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(60 * time.Second):
		s.kill()
		t.Errorf("das serve did not stop within 60s of SIGTERM")
	}
	return s.cmd.ProcessState.ExitCode()
}

// counters are the stream's counters from the admin API, the audit-log
// tailers' progress among them (audit_lines, audit_lag_bytes).
func (s *auditServe) counters(t *testing.T, data string) map[string]uint64 {
	t.Helper()
	tok, err := admin.LoadToken(data, "")
	if err != nil {
		t.Fatal(err)
	}
	// A loaded machine may keep das from answering for a while.
	var list []admin.StreamStatus
	for try := 0; ; try++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		list, err = admin.NewClient(s.admin, tok, nil).DescribeActivityStreams(ctx)
		cancel()
		if err == nil && len(list) == 1 {
			return list[0].Counters
		}
		if try == 2 {
			t.Fatalf("describe: %v %v\n%s", list, err, s.stderr.String())
		}
	}
}

// auditFiles are the server_audit log and its rotations, oldest first.
func auditFiles(path string) []string {
	m, _ := filepath.Glob(path + ".*")
	sort.Sort(sort.Reverse(sort.StringSlice(m)))
	if _, err := os.Stat(path); err == nil {
		m = append(m, path)
	}
	return m
}

var markerRE = regexp.MustCompile(`mk_[gce]\d+_\d+_\d+`)

// TestServeAuditLogCrash is issue #6's acceptance test: das serve follows a
// MariaDB server_audit log that rotates every few kB (by size, by
// server_audit_file_rotate_now and by FLUSH LOGS) while many sessions run
// DDL, multi-line statements and strings with quotes, backslashes and
// newlines, and log in with wrong passwords; das is killed with SIGKILL
// mid-stream three times and restarted. Afterwards every line of the
// server's files is in the stream exactly once, every statement with the
// text it was sent with, and the stream verifies.
func TestServeAuditLogCrash(t *testing.T) {
	lookTool(t, "mariadb")
	dir := t.TempDir()
	logPath := filepath.Join(dir, "audit", "server_audit.log")
	if err := os.Mkdir(filepath.Dir(logPath), 0o755); err != nil {
		t.Fatal(err)
	}
	// 999 rotations (numbered .001 ...): nothing is deleted, so the files
	// are the whole truth.
	db := testenv.MariaDB(t, testenv.MariaDBArgs("--plugin-load-add=server_audit", "--server-audit-logging=ON",
		"--server-audit-file-path="+logPath, "--server-audit-file-rotate-size=4000",
		"--server-audit-file-rotations=999", "--server-audit-events=CONNECT,QUERY"))
	root, err := sql.Open("mysql", db.RootDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	root.SetMaxOpenConns(1)

	data := t.TempDir()
	args := []string{"--data-dir", data, "--audit-log", logPath}
	srv := startAuditServe(t, args...)
	servers := []*auditServe{srv}

	// Whether FLUSH LOGS rotates the audit log depends on the server.
	before := len(auditFiles(logPath))
	if _, err := root.Exec("FLUSH LOGS"); err != nil {
		t.Fatal(err)
	}
	flushRotates := len(auditFiles(logPath)) > before

	var (
		mu     sync.Mutex
		want   = map[string]string{} // marker -> SQL as sent ("" for the client's, which it may reformat)
		maybe  = map[string]bool{}   // failed in transit: may or may not have run
		failed = map[string]int{}    // user -> failed logins
	)
	add := func(m, q string) {
		mu.Lock()
		want[m] = q
		mu.Unlock()
	}
	const (
		goWorkers, goSessions, goStatements = 4, 8, 24
		cliWorkers, cliSessions             = 2, 12
		pace                                = 40 * time.Millisecond
	)
	total := int64(goWorkers*goSessions*goStatements + cliWorkers*cliSessions*5)
	var progress atomic.Int64
	// The workload waits while a killed das is starting again: on a loaded
	// machine a restart can outlast the paced workload, and then no kill
	// would happen mid-workload.
	var restarting atomic.Bool
	waitUp := func() {
		for restarting.Load() {
			time.Sleep(5 * time.Millisecond)
		}
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	for w := range goWorkers {
		wg.Go(func() {
			for s := range goSessions {
				conn, err := sql.Open("mysql", db.UserDSN())
				if err != nil {
					t.Error(err)
					return
				}
				conn.SetMaxOpenConns(1)
				tb := fmt.Sprintf("t_g%d_%d", w, s)
				for i := range goStatements {
					waitUp()
					m := fmt.Sprintf("mk_g%d_%d_%d", w, s, i)
					var q string
					wantErr := false
					switch {
					case i == 0:
						q = fmt.Sprintf("CREATE TABLE %s (id INT PRIMARY KEY, v TEXT) COMMENT '%s'", tb, m)
					case i == goStatements-1:
						q = fmt.Sprintf("DROP TABLE IF EXISTS %s, %s", tb, m)
					case i%6 == 1:
						q = fmt.Sprintf("INSERT INTO %s (id, v) VALUES (%d, '%s: it''s a \\\\ back\\\\slash\nsecond \"line\" \\'q\\'\ttab é€')", tb, i, m)
					case i%6 == 2:
						q = fmt.Sprintf("SELECT id,\n       v\nFROM %s\nWHERE v <> '%s'\n  AND id >= 0\nORDER BY id", tb, m)
					case i%6 == 3:
						q = fmt.Sprintf("UPDATE %s SET v = CONCAT(v, ' upd %s\\n') WHERE id > 0", tb, m)
					case i%6 == 4:
						q = fmt.Sprintf("ALTER TABLE %s ADD COLUMN c_%s INT", tb, m)
					case i%6 == 5:
						q, wantErr = fmt.Sprintf("SELECT v FROM no_such_%s", m), true
					default:
						q = fmt.Sprintf("SELECT '%s' AS m, \"dq\"\"x\" AS d, 'back\\\\' AS b", m)
					}
					_, err := conn.ExecContext(ctx, q)
					switch {
					case wantErr && (err == nil || !strings.Contains(err.Error(), "1146")):
						t.Errorf("%s: %v, want error 1146", q, err)
					case !wantErr && err != nil:
						// A loaded machine may reset a connection: the
						// statement may or may not have run.
						t.Logf("%s: %v", m, err)
						mu.Lock()
						maybe[m] = true
						mu.Unlock()
						progress.Add(1)
						continue
					}
					add(m, q)
					progress.Add(1)
					time.Sleep(pace)
				}
				conn.Close()
			}
		})
	}
	for c := range cliWorkers {
		wg.Go(func() {
			for s := range cliSessions {
				waitUp()
				m := func(k int) string { return fmt.Sprintf("mk_c%d_%d_%d", c, s, k) }
				tb := fmt.Sprintf("t_c%d_%d", c, s)
				script := fmt.Sprintf("CREATE TABLE %[1]s (a INT, b TEXT) COMMENT '%[2]s';\n"+
					"INSERT INTO %[1]s VALUES (1, '%[3]s it''s \\\\ \"q\"\nnext line');\n"+
					"SELECT a,\n  b\nFROM %[1]s\nWHERE b LIKE '%%%[4]s%%';\n"+
					"ALTER TABLE %[1]s COMMENT = '%[5]s';\n"+
					"DROP TABLE IF EXISTS %[1]s, %[6]s;\n", tb, m(0), m(1), m(2), m(3), m(4))
				out, err := mariadbCLI(t, db.Addr(), "-u", testenv.TestUser, "-p"+db.UserPassword(), testenv.TestDatabase, "-e", script)
				if err != nil {
					t.Errorf("mariadb: %v %s", err, out)
				}
				for k := range 5 {
					add(m(k), "")
				}
				progress.Add(5)
				time.Sleep(15 * pace)
			}
		})
	}
	// Failed logins: wrong passwords for a real user, and unknown users,
	// through the driver and the client.
	wg.Go(func() {
		for k := range 8 {
			user, pw := testenv.TestUser, fmt.Sprintf("wrong-%d", k)
			if k%4 >= 2 {
				user = fmt.Sprintf("nobody_%d", k)
			}
			var out string
			var err error
			if k%2 == 0 {
				var bad *sql.DB
				if bad, err = sql.Open("mysql", fmt.Sprintf("%s:%s@tcp(%s)/", user, pw, db.Addr())); err == nil {
					err = bad.Ping()
					bad.Close()
				}
			} else {
				out, err = mariadbCLI(t, db.Addr(), "-u", user, "-p"+pw, "-e", "SELECT 1")
			}
			if err == nil || !strings.Contains(err.Error()+out, "1045") {
				t.Errorf("login as %s with a wrong password: %v %s", user, err, out)
			}
			mu.Lock()
			failed[user]++
			mu.Unlock()
			time.Sleep(25 * pace)
		}
	})
	workDone := make(chan struct{})
	go func() { wg.Wait(); close(workDone) }()
	// Forced rotations, alternating the two ways, until the workload ends.
	var forced atomic.Int64
	rotDone := make(chan struct{})
	go func() {
		defer close(rotDone)
		for i := 0; ; i++ {
			select {
			case <-workDone:
				return
			case <-time.After(250 * time.Millisecond):
			}
			q := "SET GLOBAL server_audit_file_rotate_now=ON"
			if i%2 == 1 && flushRotates {
				q = "FLUSH LOGS"
			}
			if _, err := root.Exec(q); err != nil {
				t.Error(err)
				return
			}
			forced.Add(1)
		}
	}()

	// SIGKILL das mid-stream, each time once it has read something: while
	// the workload runs, and once after a second down, so that it restarts
	// behind, across rotations, and is killed again while it catches up.
	kills := []struct {
		at   int64 // statements run
		down time.Duration
	}{{total / 5, 0}, {2 * total / 5, time.Second}, {0, 0}, {7 * total / 10, 0}}
	midWorkload := 0
	for k, kill := range kills {
		deadline := time.Now().Add(30 * time.Second)
		var c map[string]uint64
		for {
			c = srv.counters(t, data)
			if progress.Load() >= kill.at && c["audit_lines"] >= 20 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("kill %d: no progress (%d of %d statements, das counters %v)\n%s", k+1, progress.Load(), total, c, srv.stderr.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
		if progress.Load() < total {
			midWorkload++
		}
		t.Logf("kill %d at %d of %d statements: das read %d lines, %d events in, %d durable, lag %d bytes",
			k+1, progress.Load(), total, c["audit_lines"], c["events_in"], c["events_durable"], c["audit_lag_bytes"])
		srv.kill()
		time.Sleep(kill.down)
		restarting.Store(true)
		srv = startAuditServe(t, args...)
		restarting.Store(false)
		servers = append(servers, srv)
	}
	if midWorkload < 2 {
		t.Errorf("only %d kills while the workload ran: make it longer", midWorkload)
	}
	<-workDone
	<-rotDone
	if _, err := root.Exec("SELECT 'mk_e0_0_0'"); err != nil {
		t.Fatal(err)
	}
	add("mk_e0_0_0", "SELECT 'mk_e0_0_0'")
	dump := func() {
		for i, s := range servers {
			t.Logf("das serve #%d stderr:\n%s", i, s.stderr.String())
		}
	}

	// Caught up: no lag and no new line over several polls (longer than
	// the tailer's scan interval).
	deadline := time.Now().Add(30 * time.Second)
	var last uint64
	for still := 0; still < 5; {
		c := srv.counters(t, data)
		if c["audit_lag_bytes"] == 0 && c["audit_lines"] == last {
			still++
		} else {
			still = 0
		}
		last = c["audit_lines"]
		if time.Now().After(deadline) {
			dump()
			t.Fatalf("das does not catch up: %v", c)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// And what it read is durable before any shutdown flush: records are
	// sealed within the linger, not held until das stops.
	for c := srv.counters(t, data); c["events_durable"] < c["events_in"]; c = srv.counters(t, data) {
		if time.Now().After(deadline) {
			dump()
			t.Fatalf("caught up, but events wait: %v", c)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code := srv.stop(t); code != 0 {
		dump()
		t.Fatalf("das serve exited %d", code)
	}

	// The server's files, and who they are: server_audit's racing
	// rotations sometimes rename a file over another one, whose lines das
	// may have read before they vanished.
	files := auditFiles(logPath)
	type fileKey struct {
		dev, ino uint64
		born     int64
	}
	live := map[fileKey]bool{}
	for _, f := range files {
		if id, err := auditlog.FileOf(f); err == nil {
			live[fileKey{id.Dev, id.Inode, id.Born}] = true
		}
	}
	fileLines := 0
	ops := map[string]int{}
	inFiles := map[string]int{}     // marker -> lines
	failedLines := map[string]int{} // user -> FAILED_CONNECT lines
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n")) {
			if len(l) == 0 {
				continue
			}
			fileLines++
			r, err := auditlog.ParseLine(l, time.Local)
			if err != nil {
				t.Errorf("%s: server line %q: %v", filepath.Base(f), l, err)
				continue
			}
			ops[r.Operation]++
			switch r.Operation {
			case "QUERY":
				for _, m := range markerRE.FindAllString(r.Object, -1) {
					inFiles[m]++
				}
			case "FAILED_CONNECT":
				failedLines[r.User]++
			}
		}
	}

	// The stream.
	r := das(t, nil, "consume", "--from", data)
	if r.code != 0 {
		t.Fatalf("consume: %d %s", r.code, r.stderr)
	}
	evs := consumed(t, r.stdout)
	positions := map[string]int{}
	vanished := 0
	got := map[string]int{}
	texts := map[string]string{}
	failedEvents := map[string]int{}
	nQueries := 0
	for _, e := range evs {
		if src := strings.Trim(string(e.Extra.Get("dasSource")), `"`); src != auditlog.Source {
			t.Errorf("an event from %q: %s %s", src, e.Command, e.CommandText)
			continue
		}
		if e.Command == auditlog.CommandWarning || e.Command == auditlog.CommandUnparsed {
			t.Errorf("%s event: %s %s %s", e.Command, e.Extra.Get("dasWarning"), e.ErrorMessage, e.CommandText)
			continue
		}
		p, ok := auditlog.PositionOf(&e)
		if !ok {
			t.Errorf("an event without its position: %+v", e)
			continue
		}
		positions[p.String()]++
		if len(live) > 0 && !live[fileKey{p.Dev, p.Inode, p.Born}] {
			vanished++ // read from a file the server replaced since
			continue
		}
		switch e.Command {
		case event.CommandQuery:
			nQueries++
			for _, m := range markerRE.FindAllString(e.CommandText, -1) {
				got[m]++
				texts[m] = e.CommandText
			}
		case event.CommandFailedConnect:
			failedEvents[e.DBUserName]++
		}
	}
	dups := 0
	for p, n := range positions {
		if n != 1 {
			if dups++; dups <= 10 {
				t.Errorf("the line ending at %s was delivered %d times", p, n)
			}
		}
	}
	if vanished > 0 {
		t.Logf("%d lines delivered from files the server replaced after das read them", vanished)
		if vanished > fileLines/10 {
			t.Errorf("%d lines delivered from files that are gone, against %d in the files: more than rotation races explain", vanished, fileLines)
		}
	}
	if len(positions)-vanished != fileLines {
		t.Errorf("%d lines delivered (%d from files gone since), the server's %d files hold %d", len(positions), vanished, len(files), fileLines)
	}
	if nQueries != ops["QUERY"] {
		t.Errorf("%d QUERY events from server_audit, the files hold %d QUERY lines", nQueries, ops["QUERY"])
	}
	// server_audit itself drops the events of sessions that run while it
	// rotates on request (it stops logging meanwhile): those are in no file
	// and cannot be in the stream.
	droppedByServer, bad := 0, 0
	for m, q := range want {
		if inFiles[m] == 0 {
			droppedByServer++
			if got[m] != 0 {
				t.Errorf("statement %s is in the stream %d times but in no file", m, got[m])
			}
			continue
		}
		if inFiles[m] != 1 || got[m] != 1 {
			if bad++; bad <= 10 {
				t.Errorf("statement %s: %d times in the stream, %d in the files, want once", m, got[m], inFiles[m])
			}
			continue
		}
		// The server drops trailing whitespace.
		if q != "" && texts[m] != strings.TrimRight(q, " \n") {
			t.Errorf("statement %s reads\n%q\nwas sent as\n%q", m, texts[m], q)
		}
	}
	for m := range maybe {
		if got[m] > 1 || got[m] != inFiles[m] {
			t.Errorf("statement %s (its connection failed): %d times in the stream, %d in the files", m, got[m], inFiles[m])
		}
	}
	for m := range got {
		if _, ok := want[m]; !ok && !maybe[m] {
			t.Errorf("the stream holds a statement %s that the workload did not run", m)
		}
	}
	for user, n := range failedLines {
		if failedEvents[user] != n {
			t.Errorf("%s: %d FAILED_CONNECT lines, %d events", user, n, failedEvents[user])
		}
	}
	for user, n := range failed {
		if failedLines[user] > n {
			t.Errorf("%s: %d failed logins, %d FAILED_CONNECT lines", user, n, failedLines[user])
		}
		droppedByServer += n - failedLines[user]
	}
	if droppedByServer > len(want)/20 {
		t.Errorf("server_audit dropped %d of %d statements: more than its rotation race explains", droppedByServer, len(want))
	}
	if len(files) < 20 {
		t.Errorf("only %d audit files: the test wants many rotations", len(files))
	}
	if r := das(t, nil, "verify", "--from", data); r.code != 0 || !strings.HasPrefix(r.stdout, "intact:") {
		t.Errorf("verify: %d %s %s", r.code, r.stdout, r.stderr)
	}
	if t.Failed() {
		dump()
	}
	t.Logf("%d statements (%d lost in transit), %d failed logins, %d not written by server_audit; %d kills; "+
		"%d files (%d forced rotations, FLUSH LOGS rotates: %v); %d lines, %d events, operations %v",
		len(want), len(maybe), 8, droppedByServer, len(kills), len(files), forced.Load(), flushRotates, fileLines, len(evs), ops)
}

// TestServeAuditMaxLine: audit_max_line reaches the tailer. A line longer
// than it arrives cut to it and flagged dasLineCut; a short one whole.
func TestServeAuditMaxLine(t *testing.T) {
	logPath := filepath.Join(t.TempDir(), "server_audit.log")
	long := `20261125 16:54:04,vm,u,h,1,2,QUERY,d,'SELECT \'` + strings.Repeat("x", 3000) + `\'',0`
	lines := `20261125 16:54:04,vm,u,h,1,1,QUERY,d,'SELECT \'short\'',0` + "\n" + long + "\n"
	if err := os.WriteFile(logPath, []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	srv := startAuditServe(t, "--data-dir", data, "--audit-log", logPath, "--audit-max-line", "2KiB")
	deadline := time.Now().Add(30 * time.Second)
	for c := srv.counters(t, data); c["audit_lines"] < 2 || c["events_durable"] < c["events_in"]; c = srv.counters(t, data) {
		if time.Now().After(deadline) {
			t.Fatalf("the lines are not durable: %v\n%s", c, srv.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code := srv.stop(t); code != 0 {
		t.Fatalf("das serve exited %d: %s", code, srv.stderr.String())
	}
	r := das(t, nil, "consume", "--from", data)
	if r.code != 0 {
		t.Fatalf("consume: %d %s", r.code, r.stderr)
	}
	var short, cut *event.Event
	for _, e := range consumed(t, r.stdout) {
		switch {
		case e.CommandText == "SELECT 'short'":
			short = &e
		case strings.HasPrefix(e.CommandText, "SELECT 'xxx"):
			cut = &e
		}
	}
	if short == nil || cut == nil {
		t.Fatalf("events missing from the stream: short %v, long %v\n%s", short != nil, cut != nil, r.stdout)
	}
	if short.Extra.Has("dasLineCut") {
		t.Errorf("the short line is flagged dasLineCut")
	}
	if !cut.Extra.Has("dasLineCut") || len(cut.CommandText) >= 2048 {
		t.Errorf("the %d-byte line: dasLineCut %v, %d bytes of text; want it cut at 2KiB", len(long), cut.Extra.Has("dasLineCut"), len(cut.CommandText))
	}
}

// TestServeAuditTimeZone: server_audit writes the server's local time; das
// reads it in audit_time_zone (default Local, das's own zone), so an
// event's logTime is the instant the server meant even where das runs in
// another zone (here TZ=Asia/Tokyo, UTC+9; the server in New York, UTC-5
// in November).
func TestServeAuditTimeZone(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string // logTime of a line written at 20261125 16:54:04
	}{
		{name: "default: das's own zone", want: "2026-11-25T07:54:04Z"},
		{name: "the server's zone", args: []string{"--audit-time-zone", "America/New_York"}, want: "2026-11-25T21:54:04Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logPath := filepath.Join(t.TempDir(), "server_audit.log")
			line := `20261125 16:54:04,vm,u,h,1,1,QUERY,d,'SELECT \'zone\'',0` + "\n"
			if err := os.WriteFile(logPath, []byte(line), 0o600); err != nil {
				t.Fatal(err)
			}
			data := t.TempDir()
			srv := startAuditServeEnv(t, []string{"TZ=Asia/Tokyo"}, append([]string{"--data-dir", data, "--audit-log", logPath}, tt.args...)...)
			deadline := time.Now().Add(30 * time.Second)
			for c := srv.counters(t, data); c["audit_lines"] < 1 || c["events_durable"] < c["events_in"]; c = srv.counters(t, data) {
				if time.Now().After(deadline) {
					t.Fatalf("the line is not durable: %v\n%s", c, srv.stderr.String())
				}
				time.Sleep(20 * time.Millisecond)
			}
			if code := srv.stop(t); code != 0 {
				t.Fatalf("das serve exited %d: %s", code, srv.stderr.String())
			}
			r := das(t, nil, "consume", "--from", data)
			if r.code != 0 {
				t.Fatalf("consume: %d %s", r.code, r.stderr)
			}
			var got []string
			for _, e := range consumed(t, r.stdout) {
				if e.CommandText == "SELECT 'zone'" {
					got = append(got, e.LogTime.UTC().Format(time.RFC3339))
				}
			}
			if len(got) != 1 || got[0] != tt.want {
				t.Errorf("logTime %v, want [%s]", got, tt.want)
			}
		})
	}
}
