package auditlog

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/das-mysql/das/internal/event"
)

// lockedBuffer collects a tailer's log output, written from its goroutines.
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

func bufferLogger(b *lockedBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// logHas checks that the log has a line at level holding every one of
// parts (the text handler quotes a message with spaces, not its path).
func logHas(t *testing.T, logs *lockedBuffer, level string, parts ...string) {
	t.Helper()
	if !logFind(logs, level, parts...) {
		t.Errorf("no %s log line with %q in:\n%s", level, parts, logs.String())
	}
}

// logFind reports whether logs has a line at level holding every part.
func logFind(logs *lockedBuffer, level string, parts ...string) bool {
	for _, l := range strings.Split(logs.String(), "\n") {
		if !strings.Contains(l, "level="+level+" ") {
			continue
		}
		if !slices.ContainsFunc(parts, func(p string) bool { return !strings.Contains(l, p) }) {
			return true
		}
	}
	return false
}

// warningEvents returns the DAS_WARNING events of a kind.
func warningEvents(s *memSink, kind string) []event.Event {
	var out []event.Event
	for _, e := range s.snapshot() {
		var k string
		if e.Command == CommandWarning && json.Unmarshal(e.Extra.Get("dasWarning"), &k) == nil && k == kind {
			out = append(out, e)
		}
	}
	return out
}

// readTo waits until the tailer has read path's file to its end.
func readTo(t *testing.T, tl *Tailer, path string) Position {
	t.Helper()
	var want Position
	waitFor(t, "the tailer to read "+path+" to its end", func() bool {
		id, size, _, err := lstatID(path)
		if err != nil {
			return false
		}
		want = Position{Dev: id.dev, Inode: id.ino, Born: id.born, Offset: size}
		return tl.Stats().Read == want
	})
	return want
}

// The checkpoint covers the longest gap-free run of acknowledged lines,
// never merely the lines read: the sink holds the acks while the tailer
// reads ahead, and a restart from the checkpoint delivers again exactly
// the lines whose acks had not come.
func TestCheckpointWaitsForAcks(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	srv := newFakeServer(t, dir, 3)
	sink := &memSink{hold: true}
	// No periodic checkpoints: each step forces one.
	r := startTailer(t, Options{Path: srv.path, StateDir: state, CheckpointInterval: time.Hour}, sink)
	// The tailer hands the sink a read's lines as one batch with one ack:
	// lines 1-3, 4, 5, 6 and 7-10, each written once the last is read.
	total := 0
	for _, n := range []int{3, 1, 1, 1, 4} {
		srv.queries(n)
		total += n
		waitFor(t, fmt.Sprintf("%d lines", total), countIs(sink, total))
	}
	readTo(t, r.tl, srv.path)
	evs := sink.snapshot()
	end := func(id int) int64 { // where line id ends
		p, ok := PositionOf(&evs[id-1])
		if !ok || evs[id-1].StatementID != int64(id) {
			t.Fatalf("event %d: %+v", id-1, evs[id-1])
		}
		return p.Offset
	}
	steps := []struct {
		name string
		ack  []int // statement ids acknowledged at this step, in order
		want int   // the last line the checkpoint covers; 0: no checkpoint
	}{
		{name: "nothing acknowledged", want: 0},
		{name: "lines 1-3 acknowledged", ack: []int{3}, want: 3},
		{name: "line 6 acknowledged, 4 and 5 not", ack: []int{6}, want: 3},
		{name: "lines 5 and 4 acknowledged", ack: []int{5, 4}, want: 6},
	}
	for _, st := range steps {
		for _, id := range st.ack {
			sink.release(id - 1)
		}
		if err := r.tl.SaveCheckpoint(); err != nil {
			t.Fatalf("%s: SaveCheckpoint: %v", st.name, err)
		}
		cp, ok, err := loadCheckpoint(r.tl.cpFile)
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		switch {
		case st.want == 0 && ok:
			t.Fatalf("%s: checkpoint at offset %d, want none", st.name, cp.Offset)
		case st.want > 0 && (!ok || cp.Offset != end(st.want)):
			t.Fatalf("%s: checkpoint at offset %d (saved %v), want %d, the end of line %d; lines are read up to %d",
				st.name, cp.Offset, ok, end(st.want), st.want, r.tl.Stats().Read.Offset)
		}
		if d := r.tl.Stats().Durable; st.want > 0 && d.Offset != end(st.want) {
			t.Errorf("%s: Stats().Durable at %d, want %d", st.name, d.Offset, end(st.want))
		}
	}
	r.stop(t) // its last checkpoint too covers acknowledged lines only

	again := &memSink{}
	r = startTailer(t, Options{Path: srv.path, StateDir: state}, again)
	waitFor(t, "the unacknowledged lines", countIs(again, 4))
	time.Sleep(20 * time.Millisecond) // room for more to show
	r.stop(t)
	if ids, warns := again.queries(); fmt.Sprint(ids) != "[7 8 9 10]" || len(warns) != 0 {
		t.Errorf("the restart delivered %v (warnings %v), want [7 8 9 10]: the lines not acknowledged, once", ids, warns)
	}
}

// The log's path is replaced, while das follows it, by something it must
// not read: a symlink (it could point anywhere) or a directory. Each time
// is a warning event and a log line naming the path and the reason;
// nothing is read through it, das keeps its position, and reading goes on
// when a regular file is back. Twice: the second time is reported too.
func TestPathReplacedWhileFollowed(t *testing.T) {
	symlink := func(path, target string) error { return os.Symlink(target, path) }
	mkdir := func(path, _ string) error { return os.Mkdir(path, 0o700) }
	tests := []struct {
		name   string
		rename bool // the followed file is renamed away (else deleted)
		put    func(path, target string) error
		reason string
	}{
		{name: "renamed, then a symlink", rename: true, put: symlink, reason: "is a symbolic link"},
		{name: "deleted, then a symlink", put: symlink, reason: "is a symbolic link"},
		{name: "renamed, then a directory", rename: true, put: mkdir, reason: "is a directory"},
		{name: "deleted, then a directory", put: mkdir, reason: "is a directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			srv := newFakeServer(t, dir, 3)
			// Records a symlink could lead to: ids 100 and up.
			target := filepath.Join(dir, "elsewhere.log")
			var b strings.Builder
			for id := 100; id < 103; id++ {
				fmt.Fprintf(&b, "20261125 16:54:04,vm,u,h,1,%d,QUERY,d,'SELECT %d',0\n", id, id)
			}
			if err := os.WriteFile(target, []byte(b.String()), 0o600); err != nil {
				t.Fatal(err)
			}
			logs := &lockedBuffer{}
			sink := &memSink{}
			r := startTailer(t, Options{Path: srv.path, StateDir: filepath.Join(dir, "state"), Logger: bufferLogger(logs)}, sink)
			for round := 1; round <= 2; round++ {
				srv.queries(5)
				at := readTo(t, r.tl, srv.path)
				srv.f.Close()
				if tt.rename {
					srv.shift()
				} else if err := os.Remove(srv.path); err != nil {
					t.Fatal(err)
				}
				if err := tt.put(srv.path, target); err != nil {
					t.Fatal(err)
				}
				waitFor(t, fmt.Sprintf("warning %d", round), func() bool { return len(warningEvents(sink, "file_error")) >= round })
				time.Sleep(20 * r.tl.o.Poll) // room for lines through the path to show
				w := warningEvents(sink, "file_error")
				if msg := w[round-1].ErrorMessage; !strings.Contains(msg, srv.path+" "+tt.reason) {
					t.Errorf("round %d: warning %q, want it to say %q", round, msg, srv.path+" "+tt.reason)
				}
				logHas(t, logs, "WARN", srv.path+" "+tt.reason)
				if ids, _ := sink.queries(); len(ids) != 5*round || slices.ContainsFunc(ids, func(id int64) bool { return id >= 100 }) {
					t.Fatalf("round %d: ids %v, want 1-%d and none from behind the path", round, ids, 5*round)
				}
				if st := r.tl.Stats(); st.Read != at {
					t.Errorf("round %d: read position %v, want it kept at %v", round, st.Read, at)
				}
				if err := os.RemoveAll(srv.path); err != nil {
					t.Fatal(err)
				}
				srv.open()
			}
			srv.queries(5)
			waitFor(t, "the lines of the regular file", countIs(sink, 15))
			r.stop(t)
			ids, warns := sink.queries()
			exactly(t, ids, 15)
			if fmt.Sprint(warns) != "[file_error file_error]" {
				t.Errorf("warnings %v, want one file_error each time", warns)
			}
		})
	}
}

// The file being read is replaced mid-stream by a directory at the same
// name, while the server goes on writing the old one (it holds it open):
// those lines are read, the directory is reported, and the next regular
// file is read after them.
func TestReplacedByDirectoryMidStream(t *testing.T) {
	dir := t.TempDir()
	srv := newFakeServer(t, dir, 3)
	logs := &lockedBuffer{}
	sink := &memSink{}
	srv.queries(5)
	r := startTailer(t, Options{Path: srv.path, StateDir: filepath.Join(dir, "state"), Logger: bufferLogger(logs)}, sink)
	waitFor(t, "lines", countIs(sink, 5))
	hidden := srv.path + ".old"
	mustRename(t, srv.path, hidden)
	if err := os.Mkdir(srv.path, 0o700); err != nil {
		t.Fatal(err)
	}
	srv.queries(5) // to the renamed file, through the server's open handle
	waitFor(t, "the warning", func() bool { return len(warningEvents(sink, "file_error")) > 0 })
	waitFor(t, "the lines written after the replacement", countIs(sink, 10))
	if err := os.Remove(srv.path); err != nil {
		t.Fatal(err)
	}
	srv.f.Close()
	srv.open()
	srv.queries(5)
	waitFor(t, "the lines of the new file", countIs(sink, 15))
	r.stop(t)
	ids, warns := sink.queries()
	exactly(t, ids, 15)
	if fmt.Sprint(warns) != "[file_error]" {
		t.Errorf("warnings %v, want [file_error]", warns)
	}
	logHas(t, logs, "WARN", srv.path+" is a directory")
}

// asNonRoot runs the calling test where file permissions apply: root opens
// a file of mode 000 anyway (CAP_DAC_OVERRIDE). As root it runs the test
// again, in a copy of the test binary, as user nobody (uid 65534), makes
// that run's verdict the test's and returns true (the caller returns);
// otherwise it returns false and the test goes on.
func asNonRoot(t *testing.T) bool {
	t.Helper()
	if os.Geteuid() != 0 {
		return false
	}
	if os.Getenv("DAS_TEST_AS_NOBODY") != "" {
		t.Fatal("still root after switching to user nobody")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tmp := filepath.Join(dir, "tmp")
	bin := filepath.Join(dir, "auditlog.test")
	src, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, src, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, d := range []struct {
		path string
		mode os.FileMode
	}{{dir, 0o755}, {filepath.Dir(dir), 0o755}, {tmp, 0o1777}} {
		if err := os.MkdirAll(d.path, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d.path, d.mode); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(bin, "-test.run", "^"+t.Name()+"$", "-test.count=1", "-test.v")
	cmd.Dir, cmd.Env = dir, append(os.Environ(), "DAS_TEST_AS_NOBODY=1", "TMPDIR="+tmp)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("--- PASS: "+t.Name())) {
		t.Fatalf("%s as user nobody (uid 65534): %v\n%s", t.Name(), err, out)
	}
	t.Logf("passed as user nobody (uid 65534):\n%s", out)
	return true
}

// The server rotates and das may not read the new file: a warning event
// and a log line name the file and the cause; das stays at the end of the
// old file, counts the unread bytes as lag, and reads the new file once it
// may, from its start.
func TestPermissionDenied(t *testing.T) {
	if asNonRoot(t) {
		return
	}
	dir := t.TempDir()
	srv := newFakeServer(t, dir, 3)
	logs := &lockedBuffer{}
	sink := &memSink{}
	srv.queries(5)
	r := startTailer(t, Options{Path: srv.path, StateDir: filepath.Join(dir, "state"), Logger: bufferLogger(logs)}, sink)
	waitFor(t, "lines", countIs(sink, 5))
	at := readTo(t, r.tl, srv.path)
	srv.f.Close()
	srv.shift()
	f, err := os.OpenFile(srv.path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0) // mode 000 from the start
	if err != nil {
		t.Fatal(err)
	}
	srv.f = f
	srv.queries(5)
	fi, err := os.Stat(srv.path)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the warning", func() bool { return len(warningEvents(sink, "file_error")) > 0 })
	waitFor(t, "the lag to count the unreadable file", func() bool { return r.tl.Stats().LagBytes == fi.Size() })
	time.Sleep(10 * r.tl.o.Poll)
	want := "open " + srv.path + ": permission denied"
	if w := warningEvents(sink, "file_error"); !strings.Contains(w[0].ErrorMessage, want) {
		t.Errorf("warning %q, want it to say %q", w[0].ErrorMessage, want)
	}
	logHas(t, logs, "WARN", want)
	if st := r.tl.Stats(); st.Read != at {
		t.Errorf("read position %v, want it kept at %v", st.Read, at)
	}
	if err := os.Chmod(srv.path, 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the lines of the new file", countIs(sink, 10))
	r.stop(t)
	ids, warns := sink.queries()
	exactly(t, ids, 10)
	if fmt.Sprint(warns) != "[file_error]" {
		t.Errorf("warnings %v, want [file_error]", warns)
	}
}

// A checkpoint that cannot be written (the disk full, here the state
// directory turned into a file: ENOTDIR) is logged with the path and the
// cause and reported by one warning event for the outage; lines keep
// arriving; once checkpoints work again, one is written, and a restart
// from it loses nothing and repeats nothing.
func TestCheckpointFailureRecovers(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	srv := newFakeServer(t, dir, 3)
	logs := &lockedBuffer{}
	srv.queries(5)
	sink := &memSink{}
	r := startTailer(t, Options{Path: srv.path, StateDir: state, Logger: bufferLogger(logs)}, sink)
	waitFor(t, "lines", countIs(sink, 5))
	if err := os.RemoveAll(state); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(state, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	srv.queries(5)
	waitFor(t, "lines after the failure", countIs(sink, 10))
	waitFor(t, "failed checkpoints", func() bool { return r.tl.Stats().CheckpointErrors >= 5 })
	srv.queries(5)
	waitFor(t, "lines during the outage", countIs(sink, 15))
	at := readTo(t, r.tl, srv.path)
	logHas(t, logs, "ERROR", "checkpoint not saved", state+"/", "not a directory")
	if w := warningEvents(sink, "checkpoint_failed"); len(w) != 1 || !strings.Contains(w[0].ErrorMessage, state+"/") || !strings.Contains(w[0].ErrorMessage, "not a directory") {
		t.Errorf("%d checkpoint_failed warnings for one outage of %d failures, want 1 naming %s and the cause: %v",
			len(w), r.tl.Stats().CheckpointErrors, state, w)
	}

	if err := os.Remove(state); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(state, 0o700); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a checkpoint at the last line", func() bool {
		cp, ok, _ := loadCheckpoint(r.tl.cpFile)
		return ok && cp.Offset == at.Offset && cp.Inode == at.Inode
	})
	// The tailer logs the recovery just after the checkpoint's rename.
	waitFor(t, "the recovery's INFO log line", func() bool { return logFind(logs, "INFO", "checkpoint saved again") })
	r.tl.crash = true // no final checkpoint: the one written after the outage counts
	r.stop(t)

	srv.queries(5)
	again := &memSink{}
	r = startTailer(t, Options{Path: srv.path, StateDir: state}, again)
	waitFor(t, "lines after the restart", countIs(again, 5))
	time.Sleep(20 * time.Millisecond) // room for repeats to show
	r.stop(t)
	var ids []int64
	for _, e := range append(sink.snapshot(), again.snapshot()...) {
		if e.Command == event.CommandQuery {
			ids = append(ids, e.StatementID)
		}
	}
	exactly(t, ids, 20)
}

// LagSeconds is how old the last line read is while the reader is behind
// (here a sink that does not take events), and 0 once it has caught up.
func TestLagSeconds(t *testing.T) {
	dir := t.TempDir()
	srv := newFakeServer(t, dir, 3)
	srv.queries(10) // written at 16:54:04
	now := time.Date(2026, 11, 25, 17, 4, 4, 0, time.UTC)
	sink := &memSink{block: make(chan struct{})}
	r := startTailer(t, Options{Path: srv.path, StateDir: filepath.Join(dir, "state"), Now: func() time.Time { return now }}, sink)
	// The watcher may count the unread bytes before the first line is parsed.
	waitFor(t, "the lag", func() bool { st := r.tl.Stats(); return st.LagBytes > 0 && st.LagSeconds != 0 })
	if st := r.tl.Stats(); st.LagSeconds != 600 {
		t.Errorf("behind: LagSeconds %v (LagBytes %d), want 600: the first line, read at 17:04:04, was written at 16:54:04", st.LagSeconds, st.LagBytes)
	}
	close(sink.block)
	waitFor(t, "lines", countIs(sink, 10))
	waitFor(t, "the lag in bytes to clear", func() bool { return r.tl.Stats().LagBytes == 0 })
	if st := r.tl.Stats(); st.LagSeconds != 0 {
		t.Errorf("caught up: LagSeconds %v, want 0", st.LagSeconds)
	}
}

// Options.Location is the server's time zone: a line's local time is read
// in it, so the event's logTime and the lag are the same instants wherever
// das runs.
func TestLocation(t *testing.T) {
	tests := []struct {
		name string
		loc  *time.Location
		want string // the line's time, 20261125 16:54:04 there, in UTC
	}{
		{name: "UTC", loc: time.UTC, want: "2026-11-25T16:54:04Z"},
		{name: "UTC-5", loc: time.FixedZone("EST", -5*3600), want: "2026-11-25T21:54:04Z"},
		{name: "UTC+5:30", loc: time.FixedZone("IST", 5*3600+1800), want: "2026-11-25T11:24:04Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			srv := newFakeServer(t, dir, 3)
			srv.queries(2)
			want, err := time.Parse(time.RFC3339, tt.want)
			if err != nil {
				t.Fatal(err)
			}
			now := want.Add(30 * time.Second)
			sink := &memSink{block: make(chan struct{})}
			r := startTailer(t, Options{Path: srv.path, StateDir: filepath.Join(dir, "state"), Location: tt.loc,
				Now: func() time.Time { return now }}, sink)
			waitFor(t, "the lag", func() bool { st := r.tl.Stats(); return st.LagBytes > 0 && st.LagSeconds != 0 })
			if st := r.tl.Stats(); st.LagSeconds != 30 {
				t.Errorf("LagSeconds %v, want 30", st.LagSeconds)
			}
			close(sink.block)
			waitFor(t, "lines", countIs(sink, 2))
			r.stop(t)
			if got := sink.snapshot()[0].LogTime.UTC().Format(time.RFC3339); got != tt.want {
				t.Errorf("logTime %s, want %s", got, tt.want)
			}
		})
	}
}
