// Package streamlog is the local stream log, das's embedded default sink:
// append-only segment files under one directory, one DAS record (a line of
// JSON) per line, each line at a gap-free sequence number chosen by the caller.
//
// A segment is named by the sequence of its first line (20 digits + ".log");
// line i of a segment holds sequence first+i, so positions come from the file
// layout and readers never parse JSON. When a line carries `"dasSeq":<n>`, n
// must agree with its position; both the writer and the readers check it.
//
// The writer commits in groups: every record queued while the previous
// write+fsync runs is written and synced together, so a single producer can
// pipeline (AppendAsync) and many concurrent Append calls share one fsync.
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
	"strconv"
	"sync"
	"syscall"
	"time"
)

// Options configures a Log. The zero value is usable.
type Options struct {
	SegmentBytes int64         // rotate when a segment reaches this size (default 64 MiB)
	RetainBytes  int64         // delete oldest whole segments while the total exceeds this (0 = no limit); never the active one
	RetainAge    time.Duration // delete segments whose newest record is older (0 = no limit); never the active one
	NoSync       bool          // skip fsync: for benchmarks only
	Logger       *slog.Logger  // default slog.Default()

	// MaxPendingBytes bounds the records queued behind the commit in flight;
	// AppendAsync waits for room beyond it (default 16 MiB). One call larger
	// than the bound is still accepted when nothing else is queued.
	MaxPendingBytes int
	// Now is the clock used for age retention (default time.Now); tests inject one.
	Now func() time.Time
}

const (
	defaultSegmentBytes = 64 << 20
	defaultMaxPending   = 16 << 20
)

// Entry is one record: its sequence and its line without the trailing newline.
type Entry struct {
	Seq  uint64
	Data []byte
}

// Commit is the outcome of one AppendAsync call. All calls that land in the
// same commit group share one Commit.
type Commit struct {
	done chan struct{}
	err  error
}

// Done is closed once the records are durable or have failed.
func (c *Commit) Done() <-chan struct{} { return c.done }

// Err is the commit's result; valid once Done is closed.
func (c *Commit) Err() error {
	<-c.done
	return c.err
}

// Wait blocks until the records are durable or ctx ends. When ctx ends first
// the records may still be committed later.
func (c *Commit) Wait(ctx context.Context) error {
	select {
	case <-c.done:
		return c.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func doneCommit(err error) *Commit {
	c := &Commit{done: make(chan struct{}), err: err}
	close(c.done)
	return c
}

// group is one commit group: the lines queued while the previous group was
// being written.
type group struct {
	buf      []byte
	first    uint64
	last     uint64
	lastLine int // offset in buf of the last line
	commit   *Commit
}

// Log is the writer of one stream log directory. It is safe for concurrent use.
type Log struct {
	dir  string
	opts Options
	log  *slog.Logger
	lock *os.File

	mu       sync.Mutex
	pending  *group
	spare    *group        // reused buffer
	room     chan struct{} // closed when the flusher takes the pending group
	roomUsed bool          // someone waits on room
	nextSeq  uint64        // sequence the next queued entry must have
	closed   bool
	err      error // sticky: a failed write or fsync leaves the file in doubt
	lastSeq  uint64
	lastData []byte
	notify   chan struct{} // closed and replaced after each commit, for readers
	notified bool          // a reader holds notify
	stats    Stats

	kick chan struct{}
	done chan struct{}

	// Owned by the flusher goroutine (and Open before it starts).
	f        *os.File
	segFirst uint64
	size     int64
}

// Open opens (creating it 0700 if needed) the log in dir for writing. It takes
// an exclusive lock, then recovers from a crash: a torn last line of the
// newest segment (no trailing newline, or zero-filled) is cut and logged with
// its file, offset and size. Last reports the last record found.
func Open(dir string, o Options) (*Log, error) {
	if o.SegmentBytes < 0 || o.RetainBytes < 0 || o.RetainAge < 0 || o.MaxPendingBytes < 0 {
		return nil, fmt.Errorf("streamlog: open %s: negative option", dir)
	}
	if o.SegmentBytes == 0 {
		o.SegmentBytes = defaultSegmentBytes
	}
	if o.MaxPendingBytes == 0 {
		o.MaxPendingBytes = defaultMaxPending
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("streamlog: open %s: %w", dir, err)
		}
		if err := syncDir(filepath.Dir(filepath.Clean(dir))); err != nil {
			return nil, fmt.Errorf("streamlog: open %s: sync parent: %w", dir, err)
		}
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	l := &Log{
		dir:    dir,
		opts:   o,
		log:    o.Logger,
		lock:   lock,
		room:   make(chan struct{}),
		notify: make(chan struct{}),
		kick:   make(chan struct{}, 1),
		done:   make(chan struct{}),
	}
	if err := l.recover(); err != nil {
		if l.f != nil {
			l.f.Close()
		}
		lock.Close()
		return nil, err
	}
	l.nextSeq = l.lastSeq + 1
	if err := l.enforceRetention(); err != nil {
		l.log.Warn("streamlog: retention", "dir", dir, "err", err)
	}
	l.log.Info("streamlog: opened", "dir", dir, "lastSeq", l.lastSeq, "segment", filepath.Base(l.activeName()))
	go l.flusher()
	return l, nil
}

func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, lockName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("streamlog: open %s: lock: %w", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("streamlog: open %s: locked by another writer", dir)
		}
		return nil, fmt.Errorf("streamlog: open %s: lock: %w", dir, err)
	}
	return f, nil
}

func (l *Log) activeName() string {
	if l.f == nil {
		return ""
	}
	return segmentName(l.segFirst)
}

// recover finds the newest segment, cuts its torn tail and learns the last
// record. An empty newest segment (a crash between creating it and writing
// to it) stays the active one: a reader may already have moved to it, and
// removing it would let a later rotation recreate the name under that reader.
func (l *Log) recover() error {
	segs, err := listSegments(l.dir)
	if err != nil || len(segs) == 0 {
		return err
	}
	s := segs[len(segs)-1]
	if s.first == 0 {
		return fmt.Errorf("streamlog: open %s: segment %s: sequence 0 is not valid", l.dir, s.name)
	}
	path := segPath(l.dir, s.name)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("streamlog: open %s: %w", path, err)
	}
	n, size, last, err := l.recoverSegment(f, s.name)
	if err == nil {
		_, err = f.Seek(size, io.SeekStart)
	}
	if err != nil {
		f.Close()
		return err
	}
	l.f, l.segFirst, l.size = f, s.first, size
	l.lastSeq = s.first + uint64(n) - 1
	l.lastData = last
	if n == 0 && len(segs) > 1 {
		// The last record is the previous segment's last line.
		prev := segs[len(segs)-2]
		off, line, err := readLastLine(segPath(l.dir, prev.name))
		if err != nil {
			return fmt.Errorf("streamlog: open %s: last record: %w", l.dir, err)
		}
		if msg := checkLine(line, l.lastSeq); msg != "" {
			return &SegmentError{File: prev.name, Offset: off, Err: ErrCorrupt, Detail: msg}
		}
		l.lastData = line
	}
	return nil
}

// readLastLine returns the last complete line of a sealed segment.
func readLastLine(path string) (int64, []byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, nil, err
	}
	size := st.Size()
	if size == 0 {
		return 0, nil, &SegmentError{File: filepath.Base(path), Err: ErrCorrupt, Detail: "sealed segment is empty"}
	}
	var b [1]byte
	if _, err := f.ReadAt(b[:], size-1); err != nil {
		return 0, nil, err
	}
	if b[0] != '\n' {
		return 0, nil, &SegmentError{File: filepath.Base(path), Offset: size, Err: ErrCorrupt, Detail: "sealed segment ends in a torn line"}
	}
	return lastLine(f, size)
}

// recoverSegment counts the complete lines of the newest segment, cutting a
// torn tail, and returns the line count, the size after cutting and the last
// line.
func (l *Log) recoverSegment(f *os.File, name string) (n int, size int64, last []byte, err error) {
	fail := func(off int64, format string, args ...any) error {
		return &SegmentError{File: name, Offset: off, Err: ErrCorrupt, Detail: fmt.Sprintf(format, args...)}
	}
	st, err := f.Stat()
	if err != nil {
		return 0, 0, nil, fmt.Errorf("streamlog: stat %s: %w", name, err)
	}
	size = st.Size()
	// Count lines and find where the last complete one ends.
	buf := make([]byte, 1<<20)
	var end int64 // offset just past the last newline
	var off int64
	for off < size {
		k, rerr := f.ReadAt(buf, off)
		chunk := buf[:k]
		n += bytes.Count(chunk, []byte{'\n'})
		if i := bytes.LastIndexByte(chunk, '\n'); i >= 0 {
			end = off + int64(i) + 1
		}
		off += int64(k)
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return 0, 0, nil, fmt.Errorf("streamlog: read %s: %w", name, rerr)
		}
	}
	size = off
	cut := func(at int64, reason string) error {
		if err := f.Truncate(at); err != nil {
			return fmt.Errorf("streamlog: cut torn tail of %s: %w", name, err)
		}
		l.log.Warn("streamlog: cut torn line", "file", name, "offset", at, "bytes", size-at, "reason", reason)
		size = at
		return nil
	}
	cutAny := false
	if end < size {
		if err := cut(end, "no trailing newline"); err != nil {
			return 0, 0, nil, err
		}
		cutAny = true
	}
	// A crash can leave zero-filled blocks that end in a newline of a later
	// write; such lines were never acknowledged: cut them too.
	for n > 0 {
		start, line, err := lastLine(f, size)
		if err != nil {
			return 0, 0, nil, fmt.Errorf("streamlog: read %s: %w", name, err)
		}
		if len(line) == 0 || bytes.IndexByte(line, 0) >= 0 {
			if err := cut(start, "empty or zero-filled line"); err != nil {
				return 0, 0, nil, err
			}
			cutAny = true
			n--
			continue
		}
		last = line
		break
	}
	if cutAny {
		if err := f.Sync(); err != nil {
			return 0, 0, nil, fmt.Errorf("streamlog: sync %s: %w", name, err)
		}
	}
	if n > 0 {
		first, _ := parseSegmentName(name)
		want := first + uint64(n) - 1
		if msg := checkLine(last, want); msg != "" {
			return 0, 0, nil, fail(size-int64(len(last))-1, "%s", msg)
		}
	}
	return n, size, last, nil
}

// lastLine returns the start offset and the bytes (without newline) of the
// line that ends just before size, which is at a newline.
func lastLine(f *os.File, size int64) (int64, []byte, error) {
	end := size - 1 // the newline
	var line []byte
	pos := end
	chunk := make([]byte, 64<<10)
	for pos > 0 {
		k := int64(len(chunk))
		if k > pos {
			k = pos
		}
		if _, err := f.ReadAt(chunk[:k], pos-k); err != nil {
			return 0, nil, err
		}
		if i := bytes.LastIndexByte(chunk[:k], '\n'); i >= 0 {
			line = append(append([]byte(nil), chunk[i+1:k]...), line...)
			return pos - k + int64(i) + 1, line, nil
		}
		line = append(append([]byte(nil), chunk[:k]...), line...)
		pos -= k
	}
	return 0, line, nil
}

// Last returns the last durable record, or 0, nil when the log is empty.
func (l *Log) Last() (seq uint64, data []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lastData == nil {
		return l.lastSeq, nil
	}
	return l.lastSeq, append([]byte(nil), l.lastData...)
}

// Stats counts what a Log has committed since Open.
type Stats struct {
	Commits   uint64 // commit groups: one write and one fsync each
	Records   uint64
	Bytes     uint64
	Rotations uint64 // segments created
}

// Stats returns the counters.
func (l *Log) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stats
}

// Dir returns the log's directory.
func (l *Log) Dir() string { return l.dir }

// Append writes entries and returns once they are durable (fsynced). Entries
// must continue the sequence: the first one follows the last entry queued
// (Last()+1 when no AppendAsync is in flight), the others are consecutive.
// Each Data is one line: not empty, without newline or NUL bytes, and a
// `"dasSeq":n` in it must equal its Seq. If ctx ends while waiting for the
// disk, the entries stay queued and their sequences are used.
func (l *Log) Append(ctx context.Context, entries ...Entry) error {
	return l.AppendAsync(ctx, entries...).Wait(ctx)
}

// AppendAsync queues entries behind those already queued and returns without
// waiting for the disk; the Commit reports when they are durable. Data is
// copied before it returns. ctx bounds only the wait for queue room; a
// rejected call (bad sequence, bad line, closed log) consumes no sequence.
func (l *Log) AppendAsync(ctx context.Context, entries ...Entry) *Commit {
	if len(entries) == 0 {
		return doneCommit(nil)
	}
	size := 0
	for i := range entries {
		d := entries[i].Data
		switch {
		case len(d) == 0:
			return doneCommit(fmt.Errorf("streamlog: append seq %d: empty record", entries[i].Seq))
		case bytes.IndexByte(d, '\n') >= 0:
			return doneCommit(fmt.Errorf("streamlog: append seq %d: record contains a newline", entries[i].Seq))
		case bytes.IndexByte(d, 0) >= 0:
			return doneCommit(fmt.Errorf("streamlog: append seq %d: record contains a NUL byte", entries[i].Seq))
		}
		if i > 0 && entries[i].Seq != entries[i-1].Seq+1 {
			return doneCommit(fmt.Errorf("streamlog: append: seq %d follows %d in one call", entries[i].Seq, entries[i-1].Seq))
		}
		if n, ok, valid := recordSeq(d); ok && (!valid || n != entries[i].Seq) {
			return doneCommit(fmt.Errorf("streamlog: append seq %d: record's dasSeq is %s", entries[i].Seq, seqText(n, valid)))
		}
		size += len(d) + 1
	}

	l.mu.Lock()
	for {
		if l.closed {
			l.mu.Unlock()
			return doneCommit(ErrClosed)
		}
		if l.err != nil {
			err := l.err
			l.mu.Unlock()
			return doneCommit(err)
		}
		if l.pending == nil || len(l.pending.buf) == 0 || len(l.pending.buf)+size <= l.opts.MaxPendingBytes {
			break
		}
		room := l.room
		l.roomUsed = true
		l.mu.Unlock()
		select {
		case <-room:
		case <-ctx.Done():
			return doneCommit(fmt.Errorf("streamlog: append: waiting for room: %w", ctx.Err()))
		}
		l.mu.Lock()
	}
	if entries[0].Seq != l.nextSeq {
		next := l.nextSeq
		l.mu.Unlock()
		return doneCommit(fmt.Errorf("streamlog: append: seq %d does not continue the log (next is %d)", entries[0].Seq, next))
	}
	g := l.pending
	if g == nil {
		g = l.spare
		l.spare = nil
		if g == nil {
			g = &group{}
		}
		g.buf = g.buf[:0]
		g.first = entries[0].Seq
		g.commit = &Commit{done: make(chan struct{})}
		l.pending = g
	}
	for _, e := range entries {
		g.lastLine = len(g.buf)
		g.buf = append(g.buf, e.Data...)
		g.buf = append(g.buf, '\n')
	}
	g.last = entries[len(entries)-1].Seq
	l.nextSeq = g.last + 1
	c := g.commit
	l.mu.Unlock()
	select {
	case l.kick <- struct{}{}:
	default:
	}
	return c
}

func seqText(n uint64, valid bool) string {
	if !valid {
		return "not a number"
	}
	return strconv.FormatUint(n, 10)
}

// flusher is the group-commit leader: it takes everything queued, writes it
// with one write and one fsync, then completes the group's waiters, who were
// all followers of this one commit.
func (l *Log) flusher() {
	defer close(l.done)
	var tick <-chan time.Time
	if l.opts.RetainAge > 0 {
		every := min(l.opts.RetainAge/4, time.Minute)
		every = max(every, time.Second)
		t := time.NewTicker(every)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-l.kick:
		case <-tick:
			if err := l.enforceRetention(); err != nil {
				l.log.Warn("streamlog: retention", "dir", l.dir, "err", err)
			}
			continue
		}
		for {
			l.mu.Lock()
			g := l.pending
			l.pending = nil
			closed := l.closed
			if g != nil && l.roomUsed {
				close(l.room)
				l.room = make(chan struct{})
				l.roomUsed = false
			}
			l.mu.Unlock()
			if g == nil {
				if closed {
					return
				}
				break
			}
			l.commit(g)
		}
	}
}

func (l *Log) commit(g *group) {
	l.mu.Lock()
	err := l.err
	l.mu.Unlock()
	rotated := false
	if err == nil {
		rotated, err = l.write(g.buf, g.first)
	}
	l.mu.Lock()
	if err != nil {
		if l.err == nil {
			l.err = err
		}
	} else {
		l.stats.Commits++
		l.stats.Records += g.last - g.first + 1
		l.stats.Bytes += uint64(len(g.buf))
		if rotated {
			l.stats.Rotations++
		}
		l.lastSeq = g.last
		l.lastData = append(l.lastData[:0], g.buf[g.lastLine:len(g.buf)-1]...)
		if l.notified {
			close(l.notify)
			l.notify = make(chan struct{})
			l.notified = false
		}
	}
	g.commit.err = err
	close(g.commit.done)
	g.commit = nil
	if cap(g.buf) <= 4*l.opts.MaxPendingBytes {
		l.spare = g
	}
	l.mu.Unlock()
	if rotated {
		if err := l.enforceRetention(); err != nil {
			l.log.Warn("streamlog: retention", "dir", l.dir, "err", err)
		}
	}
}

// write appends one group to the active segment, rotating first when the
// segment is full, and syncs it.
func (l *Log) write(buf []byte, first uint64) (rotated bool, err error) {
	if l.f == nil || l.size >= l.opts.SegmentBytes && l.size > 0 {
		if err := l.rotate(first); err != nil {
			return false, err
		}
		rotated = true
	}
	if _, err := l.f.Write(buf); err != nil {
		// Best effort: leave no partial line behind for readers.
		if terr := l.f.Truncate(l.size); terr == nil {
			l.f.Seek(l.size, io.SeekStart)
		}
		return rotated, fmt.Errorf("streamlog: write %s: %w", l.activeName(), err)
	}
	l.size += int64(len(buf))
	if !l.opts.NoSync {
		if err := l.f.Sync(); err != nil {
			return rotated, fmt.Errorf("streamlog: sync %s: %w", l.activeName(), err)
		}
	}
	return rotated, nil
}

// rotate starts a new segment whose first record is first. The old segment
// is complete (each group was synced) before the new file appears, which is
// what tells readers the old one is sealed.
func (l *Log) rotate(first uint64) error {
	name := segmentName(first)
	f, err := os.OpenFile(segPath(l.dir, name), os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("streamlog: create segment: %w", err)
	}
	if !l.opts.NoSync {
		if err := syncDir(l.dir); err != nil {
			f.Close()
			return fmt.Errorf("streamlog: sync %s: %w", l.dir, err)
		}
	}
	if l.f != nil {
		if err := l.f.Close(); err != nil {
			l.log.Warn("streamlog: close segment", "file", l.activeName(), "err", err)
		}
	}
	l.f, l.segFirst, l.size = f, first, 0
	return nil
}

// enforceRetention deletes the oldest sealed segments beyond RetainBytes or
// RetainAge. Only a prefix is deleted, so retention never opens a gap
// between retained segments. The active segment is never deleted.
func (l *Log) enforceRetention() error {
	if l.opts.RetainBytes == 0 && l.opts.RetainAge == 0 {
		return nil
	}
	segs, err := listSegments(l.dir)
	if err != nil {
		return err
	}
	type seg struct {
		name  string
		size  int64
		mtime time.Time
	}
	var all []seg
	var total int64
	for _, s := range segs {
		st, err := os.Stat(segPath(l.dir, s.name))
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			return fmt.Errorf("streamlog: stat %s: %w", s.name, err)
		}
		all = append(all, seg{s.name, st.Size(), st.ModTime()})
		total += st.Size()
	}
	now := l.opts.Now()
	active := segmentName(l.segFirst)
	removed := 0
	for _, s := range all {
		if s.name == active || l.f == nil {
			break
		}
		overBytes := l.opts.RetainBytes > 0 && total > l.opts.RetainBytes
		tooOld := l.opts.RetainAge > 0 && now.Sub(s.mtime) > l.opts.RetainAge
		if !overBytes && !tooOld {
			break
		}
		if err := os.Remove(segPath(l.dir, s.name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("streamlog: retention: %w", err)
		}
		total -= s.size
		removed++
		l.log.Info("streamlog: retention removed segment", "file", s.name, "bytes", s.size, "age", now.Sub(s.mtime).Round(time.Second), "overBytes", overBytes)
	}
	if removed > 0 && !l.opts.NoSync {
		if err := syncDir(l.dir); err != nil {
			return fmt.Errorf("streamlog: sync %s: %w", l.dir, err)
		}
	}
	return nil
}

// Close commits what is queued, then closes the files and releases the lock.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ErrClosed
	}
	l.closed = true
	l.mu.Unlock()
	select {
	case l.kick <- struct{}{}:
	default:
	}
	<-l.done
	var err error
	if l.f != nil {
		err = l.f.Close()
	}
	l.mu.Lock()
	if l.err != nil {
		err = l.err
	}
	l.mu.Unlock()
	if lerr := l.lock.Close(); err == nil {
		err = lerr
	}
	if err != nil {
		return fmt.Errorf("streamlog: close %s: %w", l.dir, err)
	}
	return nil
}

// NewReader opens a reader on this log. Besides polling, it wakes at each
// commit, and it serves only durable records: a line written but not yet
// synced stays unseen.
func (l *Log) NewReader(from Position) (*Reader, error) {
	wake := func() <-chan struct{} {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.notified = true
		return l.notify
	}
	limit := func() uint64 {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.lastSeq
	}
	return openReader(l.dir, from, wake, limit)
}

// Records is the log as the stream writer's sink: one record per sequence
// number, each waited on alone (pipeline.Sink).
type Records struct{ L *Log }

// Last returns the newest record.
func (r Records) Last() (uint64, []byte) { return r.L.Last() }

// AppendAsync queues record seq; wait returns once it is durable.
func (r Records) AppendAsync(seq uint64, line []byte) (wait func() error) {
	return r.L.AppendAsync(context.Background(), Entry{Seq: seq, Data: line}).Err
}

// Newest returns up to n of the newest durable records, oldest first: a
// restarted das reads them back to learn what is durable already (the
// audit tailers' floor). Records lost to retention are not an error.
func (r Records) Newest(ctx context.Context, n int) ([][]byte, error) {
	last, _ := r.L.Last()
	if last == 0 || n <= 0 {
		return nil, nil
	}
	from := Start
	if last > uint64(n) {
		from = AtSeq(last - uint64(n) + 1)
	}
	rd, err := r.L.NewReader(from)
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	var out [][]byte
	for {
		e, err := rd.Next(ctx)
		switch {
		case err == nil:
			out = append(out, e.Data)
		case errors.Is(err, ErrGap), errors.Is(err, ErrRetained):
			// Reported once; reading goes on after the gap.
		case errors.Is(err, io.EOF), errors.Is(err, ErrTornTail):
			if len(out) > n { // records appended since Last
				out = out[len(out)-n:]
			}
			return out, nil
		default:
			return nil, fmt.Errorf("streamlog: reading the newest records back: %w", err)
		}
	}
}
