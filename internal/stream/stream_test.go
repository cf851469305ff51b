package stream

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/das-mysql/das/internal/event"
	"github.com/das-mysql/das/internal/kms"
	"github.com/das-mysql/das/internal/pipeline"
	"github.com/das-mysql/das/internal/proxy"
	"github.com/das-mysql/das/internal/streamlog"
	"github.com/das-mysql/das/internal/testenv"
	"github.com/das-mysql/das/pkg/dasrecord"
)

// gate is a loopback TCP forwarder that can be closed and opened again on
// the same port: KMS becoming unreachable and reachable again.
type gate struct {
	t      *testing.T
	addr   string
	target string
	mu     sync.Mutex
	ln     net.Listener
	conns  []net.Conn
}

func newGate(t *testing.T, target string) *gate {
	g := &gate{t: t, target: target}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g.addr = ln.Addr().String()
	g.serve(ln)
	t.Cleanup(g.close)
	return g
}

func (g *gate) serve(ln net.Listener) {
	g.mu.Lock()
	g.ln = ln
	g.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", g.target)
			if err != nil {
				c.Close()
				continue
			}
			g.mu.Lock()
			g.conns = append(g.conns, c, u)
			g.mu.Unlock()
			go func() { io.Copy(u, c); u.Close() }()
			go func() { io.Copy(c, u); c.Close() }()
		}
	}()
}

func (g *gate) close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ln != nil {
		g.ln.Close()
		g.ln = nil
	}
	for _, c := range g.conns {
		c.Close()
	}
	g.conns = nil
}

func (g *gate) open() {
	ln, err := net.Listen("tcp", g.addr)
	if err != nil {
		g.t.Fatal(err)
	}
	g.serve(ln)
}

type recorder struct {
	mu  sync.Mutex
	ids []string
	all []map[string]string
}

func (r *recorder) notify(id string, attrs map[string]string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ids = append(r.ids, id)
	r.all = append(r.all, attrs)
}

func (r *recorder) has(id string) (map[string]string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, x := range r.ids {
		if x == id {
			return r.all[i], true
		}
	}
	return nil, false
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func query(text string) event.Event {
	e := event.New(time.Now())
	e.Command, e.CommandText = event.CommandQuery, text
	return e
}

// TestKMSOutage is the seed's scenario against a real KMS API server: KMS
// goes away, the stream stops with kms-unreachable and says which failure it
// was, fail_closed refuses sessions; KMS comes back, an event says so and
// auto_restart resumes the stream, whose chain has no break.
func TestKMSOutage(t *testing.T) {
	endpoint, keyARN := testenv.LocalKMS(t)
	g := newGate(t, strings.TrimPrefix(endpoint, "http://"))
	ctx := context.Background()
	p, err := kms.OpenAWS(ctx, kms.AWSOptions{KeyID: keyARN, Endpoint: "http://" + g.addr, MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	l, err := streamlog.Open(dir, streamlog.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	rec := &recorder{}
	const id = "cluster-OUTAGEOUTAGEOUTAGEOUTAGEOU"
	s := New(Options{
		StreamID: id, Provider: p, KMSKeyID: keyARN, MaxUses: 1, MaxAge: time.Hour,
		Sink: streamlog.Records{L: l}, SinkName: "local", Writer: pipeline.Options{MaxEvents: 1},
		FailClosed: true, AutoRestart: true, RetryWindow: 300 * time.Millisecond, ProbeInterval: 100 * time.Millisecond,
		Notify: rec.notify, Logger: slog.New(slog.DiscardHandler),
	})
	defer s.Close(ctx)
	if st, err := s.Start(ctx, "async"); err != nil || st.State != Started {
		t.Fatalf("start: %+v %v", st, err)
	}
	if st, err := s.Start(ctx, ""); err != nil || st.State != Started {
		t.Fatalf("starting a started stream must be a clear idempotent answer: %+v %v", st, err)
	}
	if err := s.Admit(); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		s.Submit(query(fmt.Sprint("before ", i)))
	}
	waitFor(t, "5 durable events", func() bool { return s.Describe().Counters["events_durable"] == 5 })

	g.close() // KMS unreachable: each record needs a new data key (MaxUses 1)
	s.Submit(query("during"))
	waitFor(t, "the stream to stop", func() bool { return s.Describe().State == Stopped })
	st := s.Describe()
	if st.Reason != ReasonKMSUnreachable || st.LastError == "" {
		t.Fatalf("stopped with %+v", st)
	}
	down, ok := rec.has(EventKMSDown)
	if !ok || down["class"] != "connect" {
		t.Fatalf("KMS unreachable event %v (events %v)", down, rec.ids)
	}
	if _, ok := rec.has(EventFailClosedOn); !ok {
		t.Fatal("no fail-closed event")
	}
	if err := s.Admit(); err == nil || !strings.Contains(err.Error(), "kms-unreachable") {
		t.Fatalf("fail_closed admitted a session: %v", err)
	}
	if s.Submit(query("while stopped")) {
		t.Fatal("a stopped stream took an event")
	}

	g.open()
	waitFor(t, "auto restart", func() bool { return s.Describe().State == Started })
	if _, ok := rec.has(EventKMSUp); !ok {
		t.Fatal("no KMS reachable event")
	}
	if err := s.Admit(); err != nil {
		t.Fatalf("fail_closed still engaged after restart: %v", err)
	}
	for i := range 3 {
		s.Submit(query(fmt.Sprint("after ", i)))
	}
	waitFor(t, "3 more durable events", func() bool { return s.Describe().Counters["events_durable"] == 8 })

	order := []string{EventStarting, EventStarted, EventKMSDown, EventStopping, EventStopped, EventFailClosedOn, EventKMSUp, EventStarting, EventStarted}
	rec.mu.Lock()
	got := slices.Clone(rec.ids)
	rec.mu.Unlock()
	i := 0
	for _, id := range got {
		if i < len(order) && id == order[i] {
			i++
		}
	}
	if i != len(order) {
		t.Fatalf("events out of order: got %v, want the subsequence %v", got, order)
	}

	// The chain has no break across the outage, and every record opens.
	r, err := streamlog.OpenReader(dir, streamlog.Start)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	d := &dasrecord.Decrypter{KMS: p}
	var texts []string
	var prev []byte
	for {
		e, err := r.Next(ctx)
		if err != nil {
			break
		}
		o, err := d.Decrypt(ctx, e.Data)
		if err != nil {
			t.Fatalf("seq %d: %v", e.Seq, err)
		}
		if prev != nil && o.Record.Prev != dasrecord.DigestOf(prev).String() {
			t.Fatalf("seq %d does not chain to its predecessor", e.Seq)
		}
		prev = e.Data
		for _, ev := range o.Payload.Events {
			texts = append(texts, ev.CommandText)
		}
	}
	if len(texts) != 8 || texts[4] != "before 4" || texts[5] != "after 0" {
		t.Fatalf("stream holds %q", texts)
	}
}

// slowSink delays durability, as a busy disk or a remote sink would.
type slowSink struct {
	streamlog.Records
	delay time.Duration
}

func (s slowSink) AppendAsync(seq uint64, line []byte) func() error {
	wait := s.Records.AppendAsync(seq, line)
	return func() error { time.Sleep(s.delay); return wait() }
}

// TestSyncModeHoldsTheAnswer: in sync mode a client's query does not
// complete before its event is durable.
func TestSyncModeHoldsTheAnswer(t *testing.T) {
	db := testenv.MariaDB(t)
	dir := t.TempDir()
	l, err := streamlog.Open(dir, streamlog.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	p, err := kms.OpenLocal(filepath.Join(t.TempDir(), "master.key"))
	if err != nil {
		t.Fatal(err)
	}
	const delay = 300 * time.Millisecond
	s := New(Options{
		StreamID: "cluster-SYNCSYNCSYNCSYNCSYNCSYNCSY", Provider: p, MaxUses: 100, MaxAge: time.Hour,
		Sink: slowSink{streamlog.Records{L: l}, delay}, Writer: pipeline.Options{Linger: time.Millisecond},
		Logger: slog.New(slog.DiscardHandler),
	})
	ctx := context.Background()
	defer s.Close(ctx)
	if _, err := s.Start(ctx, "sync"); err != nil {
		t.Fatal(err)
	}
	px := proxy.New(proxy.Options{Upstream: db.Addr(), Logger: slog.New(slog.DiscardHandler)}, s)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go px.Serve(ctx, ln)
	defer px.Shutdown(ctx)
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr, cfg.DBName = testenv.TestUser, db.UserPassword(), "tcp", ln.Addr().String(), testenv.TestDatabase
	conn, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetMaxOpenConns(1)
	if err := conn.Ping(); err != nil {
		t.Fatal(err)
	}
	before := s.Describe().Counters["events_durable"]
	start := time.Now()
	var one int
	if err := conn.QueryRow("SELECT 1 /* sync */").Scan(&one); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	after := s.Describe().Counters["events_durable"]
	if after <= before {
		t.Fatalf("the query returned before its event was durable (durable %d -> %d)", before, after)
	}
	if took < delay {
		t.Fatalf("the query took %v, less than the sink's %v: its answer was not held", took, delay)
	}

	// Async: the same query does not wait for the sink.
	if _, err := s.Start(ctx, "async"); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	if err := conn.QueryRow("SELECT 1 /* async */").Scan(&one); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) >= delay {
		t.Logf("async query took %v (sink delay %v): the machine is slow", time.Since(start), delay)
	}
}

// TestKMSOutageSpool: with spool_on_kms_outage the stream keeps recording
// through a KMS outage under the last valid data key, bounded, and nothing
// is lost.
func TestKMSOutageSpool(t *testing.T) {
	endpoint, keyARN := testenv.LocalKMS(t)
	g := newGate(t, strings.TrimPrefix(endpoint, "http://"))
	ctx := context.Background()
	p, err := kms.OpenAWS(ctx, kms.AWSOptions{KeyID: keyARN, Endpoint: "http://" + g.addr, MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	l, err := streamlog.Open(dir, streamlog.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	rec := &recorder{}
	s := New(Options{
		StreamID: "cluster-SPOOLSPOOLSPOOLSPOOLSPOOLSP", Provider: p, MaxUses: 1, MaxAge: time.Hour,
		Sink: streamlog.Records{L: l}, Writer: pipeline.Options{MaxEvents: 1}, SpoolRecords: 100,
		RetryWindow: 300 * time.Millisecond, ProbeInterval: 100 * time.Millisecond,
		Notify: rec.notify, Logger: slog.New(slog.DiscardHandler),
	})
	defer s.Close(ctx)
	if _, err := s.Start(ctx, "async"); err != nil {
		t.Fatal(err)
	}
	s.Submit(query("before"))
	waitFor(t, "1 durable event", func() bool { return s.Describe().Counters["events_durable"] == 1 })
	g.close()
	for i := range 5 {
		s.Submit(query(fmt.Sprint("outage ", i)))
	}
	waitFor(t, "outage events durable", func() bool { return s.Describe().Counters["events_durable"] == 6 })
	if st := s.Describe(); st.State != Started {
		t.Fatalf("the stream stopped although it spools: %+v", st)
	}
	if _, ok := rec.has(EventSpoolOn); !ok {
		t.Fatal("no spool event")
	}
	g.open()
	s.Submit(query("after"))
	waitFor(t, "drained", func() bool { _, ok := rec.has(EventSpoolDrained); return ok })
	waitFor(t, "7 durable events", func() bool { return s.Describe().Counters["events_durable"] == 7 })
	if d := s.Describe().Counters["events_dropped"]; d != 0 {
		t.Fatalf("%d events lost", d)
	}
}

// heldSink holds every record until released, as a sink whose brokers are
// unreachable does.
type heldSink struct {
	streamlog.Records
	release chan struct{}
	once    *sync.Once
}

// Release makes the held records durable, and those after them at once.
func (s heldSink) Release() { s.once.Do(func() { close(s.release) }) }

func (s heldSink) AppendAsync(seq uint64, line []byte) func() error {
	wait := s.Records.AppendAsync(seq, line)
	return func() error { <-s.release; return wait() }
}

// heldStream is a stream over a local log whose records become durable
// only once sink.Release is called (at the latest when the test ends, so
// that the stream's Close is not held).
func heldStream(t *testing.T, id string, syncTimeout time.Duration, notify Notify, wo pipeline.Options) (*Stream, heldSink) {
	t.Helper()
	l, err := streamlog.Open(t.TempDir(), streamlog.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	p, err := kms.OpenLocal(filepath.Join(t.TempDir(), "master.key"))
	if err != nil {
		t.Fatal(err)
	}
	sink := heldSink{streamlog.Records{L: l}, make(chan struct{}), new(sync.Once)}
	s := New(Options{
		StreamID: id, Provider: p, MaxUses: 100, MaxAge: time.Hour,
		Sink: sink, SyncTimeout: syncTimeout, Notify: notify, Writer: wo,
		Logger: slog.New(slog.DiscardHandler),
	})
	t.Cleanup(func() { s.Close(context.Background()) })
	t.Cleanup(sink.Release)
	return s, sink
}

// TestSyncTimeoutLossWindow: a sync event not durable within sync_timeout
// lets its session go on and opens a loss window (DAS-EVENT-0020, reason
// durability-timeout); once the sink takes records again the window closes
// (DAS-EVENT-0021) and the event, still queued, is durable after all.
func TestSyncTimeoutLossWindow(t *testing.T) {
	rec := &recorder{}
	s, sink := heldStream(t, "cluster-LOSSLOSSLOSSLOSSLOSSLOSSLO", 200*time.Millisecond, rec.notify, pipeline.Options{})
	ctx := context.Background()
	if _, err := s.Start(ctx, "sync"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err := s.SubmitWait(ctx, query("SELECT 'held'"))
	if !errors.Is(err, pipeline.ErrNotDurable) || time.Since(start) > 5*time.Second {
		t.Fatalf("SubmitWait on a held sink: %v after %s, want ErrNotDurable after the sync timeout", err, time.Since(start))
	}
	waitFor(t, "DAS-EVENT-0020", func() bool { _, ok := rec.has(EventLossStart); return ok })
	a, _ := rec.has(EventLossStart)
	if a["mode"] != "sync" || a["reason"] != LossDurabilityTimeout || a["queued"] != "1" {
		t.Fatalf("DAS-EVENT-0020 attributes %v", a)
	}
	time.Sleep(lossQuiet + time.Second)
	if _, ok := rec.has(EventLossEnd); ok {
		t.Fatal("the window closed while the sink still held the record")
	}
	sink.Release()
	waitFor(t, "DAS-EVENT-0021", func() bool { _, ok := rec.has(EventLossEnd); return ok })
	b, _ := rec.has(EventLossEnd)
	if b["missed"] != "1" || b["since"] == "" || b["duration"] == "" {
		t.Fatalf("DAS-EVENT-0021 attributes %v", b)
	}
	waitFor(t, "the held event durable", func() bool { return s.Describe().Counters["events_durable"] >= 1 })
}

// TestSubmitNotify: the event loops' sync submission answers once: nil when
// the event's record is durable, ErrNotDurable at the sync timeout while the
// sink holds it (and not again when it becomes durable later), and
// ErrNotRecording at once while the stream is stopped.
func TestSubmitNotify(t *testing.T) {
	s, sink := heldStream(t, "cluster-NOTENOTENOTENOTENOTENOTENO", 300*time.Millisecond, nil, pipeline.Options{})
	ctx := context.Background()
	answers := make(chan error, 4)
	s.SubmitNotify(query("SELECT 'stopped'"), func(err error) { answers <- err })
	if err := <-answers; !errors.Is(err, ErrNotRecording) {
		t.Fatalf("SubmitNotify on a stopped stream: %v, want ErrNotRecording", err)
	}
	if _, err := s.Start(ctx, "sync"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	s.SubmitNotify(query("SELECT 'held'"), func(err error) { answers <- err })
	select {
	case err := <-answers:
		if !errors.Is(err, pipeline.ErrNotDurable) || time.Since(start) < 250*time.Millisecond {
			t.Fatalf("SubmitNotify on a held sink: %v after %s, want ErrNotDurable after the sync timeout", err, time.Since(start))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no answer after the sync timeout")
	}
	sink.Release() // the held record becomes durable: no second answer
	s.SubmitNotify(query("SELECT 'durable'"), func(err error) { answers <- err })
	select {
	case err := <-answers:
		if err != nil {
			t.Fatalf("SubmitNotify on a working sink: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no answer for a durable event")
	}
	time.Sleep(100 * time.Millisecond)
	if len(answers) != 0 {
		t.Fatalf("%d answers more than one per event: %v", len(answers), <-answers)
	}
	if n := s.syncTimeouts.Load(); n != 1 {
		t.Errorf("%d sync timeouts counted, want 1", n)
	}
}

// modeRecorder is a sink that tunes itself to the mode, as Kafka's does.
type modeRecorder struct {
	pipeline.Sink
	modes []bool
}

func (m *modeRecorder) SetSync(sync bool) { m.modes = append(m.modes, sync) }

// TestModeReachesTheSink: the sink learns the mode at start and at every
// change while the stream runs (a Kafka sink opened async stops lingering).
func TestModeReachesTheSink(t *testing.T) {
	l, err := streamlog.Open(t.TempDir(), streamlog.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	p, err := kms.OpenLocal(filepath.Join(t.TempDir(), "master.key"))
	if err != nil {
		t.Fatal(err)
	}
	sink := &modeRecorder{Sink: streamlog.Records{L: l}}
	s := New(Options{
		StreamID: "cluster-MODEMODEMODEMODEMODEMODEMO", Provider: p, MaxUses: 100, MaxAge: time.Hour,
		Sink: sink, Logger: slog.New(slog.DiscardHandler),
	})
	ctx := context.Background()
	defer s.Close(ctx)
	for _, mode := range []string{"async", "sync", "", "async"} {
		if _, err := s.Start(ctx, mode); err != nil {
			t.Fatal(err)
		}
	}
	if want := []bool{false, true, false}; !slices.Equal(sink.modes, want) {
		t.Fatalf("SetSync calls %v, want %v", sink.modes, want)
	}
}

// streamTexts reads the stream's local log from its first record: the
// sequence numbers run from 1 without a gap, each record chains to its
// predecessor and decrypts, as das verify checks. It returns the events'
// texts in order.
func streamTexts(t *testing.T, l *streamlog.Log, p kms.Provider) []string {
	t.Helper()
	ctx := context.Background()
	r, err := l.NewReader(streamlog.Start)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	d := &dasrecord.Decrypter{KMS: p}
	var texts []string
	var prev []byte
	for seq := uint64(1); ; seq++ {
		e, err := r.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("reading record %d: %v", seq, err)
		}
		if e.Seq != seq {
			t.Fatalf("record %d follows record %d", e.Seq, seq-1)
		}
		o, err := d.Decrypt(ctx, e.Data)
		if err != nil {
			t.Fatalf("seq %d: %v", e.Seq, err)
		}
		if prev != nil && o.Record.Prev != dasrecord.DigestOf(prev).String() {
			t.Fatalf("seq %d does not chain to its predecessor", e.Seq)
		}
		prev = e.Data
		for _, ev := range o.Payload.Events {
			texts = append(texts, ev.CommandText)
		}
	}
	return texts
}

// TestSyncOutageBoundsTheQueue (issue #5): through a sink outage, sync
// sessions on the proxy's event loops (Stream.SubmitNotify) go on at each
// sync timeout and run their next statement. What waits for the sink stays
// within the configured bound: the queue takes sync events up to twice
// queue_events, and each one over it is refused at once, counted as dropped,
// in a loss window. Once the sink is back, every event taken is delivered, in
// each session's order, in a chain that verifies, and the window closes
// counting what was missed.
func TestSyncOutageBoundsTheQueue(t *testing.T) {
	const (
		queue       = 16
		maxEvents   = 4
		syncTimeout = 20 * time.Millisecond
		sessions    = 16
		// What may wait for the sink: the writer's queue (sync events:
		// twice queue_events) and the records handed to the sink (the
		// acker's 64 waiting and the one it waits on). A refusal counts
		// events_in and events_dropped one after the other: a reading in
		// between sees each refusing session's event as waiting.
		bound = 2*queue + (64+1)*maxEvents + sessions
	)
	rec := &recorder{}
	s, sink := heldStream(t, "cluster-BOUNDBOUNDBOUNDBOUNDBOUNDB", syncTimeout, rec.notify,
		pipeline.Options{MaxEvents: maxEvents, QueueEvents: queue, Linger: 200 * time.Millisecond})
	ctx := context.Background()
	if _, err := s.Start(ctx, "sync"); err != nil {
		t.Fatal(err)
	}

	// Each session runs statements one after another; a statement's event
	// is taken (its answer: durable, or ErrNotDurable at the sync timeout)
	// or refused.
	type outcome struct {
		text    string
		refused bool
	}
	var (
		wg        sync.WaitGroup
		stop      = make(chan struct{})
		submitted atomic.Int64
		outcomes  = make([][]outcome, sessions)
		errs      = make(chan error, sessions)
	)
	for i := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				text := fmt.Sprintf("SELECT 's%d-%d'", i, n)
				answer := make(chan error, 1)
				s.SubmitNotify(query(text), func(err error) { answer <- err })
				submitted.Add(1)
				var err error
				refused := false
				select {
				case err = <-answer:
					refused = errors.Is(err, pipeline.ErrQueueFull)
				default: // taken: answered at the sync timeout
					err = <-answer
				}
				switch {
				case refused:
				case errors.Is(err, pipeline.ErrNotDurable):
				default:
					errs <- fmt.Errorf("session %d, statement %d: answer %v, want ErrNotDurable at the sync timeout, or ErrQueueFull at once", i, n, err)
					return
				}
				outcomes[i] = append(outcomes[i], outcome{text, refused})
				time.Sleep(5 * time.Millisecond) // the client's next statement
			}
		}()
	}
	// Run until the sessions submitted several times the bound: without
	// one, as many events would wait for the sink.
	most := uint64(0)
	start := time.Now()
	for submitted.Load() < 3*bound || time.Since(start) < time.Second {
		c := s.Describe().Counters
		most = max(most, c["events_in"]-c["events_durable"]-c["events_dropped"])
		if most > bound || time.Since(start) > 20*time.Second {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if most > bound {
		t.Fatalf("%d events waited for the sink (submitted %d), over the bound of %d", most, submitted.Load(), bound)
	}
	refused, late := 0, 0
	for _, o := range slices.Concat(outcomes...) {
		if o.refused {
			refused++
		} else {
			late++
		}
	}
	mid := s.Describe().Counters
	if refused == 0 || mid["events_dropped"] != uint64(refused) {
		t.Fatalf("%d events refused to their sessions, %d counted dropped", refused, mid["events_dropped"])
	}
	waitFor(t, "DAS-EVENT-0020", func() bool { _, ok := rec.has(EventLossStart); return ok })
	if a, _ := rec.has(EventLossStart); a["mode"] != "sync" || a["reason"] != LossDurabilityTimeout {
		t.Fatalf("DAS-EVENT-0020 attributes %v", a)
	}
	if _, ok := rec.has(EventLossEnd); ok {
		t.Fatal("the loss window closed while the sink was away")
	}

	sink.Release() // the sink is back
	waitFor(t, "the events taken durable", func() bool { return s.Describe().Counters["events_durable"] == uint64(late) })
	answer := make(chan error, 1)
	s.SubmitNotify(query("SELECT 'after'"), func(err error) { answer <- err })
	select {
	case err := <-answer:
		if err != nil {
			t.Fatalf("a statement after the outage: %v, want durable", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a statement after the outage was not answered")
	}
	waitFor(t, "DAS-EVENT-0021", func() bool { _, ok := rec.has(EventLossEnd); return ok })
	if a, _ := rec.has(EventLossEnd); a["missed"] != fmt.Sprint(refused+late) {
		t.Errorf("DAS-EVENT-0021 says %s missed; %d events were refused and %d late", a["missed"], refused, late)
	}
	final := s.Describe().Counters
	if final["events_durable"] != uint64(late+1) || final["events_dropped"] != uint64(refused) {
		t.Fatalf("counters after the outage %v: want %d durable, %d dropped", final, late+1, refused)
	}

	// Every event taken is in the stream, in order; none refused is.
	var want []string
	for _, session := range outcomes {
		for _, o := range session {
			if !o.refused {
				want = append(want, o.text)
			}
		}
	}
	want = append(want, "SELECT 'after'")
	got := streamTexts(t, sink.L, s.o.Provider)
	perSession := func(texts []string) map[string][]string {
		m := map[string][]string{}
		for _, x := range texts {
			session, _, _ := strings.Cut(x, "-")
			m[session] = append(m[session], x)
		}
		return m
	}
	g, w := perSession(got), perSession(want)
	if len(got) != len(want) || len(g) != len(w) {
		t.Fatalf("the stream holds %d events of %d sessions, want %d of %d", len(got), len(g), len(want), len(w))
	}
	for session, texts := range w {
		if !slices.Equal(g[session], texts) {
			t.Fatalf("session %s: the stream holds %v, want %v", session, g[session], texts)
		}
	}
	t.Logf("%d statements: %d late (durable after the outage), %d refused; at most %d events waited (bound %d)",
		submitted.Load(), late, refused, most, bound)
}
