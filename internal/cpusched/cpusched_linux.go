//go:build linux

package cpusched

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// Batch moves every thread of the process to SCHED_BATCH and returns how
// many it moved. Threads started later inherit the class from the thread
// that creates them, which is one of these.
func Batch() (int, error) {
	tids, err := threads(0)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, tid := range tids {
		attr := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_BATCH}
		if err := unix.SchedSetAttr(tid, &attr, 0); err != nil {
			if err == unix.ESRCH { // the thread exited meanwhile
				continue
			}
			return n, fmt.Errorf("cpusched: sched_setattr(%d, SCHED_BATCH): %w", tid, err)
		}
		n++
	}
	return n, nil
}

// Policies returns the scheduling class of each thread of process pid
// (0: this one), by thread id.
func Policies(pid int) (map[int]uint32, error) {
	tids, err := threads(pid)
	if err != nil {
		return nil, err
	}
	out := make(map[int]uint32, len(tids))
	for _, tid := range tids {
		attr, err := unix.SchedGetAttr(tid, 0)
		if err != nil {
			if err == unix.ESRCH {
				continue
			}
			return nil, fmt.Errorf("cpusched: sched_getattr(%d): %w", tid, err)
		}
		out[tid] = attr.Policy
	}
	return out, nil
}

func threads(pid int) ([]int, error) {
	dir := "/proc/self/task"
	if pid != 0 {
		dir = "/proc/" + strconv.Itoa(pid) + "/task"
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("cpusched: %w", err)
	}
	tids := make([]int, 0, len(ents))
	for _, e := range ents {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			tids = append(tids, tid)
		}
	}
	return tids, nil
}

// BatchPolicy is the value Policies reports for SCHED_BATCH.
const BatchPolicy = unix.SCHED_BATCH
