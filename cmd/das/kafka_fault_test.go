package main

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"net"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/das-mysql/das/internal/admin"
	"github.com/das-mysql/das/internal/embeddb"
	"github.com/das-mysql/das/internal/event"
	"github.com/das-mysql/das/internal/events"
	"github.com/das-mysql/das/internal/testenv"
)

// The tests of this file take a Kafka sink away from a running das serve
// (issue #5, "sink goes down while running"). The broker goes away as a
// crashed or restarted broker does: its port refuses connections and the
// connections das had are cut, then it comes back on the same address with
// its log, as kfake does with a data directory.

// kafkaOutage is how long the broker is away: longer than das's sink-stall
// bound (5s, DAS-EVENT-0030), so that the stall is reported.
const kafkaOutage = 7 * time.Second

// kafkaBroker is a one-broker kfake cluster whose log is on disk.
type kafkaBroker struct {
	t    *testing.T
	opts []kfake.Opt
	addr string
	c    *kfake.Cluster
}

func newKafkaBroker(t *testing.T) *kafkaBroker {
	t.Helper()
	port := testenv.FreePort(t)
	b := &kafkaBroker{
		t:    t,
		opts: []kfake.Opt{kfake.NumBrokers(1), kfake.Ports(port), kfake.DataDir(t.TempDir()), kfake.DefaultNumPartitions(2)},
		addr: fmt.Sprintf("127.0.0.1:%d", port),
	}
	b.up()
	t.Cleanup(func() {
		if b.c != nil {
			b.c.Close()
		}
	})
	return b
}

// down stops the broker; it returns once the port refuses connections.
func (b *kafkaBroker) down() time.Time {
	b.t.Helper()
	b.c.Close()
	b.c = nil
	if c, err := net.DialTimeout("tcp", b.addr, time.Second); err == nil {
		c.Close()
		b.t.Fatalf("the broker still accepts connections at %s after Close", b.addr)
	}
	return time.Now()
}

// up starts the broker on its address with the log it had.
func (b *kafkaBroker) up() time.Time {
	b.t.Helper()
	var err error
	for range 50 { // the port may linger a moment after Close
		at := time.Now() // das may reach it before NewCluster returns
		if b.c, err = kfake.NewCluster(b.opts...); err == nil {
			return at
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.t.Fatalf("kfake on %s: %v", b.addr, err)
	return time.Time{}
}

// stmt is one statement of the workload, as its client saw it.
type stmt struct {
	n          int
	start, end time.Time
	err        error
}

func (s stmt) latency() time.Duration { return s.end.Sub(s.start) }

// workload runs client sessions through das with go-sql-driver/mysql, one
// connection each, every statement a unique SELECT '<prefix>-<session>-<n>'
// run once its predecessor answered.
type workload struct {
	t      *testing.T
	addr   string
	prefix string
	pause  time.Duration
	stop   chan struct{}
	once   sync.Once
	wg     sync.WaitGroup

	mu       sync.Mutex
	sessions [][]stmt
	connErrs []error
}

func startWorkload(t *testing.T, addr, prefix string, sessions int, pause time.Duration) *workload {
	w := &workload{t: t, addr: addr, prefix: prefix, pause: pause, stop: make(chan struct{})}
	for range sessions {
		w.add()
	}
	t.Cleanup(w.halt) // a test that failed early leaves no session behind
	return w
}

func (w *workload) halt() {
	w.once.Do(func() { close(w.stop) })
	w.wg.Wait()
}

// add starts one more session and returns when it is connected (or failed to).
func (w *workload) add() error {
	w.mu.Lock()
	s := len(w.sessions)
	w.sessions = append(w.sessions, nil)
	w.mu.Unlock()
	dsn := fmt.Sprintf("%s:%s@tcp(%s)/%s?timeout=10s&readTimeout=60s&writeTimeout=10s",
		embeddb.DefaultUser, embeddb.DefaultPassword, w.addr, embeddb.DefaultDatabase)
	db, err := sql.Open("mysql", dsn)
	if err == nil {
		db.SetMaxOpenConns(1)
	}
	var conn *sql.Conn
	if err == nil {
		conn, err = db.Conn(context.Background())
	}
	if err != nil {
		w.mu.Lock()
		w.connErrs = append(w.connErrs, fmt.Errorf("session %d: connect: %w", s, err))
		w.mu.Unlock()
		if db != nil {
			db.Close()
		}
		return err
	}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		defer db.Close()
		defer conn.Close()
		for n := 0; ; n++ {
			select {
			case <-w.stop:
				return
			default:
			}
			want := fmt.Sprintf("%s-%d-%d", w.prefix, s, n)
			st := stmt{n: n, start: time.Now()}
			var got string
			st.err = conn.QueryRowContext(context.Background(), "SELECT '"+want+"'").Scan(&got)
			st.end = time.Now()
			if st.err == nil && got != want {
				st.err = fmt.Errorf("answer %q, want %q", got, want)
			}
			w.mu.Lock()
			w.sessions[s] = append(w.sessions[s], st)
			w.mu.Unlock()
			if st.err != nil {
				return
			}
			if w.pause > 0 {
				time.Sleep(w.pause)
			}
		}
	}()
	return nil
}

// finish stops the sessions after their current statement and returns what
// each ran; a client error fails the test.
func (w *workload) finish() [][]stmt {
	w.t.Helper()
	w.halt()
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, err := range w.connErrs {
		w.t.Errorf("workload: %v", err)
	}
	for s, stmts := range w.sessions {
		for _, st := range stmts {
			if st.err != nil {
				w.t.Errorf("workload session %d statement %d failed at the client: %v", s, st.n, st.err)
			}
		}
	}
	return w.sessions
}

// during returns the statements that started in [from, to).
func during(sessions [][]stmt, from, to time.Time) []stmt {
	var out []stmt
	for _, stmts := range sessions {
		for _, st := range stmts {
			if !st.start.Before(from) && st.start.Before(to) {
				out = append(out, st)
			}
		}
	}
	return out
}

func maxLatency(stmts []stmt) (d time.Duration) {
	for _, st := range stmts {
		d = max(d, st.latency())
	}
	return d
}

// checkSessions asserts that the stream holds every statement the workload
// ran exactly once, in each session's order, each session under one
// sessionId of its own.
func checkSessions(t *testing.T, evs []event.Event, prefix string, sessions [][]stmt) {
	t.Helper()
	checkSessionsLossy(t, evs, prefix, sessions, false)
}

// checkSessionsLossy is checkSessions for a stream that may have lost
// statements (lossy): those it holds appear once, in each session's order.
// It returns how many it does not hold.
func checkSessionsLossy(t *testing.T, evs []event.Event, prefix string, sessions [][]stmt, lossy bool) (missing int) {
	t.Helper()
	next := make([]int, len(sessions))
	held := make([]int, len(sessions))
	ids := make([]string, len(sessions))
	for _, e := range evs {
		rest, ok := strings.CutPrefix(e.CommandText, "SELECT '"+prefix+"-")
		if !ok {
			continue
		}
		var s, n int
		if _, err := fmt.Sscanf(rest, "%d-%d'", &s, &n); err != nil || s < 0 || s >= len(sessions) {
			t.Fatalf("an event the workload did not run: %q", e.CommandText)
		}
		switch {
		case n < next[s]:
			t.Fatalf("session %d: statement %d is in the stream again after statement %d (duplicate or reordered)", s, n, next[s]-1)
		case n > next[s] && !lossy:
			t.Fatalf("session %d: statement %d follows statement %d in the stream: %d statement(s) missing", s, n, next[s]-1, n-next[s])
		}
		next[s] = n + 1
		held[s]++
		if ids[s] == "" {
			ids[s] = e.SessionID
		} else if e.SessionID != ids[s] {
			t.Fatalf("session %d: statement %d under sessionId %s, earlier ones under %s", s, n, e.SessionID, ids[s])
		}
	}
	for s, stmts := range sessions {
		switch {
		case next[s] > len(stmts):
			t.Errorf("session %d ran %d statements; the stream holds statement %d", s, len(stmts), next[s]-1)
		case held[s] != len(stmts) && !lossy:
			t.Errorf("session %d ran %d statements; the stream holds %d", s, len(stmts), held[s])
		}
		missing += len(stmts) - held[s]
		if i := slices.Index(ids, ids[s]); ids[s] != "" && i != s {
			t.Errorf("sessions %d and %d share sessionId %s", i, s, ids[s])
		}
	}
	return missing
}

// adminOf is a client of das serve's admin API, once it answers: das serve
// accepts MySQL clients a moment before its admin API is up.
func adminOf(t *testing.T, addr, data string) *admin.Client {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		tok, err := admin.LoadToken(data, "")
		if err == nil {
			cl := admin.NewClient(addr, tok, nil)
			if _, err = cl.DescribeActivityStreams(context.Background()); err == nil {
				return cl
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the admin API at %s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// streamEvents returns das serve's events with one of ids, oldest first.
func streamEvents(t *testing.T, cl *admin.Client, ids ...string) []events.Event {
	t.Helper()
	resp, err := cl.Events(context.Background(), 0)
	if err != nil {
		t.Fatalf("GET /v1/events: %v", err)
	}
	if resp.Truncated {
		t.Fatal("the event history was truncated")
	}
	var out []events.Event
	for _, ev := range resp.Events {
		if slices.Contains(ids, ev.ID) {
			out = append(out, ev)
		}
	}
	return out
}

// waitEvent waits up to d for the event id and returns it.
func waitEvent(t *testing.T, cl *admin.Client, id string, d time.Duration) events.Event {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		if evs := streamEvents(t, cl, id); len(evs) > 0 {
			return evs[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %s", id, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// describe returns the stream's status from the admin API (what das
// describe-activity-streams prints).
func describe(t *testing.T, cl *admin.Client) admin.StreamStatus {
	t.Helper()
	sts, err := cl.DescribeActivityStreams(context.Background())
	if err != nil || len(sts) != 1 {
		t.Fatalf("GET /v1/activity-streams: %v %v", err, sts)
	}
	return sts[0]
}

// waitDelivered waits until every event the stream took is durable.
func waitDelivered(t *testing.T, cl *admin.Client, d time.Duration) admin.StreamStatus {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		st := describe(t, cl)
		c := st.Counters
		if c["events_durable"]+c["events_dropped"] == c["events_in"] {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("events still not durable %s after the broker returned: %v", d, c)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// consumeAndVerify reads the topic back with das consume and das verify
// (at once: each das process takes seconds to start under -race).
func consumeAndVerify(t *testing.T, from, data string) []event.Event {
	t.Helper()
	verified := make(chan result, 1)
	go func() {
		cmd := exec.Command(dasBin, "verify", "--from", from, "--data-dir", data)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		code := cmd.ProcessState.ExitCode()
		if err != nil && code <= 0 {
			errb.WriteString(err.Error())
			code = -1
		}
		verified <- result{out.String(), errb.String(), code}
	}()
	r := das(t, nil, "consume", "--from", from, "--data-dir", data)
	v := <-verified
	if r.code != 0 {
		t.Fatalf("das consume --from %s: %d %s", from, r.code, r.stderr)
	}
	if v.code != 0 || !strings.HasPrefix(v.stdout, "intact:") {
		t.Fatalf("das verify --from %s: %d %s %s", from, v.code, v.stdout, v.stderr)
	}
	t.Logf("das verify: %s", strings.TrimSpace(v.stdout))
	return consumed(t, r.stdout)
}

// TestServeKafkaBrokerOutageAsync: in async mode sessions never wait for the
// stream. The broker goes away for longer than the stall bound and comes
// back: statements keep their usual latency throughout, das raises
// DAS-EVENT-0030 during the outage and DAS-EVENT-0031 once records are
// acknowledged again, the bounded queue holds what was captured meanwhile
// (no loss window), and the topic ends up with every statement exactly once,
// in order, in a chain that verifies.
func TestServeKafkaBrokerOutageAsync(t *testing.T) {
	t.Parallel()
	b := newKafkaBroker(t)
	data := t.TempDir()
	adminAddr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	sink := "kafka://" + b.addr + "/das-activity"
	addr, stop := startServe(t, "--data-dir", data, "--admin-listen", adminAddr, "--sink", sink, "--mode", "async")
	cl := adminOf(t, adminAddr, data)

	const prefix = "ka"
	w := startWorkload(t, addr, prefix, 3, 10*time.Millisecond)
	time.Sleep(time.Second)
	down := b.down()
	stall := waitEvent(t, cl, events.SinkUnreachable, kafkaOutage)
	time.Sleep(time.Until(down.Add(kafkaOutage)))
	// Still started, nothing dropped, what was captured is waiting.
	mid := describe(t, cl)
	up := b.up()
	back := waitEvent(t, cl, "DAS-EVENT-0031", 30*time.Second)
	time.Sleep(500 * time.Millisecond)
	sessions := w.finish()
	final := waitDelivered(t, cl, 30*time.Second)
	evs := streamEvents(t, cl, "DAS-EVENT-0003", "DAS-EVENT-0004", "DAS-EVENT-0020", "DAS-EVENT-0021", "DAS-EVENT-0030", "DAS-EVENT-0031")
	code, stderr := stop()
	if t.Failed() {
		t.Fatalf("das serve: %s", stderr)
	}
	if code != 0 {
		t.Fatalf("das serve exited %d: %s", code, stderr)
	}

	// Sessions were never held: one that waited for the sink would take
	// until the broker's return, at least half the outage for those that
	// started in its first half.
	out := during(sessions, down, up)
	if len(out) < 3*10 {
		t.Fatalf("only %d statements ran while the broker was away", len(out))
	}
	if d := maxLatency(during(sessions, down, up.Add(-kafkaOutage/2))); d >= kafkaOutage/2 {
		t.Fatalf("a statement took %s while the broker was away: async sessions must not wait for the sink", d)
	}
	if mid.Status != "started" || mid.Counters["events_dropped"] != 0 || mid.Counters["events_durable"] >= mid.Counters["events_in"] {
		t.Fatalf("describe while the broker was away: %s %v, want started, nothing dropped, events waiting", mid.Status, mid.Counters)
	}
	if final.Counters["events_dropped"] != 0 || final.Counters["sink_errors"] != 0 {
		t.Fatalf("counters after the outage: %v", final.Counters)
	}

	// The events: one stall during the outage, one recovery after it, no
	// loss window, the stream never stopped.
	var ids []string
	for _, ev := range evs {
		ids = append(ids, ev.ID)
	}
	if !slices.Equal(ids, []string{"DAS-EVENT-0030", "DAS-EVENT-0031"}) {
		t.Fatalf("stream events %v, want DAS-EVENT-0030 then DAS-EVENT-0031", ids)
	}
	if !stall.Time.After(down) || !stall.Time.Before(up) || stall.Attrs["sink"] != "kafka:das-activity" {
		t.Fatalf("DAS-EVENT-0030 at %s (broker down %s, up %s), attrs %v", stall.Time, down, up, stall.Attrs)
	}
	if back.Time.Before(up) || back.Attrs["sink"] != "kafka:das-activity" {
		t.Fatalf("DAS-EVENT-0031 at %s, before the broker was up (%s), attrs %v", back.Time, up, back.Attrs)
	}

	got := consumeAndVerify(t, sink, data)
	checkSessions(t, got, prefix, sessions)
	total := 0
	for _, s := range sessions {
		total += len(s)
	}
	t.Logf("broker away %s; %d statements in all, %d during the outage, max latency then %s; DAS-EVENT-0030 %s after the broker went %v, DAS-EVENT-0031 %s after it returned %v; %d events waited (describe mid-outage: in %d, durable %d)",
		up.Sub(down).Round(time.Millisecond), total, len(out), maxLatency(out).Round(time.Millisecond),
		stall.Time.Sub(down).Round(time.Millisecond), stall.Attrs, back.Time.Sub(up).Round(time.Millisecond), back.Attrs,
		mid.Counters["events_in"]-mid.Counters["events_durable"], mid.Counters["events_in"], mid.Counters["events_durable"])
}

// TestServeKafkaBrokerOutageQueueFull (issue #5): an async stream whose
// bounded buffers fill during a broker outage sheds load instead of growing.
// Statements keep their latency; what waits for the broker stays within the
// configured bound, the events over it are dropped and counted, and a loss
// window says so (DAS-EVENT-0020: queue-full, or sink-unreachable once
// DAS-EVENT-0030 has declared the sink down). Once the broker is back,
// delivery resumes: the topic holds the statements that were not dropped,
// in each session's order, in a chain that verifies, and DAS-EVENT-0021
// closes the window counting what was missed.
func TestServeKafkaBrokerOutageQueueFull(t *testing.T) {
	t.Parallel()
	b := newKafkaBroker(t)
	data := t.TempDir()
	adminAddr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	topic := "kafka://" + b.addr + "/das-activity"
	const (
		queue    = 16
		sessions = 3
		// What may wait for the broker: the queue and the records handed
		// to the sink (the acker's 64 waiting and the one it waits on), one
		// event each. A drop counts events_in and events_dropped one after
		// the other: a reading in between sees each session's event as
		// waiting.
		bound = queue + 64 + 1 + sessions
	)
	addr, stop := startServe(t, "--data-dir", data, "--admin-listen", adminAddr,
		"--sink", topic+"?max_buffered_bytes=16384", "--mode", "async",
		"--queue-events", strconv.Itoa(queue), "--batch-max-events", "1")
	cl := adminOf(t, adminAddr, data)

	const prefix = "kq"
	w := startWorkload(t, addr, prefix, sessions, 10*time.Millisecond)
	time.Sleep(time.Second)
	down := b.down()
	opened := waitEvent(t, cl, "DAS-EVENT-0020", kafkaOutage)
	stall := waitEvent(t, cl, events.SinkUnreachable, kafkaOutage)
	time.Sleep(time.Until(down.Add(kafkaOutage)))
	mid := describe(t, cl)
	up := b.up()
	back := waitEvent(t, cl, "DAS-EVENT-0031", 30*time.Second)
	time.Sleep(500 * time.Millisecond)
	ran := w.finish()
	final := waitDelivered(t, cl, 30*time.Second)
	closed := waitEvent(t, cl, "DAS-EVENT-0021", 30*time.Second)
	evs := streamEvents(t, cl, "DAS-EVENT-0003", "DAS-EVENT-0004", "DAS-EVENT-0020", "DAS-EVENT-0021", "DAS-EVENT-0030", "DAS-EVENT-0031")
	code, stderr := stop()
	if t.Failed() {
		t.Fatalf("das serve: %s", stderr)
	}
	if code != 0 {
		t.Fatalf("das serve exited %d: %s", code, stderr)
	}

	// Sessions were never held, and the stream shed what did not fit.
	out := during(ran, down, up)
	if d := maxLatency(during(ran, down, up.Add(-kafkaOutage/2))); d >= kafkaOutage/2 {
		t.Fatalf("a statement took %s while the broker was away: async sessions must not wait for the sink", d)
	}
	c := mid.Counters
	if waiting := c["events_in"] - c["events_durable"] - c["events_dropped"]; mid.Status != "started" || c["events_dropped"] == 0 || waiting > bound {
		t.Fatalf("describe while the broker was away: %s %v: want started, events dropped, at most %d waiting", mid.Status, c, bound)
	}
	if final.Counters["sink_errors"] != 0 {
		t.Fatalf("counters after the outage: %v", final.Counters)
	}

	// The window opens while the broker is away, with why, and closes
	// after it is back; the sink's own events come between.
	var ids []string
	for _, ev := range evs {
		ids = append(ids, ev.ID)
	}
	want, reason := []string{"DAS-EVENT-0020", "DAS-EVENT-0030", "DAS-EVENT-0031", "DAS-EVENT-0021"}, "queue-full"
	if stall.Time.Before(opened.Time) { // the buffers outlasted the sink-stall bound
		want, reason = []string{"DAS-EVENT-0030", "DAS-EVENT-0020", "DAS-EVENT-0031", "DAS-EVENT-0021"}, "sink-unreachable"
	}
	if !slices.Equal(ids, want) {
		t.Fatalf("stream events %v, want %v", ids, want)
	}
	if a := opened.Attrs; a["mode"] != "async" || a["reason"] != reason {
		t.Errorf("DAS-EVENT-0020 attributes %v, want mode async, reason %s", a, reason)
	}
	if !opened.Time.After(down) || !opened.Time.Before(up) || closed.Time.Before(back.Time) {
		t.Errorf("DAS-EVENT-0020 at %s, DAS-EVENT-0021 at %s; broker down %s, up %s, DAS-EVENT-0031 at %s", opened.Time, closed.Time, down, up, back.Time)
	}
	dropped := final.Counters["events_dropped"]
	if closed.Attrs["missed"] != strconv.FormatUint(dropped, 10) {
		t.Errorf("DAS-EVENT-0021 says %s missed; %d events were dropped", closed.Attrs["missed"], dropped)
	}

	// The topic holds every statement not dropped, in order, in a chain
	// that verifies.
	got := consumeAndVerify(t, topic, data)
	missing := checkSessionsLossy(t, got, prefix, ran, true)
	if uint64(missing) != dropped {
		t.Errorf("the topic misses %d statements; %d events were dropped", missing, dropped)
	}
	total := 0
	for _, s := range ran {
		total += len(s)
	}
	t.Logf("broker away %s; %d statements in all, %d during the outage (max latency %s), %d dropped; DAS-EVENT-0020 (%s) %s after the broker went, DAS-EVENT-0031 %s after it returned; describe mid-outage: in %d, durable %d, dropped %d",
		up.Sub(down).Round(time.Millisecond), total, len(out), maxLatency(out).Round(time.Millisecond), dropped,
		opened.Attrs["reason"], opened.Time.Sub(down).Round(time.Millisecond), back.Time.Sub(up).Round(time.Millisecond),
		c["events_in"], c["events_durable"], c["events_dropped"])
}

// TestServeKafkaBrokerOutageSync: in sync mode a statement's answer waits
// for its event to be durable, at most sync_timeout; then the session goes
// on (config: "how long a statement's answer waits for durability before
// the session goes on"). The stream stays started through a sink outage, so
// fail_closed does not refuse new sessions. The events that waited are
// still delivered, in order, once the broker is back.
func TestServeKafkaBrokerOutageSync(t *testing.T) {
	t.Parallel()
	b := newKafkaBroker(t)
	data := t.TempDir()
	adminAddr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	sink := "kafka://" + b.addr + "/das-activity"
	const syncTimeout = time.Second
	addr, stop := startServe(t, "--data-dir", data, "--admin-listen", adminAddr, "--sink", sink,
		"--mode", "sync", "--sync-timeout", syncTimeout.String(), "--fail-closed")
	cl := adminOf(t, adminAddr, data)

	const prefix = "ks"
	w := startWorkload(t, addr, prefix, 2, 20*time.Millisecond)
	time.Sleep(time.Second)
	down := b.down()
	time.Sleep(2 * time.Second)
	// A new session while the broker is away: admitted, the stream is
	// still started.
	if err := w.add(); err != nil {
		t.Errorf("a new session while the broker was away: %v", err)
	}
	stall := waitEvent(t, cl, events.SinkUnreachable, kafkaOutage)
	time.Sleep(time.Until(down.Add(kafkaOutage)))
	mid := describe(t, cl)
	up := b.up()
	back := waitEvent(t, cl, "DAS-EVENT-0031", 30*time.Second)
	time.Sleep(time.Second)
	sessions := w.finish()
	final := waitDelivered(t, cl, 30*time.Second)
	closed := waitEvent(t, cl, "DAS-EVENT-0021", 30*time.Second)
	evs := streamEvents(t, cl, "DAS-EVENT-0003", "DAS-EVENT-0004", "DAS-EVENT-0020", "DAS-EVENT-0021", "DAS-EVENT-0030", "DAS-EVENT-0031", "DAS-EVENT-0040")
	code, stderr := stop()
	if t.Failed() {
		t.Fatalf("das serve: %s", stderr)
	}
	if code != 0 {
		t.Fatalf("das serve exited %d: %s", code, stderr)
	}

	// Before the outage statements answer once durable, well within the
	// bound. While the broker is away each waits the bound, then answers:
	// had it waited for the broker, one started 5s before its return would
	// take 5s. (A session's first statement may wait twice: das records
	// the session's CONNECT before it reads the first command.)
	if d := maxLatency(during(sessions, time.Time{}, down.Add(-200*time.Millisecond))); d >= syncTimeout {
		t.Fatalf("a statement took %s before the outage", d)
	}
	out := during(sessions, down.Add(200*time.Millisecond), up.Add(-syncTimeout))
	if len(out) < 2*4 {
		t.Fatalf("only %d statements ran while the broker was away", len(out))
	}
	for _, st := range out {
		if d := st.latency(); d < syncTimeout-50*time.Millisecond {
			t.Fatalf("statement %d answered after %s while the broker was away, before the sync timeout (%s): it was not durable", st.n, d, syncTimeout)
		}
	}
	if d := maxLatency(during(sessions, down, up.Add(-5*time.Second))); d > 2*syncTimeout+2*time.Second {
		t.Fatalf("a statement took %s while the broker was away: sync sessions wait the sync timeout (%s), not for the sink", d, syncTimeout)
	}
	if len(sessions) != 3 || len(sessions[2]) == 0 || !sessions[2][0].start.Before(up) {
		t.Fatalf("the session opened while the broker was away ran no statement then")
	}
	// Once the sink acknowledges again, answers come within the bound
	// again (most of them: the machine may be busy).
	after := during(sessions, back.Time, time.Now())
	fast := 0
	for _, st := range after {
		if st.latency() < syncTimeout-50*time.Millisecond {
			fast++
		}
	}
	if len(after) == 0 || fast*2 < len(after) {
		t.Fatalf("after DAS-EVENT-0031: %d of %d statements answered within the sync timeout", fast, len(after))
	}
	if mid.Status != "started" || mid.Counters["events_dropped"] != 0 {
		t.Fatalf("describe while the broker was away: %s %v", mid.Status, mid.Counters)
	}
	if final.Counters["events_dropped"] != 0 || final.Counters["sink_errors"] != 0 {
		t.Fatalf("counters after the outage: %v", final.Counters)
	}
	var ids []string
	for _, ev := range evs {
		ids = append(ids, ev.ID)
	}
	// Sessions that went on before their events were durable make a loss
	// window: it opens with the first timeout, before the sink is declared
	// unreachable, and closes once what was queued is durable.
	if !slices.Equal(ids, []string{"DAS-EVENT-0020", "DAS-EVENT-0030", "DAS-EVENT-0031", "DAS-EVENT-0021"}) {
		t.Fatalf("stream events %v, want DAS-EVENT-0020, 0030, 0031, 0021", ids)
	}
	if !stall.Time.After(down) || !stall.Time.Before(up) || back.Time.Before(up) || closed.Time.Before(back.Time) {
		t.Fatalf("DAS-EVENT-0030 at %s, DAS-EVENT-0031 at %s, DAS-EVENT-0021 at %s; broker down %s, up %s", stall.Time, back.Time, closed.Time, down, up)
	}
	if a := evs[0].Attrs; a["mode"] != "sync" || a["reason"] != "durability-timeout" {
		t.Errorf("DAS-EVENT-0020 attributes %v", a)
	}
	if a := stall.Attrs; a["error"] == "" || a["sink"] == "" {
		t.Errorf("DAS-EVENT-0030 attributes %v", a)
	}
	if a := back.Attrs; a["duration"] == "" {
		t.Errorf("DAS-EVENT-0031 attributes %v", a)
	}
	if n, _ := strconv.Atoi(closed.Attrs["missed"]); n < len(out) {
		t.Errorf("DAS-EVENT-0021 says %s events missed; %d statements went on before their events were durable", closed.Attrs["missed"], len(out))
	}

	// Every statement answered during the outage was recorded after all.
	got := consumeAndVerify(t, sink, data)
	checkSessions(t, got, prefix, sessions)
	total := 0
	for _, s := range sessions {
		total += len(s)
	}
	t.Logf("broker away %s; %d statements in all, %d answered after the sync timeout during the outage (max %s); DAS-EVENT-0030 %s after the broker went, DAS-EVENT-0031 %s after it returned; describe mid-outage: in %d, durable %d, dropped %d",
		up.Sub(down).Round(time.Millisecond), total, len(out), maxLatency(out).Round(time.Millisecond),
		stall.Time.Sub(down).Round(time.Millisecond), back.Time.Sub(up).Round(time.Millisecond),
		mid.Counters["events_in"], mid.Counters["events_durable"], mid.Counters["events_dropped"])
}

// TestServeKafkaDownAtStart: with no broker at the sink's address, das serve
// does not start: it exits non-zero naming the sink and saying why.
func TestServeKafkaDownAtStart(t *testing.T) {
	t.Parallel()
	port := testenv.FreePort(t)
	sink := fmt.Sprintf("kafka://127.0.0.1:%d/das-activity", port)
	start := time.Now()
	r := das(t, nil, "serve", "--data-dir", t.TempDir(), "--sink", sink,
		"--listen", fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)), "--admin-listen", fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)))
	took := time.Since(start)
	if r.code == 0 {
		t.Fatalf("das serve with the sink's broker down exited 0: %s", r.stderr)
	}
	for _, want := range []string{"sink " + sink, fmt.Sprintf("no broker answered at 127.0.0.1:%d", port), "connection refused"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("das serve's error does not say %q:\n%s", want, r.stderr)
		}
	}
	t.Logf("exit %d after %s", r.code, took.Round(time.Millisecond))
}
