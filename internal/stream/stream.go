// Package stream is one activity stream's lifecycle: its state (starting,
// started, stopping, stopped) with a reason, its mode (async or sync), its
// KMS key and sink, and the rules of the seed: when the sealer cannot reach
// KMS past a retry window the stream stops with reason kms-unreachable and an
// event says so; a probe keeps checking KMS and, with auto_restart, starts the
// stream again. While a stream is stopped the proxy keeps relaying, unless
// the policy is fail_closed.
package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/das-mysql/das/internal/event"
	"github.com/das-mysql/das/internal/kms"
	"github.com/das-mysql/das/internal/pipeline"
	"github.com/das-mysql/das/internal/record"
	"github.com/das-mysql/das/pkg/dasrecord"
)

// States, as RDS names them.
const (
	Starting = "starting"
	Started  = "started"
	Stopping = "stopping"
	Stopped  = "stopped"
)

// Reasons a stream stopped.
const (
	ReasonOperator       = "requested"
	ReasonKMSUnreachable = "kms-unreachable"
	ReasonStartFailed    = "start-failed"
	ReasonShutdown       = "shutdown"
)

// Why a loss window started (the reason attribute of DAS-EVENT-0020).
const (
	LossQueueFull         = "queue-full"
	LossDurabilityTimeout = "durability-timeout"
	LossKMSUnreachable    = "kms-unreachable"
	LossSinkUnreachable   = "sink-unreachable"
)

// Event ids this package raises (the catalogue lives in internal/events).
const (
	EventStarting     = "DAS-EVENT-0001"
	EventStarted      = "DAS-EVENT-0002"
	EventStopping     = "DAS-EVENT-0003"
	EventStopped      = "DAS-EVENT-0004"
	EventKMSDown      = "DAS-EVENT-0010"
	EventKMSUp        = "DAS-EVENT-0011"
	EventLossStart    = "DAS-EVENT-0020"
	EventLossEnd      = "DAS-EVENT-0021"
	EventFailClosedOn = "DAS-EVENT-0040"
	EventFailClosedOf = "DAS-EVENT-0041"
	EventSinkDown     = "DAS-EVENT-0030"
	EventSinkUp       = "DAS-EVENT-0031"
	EventSpoolOn      = "DAS-EVENT-0070"
	EventSpoolDrained = "DAS-EVENT-0071"
)

// Notify raises an event of the catalogue.
type Notify func(id string, attrs map[string]string)

// Options configure a Stream.
type Options struct {
	StreamID    string
	InstanceID  string
	Suite       record.Options // Suite and FrameLength are used
	Provider    kms.Provider
	KMSKeyID    string // for describe
	MaxUses     int
	MaxAge      time.Duration
	Sink        pipeline.Sink
	SinkName    string
	Writer      pipeline.Options // batching, queue, heartbeats, OnDurable
	Mode        string           // async | sync
	FailClosed  bool
	AutoRestart bool
	// RetryWindow: how long sealing retries KMS before the stream stops.
	RetryWindow time.Duration
	// ProbeInterval: how often a stopped stream checks KMS again.
	ProbeInterval time.Duration
	// SyncTimeout bounds how long a sync-mode session waits for durability.
	SyncTimeout time.Duration
	// SpoolRecords > 0 is spool_on_kms_outage: while KMS cannot make a new
	// data key, up to this many records are sealed under the last valid one
	// and go to the sink in order, instead of the stream stopping.
	SpoolRecords int
	Notify       Notify
	Logger       *slog.Logger
}

// Status describes a stream.
type Status struct {
	StreamID, State, Reason, Mode, KMSKeyID, Sink, LastError string
	Policy                                                   string
	AutoRestart                                              bool
	StartedAt                                                *time.Time
	Counters                                                 map[string]uint64
}

// Stream is one activity stream.
type Stream struct {
	o Options

	mu        sync.Mutex
	state     string
	reason    string
	mode      string
	lastErr   string
	startedAt *time.Time
	writer    *pipeline.Writer
	keys      *kms.KeyCache
	sealer    *record.Sealer
	probing   bool
	closed    bool

	// counters of writers that were stopped, so totals survive restarts
	base pipeline.Stats

	// The loss window (watch goroutine only, but for syncTimeouts and
	// sinkStalled, which sessions and the acker set).
	lossOpen     bool
	lossBase     uint64 // events lost before the window
	lossSince    time.Time
	syncTimeouts atomic.Uint64 // sync events whose session went on before they were durable
	sinkStalled  atomic.Bool
	sinkDownAt   time.Time // acker only

	done chan struct{}
	wg   sync.WaitGroup
}

// ErrNotRecording is returned to a fail_closed admission check.
var ErrNotRecording = errors.New("the activity stream is not recording")

// New returns a stopped stream; call Start.
func New(o Options) *Stream {
	if o.Mode == "" {
		o.Mode = "async"
	}
	if o.RetryWindow <= 0 {
		o.RetryWindow = 60 * time.Second
	}
	if o.ProbeInterval <= 0 {
		o.ProbeInterval = 5 * time.Second
	}
	if o.SyncTimeout <= 0 {
		o.SyncTimeout = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Notify == nil {
		o.Notify = func(string, map[string]string) {}
	}
	s := &Stream{o: o, state: Stopped, reason: "never started", mode: o.Mode, done: make(chan struct{})}
	s.wg.Add(1)
	go s.watch()
	return s
}

// modeSink is a sink that tunes itself to the mode (Kafka lingers for
// larger batches in async mode only).
type modeSink interface{ SetSync(bool) }

func (s *Stream) tellSink(mode string) {
	if ms, ok := s.o.Sink.(modeSink); ok {
		ms.SetSync(mode == "sync")
	}
}

func (s *Stream) notify(id string, kv ...string) {
	attrs := map[string]string{"stream": s.o.StreamID}
	for i := 0; i+1 < len(kv); i += 2 {
		attrs[kv[i]] = kv[i+1]
	}
	s.o.Notify(id, attrs)
}

// Start starts the stream (idempotent: a started stream stays as it is).
// mode "" keeps the current mode.
func (s *Stream) Start(ctx context.Context, mode string) (Status, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return s.Describe(), errors.New("stream: das is shutting down")
	}
	if mode != "" && mode != "async" && mode != "sync" {
		s.mu.Unlock()
		return s.Describe(), fmt.Errorf("stream: mode %q: want async or sync", mode)
	}
	if s.state == Started || s.state == Starting {
		if mode != "" {
			s.mode = mode // a mode change applies at once: the writer is shared
			s.tellSink(mode)
		}
		s.mu.Unlock()
		return s.Describe(), nil
	}
	if mode != "" {
		s.mode = mode
	}
	s.tellSink(s.mode)
	s.state, s.reason, s.lastErr = Starting, "", ""
	s.mu.Unlock()
	s.notify(EventStarting, "mode", s.Mode())

	// Prove KMS answers before saying started: the first data key.
	var kopts []kms.KeyCacheOption
	if s.o.SpoolRecords > 0 {
		kopts = append(kopts, kms.WithGrace(s.o.SpoolRecords, func(err error, served int) {
			if err != nil {
				s.notify(EventSpoolOn, "class", kms.ClassifyError(err), "error", err.Error())
				return
			}
			s.notify(EventSpoolDrained, "spooled", fmt.Sprint(served))
		}))
	}
	keys := kms.NewKeyCache(s.o.Provider, dasrecord.ContextFor(s.o.StreamID), s.o.MaxUses, s.o.MaxAge, kopts...)
	lease, err := keys.Acquire(ctx)
	if err != nil {
		keys.Close()
		s.stopped(ReasonKMSUnreachable, err)
		s.startProbe()
		return s.Describe(), fmt.Errorf("stream: start: %w", err)
	}
	lease.Release()
	opts := s.o.Suite
	opts.StreamID, opts.InstanceID = s.o.StreamID, s.o.InstanceID
	sealer, err := record.NewSealer(keys, opts)
	if err != nil {
		keys.Close()
		s.stopped(ReasonStartFailed, err)
		return s.Describe(), err
	}
	wo := s.o.Writer
	wo.Logger = s.o.Logger
	wo.RetryWindow = s.o.RetryWindow
	wo.OnSealFailure = s.sealFailed
	if wo.SinkStall == 0 {
		wo.SinkStall = 5 * time.Second
	}
	stallAfter := wo.SinkStall
	wo.OnSinkStall = func(stalled bool) {
		s.sinkStalled.Store(stalled)
		if stalled {
			s.sinkDownAt = time.Now().Add(-stallAfter)
			s.notify(EventSinkDown, "sink", s.o.SinkName,
				"error", fmt.Sprintf("no record acknowledged by the sink for %s", stallAfter))
		} else {
			s.notify(EventSinkUp, "sink", s.o.SinkName,
				"duration", time.Since(s.sinkDownAt).Round(time.Millisecond).String())
		}
	}
	w := pipeline.New(sealer, s.o.Sink, wo)

	s.mu.Lock()
	now := time.Now().UTC()
	s.writer, s.keys, s.sealer, s.state, s.startedAt = w, keys, sealer, Started, &now
	failClosed := s.o.FailClosed
	s.mu.Unlock()
	s.notify(EventStarted, "mode", s.Mode(), "sink", s.o.SinkName)
	if failClosed {
		s.notify(EventFailClosedOf)
	}
	return s.Describe(), nil
}

// sealFailed is called by the writer when sealing failed past the retry
// window: the seed's behaviour, the stream stops.
func (s *Stream) sealFailed(err error) {
	go func() {
		class := kms.ClassifyError(err)
		s.notify(EventKMSDown, "class", class, "error", err.Error())
		s.stop(context.Background(), ReasonKMSUnreachable, err)
		s.startProbe()
	}()
}

// Stop stops the stream, flushing what it holds (idempotent).
func (s *Stream) Stop(ctx context.Context) (Status, error) {
	return s.Describe(), s.stop(ctx, ReasonOperator, nil)
}

func (s *Stream) stop(ctx context.Context, reason string, cause error) error {
	s.mu.Lock()
	if s.state != Started {
		s.mu.Unlock()
		return nil
	}
	w, keys, sealer := s.writer, s.keys, s.sealer
	s.state = Stopping
	s.mu.Unlock()
	s.notify(EventStopping, "reason", reason)
	err := w.Close(ctx)
	sealer.Close()
	keys.Close()
	s.mu.Lock()
	st := w.Stats()
	s.base.EventsIn += st.EventsIn
	s.base.EventsDropped += st.EventsDropped
	s.base.EventsDurable += st.EventsDurable
	s.base.Records += st.Records
	s.base.Heartbeats += st.Heartbeats
	s.base.SealErrors += st.SealErrors
	s.base.SinkErrors += st.SinkErrors
	s.writer, s.keys, s.sealer = nil, nil, nil
	s.mu.Unlock()
	if cause == nil {
		cause = err
	}
	s.stopped(reason, cause)
	return err
}

func (s *Stream) stopped(reason string, cause error) {
	s.mu.Lock()
	s.state, s.reason, s.startedAt = Stopped, reason, nil
	if cause != nil {
		s.lastErr = cause.Error()
	}
	failClosed := s.o.FailClosed
	s.mu.Unlock()
	kv := []string{"reason", reason}
	if cause != nil {
		kv = append(kv, "error", cause.Error())
	}
	s.notify(EventStopped, kv...)
	if failClosed {
		s.notify(EventFailClosedOn, "reason", reason)
	}
}

// startProbe checks KMS until it answers, then raises "reachable again"
// and, with auto_restart, starts the stream.
func (s *Stream) startProbe() {
	s.mu.Lock()
	if s.probing || s.closed {
		s.mu.Unlock()
		return
	}
	s.probing = true
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer func() { s.mu.Lock(); s.probing = false; s.mu.Unlock() }()
		t := time.NewTicker(s.o.ProbeInterval)
		defer t.Stop()
		for {
			select {
			case <-s.done:
				return
			case <-t.C:
			}
			ctx, cancel := context.WithTimeout(context.Background(), s.o.ProbeInterval)
			dk, err := s.o.Provider.GenerateDataKey(ctx, dasrecord.ContextFor(s.o.StreamID))
			cancel()
			if err != nil {
				s.o.Logger.Debug("stream: KMS still unreachable", "class", kms.ClassifyError(err), "err", err)
				continue
			}
			clear(dk.Plaintext)
			s.notify(EventKMSUp)
			if s.o.AutoRestart {
				if _, err := s.Start(context.Background(), ""); err != nil {
					s.o.Logger.Warn("stream: auto restart failed", "err", err)
					continue
				}
			}
			return
		}
	}()
}

// lossQuiet is how long no event may be lost before a loss window is
// declared over (and every event submitted before the last loss must be
// durable or counted): sync sessions time out one by one, and a window must
// not flap between them.
const lossQuiet = 2 * time.Second

// watch reports loss windows: events dropped because the queue was full or
// a record could not be sealed or made durable, and sync events whose
// session went on before they were durable.
func (s *Stream) watch() {
	defer s.wg.Done()
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	var last, lastTimeouts uint64
	var prev pipeline.Stats
	var lastLoss time.Time
	var inAtLoss uint64 // events submitted when the last loss was seen
	for {
		var now time.Time
		select {
		case <-s.done:
			return
		case now = <-t.C:
		}
		st := s.stats()
		timeouts := s.syncTimeouts.Load()
		lost := st.EventsDropped + timeouts
		if lost > last {
			lastLoss, inAtLoss = now, st.EventsIn
		}
		switch {
		case lost > last && !s.lossOpen:
			reason := LossQueueFull
			switch {
			case timeouts > lastTimeouts:
				reason = LossDurabilityTimeout
			case st.SealErrors > prev.SealErrors:
				reason = LossKMSUnreachable
			case st.SinkErrors > prev.SinkErrors || s.sinkStalled.Load():
				reason = LossSinkUnreachable
			}
			s.lossOpen, s.lossBase, s.lossSince = true, last, now
			queued := st.EventsIn - st.EventsDurable - min(st.EventsDropped, st.EventsIn-st.EventsDurable)
			s.notify(EventLossStart, "mode", s.Mode(), "reason", reason, "queued", fmt.Sprint(queued))
		case s.lossOpen && now.Sub(lastLoss) >= lossQuiet && !s.sinkStalled.Load() &&
			st.EventsDurable+st.EventsDropped >= inAtLoss: // what was queued then is settled
			s.lossOpen = false
			s.notify(EventLossEnd, "since", s.lossSince.UTC().Format(time.RFC3339), "duration", now.Sub(s.lossSince).Round(time.Millisecond).String(),
				"missed", fmt.Sprint(lost-s.lossBase))
		}
		last, lastTimeouts, prev = lost, timeouts, st
	}
}

func (s *Stream) stats() pipeline.Stats {
	s.mu.Lock()
	b, w := s.base, s.writer
	s.mu.Unlock()
	if w != nil {
		st := w.Stats()
		b.EventsIn += st.EventsIn
		b.EventsDropped += st.EventsDropped
		b.EventsDurable += st.EventsDurable
		b.Records += st.Records
		b.Heartbeats += st.Heartbeats
		b.SealErrors += st.SealErrors
		b.SinkErrors += st.SinkErrors
		b.LastSeq = st.LastSeq
	}
	return b
}

// Mode is the current mode.
func (s *Stream) Mode() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mode
}

// Describe returns the stream's status.
func (s *Stream) Describe() Status {
	st := s.stats()
	s.mu.Lock()
	defer s.mu.Unlock()
	policy := "fail_open"
	if s.o.FailClosed {
		policy = "fail_closed"
	}
	return Status{
		StreamID: s.o.StreamID, State: s.state, Reason: s.reason, Mode: s.mode, KMSKeyID: s.o.KMSKeyID,
		Sink: s.o.SinkName, LastError: s.lastErr, Policy: policy, AutoRestart: s.o.AutoRestart, StartedAt: s.startedAt,
		Counters: map[string]uint64{
			"events_in": st.EventsIn, "events_dropped": st.EventsDropped, "events_durable": st.EventsDurable,
			"records": st.Records, "heartbeats": st.Heartbeats, "seal_errors": st.SealErrors,
			"sink_errors": st.SinkErrors, "last_seq": st.LastSeq,
		},
	}
}

// Submit takes a captured event (the proxy's and the tailer's sink). While
// the stream is stopped events are not recorded, as with DAS.
func (s *Stream) Submit(ev event.Event) bool {
	s.mu.Lock()
	w := s.writer
	s.mu.Unlock()
	if w == nil {
		return false
	}
	return w.Submit(ev)
}

// SubmitAll is Submit for several events in order (a statement and its
// AUX events); it returns how many were taken.
func (s *Stream) SubmitAll(evs []event.Event) int {
	s.mu.Lock()
	w := s.writer
	s.mu.Unlock()
	if w == nil {
		return 0
	}
	return w.SubmitAll(evs)
}

// Sync reports whether sessions wait for durability.
func (s *Stream) Sync() bool { return s.Mode() == "sync" }

// SubmitWait takes an event and waits until it is durable, at most the
// sync timeout: past it the session goes on and the loss is counted.
func (s *Stream) SubmitWait(ctx context.Context, ev event.Event) error {
	s.mu.Lock()
	w := s.writer
	s.mu.Unlock()
	if w == nil {
		return ErrNotRecording
	}
	ctx, cancel := context.WithTimeout(ctx, s.o.SyncTimeout)
	defer cancel()
	err := w.SubmitWait(ctx, ev)
	if errors.Is(err, pipeline.ErrNotDurable) {
		s.syncTimeouts.Add(1) // still queued: it may yet become durable
	}
	return err
}

// SubmitNotify is SubmitWait for a caller that must not block (the proxy's
// event loops): done is called once, with nil when the event is durable,
// with an error wrapping pipeline.ErrNotDurable at the sync timeout (the
// event stays queued and may still become durable), or at once with why it
// was not taken: pipeline.ErrQueueFull when sync events fill the queue
// (twice queue_events: the sink has been down for long), counted as dropped.
// done may run before SubmitNotify returns.
func (s *Stream) SubmitNotify(ev event.Event, done func(error)) {
	s.mu.Lock()
	w := s.writer
	s.mu.Unlock()
	if w == nil {
		done(ErrNotRecording)
		return
	}
	n := &syncNote{done: done, s: s}
	n.t = time.AfterFunc(s.o.SyncTimeout, n.timeout)
	if err := w.SubmitNotify(ev, n.durable); err != nil {
		n.t.Stop()
		n.fire(err)
	}
}

// syncNote delivers one SubmitNotify outcome, whichever comes first: the
// record's or the sync timeout.
type syncNote struct {
	once atomic.Bool
	done func(error)
	s    *Stream
	t    *time.Timer
}

func (n *syncNote) fire(err error) {
	if n.once.CompareAndSwap(false, true) {
		n.done(err)
	}
}

func (n *syncNote) durable(err error) {
	n.t.Stop()
	n.fire(err)
}

func (n *syncNote) timeout() {
	if n.once.CompareAndSwap(false, true) {
		n.s.syncTimeouts.Add(1) // still queued: it may yet become durable
		n.done(fmt.Errorf("%w: sync timeout %s", pipeline.ErrNotDurable, n.s.o.SyncTimeout))
	}
}

// Enqueue takes an event with backpressure (a file being replayed).
func (s *Stream) Enqueue(ctx context.Context, ev event.Event) error {
	s.mu.Lock()
	w := s.writer
	s.mu.Unlock()
	if w == nil {
		return ErrNotRecording
	}
	return w.Enqueue(ctx, ev)
}

// EnqueueBatch takes events in order with backpressure and calls ack once
// all of them are durable (never if one was lost): the audit-log tailer's
// sink, a read buffer's lines at a time.
func (s *Stream) EnqueueBatch(ctx context.Context, evs []event.Event, ack func()) error {
	s.mu.Lock()
	w := s.writer
	s.mu.Unlock()
	if w == nil {
		return ErrNotRecording
	}
	return w.EnqueueBatch(ctx, evs, ack)
}

// Admit is the fail_closed check for a new database session.
func (s *Stream) Admit() error {
	if !s.o.FailClosed {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != Started {
		return fmt.Errorf("%w (stream %s is %s: %s); fail_closed refuses new sessions", ErrNotRecording, s.o.StreamID, s.state, s.reason)
	}
	return nil
}

// Close stops the stream for shutdown and ends its background work.
func (s *Stream) Close(ctx context.Context) error {
	err := s.stop(ctx, ReasonShutdown, nil)
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.done)
	}
	s.mu.Unlock()
	s.wg.Wait()
	return err
}
