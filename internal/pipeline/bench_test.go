package pipeline_test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/das-mysql/das/internal/event"
	"github.com/das-mysql/das/internal/kms"
	"github.com/das-mysql/das/internal/pipeline"
	"github.com/das-mysql/das/internal/record"
	"github.com/das-mysql/das/internal/streamlog"
	"github.com/das-mysql/das/pkg/dasrecord"
)

// BenchmarkSealAndAppend measures the whole write path on the real parts:
// redaction, batching, sealing under a local-KMS data key (suite 0x0378) and
// the local log with fsync per commit group, for events with 1 KiB of SQL.
// It reports events/s, records/s and the heap in use after the run, which
// must not grow with b.N (memory flat under sustained load).
func BenchmarkSealAndAppend(b *testing.B) {
	for _, batch := range []int{16, 256} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			dir := b.TempDir()
			p, err := kms.OpenLocal(filepath.Join(dir, "kms", "master.key"))
			if err != nil {
				b.Fatal(err)
			}
			const id = "cluster-BENCHBENCHBENCHBENCHBENCHBE"
			keys := kms.NewKeyCache(p, dasrecord.ContextFor(id), 1000, time.Hour)
			defer keys.Close()
			sealer, _ := record.NewSealer(keys, record.Options{StreamID: id})
			l, err := streamlog.Open(filepath.Join(dir, "stream"), streamlog.Options{Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			w := pipeline.New(sealer, streamlog.Records{L: l}, pipeline.Options{MaxEvents: batch, Linger: time.Millisecond, QueueEvents: 4 * batch})
			e := event.New(time.Now())
			e.Command, e.DBUserName, e.SessionID = "QUERY", "app", "42"
			e.CommandText = "SELECT * FROM orders WHERE note = '" + strings.Repeat("x", 990) + "'"
			ctx := context.Background()
			b.ReportAllocs()
			b.SetBytes(int64(len(e.CommandText)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				e.StatementID = int64(i)
				if err := w.Enqueue(ctx, e); err != nil {
					b.Fatal(err)
				}
			}
			if err := w.Close(ctx); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			st := w.Stats()
			if st.EventsDurable != uint64(b.N) {
				b.Fatalf("%d of %d events durable", st.EventsDurable, b.N)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(float64(st.Records)/b.Elapsed().Seconds(), "records/s")
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap-MiB")
		})
	}
}
