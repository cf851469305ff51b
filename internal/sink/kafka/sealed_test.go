package kafka

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/das-mysql/das/internal/event"
	"github.com/das-mysql/das/internal/kms"
	"github.com/das-mysql/das/internal/record"
	"github.com/das-mysql/das/pkg/dasrecord"
)

const sealedStream = "cluster-SEALEDKAFKATEST0123456789"

func sealer(t testing.TB) (*record.Sealer, *kms.Local) {
	t.Helper()
	p, err := kms.OpenLocal(filepath.Join(t.TempDir(), "kms", "master.key"))
	if err != nil {
		t.Fatal(err)
	}
	keys := kms.NewKeyCache(p, dasrecord.ContextFor(sealedStream), 100000, time.Hour)
	t.Cleanup(func() { keys.Close() })
	s, err := record.NewSealer(keys, record.Options{StreamID: sealedStream, InstanceID: "das-kafka-test"})
	if err != nil {
		t.Fatal(err)
	}
	return s, p
}

// sqlEvents makes n query events with textLen bytes of SQL each; the
// literals vary so that the text compresses like real statements, not like
// a run of one letter.
func sqlEvents(n, textLen int, rng *rand.Rand) []event.Event {
	evs := make([]event.Event, n)
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	const alnum = "abcdefghijklmnopqrstuvwxyz0123456789"
	for i := range evs {
		e := event.New(now)
		e.Command = event.CommandQuery
		e.DBUserName, e.DatabaseName = "app", "shop"
		e.RemoteHost, e.RemotePort = "10.1.2.3", "51000"
		e.SessionID, e.StatementID = "42", int64(i)
		var b strings.Builder
		fmt.Fprintf(&b, "INSERT INTO orders (id, customer, note) VALUES (%d, %d, '", rng.IntN(1e9), rng.IntN(1e6))
		for b.Len() < textLen-2 {
			b.WriteByte(alnum[rng.IntN(len(alnum))])
			if rng.IntN(6) == 0 {
				b.WriteByte(' ')
			}
		}
		b.WriteString("')")
		e.CommandText = b.String()[:textLen]
		evs[i] = e
	}
	return evs
}

// Real sealed records go through Kafka and decrypt on the way out.
func TestSealedRecordsRoundTrip(t *testing.T) {
	c := newCluster(t)
	sl, p := sealer(t)
	s := openSink(t, sinkOptions(c, "das", sealedStream))
	rng := rand.New(rand.NewPCG(1, 2))
	w := startWriter(s)
	var prev *dasrecord.Digest
	var sent [][]event.Event
	for seq := uint64(1); seq <= 20; seq++ {
		evs := sqlEvents(1+int(seq)%7, 300, rng)
		sealed, err := sl.Seal(context.Background(), evs, seq, prev)
		if err != nil {
			t.Fatal(err)
		}
		prev = &sealed.Digest
		sent = append(sent, evs)
		w.append(seq, sealed.Line)
	}
	if err := w.finish(); err != nil {
		t.Fatal(err)
	}
	lines, _, _ := readAll(t, readerOptions(c, "das"))
	if n := checkChains(t, lines); n[sealedStream] != 20 {
		t.Fatalf("read %v", n)
	}
	d := &dasrecord.Decrypter{KMS: p}
	for i, line := range lines {
		o, err := d.Decrypt(context.Background(), line)
		if err != nil {
			t.Fatalf("record %d: %v", i+1, err)
		}
		if len(o.Payload.Events) != len(sent[i]) {
			t.Fatalf("record %d: %d events, sealed %d", i+1, len(o.Payload.Events), len(sent[i]))
		}
		for j, e := range o.Payload.Events {
			if e.CommandText != sent[i][j].CommandText {
				t.Fatalf("record %d event %d: SQL differs", i+1, j)
			}
		}
	}
	// A restarted writer continues from the sealed chain's last record.
	s.Close()
	s = openSink(t, sinkOptions(c, "das", sealedStream))
	if seq, line := s.Last(); seq != 20 || dasrecord.DigestOf(line) != *prev {
		t.Fatalf("restart: Last() = %d", seq)
	}
}

// BenchmarkSealProduce: sealing (256 events of 1 KiB SQL per record) and
// producing to a 3-broker kfake cluster, pipelined as the stream writer does
// (one goroutine seals and appends, another waits for acks in order).
func BenchmarkSealProduce(b *testing.B) {
	for _, mode := range []struct {
		name string
		sync bool
	}{{"async-linger5ms", false}, {"sync-linger0", true}} {
		b.Run(mode.name, func(b *testing.B) {
			benchSealProduce(b, mode.sync, true)
		})
	}
	// Each record waited for before the next is sealed: the latency of one
	// record's round trip, with no overlap at all.
	b.Run("sync-serial", func(b *testing.B) { benchSealProduce(b, true, false) })
}

func benchSealProduce(b *testing.B, syncMode, pipelined bool) {
	c := newCluster(b, kfake.BlackholeProduce())
	sl, _ := sealer(b)
	o := sinkOptions(c, "das", sealedStream)
	o.Sync = syncMode
	s := openSink(b, o)
	const perRecord = 256
	batches := make([][]event.Event, 8)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range batches {
		batches[i] = sqlEvents(perRecord, 1024, rng)
	}
	first, err := sl.Seal(context.Background(), batches[0], 1, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(first.Line)))
	b.ReportAllocs()
	waits := make(chan func() error, 64)
	var wg sync.WaitGroup
	var ackErr error
	wg.Go(func() {
		for w := range waits {
			if err := w(); err != nil && ackErr == nil {
				ackErr = err
			}
		}
	})
	var prev *dasrecord.Digest
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		sealed, err := sl.Seal(context.Background(), batches[i%len(batches)], uint64(i+1), prev)
		if err != nil {
			b.Fatal(err)
		}
		prev = &sealed.Digest
		w := s.AppendAsync(uint64(i+1), sealed.Line)
		if pipelined {
			waits <- w
		} else if err := w(); err != nil {
			b.Fatal(err)
		}
	}
	close(waits)
	wg.Wait()
	el := time.Since(start)
	b.StopTimer()
	if ackErr != nil {
		b.Fatal(ackErr)
	}
	b.ReportMetric(float64(b.N)/el.Seconds(), "records/s")
	b.ReportMetric(float64(b.N*perRecord)/el.Seconds(), "events/s")
}

// BenchmarkProduce: the sink alone, with records sealed beforehand.
func BenchmarkProduce(b *testing.B) {
	for _, mode := range []struct {
		name string
		sync bool
	}{{"async-linger5ms", false}, {"sync-linger0", true}} {
		b.Run(mode.name, func(b *testing.B) {
			c := newCluster(b, kfake.BlackholeProduce())
			o := sinkOptions(c, "das", "cluster-BENCH")
			o.Sync = mode.sync
			s := openSink(b, o)
			ch := newChain("cluster-BENCH", 16<<10) // about a sealed 256-event record
			lines := make([][]byte, 64)
			for i := range lines {
				_, lines[i] = ch.next()
			}
			b.SetBytes(int64(len(lines[0])))
			b.ReportAllocs()
			w := startWriter(s)
			b.ResetTimer()
			start := time.Now()
			for i := range b.N {
				w.append(uint64(i+1), lines[i%len(lines)])
			}
			if err := w.finish(); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "records/s")
		})
	}
}

// BenchmarkProduceRoundTrip: one record at a time, each waited for: the
// sink's acknowledgement latency (sync mode, no group commit).
func BenchmarkProduceRoundTrip(b *testing.B) {
	c := newCluster(b, kfake.BlackholeProduce())
	o := sinkOptions(c, "das", "cluster-BENCH")
	o.Sync = true
	s := openSink(b, o)
	ch := newChain("cluster-BENCH", 16<<10)
	_, line := ch.next()
	b.SetBytes(int64(len(line)))
	b.ReportAllocs()
	for i := range b.N {
		if err := s.AppendAsync(uint64(i+1), line)(); err != nil {
			b.Fatal(err)
		}
	}
}
