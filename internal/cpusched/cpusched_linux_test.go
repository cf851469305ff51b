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

// TestBatchWhileThreadsStart: threads the runtime starts while Batch is
// at work (some cloned from threads not yet moved) are batch too once it
// returns.
func TestBatchWhileThreadsStart(t *testing.T) {
	release := make(chan struct{})
	stop := make(chan struct{})
	var locked sync.WaitGroup
	spawning := make(chan struct{})
	go func() {
		defer close(spawning)
		for range 200 {
			select {
			case <-stop:
				return
			default:
			}
			// A goroutine locked to its thread and blocked keeps that
			// thread: the runtime starts another for the rest.
			locked.Add(1)
			go func() {
				defer locked.Done()
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				<-release
			}()
			runtime.Gosched()
		}
	}()
	defer func() {
		close(release)
		locked.Wait()
	}()
	if _, err := Batch(); err != nil {
		t.Fatal(err)
	}
	close(stop)
	<-spawning
	ps, err := Policies(0)
	if err != nil {
		t.Fatal(err)
	}
	for tid, p := range ps {
		if p != BatchPolicy {
			t.Errorf("thread %d has policy %d, want SCHED_BATCH (%d)", tid, p, BatchPolicy)
		}
	}
}
