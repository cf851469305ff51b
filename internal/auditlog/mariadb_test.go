package auditlog

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"

	"github.com/das-mysql/das/internal/event"
	"github.com/das-mysql/das/internal/testenv"
)

// fileSink is a durable sink for the helper process: JSON lines, group
// commit (one write + fsync per group), acks after the fsync.
type fileSink struct {
	mu      sync.Mutex
	f       *os.File
	w       *bufio.Writer
	pending []func()
}

func (s *fileSink) Submit(_ context.Context, evs []event.Event, ack func()) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range evs {
		s.w.Write(evs[i].AppendJSON(nil))
		s.w.WriteByte('\n')
	}
	s.pending = append(s.pending, ack)
	if len(s.pending) >= 64 {
		return s.flushLocked()
	}
	return nil
}

func (s *fileSink) flush() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.flushLocked()
}

func (s *fileSink) flushLocked() error {
	if len(s.pending) == 0 {
		return nil
	}
	if err := s.w.Flush(); err != nil {
		return err
	}
	if err := s.f.Sync(); err != nil {
		return err
	}
	for _, a := range s.pending {
		a()
	}
	s.pending = s.pending[:0]
	return nil
}

// recoverSink cuts a torn last line and returns the positions of the last
// events, as das recovers its DurableFloor from its stream.
func recoverSink(path string) ([]Position, error) {
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	if i := bytes.LastIndexByte(b, '\n'); i+1 != len(b) {
		b = b[:i+1]
		if err := os.Truncate(path, int64(len(b))); err != nil {
			return nil, err
		}
	}
	lines := bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n"))
	var floor []Position
	for i := max(0, len(lines)-500); i < len(lines); i++ {
		var e event.Event
		if json.Unmarshal(lines[i], &e) == nil {
			if p, ok := PositionOf(&e); ok {
				floor = append(floor, p)
			}
		}
	}
	return floor, nil
}

// TestHelperTailer is the das stand-in that TestMariaDBExactlyOnce starts
// and kills with SIGKILL; it does nothing in a normal test run.
func TestHelperTailer(t *testing.T) {
	if os.Getenv("AUDITLOG_HELPER") != "1" {
		return
	}
	sinkPath := os.Getenv("AUDITLOG_SINK")
	floor, err := recoverSink(sinkPath)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(sinkPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	sink := &fileSink{f: f, w: bufio.NewWriterSize(f, 1<<20)}
	tl, err := New(Options{
		Path: os.Getenv("AUDITLOG_PATH"), StateDir: os.Getenv("AUDITLOG_STATE"),
		Start: StartOldest, DurableFloor: floor, Poll: 10 * time.Millisecond,
		// A long interval leaves many durable events past the checkpoint at
		// the kill: the floor must keep them from coming twice.
		CheckpointInterval: 700 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	go func() {
		for ctx.Err() == nil {
			time.Sleep(5 * time.Millisecond)
			if err := sink.flush(); err != nil {
				panic(err)
			}
		}
	}()
	fmt.Fprintf(os.Stderr, "helper: floor %d positions\n", len(floor))
	if err := tl.Run(ctx, sink); err != nil {
		t.Fatal(err)
	}
	if err := sink.flush(); err != nil {
		t.Fatal(err)
	}
	if err := tl.SaveCheckpoint(); err != nil {
		t.Fatal(err)
	}
}

type helper struct {
	cmd *exec.Cmd
	out bytes.Buffer
}

func startHelper(t *testing.T, env ...string) *helper {
	t.Helper()
	h := &helper{cmd: exec.Command(os.Args[0], "-test.run=^TestHelperTailer$", "-test.v")}
	h.cmd.Env = append(append(os.Environ(), "AUDITLOG_HELPER=1"), env...)
	h.cmd.Stdout, h.cmd.Stderr = &h.out, &h.out
	if err := h.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *helper) kill(t *testing.T, sig syscall.Signal) {
	t.Helper()
	h.cmd.Process.Signal(sig)
	err := h.cmd.Wait()
	if sig == syscall.SIGTERM && err != nil {
		t.Fatalf("helper: %v\n%s", err, h.out.String())
	}
	t.Logf("helper stopped (%v): %s", sig, strings.TrimSpace(h.out.String()))
}

// TestMariaDBExactlyOnce runs a workload against a real MariaDB with
// server_audit rotating every 20 kB, while a tailer process is killed with
// SIGKILL and restarted twice, and checks that every statement arrived
// exactly once, and every log line once.
func TestMariaDBExactlyOnce(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "audit", "server_audit.log")
	os.Mkdir(filepath.Dir(logPath), 0o755)
	db := testenv.MariaDB(t, testenv.MariaDBArgs("--plugin-load-add=server_audit", "--server-audit-logging=ON",
		"--server-audit-file-path="+logPath, "--server-audit-file-rotate-size=20000",
		"--server-audit-file-rotations=99", "--server-audit-events=CONNECT,QUERY,TABLE"))

	sinkPath := filepath.Join(dir, "sink.jsonl")
	env := []string{"AUDITLOG_PATH=" + logPath, "AUDITLOG_STATE=" + filepath.Join(dir, "state"), "AUDITLOG_SINK=" + sinkPath}
	h := startHelper(t, env...)

	root, err := sql.Open("mysql", db.RootDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()

	// The statements, each with a unique marker; text as sent.
	var mu sync.Mutex
	want := map[string]string{} // marker -> exact SQL (""= any text containing the marker)
	add := func(marker, text string) {
		mu.Lock()
		want[marker] = text
		mu.Unlock()
	}
	ctx := context.Background()
	workload := func(phase int) {
		var wg sync.WaitGroup
		for g := range 6 {
			wg.Go(func() {
				for s := range 4 {
					conn, err := sql.Open("mysql", db.UserDSN())
					if err != nil {
						t.Error(err)
						return
					}
					conn.SetMaxOpenConns(1)
					for i := range 40 {
						m := fmt.Sprintf("m%d-%d-%d-%d", phase, g, s, i)
						q := fmt.Sprintf("SELECT '%s', 'it''s a \\\\ back\\nslash', \"dq\"\"x\", '\n\ttab line', 'é€'", m)
						if i%10 == 3 {
							q = fmt.Sprintf("SELECT\n  '%s' AS multi,\n  2 -- trailing comment\n", m)
						}
						if _, err := conn.ExecContext(ctx, q); err != nil {
							// A loaded machine sometimes resets a connection;
							// the statement may or may not have run.
							t.Logf("%s: %v", m, err)
							continue
						}
						add(m, q)
					}
					conn.Close()
				}
			})
		}
		// The mariadb client, with DDL and a failing statement.
		wg.Go(func() {
			for k := range 3 {
				tb := fmt.Sprintf("t_%d_%d", phase, k)
				script := fmt.Sprintf("CREATE TABLE %[1]s (a INT, b TEXT);\nINSERT INTO %[1]s VALUES (1, 'cli-%[2]d-%[3]d ''q''');\nSELECT *\nFROM %[1]s\nWHERE b LIKE '%%cli-%[2]d-%[3]d%%';\nALTER TABLE %[1]s ADD c INT;\nRENAME TABLE %[1]s TO %[1]s_r;\nDROP TABLE %[1]s_r;\n", tb, phase, k)
				if _, err := db.Client(t, "--user="+testenv.TestUser, "--password="+db.UserPassword(), "--database="+testenv.TestDatabase, "-e", script); err != nil {
					t.Error(err)
				}
				add(fmt.Sprintf("cli-%d-%d%%", phase, k), "")
			}
			if _, err := db.Client(t, "-e", "SELECT no_such_column FROM dastest.nothing"); err == nil {
				t.Error("the failing statement succeeded")
			}
		})
		// Failed logins.
		wg.Go(func() {
			for k := range 3 {
				bad, _ := sql.Open("mysql", fmt.Sprintf("nobody%d:wrong@tcp(%s)/", k, db.Addr()))
				if bad.Ping() == nil {
					t.Error("a bad login succeeded")
				}
				bad.Close()
			}
		})
		// Forced rotations.
		wg.Go(func() {
			for range 3 {
				time.Sleep(50 * time.Millisecond)
				if _, err := root.Exec("SET GLOBAL server_audit_file_rotate_now=ON"); err != nil {
					t.Error(err)
				}
			}
			if _, err := root.Exec("FLUSH LOGS"); err != nil {
				t.Error(err)
			}
		})
		wg.Wait()
	}

	workload(0)
	h.kill(t, syscall.SIGKILL)
	h = startHelper(t, env...)
	workload(1)
	time.Sleep(150 * time.Millisecond)
	h.kill(t, syscall.SIGKILL)
	workload(2) // while das is down: read on restart
	h = startHelper(t, env...)
	workload(3)
	if _, err := root.Exec("SELECT 'END-OF-WORKLOAD'"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, _ := os.ReadFile(sinkPath)
		if bytes.Contains(b, []byte("END-OF-WORKLOAD")) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the last statement never arrived; helper output:\n%s", h.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	h.kill(t, syscall.SIGTERM)

	// Compare.
	b, err := os.ReadFile(sinkPath)
	if err != nil {
		t.Fatal(err)
	}
	var evs []event.Event
	for _, l := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		var e event.Event
		if err := json.Unmarshal(l, &e); err != nil {
			t.Fatalf("sink line %q: %v", l, err)
		}
		evs = append(evs, e)
	}
	positions := map[string]int{}
	counts := map[string]int{}
	texts := map[string]string{}
	commands := map[string]int{}
	lineFile := map[string]fileID{} // position -> its file
	from := map[string]fileID{}     // marker -> the file it was delivered from
	outran := 0                     // warnings that a file was deleted before it was read
	for _, e := range evs {
		commands[e.Command]++
		if e.Command == CommandWarning && string(e.Extra.Get("dasWarning")) == `"rotation_outran_reader"` {
			outran++ // checked below against the statements in no file
		} else if e.Command == CommandUnparsed || e.Command == CommandWarning {
			t.Errorf("unexpected %s event: %s %s", e.Command, e.CommandText, e.ErrorMessage)
		}
		p, _ := PositionOf(&e)
		if p != (Position{}) {
			positions[p.String()]++
			lineFile[p.String()] = p.file()
		}
		if e.Command != event.CommandQuery {
			continue
		}
		for m := range want {
			if strings.HasSuffix(m, "%") {
				if strings.Contains(e.CommandText, "INSERT") && strings.Contains(e.CommandText, strings.TrimSuffix(m, "%")+" ") {
					counts[m]++
					from[m] = p.file()
				}
			} else if strings.Contains(e.CommandText, "'"+m+"'") {
				counts[m]++
				texts[m] = e.CommandText
				from[m] = p.file()
			}
		}
	}
	for p, n := range positions {
		if n != 1 {
			t.Errorf("line at %s delivered %d times", p, n)
		}
	}
	// server_audit itself (1.4.14, MariaDB 10.11) races two rotations when
	// SET GLOBAL server_audit_file_rotate_now comes during a size rotation:
	// the renames then skip numbers (Path.54 after Path.39), put an old
	// file between new ones, or rename a file over another one, deleting
	// it, sometimes before it was read: its lines are in no file. (FLUSH
	// LOGS does not rotate the audit log on 10.11; it runs above as load.)
	// What the tailer owes is every line of the files, once, and lines of
	// files the server deleted after they were read, once.
	files, _ := filepath.Glob(logPath + "*")
	present := map[fileID]bool{}
	for _, f := range files {
		if id, _, _, err := lstatID(f); err == nil {
			present[id] = true
		}
	}
	inFiles := map[string]bool{}
	fileLines := 0
	markerRE := regexp.MustCompile(`'(m\d+-\d+-\d+-\d+)'`)
	for _, f := range files {
		b, _ := os.ReadFile(f)
		for _, l := range bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n")) {
			if len(l) == 0 {
				continue
			}
			fileLines++
			r, err := ParseLine(l, time.Local)
			if err != nil {
				t.Errorf("server line %q: %v", l, err)
				continue
			}
			if sm := markerRE.FindStringSubmatch(r.Object); sm != nil {
				inFiles[sm[1]] = true
			}
			for m := range want {
				if strings.HasSuffix(m, "%") && strings.Contains(r.Object, "INSERT") && strings.Contains(r.Object, strings.TrimSuffix(m, "%")+" ") {
					inFiles[m] = true
				}
			}
		}
	}
	deletedLines := 0 // delivered from files the server deleted since
	for p := range positions {
		if !present[lineFile[p]] {
			deletedLines++
		}
	}
	if len(positions)-deletedLines != fileLines {
		t.Errorf("%d lines delivered from the server's files, which hold %d", len(positions)-deletedLines, fileLines)
	}
	droppedByServer := 0
	bad := 0
	for m, q := range want {
		if !inFiles[m] {
			if counts[m] == 0 {
				droppedByServer++
			} else if present[from[m]] {
				t.Errorf("statement %s delivered but in no file", m)
			}
			continue
		}
		if counts[m] != 1 {
			bad++
			if bad < 10 {
				t.Errorf("statement %s seen %d times%s", m, counts[m], whereIs(logPath, m))
			}
		} else if q = strings.TrimRight(q, " \n"); q != "" && texts[m] != q {
			// The server drops trailing whitespace.
			t.Errorf("statement %s text\n%q, sent\n%q", m, texts[m], q)
		}
	}
	// The workload makes 12 or more of each; server_audit itself may drop a
	// few during a forced rotation (counted below), so only presence and
	// volume are checked here: exactly-once is checked line by line above.
	if commands[event.CommandFailedConnect] < 6 || commands["RENAME"] < 6 || commands["CREATE"] < 6 || commands[event.CommandConnect] < 50 {
		t.Errorf("commands %v", commands)
	}
	t.Logf("%d events (%d lines in %d files, %d lines from files deleted since), %d statements run, %d of them in no file and not delivered, commands %v",
		len(evs), fileLines, len(files), deletedLines, len(want), droppedByServer, commands)
	// The race deletes a file now and then, sometimes before the tailer
	// (or while no tailer) ran; the bound only keeps the check meaningful.
	if droppedByServer > len(want)/10 {
		t.Errorf("server_audit dropped %d of %d statements: more than its rotation race explains", droppedByServer, len(want))
	}
	if outran > 0 && droppedByServer == 0 {
		t.Errorf("%d files reported deleted before they were read, yet every statement is in a file or delivered", outran)
	}

	if *update {
		captureGolden(t, logPath)
	}
}

// captureGolden keeps a sample of the server's lines, one of each shape,
// for TestGolden.
func captureGolden(t *testing.T, logPath string) {
	files, _ := filepath.Glob(logPath + "*")
	sort.Strings(files)
	seen := map[string]int{}
	var out []byte
	for _, f := range files {
		b, _ := os.ReadFile(f)
		for _, l := range bytes.Split(b, []byte("\n")) {
			r, err := ParseLine(l, time.UTC)
			if err != nil {
				continue
			}
			shape := r.Operation + fmt.Sprint(strings.Contains(string(l), `\`), r.RetCode != "0" && r.RetCode != "")
			if seen[shape] < 8 {
				seen[shape]++
				out = append(append(out, l...), '\n')
			}
		}
	}
	if err := os.WriteFile(filepath.Join("testdata", "server_audit.log"), out, 0o644); err != nil {
		t.Fatal(err)
	}
}

// whereIs says in which log file and at which offset a marker is.
func whereIs(logPath, marker string) string {
	files, _ := filepath.Glob(logPath + "*")
	var out []string
	for _, f := range files {
		b, _ := os.ReadFile(f)
		if i := bytes.Index(b, []byte(marker)); i >= 0 {
			id, _, _, _ := lstatID(f)
			out = append(out, fmt.Sprintf("%s ino %d born %d at %d of %d", filepath.Base(f), id.ino, id.born, i, len(b)))
		}
	}
	return fmt.Sprintf(" (in %v)", out)
}

// TestMariaDBQueryLogLimit checks the truncation flag against the real
// plugin: with a small server_audit_query_log_limit, a statement with
// quotes, a backslash and a newline is cut where its escaped text reaches
// the limit, so what is left is shorter than the limit once unescaped.
func TestMariaDBQueryLogLimit(t *testing.T) {
	const limit = 64
	logPath := filepath.Join(t.TempDir(), "server_audit.log")
	db := testenv.MariaDB(t, testenv.MariaDBArgs("--plugin-load-add=server_audit", "--server-audit-logging=ON",
		"--server-audit-file-path="+logPath, "--server-audit-events=QUERY",
		fmt.Sprintf("--server-audit-query-log-limit=%d", limit)))
	conn, err := sql.Open("mysql", db.UserDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	queries := map[string]string{ // marker -> statement
		"qll-cut":   "SELECT 'qll-cut', 'it''s a \\\\ back\nslash', '" + strings.Repeat("x", 100) + "'",
		"qll-whole": "SELECT 'qll-whole', 'it''s\n'",
	}
	for _, q := range queries {
		if _, err := conn.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	recs := map[string]Record{}
	for deadline := time.Now().Add(10 * time.Second); len(recs) < len(queries); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("statements missing from the log: have %v", recs)
		}
		b, _ := os.ReadFile(logPath)
		for _, l := range bytes.Split(b, []byte("\n")) {
			r, err := ParseLine(l, time.Local)
			if err != nil {
				continue // the torn last line of a write in progress
			}
			for m := range queries {
				if strings.Contains(r.Object, "'"+m+"'") {
					recs[m] = r
				}
			}
		}
	}
	cut := recs["qll-cut"]
	if q := queries["qll-cut"]; cut.Object == q || !strings.HasPrefix(q, cut.Object) {
		t.Fatalf("the server wrote %q for %q: not a cut of it", cut.Object, q)
	}
	if cut.ObjectLen < limit-1 || cut.ObjectLen > limit || len(cut.Object) >= limit {
		t.Errorf("cut statement: %d bytes written, %d unescaped; want %d or %d written, fewer unescaped", cut.ObjectLen, len(cut.Object), limit-1, limit)
	}
	if e := cut.Event(EventOptions{QueryLogLimit: limit}); !e.Extra.Has("dasTruncated") {
		t.Errorf("cut statement %q not flagged dasTruncated", cut.Object)
	}
	whole := recs["qll-whole"]
	if whole.Object != queries["qll-whole"] {
		t.Errorf("the server wrote %q for %q", whole.Object, queries["qll-whole"])
	}
	if e := whole.Event(EventOptions{QueryLogLimit: limit}); e.Extra.Has("dasTruncated") {
		t.Errorf("whole statement %q flagged dasTruncated", whole.Object)
	}
}
