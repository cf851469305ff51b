//go:build linux

package main

import (
	"fmt"
	"os"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

// checkBatchScheduled: every thread of process pid is SCHED_BATCH (das
// serve with only audit logs yields to the database's threads).
func checkBatchScheduled(t *testing.T, pid int) {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		attr, err := unix.SchedGetAttr(tid, 0)
		if err != nil {
			continue // exited meanwhile
		}
		if attr.Policy != unix.SCHED_BATCH {
			t.Errorf("das serve without a proxy: thread %d has scheduling policy %d, want SCHED_BATCH", tid, attr.Policy)
		}
	}
}
