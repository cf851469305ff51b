package streamlog

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// benchLines fills es with records first.. of about size bytes, reusing
// their buffers: Append copies Data.
func benchLines(es []Entry, first uint64, size int) {
	const head = `{"type":"DatabaseActivityMonitoringRecords","version":"1.2","databaseActivityEvents":"`
	pad := size - len(head) - 60
	for i := range es {
		s := first + uint64(i)
		d := es[i].Data[:0]
		if cap(d) == 0 {
			d = make([]byte, 0, size+64)
		}
		d = append(d, head...)
		for len(d) < len(head)+pad {
			d = append(d, "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo"...)
		}
		d = d[:len(head)+pad]
		d = append(d, `","key":"a2V5","dasStreamId":"db-X","dasSeq":`...)
		d = strconv.AppendUint(d, s, 10)
		d = append(d, `,"dasPrev":"00"}`...)
		es[i] = Entry{Seq: s, Data: d}
	}
}

func BenchmarkAppend(b *testing.B) {
	for _, size := range []int{1 << 10, 4 << 10} {
		for _, group := range []int{1, 64} {
			for _, noSync := range []bool{false, true} {
				mode := "fsync"
				if noSync {
					mode = "nosync"
				}
				b.Run(fmt.Sprintf("line=%dKiB/group=%d/%s", size>>10, group, mode), func(b *testing.B) {
					benchAppend(b, size, group, noSync, false)
				})
			}
		}
	}
	// One producer pipelining single records through AppendAsync, as the
	// pipeline's sealing goroutine does: group commit batches them.
	for _, size := range []int{1 << 10, 4 << 10} {
		b.Run(fmt.Sprintf("line=%dKiB/async=1/fsync", size>>10), func(b *testing.B) {
			benchAppend(b, size, 1, false, true)
		})
	}
}

func benchAppend(b *testing.B, size, group int, noSync, async bool) {
	l, err := Open(b.TempDir(), Options{NoSync: noSync, RetainBytes: 256 << 20, Logger: testLogger(nil)})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	es := make([]Entry, group)
	ctx := context.Background()
	b.ReportAllocs()
	b.SetBytes(int64(group * (size + 1)))
	var seq uint64 = 1
	var last *Commit
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		benchLines(es, seq, size)
		if async {
			last = l.AppendAsync(ctx, es...)
		} else if err := l.Append(ctx, es...); err != nil {
			b.Fatal(err)
		}
		seq += uint64(group)
	}
	if last != nil {
		if err := last.Wait(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	st := l.Stats()
	b.ReportMetric(float64(b.N*group)/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(float64(st.Records)/float64(max(st.Commits, 1)), "records/commit")
}

func TestBenchLinesAreValid(t *testing.T) {
	es := make([]Entry, 3)
	benchLines(es, 41, 1024)
	for _, e := range es {
		if msg := checkLine(e.Data, e.Seq); msg != "" || strings.Contains(string(e.Data), "\n") {
			t.Fatalf("bench line %d: %s", e.Seq, msg)
		}
		if len(e.Data) < 1000 || len(e.Data) > 1050 {
			t.Fatalf("bench line is %d bytes", len(e.Data))
		}
	}
}
