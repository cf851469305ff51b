package main

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/das-mysql/das/internal/events"
	"github.com/das-mysql/das/internal/testenv"
)

// The tests of this file take the Kinesis API away from das serve (issue
// #5, "a sink that is down at start", "a sink that goes down while
// running"). kinesalite goes away as a crashed server or a cut network
// does: its port refuses connections. It comes back on the same address
// with the streams it had (on disk), as the Kinesis service keeps a stream
// through an outage.

// kinesisOutage is how long the Kinesis API is away: longer than das's
// sink-stall bound (5s, DAS-EVENT-0030), so that the stall is reported.
const kinesisOutage = 7 * time.Second

// TestServeKinesisDownAtStart: with nothing answering at the sink's
// endpoint, das serve does not start: it exits non-zero naming the sink,
// the endpoint and the cause.
func TestServeKinesisDownAtStart(t *testing.T) {
	testenv.AWSCredentials(t)
	for _, tc := range []struct{ name, stream string }{
		{name: "named stream", stream: "das-activity"},
		{name: "DAS's stream name", stream: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			port := testenv.FreePort(t)
			endpoint := fmt.Sprintf("http://127.0.0.1:%d", port)
			sink := "kinesis://" + tc.stream + "?region=" + testenv.Region + "&endpoint=" + endpoint
			start := time.Now()
			r := das(t, nil, "serve", "--data-dir", t.TempDir(), "--sink", sink,
				"--listen", fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)), "--admin-listen", fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)))
			took := time.Since(start)
			if r.code == 0 {
				t.Fatalf("das serve with nothing at the sink's endpoint exited 0: %s", r.stderr)
			}
			for _, want := range []string{"sink " + sink, "no Kinesis API answered at " + endpoint, "connection refused"} {
				if !strings.Contains(r.stderr, want) {
					t.Errorf("das serve's error does not say %q:\n%s", want, r.stderr)
				}
			}
			if took > 20*time.Second {
				t.Errorf("das serve took %s to give up", took)
			}
			t.Logf("exit %d after %s", r.code, took.Round(time.Millisecond))
		})
	}
}

// TestServeKinesisOutageAsync: in async mode sessions never wait for the
// stream. The Kinesis API goes away for longer than the stall bound and
// comes back: statements keep their usual latency throughout, das raises
// DAS-EVENT-0030 during the outage and DAS-EVENT-0031 once records are
// acknowledged again, the bounded queue holds what was captured meanwhile
// (no loss window), and the stream ends up with every statement exactly
// once, in order, in a chain that das verify finds intact.
func TestServeKinesisOutageAsync(t *testing.T) {
	k := testenv.StartKinesalite(t, testenv.KinesaliteOptions{Persist: true})
	data := t.TempDir()
	adminAddr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	sink := "kinesis://das-activity?region=" + testenv.Region + "&endpoint=" + k.Endpoint
	addr, stop := startServe(t, "--data-dir", data, "--admin-listen", adminAddr, "--sink", sink, "--mode", "async")
	cl := adminOf(t, adminAddr, data)

	const prefix = "kn"
	w := startWorkload(t, addr, prefix, 3, 10*time.Millisecond)
	time.Sleep(time.Second)
	k.Stop()
	down := time.Now()
	stall := waitEvent(t, cl, events.SinkUnreachable, kinesisOutage)
	time.Sleep(time.Until(down.Add(kinesisOutage)))
	// Still started, nothing dropped, what was captured is waiting.
	mid := describe(t, cl)
	k.Start()
	up := time.Now()
	back := waitEvent(t, cl, events.SinkRecovered, 30*time.Second)
	time.Sleep(500 * time.Millisecond)
	sessions := w.finish()
	final := waitDelivered(t, cl, 30*time.Second)
	evs := streamEvents(t, cl, "DAS-EVENT-0003", "DAS-EVENT-0004", "DAS-EVENT-0020", "DAS-EVENT-0021", events.SinkUnreachable, events.SinkRecovered)
	code, stderr := stop()
	if t.Failed() {
		t.Fatalf("das serve: %s", stderr)
	}
	if code != 0 {
		t.Fatalf("das serve exited %d: %s", code, stderr)
	}

	out := during(sessions, down, up)
	if len(out) < 3*10 {
		t.Fatalf("only %d statements ran while the Kinesis API was away", len(out))
	}
	if d := maxLatency(during(sessions, down, up.Add(-kinesisOutage/2))); d >= kinesisOutage/2 {
		t.Fatalf("a statement took %s while the Kinesis API was away: async sessions must not wait for the sink", d)
	}
	if mid.Status != "started" || mid.Counters["events_dropped"] != 0 || mid.Counters["events_durable"] >= mid.Counters["events_in"] {
		t.Fatalf("describe while the Kinesis API was away: %s %v, want started, nothing dropped, events waiting", mid.Status, mid.Counters)
	}
	if final.Counters["events_dropped"] != 0 || final.Counters["sink_errors"] != 0 {
		t.Fatalf("counters after the outage: %v", final.Counters)
	}
	var ids []string
	for _, ev := range evs {
		ids = append(ids, ev.ID)
	}
	if !slices.Equal(ids, []string{events.SinkUnreachable, events.SinkRecovered}) {
		t.Fatalf("stream events %v, want %s then %s", ids, events.SinkUnreachable, events.SinkRecovered)
	}
	if !stall.Time.After(down) || !stall.Time.Before(up) || stall.Attrs["sink"] != "kinesis:das-activity" {
		t.Fatalf("%s at %s (Kinesis down %s, up %s), attrs %v", events.SinkUnreachable, stall.Time, down, up, stall.Attrs)
	}
	if back.Time.Before(up) || back.Attrs["sink"] != "kinesis:das-activity" {
		t.Fatalf("%s at %s, before the Kinesis API was up (%s), attrs %v", events.SinkRecovered, back.Time, up, back.Attrs)
	}

	got := consumeAndVerify(t, sink, data)
	checkSessions(t, got, prefix, sessions)
	total := 0
	for _, s := range sessions {
		total += len(s)
	}
	t.Logf("Kinesis away %s; %d statements in all, %d during the outage, max latency then %s; %s %s after it went, %s %s after it returned; %d events waited",
		up.Sub(down).Round(time.Millisecond), total, len(out), maxLatency(out).Round(time.Millisecond),
		events.SinkUnreachable, stall.Time.Sub(down).Round(time.Millisecond), events.SinkRecovered, back.Time.Sub(up).Round(time.Millisecond),
		mid.Counters["events_in"]-mid.Counters["events_durable"])
}

// TestServeSinkSilentAtStart: a Kinesis endpoint or Kafka broker that takes
// the connection and never answers does not hold das serve forever: it
// gives up at sink_open_timeout with an error that names the setting.
func TestServeSinkSilentAtStart(t *testing.T) {
	testenv.AWSCredentials(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var mu sync.Mutex
	var held []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c) // read nothing, answer nothing
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			c.Close()
		}
	}()
	addr := ln.Addr().String()
	for _, sink := range []string{
		"kinesis://das-activity?region=" + testenv.Region + "&endpoint=http://" + addr,
		"kafka://" + addr + "/das-activity",
	} {
		t.Run(strings.SplitN(sink, ":", 2)[0], func(t *testing.T) {
			start := time.Now()
			r := das(t, nil, "serve", "--data-dir", t.TempDir(), "--sink", sink, "--sink-open-timeout", "2s",
				"--listen", fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)), "--admin-listen", fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)))
			took := time.Since(start)
			if r.code == 0 {
				t.Fatalf("das serve with a silent sink exited 0: %s", r.stderr)
			}
			if !strings.Contains(r.stderr, "sink "+sink) || !strings.Contains(r.stderr, "sink_open_timeout (2s)") {
				t.Errorf("das serve's error does not name the sink and the timeout:\n%s", r.stderr)
			}
			if took > 20*time.Second {
				t.Errorf("das serve took %s to give up (sink_open_timeout 2s)", took)
			}
		})
	}
}
