//go:build linux

package cpusched

import (
	"runtime"
	"sync"
	"testing"
)

// TestBatch: after Batch every thread is SCHED_BATCH, and so are threads
// the runtime starts afterwards.
func TestBatch(t *testing.T) {
	n, err := Batch()
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("no thread moved")
	}
	check := func(when string) int {
		t.Helper()
		ps, err := Policies(0)
		if err != nil {
			t.Fatal(err)
		}
		for tid, p := range ps {
			if p != BatchPolicy {
				t.Errorf("%s: thread %d has policy %d, want SCHED_BATCH (%d)", when, tid, p, BatchPolicy)
			}
		}
		return len(ps)
	}
	before := check("after Batch")
	// Force new OS threads: goroutines locked to their thread, all alive at
	// once.
	const extra = 8
	var ready, done sync.WaitGroup
	release := make(chan struct{})
	for range extra {
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			ready.Done()
			<-release
		}()
	}
	ready.Wait()
	if after := check("threads started later"); after < before+extra/2 {
		t.Errorf("%d threads before, %d after locking %d goroutines: no new threads to check", before, after, extra)
	}
	close(release)
	done.Wait()
}
