package auditlog

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/das-mysql/das/internal/event"
)

// memSink keeps events; it acks at once, or holds acks while hold is set
// (events submitted and not yet durable) until release.
type memSink struct {
	mu     sync.Mutex
	events []event.Event
	hold   bool
	held   []func()      // held[i] acks the batch that ends with events[i]; nil once acked
	block  chan struct{} // when non-nil, Submit waits for it to be closed
}

func (s *memSink) Submit(ctx context.Context, evs []event.Event, ack func()) error {
	if s.block != nil {
		select {
		case <-s.block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.mu.Lock()
	s.events = append(s.events, evs...)
	hold := s.hold
	for range len(evs) - 1 {
		s.held = append(s.held, nil)
	}
	if hold {
		s.held = append(s.held, ack)
	} else {
		s.held = append(s.held, nil)
	}
	s.mu.Unlock()
	if !hold {
		ack()
	}
	return nil
}

// release acks the held events with the given indexes (into events), in
// that order.
func (s *memSink) release(idx ...int) {
	for _, i := range idx {
		s.mu.Lock()
		ack := s.held[i]
		s.held[i] = nil
		s.mu.Unlock()
		if ack != nil {
			ack()
		}
	}
}

func (s *memSink) snapshot() []event.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]event.Event(nil), s.events...)
}

// queries returns the statement ids of the QUERY events, and the warnings.
func (s *memSink) queries() (ids []int64, warnings []string) {
	for _, e := range s.snapshot() {
		switch e.Command {
		case event.CommandQuery:
			ids = append(ids, e.StatementID)
		case CommandWarning:
			var k string
			json.Unmarshal(e.Extra.Get("dasWarning"), &k)
			warnings = append(warnings, k)
		}
	}
	return
}

// fakeServer writes and rotates a log the way server_audit does.
type fakeServer struct {
	t         *testing.T
	path      string
	rotations int
	f         *os.File
	next      int64
}

func newFakeServer(t *testing.T, dir string, rotations int) *fakeServer {
	s := &fakeServer{t: t, path: filepath.Join(dir, "server_audit.log"), rotations: rotations, next: 1}
	s.open()
	t.Cleanup(func() { s.f.Close() })
	return s
}

func (s *fakeServer) open() {
	f, err := os.OpenFile(s.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		s.t.Fatal(err)
	}
	s.f = f
}

func (s *fakeServer) raw(b string) {
	if _, err := s.f.WriteString(b); err != nil {
		s.t.Fatal(err)
	}
}

// queries writes n QUERY lines with the next statement ids.
func (s *fakeServer) queries(n int) {
	var b strings.Builder
	for range n {
		fmt.Fprintf(&b, "20261125 16:54:04,vm,u,127.0.0.1,1,%d,QUERY,d,'SELECT \\'%d\\'',0\n", s.next, s.next)
		s.next++
	}
	s.raw(b.String())
}

func (s *fakeServer) rotate() {
	s.f.Close()
	s.shift()
	s.open()
}

// shift renames the files as a rotation does (Path to Path.1, the oldest
// deleted), without creating the new file.
func (s *fakeServer) shift() {
	os.Remove(fmt.Sprintf("%s.%d", s.path, s.rotations))
	for i := s.rotations - 1; i >= 1; i-- {
		os.Rename(fmt.Sprintf("%s.%d", s.path, i), fmt.Sprintf("%s.%d", s.path, i+1))
	}
	if err := os.Rename(s.path, s.path+".1"); err != nil {
		s.t.Fatal(err)
	}
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

type runner struct {
	tl     *Tailer
	cancel context.CancelFunc
	done   chan error
}

func startTailer(t *testing.T, o Options, sink Sink) *runner {
	t.Helper()
	if o.Poll == 0 {
		o.Poll = 5 * time.Millisecond
	}
	if o.CheckpointInterval == 0 {
		o.CheckpointInterval = 10 * time.Millisecond
	}
	if o.Location == nil {
		o.Location = time.UTC
	}
	if o.Logger == nil {
		o.Logger = quietLogger()
	}
	tl, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &runner{tl: tl, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- tl.Run(ctx, sink) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

func (r *runner) stop(t *testing.T) {
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	if err := <-r.done; err != nil {
		t.Errorf("Run: %v", err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// exactly checks that ids are 1..n, each once, in order.
func exactly(t *testing.T, ids []int64, n int) {
	t.Helper()
	if len(ids) != n {
		t.Errorf("%d queries, want %d", len(ids), n)
	}
	for i, id := range ids {
		if id != int64(i+1) {
			t.Fatalf("query %d has id %d, want %d (duplicate or gap)", i, id, i+1)
		}
	}
}

func countIs(s *memSink, n int) func() bool {
	return func() bool { ids, _ := s.queries(); return len(ids) >= n }
}

func TestTailerRotation(t *testing.T) {
	dir := t.TempDir()
	srv := newFakeServer(t, dir, 3)
	sink := &memSink{}
	r := startTailer(t, Options{Path: srv.path, StateDir: filepath.Join(dir, "state")}, sink)
	total := 0
	for round := range 20 {
		srv.queries(50)
		total += 50
		if round%3 == 0 {
			waitFor(t, "lines", countIs(sink, total))
		}
		srv.rotate()
	}
	srv.queries(7)
	total += 7
	waitFor(t, "all lines", countIs(sink, total))
	r.stop(t)
	ids, warns := sink.queries()
	exactly(t, ids, total)
	if len(warns) != 0 {
		t.Errorf("warnings %v", warns)
	}
	st := r.tl.Stats()
	if st.Rotations != 20 || st.Lines != uint64(total) || st.LagBytes != 0 || st.LagSeconds != 0 {
		t.Errorf("stats %+v", st)
	}
	// Positions in events are where each line ends: every event has one,
	// and within one file they grow.
	evs := sink.snapshot()
	var prev Position
	for i := range evs {
		p, ok := PositionOf(&evs[i])
		if !ok {
			t.Fatalf("event %d: no position", i)
		}
		if p.file() == prev.file() && p.Offset <= prev.Offset {
			t.Fatalf("event %d: position %+v after %+v", i, p, prev)
		}
		prev = p
	}
	p, ok := PositionOf(&evs[len(evs)-1])
	fi, _ := os.Stat(srv.path)
	id, _, _, _ := lstatID(srv.path)
	if !ok || p.Offset != fi.Size() || p.Inode != id.ino {
		t.Errorf("last position %+v, file size %d", p, fi.Size())
	}
}

// A reader held up by its sink while the server rotates past the kept
// files loses the files deleted unread, and says so.
func TestTailerRotationOutrunsReader(t *testing.T) {
	dir := t.TempDir()
	srv := newFakeServer(t, dir, 2)
	sink := &memSink{block: make(chan struct{})}
	srv.queries(10)
	r := startTailer(t, Options{Path: srv.path, StateDir: filepath.Join(dir, "state")}, sink)
	// Let the tailer open A (it then waits on the sink with A's first line).
	waitFor(t, "the tailer to open A", func() bool { return r.tl.Stats().Read.Inode != 0 })
	srv.rotate() // file A (ids 1-10) -> .1
	srv.queries(10)
	// Wait until the watcher has seen A's successor B (ids 11-20): the lag
	// counts both files then.
	fa, _ := os.Stat(srv.path + ".1")
	waitFor(t, "the watcher to see B", func() bool { return r.tl.Stats().LagBytes > fa.Size() })
	srv.rotate()   // A -> .2, B -> .1
	srv.rotate()   // A deleted, B -> .2, C (empty) -> .1
	srv.rotate()   // B deleted unread
	srv.queries(5) // ids 21-25
	close(sink.block)
	waitFor(t, "last lines", func() bool { ids, _ := sink.queries(); return len(ids) > 0 && ids[len(ids)-1] == 25 })
	r.stop(t)
	ids, warns := sink.queries()
	want := []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 21, 22, 23, 24, 25}
	if fmt.Sprint(ids) != fmt.Sprint(want) {
		t.Errorf("ids %v, want %v (A read to its end through the open file, B lost)", ids, want)
	}
	st := r.tl.Stats()
	if len(warns) != 1 || warns[0] != "rotation_outran_reader" || st.LostFiles != 1 || st.LostBytes == 0 {
		t.Errorf("warnings %v, stats %+v", warns, st)
	}
}

func TestTailerTruncation(t *testing.T) {
	dir := t.TempDir()
	srv := newFakeServer(t, dir, 3)
	sink := &memSink{}
	srv.queries(20)
	r := startTailer(t, Options{Path: srv.path, StateDir: filepath.Join(dir, "state")}, sink)
	waitFor(t, "lines", countIs(sink, 20))
	if err := srv.f.Truncate(0); err != nil {
		t.Fatal(err)
	}
	srv.queries(3)
	waitFor(t, "lines after the truncation", countIs(sink, 23))
	r.stop(t)
	ids, warns := sink.queries()
	exactly(t, ids, 23)
	if len(warns) != 1 || warns[0] != "truncated" || r.tl.Stats().Truncations != 1 {
		t.Errorf("warnings %v", warns)
	}
}

// Re-creation: the file is deleted and a new one made under the same name.
func TestTailerRecreated(t *testing.T) {
	dir := t.TempDir()
	srv := newFakeServer(t, dir, 3)
	sink := &memSink{}
	srv.queries(5)
	r := startTailer(t, Options{Path: srv.path, StateDir: filepath.Join(dir, "state")}, sink)
	waitFor(t, "lines", countIs(sink, 5))
	srv.queries(5) // written to the old file just before it is deleted
	srv.f.Close()
	os.Remove(srv.path)
	srv.open()
	srv.queries(5)
	waitFor(t, "lines", countIs(sink, 15))
	r.stop(t)
	ids, _ := sink.queries()
	exactly(t, ids, 15)
}

func TestTailerLongLinesAndJunk(t *testing.T) {
	dir := t.TempDir()
	srv := newFakeServer(t, dir, 3)
	sink := &memSink{}
	srv.queries(1)
	long := "20261125 16:54:04,vm,u,h,1,99,QUERY,d,'SELECT " + strings.Repeat("x", 5000) + "',0\n"
	srv.raw(long)
	srv.raw("not a record \xff\xfe\n")
	srv.queries(1)
	srv.raw("20261125 16:54:04,vm,u,h,1,3,QUERY,d,'partial") // no newline yet
	r := startTailer(t, Options{Path: srv.path, StateDir: filepath.Join(dir, "state"), MaxLine: 1000}, sink)
	waitFor(t, "4 events", func() bool { return len(sink.snapshot()) >= 4 })
	time.Sleep(20 * time.Millisecond)
	if n := len(sink.snapshot()); n != 4 {
		t.Fatalf("%d events before the partial line ends, want 4", n)
	}
	srv.raw(" line',0\n")
	waitFor(t, "5 events", func() bool { return len(sink.snapshot()) >= 5 })
	r.stop(t)
	evs := sink.snapshot()
	cut := evs[1]
	if cut.Extra.Get("dasLineCut") == nil || cut.Extra.Get("dasTruncated") == nil || cut.StatementID != 99 || len(cut.CommandText) > 1000 {
		t.Errorf("cut line: %v %v id %d len %d", cut.Extra.Get("dasLineCut"), cut.Extra.Get("dasTruncated"), cut.StatementID, len(cut.CommandText))
	}
	p0, _ := PositionOf(&evs[0])
	if p, _ := PositionOf(&cut); p.Offset != p0.Offset+int64(len(long)) {
		t.Errorf("cut line ends at %d, want %d", p.Offset, p0.Offset+int64(len(long)))
	}
	junk := evs[2]
	if junk.Command != CommandUnparsed || junk.Extra.Get("dasRawBase64") == nil || junk.ErrorMessage == "" {
		t.Errorf("junk: %+v", junk)
	}
	if evs[4].CommandText != "partial line" || evs[4].StatementID != 3 {
		t.Errorf("partial line: %+v", evs[4])
	}
	st := r.tl.Stats()
	if st.CutLines != 1 || st.Unparsed != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestCheckpointResume(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	srv := newFakeServer(t, dir, 3)
	srv.queries(30)
	sink := &memSink{}
	r := startTailer(t, Options{Path: srv.path, StateDir: state}, sink)
	waitFor(t, "lines", countIs(sink, 30))
	r.stop(t)
	files, _ := filepath.Glob(filepath.Join(state, "auditlog-*.checkpoint"))
	if len(files) != 1 {
		t.Fatalf("checkpoint files %v", files)
	}
	if fi, _ := os.Stat(files[0]); fi.Mode().Perm() != 0o600 {
		t.Errorf("checkpoint mode %v", fi.Mode())
	}
	srv.queries(10)
	srv.rotate()
	srv.queries(10)
	r = startTailer(t, Options{Path: srv.path, StateDir: state}, sink)
	waitFor(t, "lines", countIs(sink, 50))
	r.stop(t)
	ids, warns := sink.queries()
	exactly(t, ids, 50)
	if len(warns) != 0 {
		t.Errorf("warnings %v", warns)
	}
}

// rotateApart rotates after a pause, so that the new file's birth time
// (ext4 counts in clock ticks of a few ms) differs from the old one's.
func (s *fakeServer) rotateApart() {
	time.Sleep(20 * time.Millisecond)
	s.rotate()
}

// needBirthTime skips where the file system keeps no birth times: there
// only the names order the files.
func needBirthTime(t *testing.T, path string) {
	t.Helper()
	if id, _, _, err := lstatID(path); err != nil || id.born == 0 {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no birth time for %s (%v): the test needs a file system with one", path, err)
		}
		t.Skipf("no birth time for %s (%v)", path, err)
	}
}

func mustRename(t *testing.T, from, to string) {
	t.Helper()
	if err := os.Rename(from, to); err != nil {
		t.Fatal(err)
	}
}

// Two rotations of server_audit racing (SET GLOBAL
// server_audit_file_rotate_now during a size rotation, MariaDB 10.11) can
// leave an old file under a newer name than unread ones: a restart reads
// in creation order, not by name.
func TestResumeRotationsOutOfOrder(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	srv := newFakeServer(t, dir, 9)
	needBirthTime(t, srv.path)
	srv.queries(10) // A: 1-10
	srv.rotateApart()
	srv.queries(10) // B: 11-20
	srv.rotateApart()
	srv.queries(5) // C: 21-25
	sink := &memSink{}
	r := startTailer(t, Options{Path: srv.path, StateDir: state, Start: StartOldest}, sink)
	waitFor(t, "lines", countIs(sink, 25))
	r.stop(t) // checkpoint in C

	srv.queries(5) // C: 26-30
	srv.rotateApart()
	srv.queries(5) // D: 31-35
	// A .3, B .2, C .1, D Path; the race leaves A .1, B .2, C .3: by
	// name, A and B come after the checkpoint's file C.
	mustRename(t, srv.path+".1", srv.path+".5")
	mustRename(t, srv.path+".3", srv.path+".1")
	mustRename(t, srv.path+".5", srv.path+".3")
	r = startTailer(t, Options{Path: srv.path, StateDir: state, Start: StartOldest}, sink)
	waitFor(t, "lines", countIs(sink, 35))
	time.Sleep(50 * time.Millisecond) // room for duplicates to show
	r.stop(t)
	ids, warns := sink.queries()
	exactly(t, ids, 35)
	if len(warns) != 0 {
		t.Errorf("warnings %v", warns)
	}
}

// The same race can rename a file past a gap in the numbers (Path.54 after
// Path.39): it is still read, in its place.
func TestRotationPastAGap(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	srv := newFakeServer(t, dir, 99)
	needBirthTime(t, srv.path)
	srv.queries(10) // A: 1-10
	sink := &memSink{}
	r := startTailer(t, Options{Path: srv.path, StateDir: state, Start: StartOldest}, sink)
	waitFor(t, "lines", countIs(sink, 10))
	r.stop(t) // checkpoint in A

	srv.queries(5) // A: 11-15
	srv.rotateApart()
	srv.queries(5) // B: 16-20
	srv.rotateApart()
	srv.queries(5)                               // C: 21-25
	mustRename(t, srv.path+".1", srv.path+".54") // B; A is .2
	r = startTailer(t, Options{Path: srv.path, StateDir: state, Start: StartOldest}, sink)
	waitFor(t, "lines", countIs(sink, 25))
	srv.queries(5) // C: 26-30
	waitFor(t, "lines", countIs(sink, 30))
	time.Sleep(50 * time.Millisecond)
	r.stop(t)
	ids, warns := sink.queries()
	exactly(t, ids, 30)
	if len(warns) != 0 {
		t.Errorf("warnings %v", warns)
	}
}

// Without acks nothing is checkpointed: a restart reads the lines again.
// With a DurableFloor from the sink, events durable after the last
// checkpoint are not delivered twice.
func TestCrashResume(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	srv := newFakeServer(t, dir, 3)
	srv.queries(20)

	sink := &memSink{}
	r := startTailer(t, Options{Path: srv.path, StateDir: state}, sink)
	waitFor(t, "lines", countIs(sink, 20))
	r.stop(t) // checkpoint at 20

	// Second run: events become durable in the sink (acked) but the
	// process "dies" before checkpointing them.
	srv.queries(10)
	durable := &memSink{}
	r = startTailer(t, Options{Path: srv.path, StateDir: state, CheckpointInterval: time.Hour}, durable)
	r.tl.crash = true
	waitFor(t, "lines", countIs(durable, 10))
	r.stop(t)

	// Without the floor: the 10 come again (the checkpoint is older).
	again := &memSink{}
	r = startTailer(t, Options{Path: srv.path, StateDir: state}, again)
	waitFor(t, "lines", countIs(again, 10))
	r.tl.crash = true
	r.stop(t)
	if ids, _ := again.queries(); len(ids) != 10 || ids[0] != 21 {
		t.Fatalf("resumed at %v", ids)
	}

	// With the floor recovered from the durable events: nothing again.
	evs := durable.snapshot()
	floor, ok := PositionOf(&evs[len(evs)-1])
	if !ok {
		t.Fatal("no dasAuditPos")
	}
	srv.queries(5)
	final := &memSink{}
	r = startTailer(t, Options{Path: srv.path, StateDir: state, DurableFloor: []Position{{Dev: 1, Inode: 1, Offset: 1}, floor}}, final)
	waitFor(t, "lines", countIs(final, 5))
	r.stop(t)
	all := append(append(sink.snapshot(), durable.snapshot()...), final.snapshot()...)
	var ids []int64
	for _, e := range all {
		ids = append(ids, e.StatementID)
	}
	exactly(t, ids, 35)
}

func TestCheckpointMismatch(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	srv := newFakeServer(t, dir, 3)
	srv.queries(5)
	sink := &memSink{}
	r := startTailer(t, Options{Path: srv.path, StateDir: state}, sink)
	waitFor(t, "lines", countIs(sink, 5))
	r.stop(t)
	// The log is replaced by one with other content of the same length.
	srv.f.Close()
	os.Remove(srv.path)
	b := []byte(strings.Repeat("20261125 16:54:04,vm,u,127.0.0.1,1,7,QUERY,d,'SELECT \\'7\\'',0\n", 5))
	os.WriteFile(srv.path, b, 0o600)
	again := &memSink{}
	r = startTailer(t, Options{Path: srv.path, StateDir: state}, again)
	waitFor(t, "lines", countIs(again, 5))
	r.stop(t)
	if _, warns := again.queries(); len(warns) != 1 || warns[0] != "checkpoint_mismatch" {
		t.Errorf("warnings %v", warns)
	}
}

// A checkpoint that still fails when Run ends is Run's error. (The state
// directory is replaced by a file: root writes into a read-only one.)
func TestCheckpointFailure(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	srv := newFakeServer(t, dir, 3)
	srv.queries(5)
	sink := &memSink{}
	r := startTailer(t, Options{Path: srv.path, StateDir: state}, sink)
	waitFor(t, "lines", countIs(sink, 5))
	// Make the state dir unusable: replace it by a file.
	os.RemoveAll(state)
	os.WriteFile(state, nil, 0o600)
	srv.queries(1)
	waitFor(t, "a warning", func() bool { _, w := sink.queries(); return len(w) > 0 })
	r.cancel()
	err := <-r.done
	r.cancel = nil
	if err == nil || !strings.Contains(err.Error(), "checkpoint") {
		t.Errorf("Run = %v, want the checkpoint error", err)
	}
	if _, w := sink.queries(); w[0] != "checkpoint_failed" || r.tl.Stats().CheckpointErrors == 0 {
		t.Errorf("warnings %v", w)
	}
}

func TestStartEnd(t *testing.T) {
	dir := t.TempDir()
	srv := newFakeServer(t, dir, 3)
	srv.queries(5)
	srv.raw("20261125 16:54:04,vm,u,h,1,6,QUERY,d,'half")
	sink := &memSink{}
	r := startTailer(t, Options{Path: srv.path, StateDir: filepath.Join(dir, "state"), Start: StartEnd}, sink)
	time.Sleep(20 * time.Millisecond)
	srv.raw("',0\n")
	srv.next = 7
	srv.queries(1)
	waitFor(t, "lines", countIs(sink, 2))
	r.stop(t)
	if ids, _ := sink.queries(); fmt.Sprint(ids) != "[6 7]" {
		t.Errorf("ids %v", ids)
	}
}

func TestNotARegularFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "server_audit.log")
	os.Mkdir(path, 0o700)
	sink := &memSink{}
	r := startTailer(t, Options{Path: path, StateDir: filepath.Join(dir, "state")}, sink)
	waitFor(t, "a warning", func() bool { _, w := sink.queries(); return len(w) > 0 })
	os.Remove(path)
	os.WriteFile(path, []byte("20261125 16:54:04,vm,u,h,1,1,QUERY,d,'x',0\n"), 0o600)
	waitFor(t, "the line", countIs(sink, 1))
	r.stop(t)
	if _, w := sink.queries(); len(w) != 1 || w[0] != "file_error" {
		t.Errorf("warnings %v", w)
	}
}

// BenchmarkTailerFile reads a large generated log through to a sink that
// acks at once: lines parsed and mapped per second, one goroutine.
func BenchmarkTailerFile(b *testing.B) {
	dir := b.TempDir()
	path := filepath.Join(dir, "server_audit.log")
	lines := benchLines(1000)
	var buf []byte
	const n = 200000
	for i := range n {
		buf = append(append(buf, lines[i%len(lines)]...), '\n')
	}
	if err := os.WriteFile(path, buf, 0o600); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		tl, err := New(Options{Path: path, StateDir: filepath.Join(dir, fmt.Sprint("s", i)), Location: time.UTC, Logger: quietLogger()})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		sink := &countSink{n: n, done: cancel}
		if err := tl.Run(ctx, sink); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "lines/s")
}

type countSink struct {
	seen, n int
	done    func()
}

func (s *countSink) Submit(_ context.Context, evs []event.Event, ack func()) error {
	ack()
	if s.seen += len(evs); s.seen == s.n {
		s.done()
	}
	return nil
}

// An idle reader sleeps longer and longer, up to idleMaxPolls polls, but
// the watcher, still looking every poll, wakes it when lines arrive: they
// are read within about a poll, not after the reader's long sleep.
func TestIdleReaderWokenByWatcher(t *testing.T) {
	dir := t.TempDir()
	srv := newFakeServer(t, dir, 2)
	const poll = 200 * time.Millisecond
	tl, err := New(Options{Path: srv.path, StateDir: filepath.Join(dir, "state"), Poll: poll, Location: time.UTC, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	longest := make(chan struct{}, 1)
	tl.idleHook = func(d time.Duration) {
		if d == idleMaxPolls*poll {
			select {
			case longest <- struct{}{}:
			default:
			}
		}
	}
	sink := &memSink{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tl.Run(ctx, sink) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	select {
	case <-longest:
	case <-time.After(10 * time.Second):
		t.Fatal("the idle reader never slept its longest")
	}
	start := time.Now()
	srv.queries(1)
	waitFor(t, "the line", countIs(sink, 1))
	if took := time.Since(start); took >= idleMaxPolls*poll-poll/2 {
		t.Fatalf("a line written during the reader's %v sleep was read after %v: the watcher did not wake it", idleMaxPolls*poll, took)
	}
}
