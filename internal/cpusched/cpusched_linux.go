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
// that creates them. A thread started during a pass by one not yet moved
// would not, so passes repeat until one finds no thread it has not moved:
// from then on every thread that can create one is batch.
func Batch() (int, error) {
	moved := map[int]bool{}
	for pass := 0; pass < 100; pass++ {
		tids, err := threads(0)
		if err != nil {
			return len(moved), err
		}
		fresh := false
		for _, tid := range tids {
			if moved[tid] {
				continue
			}
			fresh = true
			attr := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_BATCH}
			if err := unix.SchedSetAttr(tid, &attr, 0); err != nil {
				if err == unix.ESRCH { // the thread exited meanwhile
					continue
				}
				return len(moved), fmt.Errorf("cpusched: sched_setattr(%d, SCHED_BATCH): %w", tid, err)
			}
			moved[tid] = true
		}
		if !fresh {
			return len(moved), nil
		}
	}
	return len(moved), fmt.Errorf("cpusched: threads kept appearing; %d moved to SCHED_BATCH", len(moved))
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
