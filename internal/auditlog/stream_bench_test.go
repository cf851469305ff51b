package auditlog_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/das-mysql/das/internal/auditlog"
	"github.com/das-mysql/das/internal/event"
	"github.com/das-mysql/das/internal/kms"
	"github.com/das-mysql/das/internal/pipeline"
	"github.com/das-mysql/das/internal/record"
	"github.com/das-mysql/das/internal/streamlog"
	"github.com/das-mysql/das/pkg/dasrecord"
)

type writerSink struct {
	w    *pipeline.Writer
	n    int
	acks int
	done func()
}

func (s *writerSink) Submit(ctx context.Context, evs []event.Event, ack func()) error {
	n := len(evs)
	return s.w.EnqueueBatch(ctx, evs, func() {
		ack()
		if s.acks += n; s.acks == s.n {
			s.done()
		}
	})
}

// BenchmarkFileToStream is the figure: lines of a large
// server_audit file read, parsed, mapped, redacted, batched, sealed (suite
// das, local KMS) and appended to the local stream log, per second. Run it
// with -cpu 1 for "one core": every goroutine then shares one P.
func BenchmarkFileToStream(b *testing.B) {
	dir := b.TempDir()
	path := filepath.Join(dir, "server_audit.log")
	// The shapes of a sysbench oltp_read_write run, CONNECT,QUERY logged.
	shapes := []string{
		"20261125 16:54:04,db-1,sbtest,localhost,%d,%d,QUERY,sbtest,'SELECT c FROM sbtest1 WHERE id=%d',0\n",
		"20261125 16:54:04,db-1,sbtest,localhost,%d,%d,QUERY,sbtest,'SELECT c FROM sbtest3 WHERE id BETWEEN %d AND 5099 ORDER BY c',0\n",
		"20261125 16:54:04,db-1,sbtest,localhost,%d,%d,QUERY,sbtest,'UPDATE sbtest2 SET c=\\'08566691963-88624912351-16662227201-46648573979\\' WHERE id=%d',0\n",
		"20261125 16:54:04,db-1,sbtest,localhost,%d,%d,QUERY,sbtest,'COMMIT',%d\n",
	}
	const n = 200000
	var buf []byte
	for i := range n {
		buf = fmt.Appendf(buf, shapes[i%len(shapes)], 10+i%8, i, i%10000)
	}
	if err := os.WriteFile(path, buf, 0o600); err != nil {
		b.Fatal(err)
	}
	p, err := kms.OpenLocal(filepath.Join(dir, "kms", "master.key"))
	if err != nil {
		b.Fatal(err)
	}
	const id = "cluster-BENCHBENCHBENCHBENCHBENCHBE"
	keys := kms.NewKeyCache(p, dasrecord.ContextFor(id), 1000, time.Hour)
	defer keys.Close()
	for _, batch := range []int{1024, 4096} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			fileToStream(b, path, keys, batch, n, int64(len(buf)))
		})
	}
}

func fileToStream(b *testing.B, path string, keys *kms.KeyCache, batch, n int, size int64) {
	const id = "cluster-BENCHBENCHBENCHBENCHBENCHBE"
	quiet := slog.New(slog.DiscardHandler)
	dir := b.TempDir() // per run: a reused state dir would resume at the end
	b.SetBytes(size)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	var records uint64
	for i := 0; i < b.N; i++ {
		sealer, err := record.NewSealer(keys, record.Options{StreamID: id})
		if err != nil {
			b.Fatal(err)
		}
		l, err := streamlog.Open(filepath.Join(dir, fmt.Sprint("stream", i)), streamlog.Options{Logger: quiet})
		if err != nil {
			b.Fatal(err)
		}
		w := pipeline.New(sealer, streamlog.Records{L: l}, pipeline.Options{MaxEvents: batch, Linger: 5 * time.Millisecond, QueueEvents: 65536, Logger: quiet})
		tl, err := auditlog.New(auditlog.Options{Path: path, StateDir: filepath.Join(dir, fmt.Sprint("state", i)), Location: time.UTC, Logger: quiet})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		if err := tl.Run(ctx, &writerSink{w: w, n: n, done: cancel}); err != nil {
			b.Fatal(err)
		}
		if err := w.Close(context.Background()); err != nil {
			b.Fatal(err)
		}
		st := w.Stats()
		if st.EventsDurable != uint64(n) {
			b.Fatalf("%d of %d events durable", st.EventsDurable, n)
		}
		records += st.Records
		l.Close()
		sealer.Close()
	}
	// Lines per CPU-second too: on a shared machine, time stolen by
	// neighbours stretches the wall clock but not the process's CPU time.
	cpu := cpuTime() - cpu0
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "lines/s")
	b.ReportMetric(float64(n*b.N)/cpu.Seconds(), "lines/cpu-s")
	b.ReportMetric(float64(records)/float64(b.N), "records/run")
}

// cpuTime is the process's user + system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
