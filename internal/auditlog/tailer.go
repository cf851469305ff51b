package auditlog

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/das-mysql/das/internal/event"
)

// Sink takes the tailer's events, a batch at a time, in order. Submit may
// block (backpressure) and copies the events: evs is reused once it
// returns. ack is called once all of a batch's events are durable, and
// never if one of them was lost; acks may come from any goroutine and in
// any order, the checkpoint only ever covers a gap-free prefix of batches.
type Sink interface {
	Submit(ctx context.Context, evs []event.Event, ack func()) error
}

// Start says where a Tailer begins when it has no checkpoint.
type Start int

const (
	StartCurrent Start = iota // the beginning of the current file (Path)
	StartOldest               // the beginning of the oldest rotated file (Path.N) still there
	StartEnd                  // the end of the current file: only lines written from now on
)

// Options configure a Tailer.
type Options struct {
	Path     string // the server_audit_file_path
	StateDir string // where the checkpoint file lives (created 0700 if missing)

	MaxLine       int            // longer lines are cut (Extra "dasLineCut"); default 1 MiB
	Poll          time.Duration  // how often to look for new data at the end of the file; default 50ms
	Location      *time.Location // the server's time zone; default time.Local
	ServerHost    string         // replaces the lines' serverhost when set
	QueryLogLimit int            // the server's server_audit_query_log_limit; see EventOptions
	Start         Start          // where to begin without a checkpoint
	MaxRotations  int            // highest Path.N looked at; default 999 (the plugin's maximum)
	// DurableFloor holds positions (Extra "dasAuditPos") recovered from the
	// sink's own durable data, e.g. the last events of the stream. Those that
	// name a file of this log and lie after the checkpoint win over it, so
	// that events made durable after the last checkpoint write (a crash in
	// between) are not delivered again. Positions of other logs are ignored.
	DurableFloor []Position
	// CheckpointInterval bounds how often the checkpoint is written; default
	// 1s. Events acknowledged since the last write are not repeated after a
	// crash either: DurableFloor, from the stream, covers them.
	CheckpointInterval time.Duration

	Logger *slog.Logger
	Now    func() time.Time
}

// Stats are a Tailer's counters and lag.
type Stats struct {
	Lines            uint64 // lines read
	Events           uint64 // events submitted, warnings included
	Unparsed         uint64 // lines that became UNPARSED events
	CutLines         uint64 // lines longer than MaxLine
	Warnings         uint64 // DAS_WARNING events
	Rotations        uint64 // switches to the next file
	Truncations      uint64
	LostFiles        uint64 // rotated files deleted before they were read (a lower bound)
	LostBytes        uint64 // their sizes when last seen (a lower bound)
	CheckpointErrors uint64
	LagBytes         int64   // bytes written to the log and not yet read
	LagSeconds       float64 // now - time of the last line read; 0 when caught up
	Read             Position
	Durable          Position // the newest acknowledged position
}

// Tailer follows one server_audit log file through rotation.
type Tailer struct {
	o      Options
	cpFile string
	log    *slog.Logger

	lines, events, unparsed, cut, warnings, rotations, truncations atomic.Uint64
	lostFiles, lostBytes, cpErrors                                 atomic.Uint64
	lagBytes, lastLineUnixNano                                     atomic.Int64
	readPos                                                        atomic.Pointer[Position]
	cpFailed                                                       atomic.Pointer[string] // a checkpoint error to report as an event

	mu       sync.Mutex
	inflight []ackEntry // submitted, waiting for acks; inflight[head] has sequence base
	head     int
	base     uint64
	durable  ackEntry
	saved    ackEntry
	saveMu   sync.Mutex // one checkpoint write at a time
	cpStreak uint64     // checkpoint writes failed in a row; under saveMu

	running atomic.Bool
	// crash, for tests: Run returns without writing its final checkpoint,
	// as if the process had been killed.
	crash bool
	// idleHook, for tests: called with each idle sleep's length.
	idleHook func(time.Duration)
}

type ackEntry struct {
	pos    Position
	n      int64 // length of the line ending at pos
	crc    uint32
	hasPos bool // false for warnings, which do not move the position
	acked  bool
}

// New checks o and prepares the state directory.
func New(o Options) (*Tailer, error) {
	if o.Path == "" {
		return nil, errors.New("auditlog: no log path")
	}
	if o.StateDir == "" {
		return nil, errors.New("auditlog: no state directory")
	}
	if o.MaxLine <= 0 {
		o.MaxLine = 1 << 20
	}
	if o.Poll <= 0 {
		o.Poll = 50 * time.Millisecond
	}
	if o.Location == nil {
		o.Location = time.Local
	}
	if o.MaxRotations <= 0 {
		o.MaxRotations = 999
	}
	if o.CheckpointInterval <= 0 {
		o.CheckpointInterval = time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if err := os.MkdirAll(o.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("auditlog: state dir: %w", err)
	}
	t := &Tailer{o: o, cpFile: checkpointFile(o.StateDir, o.Path), log: o.Logger.With("audit_log", o.Path)}
	t.readPos.Store(&Position{})
	return t, nil
}

// Stats returns the counters and the lag.
func (t *Tailer) Stats() Stats {
	s := Stats{
		Lines: t.lines.Load(), Events: t.events.Load(), Unparsed: t.unparsed.Load(), CutLines: t.cut.Load(),
		Warnings: t.warnings.Load(), Rotations: t.rotations.Load(), Truncations: t.truncations.Load(),
		LostFiles: t.lostFiles.Load(), LostBytes: t.lostBytes.Load(), CheckpointErrors: t.cpErrors.Load(),
		LagBytes: t.lagBytes.Load(), Read: *t.readPos.Load(),
	}
	if s.LagBytes > 0 {
		if ns := t.lastLineUnixNano.Load(); ns != 0 {
			s.LagSeconds = max(0, t.o.Now().Sub(time.Unix(0, ns)).Seconds())
		}
	}
	t.mu.Lock()
	s.Durable = t.durable.pos
	t.mu.Unlock()
	return s
}

// track registers a submitted event and returns its ack.
func (t *Tailer) track(e ackEntry) func() {
	t.mu.Lock()
	seq := t.base + uint64(len(t.inflight)-t.head)
	t.inflight = append(t.inflight, e)
	t.mu.Unlock()
	return func() { t.ack(seq) }
}

func (t *Tailer) ack(seq uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	live := t.inflight[t.head:]
	if seq < t.base || seq-t.base >= uint64(len(live)) {
		return // acked twice
	}
	live[seq-t.base].acked = true
	i := 0
	for i < len(live) && live[i].acked {
		if live[i].hasPos {
			t.durable = live[i]
		}
		i++
	}
	t.base += uint64(i)
	t.head += i
	// Compact once the acked prefix is half the slice: amortized O(1),
	// where re-slicing alone would regrow the array at every wrap.
	if t.head > 0 && t.head >= len(t.inflight)/2 {
		n := copy(t.inflight, t.inflight[t.head:])
		t.inflight = t.inflight[:n]
		t.head = 0
	}
}

// SaveCheckpoint writes the newest acknowledged position, if it moved. Run
// calls it periodically and when it returns; call it again after the sink
// has flushed (acks that came after Run returned).
func (t *Tailer) SaveCheckpoint() error {
	t.saveMu.Lock()
	defer t.saveMu.Unlock()
	t.mu.Lock()
	d := t.durable
	t.mu.Unlock()
	if !d.hasPos || d.pos == t.saved.pos {
		return nil
	}
	cp := Checkpoint{Dev: d.pos.Dev, Inode: d.pos.Inode, Born: d.pos.Born, Offset: d.pos.Offset}
	if d.pos.Offset > 0 {
		cp.LastLineDigest = lineDigest(d.n, d.crc)
	}
	if err := saveCheckpoint(t.cpFile, t.o.Path, cp); err != nil {
		t.cpErrors.Add(1)
		// One event per outage (a full disk fails every write until it is
		// freed), logged at its start and every 100 failures.
		if t.cpStreak++; t.cpStreak == 1 {
			msg := err.Error() + "; the position is kept in memory and retried"
			t.cpFailed.Store(&msg)
		}
		if t.cpStreak%100 == 1 {
			t.log.Error("auditlog: checkpoint not saved; the position is kept in memory and retried", "err", err, "failures", t.cpStreak)
		}
		return err
	}
	if t.cpStreak > 0 {
		t.log.Info("auditlog: checkpoint saved again", "failures", t.cpStreak, "offset", d.pos.Offset)
		t.cpStreak = 0
	}
	t.saved = d
	return nil
}

// Run follows the log until ctx ends, submitting one event per line to sink,
// and checkpoints acknowledged positions. It resumes from the checkpoint (or
// a later DurableFloor position). It returns nil when ctx ends, or the
// sink's error.
func (t *Tailer) Run(ctx context.Context, sink Sink) error {
	if !t.running.CompareAndSwap(false, true) {
		return errors.New("auditlog: Run is already running")
	}
	defer t.running.Store(false)

	cpCtx, stopCP := context.WithCancel(context.Background())
	cpDone := make(chan struct{})
	go func() {
		defer close(cpDone)
		tick := time.NewTicker(t.o.CheckpointInterval)
		defer tick.Stop()
		for {
			select {
			case <-cpCtx.Done():
				return
			case <-tick.C:
				_ = t.SaveCheckpoint()
			}
		}
	}()

	r := &reader{t: t, sink: sink, warned: map[string]bool{}, w: &watcher{}, poke: make(chan struct{}, 1)}
	r.w.r = r
	wctx, stopW := context.WithCancel(ctx)
	wDone := make(chan struct{})
	go func() {
		defer close(wDone)
		r.w.loop(wctx, r)
	}()
	err := r.run(ctx)
	stopW()
	<-wDone
	r.closeFile()
	stopCP()
	<-cpDone
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		err = nil
	}
	if !t.crash {
		if cerr := t.SaveCheckpoint(); cerr != nil && err == nil {
			err = cerr
		}
	}
	return err
}

// fileID identifies a file across renames. born (birth time, 0 where the
// file system has none) tells a new file from a deleted one whose inode it
// reused.
type fileID struct {
	dev, ino uint64
	born     int64
}

type chainFile struct {
	idx  int    // 0 is Path, n is Path.n
	name string // as found: the padding of idx may vary
	id   fileID
	size int64
}

// bornOrder compares two files by birth time: files are only ever created
// at Path, so birth order is creation order, whatever names they were given
// since. known is false where the file system has no birth time or both
// were born in the same clock tick (ext4's is coarse): then only the chain
// order tells.
func bornOrder(a, b fileID) (order int, known bool) {
	if a.born == 0 || b.born == 0 || a.born == b.born {
		return 0, false
	}
	if a.born < b.born {
		return -1, true
	}
	return 1, true
}

// reader is Run's state; only Run's goroutine touches it.
type reader struct {
	t    *Tailer
	sink Sink
	ctx  context.Context

	f         *os.File
	id        fileID
	lineStart int64  // file offset of buf[0]: just after the last emitted line
	buf       []byte // bytes read from lineStart on, no complete line
	rotSeen   bool   // Path named another file at the last EOF: drain, then switch

	cutting bool // inside a line longer than MaxLine
	cutHead []byte
	cutLen  int64
	cutCRC  uint32

	w     *watcher
	width atomic.Int32 // digits of the rotation numbers
	last  ackEntry     // the last line emitted

	// The rotations found by the last directory listing, and the
	// directory's mtime then; under w.mu, like every scan.
	listedMtime time.Time
	listedNames []string

	warned map[string]bool // conditions already reported, until they clear
	strs   strCache

	// The "dasAuditPos" values: the current file's `"dev:inode:born:`
	// formatted once, each line's offset appended to it in a slab that
	// many events' values share (one allocation per few hundred lines).
	posID     fileID
	posPrefix []byte
	posSlab   []byte

	fieldSlab event.Fields // each event's Extra, carved four at a time

	idlePolls int           // polls in a row that found nothing new
	poke      chan struct{} // the watcher saw unread bytes; capacity 1

	// Events made and not yet submitted: a read buffer's lines go to the
	// sink as one batch, with one acknowledgement for the position the
	// batch ends at (pendAck).
	pend    []event.Event
	pendAck ackEntry
}

// maxPending bounds a batch of events handed to the sink at once.
const maxPending = 256

// fields returns room for an event's four das fields (source, position
// and two flags), from a slab shared by a few hundred events: a slice of
// its own was one allocation per line.
func (r *reader) fields() event.Fields {
	const n = 4
	if len(r.fieldSlab)+n > cap(r.fieldSlab) {
		r.fieldSlab = make(event.Fields, 0, 256*n)
	}
	at := len(r.fieldSlab)
	r.fieldSlab = r.fieldSlab[:at+n]
	return r.fieldSlab[at : at : at+n]
}

// posJSON returns pos (in the current file) as a JSON string.
func (r *reader) posJSON(pos Position) json.RawMessage {
	if r.posPrefix == nil || r.posID != r.id {
		p := pos
		p.Offset = 0
		b := p.appendJSON(nil)
		r.posPrefix, r.posID = b[:len(b)-2], r.id // without the offset "0" and the quote
	}
	if cap(r.posSlab)-len(r.posSlab) < len(r.posPrefix)+21 {
		r.posSlab = make([]byte, 0, 16<<10)
	}
	at := len(r.posSlab)
	r.posSlab = append(r.posSlab, r.posPrefix...)
	r.posSlab = strconv.AppendInt(r.posSlab, pos.Offset, 10)
	r.posSlab = append(r.posSlab, '"')
	return r.posSlab[at:len(r.posSlab):len(r.posSlab)]
}

func (r *reader) closeFile() {
	if r.f != nil {
		r.f.Close()
		r.f = nil
	}
}

// name is Path's rotation idx. The plugin pads the number to the digits of
// server_audit_file_rotations (".1" for 9, ".01" for 99, ".001" for 999).
func (r *reader) name(idx int) string {
	return rotationName(r.t.o.Path, idx, int(r.width.Load()))
}

func rotationName(path string, idx, width int) string {
	if idx == 0 {
		return path
	}
	n := strconv.Itoa(idx)
	if len(n) < width {
		n = strings.Repeat("0", width-len(n)) + n
	}
	return path + "." + n
}

// detectWidth finds how the rotations are numbered, when Path.1 is missing.
func (r *reader) detectWidth() {
	for w := 1; w <= 3; w++ {
		if _, _, _, err := lstatID(rotationName(r.t.o.Path, 1, w)); err == nil {
			r.width.Store(int32(w))
			return
		}
	}
}

// scanChain stats Path, Path.1, ... up to the first missing rotation,
// then lists the directory for rotations past a gap, newest name first.
// Problems go to problems (key, message pairs), for the reader to report
// once it holds no lock.
func (r *reader) scanChain(problems *[][2]string) []chainFile {
	chain := r.probeChain(problems)
	return r.listRotations(chain, problems)
}

// probeChain stats the names in order. Renames move files to higher
// numbers only and the probe goes up, so it cannot miss a file present
// throughout; it stops after a gap, though.
func (r *reader) probeChain(problems *[][2]string) []chainFile {
	var chain []chainFile
	misses := 0
	for i := 0; i <= r.t.o.MaxRotations; i++ {
		id, size, mode, err := lstatID(r.name(i))
		if i == 1 && err != nil {
			r.detectWidth()
			id, size, mode, err = lstatID(r.name(i))
		}
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				*problems = append(*problems, [2]string{"stat", fmt.Sprintf("auditlog: %v", err)})
			}
			// The plugin renames the oldest first, so a rotation in progress
			// leaves a gap of one; look a little past it.
			if i > 0 {
				if misses++; misses > 2 {
					break
				}
			}
			continue
		}
		misses = 0
		if mode != 0 {
			*problems = append(*problems, [2]string{"irregular:" + r.name(i), fmt.Sprintf("auditlog: %s %s; not read", r.name(i), notRegular(mode))})
			continue
		}
		chain = append(chain, chainFile{idx: i, name: r.name(i), id: id, size: size})
	}
	return chain
}

// notRegular says what a file of mode (a type other than regular) is.
func notRegular(mode fs.FileMode) string {
	switch {
	case mode&fs.ModeSymlink != 0:
		return "is a symbolic link, which das does not follow (name the log file itself)"
	case mode&fs.ModeDir != 0:
		return "is a directory, not a server_audit log file"
	default:
		return fmt.Sprintf("is not a regular file (mode %s)", mode)
	}
}

// listRotations adds the rotated files the probe did not reach. The plugin
// renames a file past a gap when two of its rotations race (MariaDB 10.11:
// server_audit_file_rotate_now during a size rotation), e.g. to Path.54
// while the rest ends at Path.39; its lines are still to be read.
func (r *reader) listRotations(chain []chainFile, problems *[][2]string) []chainFile {
	dir, base := filepath.Split(r.t.o.Path)
	if dir == "" {
		dir = "."
	}
	// The directory may be the datadir, with many files: list it again only
	// when it changed. Its mtime is coarse: while it is recent, a change in
	// the same tick as the last listing would not show, so list anyway.
	names := r.listedNames
	if fi, err := os.Stat(dir); err != nil || !fi.ModTime().Equal(r.listedMtime) || time.Since(fi.ModTime()) < time.Second {
		ents, err := os.ReadDir(dir)
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				*problems = append(*problems, [2]string{"readdir", fmt.Sprintf("auditlog: %v", err)})
			}
			return chain
		}
		names = names[:0]
		for _, e := range ents {
			num, ok := strings.CutPrefix(e.Name(), base+".")
			if ok && num != "" && len(num) <= 3 && strings.Trim(num, "0123456789") == "" {
				names = append(names, e.Name())
			}
		}
		r.listedNames = names
		if fi != nil {
			r.listedMtime = fi.ModTime()
		}
	}
	added := false
	for _, n := range names {
		idx, _ := strconv.Atoi(n[len(base)+1:])
		if idx < 1 || idx > r.t.o.MaxRotations || slices.ContainsFunc(chain, func(c chainFile) bool { return c.idx == idx }) {
			continue
		}
		name := filepath.Join(dir, n)
		id, size, mode, err := lstatID(name)
		if err != nil || mode != 0 || find(chain, id) >= 0 {
			continue // renamed meanwhile, or not a file: the probe reports those
		}
		chain = append(chain, chainFile{idx: idx, name: name, id: id, size: size})
		added = true
	}
	if added {
		slices.SortStableFunc(chain, func(a, b chainFile) int { return a.idx - b.idx })
	}
	return chain
}

func find(chain []chainFile, id fileID) int {
	for i, c := range chain {
		if c.id == id {
			return i
		}
	}
	return -1
}

// open opens chain file c and checks it is still the same file.
func (r *reader) open(c chainFile) (*os.File, bool) {
	f, err := os.Open(c.name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false // renamed meanwhile
	}
	if err != nil {
		r.warnOnce("open:"+c.name, fmt.Sprintf("auditlog: %v", err))
		return nil, false
	}
	id, _, mode, err := fstatID(f)
	if err != nil || id != c.id || mode != 0 {
		f.Close()
		return nil, false // renamed meanwhile: the caller looks again
	}
	r.clearWarn("open:" + c.name)
	return f, true
}

func (r *reader) use(f *os.File, id fileID, off int64) {
	r.closeFile()
	r.f, r.id, r.lineStart = f, id, off
	r.buf = r.buf[:0]
	r.cutting, r.rotSeen = false, false
	r.t.readPos.Store(&Position{Dev: id.dev, Inode: id.ino, Born: id.born, Offset: off})
	r.w.setCurrent(id)
}

// resume picks the starting file and offset: the checkpoint, unless a
// DurableFloor position is later; else Options.Start.
func (r *reader) resume(ctx context.Context) error {
	t := r.t
	cp, haveCP, err := loadCheckpoint(t.cpFile)
	if err != nil {
		if err := r.warn(ctx, "checkpoint_unreadable", err.Error()+"; starting from the oldest file"); err != nil {
			return err
		}
	}
	for attempt := 1; ; attempt++ {
		// A rotation between the scan and an open makes us look again, as
		// long as it takes: reading from anywhere else than the checkpoint
		// would lose or repeat lines.
		done, rerr := r.tryResume(ctx, cp, haveCP, err != nil)
		if done || rerr != nil {
			return rerr
		}
		if attempt%20 == 0 {
			t.log.Warn("auditlog: the files keep rotating under the resume; still looking for the checkpoint's file", "attempts", attempt)
		}
		if err := r.sleep(ctx); err != nil {
			return err
		}
	}
}

func (r *reader) tryResume(ctx context.Context, cp Checkpoint, haveCP, fallbackOldest bool) (bool, error) {
	t := r.t
	chain := r.w.scan(true)
	type cand struct {
		c   chainFile
		off int64
	}
	var best *cand
	newer := func(c chainFile, off int64) bool {
		if best == nil {
			return true
		}
		if c.id == best.c.id {
			return off > best.off
		}
		if o, ok := bornOrder(c.id, best.c.id); ok {
			return o > 0 // the chain order lies when the plugin's rotations raced
		}
		return c.idx < best.c.idx
	}
	cpID := fileID{cp.Dev, cp.Inode, cp.Born}
	if haveCP {
		ok := false
		if i := find(chain, cpID); i >= 0 {
			f, opened := r.open(chain[i])
			if !opened {
				return false, nil
			}
			ok = cp.matches(f, chain[i].size)
			f.Close()
			if ok {
				best = &cand{chain[i], cp.Offset}
			}
		}
		if !ok {
			fallbackOldest = true
			if err := r.warn(ctx, "checkpoint_mismatch", fmt.Sprintf(
				"auditlog: the checkpointed file (inode %d, offset %d) is gone or no longer matches its digest; lines after it may be lost; starting from the oldest file",
				cp.Inode, cp.Offset)); err != nil {
				return false, err
			}
			haveCP = false // reported once
		}
	}
	for _, p := range t.o.DurableFloor {
		i := find(chain, p.file())
		if i >= 0 && p.Offset <= chain[i].size && newer(chain[i], p.Offset) {
			best = &cand{chain[i], p.Offset}
		}
	}
	pick := func(c chainFile, off int64) bool {
		f, ok := r.open(c)
		if !ok {
			return false
		}
		r.use(f, c.id, off)
		t.log.Info("auditlog: reading", "file", c.name, "offset", off)
		return true
	}
	switch {
	case best != nil:
		if haveCP && (best.c.id != cpID || best.off != cp.Offset) {
			t.log.Info("auditlog: resuming after the checkpoint, at the newest position the sink holds", "checkpoint_offset", cp.Offset)
		}
		return pick(best.c, best.off), nil
	case len(chain) == 0:
		return true, nil // the main loop waits for Path
	case fallbackOldest || t.o.Start == StartOldest:
		return pick(oldest(chain), 0), nil
	case chain[0].idx != 0:
		return false, nil // Path is being rotated
	case t.o.Start == StartEnd:
		if !pick(chain[0], 0) {
			return false, nil
		}
		r.lineStart = lastLineEnd(r.f, chain[0].size)
		return true, nil
	default:
		return pick(chain[0], 0), nil
	}
}

// oldest is the chain's first-born file, or its last where birth times do
// not tell.
func oldest(chain []chainFile) chainFile {
	o := chain[len(chain)-1]
	for _, c := range chain {
		if b, ok := bornOrder(c.id, o.id); ok && b < 0 {
			o = c
		}
	}
	return o
}

// lastLineEnd is the offset after the last newline at or before size.
func lastLineEnd(f *os.File, size int64) int64 {
	buf := make([]byte, 64<<10)
	for end := size; end > 0; {
		start := max(0, end-int64(len(buf)))
		n, _ := f.ReadAt(buf[:end-start], start)
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			return start + int64(i) + 1
		}
		end = start
	}
	return 0
}

func (r *reader) run(ctx context.Context) error {
	r.ctx = ctx
	if err := r.resume(ctx); err != nil {
		return err
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		// Nothing waits unsubmitted while the reader sleeps or moves on.
		if err := r.flush(ctx); err != nil {
			return err
		}
		if msg := r.t.cpFailed.Swap(nil); msg != nil {
			if err := r.warn(ctx, "checkpoint_failed", *msg); err != nil {
				return err
			}
		}
		if r.f == nil {
			chain := r.w.scan(true)
			if len(chain) > 0 && chain[0].idx == 0 {
				if f, ok := r.open(chain[0]); ok {
					r.use(f, chain[0].id, 0)
					continue
				}
			}
			if err := r.sleep(ctx); err != nil {
				return err
			}
			continue
		}
		n, err := r.read(ctx)
		if err != nil {
			return err
		}
		if n > 0 {
			r.idlePolls = 0
			continue
		}
		switched, err := r.atEOF(ctx)
		if err != nil {
			return err
		}
		if !switched && !r.rotSeen {
			if err := r.idleSleep(ctx); err != nil {
				return err
			}
		}
	}
}

// idleMaxPolls bounds a caught-up reader's sleep, in polls.
const idleMaxPolls = 5

// idleSleep waits while the reader is caught up: a poll at first, then
// longer while nothing arrives, up to idleMaxPolls polls (an idle tailer
// woke 40 times a second, and wake-ups are costly in a VM). The watcher
// keeps looking every poll and pokes the reader as soon as the log has
// bytes it has not read, so new lines are read as promptly as before.
func (r *reader) idleSleep(ctx context.Context) error {
	d := min(r.t.o.Poll<<min(r.idlePolls, 3), idleMaxPolls*r.t.o.Poll)
	r.idlePolls++
	if r.t.idleHook != nil {
		r.t.idleHook(d)
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-tm.C:
	case <-r.poke:
	}
	return nil
}

func (r *reader) sleep(ctx context.Context) error {
	tm := time.NewTimer(r.t.o.Poll)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-tm.C:
		return nil
	}
}

const readChunk = 256 << 10

// read reads what follows and emits the complete lines; n is the bytes read.
func (r *reader) read(ctx context.Context) (int, error) {
	if cap(r.buf)-len(r.buf) < readChunk/2 {
		nb := make([]byte, len(r.buf), max(2*cap(r.buf), len(r.buf)+readChunk))
		copy(nb, r.buf)
		r.buf = nb
	}
	off := r.lineStart + int64(len(r.buf))
	if r.cutting {
		off += r.cutLen
	}
	n, err := r.f.ReadAt(r.buf[len(r.buf):cap(r.buf)], off)
	if err != nil && !errors.Is(err, io.EOF) {
		r.warnOnce("read", fmt.Sprintf("auditlog: read %s: %v", r.f.Name(), err))
		return 0, nil
	}
	r.clearWarn("read")
	if n == 0 {
		return 0, nil
	}
	r.buf = r.buf[:len(r.buf)+n]
	return n, r.lines(ctx)
}

// lines emits every complete line in buf and keeps the rest.
func (r *reader) lines(ctx context.Context) error {
	maxLine := r.t.o.MaxLine
	p := r.buf
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if r.cutting {
			if i < 0 {
				r.cutCRC = crc32.Update(r.cutCRC, castagnoli, p)
				r.cutLen += int64(len(p))
				p = p[len(p):]
				break
			}
			r.cutCRC = crc32.Update(r.cutCRC, castagnoli, p[:i+1])
			r.cutLen += int64(i + 1)
			p = p[i+1:]
			r.cutting = false
			if err := r.emit(ctx, r.cutHead, r.cutLen, r.cutCRC, true); err != nil {
				return err
			}
			continue
		}
		if i < 0 {
			if len(p) > maxLine {
				// Too long: keep the head, skip to the newline.
				r.cutting = true
				r.cutHead = append(r.cutHead[:0], p[:maxLine]...)
				r.cutCRC = crc32.Update(0, castagnoli, p)
				r.cutLen = int64(len(p))
				p = p[len(p):]
			}
			break
		}
		line := p[:i+1]
		p = p[i+1:]
		crc := crc32.Update(0, castagnoli, line)
		body := line[:i]
		cut := false
		if i > maxLine {
			body, cut = body[:maxLine], true
		}
		if err := r.emit(ctx, body, int64(len(line)), crc, cut); err != nil {
			return err
		}
	}
	if err := r.flush(ctx); err != nil {
		return err
	}
	// The read position, for the lag, once per buffer rather than per
	// line (a Position on the heap each).
	if r.last.hasPos && r.last.pos.file() == r.id {
		pos := r.last.pos
		r.t.readPos.Store(&pos)
	}
	// Keep the partial line at the front of buf.
	r.buf = r.buf[:copy(r.buf, p)]
	return nil
}

var jsonEmpty = json.RawMessage(`""`)

// emit turns one line (without its newline) that ends n bytes after
// lineStart into an event and submits it.
func (r *reader) emit(ctx context.Context, line []byte, n int64, crc uint32, cut bool) error {
	t := r.t
	t.lines.Add(1)
	pos := Position{Dev: r.id.dev, Inode: r.id.ino, Born: r.id.born, Offset: r.lineStart + n}
	r.lineStart += n
	rec, err := parseLine(line, t.o.Location, &r.strs)
	// The event is made where the batch holds it.
	r.pend = append(r.pend, event.Event{})
	ev := &r.pend[len(r.pend)-1]
	if err != nil {
		u := t.unparsed.Add(1)
		if u <= 10 || u%1000 == 0 {
			t.log.Warn("auditlog: line is not a server_audit record; kept as an UNPARSED event", "pos", pos.String(), "err", err, "unparsed", u)
		}
		*ev = unparsedEvent(line, err, t.o.Now(), t.o.ServerHost)
	} else {
		rec.fillEvent(ev, EventOptions{ServerHost: t.o.ServerHost, QueryLogLimit: t.o.QueryLogLimit, Extra: r.fields()})
		t.lastLineUnixNano.Store(rec.Time.UnixNano())
	}
	if cut {
		c := t.cut.Add(1)
		if c <= 10 || c%1000 == 0 {
			t.log.Warn("auditlog: line longer than the maximum; cut", "pos", pos.String(), "length", n, "max_line", t.o.MaxLine)
		}
		ev.Extra = append(ev.Extra, event.Field{Key: "dasLineCut", Value: jsonTrue}, event.Field{Key: "dasTruncated", Value: jsonTrue})
	}
	ev.Extra = append(ev.Extra, event.Field{Key: "dasAuditPos", Value: r.posJSON(pos)})
	e := ackEntry{pos: pos, n: n, crc: crc, hasPos: true}
	r.last = e
	return r.added(ctx, e)
}

// submit adds an event to the pending batch, handing the batch on when it
// is full. e is the event's position (a warning's has none).
func (r *reader) submit(ctx context.Context, ev event.Event, e ackEntry) error {
	r.pend = append(r.pend, ev)
	return r.added(ctx, e)
}

// added accounts for the event just appended to the pending batch.
func (r *reader) added(ctx context.Context, e ackEntry) error {
	if e.hasPos || len(r.pend) == 1 {
		r.pendAck = e
	}
	if len(r.pend) >= maxPending {
		return r.flush(ctx)
	}
	return nil
}

// flush hands the pending events to the sink. Every path that may wait
// (for the log to grow, or between files) flushes first.
func (r *reader) flush(ctx context.Context) error {
	if len(r.pend) == 0 {
		return nil
	}
	ack := r.t.track(r.pendAck)
	r.t.events.Add(uint64(len(r.pend)))
	err := r.sink.Submit(ctx, r.pend, ack)
	clear(r.pend) // no references kept to the lines' strings
	r.pend = r.pend[:0]
	if err != nil {
		return fmt.Errorf("auditlog: submit: %w", err)
	}
	return nil
}

// warn logs and submits a DAS_WARNING event.
func (r *reader) warn(ctx context.Context, kind, msg string) error {
	t := r.t
	t.warnings.Add(1)
	t.log.Warn(msg, "warning", kind)
	ev := event.New(t.o.Now())
	ev.Command = CommandWarning
	ev.ExitCode = ""
	ev.ErrorMessage = msg
	ev.ServerHost = t.o.ServerHost
	ev.Extra = event.Fields{{Key: "dasSource", Value: jsonSource}, {Key: "dasWarning", Value: json.RawMessage(strconv.Quote(kind))}}
	if err := r.submit(ctx, ev, ackEntry{}); err != nil {
		return err
	}
	return r.flush(ctx)
}

// warnOnce reports a condition once until clearWarn. A failed submit shows
// up at the next one, which Run checks.
func (r *reader) warnOnce(key, msg string) {
	if r.warned[key] {
		return
	}
	r.warned[key] = true
	_ = r.warn(r.ctx, "file_error", msg)
}

func (r *reader) clearWarn(key string) {
	if r.warned[key] {
		delete(r.warned, key)
	}
}

// watcher records, from its own goroutine (so that it keeps looking while
// the reader waits on the sink), the order in which files appear in the
// rotation chain and their last sizes, to find the file after the current
// one even once it is renamed, and to notice files deleted unread.
type watcher struct {
	mu    sync.Mutex
	files []seenFile // oldest first
	cur   fileID
	init  bool
	r     *reader

	pathID  fileID    // the file the last full scan found at Path
	scanned time.Time // when
}

// fullScanEvery bounds how long quick checks stand in for full scans.
const fullScanEvery = time.Second

// quick checks Path with one lstat. When it still names the file the last
// full scan found there, and that scan is recent, no rotation happened
// since (a rotation renames Path and creates a new file there): the chain
// is as that scan left it but for Path's size, which quick updates. Two
// full scans every poll (eleven stats and a directory stat each) were 6%
// of the tailer's CPU at 32k lines/s.
func (w *watcher) quick() (fileID, bool) {
	id, size, mode, err := lstatID(w.r.name(0))
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil || mode != 0 || !w.init || id != w.pathID || time.Since(w.scanned) >= fullScanEvery {
		return id, false
	}
	if j := slices.IndexFunc(w.files, func(f seenFile) bool { return f.id == id && !f.reused }); j >= 0 {
		w.files[j].size = size
	}
	w.updateLag()
	return id, true
}

type seenFile struct {
	id     fileID
	size   int64
	gone   bool
	reused bool // its inode now belongs to a newer file

	goneScans int // scans in a row that did not see it
}

func (w *watcher) loop(ctx context.Context, r *reader) {
	tick := time.NewTicker(r.t.o.Poll)
	defer tick.Stop()
	for {
		if _, ok := w.quick(); !ok {
			w.scan(false)
		}
		if r.t.lagBytes.Load() > 0 {
			select {
			case r.poke <- struct{}{}:
			default:
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// observe merges a scan (newest first) into the known order and updates
// the lag. Files are only ever created at Path, so a file not seen before
// is newer than every known one, except at the first scan, where the chain
// gives the order. A known inode out of order, or smaller than before, is a
// new file that reused a deleted one's inode: the old one is gone.
//
// The scan happens under the lock, so that a scan older than the reader's
// last switch (setCurrent) is never merged after it.
func (w *watcher) scan(report bool) []chainFile {
	var problems [][2]string
	if report {
		// Submitting may block: not under the lock.
		defer func() {
			// A problem this scan no longer finds is over: if it comes
			// back, it is reported again.
			for k := range w.r.warned {
				if scanProblem(k) && !slices.ContainsFunc(problems, func(p [2]string) bool { return p[0] == k }) {
					w.r.clearWarn(k)
				}
			}
			for _, p := range problems {
				w.r.warnOnce(p[0], p[1])
			}
		}()
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	chain := w.r.scanChain(&problems)
	w.pathID, w.scanned = fileID{}, time.Now()
	if len(chain) > 0 && chain[0].idx == 0 {
		w.pathID = chain[0].id
	}
	if !w.init {
		w.init = true
		var files []seenFile
		curSeen := false
		for i := len(chain) - 1; i >= 0; i-- {
			// A file under two names was renamed during the scan: its
			// first (newest) name is the one in order.
			if find(chain[:i], chain[i].id) >= 0 {
				continue
			}
			files = append(files, seenFile{id: chain[i].id, size: chain[i].size})
			curSeen = curSeen || chain[i].id == w.cur
		}
		// The names lie when the plugin's rotations raced (an old file
		// renamed between new ones); birth times, where known, do not.
		if !slices.ContainsFunc(files, func(f seenFile) bool { return f.id.born == 0 }) {
			slices.SortStableFunc(files, func(a, b seenFile) int { return cmp.Compare(a.id.born, b.id.born) })
		}
		if !curSeen && w.cur != (fileID{}) {
			files = append([]seenFile{{id: w.cur}}, files...)
		}
		w.files = files
	} else {
		present := make(map[fileID]bool, len(chain))
		for _, c := range chain {
			present[c.id] = true
		}
		// A file not seen before goes after the newest known file older
		// than it in this scan: a file missed by earlier scans (in the
		// middle of a rename) is older than the ones seen since. When the
		// current file is gone, everything in the chain is newer than it.
		at := 0
		if !present[w.cur] {
			// And newer than the known files that are gone since: the
			// plugin deletes the oldest first.
			if j := slices.IndexFunc(w.files, func(f seenFile) bool { return f.id == w.cur && !f.reused }); j >= 0 {
				at = j + 1
				for k := j + 1; k < len(w.files); k++ {
					if !present[w.files[k].id] {
						at = k + 1
					}
				}
			}
		}
		last := -1
		for i := len(chain) - 1; i >= 0; i-- {
			c := chain[i]
			// A file missed by one scan (caught in the middle of the
			// plugin's rename cascade) comes back.
			j := slices.IndexFunc(w.files, func(f seenFile) bool { return f.id == c.id && !f.reused })
			if j >= 0 && c.id.born == 0 && c.id != w.cur && (j < last || c.size < w.files[j].size) {
				w.files[j].gone, w.files[j].reused = true, true
				j = -1
			}
			if j < 0 {
				j = bornSlot(w.files, c.id, max(at, last+1))
				w.files = slices.Insert(w.files, j, seenFile{id: c.id, size: c.size})
			}
			w.files[j].size = c.size
			last = j
		}
		for j := range w.files {
			if present[w.files[j].id] {
				w.files[j].gone, w.files[j].goneScans = false, 0
			} else {
				w.files[j].gone = true
				w.files[j].goneScans++
			}
		}
	}
	// Forget the deleted files older than the current one. Older files that
	// still exist stay known, or the next scan would take them for new ones.
	if j := slices.IndexFunc(w.files, func(f seenFile) bool { return f.id == w.cur && !f.reused }); j > 0 {
		w.files = slices.DeleteFunc(w.files, func(f seenFile) bool {
			j--
			// A file missed by a scan or two may be in the middle of a rename.
			return j >= 0 && f.goneScans >= 3
		})
	}
	w.updateLag()
	return chain
}

// scanProblem reports whether a warnOnce key is one of scanChain's.
func scanProblem(key string) bool {
	return key == "stat" || key == "readdir" || strings.HasPrefix(key, "irregular:")
}

// bornSlot moves the place j found for a new file from the chain order
// between the known files born before it and those born after it.
func bornSlot(files []seenFile, id fileID, j int) int {
	lo, hi := 0, len(files)
	for k, f := range files {
		o, ok := bornOrder(f.id, id)
		if ok && o < 0 {
			lo = k + 1
		}
		if ok && o > 0 && hi == len(files) {
			hi = k
		}
	}
	if lo > hi {
		return j // the known order is not by birth (born 0 mixed in)
	}
	return min(max(j, lo), hi)
}

func (w *watcher) setCurrent(id fileID) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.cur = id
	if !slices.ContainsFunc(w.files, func(f seenFile) bool { return f.id == id && !f.reused }) {
		w.files = append(w.files, seenFile{id: id})
	}
}

// updateLag: the unread rest of the current file and every newer file.
func (w *watcher) updateLag() {
	if w.r == nil {
		return
	}
	pos := w.r.t.readPos.Load()
	var lag int64
	after := false
	for _, f := range w.files {
		switch {
		case f.id == w.cur:
			after = true
			if f.id == pos.file() {
				lag += max(0, f.size-pos.Offset)
			}
		case after && !f.gone:
			lag += f.size
		}
	}
	w.r.t.lagBytes.Store(lag)
}

// next returns the file after the current one that still exists, and the
// newer files that were deleted before they could be read.
func (w *watcher) next() (next *fileID, lost []seenFile) {
	w.mu.Lock()
	defer w.mu.Unlock()
	after := false
	for _, f := range w.files {
		if f.id == w.cur && !f.reused {
			after = true
			continue
		}
		if !after {
			continue
		}
		if f.gone {
			lost = append(lost, f)
			continue
		}
		id := f.id
		return &id, lost
	}
	return nil, lost
}

// atEOF handles the end of the current file: truncation, rotation, or
// nothing new. switched reports a change of file or offset.
func (r *reader) atEOF(ctx context.Context) (switched bool, err error) {
	t := r.t
	_, size, _, err := fstatID(r.f)
	if err == nil {
		end := r.lineStart + int64(len(r.buf))
		if r.cutting {
			end += r.cutLen
		}
		if size < end {
			t.truncations.Add(1)
			if err := r.warn(ctx, "truncated", fmt.Sprintf(
				"auditlog: %s was truncated from %d to %d bytes; reading it again from the start (lines written before the truncation and not yet read are lost)",
				r.f.Name(), end, size)); err != nil {
				return false, err
			}
			r.lineStart, r.buf, r.cutting = 0, r.buf[:0], false
			return true, nil
		}
	}
	if id, ok := r.w.quick(); ok && id == r.id {
		r.rotSeen = false
		return false, nil // caught up, and Path has not moved on
	}
	chain := r.w.scan(true)
	if len(chain) > 0 && chain[0].idx == 0 && chain[0].id == r.id {
		r.rotSeen = false
		return false, nil // caught up
	}
	if !r.rotSeen {
		// Path names another file now; lines may have been written to this
		// one between our last read and the rename: read once more.
		r.rotSeen = true
		return false, nil
	}
	// The plugin moved on (we hold this file open, so even if it was
	// deleted nothing of it is lost). Its successor is the next file seen
	// after it that still exists.
	nid, lost := r.w.next()
	for try := 0; try < 3 && len(lost) > 0; try++ {
		// Before calling files lost, look again: a scan during the plugin's
		// rename cascade can miss files that are only being renamed.
		if err := r.sleep(ctx); err != nil {
			return false, err
		}
		chain = r.w.scan(true)
		nid, lost = r.w.next()
	}
	if nid == nil {
		return false, r.sleep(ctx) // the new file is not there yet
	}
	k := find(chain, *nid)
	if k < 0 {
		return false, r.sleep(ctx) // changed since: look again
	}
	next := &chain[k]
	f, ok := r.open(*next)
	if !ok {
		return false, r.sleep(ctx)
	}
	for _, l := range lost {
		t.lostFiles.Add(1)
		t.lostBytes.Add(uint64(l.size))
		if err := r.warn(ctx, "rotation_outran_reader", fmt.Sprintf(
			"auditlog: rotation outran the reader: a rotated file of %s (inode %d, at least %d bytes) was deleted before it was read; its events are lost",
			t.o.Path, l.id.ino, l.size)); err != nil {
			f.Close()
			return false, err
		}
	}
	// A last line without a newline is complete: the plugin moved on.
	if err := r.flushPartial(ctx); err != nil {
		f.Close()
		return false, err
	}
	t.rotations.Add(1)
	t.log.Debug("auditlog: next file", "file", next.name, "inode", next.id.ino)
	r.use(f, next.id, 0)
	return true, nil
}

func (r *reader) flushPartial(ctx context.Context) error {
	if r.cutting {
		r.cutting = false
		if err := r.emit(ctx, r.cutHead, r.cutLen, r.cutCRC, true); err != nil {
			return err
		}
		return r.flush(ctx)
	}
	if len(r.buf) == 0 {
		return nil
	}
	line := r.buf
	crc := crc32.Update(0, castagnoli, line)
	err := r.emit(ctx, line, int64(len(line)), crc, false)
	r.buf = r.buf[:0]
	if err != nil {
		return err
	}
	return r.flush(ctx)
}
