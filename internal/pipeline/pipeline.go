// Package pipeline runs one activity stream's writer: it takes events from
// the capture sources, redacts them, batches them into records, seals each
// record with the next sequence number chained to its predecessor, and hands
// it to the sink. A single goroutine assigns sequences, so the chain is gap-free
// by construction; sealing of the next batch overlaps the sink's fsync of the
// previous one.
package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/das-mysql/das/internal/event"
	"github.com/das-mysql/das/internal/record"
	"github.com/das-mysql/das/internal/redact"
	"github.com/das-mysql/das/pkg/dasrecord"
)

// Sink makes sealed records durable, in order. The local stream log is one.
type Sink interface {
	// Last returns the newest durable record (0, nil when empty), where a
	// restarted writer continues the chain.
	Last() (seq uint64, line []byte)
	// AppendAsync queues one record after those queued before it; wait
	// returns once it is durable.
	AppendAsync(seq uint64, line []byte) (wait func() error)
}

// RecordLimiter is a sink with a size limit per record (Kinesis: 1 MiB;
// Kafka: the topic's max.message.bytes). The writer splits a batch whose
// record would exceed it, so that no record is refused for its size.
type RecordLimiter interface {
	MaxRecordBytes() int
}

// Sealer seals a batch as record seq.
type Sealer interface {
	Seal(ctx context.Context, events []event.Event, seq uint64, prev *dasrecord.Digest) (record.Sealed, error)
}

// Options tune a Writer.
type Options struct {
	MaxEvents         int           // events per record
	Linger            time.Duration // wait for more events before sealing a partial batch
	QueueEvents       int           // bound of the queue; sync-mode events may fill it to twice this
	HeartbeatInterval time.Duration // 0 disables heartbeats
	Heartbeat         func(now time.Time) event.Event
	// OnDurable is called, in sequence order, when a record is durable.
	OnDurable func(seq uint64, events int)
	// RetryWindow: a batch that cannot be sealed (KMS unreachable) is
	// retried with backoff for this long; zero means no retry.
	RetryWindow time.Duration
	// OnSealFailure is called once when a batch could not be sealed within
	// the retry window; its events are dropped and counted.
	OnSealFailure func(err error)
	// SinkStall: a record not durable this long after it was handed to the
	// sink means the sink is unreachable; OnSinkStall(true) says so once,
	// OnSinkStall(false) when records become durable again. Zero disables.
	SinkStall   time.Duration
	OnSinkStall func(stalled bool)
	Logger      *slog.Logger
	Now         func() time.Time
}

// Stats are the writer's counters.
type Stats struct {
	EventsIn, EventsDropped, EventsDurable, Records, Heartbeats, SealErrors, SinkErrors uint64
	LastSeq                                                                             uint64
	// Splits counts batches sealed again as two records to fit the sink's
	// record limit; TextsCut counts events whose commandText was cut
	// because alone they did not fit.
	Splits, TextsCut uint64
}

// ErrClosed is returned by Submit after Close.
var ErrClosed = errors.New("pipeline: stream writer closed")

// meta is what a queued event's submitter waits on, kept beside the event
// (Writer.queue and Writer.qmeta are parallel) so that a taken chunk of
// events is sealed in place, without copying each event out of its queue
// entry.
type meta struct {
	done func(error) // sync mode: told once, when durable or not
	ack  *ackGroup   // EnqueueBatch: the group the event belongs to
	last bool        // the event is its group's last: the group ends in its record
}

// ackGroup is the acknowledgement of events enqueued together: its fn is
// called once the last of them is durable, and never when any of them was
// lost (not sealed, or refused by the sink), so that a log tailer's
// checkpoint never passes an event the stream does not hold. Records are
// durable in order, so the group's last event stands for all of them.
type ackGroup struct {
	fn   func()
	lost atomic.Bool
}

// Writer is one stream's writer.
type Writer struct {
	o      Options
	sealer Sealer
	sink   Sink
	log    *slog.Logger

	// The queue. Producers append under qmu and wake the writer only when
	// it has something to decide: it sleeps with nothing queued, the queue
	// holds a full record, or a sync event waits. Between those, events
	// just accumulate, so a busy proxy does not wake the writer per
	// statement (a goroutine hand-off per event cost more than sealing it).
	qmu        sync.Mutex
	queue      []event.Event
	qmeta      []meta        // parallel to queue
	held       int           // taken by the writer, not yet sealed: counts toward the bound
	syncQueued int           // queued events whose submitter waits
	idle       bool          // the writer sleeps until something is queued
	space      chan struct{} // closed when room frees up; nil when no producer waits
	closed     atomic.Bool
	wake       chan struct{} // capacity 1

	acks chan pending
	done chan struct{}
	err  error

	sealFailed bool // OnSealFailure was called (run goroutine only)

	// inflight counts records handed to the sink and not yet durable; the
	// acker kicks the writer when one completes, so that sync-mode events
	// gathered meanwhile are sealed together (group commit).
	inflight atomic.Int64
	kick     chan struct{}

	maxRecord int // from a RecordLimiter sink; 0: no limit
	syncBound int // the queue's bound for sync-mode events

	eventsIn, dropped, durable, records, heartbeats, sealErrs, sinkErrs, lastSeq, splits, cut atomic.Uint64
}

type pending struct {
	seq    uint64
	events int
	wait   func() error
	dones  []func(error)
	groups []*ackGroup // every ack group with an event in the record
	ends   []*ackGroup // those whose last event is in it
}

// New starts a writer that continues the chain found in sink.
func New(sealer Sealer, sink Sink, o Options) *Writer {
	if o.MaxEvents <= 0 {
		o.MaxEvents = 256
	}
	if o.QueueEvents <= 0 {
		o.QueueEvents = 65536
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	w := &Writer{
		o: o, sealer: sealer, sink: sink, log: o.Logger,
		wake: make(chan struct{}, 1),
		acks: make(chan pending, 64),
		done: make(chan struct{}),
		kick: make(chan struct{}, 1),
	}
	if l, ok := sink.(RecordLimiter); ok {
		w.maxRecord = l.MaxRecordBytes()
	}
	w.syncBound = o.QueueEvents + min(o.QueueEvents, math.MaxInt-o.QueueEvents)
	seq, line := sink.Last()
	w.lastSeq.Store(seq)
	var prev *dasrecord.Digest
	if line != nil {
		d := dasrecord.DigestOf(line)
		prev = &d
	}
	go w.acker()
	go w.run(seq, prev)
	return w
}

// Submit queues an event without waiting (async mode). Its SQL is redacted
// before it is queued. It reports false when the queue is full and the event
// was dropped (counted).
func (w *Writer) Submit(ev event.Event) bool {
	return w.enqueue(context.Background(), ev, meta{}, false) == nil
}

// SubmitWait queues an event and waits until its record is durable (sync
// mode). Redaction happens before queueing. Its event may fill the queue to
// twice QueueEvents (see SubmitNotify); past that it waits for room.
func (w *Writer) SubmitWait(ctx context.Context, ev event.Event) error {
	done := make(chan error, 1)
	// The deadline covers waiting for room too: a full queue (the sink down
	// for long) must not hold a session past its sync timeout.
	if err := w.enqueue(ctx, ev, meta{done: func(err error) { done <- err }}, true); err != nil {
		return err
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", ErrNotDurable, ctx.Err())
	}
}

// SubmitNotify queues a sync-mode event without waiting: done is called
// once, from the writer, when its record is durable (nil) or cannot be (the
// error). It is for a submitter that must not block (an event loop holds
// the session's answer until done instead). Like SubmitWait's, its event
// may fill the queue to twice QueueEvents, so that async traffic filling the
// queue does not refuse it. Past that it returns ErrQueueFull, counted as
// dropped, and done is not called: sessions do not bound sync events, since
// one whose event outlived its sync timeout goes on and submits again (a
// long sink outage would grow the queue by one event per session per
// timeout). After Close it returns ErrClosed and done is not called.
func (w *Writer) SubmitNotify(ev event.Event, done func(error)) error {
	return w.enqueue(context.Background(), ev, meta{done: done}, false)
}

// ErrNotDurable is SubmitWait giving up on an event it queued: the event
// may still become durable later.
var ErrNotDurable = errors.New("pipeline: event queued but not durable in time")

// EnqueueBatch is Enqueue for several events, in order and together, with
// an acknowledgement: ack is called once, when all of them are durable (a
// log tailer checkpoints on it), and not at all if any was lost. It waits
// while the queue is full, then takes the whole batch under one lock, so a
// batch may pass the queue's bound by its own size (callers keep batches
// small: the tailer's hold at most 256 lines). One lock, one wake-up and
// one acknowledgement per batch instead of per event: for a tailer, the
// queue's cost per line was as large as parsing it. The events' texts are
// redacted in evs, then copied; evs may be reused on return.
func (w *Writer) EnqueueBatch(ctx context.Context, evs []event.Event, ack func()) error {
	if len(evs) == 0 {
		if ack != nil {
			ack()
		}
		return nil
	}
	for i := range evs {
		evs[i].CommandText = redact.SQL(evs[i].CommandText)
	}
	if err := w.waitRoom(ctx, w.o.QueueEvents, true, len(evs)); err != nil {
		return err
	}
	var g *ackGroup
	if ack != nil {
		g = &ackGroup{fn: ack}
	}
	before := len(w.queue)
	w.queue = append(w.queue, evs...)
	for range len(evs) - 1 {
		w.qmeta = append(w.qmeta, meta{ack: g})
	}
	w.qmeta = append(w.qmeta, meta{ack: g, last: true})
	wake := w.idle || before < w.o.MaxEvents && len(w.queue) >= w.o.MaxEvents
	w.idle = false
	w.qmu.Unlock()
	w.eventsIn.Add(uint64(len(evs)))
	if wake {
		w.signal(w.wake)
	}
	return nil
}

// SubmitAll is Submit for several events, in order, under one lock (the
// proxy's statement and the AUX events of its tables). It returns how many
// it took; the others, past a full queue, are dropped and counted.
func (w *Writer) SubmitAll(evs []event.Event) int {
	for i := range evs {
		evs[i].CommandText = redact.SQL(evs[i].CommandText)
	}
	w.qmu.Lock()
	if w.closed.Load() {
		w.qmu.Unlock()
		return 0
	}
	n := min(max(w.o.QueueEvents-len(w.queue)-w.held, 0), len(evs))
	before := len(w.queue)
	w.queue = append(w.queue, evs[:n]...)
	for range n {
		w.qmeta = append(w.qmeta, meta{})
	}
	wake := n > 0 && (w.idle || before < w.o.MaxEvents && len(w.queue) >= w.o.MaxEvents)
	if n > 0 {
		w.idle = false
	}
	w.qmu.Unlock()
	w.eventsIn.Add(uint64(len(evs)))
	if n < len(evs) {
		w.dropped.Add(uint64(len(evs) - n))
	}
	if wake {
		w.signal(w.wake)
	}
	return n
}

// Enqueue queues an event, waiting while the queue is full: backpressure
// instead of loss, for sources that can wait (a file being replayed).
func (w *Writer) Enqueue(ctx context.Context, ev event.Event) error {
	return w.enqueue(ctx, ev, meta{}, true)
}

func (w *Writer) enqueue(ctx context.Context, ev event.Event, m meta, block bool) error {
	ev.CommandText = redact.SQL(ev.CommandText)
	bound := w.o.QueueEvents
	if m.done != nil {
		// A sync event has as much again: past QueueEvents, the events over
		// it are sync ones, backed up themselves (the sink down).
		bound = w.syncBound
	}
	if err := w.waitRoom(ctx, bound, block, 1); err != nil {
		return err
	}
	w.queue = append(w.queue, ev)
	w.qmeta = append(w.qmeta, m)
	wake := w.idle || len(w.queue) == w.o.MaxEvents
	w.idle = false
	if m.done != nil {
		w.syncQueued++
		wake = true
	}
	w.qmu.Unlock()
	w.eventsIn.Add(1)
	if wake {
		w.signal(w.wake)
	}
	return nil
}

// waitRoom locks qmu and returns with it held once the queue is under
// bound, or, without it, ErrClosed, ErrQueueFull (block false: the n events
// are counted as dropped) or ctx's error.
func (w *Writer) waitRoom(ctx context.Context, bound int, block bool, n int) error {
	w.qmu.Lock()
	for {
		if w.closed.Load() {
			w.qmu.Unlock()
			return ErrClosed
		}
		if len(w.queue)+w.held < bound {
			return nil
		}
		if !block {
			w.qmu.Unlock()
			w.eventsIn.Add(uint64(n))
			w.dropped.Add(uint64(n))
			return ErrQueueFull
		}
		if w.space == nil {
			w.space = make(chan struct{})
		}
		space := w.space
		w.qmu.Unlock()
		select {
		case <-space:
		case <-ctx.Done():
			w.eventsIn.Add(uint64(n))
			w.dropped.Add(uint64(n))
			return ctx.Err()
		}
		w.qmu.Lock()
	}
}

// signal leaves a token on a capacity-1 channel without waiting.
func (w *Writer) signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// syncInflight is how many records holding sync-mode events may wait for
// the sink at once. One: the sync events that arrive while a record commits
// are sealed together after it, so that records are as large as the load
// makes them. Each record costs a signature (a P-384 nonce, ~250 µs); with
// two in flight, records were half as large and 64 sessions got 12% fewer
// statements through on a 2-core machine, and 8 sessions no more
// (docs/PERFORMANCE.md).
const syncInflight = 1

// ErrQueueFull is an event refused because the queue was full; it is
// counted as dropped.
var ErrQueueFull = errors.New("pipeline: queue full, event dropped")

// Close stops accepting events, seals and flushes everything queued, and
// waits until it is durable or ctx ends.
func (w *Writer) Close(ctx context.Context) error {
	w.qmu.Lock()
	if !w.closed.Swap(true) && w.space != nil {
		close(w.space) // waiting producers see closed
		w.space = nil
	}
	w.qmu.Unlock()
	w.signal(w.wake)
	select {
	case <-w.done:
		return w.err
	case <-ctx.Done():
		return fmt.Errorf("pipeline: close: %w", ctx.Err())
	}
}

// Stats returns the counters.
func (w *Writer) Stats() Stats {
	return Stats{
		EventsIn: w.eventsIn.Load(), EventsDropped: w.dropped.Load(), EventsDurable: w.durable.Load(),
		Records: w.records.Load(), Heartbeats: w.heartbeats.Load(), SealErrors: w.sealErrs.Load(),
		SinkErrors: w.sinkErrs.Load(), LastSeq: w.lastSeq.Load(), Splits: w.splits.Load(), TextsCut: w.cut.Load(),
	}
}

func (w *Writer) run(seq uint64, prev *dasrecord.Digest) {
	defer close(w.acks)
	var taken []event.Event
	var tmeta []meta
	linger := time.NewTimer(time.Hour)
	linger.Stop()
	armed, lingered := false, false
	var hbC <-chan time.Time
	if w.o.HeartbeatInterval > 0 && w.o.Heartbeat != nil {
		hb := time.NewTicker(w.o.HeartbeatInterval)
		defer hb.Stop()
		hbC = hb.C
	}
	lastActivity := w.o.Now()
	// fit is how many events a record takes at most: MaxEvents, halved each
	// time a record had to be split for the sink's size limit and doubled
	// back by records sealed under half of it, so that a workload of large
	// statements does not pay a wasted seal per record.
	fit := w.o.MaxEvents

	// seal makes one record of chunk (at most MaxEvents events; ms holds
	// their submitters) and hands it to the sink. A record over the sink's
	// limit is not handed on: its halves are sealed instead, and one event
	// too large alone is cut.
	var seal func(chunk []event.Event, ms []meta, cuts int)
	seal = func(chunk []event.Event, ms []meta, cuts int) {
		next := seq + 1
		s, err := w.sealWithRetry(chunk, next, prev)
		// Three cuts fit any event whose size is its text; one that still
		// does not fit is handed on and the sink says why it refuses it.
		if err == nil && w.maxRecord > 0 && len(s.Line) > w.maxRecord && cuts < 3 {
			if len(chunk) > 1 {
				w.splits.Add(1)
				half := len(chunk) / 2
				fit = max(1, min(fit, half))
				seal(chunk[:half], ms[:half], 0)
				seal(chunk[half:], ms[half:], 0)
				return
			}
			if cuts == 0 {
				w.cut.Add(1)
				w.log.Warn("an event alone exceeds the sink's record limit; its commandText is cut",
					"limit", w.maxRecord, "sealed", len(s.Line))
			}
			chunk[0] = fitEvent(chunk[0], len(s.Line), w.maxRecord)
			seal(chunk, ms, cuts+1)
			return
		}
		if err == nil && w.maxRecord > 0 && len(s.Line) < w.maxRecord/2 && len(chunk) == fit {
			fit = min(w.o.MaxEvents, 2*fit)
		}
		var dones []func(error)
		var groups, ends []*ackGroup
		for i := range ms {
			if ms[i].done != nil {
				dones = append(dones, ms[i].done)
			}
			if g := ms[i].ack; g != nil {
				if len(groups) == 0 || groups[len(groups)-1] != g {
					groups = append(groups, g)
				}
				if ms[i].last {
					ends = append(ends, g)
				}
			}
		}
		if err != nil {
			// The batch cannot be sealed (KMS down): its events are lost, and
			// said so; the stream lifecycle decides what happens next.
			w.sealErrs.Add(1)
			w.dropped.Add(uint64(len(chunk)))
			w.log.Error("sealing failed; events dropped", "seq", next, "events", len(chunk), "err", err)
			for _, g := range groups {
				g.lost.Store(true)
			}
			for _, d := range dones {
				d(err)
			}
		} else {
			seq, prev = next, &s.Digest
			w.inflight.Add(1)
			w.acks <- pending{seq: next, events: len(chunk), wait: w.sink.AppendAsync(next, s.Line), dones: dones, groups: groups, ends: ends}
		}
	}

	for {
		w.qmu.Lock()
		n, closed := len(w.queue), w.closed.Load()
		if n == 0 {
			if closed {
				w.qmu.Unlock()
				return
			}
			w.idle = true
			w.qmu.Unlock()
			select {
			case <-w.wake:
			case <-w.kick:
			case now := <-hbC:
				if now.Sub(lastActivity) >= w.o.HeartbeatInterval {
					w.heartbeats.Add(1)
					seal([]event.Event{w.o.Heartbeat(w.o.Now())}, []meta{{}}, 0)
					lastActivity = now
				}
			}
			continue
		}
		// A session waiting in sync mode does not linger when the sink is
		// idle; while it commits a record, sync events gather and are
		// sealed together when it is done (the acker kicks).
		ready := closed || lingered || n >= w.o.MaxEvents || w.o.Linger <= 0 ||
			(w.syncQueued > 0 && w.inflight.Load() < syncInflight)
		if !ready {
			w.qmu.Unlock()
			if !armed {
				linger.Reset(w.o.Linger)
				armed = true
			}
			select {
			case <-linger.C:
				armed, lingered = false, true
			case <-w.wake:
			case <-w.kick:
			}
			continue
		}
		// Woken by a full queue, take whole records only: the rest waits
		// for the next one (or its linger) instead of being sealed as a
		// small record of its own, each of which costs a signature.
		if k := n - n%w.o.MaxEvents; !closed && !lingered && w.o.Linger > 0 && w.syncQueued == 0 && k > 0 && k < n {
			rest, rmeta := w.queue[k:], w.qmeta[k:]
			taken, w.queue = w.queue[:k], append(taken[:0], rest...)
			tmeta, w.qmeta = w.qmeta[:k], append(tmeta[:0], rmeta...)
			clear(rest)
			clear(rmeta)
		} else {
			taken, w.queue = w.queue, taken[:0]
			tmeta, w.qmeta = w.qmeta, tmeta[:0]
		}
		w.held, w.syncQueued, w.idle = len(taken), 0, false
		w.qmu.Unlock()
		if armed {
			linger.Stop()
			armed = false
		}
		lingered = false
		lastActivity = w.o.Now()
		for i := 0; i < len(taken); {
			end := min(len(taken), i+fit)
			chunk, ms := taken[i:end], tmeta[i:end]
			seal(chunk, ms, 0)
			clear(chunk) // no references kept to sealed events' strings
			clear(ms)
			i = end
			w.qmu.Lock()
			w.held -= len(chunk)
			if w.space != nil {
				close(w.space)
				w.space = nil
			}
			w.qmu.Unlock()
		}
		taken, tmeta = taken[:0], tmeta[:0]
	}
}

// fitEvent cuts an event's commandText and bound values so that its record,
// sealed at size bytes, fits limit, and marks the event as cut. Sealed size
// grows with the text at most linearly (base64 of gzip), so scaling the
// text by limit/size, with a margin, fits in one or two rounds.
func fitEvent(e event.Event, size, limit int) event.Event {
	keep := func(n int) int { return int(float64(n) * float64(limit) / float64(size) * 0.9) }
	orig := len(e.CommandText)
	e.CommandText = cutUTF8(e.CommandText, keep(len(e.CommandText)))
	if len(e.ParamList) > 0 {
		ps := make([]string, len(e.ParamList))
		for i, p := range e.ParamList {
			ps[i] = cutUTF8(p, keep(len(p)))
		}
		e.ParamList = ps
	}
	if !e.Extra.Has("dasTextCut") { // cut again: the first length stays
		e.Extra = e.Extra.With("dasTextCut", json.RawMessage(strconv.Itoa(orig)))
	}
	return e
}

// cutUTF8 cuts s to at most n bytes on a character boundary.
func cutUTF8(s string, n int) string {
	if n >= len(s) {
		return s
	}
	if n < 0 {
		n = 0
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// sealWithRetry seals, retrying with backoff while the failure lasts less
// than the retry window (cached data keys usually keep sealing going; a new
// key needs KMS). A closing writer gives up at once.
func (w *Writer) sealWithRetry(batch []event.Event, seq uint64, prev *dasrecord.Digest) (record.Sealed, error) {
	start := time.Now()
	backoff := 50 * time.Millisecond
	for {
		s, err := w.sealer.Seal(context.Background(), batch, seq, prev)
		if err == nil {
			return s, nil
		}
		if w.closed.Load() || time.Since(start)+backoff > w.o.RetryWindow {
			if w.o.OnSealFailure != nil && !w.sealFailed {
				w.sealFailed = true
				w.o.OnSealFailure(err)
			}
			return s, err
		}
		w.log.Warn("sealing failed; retrying", "seq", seq, "retry_in", backoff, "err", err)
		time.Sleep(backoff)
		backoff = min(2*backoff, 5*time.Second)
	}
}

// acker waits for each record's durability in order and releases its waiters.
func (w *Writer) acker() {
	defer close(w.done)
	stalled := false
	for p := range w.acks {
		var timer *time.Timer
		var fired atomic.Bool
		if w.o.SinkStall > 0 && w.o.OnSinkStall != nil && !stalled {
			timer = time.AfterFunc(w.o.SinkStall, func() {
				fired.Store(true)
				w.o.OnSinkStall(true)
			})
		}
		err := p.wait()
		if timer != nil {
			timer.Stop()
			if fired.Load() {
				stalled = true
			}
		}
		if stalled && err == nil {
			stalled = false
			w.o.OnSinkStall(false)
		}
		if err != nil {
			for _, g := range p.groups {
				g.lost.Store(true)
			}
			w.sinkErrs.Add(1)
			w.dropped.Add(uint64(p.events))
			w.log.Error("record not durable", "seq", p.seq, "events", p.events, "err", err)
			if w.err == nil {
				w.err = fmt.Errorf("pipeline: record %d: %w", p.seq, err)
			}
		} else {
			w.records.Add(1)
			w.durable.Add(uint64(p.events))
			w.lastSeq.Store(p.seq)
			if w.o.OnDurable != nil {
				w.o.OnDurable(p.seq, p.events)
			}
			for _, g := range p.ends {
				if !g.lost.Load() {
					g.fn()
				}
			}
		}
		for _, d := range p.dones {
			d(err)
		}
		w.inflight.Add(-1)
		select {
		case w.kick <- struct{}{}:
		default:
		}
	}
}
