//go:build linux

package main

import (
	"fmt"
	"os"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/das-mysql/das/internal/auditlog"
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

// fileIdentity is what a dasAuditPos names a file by: device, inode and
// birth time (0 where the file system keeps none), as the tailer reads them.
func fileIdentity(path string) (auditlog.Position, bool) {
	var st unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, path, unix.AT_STATX_SYNC_AS_STAT, unix.STATX_BASIC_STATS|unix.STATX_BTIME, &st); err != nil {
		return auditlog.Position{}, false
	}
	p := auditlog.Position{Dev: unix.Mkdev(st.Dev_major, st.Dev_minor), Inode: st.Ino}
	if st.Mask&unix.STATX_BTIME != 0 {
		p.Born = st.Btime.Sec*1e9 + int64(st.Btime.Nsec)
	}
	return p, true
}
