package kafka

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/das-mysql/das/pkg/dasrecord"
)

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	return quietLogger()
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

// newCluster starts a kfake cluster on loopback.
func newCluster(t testing.TB, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(3), kfake.DefaultNumPartitions(4)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func sinkOptions(c *kfake.Cluster, topic, stream string) Options {
	return Options{Brokers: c.ListenAddrs(), Topic: topic, StreamID: stream, CreateTopic: true, Logger: quietLogger()}
}

func openSink(t testing.TB, o Options) *Sink {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := Open(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// chain builds record lines the way the pipeline does: seq after seq, each
// carrying its predecessor's digest. Payloads are random, not sealed: these
// tests are about transport.
type chain struct {
	stream string
	seq    uint64
	prev   []byte
	size   int
	rng    *rand.Rand
}

func newChain(stream string, size int) *chain {
	return &chain{stream: stream, size: size, rng: rand.New(rand.NewPCG(uint64(len(stream)), 7))}
}

func (c *chain) next() (uint64, []byte) {
	c.seq++
	payload := make([]byte, c.size)
	for i := range payload {
		payload[i] = byte(c.rng.Uint32())
	}
	r := dasrecord.Record{Type: dasrecord.RecordType, Version: "1.2",
		DatabaseActivityEvents: base64.StdEncoding.EncodeToString(payload), Key: "a2V5",
		StreamID: c.stream, Seq: c.seq}
	if c.prev != nil {
		r.Prev = dasrecord.DigestOf(c.prev).String()
	}
	line := r.AppendJSON(nil)
	c.prev = line
	return c.seq, line
}

// writer appends like the pipeline: one goroutine appends, another waits for
// acknowledgements in order.
type writer struct {
	s     *Sink
	waits chan ackWait
	done  chan error
}

type ackWait struct {
	seq  uint64
	wait func() error
}

func startWriter(s *Sink) *writer {
	w := &writer{s: s, waits: make(chan ackWait, 1024), done: make(chan error, 1)}
	go func() {
		var first error
		for a := range w.waits {
			if err := a.wait(); err != nil && first == nil {
				first = fmt.Errorf("record %d: %w", a.seq, err)
			}
		}
		w.done <- first
	}()
	return w
}

func (w *writer) append(seq uint64, line []byte) { w.waits <- ackWait{seq, w.s.AppendAsync(seq, line)} }

func (w *writer) finish() error { close(w.waits); return <-w.done }

// readAll reads the topic from the start to its end.
func readAll(t testing.TB, o ReaderOptions) (lines [][]byte, where []string, r *Reader) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := OpenReader(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for {
		line, w, err := r.Next(ctx)
		if errors.Is(err, io.EOF) {
			return lines, where, r
		}
		if err != nil {
			t.Fatalf("after %d records: %v", len(lines), err)
		}
		lines = append(lines, line)
		where = append(where, w)
	}
}

// checkChains checks that each stream's records come in seq order from 1
// (or from[stream]) with no gap, no duplicate and an intact digest chain,
// and returns the count per stream.
func checkChains(t testing.TB, lines [][]byte) map[string]int {
	t.Helper()
	type state struct {
		seq  uint64
		prev []byte
	}
	st := map[string]*state{}
	n := map[string]int{}
	for i, line := range lines {
		r, err := dasrecord.Parse(line)
		if err != nil {
			t.Fatalf("line %d: %v", i, err)
		}
		s := st[r.StreamID]
		if s == nil {
			s = &state{}
			st[r.StreamID] = s
		}
		if r.Seq != s.seq+1 {
			t.Fatalf("stream %s: seq %d after %d (line %d)", r.StreamID, r.Seq, s.seq, i)
		}
		if s.prev != nil && r.Prev != dasrecord.DigestOf(s.prev).String() {
			t.Fatalf("stream %s: seq %d does not chain to seq %d", r.StreamID, r.Seq, s.seq)
		}
		s.seq, s.prev = r.Seq, line
		n[r.StreamID]++
	}
	return n
}

func readerOptions(c *kfake.Cluster, topic string) ReaderOptions {
	return ReaderOptions{Brokers: c.ListenAddrs(), Topic: topic, Logger: quietLogger(), IdleTimeout: 5 * time.Second}
}

func admin(t testing.TB, c *kfake.Cluster) *kadm.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

// freePorts finds n free loopback ports, for a cluster that must come back
// on the same addresses.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ls []net.Listener
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}
