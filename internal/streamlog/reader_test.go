package streamlog

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// threeSegments writes records 1..30 as segments 1 (1..10), 11 (11..20), 21 (21..30).
func threeSegments(t *testing.T, dir string, size int) {
	t.Helper()
	for _, first := range []uint64{1, 11, 21} {
		writeFile(t, segFile(dir, first), lines(first, 10, size))
	}
}

func TestReaderPositions(t *testing.T) {
	const size = 80
	dir := t.TempDir()
	threeSegments(t, dir, size)
	tests := []struct {
		from      Position
		wantFirst uint64
		wantN     int
	}{
		{Start, 1, 30},
		{AtSeq(0), 1, 30},
		{AtSeq(1), 1, 30},
		{AtSeq(5), 5, 26},
		{AtSeq(10), 10, 21},
		{AtSeq(11), 11, 20},
		{AtSeq(30), 30, 1},
		{AtSeq(31), 0, 0},
		{AtSeq(1000), 0, 0},
		{End, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.from.String(), func(t *testing.T) {
			es, err := readAll(t, dir, tt.from)
			if !isEOF(err) {
				t.Fatalf("Next: %v", err)
			}
			if len(es) != tt.wantN {
				t.Fatalf("%d entries, want %d", len(es), tt.wantN)
			}
			checkEntries(t, es, tt.wantFirst, size)
		})
	}
}

func TestReaderEndSeesLaterAppends(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, Options{SegmentBytes: 1000})
	defer l.Close()
	mustAppend(t, l, entries(1, 10, 300)...)
	r, err := OpenReader(dir, End)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.Next(context.Background()); !isEOF(err) {
		t.Fatalf("at End: %v", err)
	}
	mustAppend(t, l, entries(11, 5, 300)...)
	for want := uint64(11); want <= 15; want++ {
		e, err := r.Next(context.Background())
		if err != nil || e.Seq != want {
			t.Fatalf("Next: %d %v, want %d", e.Seq, err, want)
		}
	}
	if _, err := r.Next(context.Background()); !isEOF(err) {
		t.Fatalf("at end: %v", err)
	}
}

func TestReaderEmptyAndMissingDir(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []Position{Start, End, AtSeq(7)} {
		es, err := readAll(t, dir, p)
		if !isEOF(err) || len(es) != 0 {
			t.Fatalf("%v on empty dir: %d %v", p, len(es), err)
		}
	}
	if _, err := OpenReader(dir+"/nope", Start); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("missing dir: %v", err)
	}
}

func TestReaderFollowsAppendsAndRotations(t *testing.T) {
	for _, viaLog := range []bool{false, true} {
		name := "OpenReader"
		if viaLog {
			name = "Log.NewReader"
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			const size, total = 200, 400
			l := mustOpen(t, dir, Options{SegmentBytes: 2000, RetainBytes: 20000})
			defer l.Close()
			var r *Reader
			var err error
			if viaLog {
				r, err = l.NewReader(Start)
			} else {
				r, err = OpenReader(dir, Start)
			}
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			r.Follow(true)
			r.SetPollInterval(2 * time.Millisecond)

			// The writer starts on an empty directory, rotates every ~10
			// records and retention deletes segments the reader has passed.
			// It stays at most 40 records ahead, well within the ~100
			// records retained, so the reader is never overtaken.
			var read atomic.Uint64
			done := make(chan error, 1)
			go func() {
				for s := uint64(1); s <= total; s += 4 {
					for s > read.Load()+40 {
						time.Sleep(time.Millisecond)
					}
					if err := l.Append(context.Background(), entries(s, 4, size)...); err != nil {
						done <- err
						return
					}
					if s%40 == 1 {
						time.Sleep(time.Millisecond)
					}
				}
				done <- nil
			}()
			var got []Entry
			for len(got) < total {
				e, err := nextWithin(t, r, 10*time.Second)
				if err != nil {
					t.Fatalf("Next after %d entries: %v", len(got), err)
				}
				got = append(got, e)
				read.Store(e.Seq)
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			checkEntries(t, got, 1, size)
			if st := l.Stats(); st.Rotations < 30 {
				t.Fatalf("only %d rotations", st.Rotations)
			}
			// Nothing more: a following Next waits until its context ends.
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
			defer cancel()
			if _, err := r.Next(ctx); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Next at the end while following: %v", err)
			}
			// And the reader is still usable after a context error.
			mustAppend(t, l, entries(total+1, 1, size)...)
			if e, err := nextWithin(t, r, 5*time.Second); err != nil || e.Seq != total+1 {
				t.Fatalf("Next after a timeout: %d %v", e.Seq, err)
			}
		})
	}
}

func TestReaderOvertakenByRetention(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, Options{SegmentBytes: 500, RetainBytes: 2000})
	defer l.Close()
	mustAppend(t, l, entries(1, 2, 300)...) // segment 1
	r, err := OpenReader(dir, Start)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if e, err := r.Next(context.Background()); err != nil || e.Seq != 1 {
		t.Fatalf("Next: %d %v", e.Seq, err)
	}
	// The reader holds segment 1 open; retention deletes it and more.
	for s := uint64(3); s <= 40; s += 2 {
		mustAppend(t, l, entries(s, 2, 300)...)
	}
	// Close waits for retention to finish.
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	oldest, _ := parseSegmentName(segNames(t, dir)[0])
	if e, err := r.Next(context.Background()); err != nil || e.Seq != 2 {
		t.Fatalf("rest of the open segment: %d %v", e.Seq, err)
	}
	_, err = r.Next(context.Background())
	var ge *GapError
	if !errors.As(err, &ge) || !errors.Is(err, ErrRetained) || errors.Is(err, ErrGap) || ge.From != 3 || ge.To != oldest-1 {
		t.Fatalf("Next: %v; want ErrRetained 3..%d", err, oldest-1)
	}
	es, err := readAllFrom(r)
	if !isEOF(err) {
		t.Fatal(err)
	}
	checkEntries(t, es, oldest, 300)
}

func readAllFrom(r *Reader) ([]Entry, error) {
	var es []Entry
	for {
		e, err := r.Next(context.Background())
		if err != nil {
			return es, err
		}
		es = append(es, e)
	}
}

func TestReaderTornTail(t *testing.T) {
	const size = 100
	dir := t.TempDir()
	full := lines(1, 3, size)
	line4 := append(rec(4, size), '\n')
	writeFile(t, segFile(dir, 1), append(append([]byte{}, full...), line4[:40]...))

	// Not following: the three complete records, then ErrTornTail naming file and offset.
	r, err := OpenReader(dir, Start)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	es, err := readAllFrom(r)
	checkEntries(t, es, 1, size)
	var se *SegmentError
	if len(es) != 3 || !errors.Is(err, ErrTornTail) || !errors.As(err, &se) || se.File != segmentName(1) || se.Offset != int64(len(full)) {
		t.Fatalf("%d entries, %v; want 3 then ErrTornTail at offset %d", len(es), err, len(full))
	}
	if !strings.Contains(err.Error(), "segment 00000000000000000001.log offset "+itoa(len(full))) {
		t.Fatalf("error text %q", err)
	}
	// Not sticky: once the line is complete it is served.
	appendFile(t, segFile(dir, 1), line4[40:])
	e, err := r.Next(context.Background())
	if err != nil || e.Seq != 4 {
		t.Fatalf("after completion: %d %v", e.Seq, err)
	}

	// Following: the reader waits for the rest of the line.
	appendFile(t, segFile(dir, 1), append(rec(5, size), '\n')[:10])
	r.Follow(true)
	r.SetPollInterval(time.Millisecond)
	got := make(chan Entry, 1)
	go func() {
		e, err := nextWithin(t, r, 10*time.Second)
		if err != nil {
			t.Errorf("following Next: %v", err)
		}
		got <- e
	}()
	time.Sleep(20 * time.Millisecond)
	select {
	case e := <-got:
		t.Fatalf("served a torn line: %d %q", e.Seq, e.Data)
	default:
	}
	appendFile(t, segFile(dir, 1), append(rec(5, size), '\n')[10:])
	if e := <-got; e.Seq != 5 || string(e.Data) != string(rec(5, size)) {
		t.Fatalf("got %d %.40q", e.Seq, e.Data)
	}
}

func TestReaderFollowSurvivesWriterRecovery(t *testing.T) {
	// A writer crashed leaving a torn line; a follower waits; the restarted
	// writer cuts it and appends the real record 4 at the same offset.
	const size = 100
	dir := t.TempDir()
	writeFile(t, segFile(dir, 1), append(lines(1, 3, size), []byte(`{"garbage":"from before the crash`)...))
	r, err := OpenReader(dir, AtSeq(4))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	r.Follow(true)
	r.SetPollInterval(time.Millisecond)
	got := make(chan Entry, 1)
	go func() {
		e, err := nextWithin(t, r, 10*time.Second)
		if err != nil {
			t.Errorf("Next: %v", err)
		}
		got <- e
	}()
	time.Sleep(10 * time.Millisecond)
	l := mustOpen(t, dir, Options{})
	defer l.Close()
	mustAppend(t, l, entries(4, 1, size)...)
	if e := <-got; e.Seq != 4 || string(e.Data) != string(rec(4, size)) {
		t.Fatalf("got %d %.40q", e.Seq, e.Data)
	}
}

func TestReaderDamagedSegments(t *testing.T) {
	const size = 200 // every line the same length
	lineLen := len(rec(1, size)) + 1
	tests := []struct {
		name   string
		damage func(t *testing.T, dir string)
		wantN  int // entries served before the error
		check  func(t *testing.T, err error)
		// then: entries served after a GapError
		thenFirst uint64
		thenN     int
	}{
		{
			name: "middle segment cut mid-line",
			damage: func(t *testing.T, dir string) {
				if err := os.Truncate(segFile(dir, 11), int64(4*lineLen+7)); err != nil {
					t.Fatal(err)
				}
			},
			wantN: 14,
			check: func(t *testing.T, err error) {
				var se *SegmentError
				if !errors.As(err, &se) || !errors.Is(err, ErrCorrupt) || se.File != segmentName(11) || se.Offset != int64(4*lineLen) {
					t.Fatalf("%v; want ErrCorrupt in segment 11 at offset %d", err, 4*lineLen)
				}
				if !strings.Contains(err.Error(), "torn line in sealed segment (7 bytes") {
					t.Fatalf("error text %q", err)
				}
			},
		},
		{
			name: "middle segment cut at a line boundary",
			damage: func(t *testing.T, dir string) {
				if err := os.Truncate(segFile(dir, 11), int64(4*lineLen)); err != nil {
					t.Fatal(err)
				}
			},
			wantN: 14,
			check: func(t *testing.T, err error) {
				var ge *GapError
				if !errors.As(err, &ge) || !errors.Is(err, ErrGap) || errors.Is(err, ErrRetained) || ge.From != 15 || ge.To != 20 || ge.Next != segmentName(21) {
					t.Fatalf("%v; want ErrGap 15..20", err)
				}
				if !strings.Contains(err.Error(), "records 15..20 missing before segment 00000000000000000021.log") {
					t.Fatalf("error text %q", err)
				}
			},
			thenFirst: 21, thenN: 10,
		},
		{
			name: "missing middle segment",
			damage: func(t *testing.T, dir string) {
				if err := os.Remove(segFile(dir, 11)); err != nil {
					t.Fatal(err)
				}
			},
			wantN: 10,
			check: func(t *testing.T, err error) {
				var ge *GapError
				if !errors.As(err, &ge) || !errors.Is(err, ErrGap) || ge.From != 11 || ge.To != 20 {
					t.Fatalf("%v; want ErrGap 11..20", err)
				}
			},
			thenFirst: 21, thenN: 10,
		},
		{
			name: "missing first segments is retention",
			damage: func(t *testing.T, dir string) {
				if err := os.Remove(segFile(dir, 1)); err != nil {
					t.Fatal(err)
				}
			},
			wantN: 20,
		},
		{
			name: "segments overlap",
			damage: func(t *testing.T, dir string) {
				appendFile(t, segFile(dir, 11), append(rec(21, size), '\n'))
			},
			wantN: 21,
			check: func(t *testing.T, err error) {
				if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "overlap") {
					t.Fatalf("%v; want overlap", err)
				}
			},
		},
		{
			name: "dasSeq disagrees with the position",
			damage: func(t *testing.T, dir string) {
				b := lines(11, 10, size)
				copy(b[2*lineLen:], append(rec(99, size), '\n'))
				writeFile(t, segFile(dir, 11), b)
			},
			wantN: 12,
			check: func(t *testing.T, err error) {
				var se *SegmentError
				if !errors.As(err, &se) || !errors.Is(err, ErrCorrupt) || se.File != segmentName(11) || se.Offset != int64(2*lineLen) ||
					!strings.Contains(err.Error(), "record says dasSeq 99, position gives 13") {
					t.Fatalf("%v; want dasSeq mismatch at segment 11 offset %d", err, 2*lineLen)
				}
			},
		},
		{
			name: "zero-filled line in a sealed segment",
			damage: func(t *testing.T, dir string) {
				b := lines(1, 10, size)
				copy(b[5*lineLen:], make([]byte, 20))
				writeFile(t, segFile(dir, 1), b)
			},
			wantN: 5,
			check: func(t *testing.T, err error) {
				var se *SegmentError
				if !errors.As(err, &se) || !errors.Is(err, ErrCorrupt) || se.Offset != int64(5*lineLen) || !strings.Contains(err.Error(), "NUL") {
					t.Fatalf("%v; want NUL error at offset %d", err, 5*lineLen)
				}
			},
		},
		{
			name: "empty line",
			damage: func(t *testing.T, dir string) {
				appendFile(t, segFile(dir, 21), []byte("\n"))
			},
			wantN: 30,
			check: func(t *testing.T, err error) {
				if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "empty line") {
					t.Fatalf("%v; want empty line", err)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			threeSegments(t, dir, size)
			tt.damage(t, dir)
			r, err := OpenReader(dir, Start)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			es, err := readAllFrom(r)
			if len(es) != tt.wantN {
				t.Fatalf("%d entries before %v, want %d", len(es), err, tt.wantN)
			}
			if len(es) > 0 {
				checkEntries(t, es, es[0].Seq, size)
			}
			if tt.check == nil {
				if !isEOF(err) {
					t.Fatalf("Next: %v", err)
				}
				return
			}
			tt.check(t, err)
			if tt.thenN == 0 {
				// Final errors stay.
				if _, err2 := r.Next(context.Background()); err2 == nil || err2.Error() != err.Error() {
					t.Fatalf("after %v: %v", err, err2)
				}
				return
			}
			es, err = readAllFrom(r)
			if !isEOF(err) || len(es) != tt.thenN {
				t.Fatalf("after the gap: %d entries, %v", len(es), err)
			}
			checkEntries(t, es, tt.thenFirst, size)
		})
	}
}

func TestLogReaderServesOnlyDurable(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, Options{})
	defer l.Close()
	mustAppend(t, l, entries(1, 2, 100)...)
	r, err := l.NewReader(Start)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	// A line in the file beyond what the Log has committed (as between
	// write and fsync) is not served by a Log's reader.
	appendFile(t, segFile(dir, 1), append(rec(3, 100), '\n'))
	es, err := readAllFrom(r)
	if !isEOF(err) || len(es) != 2 {
		t.Fatalf("%d entries, %v; want 2 then EOF", len(es), err)
	}
	// A plain reader cannot know and serves it.
	es, err = readAll(t, dir, Start)
	if !isEOF(err) || len(es) != 3 {
		t.Fatalf("plain reader: %d entries, %v", len(es), err)
	}
}

func TestReaderConcurrentWithGroupCommit(t *testing.T) {
	// Readers racing a busy writer never see a partial or wrong record.
	dir := t.TempDir()
	l := mustOpen(t, dir, Options{SegmentBytes: 8 << 10, NoSync: true})
	defer l.Close()
	const total = 3000
	var wg sync.WaitGroup
	for i := 0; i < 3; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := OpenReader(dir, Start)
			if err != nil {
				t.Error(err)
				return
			}
			defer r.Close()
			r.Follow(true)
			r.SetPollInterval(time.Millisecond)
			for want := uint64(1); want <= total; want++ {
				e, err := nextWithin(t, r, 10*time.Second)
				if err != nil || e.Seq != want || string(e.Data) != string(rec(want, 150)) {
					t.Errorf("Next: seq %d (want %d) %v", e.Seq, want, err)
					return
				}
			}
		}()
	}
	var commits []*Commit
	for s := uint64(1); s <= total; s++ {
		commits = append(commits, l.AppendAsync(context.Background(), Entry{Seq: s, Data: rec(s, 150)}))
	}
	if err := commits[total-1].Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
}
