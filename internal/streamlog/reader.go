package streamlog

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"time"
)

// Position says where a Reader starts.
type Position struct {
	kind posKind
	seq  uint64
}

type posKind uint8

const (
	posStart posKind = iota
	posSeq
	posEnd
)

var (
	// Start is the oldest retained record.
	Start = Position{kind: posStart}
	// End is just after the last complete record when the reader is opened.
	End = Position{kind: posEnd}
)

// AtSeq is the record with sequence n. AtSeq(0) is Start.
func AtSeq(n uint64) Position {
	if n == 0 {
		return Start
	}
	return Position{kind: posSeq, seq: n}
}

func (p Position) String() string {
	switch p.kind {
	case posStart:
		return "start"
	case posEnd:
		return "end"
	}
	return fmt.Sprintf("seq %d", p.seq)
}

// DefaultPollInterval is how often a following Reader looks for new records.
const DefaultPollInterval = 50 * time.Millisecond

// Reader reads records in sequence order. It is not safe for concurrent use.
//
// Sequences come from the file layout: line i of segment s is first(s)+i.
// A line that is not complete is never served: in the newest segment it is
// "not yet committed" (ErrTornTail, or a wait when following); in a sealed
// segment it is ErrCorrupt. Errors name the segment file and byte offset.
type Reader struct {
	dir    string
	follow bool
	raw    bool
	// where the last served entry was
	lastFile string
	lastOff  int64
	poll     time.Duration
	// Set by Log.NewReader.
	wake  func() <-chan struct{}
	limit func() uint64

	from    Position
	cur     *segReader
	want    uint64 // entries below it are skipped (AtSeq)
	pending error  // a gap found while opening the first segment, reported once
	err     error  // sticky
}

type segReader struct {
	segInfo
	f      *os.File
	br     *bufio.Reader
	off    int64  // offset of the next line
	seq    uint64 // sequence of the next line
	sealed bool   // a newer segment exists, so this one no longer grows
	line   []byte
}

// OpenReader opens a reader on the log in dir. End is resolved now; Start
// and AtSeq when the first record is read. It does not follow by default.
func OpenReader(dir string, from Position) (*Reader, error) {
	return openReader(dir, from, nil, nil)
}

func openReader(dir string, from Position, wake func() <-chan struct{}, limit func() uint64) (*Reader, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("streamlog: open reader %s: %w", dir, err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("streamlog: open reader %s: not a directory", dir)
	}
	r := &Reader{dir: dir, poll: DefaultPollInterval, from: from, wake: wake, limit: limit}
	if from.kind == posEnd {
		if err := r.seekEnd(); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// Raw makes the reader serve every complete line as it is, with the
// sequence its position gives, instead of stopping at a line that is empty or
// whose dasSeq disagrees with its position: for a verifier that names every
// break rather than the first.
func (r *Reader) Raw(on bool) { r.raw = on }

// Where returns the segment file and byte offset of the entry Next last
// returned.
func (r *Reader) Where() (file string, offset int64) { return r.lastFile, r.lastOff }

// Follow sets whether Next waits for new records at the end of the log
// instead of returning io.EOF.
func (r *Reader) Follow(on bool) { r.follow = on }

// SetPollInterval sets how often a following reader looks for new records.
func (r *Reader) SetPollInterval(d time.Duration) {
	if d > 0 {
		r.poll = d
	}
}

// Close releases the open segment.
func (r *Reader) Close() error {
	if r.cur != nil {
		err := r.cur.f.Close()
		r.cur = nil
		return err
	}
	return nil
}

var errNoSegments = errors.New("no segments")

// seekEnd positions the reader after the last complete line of the newest segment.
func (r *Reader) seekEnd() error {
	for {
		segs, err := listSegments(r.dir)
		if err != nil {
			return err
		}
		if len(segs) == 0 {
			// Nothing yet: the first record written is the end.
			r.from = Start
			return nil
		}
		s := segs[len(segs)-1]
		sr, err := r.openSeg(s)
		if errors.Is(err, os.ErrNotExist) {
			continue // retention raced with us
		}
		if err != nil {
			return err
		}
		r.cur = sr
		r.want = math.MaxUint64
		for {
			_, st, err := r.readLine()
			if err != nil {
				return err
			}
			if st != lineOK {
				break
			}
		}
		r.want = 0
		return nil
	}
}

func (r *Reader) openSeg(s segInfo) (*segReader, error) {
	f, err := os.Open(segPath(r.dir, s.name))
	if err != nil {
		return nil, err
	}
	return &segReader{segInfo: s, f: f, br: bufio.NewReaderSize(f, 64<<10), seq: s.first}, nil
}

func (r *Reader) setCur(sr *segReader) {
	if r.cur != nil {
		r.cur.f.Close()
	}
	r.cur = sr
}

// openFirst opens the segment where reading starts.
func (r *Reader) openFirst() error {
	for {
		segs, err := listSegments(r.dir)
		if err != nil {
			return err
		}
		if len(segs) == 0 {
			return errNoSegments
		}
		i := 0
		if r.from.kind == posSeq {
			for i+1 < len(segs) && segs[i+1].first <= r.from.seq {
				i++
			}
			if r.from.seq < segs[0].first {
				r.pending = &GapError{From: r.from.seq, To: segs[0].first - 1, Next: segs[0].name, Retained: true}
			} else {
				r.want = r.from.seq
			}
		}
		sr, err := r.openSeg(segs[i])
		if errors.Is(err, os.ErrNotExist) {
			r.pending = nil
			continue
		}
		if err != nil {
			return fmt.Errorf("streamlog: open segment: %w", err)
		}
		r.setCur(sr)
		return nil
	}
}

type lineStatus uint8

const (
	lineOK   lineStatus = iota
	lineEOF             // clean end: no bytes after the last line
	lineTorn            // bytes without a newline, or a line that cannot be committed
)

// readLine reads the next line of the current segment. On lineEOF and
// lineTorn the position stays at the start of the unread line, so a later
// call re-reads it from the file after it grew or was cut.
func (r *Reader) readLine() (Entry, lineStatus, error) {
	s := r.cur
	s.line = s.line[:0]
	for {
		b, err := s.br.ReadSlice('\n')
		s.line = append(s.line, b...)
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF {
			st := lineEOF
			if len(s.line) > 0 {
				st = lineTorn
			}
			return Entry{}, st, r.rewind()
		}
		if err != nil {
			return Entry{}, 0, fmt.Errorf("streamlog: read segment %s offset %d: %w", s.name, s.off, err)
		}
		break
	}
	data := s.line[:len(s.line)-1]
	if msg := checkLine(data, s.seq); msg != "" && !(r.raw && (s.sealed || bytes.IndexByte(data, 0) < 0)) {
		if !s.sealed && bytes.IndexByte(data, 0) >= 0 {
			// A crashed writer's zero-filled tail: its recovery will cut it.
			return Entry{}, lineTorn, r.rewind()
		}
		return Entry{}, 0, &SegmentError{File: s.name, Offset: s.off, Err: ErrCorrupt, Detail: msg}
	}
	if r.limit != nil && s.seq > r.limit() {
		// Written but not yet synced: not served before it is durable.
		return Entry{}, lineEOF, r.rewind()
	}
	e := Entry{Seq: s.seq}
	r.lastFile, r.lastOff = s.name, s.off
	if s.seq >= r.want {
		e.Data = append([]byte(nil), data...)
	}
	s.off += int64(len(s.line))
	s.seq++
	return e, lineOK, nil
}

// rewind puts the file back at the start of the unread line.
func (r *Reader) rewind() error {
	s := r.cur
	if _, err := s.f.Seek(s.off, io.SeekStart); err != nil {
		return fmt.Errorf("streamlog: seek segment %s offset %d: %w", s.name, s.off, err)
	}
	s.br.Reset(s.f)
	return nil
}

// Next returns the next record. At the end of the log it returns io.EOF, or
// waits when following. An incomplete last line of the newest segment gives
// an error that wraps ErrTornTail when not following; it is not sticky. A
// GapError is returned once, and reading then goes on after the gap; other
// errors are final.
func (r *Reader) Next(ctx context.Context) (Entry, error) {
	if r.err != nil {
		return Entry{}, r.err
	}
	e, err := r.next(ctx)
	if err != nil && err != io.EOF && !errors.Is(err, ErrTornTail) && !errors.Is(err, ErrGap) &&
		!errors.Is(err, ErrRetained) && ctx.Err() == nil {
		r.err = err
	}
	return e, err
}

func (r *Reader) next(ctx context.Context) (Entry, error) {
	for {
		var wake <-chan struct{}
		if r.follow && r.wake != nil {
			// Taken before looking, so a commit in between is not missed.
			wake = r.wake()
		}
		if r.cur == nil {
			err := r.openFirst()
			if err == errNoSegments {
				if !r.follow {
					return Entry{}, io.EOF
				}
				if err := r.wait(ctx, wake); err != nil {
					return Entry{}, err
				}
				continue
			}
			if err != nil {
				return Entry{}, err
			}
			if r.pending != nil {
				err := r.pending
				r.pending = nil
				return Entry{}, err
			}
		}
		e, st, err := r.readLine()
		if err != nil {
			return Entry{}, err
		}
		if st == lineOK {
			if e.Seq < r.want {
				continue
			}
			return e, nil
		}
		s := r.cur
		if s.sealed {
			if st == lineTorn {
				return Entry{}, &SegmentError{File: s.name, Offset: s.off, Err: ErrCorrupt,
					Detail: fmt.Sprintf("torn line in sealed segment (%d bytes without newline)", len(s.line))}
			}
			if err := r.advance(); err != nil {
				return Entry{}, err
			}
			continue
		}
		// Is there a newer segment? Then this one is complete: the writer
		// creates the next file only after the last write here returned.
		segs, err := listSegments(r.dir)
		if err != nil {
			return Entry{}, err
		}
		if len(segs) > 0 && segs[len(segs)-1].first > s.first {
			s.sealed = true
			continue // read once more: it may have grown before the rotation
		}
		if err := r.checkShrunk(); err != nil {
			return Entry{}, err
		}
		if !r.follow {
			if st == lineTorn {
				return Entry{}, &SegmentError{File: s.name, Offset: s.off, Err: ErrTornTail,
					Detail: fmt.Sprintf("torn line (no newline, %d bytes): not yet committed", len(s.line))}
			}
			return Entry{}, io.EOF
		}
		if err := r.wait(ctx, wake); err != nil {
			return Entry{}, err
		}
	}
}

// checkShrunk reports a segment cut below what was already served.
func (r *Reader) checkShrunk() error {
	s := r.cur
	st, err := s.f.Stat()
	if err != nil {
		return fmt.Errorf("streamlog: stat segment %s: %w", s.name, err)
	}
	if st.Size() < s.off {
		return &SegmentError{File: s.name, Offset: s.off, Err: ErrCorrupt,
			Detail: fmt.Sprintf("segment shrank to %d bytes below records already read", st.Size())}
	}
	return nil
}

// advance moves from a finished sealed segment to the next one, reporting
// a missing range of sequences.
func (r *Reader) advance() error {
	s := r.cur
	for {
		segs, err := listSegments(r.dir)
		if err != nil {
			return err
		}
		i := 0
		for i < len(segs) && segs[i].first <= s.first {
			i++
		}
		if i == len(segs) {
			// Cannot happen: sealed means a newer segment existed, and
			// retention never deletes the newest one.
			return &SegmentError{File: s.name, Offset: s.off, Err: ErrCorrupt, Detail: "next segment vanished"}
		}
		next := segs[i]
		if next.first < s.seq {
			return &SegmentError{File: s.name, Offset: s.off, Err: ErrCorrupt,
				Detail: fmt.Sprintf("segment ends at seq %d but %s starts at %d (overlap)", s.seq-1, next.name, next.first)}
		}
		sr, err := r.openSeg(next)
		if errors.Is(err, os.ErrNotExist) {
			continue // deleted by retention meanwhile: look again
		}
		if err != nil {
			return fmt.Errorf("streamlog: open segment: %w", err)
		}
		r.setCur(sr)
		if next.first > s.seq {
			// Retention deletes oldest first: if nothing older than the gap
			// is left, the gap is retention overtaking this reader.
			return &GapError{From: s.seq, To: next.first - 1, Next: next.name, Retained: i == 0}
		}
		return nil
	}
}

func (r *Reader) wait(ctx context.Context, wake <-chan struct{}) error {
	t := time.NewTimer(r.poll)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
	case <-wake:
	}
	return nil
}
