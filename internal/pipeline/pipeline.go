// Package pipeline runs one activity stream's writer: it takes events from
// the capture sources, redacts them, batches them into records, seals each
// record with the next sequence number chained to its predecessor, and hands
// it to the sink. A single goroutine assigns sequences, so the chain is gap-free
// by construction; sealing of the next batch overlaps the sink's fsync of the
// previous one.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

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

// Sealer seals a batch as record seq.
type Sealer interface {
	Seal(ctx context.Context, events []event.Event, seq uint64, prev *dasrecord.Digest) (record.Sealed, error)
}

// Options tune a Writer.
type Options struct {
	MaxEvents         int           // events per record
	Linger            time.Duration // wait for more events before sealing a partial batch
	QueueEvents       int           // bound of the async queue
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
}

// ErrClosed is returned by Submit after Close.
var ErrClosed = errors.New("pipeline: stream writer closed")

type item struct {
	ev   event.Event
	done chan<- error // sync mode: told when durable
	ack  func()       // EnqueueAck: called once durable
}

// Writer is one stream's writer.
type Writer struct {
	o      Options
	sealer Sealer
	sink   Sink
	log    *slog.Logger

	in     chan item
	closed atomic.Bool
	mu     sync.RWMutex // excludes Submit from Close's channel close

	acks chan pending
	done chan struct{}
	err  error

	sealFailed bool // OnSealFailure was called (run goroutine only)

	// inflight counts records handed to the sink and not yet durable; the
	// acker kicks the writer when one completes, so that sync-mode events
	// gathered meanwhile are sealed together (group commit).
	inflight atomic.Int64
	kick     chan struct{}

	eventsIn, dropped, durable, records, heartbeats, sealErrs, sinkErrs, lastSeq atomic.Uint64
}

type pending struct {
	seq    uint64
	events int
	wait   func() error
	dones  []chan<- error
	acks   []func()
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
		in:   make(chan item, o.QueueEvents),
		acks: make(chan pending, 64),
		done: make(chan struct{}),
		kick: make(chan struct{}, 1),
	}
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
	return w.submit(item{ev: ev}) == nil
}

// SubmitWait queues an event and waits until its record is durable (sync
// mode). Redaction happens before queueing.
func (w *Writer) SubmitWait(ctx context.Context, ev event.Event) error {
	done := make(chan error, 1)
	if err := w.submit(item{ev: ev, done: done}); err != nil {
		return err
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// EnqueueAck is Enqueue with an acknowledgement: ack is called, in order,
// once the event's record is durable (a log tailer checkpoints on it).
func (w *Writer) EnqueueAck(ctx context.Context, ev event.Event, ack func()) error {
	return w.enqueue(ctx, item{ev: ev, ack: ack}, true)
}

// Enqueue queues an event, waiting while the queue is full: backpressure
// instead of loss, for sources that can wait (a file being replayed).
func (w *Writer) Enqueue(ctx context.Context, ev event.Event) error {
	return w.enqueue(ctx, item{ev: ev}, true)
}

func (w *Writer) submit(it item) error {
	// Sync callers take backpressure instead of loss.
	return w.enqueue(context.Background(), it, it.done != nil)
}

func (w *Writer) enqueue(ctx context.Context, it item, block bool) error {
	it.ev.CommandText = redact.SQL(it.ev.CommandText)
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed.Load() {
		return ErrClosed
	}
	w.eventsIn.Add(1)
	if block {
		select {
		case w.in <- it:
			return nil
		case <-ctx.Done():
			w.dropped.Add(1)
			return ctx.Err()
		}
	}
	select {
	case w.in <- it:
		return nil
	default:
		w.dropped.Add(1)
		return errQueueFull
	}
}

// syncInflight is how many records holding sync-mode events may wait for
// the sink at once: two lets the next record be sealed while the previous
// one commits, and the sink still groups them (one fsync, one produce).
const syncInflight = 2

var errQueueFull = errors.New("pipeline: queue full, event dropped")

// Close stops accepting events, seals and flushes everything queued, and
// waits until it is durable or ctx ends.
func (w *Writer) Close(ctx context.Context) error {
	w.mu.Lock()
	if !w.closed.Swap(true) {
		close(w.in)
	}
	w.mu.Unlock()
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
		SinkErrors: w.sinkErrs.Load(), LastSeq: w.lastSeq.Load(),
	}
}

func (w *Writer) run(seq uint64, prev *dasrecord.Digest) {
	defer close(w.acks)
	batch := make([]event.Event, 0, w.o.MaxEvents)
	var dones []chan<- error
	var acks []func()
	var linger *time.Timer
	var lingerC <-chan time.Time
	var hb *time.Ticker
	var hbC <-chan time.Time
	if w.o.HeartbeatInterval > 0 && w.o.Heartbeat != nil {
		hb = time.NewTicker(w.o.HeartbeatInterval)
		defer hb.Stop()
		hbC = hb.C
	}
	lastActivity := w.o.Now()

	flush := func() {
		if len(batch) == 0 {
			return
		}
		next := seq + 1
		s, err := w.sealWithRetry(batch, next, prev)
		if err != nil {
			// The batch cannot be sealed (KMS down): its events are lost, and
			// said so; the stream lifecycle decides what happens next.
			w.sealErrs.Add(1)
			w.dropped.Add(uint64(len(batch)))
			w.log.Error("sealing failed; events dropped", "seq", next, "events", len(batch), "err", err)
			for _, d := range dones {
				d <- err
			}
		} else {
			seq, prev = next, &s.Digest
			w.inflight.Add(1)
			w.acks <- pending{seq: next, events: len(batch), wait: w.sink.AppendAsync(next, s.Line), dones: dones, acks: acks}
		}
		batch = batch[:0]
		dones, acks = nil, nil
		if linger != nil {
			linger.Stop()
			lingerC = nil
		}
	}

	for {
		select {
		case it, ok := <-w.in:
			if !ok {
				flush()
				return
			}
			batch = append(batch, it.ev)
			if it.done != nil {
				dones = append(dones, it.done)
			}
			if it.ack != nil {
				acks = append(acks, it.ack)
			}
			lastActivity = w.o.Now()
			// Drain what is already queued before deciding to wait.
		fill:
			for len(batch) < w.o.MaxEvents {
				select {
				case it, ok := <-w.in:
					if !ok {
						flush()
						return
					}
					batch = append(batch, it.ev)
					if it.done != nil {
						dones = append(dones, it.done)
					}
					if it.ack != nil {
						acks = append(acks, it.ack)
					}
				default:
					break fill
				}
			}
			// A session waiting in sync mode does not linger when the sink is
			// idle; while it commits a record, sync events gather and are
			// sealed together when it is done (the acker kicks).
			if len(batch) >= w.o.MaxEvents || w.o.Linger <= 0 || (len(dones) > 0 && w.inflight.Load() < syncInflight) {
				flush()
			} else if lingerC == nil {
				if linger == nil {
					linger = time.NewTimer(w.o.Linger)
				} else {
					linger.Reset(w.o.Linger)
				}
				lingerC = linger.C
			}
		case <-lingerC:
			lingerC = nil
			flush()
		case <-w.kick:
			if len(dones) > 0 && w.inflight.Load() < syncInflight {
				flush()
			}
		case now := <-hbC:
			if len(batch) == 0 && now.Sub(lastActivity) >= w.o.HeartbeatInterval {
				batch = append(batch, w.o.Heartbeat(w.o.Now()))
				w.heartbeats.Add(1)
				flush()
				lastActivity = now
			}
		}
	}
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
			for _, a := range p.acks {
				a()
			}
		}
		for _, d := range p.dones {
			d <- err
		}
		w.inflight.Add(-1)
		select {
		case w.kick <- struct{}{}:
		default:
		}
	}
}
