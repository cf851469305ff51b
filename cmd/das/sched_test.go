package main

import (
	"runtime"
	"testing"

	"github.com/das-mysql/das/internal/cpusched"
)

// checkBatchScheduled: every thread of process pid is SCHED_BATCH (das
// serve with only audit logs yields to the database's threads).
func checkBatchScheduled(t *testing.T, pid int) {
	t.Helper()
	if runtime.GOOS != "linux" {
		return
	}
	ps, err := cpusched.Policies(pid)
	if err != nil {
		t.Fatal(err)
	}
	for tid, p := range ps {
		if p != cpusched.BatchPolicy {
			t.Errorf("das serve without a proxy: thread %d has scheduling policy %d, want SCHED_BATCH", tid, p)
		}
	}
}
