package streamlog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// rec is a DAS-shaped record line for seq, padded to about size bytes.
func rec(seq uint64, size int) []byte {
	head := `{"type":"DatabaseActivityMonitoringRecords","version":"1.2","databaseActivityEvents":"`
	tail := fmt.Sprintf(`","key":"a2V5","dasStreamId":"db-T","dasSeq":%d,"dasPrev":"00"}`, seq)
	pad := size - len(head) - len(tail)
	if pad < 1 {
		pad = 1
	}
	return []byte(head + strings.Repeat(string(rune('A'+seq%26)), pad) + tail)
}

func entries(first uint64, n, size int) []Entry {
	es := make([]Entry, n)
	for i := range es {
		s := first + uint64(i)
		es[i] = Entry{Seq: s, Data: rec(s, size)}
	}
	return es
}

// logBuf collects log output for assertions.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func testLogger(buf *logBuf) *slog.Logger {
	if buf == nil {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(buf, nil))
}

func mustOpen(t testing.TB, dir string, o Options) *Log {
	t.Helper()
	if o.Logger == nil {
		o.Logger = testLogger(nil)
	}
	l, err := Open(dir, o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return l
}

func mustAppend(t testing.TB, l *Log, es ...Entry) {
	t.Helper()
	if err := l.Append(context.Background(), es...); err != nil {
		t.Fatalf("Append(%d..): %v", es[0].Seq, err)
	}
}

// readAll reads without following until an error; it returns the entries
// and the error (io.EOF at a clean end).
func readAll(t testing.TB, dir string, from Position) ([]Entry, error) {
	t.Helper()
	r, err := OpenReader(dir, from)
	if err != nil {
		t.Fatalf("OpenReader: %v", err)
	}
	defer r.Close()
	var out []Entry
	for {
		e, err := r.Next(context.Background())
		if err != nil {
			return out, err
		}
		out = append(out, e)
	}
}

// checkEntries asserts es are records first..first+len-1 with their expected bytes.
func checkEntries(t testing.TB, es []Entry, first uint64, size int) {
	t.Helper()
	for i, e := range es {
		want := first + uint64(i)
		if e.Seq != want {
			t.Fatalf("entry %d: seq %d, want %d", i, e.Seq, want)
		}
		if !bytes.Equal(e.Data, rec(want, size)) {
			t.Fatalf("entry seq %d: data %.60q..., want %.60q...", e.Seq, e.Data, rec(want, size))
		}
	}
}

func segNames(t testing.TB, dir string) []string {
	t.Helper()
	segs, err := listSegments(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range segs {
		names = append(names, s.name)
	}
	return names
}

func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func appendFile(t testing.TB, path string, data []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// lines joins records first..first+n-1 into segment file content.
func lines(first uint64, n, size int) []byte {
	var b []byte
	for i := 0; i < n; i++ {
		b = append(b, rec(first+uint64(i), size)...)
		b = append(b, '\n')
	}
	return b
}

func segFile(dir string, first uint64) string { return filepath.Join(dir, segmentName(first)) }

func nextWithin(t testing.TB, r *Reader, d time.Duration) (Entry, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return r.Next(ctx)
}

func isEOF(err error) bool { return errors.Is(err, io.EOF) }
