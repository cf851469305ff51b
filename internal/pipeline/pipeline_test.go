package pipeline

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/das-mysql/das/internal/event"
	"github.com/das-mysql/das/internal/record"
	"github.com/das-mysql/das/pkg/dasrecord"
)

// textSealer "seals" a batch as a readable line so tests can check batching,
// sequencing and chaining without cryptography (record has its own tests).
type textSealer struct {
	fail failCounter
}

type failCounter struct {
	mu sync.Mutex
	n  int
}

func (a *failCounter) take() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.n > 0 {
		a.n--
		return true
	}
	return false
}

func (s *textSealer) Seal(_ context.Context, evs []event.Event, seq uint64, prev *dasrecord.Digest) (record.Sealed, error) {
	if s.fail.take() {
		return record.Sealed{}, errors.New("kms unreachable")
	}
	texts := make([]string, len(evs))
	for i, e := range evs {
		texts[i] = e.CommandText
	}
	p := ""
	if prev != nil {
		p = prev.String()
	}
	line := []byte(fmt.Sprintf("%d|%s|%s", seq, p, strings.Join(texts, ";")))
	return record.Sealed{Line: line, Digest: sha256.Sum256(line), Events: len(evs)}, nil
}

// memSink is an in-memory durable log with an optional delay per commit.
type memSink struct {
	mu    sync.Mutex
	lines [][]byte
	seqs  []uint64
	delay time.Duration
	fail  error
}

func (m *memSink) Last() (uint64, []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.lines) == 0 {
		return 0, nil
	}
	return m.seqs[len(m.seqs)-1], m.lines[len(m.lines)-1]
}

func (m *memSink) AppendAsync(seq uint64, line []byte) func() error {
	m.mu.Lock()
	m.lines = append(m.lines, line)
	m.seqs = append(m.seqs, seq)
	err := m.fail
	m.mu.Unlock()
	return func() error { time.Sleep(m.delay); return err }
}

func q(text string) event.Event {
	e := event.New(time.Now())
	e.Command, e.CommandText = "QUERY", text
	return e
}

func TestBatchingSequenceAndChain(t *testing.T) {
	sink := &memSink{}
	var durable []uint64
	w := New(&textSealer{}, sink, Options{MaxEvents: 4, Linger: time.Hour, OnDurable: func(seq uint64, n int) { durable = append(durable, seq) }})
	for i := range 10 {
		if !w.Submit(q(fmt.Sprintf("SELECT %d", i))) {
			t.Fatal("dropped")
		}
	}
	if err := w.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	var all []string
	var prev []byte
	for i, l := range sink.lines {
		parts := strings.SplitN(string(l), "|", 3)
		if parts[0] != fmt.Sprint(i+1) {
			t.Errorf("record %d has seq %s", i, parts[0])
		}
		wantPrev := ""
		if prev != nil {
			wantPrev = dasrecord.DigestOf(prev).String()
		}
		if parts[1] != wantPrev {
			t.Errorf("record %d chained to %q, want %q", i+1, parts[1], wantPrev)
		}
		if n := strings.Count(parts[2], ";") + 1; n > 4 {
			t.Errorf("record %d holds %d events, max 4", i+1, n)
		}
		all = append(all, strings.Split(parts[2], ";")...)
		prev = l
	}
	if len(all) != 10 || all[0] != "SELECT 0" || all[9] != "SELECT 9" {
		t.Fatalf("events out of order or lost: %v", all)
	}
	if len(durable) != len(sink.lines) || durable[len(durable)-1] != uint64(len(sink.lines)) {
		t.Fatalf("durable callbacks %v for %d records", durable, len(sink.lines))
	}
	if st := w.Stats(); st.EventsDurable != 10 || st.LastSeq != uint64(len(sink.lines)) {
		t.Fatalf("stats %+v", st)
	}
}

func TestRedactsBeforeQueueing(t *testing.T) {
	sink := &memSink{}
	w := New(&textSealer{}, sink, Options{})
	w.Submit(q("CREATE USER 'u'@'%' IDENTIFIED BY 'hunter2'"))
	if err := w.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(sink.lines[0]), "hunter2") {
		t.Fatalf("password reached the sealer: %s", sink.lines[0])
	}
}

func TestContinuesChainOfExistingSink(t *testing.T) {
	sink := &memSink{lines: [][]byte{[]byte("old record")}, seqs: []uint64{41}}
	w := New(&textSealer{}, sink, Options{})
	w.Submit(q("SELECT 1"))
	if err := w.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("42|%s|SELECT 1", dasrecord.DigestOf([]byte("old record")))
	if got := string(sink.lines[1]); got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestLingerSealsPartialBatch(t *testing.T) {
	sink := &memSink{}
	got := make(chan uint64, 1)
	w := New(&textSealer{}, sink, Options{MaxEvents: 100, Linger: 10 * time.Millisecond, OnDurable: func(seq uint64, _ int) { got <- seq }})
	defer w.Close(context.Background())
	w.Submit(q("SELECT 1"))
	select {
	case seq := <-got:
		if seq != 1 {
			t.Fatalf("seq %d", seq)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a partial batch was not sealed after its linger")
	}
}

func TestSyncWaitsForDurability(t *testing.T) {
	sink := &memSink{delay: 30 * time.Millisecond}
	w := New(&textSealer{}, sink, Options{Linger: time.Millisecond})
	defer w.Close(context.Background())
	start := time.Now()
	if err := w.SubmitWait(context.Background(), q("UPDATE t SET a = 1")); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) < 30*time.Millisecond {
		t.Fatal("SubmitWait returned before the sink made the record durable")
	}
	// Many concurrent sync sessions share commits (group commit).
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := w.SubmitWait(context.Background(), q(fmt.Sprint("SELECT ", i))); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if st := w.Stats(); st.Records >= 65 {
		t.Fatalf("65 sync events took %d records: no batching", st.Records)
	}
}

func TestSyncReportsFailure(t *testing.T) {
	w := New(&textSealer{}, &memSink{fail: errors.New("disk full")}, Options{})
	err := w.SubmitWait(context.Background(), q("SELECT 1"))
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("err = %v", err)
	}
	if err := w.Close(context.Background()); err == nil {
		t.Fatal("Close hid the sink failure")
	}
	if st := w.Stats(); st.SinkErrors != 1 || st.EventsDropped != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestSealFailureCountsLoss(t *testing.T) {
	s := &textSealer{}
	s.fail.n = 1
	sink := &memSink{}
	w := New(s, sink, Options{MaxEvents: 1})
	w.Submit(q("lost"))
	w.Submit(q("kept"))
	if err := w.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := w.Stats(); st.SealErrors != 1 || st.EventsDropped != 1 || st.EventsDurable != 1 {
		t.Fatalf("stats %+v", st)
	}
	if len(sink.lines) != 1 || !strings.HasPrefix(string(sink.lines[0]), "1||kept") {
		t.Fatalf("a failed seal must not consume a sequence number: %q", sink.lines)
	}
}

func TestQueueFullDropsAndCounts(t *testing.T) {
	sink := &memSink{delay: 50 * time.Millisecond}
	w := New(&textSealer{}, sink, Options{MaxEvents: 1, QueueEvents: 2})
	dropped := 0
	for range 200 {
		if !w.Submit(q("x")) {
			dropped++
		}
	}
	w.Close(context.Background())
	st := w.Stats()
	if dropped == 0 || st.EventsDropped != uint64(dropped) || st.EventsIn != 200 {
		t.Fatalf("dropped %d, stats %+v", dropped, st)
	}
}

func TestHeartbeatWhenIdle(t *testing.T) {
	sink := &memSink{}
	w := New(&textSealer{}, sink, Options{
		HeartbeatInterval: 10 * time.Millisecond,
		Heartbeat: func(now time.Time) event.Event {
			e := event.New(now)
			e.Type, e.CommandText = event.TypeHeartbeat, "hb"
			return e
		},
	})
	deadline := time.Now().Add(5 * time.Second)
	for w.Stats().Heartbeats < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	w.Close(context.Background())
	if w.Stats().Heartbeats < 2 {
		t.Fatal("no heartbeats on an idle stream")
	}
}

func TestSubmitAfterClose(t *testing.T) {
	w := New(&textSealer{}, &memSink{}, Options{})
	w.Close(context.Background())
	if w.Submit(q("late")) {
		t.Fatal("Submit after Close succeeded")
	}
	if err := w.Enqueue(context.Background(), q("late")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Enqueue after Close: %v", err)
	}
}

func TestSinkStallEvents(t *testing.T) {
	sink := &memSink{delay: 200 * time.Millisecond}
	var mu sync.Mutex
	var got []bool
	w := New(&textSealer{}, sink, Options{MaxEvents: 1, SinkStall: 50 * time.Millisecond, OnSinkStall: func(s bool) {
		mu.Lock()
		got = append(got, s)
		mu.Unlock()
	}})
	w.Submit(q("slow"))
	if err := w.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 || !got[0] || got[1] {
		t.Fatalf("stall events %v, want [true false]", got)
	}
}

// Enqueue waits for room instead of dropping: every event of a producer far
// faster than the sink arrives, in order, with the queue never above its
// bound; a cancelled context gives up and counts the event.
func TestEnqueueBackpressure(t *testing.T) {
	sink := &memSink{delay: 2 * time.Millisecond}
	w := New(&textSealer{}, sink, Options{MaxEvents: 4, QueueEvents: 8, Linger: time.Hour})
	const n = 300
	for i := range n {
		if err := w.Enqueue(context.Background(), q(fmt.Sprintf("e%d", i))); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		// Bound: the queue, plus records handed to the sink (the acks
		// channel's 64, the one the acker waits on, the one being handed).
		if st := w.Stats(); st.EventsIn-st.EventsDurable > 8+4*(64+2) {
			t.Fatalf("after event %d: %d events neither durable nor dropped", i, st.EventsIn-st.EventsDurable)
		}
	}
	if err := w.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range sink.lines {
		parts := strings.SplitN(string(l), "|", 3)
		got = append(got, strings.Split(parts[2], ";")...)
	}
	if len(got) != n {
		t.Fatalf("%d events durable, want %d", len(got), n)
	}
	for i, g := range got {
		if g != fmt.Sprintf("e%d", i) {
			t.Fatalf("event %d is %q: order lost", i, g)
		}
	}
	if st := w.Stats(); st.EventsDropped != 0 || st.EventsDurable != n {
		t.Fatalf("stats %+v", st)
	}
}

func TestEnqueueGivesUpOnContextAndClose(t *testing.T) {
	block := make(chan struct{})
	sink := &gateSink{gate: block}
	w := New(&textSealer{}, sink, Options{MaxEvents: 1, QueueEvents: 1, Linger: time.Hour})
	// Fill the acks channel and the queue: the sink never completes.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	var err error
	for i := 0; i < 1000 && err == nil; i++ {
		err = w.Enqueue(ctx, q("x"))
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Enqueue on a stuck sink: %v, want the context's deadline", err)
	}
	if st := w.Stats(); st.EventsDropped != 1 {
		t.Fatalf("dropped %d, want the one event given up", st.EventsDropped)
	}
	// A producer waiting for room when the writer closes is told so.
	errc := make(chan error, 1)
	go func() { errc <- w.Enqueue(context.Background(), q("y")) }()
	time.Sleep(50 * time.Millisecond)
	closed := make(chan error, 1)
	go func() { closed <- w.Close(context.Background()) }()
	select {
	case err := <-errc:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("waiting Enqueue after Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a producer waiting for room was not released by Close")
	}
	close(block)
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
}

// gateSink makes nothing durable until gate is closed.
type gateSink struct {
	memSink
	gate chan struct{}
}

func (g *gateSink) AppendAsync(seq uint64, line []byte) func() error {
	wait := g.memSink.AppendAsync(seq, line)
	return func() error { <-g.gate; return wait() }
}

// limitSink is a memSink whose records may not exceed max bytes.
type limitSink struct {
	memSink
	max int
}

func (l *limitSink) MaxRecordBytes() int { return l.max }

func (l *limitSink) AppendAsync(seq uint64, line []byte) func() error {
	if len(line) > l.max {
		return func() error { return fmt.Errorf("record %d: %d bytes over the limit", seq, len(line)) }
	}
	return l.memSink.AppendAsync(seq, line)
}

// A batch that would seal over the sink's record limit becomes several
// records, chained and in order; an event too large alone is cut and
// marked, never refused.
func TestSplitsRecordsOverTheSinkLimit(t *testing.T) {
	sink := &limitSink{max: 200}
	w := New(&textSealer{}, sink, Options{MaxEvents: 64, Linger: time.Hour})
	var want []string
	for i := range 40 {
		want = append(want, fmt.Sprintf("event-%02d", i))
		w.Submit(q(want[i]))
	}
	big := strings.Repeat("é", 400) // 800 bytes: over the limit alone
	w.Submit(q(big))
	if err := w.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	var got []string
	var prev string
	for i, l := range sink.lines {
		if len(l) > sink.max {
			t.Fatalf("record %d is %d bytes, over %d", i, len(l), sink.max)
		}
		parts := strings.SplitN(string(l), "|", 3)
		if parts[0] != fmt.Sprint(i+1) || parts[1] != prev {
			t.Fatalf("record %d: seq %s prev %q: chain broken", i, parts[0], parts[1])
		}
		d := sha256.Sum256(l)
		prev = dasrecord.Digest(d).String()
		got = append(got, strings.Split(parts[2], ";")...)
	}
	if len(sink.lines) < 3 {
		t.Fatalf("%d records: the batch was not split", len(sink.lines))
	}
	last := got[len(got)-1]
	if strings.Join(got[:len(got)-1], ",") != strings.Join(want, ",") {
		t.Fatalf("events %v, want %v", got[:len(got)-1], want)
	}
	if len(last) == 0 || len(last) >= len(big) || !strings.HasPrefix(big, last) || !utf8.ValidString(last) {
		t.Fatalf("oversized event kept %d bytes of %d (valid UTF-8 %v)", len(last), len(big), utf8.ValidString(last))
	}
	st := w.Stats()
	if st.Splits == 0 || st.TextsCut != 1 || st.EventsDurable != 41 || st.EventsDropped != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// After a split, records are made smaller at once: a workload of large
// events does not pay a wasted seal on every record. Once records fit
// easily again they grow back.
func TestSplitsAdaptToTheSinkLimit(t *testing.T) {
	sink := &limitSink{max: 2000}
	w := New(&textSealer{}, sink, Options{MaxEvents: 64, Linger: time.Hour, QueueEvents: 100000})
	ctx := context.Background()
	const large = 64 * 20
	for i := range large { // ~100-byte events: ~19 fit a record
		if err := w.Enqueue(ctx, q(fmt.Sprintf("L%04d-%s", i, strings.Repeat("x", 90)))); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 64 * 8 { // tiny events: 64 fit easily
		if err := w.Enqueue(ctx, q(fmt.Sprintf("s%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	st := w.Stats()
	if st.EventsDurable != large+64*8 || st.EventsDropped != 0 {
		t.Fatalf("stats %+v", st)
	}
	// Without adapting, each of the 20 full batches of large events splits
	// three times (64 -> 32 -> 16).
	if st.Splits > 6 {
		t.Errorf("%d splits in %d records: the record size did not adapt", st.Splits, st.Records)
	}
	most := 0
	for i, l := range sink.lines {
		if len(l) > sink.max {
			t.Fatalf("record %d is %d bytes, over %d", i, len(l), sink.max)
		}
		evs := strings.Split(strings.SplitN(string(l), "|", 3)[2], ";")
		if strings.HasPrefix(evs[0], "s") {
			most = max(most, len(evs))
		}
	}
	if most != 64 {
		t.Errorf("records of tiny events hold at most %d events, want 64: the size did not grow back", most)
	}
}

// A sync submitter facing a full queue (the sink down for long) waits no
// longer than its context, and the event is counted as dropped.
func TestSubmitWaitDeadlineCoversAFullQueue(t *testing.T) {
	gate := make(chan struct{})
	defer close(gate)
	w := New(&textSealer{}, &gateSink{gate: gate}, Options{MaxEvents: 1, QueueEvents: 4, Linger: time.Hour})
	// The sink takes no record: after the acker's 64 waiting records and
	// the queue's 4 events, the others find the queue full.
	const n = 150
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	done := make(chan error, n)
	for range n {
		go func() { done <- w.SubmitWait(ctx, q("s")) }()
	}
	for range n {
		select {
		case err := <-done:
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("SubmitWait on a stuck sink: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("SubmitWait held a session past its deadline with the queue full")
		}
	}
	if st := w.Stats(); st.EventsDropped == 0 || st.EventsIn != n {
		t.Fatalf("events given up on a full queue were not counted: %+v", st)
	}
}

// gateSealer blocks its first Seal until gate is closed.
type gateSealer struct {
	textSealer
	once    sync.Once
	sealing chan struct{}
	gate    chan struct{}
}

func (g *gateSealer) Seal(ctx context.Context, evs []event.Event, seq uint64, prev *dasrecord.Digest) (record.Sealed, error) {
	g.once.Do(func() { close(g.sealing); <-g.gate })
	return g.textSealer.Seal(ctx, evs, seq, prev)
}

// A queue that filled up while the sealer was busy becomes full records
// only; what is left over waits for more events (or its linger) instead of
// being sealed as a small record that costs as much to sign as a full one.
func TestFullQueueSealsWholeRecords(t *testing.T) {
	sink := &memSink{}
	sealer := &gateSealer{sealing: make(chan struct{}), gate: make(chan struct{})}
	durable := make(chan int, 16)
	w := New(sealer, sink, Options{MaxEvents: 4, Linger: time.Hour, OnDurable: func(_ uint64, n int) { durable <- n }})
	for i := range 4 {
		w.Submit(q(fmt.Sprintf("SELECT %d", i)))
	}
	<-sealer.sealing // the first record is being sealed; 10 more queue up
	for i := 4; i < 14; i++ {
		w.Submit(q(fmt.Sprintf("SELECT %d", i)))
	}
	close(sealer.gate)
	for range 3 {
		select {
		case n := <-durable:
			if n != 4 {
				t.Fatalf("a record of %d events, want 4", n)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("full records were not sealed")
		}
	}
	select {
	case n := <-durable:
		t.Fatalf("a partial record of %d events sealed before its linger", n)
	case <-time.After(100 * time.Millisecond):
	}
	if err := w.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := <-durable; n != 2 {
		t.Fatalf("the last record holds %d events, want the 2 left over", n)
	}
	if st := w.Stats(); st.EventsDurable != 14 || st.Records != 4 {
		t.Fatalf("stats %+v", st)
	}
}

// chainedTexts checks that the sink's records are numbered from 1 and each
// chains to its predecessor, and returns their events' texts in order.
func chainedTexts(t *testing.T, m *memSink) []string {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	var texts []string
	prev := ""
	for i, l := range m.lines {
		parts := strings.SplitN(string(l), "|", 3)
		if parts[0] != fmt.Sprint(i+1) || parts[1] != prev {
			t.Fatalf("record %d: seq %s prev %q: chain broken", i+1, parts[0], parts[1])
		}
		prev = dasrecord.DigestOf(l).String()
		texts = append(texts, strings.Split(parts[2], ";")...)
	}
	return texts
}

// Sync-mode events are not refused because async events filled the queue:
// they may fill it to twice QueueEvents. Past that they are refused and
// counted like async ones, however often sessions that went on after their
// sync timeout submit again, so that a sink outage cannot grow the queue
// without bound. What was taken is delivered in order once the sink is back.
func TestSyncEventsBoundedOverAFullQueue(t *testing.T) {
	const queue = 4
	for _, tc := range []struct {
		name string
		// submit hands one sync event to w and reports whether it was
		// taken; a taken event's later answer, if it has one, goes to dones.
		answers bool
		submit  func(t *testing.T, w *Writer, ev event.Event, dones chan<- error) bool
	}{
		{"SubmitNotify", true, func(t *testing.T, w *Writer, ev event.Event, dones chan<- error) bool {
			err := w.SubmitNotify(ev, func(err error) { dones <- err })
			if err != nil && !errors.Is(err, ErrQueueFull) {
				t.Fatalf("SubmitNotify: %v, want nil or ErrQueueFull", err)
			}
			return err == nil
		}},
		{"SubmitWait", false, func(t *testing.T, w *Writer, ev event.Event, _ chan<- error) bool {
			// The session's sync timeout: taken, the event is not durable
			// within it; refused, no room came within it.
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
			defer cancel()
			err := w.SubmitWait(ctx, ev)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("SubmitWait on a stuck sink: %v, want the deadline", err)
			}
			return errors.Is(err, ErrNotDurable)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gate := make(chan struct{})
			sink := &gateSink{gate: gate}
			w := New(&textSealer{}, sink, Options{MaxEvents: 1, QueueEvents: queue, Linger: time.Hour})
			// The sink takes nothing: once the acker's records wait, async
			// events fill the queue.
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			var want []string
			for i := 0; ; i++ {
				text := fmt.Sprint("async-", i)
				if err := w.Enqueue(ctx, q(text)); err != nil {
					break
				}
				want = append(want, text)
			}
			cancel()
			if w.Submit(q("async-refused")) {
				t.Fatal("an async event was taken over a full queue")
			}
			dones := make(chan error, 100)
			taken := 0
			const sessions = 20
			for i := range sessions {
				text := fmt.Sprint("sync-", i)
				if tc.submit(t, w, q(text), dones) {
					taken++
					want = append(want, text)
				}
			}
			if taken != queue {
				t.Fatalf("%d of %d sync events taken over a full queue of %d, want %d (as many again)", taken, sessions, queue, queue)
			}
			st := w.Stats()
			if want := uint64(2 + sessions - queue); st.EventsDropped != want {
				t.Fatalf("%d events counted dropped, want %d (the Enqueue given up, the async one, the sync ones refused)", st.EventsDropped, want)
			}
			if len(dones) != 0 {
				t.Fatalf("a sync event was answered before the sink took it: %v", <-dones)
			}

			close(gate) // the sink is back
			if err := w.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			if got := chainedTexts(t, &sink.memSink); !slices.Equal(got, want) {
				t.Fatalf("the sink holds %v, want %v", got, want)
			}
			if tc.answers {
				if len(dones) != queue {
					t.Fatalf("%d sync events answered, want the %d taken", len(dones), queue)
				}
				for range queue {
					if err := <-dones; err != nil {
						t.Fatalf("a taken sync event answered %v once the sink was back", err)
					}
				}
			}
		})
	}
}

// TestSubmitAll: several events in one call keep their order, are redacted,
// and past the queue's bound the rest of the call is dropped and counted.
func TestSubmitAll(t *testing.T) {
	sink := &memSink{delay: 100 * time.Millisecond}
	w := New(&textSealer{}, sink, Options{MaxEvents: 100, QueueEvents: 5, Linger: time.Hour})
	taken := w.SubmitAll([]event.Event{q("a1"), q("a2"), q("SET PASSWORD = PASSWORD('hunter2')")})
	taken += w.SubmitAll([]event.Event{q("b1"), q("b2"), q("b3")}) // 2 fit
	taken += w.SubmitAll([]event.Event{q("c1")})                   // none
	if taken != 5 {
		t.Fatalf("took %d events, room for 5", taken)
	}
	if err := w.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	var all []string
	for _, l := range sink.lines {
		all = append(all, strings.Split(strings.SplitN(string(l), "|", 3)[2], ";")...)
	}
	if strings.Contains(strings.Join(all, " "), "hunter2") || len(all) != 5 || all[0] != "a1" || all[4] != "b2" {
		t.Fatalf("events %q: out of order, lost or not redacted", all)
	}
	if st := w.Stats(); st.EventsIn != 7 || st.EventsDropped != 2 || st.EventsDurable != 5 {
		t.Fatalf("stats %+v", st)
	}
	if w.SubmitAll([]event.Event{q("late")}) != 0 {
		t.Fatal("SubmitAll after Close took an event")
	}
}

// failSeqSink refuses the records with the given sequence numbers.
type failSeqSink struct {
	memSink
	fail map[uint64]bool
}

func (f *failSeqSink) AppendAsync(seq uint64, line []byte) func() error {
	if f.fail[seq] {
		return func() error { return fmt.Errorf("record %d refused", seq) }
	}
	return f.memSink.AppendAsync(seq, line)
}

// A batch is acknowledged once, when its last event is durable, and never
// when any of its events was lost, even if the records after the loss are
// durable: a tailer's checkpoint must not pass an event the stream lacks.
func TestEnqueueBatchAcks(t *testing.T) {
	batch := func(prefix string, n int) []event.Event {
		evs := make([]event.Event, n)
		for i := range evs {
			evs[i] = q(fmt.Sprintf("%s%d", prefix, i))
		}
		return evs
	}
	cases := []struct {
		name      string
		sealFails int             // the first seals that fail
		sinkFails map[uint64]bool // records the sink refuses
		wantAcks  []string        // batches acknowledged, in order
		wantLost  uint64
	}{
		{name: "all durable", wantAcks: []string{"a", "b"}},
		{name: "first record of a spanning batch not sealed", sealFails: 1, wantAcks: []string{"b"}, wantLost: 4},
		{name: "middle record of a spanning batch refused", sinkFails: map[uint64]bool{2: true}, wantAcks: []string{"b"}, wantLost: 4},
		{name: "the record holding both batches' ends refused", sinkFails: map[uint64]bool{3: true}, wantAcks: nil, wantLost: 4},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := &textSealer{}
			s.fail.n = tc.sealFails
			sink := &failSeqSink{fail: tc.sinkFails}
			w := New(s, sink, Options{MaxEvents: 4, Linger: time.Hour})
			var mu sync.Mutex
			var acks []string
			ack := func(name string) func() {
				return func() { mu.Lock(); acks = append(acks, name); mu.Unlock() }
			}
			// Records of 4: a0-a3 | a4-a7 | a8 a9 b0 b1 (both ends).
			a, b := batch("a", 10), batch("b", 2)
			if err := w.EnqueueBatch(context.Background(), a, ack("a")); err != nil {
				t.Fatal(err)
			}
			clear(a) // the writer holds copies
			if err := w.EnqueueBatch(context.Background(), b, ack("b")); err != nil {
				t.Fatal(err)
			}
			w.Close(context.Background())
			if !slices.Equal(acks, tc.wantAcks) {
				t.Errorf("acknowledged %v, want %v", acks, tc.wantAcks)
			}
			if st := w.Stats(); st.EventsIn != 12 || st.EventsDropped != tc.wantLost || st.EventsDurable != 12-tc.wantLost {
				t.Errorf("stats %+v", st)
			}
			if tc.wantLost == 0 {
				if got := chainedTexts(t, &sink.memSink); !slices.Equal(got, []string{"a0", "a1", "a2", "a3", "a4", "a5", "a6", "a7", "a8", "a9", "b0", "b1"}) {
					t.Errorf("stream holds %v", got)
				}
			}
		})
	}
}
