package streamlog

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestRoundTripAcrossRotations(t *testing.T) {
	dir := t.TempDir()
	const size = 300
	l := mustOpen(t, dir, Options{SegmentBytes: 2048})
	if seq, data := l.Last(); seq != 0 || data != nil {
		t.Fatalf("empty log: Last() = %d, %q", seq, data)
	}
	// Groups of varying size, some larger than a segment.
	var seq uint64 = 1
	for _, n := range []int{1, 2, 3, 5, 8, 13, 21, 34, 1, 1, 1, 55, 7} {
		for k := 0; k < 4; k++ {
			mustAppend(t, l, entries(seq, n, size)...)
			seq += uint64(n)
		}
	}
	last := seq - 1
	if s, d := l.Last(); s != last || !bytes.Equal(d, rec(last, size)) {
		t.Fatalf("Last() = %d, want %d", s, last)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	names := segNames(t, dir)
	if len(names) < 30 {
		t.Fatalf("%d segments, want many rotations", len(names))
	}
	if names[0] != "00000000000000000001.log" {
		t.Fatalf("first segment %s", names[0])
	}
	es, err := readAll(t, dir, Start)
	if !isEOF(err) {
		t.Fatalf("read: %v", err)
	}
	if uint64(len(es)) != last {
		t.Fatalf("read %d records, want %d", len(es), last)
	}
	checkEntries(t, es, 1, size)

	// Reopen: Last comes back from the files, appends continue.
	l = mustOpen(t, dir, Options{SegmentBytes: 4096})
	defer l.Close()
	if s, d := l.Last(); s != last || !bytes.Equal(d, rec(last, size)) {
		t.Fatalf("after reopen Last() = %d %.40q, want %d", s, d, last)
	}
	mustAppend(t, l, entries(last+1, 3, size)...)
	es, err = readAll(t, dir, AtSeq(last-1))
	if !isEOF(err) || len(es) != 5 {
		t.Fatalf("read after reopen: %d entries, %v", len(es), err)
	}
	checkEntries(t, es, last-1, size)
}

func TestAppendRejects(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, Options{})
	defer l.Close()
	mustAppend(t, l, entries(1, 3, 100)...)
	tests := []struct {
		name string
		es   []Entry
		want string
	}{
		{"skips a seq", entries(5, 1, 100), "seq 5 does not continue the log (next is 4)"},
		{"repeats a seq", entries(3, 1, 100), "seq 3 does not continue"},
		{"not consecutive", []Entry{{4, rec(4, 100)}, {6, rec(6, 100)}}, "seq 6 follows 4"},
		{"newline", []Entry{{4, []byte("{\"a\":1}\n{}")}}, "newline"},
		{"empty", []Entry{{4, nil}}, "empty record"},
		{"NUL", []Entry{{4, []byte("{\x00}")}}, "NUL"},
		{"dasSeq disagrees", []Entry{{4, rec(7, 100)}}, "record's dasSeq is 7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := l.Append(context.Background(), tt.es...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Append: %v, want error containing %q", err, tt.want)
			}
		})
	}
	// Rejected calls consume nothing: 4 still comes next.
	mustAppend(t, l, entries(4, 1, 100)...)
	if s, _ := l.Last(); s != 4 {
		t.Fatalf("Last() = %d, want 4", s)
	}
	if err := l.Append(context.Background()); err != nil {
		t.Fatalf("empty Append: %v", err)
	}
}

func TestGroupCommitConcurrentAppenders(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, Options{SegmentBytes: 64 << 10})
	const writers, perWriter, size = 32, 40, 200
	// Sequences are allocated and enqueued in one critical section, as the
	// pipeline's sealing goroutine does; durability is awaited outside it,
	// so all 32 wait on shared commits.
	var mu sync.Mutex
	var next uint64 = 1
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < perWriter; i++ {
				n := 1 + (w+i)%3
				mu.Lock()
				c := l.AppendAsync(context.Background(), entries(next, n, size)...)
				next += uint64(n)
				mu.Unlock()
				if err := c.Wait(context.Background()); err != nil {
					errs <- err
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	st := l.Stats()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	total := next - 1
	if st.Records != total {
		t.Fatalf("stats: %d records, want %d", st.Records, total)
	}
	if st.Commits >= uint64(writers*perWriter) {
		t.Fatalf("%d commits for %d Append calls: no group commit", st.Commits, writers*perWriter)
	}
	t.Logf("%d calls, %d records, %d commits (fsyncs), %d rotations", writers*perWriter, total, st.Commits, st.Rotations)
	es, err := readAll(t, dir, Start)
	if !isEOF(err) || uint64(len(es)) != total {
		t.Fatalf("read %d of %d: %v", len(es), total, err)
	}
	checkEntries(t, es, 1, size)
}

func TestAppendAsyncPipelines(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, Options{SegmentBytes: 32 << 10, MaxPendingBytes: 8 << 10})
	defer l.Close()
	const n = 2000
	var commits []*Commit
	for s := uint64(1); s <= n; s++ {
		commits = append(commits, l.AppendAsync(context.Background(), Entry{Seq: s, Data: rec(s, 100)}))
	}
	// Waiting for the last one suffices: groups commit in order.
	if err := commits[n-1].Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	for i, c := range commits {
		select {
		case <-c.Done():
			if c.Err() != nil {
				t.Fatalf("commit %d: %v", i+1, c.Err())
			}
		default:
			t.Fatalf("commit %d not done after a later one", i+1)
		}
	}
	st := l.Stats()
	if st.Commits >= n {
		t.Fatalf("%d commits for %d records", st.Commits, n)
	}
	if s, _ := l.Last(); s != n {
		t.Fatalf("Last() = %d", s)
	}
	t.Logf("%d records in %d commits", n, st.Commits)
}

func TestAppendAsyncRoomRespectsContext(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, Options{MaxPendingBytes: 1000})
	defer l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// The first call is always taken, whatever its size; the later ones may
	// find the queue full and give up at once with the cancelled context.
	var seq uint64 = 1
	for i := 0; i < 200; i++ {
		c := l.AppendAsync(ctx, entries(seq, 1, 900)...)
		select {
		case <-c.Done():
			if c.Err() != nil {
				if !errors.Is(c.Err(), context.Canceled) {
					t.Fatalf("AppendAsync: %v", c.Err())
				}
				continue // seq not consumed
			}
		default:
		}
		seq++
	}
	mustAppend(t, l, entries(seq, 1, 100)...)
	if s, _ := l.Last(); s != seq {
		t.Fatalf("Last() = %d, want %d", s, seq)
	}
}

func TestCrashRecovery(t *testing.T) {
	const size = 120
	full := lines(1, 5, size) // records 1..5 in segment 1
	tests := []struct {
		name     string
		setup    func(t *testing.T, dir string)
		wantLast uint64
		wantLog  []string // substrings of the recovery log
		wantSegs int
	}{
		{
			name: "torn last line",
			setup: func(t *testing.T, dir string) {
				writeFile(t, segFile(dir, 1), append(append([]byte{}, full...), rec(6, size)[:70]...))
			},
			wantLast: 5,
			wantLog:  []string{"cut torn line", "file=00000000000000000001.log", "offset=" + itoa(len(full)), "bytes=70", "no trailing newline"},
			wantSegs: 1,
		},
		{
			name: "zero-filled tail with a newline",
			setup: func(t *testing.T, dir string) {
				b := append(append([]byte{}, full...), make([]byte, 50)...)
				writeFile(t, segFile(dir, 1), append(b, '\n'))
			},
			wantLast: 5,
			wantLog:  []string{"offset=" + itoa(len(full)), "bytes=51", "zero-filled"},
			wantSegs: 1,
		},
		{
			name: "zero-filled tail without newline",
			setup: func(t *testing.T, dir string) {
				writeFile(t, segFile(dir, 1), append(append([]byte{}, full...), make([]byte, 4096)...))
			},
			wantLast: 5,
			wantLog:  []string{"offset=" + itoa(len(full)), "bytes=4096"},
			wantSegs: 1,
		},
		{
			name: "newest segment holds only a torn line",
			setup: func(t *testing.T, dir string) {
				writeFile(t, segFile(dir, 1), full)
				writeFile(t, segFile(dir, 6), rec(6, size)[:30])
			},
			wantLast: 5,
			wantLog:  []string{"file=00000000000000000006.log", "offset=0", "bytes=30"},
			wantSegs: 2,
		},
		{
			name: "empty newest segment",
			setup: func(t *testing.T, dir string) {
				writeFile(t, segFile(dir, 1), full)
				writeFile(t, segFile(dir, 6), nil)
			},
			wantLast: 5,
			wantSegs: 2,
		},
		{
			name: "clean",
			setup: func(t *testing.T, dir string) {
				writeFile(t, segFile(dir, 1), full)
			},
			wantLast: 5,
			wantSegs: 1,
		},
		{
			name:     "empty directory",
			setup:    func(t *testing.T, dir string) {},
			wantLast: 0,
			wantSegs: 0,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			tt.setup(t, dir)
			var logs logBuf
			l, err := Open(dir, Options{Logger: testLogger(&logs)})
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer l.Close()
			for _, s := range tt.wantLog {
				if !strings.Contains(logs.String(), s) {
					t.Errorf("recovery log lacks %q:\n%s", s, logs.String())
				}
			}
			if tt.wantLog == nil && strings.Contains(logs.String(), "level=WARN") {
				t.Errorf("unexpected warning:\n%s", logs.String())
			}
			if got := len(segNames(t, dir)); got != tt.wantSegs {
				t.Errorf("%d segments after recovery, want %d", got, tt.wantSegs)
			}
			seq, data := l.Last()
			if seq != tt.wantLast {
				t.Fatalf("Last() = %d, want %d", seq, tt.wantLast)
			}
			if seq > 0 && !bytes.Equal(data, rec(seq, size)) {
				t.Fatalf("Last() data %.50q", data)
			}
			// Appends continue at the right sequence, and everything reads back.
			mustAppend(t, l, entries(seq+1, 3, size)...)
			es, err := readAll(t, dir, Start)
			if !isEOF(err) || uint64(len(es)) != seq+3 {
				t.Fatalf("read %d entries, %v; want %d", len(es), err, seq+3)
			}
			checkEntries(t, es, 1, size)
		})
	}
}

func TestOpenRejectsLastRecordAtWrongPosition(t *testing.T) {
	dir := t.TempDir()
	// Segment 1 holds three lines, but the last says it is record 9.
	b := append(lines(1, 2, 100), rec(9, 100)...)
	writeFile(t, segFile(dir, 1), append(b, '\n'))
	_, err := Open(dir, Options{Logger: testLogger(nil)})
	var se *SegmentError
	if !errors.As(err, &se) || !errors.Is(err, ErrCorrupt) || se.File != segmentName(1) || se.Offset != int64(len(lines(1, 2, 100))) {
		t.Fatalf("Open: %v; want ErrCorrupt at %s offset %d", err, segmentName(1), len(lines(1, 2, 100)))
	}
	if !strings.Contains(err.Error(), "dasSeq 9, position gives 3") {
		t.Fatalf("error %q does not explain", err)
	}
}

func TestLock(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, Options{})
	_, err := Open(dir, Options{Logger: testLogger(nil)})
	if err == nil || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "locked") {
		t.Fatalf("second Open: %v; want a lock error naming %s", err, dir)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = mustOpen(t, dir, Options{})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close: %v", err)
	}
	if err := l.Append(context.Background(), entries(1, 1, 10)...); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close: %v", err)
	}
}

func TestOpenCreatesDir0700(t *testing.T) {
	dir := t.TempDir() + "/a/b"
	l := mustOpen(t, dir, Options{})
	defer l.Close()
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o700 {
		t.Fatalf("dir mode %v", st.Mode().Perm())
	}
	mustAppend(t, l, entries(1, 1, 10)...)
	st, err = os.Stat(segFile(dir, 1))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("segment: %v %v", st.Mode(), err)
	}
}

func TestRetention(t *testing.T) {
	const size = 500
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		opts Options
		// after writing 100 records in 1 KiB segments (2 lines each, 50
		// segments), advance is added to the clock before retention runs;
		// wantSegs counts the segments left, the new active one included.
		advance  time.Duration
		wantSegs int
	}{
		{"bytes", Options{RetainBytes: 10 * 1002}, 0, 10},
		{"bytes smaller than the active segment", Options{RetainBytes: 1}, 0, 1},
		{"age: all old but the active one", Options{RetainAge: time.Hour}, 2 * time.Hour, 1},
		{"age: nothing old yet", Options{RetainAge: time.Hour}, 30 * time.Minute, 51},
		{"no limits", Options{}, 24 * time.Hour, 51},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			now := base
			var mu sync.Mutex
			o := tt.opts
			o.SegmentBytes = 1000
			var logs logBuf
			o.Logger = testLogger(&logs)
			defer func() {
				if t.Failed() {
					t.Log(logs.String())
				}
			}()
			o.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
			l := mustOpen(t, dir, o)
			for s := uint64(1); s <= 100; s += 2 {
				mustAppend(t, l, entries(s, 2, size)...)
			}
			// Stamp every segment at the base time, then let the clock run.
			for _, n := range segNames(t, dir) {
				// Retention runs behind the commits and may be removing it.
				if err := os.Chtimes(dir+"/"+n, base, base); err != nil && !errors.Is(err, os.ErrNotExist) {
					t.Fatal(err)
				}
			}
			mu.Lock()
			now = base.Add(tt.advance)
			mu.Unlock()
			// Retention runs after each rotation (and on a timer); one more
			// rotation triggers it here. It runs after the commit's waiters
			// are released: Close waits for it.
			mustAppend(t, l, entries(101, 2, size)...)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			names := segNames(t, dir)
			if len(names) != tt.wantSegs {
				t.Fatalf("%d segments, want %d: %v", len(names), tt.wantSegs, names)
			}
			if names[len(names)-1] != segmentName(101) {
				t.Fatalf("active segment %s deleted?", names[len(names)-1])
			}
			first, _ := parseSegmentName(names[0])
			es, err := readAll(t, dir, Start)
			if !isEOF(err) {
				t.Fatalf("read after retention: %v", err)
			}
			checkEntries(t, es, first, size)
			if es[len(es)-1].Seq != 102 {
				t.Fatalf("last read %d", es[len(es)-1].Seq)
			}
			// Asking for a deleted record says so, then goes on from the oldest.
			if first > 1 {
				r, err := OpenReader(dir, AtSeq(1))
				if err != nil {
					t.Fatal(err)
				}
				defer r.Close()
				_, err = r.Next(context.Background())
				var ge *GapError
				if !errors.As(err, &ge) || !errors.Is(err, ErrRetained) || ge.From != 1 || ge.To != first-1 {
					t.Fatalf("AtSeq(1): %v; want ErrRetained 1..%d", err, first-1)
				}
				e, err := r.Next(context.Background())
				if err != nil || e.Seq != first {
					t.Fatalf("after the retention gap: %d %v", e.Seq, err)
				}
			}
		})
	}
}

func TestRetentionAgeOnOpen(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, Options{SegmentBytes: 200})
	for s := uint64(1); s <= 10; s++ {
		mustAppend(t, l, entries(s, 1, 300)...)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(48 * time.Hour)
	l = mustOpen(t, dir, Options{SegmentBytes: 200, RetainAge: 24 * time.Hour, Now: func() time.Time { return later }})
	defer l.Close()
	if names := segNames(t, dir); len(names) != 1 || names[0] != segmentName(10) {
		t.Fatalf("segments after Open with age retention: %v", names)
	}
	if s, _ := l.Last(); s != 10 {
		t.Fatalf("Last() = %d", s)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestRecordsNewest: a reopened log's newest n records, oldest first,
// across segments, with those lost to retention simply not there.
func TestRecordsNewest(t *testing.T) {
	const size = 200
	for _, tc := range []struct {
		name     string
		opts     Options
		write, n int
	}{
		{"across segments", Options{SegmentBytes: 2000}, 100, 25},
		{"last one", Options{SegmentBytes: 2000}, 100, 1},
		{"more than there are", Options{SegmentBytes: 2000}, 30, 256},
		{"older ones retained no more", Options{SegmentBytes: 2000, RetainBytes: 4000}, 100, 256},
		{"empty log", Options{}, 0, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			l := mustOpen(t, dir, tc.opts)
			for s := 1; s <= tc.write; s += 10 {
				mustAppend(t, l, entries(uint64(s), min(10, tc.write-s+1), size)...)
			}
			if err := l.Close(); err != nil { // and retention has run
				t.Fatal(err)
			}
			l = mustOpen(t, dir, tc.opts)
			defer l.Close()
			// The newest n, or as many as are retained.
			first := uint64(max(1, tc.write-tc.n+1))
			if names := segNames(t, dir); len(names) > 0 {
				oldest, _ := parseSegmentName(names[0])
				first = max(first, oldest)
			}
			want := tc.write - int(first) + 1
			if tc.opts.RetainBytes > 0 && want >= min(tc.n, tc.write) {
				t.Fatalf("retention kept all %d records: the case tests nothing", want)
			}
			got, err := Records{L: l}.Newest(context.Background(), tc.n)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != want {
				t.Fatalf("Newest(%d) returned %d records, want %d (seq %d..%d)", tc.n, len(got), want, first, tc.write)
			}
			for i, d := range got {
				if s := first + uint64(i); !bytes.Equal(d, rec(s, size)) {
					t.Fatalf("record %d: %.80q..., want seq %d", i, d, s)
				}
			}
		})
	}
}
