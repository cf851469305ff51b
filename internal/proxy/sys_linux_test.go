//go:build linux

package proxy

import "testing"

// TestRawSyscallsNeedSignalPreemption: a raw wait is interrupted only by the
// runtime's preemption signal; with it off, loops keep ordinary syscalls.
func TestRawSyscallsNeedSignalPreemption(t *testing.T) {
	for _, c := range []struct {
		godebug string
		raw     bool
	}{
		{"", true},
		{"http2client=0", true},
		{"asyncpreemptoff=0", true},
		{"asyncpreemptoff=1", false},
		{"http2client=0, asyncpreemptoff=1", false},
	} {
		t.Setenv("GODEBUG", c.godebug)
		if got := rawSyscalls(); got != c.raw {
			t.Errorf("GODEBUG=%q: raw syscalls %v, want %v", c.godebug, got, c.raw)
		}
	}
}
