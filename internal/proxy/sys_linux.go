//go:build linux

package proxy

import (
	"os"
	"runtime"
	"strings"
	"syscall"
	"unsafe"
)

// A loop whose thread has a P of its own (Options.EventLoopProcs) makes
// its syscalls raw: it does not tell the scheduler it is entering the
// kernel. Telling it buys nothing there, since no goroutine waits for that
// P, and costs the loop: the scheduler's monitor wakes every 20 µs while a
// P sits in a syscall, hands the P to another thread when one lasts, and
// the loop thread must then get a P back. On loopback a write that wakes
// the receiver often lasts that long. Measured in docs/PERFORMANCE.md.
//
// A raw epoll_wait can block for as long as no session has anything to
// say. The runtime still stops the loop when it must (a GC's stop of the
// world, a stack scan): it signals the thread, which interrupts the wait
// (EINTR), and it signals again every 100 µs until the thread answers.
// On EINTR the loop yields (runtime.Gosched), so that it answers there even
// if every call on the way back to the wait is inlined. As a last guard, a
// raw wait lasts at most rawWaitMillis, and with signal preemption turned
// off (GODEBUG=asyncpreemptoff=1) loops keep the ordinary syscalls.

// rawWaitMillis bounds one raw epoll_wait: what a stop of the world could
// wait for the loop, if no signal reached it.
const rawWaitMillis = 100

// rawSyscalls reports whether loops that own a P may make raw syscalls.
func rawSyscalls() bool {
	for _, kv := range strings.Split(os.Getenv("GODEBUG"), ",") {
		if strings.TrimSpace(kv) == "asyncpreemptoff=1" {
			return false
		}
	}
	return true
}

func (l *loop) sysRead(fd int, p []byte) (int, error) {
	if !l.raw {
		return syscall.Read(fd, p)
	}
	return rawIO(syscall.SYS_READ, fd, p)
}

func (l *loop) sysWrite(fd int, p []byte) (int, error) {
	if !l.raw {
		return syscall.Write(fd, p)
	}
	return rawIO(syscall.SYS_WRITE, fd, p)
}

// rawIO is read(2) or write(2) of p on fd, as a raw syscall.
func rawIO(trap uintptr, fd int, p []byte) (int, error) {
	var ptr unsafe.Pointer
	if len(p) > 0 {
		ptr = unsafe.Pointer(&p[0])
	}
	n, _, e := syscall.RawSyscall(trap, uintptr(fd), uintptr(ptr), uintptr(len(p)))
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// epollWait is epoll_wait. EINTR is returned after yielding.
func (l *loop) epollWait(ep int, evs []syscall.EpollEvent, msec int) (int, error) {
	if !l.raw {
		return syscall.EpollWait(ep, evs, msec)
	}
	if msec < 0 || msec > rawWaitMillis {
		msec = rawWaitMillis
	}
	// epoll_pwait with no signal mask is epoll_wait, and exists on every
	// architecture (arm64 has no epoll_wait).
	n, _, e := syscall.RawSyscall6(syscall.SYS_EPOLL_PWAIT, uintptr(ep), uintptr(unsafe.Pointer(&evs[0])), uintptr(len(evs)), uintptr(msec), 0, 0)
	if e != 0 {
		if e == syscall.EINTR {
			runtime.Gosched()
		}
		return 0, e
	}
	return int(n), nil
}
