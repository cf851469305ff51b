//go:build !linux

package cpusched

import "errors"

var errUnsupported = errors.New("cpusched: batch scheduling is Linux only")

// Batch is Linux only.
func Batch() (int, error) { return 0, errUnsupported }

// Policies is Linux only.
func Policies(int) (map[int]uint32, error) { return nil, errUnsupported }

// BatchPolicy is SCHED_BATCH's value on Linux.
const BatchPolicy = 3
