package streamlog

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"testing"
)

// FuzzReader: arbitrary bytes as one or two segment files. Reading must not
// panic and must give complete lines at their positions, then io.EOF or an
// error that names a file and an offset inside it (or a sequence gap).
func FuzzReader(f *testing.F) {
	f.Add(lines(1, 3, 120), uint64(1), uint16(0))
	f.Add(lines(1, 6, 120), uint64(1), uint16(len(lines(1, 3, 120))))
	f.Add(append(lines(1, 2, 120), []byte(`{"dasSeq":3`)...), uint64(1), uint16(0))
	f.Add([]byte("{\"dasSeq\":7}\n{\"dasSeq\":8}\n"), uint64(7), uint16(0))
	f.Add([]byte("{\"dasSeq\":7}\n\n{\"x\":\"\x00\"}\n"), uint64(7), uint16(13))
	f.Add([]byte("a\nb\nc\\\"dasSeq\":9\n{\"dasSeq\": \"x\"}\n"), uint64(5), uint16(0x8004))
	f.Add([]byte{}, uint64(1), uint16(0))
	f.Fuzz(func(t *testing.T, data []byte, first uint64, split uint16) {
		first = first%(1<<62) + 1
		dir := t.TempDir()
		files := map[string][]byte{}
		a, b := data, []byte(nil)
		if k := int(split & 0x7fff); k > 0 && k < len(data) {
			a, b = data[:k], data[k:]
		}
		files[segmentName(first)] = a
		if b != nil {
			// The second segment follows the first, or leaves a gap.
			second := first + uint64(bytes.Count(a, []byte{'\n'})) + uint64(split>>15)
			files[segmentName(second)] = b
		}
		for name, content := range files {
			writeFile(t, dir+"/"+name, content)
		}
		r, err := OpenReader(dir, Start)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		want := first
		for i := 0; i <= len(data)+3; i++ {
			e, err := r.Next(context.Background())
			if err == nil {
				if e.Seq != want {
					t.Fatalf("entry seq %d, want %d", e.Seq, want)
				}
				if len(e.Data) == 0 || bytes.ContainsAny(e.Data, "\n\x00") {
					t.Fatalf("served a bad line %q", e.Data)
				}
				if !bytes.Contains(data, append(e.Data, '\n')) {
					t.Fatalf("served bytes not in the input: %q", e.Data)
				}
				want++
				continue
			}
			if err == io.EOF {
				return
			}
			var se *SegmentError
			var ge *GapError
			switch {
			case errors.As(err, &se):
				content, ok := files[se.File]
				if !ok || se.Offset < 0 || se.Offset > int64(len(content)) {
					t.Fatalf("error names %s offset %d: not a place in the input: %v", se.File, se.Offset, err)
				}
				if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrTornTail) {
					t.Fatalf("untyped segment error: %v", err)
				}
				return
			case errors.As(err, &ge):
				if ge.From != want || ge.To < ge.From {
					t.Fatalf("gap %d..%d, expected at %d", ge.From, ge.To, want)
				}
				want = ge.To + 1
				continue
			default:
				t.Fatalf("imprecise error: %v", err)
			}
		}
		t.Fatalf("reader did not stop")
	})
}

// FuzzRecover: arbitrary bytes as the newest segment. Open either refuses
// with a precise error or keeps a prefix of the file that ends in a newline.
func FuzzRecover(f *testing.F) {
	f.Add(lines(1, 3, 120))
	f.Add(append(lines(1, 2, 120), []byte(`{"dasSeq":3`)...))
	f.Add(append(lines(1, 2, 120), make([]byte, 40)...))
	f.Add([]byte("{\"dasSeq\":1}\n\x00\x00\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		path := segFile(dir, 1)
		writeFile(t, path, data)
		l, err := Open(dir, Options{Logger: testLogger(nil)})
		if err != nil {
			var se *SegmentError
			if !errors.As(err, &se) || se.File != segmentName(1) {
				t.Fatalf("imprecise error: %v", err)
			}
			return
		}
		defer l.Close()
		kept, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(data, kept) || len(kept) > 0 && kept[len(kept)-1] != '\n' {
			t.Fatalf("kept %q of %q", kept, data)
		}
		seq, _ := l.Last()
		if n := uint64(bytes.Count(kept, []byte{'\n'})); seq != n {
			t.Fatalf("Last() = %d with %d lines kept", seq, n)
		}
		if err := l.Append(context.Background(), Entry{Seq: seq + 1, Data: []byte(`{"ok":1}`)}); err != nil {
			t.Fatalf("Append after recovery: %v", err)
		}
	})
}
