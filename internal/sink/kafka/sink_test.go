package kafka

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/das-mysql/das/internal/pipeline"
)

var _ pipeline.Sink = (*Sink)(nil)

// Kafka's own test vectors (UtilsTest.testMurmur2), so that Java producers
// keyed by the same stream id agree on the partition.
func TestMurmur2MatchesKafka(t *testing.T) {
	for in, want := range map[string]int32{
		"21": -973932308, "foobar": -790332482, "a-little-bit-long-string": -985981536,
		"a-little-bit-longer-string": -1486304829, "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
		"abc": 479470107,
	} {
		if got := int32(murmur2([]byte(in))); got != want {
			t.Errorf("murmur2(%q) = %d, want %d", in, got, want)
		}
	}
	// And kgo's Kafka-compatible partitioner agrees.
	p := kgo.StickyKeyPartitioner(nil).ForTopic("t")
	for _, k := range []string{"cluster-A", "cluster-ABCDEFGHIJKLMNOPQRSTUVWXYZ", "db-1"} {
		for _, n := range []int{1, 3, 4, 16} {
			if got, want := partitionFor([]byte(k), n), p.Partition(&kgo.Record{Key: []byte(k)}, n); got != want {
				t.Errorf("partitionFor(%q, %d) = %d, kgo says %d", k, n, got, want)
			}
		}
	}
}

func TestProduceTwoStreamsReadBack(t *testing.T) {
	c := newCluster(t)
	const perStream = 5000
	streams := []string{"cluster-AAAA", "cluster-BBBB"}
	sinks := make([]*Sink, len(streams))
	for i, id := range streams {
		sinks[i] = openSink(t, sinkOptions(c, "das", id))
	}
	var wg sync.WaitGroup
	errs := make([]error, len(streams))
	for i, id := range streams {
		wg.Go(func() {
			w := startWriter(sinks[i])
			ch := newChain(id, 200)
			for range perStream {
				w.append(ch.next())
			}
			errs[i] = w.finish()
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("stream %s: %v", streams[i], err)
		}
	}
	for i, s := range sinks {
		if seq, _ := s.Last(); seq != perStream {
			t.Errorf("stream %s: Last() = %d after %d acknowledged records", streams[i], seq, perStream)
		}
	}
	lines, where, r := readAll(t, readerOptions(c, "das"))
	n := checkChains(t, lines)
	for _, id := range streams {
		if n[id] != perStream {
			t.Errorf("stream %s: read %d records, wrote %d", id, n[id], perStream)
		}
	}
	if r.Duplicates() != 0 {
		t.Errorf("%d duplicates with the idempotent producer", r.Duplicates())
	}
	// One partition per stream.
	for i, line := range lines {
		id, _, _ := dasFields(line)
		for j, sid := range streams {
			if id == sid && !strings.HasPrefix(where[i], fmt.Sprintf("das/%d/", sinks[j].Partition())) {
				t.Fatalf("record of %s at %s, want partition %d", id, where[i], sinks[j].Partition())
			}
		}
	}
}

func TestRestartContinuesChain(t *testing.T) {
	c := newCluster(t, kfake.DefaultNumPartitions(1))
	o := sinkOptions(c, "das", "cluster-MINE")

	s := openSink(t, o)
	if seq, line := s.Last(); seq != 0 || line != nil {
		t.Fatalf("empty topic: Last() = %d, %q", seq, line)
	}
	mine := newChain("cluster-MINE", 100)
	w := startWriter(s)
	for range 100 {
		w.append(mine.next())
	}
	if err := w.finish(); err != nil {
		t.Fatal(err)
	}
	s.Close()

	// Another stream shares the only partition and writes many records
	// after ours: the search must reach back past them.
	other := openSink(t, sinkOptions(c, "das", "cluster-OTHER"))
	och := newChain("cluster-OTHER", 50)
	w = startWriter(other)
	for range 3000 {
		w.append(och.next())
	}
	if err := w.finish(); err != nil {
		t.Fatal(err)
	}

	s = openSink(t, o)
	seq, line := s.Last()
	if seq != 100 || !bytes.Equal(line, mine.prev) {
		t.Fatalf("after restart Last() = %d (line equal: %v), want 100 and the last line written", seq, bytes.Equal(line, mine.prev))
	}
	// Continue the chain and read it back whole.
	w = startWriter(s)
	for range 10 {
		w.append(mine.next())
	}
	if err := w.finish(); err != nil {
		t.Fatal(err)
	}
	lines, _, _ := readAll(t, readerOptions(c, "das"))
	if n := checkChains(t, lines); n["cluster-MINE"] != 110 || n["cluster-OTHER"] != 3000 {
		t.Fatalf("read %v", n)
	}
}

func TestBrokerRestartWhileProducing(t *testing.T) {
	ports := freePorts(t, 3)
	dir := t.TempDir()
	opts := []kfake.Opt{kfake.NumBrokers(3), kfake.Ports(ports...), kfake.DataDir(dir), kfake.DefaultNumPartitions(2)}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatal(err)
	}
	o := sinkOptions(c, "das", "cluster-RESTART")
	s, err := Open(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	const total = 3000
	w := startWriter(s)
	ch := newChain("cluster-RESTART", 300)
	restarted := make(chan *kfake.Cluster, 1)
	for i := range total {
		w.append(ch.next())
		if i == total/3 {
			// The whole cluster goes down with records in flight and comes
			// back on the same addresses with its data.
			c.Close()
			go func() {
				time.Sleep(700 * time.Millisecond)
				c2, err := kfake.NewCluster(opts...)
				if err != nil {
					t.Error(err)
				}
				restarted <- c2
			}()
		}
		if i%100 == 0 {
			time.Sleep(time.Millisecond) // spread the writes over the outage
		}
	}
	if err := w.finish(); err != nil {
		t.Fatalf("a wait failed across a broker restart: %v", err)
	}
	c2 := <-restarted
	if c2 == nil {
		t.FailNow()
	}
	defer c2.Close()
	lines, _, r := readAll(t, readerOptions(c2, "das"))
	if n := checkChains(t, lines); n["cluster-RESTART"] != total {
		t.Fatalf("read %d records of %d", n["cluster-RESTART"], total)
	}
	t.Logf("duplicates dropped by the reader: %d", r.Duplicates())
}

func TestLeaderChangeWhileProducing(t *testing.T) {
	c := newCluster(t)
	s := openSink(t, sinkOptions(c, "das", "cluster-LEADER"))
	w := startWriter(s)
	ch := newChain("cluster-LEADER", 300)
	const total = 3000
	for i := range total {
		w.append(ch.next())
		if i%500 == 250 {
			leader := c.LeaderFor("das", s.Partition())
			if err := c.MoveTopicPartition("das", s.Partition(), (leader+1)%3); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := w.finish(); err != nil {
		t.Fatalf("a wait failed across leader changes: %v", err)
	}
	lines, _, r := readAll(t, readerOptions(c, "das"))
	if n := checkChains(t, lines); n["cluster-LEADER"] != total {
		t.Fatalf("read %d records of %d", n["cluster-LEADER"], total)
	}
	if r.Duplicates() != 0 {
		t.Errorf("%d duplicates with the idempotent producer", r.Duplicates())
	}
}

func TestTopicDeleted(t *testing.T) {
	c := newCluster(t)
	s := openSink(t, sinkOptions(c, "das", "cluster-DEL"))
	ch := newChain("cluster-DEL", 100)
	if err := s.AppendAsync(ch.next())(); err != nil {
		t.Fatal(err)
	}
	if _, err := admin(t, c).DeleteTopic(context.Background(), "das"); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.AppendAsync(ch.next())() }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), `topic "das" does not exist`) {
			t.Fatalf("after the topic was deleted: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no answer 30s after the topic was deleted")
	}
	// A reader says so too.
	_, err := OpenReader(context.Background(), readerOptions(c, "das"))
	if err == nil || !strings.Contains(err.Error(), `topic "das" does not exist`) {
		t.Fatalf("reader of a deleted topic: %v", err)
	}
}

func TestOpenErrors(t *testing.T) {
	down := freePorts(t, 1)[0]
	c := newCluster(t)
	for _, tc := range []struct {
		name string
		o    Options
		want string
	}{
		{"cluster down", Options{Brokers: []string{fmt.Sprintf("127.0.0.1:%d", down)}, Topic: "das", StreamID: "s", CreateTopic: true},
			fmt.Sprintf("no broker answered at 127.0.0.1:%d", down)},
		{"missing topic, no create", Options{Brokers: c.ListenAddrs(), Topic: "absent", StreamID: "s"},
			`topic "absent" does not exist and creating it is not allowed (create_topic=false)`},
		{"no stream id", Options{Brokers: c.ListenAddrs(), Topic: "das"}, "no stream id"},
		{"bad topic", Options{Brokers: c.ListenAddrs(), Topic: "a b", StreamID: "s"}, `character ' ' is not allowed`},
		{"sasl without password", Options{Brokers: c.ListenAddrs(), Topic: "das", StreamID: "s", SASL: SASL{Mechanism: "plain", User: "u"}}, "DAS_KAFKA_PASSWORD"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.o.Logger = quietLogger()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			start := time.Now()
			s, err := Open(ctx, tc.o)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not say %q", err, tc.want)
			}
			if d := time.Since(start); d > 16*time.Second {
				t.Errorf("took %s to fail", d)
			}
		})
	}
}

func TestOversizedRecord(t *testing.T) {
	c := newCluster(t)
	limit := "8192"
	if _, err := admin(t, c).CreateTopic(context.Background(), 1, -1, map[string]*string{"max.message.bytes": &limit}, "small"); err != nil {
		t.Fatal(err)
	}
	s := openSink(t, sinkOptions(c, "small", "cluster-BIG"))
	ch := newChain("cluster-BIG", 3000)
	if err := s.AppendAsync(ch.next())(); err != nil {
		t.Fatalf("a record under the limit: %v", err)
	}
	ch.size = 9000
	seq, line := ch.next()
	err := s.AppendAsync(seq, line)()
	for _, want := range []string{"record 2 is", "max.message.bytes (8192)", "--batch-max-events"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("oversized record: error %v does not say %q", err, want)
		}
	}
}

// The broker's limit is lower than the topic says (a broker-wide setting the
// sink could not see): the broker's refusal gets the same clear message.
func TestOversizedRecordRefusedByBroker(t *testing.T) {
	c := newCluster(t)
	s := openSink(t, sinkOptions(c, "das", "cluster-BIG"))
	s.maxBytes = 1 << 20 // as if the topic's setting were unreadable
	limit := "8192"
	if _, err := admin(t, c).AlterTopicConfigs(context.Background(),
		[]kadm.AlterConfig{{Name: "max.message.bytes", Value: &limit}}, "das"); err != nil {
		t.Fatal(err)
	}
	ch := newChain("cluster-BIG", 9000)
	err := s.AppendAsync(ch.next())()
	if err == nil || !strings.Contains(err.Error(), "max.message.bytes") || !strings.Contains(err.Error(), "--batch-max-events") {
		t.Fatalf("oversized record refused by the broker: %v", err)
	}
}

// With the cluster down, AppendAsync blocks once MaxBufferedBytes are
// waiting, and Close releases it with an error.
func TestBackpressureWhenDown(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	o := sinkOptions(c, "das", "cluster-BP")
	o.MaxBufferedBytes = 20000
	o.CloseTimeout = time.Second
	s, err := Open(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	ch := newChain("cluster-BP", 4000) // ~5.5 KB lines
	var waits []func() error
	for range 3 {
		waits = append(waits, s.AppendAsync(ch.next()))
	}
	blocked := make(chan func() error, 1)
	go func() { blocked <- s.AppendAsync(ch.next()) }()
	select {
	case <-blocked:
		t.Fatal("AppendAsync did not block with MaxBufferedBytes waiting")
	case <-time.After(500 * time.Millisecond):
	}
	go s.Close()
	select {
	case w := <-blocked:
		if err := w(); err == nil || !errors.Is(err, ErrClosed) {
			t.Fatalf("blocked record after Close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not release a blocked AppendAsync")
	}
	for _, w := range waits {
		if err := w(); err == nil || !strings.Contains(err.Error(), "not acknowledged before the sink closed") {
			t.Fatalf("buffered record after Close while down: %v", err)
		}
	}
}

// With a delivery timeout, a record the brokers never acknowledge fails with
// a clear error rather than waiting forever.
func TestDeliveryTimeoutWhenDown(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	o := sinkOptions(c, "das", "cluster-DT")
	o.DeliveryTimeout = time.Second
	o.CloseTimeout = time.Second
	s := openSink(t, o)
	c.Close()
	ch := newChain("cluster-DT", 100)
	start := time.Now()
	err = s.AppendAsync(ch.next())()
	if err == nil || !strings.Contains(err.Error(), "record 1 not acknowledged within the delivery timeout (1s)") {
		t.Fatalf("record to a down cluster: %v", err)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("failed after %s", d)
	}
}

// TestSyncStopsLinger: a sink opened for async mode lingers; once the stream
// turns sync (SetSync), a record is sent at once, not after the linger.
func TestSyncStopsLinger(t *testing.T) {
	c := newCluster(t)
	o := sinkOptions(c, "das", "cluster-LING")
	o.Linger = time.Minute
	s := openSink(t, o)
	ch := newChain("cluster-LING", 10)
	waitFor := func(wait func() error) error {
		done := make(chan error, 1)
		go func() { done <- wait() }()
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second): // far below the linger
			return errors.New("still lingering")
		}
	}
	seq, line := ch.next()
	first := s.AppendAsync(seq, line)
	s.SetSync(true)
	seq, line = ch.next()
	if err := waitFor(s.AppendAsync(seq, line)); err != nil {
		t.Fatalf("sync record: %v", err)
	}
	if err := waitFor(first); err != nil {
		t.Fatalf("the async record before it: %v", err)
	}
}

// TestNewest: the stream's newest records, oldest first, found behind
// another stream's records in the same partition.
func TestNewest(t *testing.T) {
	c := newCluster(t, kfake.DefaultNumPartitions(1))
	mine := openSink(t, sinkOptions(c, "das", "cluster-MINE"))
	other := openSink(t, sinkOptions(c, "das", "cluster-OTHER"))
	mch, och := newChain("cluster-MINE", 50), newChain("cluster-OTHER", 50)
	var lines [][]byte
	write := func(s *Sink, ch *chain, n int) {
		w := startWriter(s)
		for range n {
			seq, line := ch.next()
			if ch == mch {
				lines = append(lines, line)
			}
			w.append(seq, line)
		}
		if err := w.finish(); err != nil {
			t.Fatal(err)
		}
	}
	// 100 of mine, 1000 of the other's, 20 of mine: 120 in all, the older
	// 100 beyond the first windows read back.
	write(mine, mch, 100)
	write(other, och, 1000)
	write(mine, mch, 20)
	none := openSink(t, sinkOptions(c, "das", "cluster-NONE"))

	for _, tc := range []struct {
		name string
		s    *Sink
		n    int
		want [][]byte
	}{
		{"last one", mine, 1, lines[119:]},
		{"within the newest window", mine, 20, lines[100:]},
		{"past the other stream", mine, 50, lines[70:]},
		{"more than there are", mine, 500, lines},
		{"stream with no record", none, 10, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			got, err := tc.s.Newest(ctx, tc.n)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("Newest(%d) returned %d records, want %d", tc.n, len(got), len(tc.want))
			}
			for i := range got {
				if !bytes.Equal(got[i], tc.want[i]) {
					id, seq, _ := dasFields(got[i])
					t.Fatalf("Newest(%d)[%d] is %s seq %d, want seq %d of cluster-MINE", tc.n, i, id, seq, len(lines)-len(tc.want)+i+1)
				}
			}
		})
	}
}

// TestProducesIdempotentWithAcksAll: every produce request the sink sends
// asks for acks from all in-sync replicas and carries an idempotent
// producer id, which is what keeps a retried batch from being stored twice.
func TestProducesIdempotentWithAcksAll(t *testing.T) {
	c := newCluster(t)
	var mu sync.Mutex
	var reqs, bad int
	var why []string
	c.ControlKey(int16(kmsg.Produce), func(r kmsg.Request) (kmsg.Response, error, bool) {
		req := r.(*kmsg.ProduceRequest)
		mu.Lock()
		defer mu.Unlock()
		reqs++
		if req.Acks != -1 {
			bad++
			why = append(why, fmt.Sprintf("acks %d", req.Acks))
		}
		for _, tp := range req.Topics {
			for _, p := range tp.Partitions {
				var b kmsg.RecordBatch
				if err := b.ReadFrom(p.Records); err != nil {
					bad++
					why = append(why, "unreadable batch: "+err.Error())
					continue
				}
				if b.ProducerID < 0 {
					bad++
					why = append(why, fmt.Sprintf("producer id %d (not idempotent)", b.ProducerID))
				}
			}
		}
		return nil, nil, false // observe only: the cluster handles it
	})
	s := openSink(t, sinkOptions(c, "das", "cluster-IDEM"))
	w := startWriter(s)
	ch := newChain("cluster-IDEM", 100)
	for range 50 {
		w.append(ch.next())
	}
	if err := w.finish(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if reqs == 0 || bad > 0 {
		t.Fatalf("%d produce requests, %d not acks=all and idempotent: %v", reqs, bad, why)
	}
}
