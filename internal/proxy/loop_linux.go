//go:build linux

package proxy

import (
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/das-mysql/das/internal/event"
	"github.com/das-mysql/das/internal/mysql"
	"github.com/das-mysql/das/internal/pipeline"
)

// Event loops relay plaintext sessions after login. One OS thread per loop
// waits in epoll for all the sessions it owns, reads what is ready and
// writes it on at once; nothing is parked or woken per packet.
//
// Why: through Go's netpoller, each packet costs its direction a goroutine
// wake-up and a read that finds nothing (EAGAIN) before parking. On a machine
// whose cores the database and its clients keep busy, that scheduling and
// the extra syscalls were most of what das cost beyond haproxy's own event
// loop (docs/PERFORMANCE.md). TLS sessions keep the goroutine relay.
//
// In sync mode a loop never waits for durability: the packet that completes
// an answer is held with the session, which the loop stops reading, and the
// stream's notice that the event is durable (or cannot be in time) wakes
// the loop through an eventfd to send it on.

// loopIdleMillis is how long a loop with no sessions keeps its thread.
const loopIdleMillis = 1000

type loops struct {
	ls []*loop
}

// procsMu serializes the loops' changes to GOMAXPROCS, which is the
// process's, whichever Proxy makes them.
var procsMu sync.Mutex

// addProcs moves GOMAXPROCS by d.
func addProcs(d int) {
	procsMu.Lock()
	runtime.GOMAXPROCS(runtime.GOMAXPROCS(0) + d)
	procsMu.Unlock()
}

func newLoops(p *Proxy, n int) *loops {
	if n <= 0 {
		return nil
	}
	ls := &loops{}
	for i := 0; i < n; i++ {
		ls.ls = append(ls.ls, &loop{p: p, ep: -1, conns: make(map[int32]*lconn), raw: p.o.EventLoopProcs && rawSyscalls()})
	}
	return ls
}

// loop is one epoll instance and the thread that waits on it.
type loop struct {
	p       *Proxy
	buf     []byte     // what the thread reads into
	mu      sync.Mutex // guards the fields below against adopt and wake
	ep      int
	efd     int // eventfd: sessions whose held answers may go on
	running bool
	conns   map[int32]*lconn // by fd
	n       int              // sessions
	ready   []*session       // woken by wake, not yet served
	raw     bool             // syscalls without the scheduler (sys_linux.go)
}

// loopSession is a session's state on a loop.
type loopSession struct {
	l *loop

	// Sync mode: waits counts the session's events not yet answered by the
	// stream; hold is set when the packet being shown submitted one; paused
	// is the side whose bytes wait in held until waits is zero. Only waits
	// is touched outside the loop's thread.
	waits  atomic.Int32
	hold   bool
	paused *lconn
	notify func(error) // s.durable, bound once
}

// lconn is one side of a session on a loop.
type lconn struct {
	s      *session
	fd     int
	client bool
	peer   *lconn
	in     []byte // read, not yet relayed: an incomplete packet, or what follows held
	held   []byte // shown to the state machine, waiting for durability (sync mode)
	out    []byte // relayed, not yet written: the socket was full
	mask   uint32 // epoll events asked for
	closed bool
}

// adopt moves a logged-in session onto the least busy loop. It returns false,
// with nothing changed, when the session must keep the goroutine relay.
func (ls *loops) adopt(s *session) bool {
	if ls == nil || s.client != s.rawClient || s.server != s.rawServer ||
		s.cr.Buffered() > 0 || s.sr.Buffered() > 0 {
		return false
	}
	cfd, err := dupConn(s.rawClient)
	if err != nil {
		return false
	}
	sfd, err := dupConn(s.rawServer)
	if err != nil {
		syscall.Close(cfd)
		return false
	}
	l := ls.least()
	c := &lconn{s: s, fd: cfd, client: true}
	v := &lconn{s: s, fd: sfd}
	c.peer, v.peer = v, c
	s.loopDone = make(chan struct{})
	s.lo = &loopSession{l: l}
	s.lo.notify = s.durable
	// The descriptors are the session's before the loop may see them, so
	// that Shutdown and the loop's own close agree on them.
	s.connMu.Lock()
	if s.closed {
		s.connMu.Unlock()
		syscall.Close(cfd)
		syscall.Close(sfd)
		return false
	}
	s.cfd, s.sfd = cfd, sfd
	s.connMu.Unlock()
	s.onLoop = true
	s.p.onLoops.Add(1) // before the loop may let it go again
	if err := l.add(c, v); err != nil {
		s.onLoop = false
		s.lo = nil
		s.p.onLoops.Add(-1)
		s.connMu.Lock()
		s.cfd, s.sfd = -1, -1
		s.connMu.Unlock()
		syscall.Close(cfd)
		syscall.Close(sfd)
		s.log.Debug("proxy: event loop refused the session", "err", err)
		return false
	}
	// From here the loop owns the session. The net.Conns hold descriptors
	// that are no longer used; closing them does not end the TCP
	// connections, which the duplicates keep open.
	s.rawClient.Close()
	s.rawServer.Close()
	// The loop reads into its own buffer: an idle session holds none.
	s.cr, s.sr, s.cw, s.sw = nil, nil, nil, nil
	return true
}

// least returns the loop with the fewest sessions.
func (ls *loops) least() *loop {
	var best *loop
	bn := 0
	for _, l := range ls.ls {
		l.mu.Lock()
		n := l.n
		l.mu.Unlock()
		if best == nil || n < bn {
			best, bn = l, n
		}
	}
	return best
}

// dupConn returns a non-blocking duplicate of c's descriptor.
func dupConn(c net.Conn) (int, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return -1, errors.New("not a socket")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	nfd := -1
	var derr error
	if err := rc.Control(func(fd uintptr) {
		nfd, derr = syscall.Dup(int(fd))
	}); err != nil {
		return -1, err
	}
	if derr != nil {
		return -1, derr
	}
	syscall.CloseOnExec(nfd)
	if err := syscall.SetNonblock(nfd, true); err != nil {
		syscall.Close(nfd)
		return -1, err
	}
	return nfd, nil
}

// add registers both sides of a session and starts the loop's thread if it
// is not running.
func (l *loop) add(c, v *lconn) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.running {
		ep, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
		if err != nil {
			return fmt.Errorf("epoll_create: %w", err)
		}
		efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
		if err != nil {
			syscall.Close(ep)
			return fmt.Errorf("eventfd: %w", err)
		}
		if err := syscall.EpollCtl(ep, syscall.EPOLL_CTL_ADD, efd, &syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(efd)}); err != nil {
			syscall.Close(ep)
			syscall.Close(efd)
			return fmt.Errorf("epoll_ctl: %w", err)
		}
		l.ep, l.efd, l.running = ep, efd, true
		if l.p.o.EventLoopProcs {
			addProcs(1)
		}
		go l.run(ep, efd)
	}
	for _, x := range []*lconn{c, v} {
		x.mask = syscall.EPOLLIN
		if err := syscall.EpollCtl(l.ep, syscall.EPOLL_CTL_ADD, x.fd, &syscall.EpollEvent{Events: x.mask, Fd: int32(x.fd)}); err != nil {
			if x == v {
				_ = syscall.EpollCtl(l.ep, syscall.EPOLL_CTL_DEL, c.fd, nil)
				delete(l.conns, int32(c.fd))
			}
			return fmt.Errorf("epoll_ctl: %w", err)
		}
		l.conns[int32(x.fd)] = x
	}
	l.n++
	return nil
}

// run is the loop's thread. It returns after a second without sessions.
func (l *loop) run(ep, efd int) {
	runtime.LockOSThread()
	l.buf = make([]byte, 0, 2*bufSize)
	defer runtime.UnlockOSThread()
	evs := make([]syscall.EpollEvent, 128)
	batch := make([]*lconn, 0, 128)
	var ready []*session
	var tick [8]byte
	var idleSince time.Time
	for {
		// Without sessions the loop stops loopIdleMillis after the last
		// one left, counted across waits: a raw wait is interrupted every
		// 10 ms by the scheduler's preemption signal and lasts at most
		// rawWaitMillis, and must not start the count over.
		timeout := -1
		l.mu.Lock()
		if l.n == 0 {
			if idleSince.IsZero() {
				idleSince = time.Now()
			}
			timeout = max(0, loopIdleMillis-int(time.Since(idleSince).Milliseconds()))
		} else {
			idleSince = time.Time{}
		}
		l.mu.Unlock()
		n, err := l.epollWait(ep, evs, timeout)
		if err != nil {
			if err == syscall.EINTR {
				continue
			}
			l.p.log.Error("proxy: event loop: epoll_wait", "err", err)
			time.Sleep(10 * time.Millisecond) // no spin on a persistent error
			continue
		}
		batch = batch[:0]
		l.mu.Lock()
		if n == 0 && l.n == 0 && timeout >= 0 && time.Since(idleSince) >= loopIdleMillis*time.Millisecond {
			l.running = false
			l.ep, l.efd, l.ready = -1, -1, nil
			if l.p.o.EventLoopProcs {
				addProcs(-1)
			}
			l.mu.Unlock()
			syscall.Close(ep)
			syscall.Close(efd) // under no lock: wake checks running first
			return
		}
		for i := 0; i < n; i++ {
			if evs[i].Fd == int32(efd) {
				_, _ = l.sysRead(efd, tick[:])
				batch = append(batch, nil)
				continue
			}
			batch = append(batch, l.conns[evs[i].Fd])
		}
		ready, l.ready = l.ready, ready[:0]
		l.mu.Unlock()
		for i, c := range batch {
			if c == nil || c.closed {
				continue
			}
			l.serve(c, evs[i].Events)
		}
		for i, s := range ready {
			l.release(s)
			ready[i] = nil
		}
	}
}

// wake tells the loop that s's events have been answered: called from the
// stream's goroutines when the last one is durable or cannot be.
func (l *loop) wake(s *session) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.running { // the session is gone with the loop
		return
	}
	l.ready = append(l.ready, s)
	if len(l.ready) == 1 {
		one := [8]byte{1}
		_, _ = syscall.Write(l.efd, one[:])
	}
}

// serve handles what epoll reported for one side of a session.
func (l *loop) serve(c *lconn, events uint32) {
	s := c.s
	defer func() {
		if r := recover(); r != nil {
			s.p.panics.Add(1)
			s.log.Error("proxy: panic in session", "session", s.sessionID, "panic", r, "stack", string(debug.Stack()))
			l.close(c, &panicError{r})
		}
	}()
	if events&syscall.EPOLLOUT != 0 && len(c.out) > 0 {
		if err := l.flush(c); err != nil {
			l.close(c, err)
			return
		}
	}
	// A side held back (its peer's socket is full) is read only when the
	// connection failed: level-triggered HUP and ERR would repeat forever.
	failed := events&(syscall.EPOLLHUP|syscall.EPOLLERR) != 0
	if !failed && (events&syscall.EPOLLIN == 0 || c.mask&syscall.EPOLLIN == 0) {
		return
	}
	if s.lo.paused != nil {
		if failed {
			// What it would read now must not pass the held answer.
			l.close(c, c.failedErr(events))
			return
		}
		// Bytes came while the session waits (a pipelined command): they
		// wait too. Masks change only now, not at every pause: a client
		// waiting for its answer sends nothing, so most pauses need no
		// epoll_ctl at all.
		if err := l.watch(c); err != nil {
			l.close(c, err)
		}
		return
	}
	if err := l.read(c); err != nil {
		l.close(c, err)
	}
}

// read reads once from c, shows the complete packets to the state machine
// and relays them to the peer. Reads go to the loop's buffer; only an
// incomplete packet's bytes are kept with the session until the rest comes.
func (l *loop) read(c *lconn) error {
	b := l.buf[:0]
	if len(c.in) > 0 {
		if len(c.in) == cap(c.in) {
			c.in = grow(c.in, len(c.in)+bufSize)
		}
		b = c.in
	}
	n, err := l.sysRead(c.fd, b[len(b):cap(b)])
	switch {
	case err == syscall.EAGAIN || err == syscall.EINTR:
		return nil
	case err != nil:
		return c.connErr(err)
	case n == 0:
		if len(c.in) > 0 { // inside a packet
			side := "server"
			if c.client {
				side = "client"
			}
			return readErr(side, io.ErrUnexpectedEOF)
		}
		return c.closedErr()
	}
	return l.consume(c, b[:len(b)+n])
}

// consume shows the complete packets at the start of b, read from c, to
// the state machine and relays them; b is the loop's buffer or c.in. When a
// packet submitted a sync-mode event, the packets up to it are held, not
// relayed, and the session paused; what follows waits in c.in. Holding the
// ones before it too (rows, column definitions) costs the client nothing,
// since its answer is not complete without the last, and saves a write and
// a wake-up of the client per statement.
func (l *loop) consume(c *lconn, b []byte) error {
	s := c.s
	var used, need int
	var hold bool
	var err error
	if c.client {
		used, hold, need, err = s.clientInput(b)
	} else {
		used, hold, need, err = s.serverInput(b)
	}
	switch {
	case hold:
		c.held = append(c.held[:0], b[:used]...)
	case used > 0:
		if werr := l.send(c, b[:used]); werr != nil {
			return werr
		}
		c.relayed(used)
	}
	if err != nil {
		return err
	}
	rest := b[used:]
	switch {
	case len(rest) == 0:
		c.in = nil
	case len(c.in) == 0: // still in the loop's buffer
		c.in = append(make([]byte, 0, max(need-used, 2*len(rest), 4096)), rest...)
	default:
		c.in = c.in[:copy(c.in[:cap(c.in)], rest)]
		if need-used > cap(c.in) {
			c.in = grow(c.in, need-used)
		}
	}
	if hold {
		return l.pause(c)
	}
	return nil
}

func (c *lconn) relayed(n int) {
	if c.client {
		c.s.p.bytesClient.Add(uint64(n))
	} else {
		c.s.p.bytesServer.Add(uint64(n))
	}
}

func (c *lconn) closedErr() error {
	if c.client {
		return errClientClosed
	}
	return errServerClosed
}

// failedErr is why c's connection failed (epoll reported HUP or ERR) when
// it is not read: the socket's pending error (a reset), else its close.
func (c *lconn) failedErr(events uint32) error {
	if events&syscall.EPOLLERR != 0 {
		if e, err := unix.GetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_ERROR); err == nil && e != 0 {
			return c.connErr(syscall.Errno(e))
		}
	}
	return c.closedErr()
}

// pause stops relaying c's session until its sync events are answered;
// c.held goes on then (release). Its sides stay watched: serve stops
// reading one only if bytes come meanwhile.
func (l *loop) pause(c *lconn) error {
	lo := c.s.lo
	lo.paused = c
	if lo.waits.Load() == 0 { // answered already
		return l.release(c.s)
	}
	return nil
}

// release sends a paused session's held bytes on once its events are
// answered, and goes on with what it had read after them.
func (l *loop) release(s *session) error {
	lo := s.lo
	c := lo.paused
	if c == nil || c.closed || lo.waits.Load() > 0 {
		return nil
	}
	err := func() error {
		lo.paused = nil
		if err := l.send(c, c.held); err != nil {
			return err
		}
		c.relayed(len(c.held))
		if cap(c.held) > keepBuf {
			c.held = nil
		} else {
			c.held = c.held[:0]
		}
		if len(c.in) > 0 {
			if err := l.consume(c, c.in); err != nil {
				return err
			}
		}
		if lo.paused != nil {
			return nil
		}
		if err := l.watch(c); err != nil {
			return err
		}
		return l.watch(c.peer)
	}()
	if err != nil {
		l.close(c, err)
	}
	return nil
}

func grow(b []byte, need int) []byte {
	nb := make([]byte, len(b), max(need, 2*cap(b)))
	copy(nb, b)
	return nb
}

// send writes p to c's peer, keeping what the socket does not take. While
// the peer has bytes waiting, c is not read: the slow side holds back the
// fast one, as with the goroutine relay.
func (l *loop) send(c *lconn, p []byte) error {
	d := c.peer
	if len(d.out) == 0 {
		for len(p) > 0 {
			n, err := l.sysWrite(d.fd, p)
			if err == syscall.EINTR {
				continue
			}
			if err == syscall.EAGAIN {
				break
			}
			if err != nil {
				return d.connErr(err)
			}
			p = p[n:]
		}
		if len(p) == 0 {
			return nil
		}
	}
	d.out = append(d.out, p...)
	if err := l.watch(d); err != nil {
		return err
	}
	return l.watch(c)
}

// flush writes what c's socket refused before; once all is out, the peer is
// read again.
func (l *loop) flush(c *lconn) error {
	for len(c.out) > 0 {
		n, err := l.sysWrite(c.fd, c.out)
		if err == syscall.EINTR {
			continue
		}
		if err == syscall.EAGAIN {
			return nil
		}
		if err != nil {
			return c.connErr(err)
		}
		c.out = c.out[n:]
	}
	if cap(c.out) > keepBuf {
		c.out = nil
	} else {
		c.out = c.out[:0]
	}
	if err := l.watch(c); err != nil {
		return err
	}
	return l.watch(c.peer)
}

// watch sets the epoll events c waits for: readable unless its peer's
// socket is full or the session is paused, writable while bytes wait.
func (l *loop) watch(c *lconn) error {
	var m uint32
	if len(c.peer.out) == 0 && c.s.lo.paused == nil {
		m |= syscall.EPOLLIN
	}
	if len(c.out) > 0 {
		m |= syscall.EPOLLOUT
	}
	return l.setMask(c, m)
}

func (l *loop) setMask(c *lconn, mask uint32) error {
	if mask == c.mask {
		return nil
	}
	if err := syscall.EpollCtl(l.ep, syscall.EPOLL_CTL_MOD, c.fd, &syscall.EpollEvent{Events: mask, Fd: int32(c.fd)}); err != nil {
		return fmt.Errorf("das: event loop: epoll_ctl: %w", err)
	}
	c.mask = mask
	return nil
}

func (c *lconn) connErr(err error) error {
	if c.client {
		return &connError{"client", err}
	}
	return &connError{"server", err}
}

// detach takes both sides of c's session off the loop.
func (l *loop) detach(c *lconn) {
	l.mu.Lock()
	for _, x := range []*lconn{c, c.peer} {
		_ = syscall.EpollCtl(l.ep, syscall.EPOLL_CTL_DEL, x.fd, nil)
		delete(l.conns, int32(x.fd))
		x.closed = true
	}
	l.n--
	l.mu.Unlock()
	c.s.p.onLoops.Add(-1)
}

// close ends c's session: the reason is recorded, both connections are
// closed, and the session's goroutine records the DISCONNECT.
func (l *loop) close(c *lconn, err error) {
	if c.closed {
		return
	}
	s := c.s
	// What the server said last (an ERR before it closes) still goes to
	// the client, if its socket takes it now.
	if cl := c.peer; !c.client && len(cl.out) > 0 {
		_, _ = l.sysWrite(cl.fd, cl.out)
	}
	l.detach(c)
	s.end(err)
	s.connMu.Lock()
	syscall.Close(s.cfd)
	syscall.Close(s.sfd)
	s.cfd, s.sfd = -1, -1
	s.connMu.Unlock()
	s.onLoop = false // the DISCONNECT is the goroutine's, which may wait
	close(s.loopDone)
}

// loopSubmit hands an event of a session on a loop to the sink. In sync
// mode the packet being shown is then held until the stream answers.
func (s *session) loopSubmit(ev event.Event) {
	if !s.p.syncMode() {
		s.p.submit(ev, false)
		return
	}
	s.lo.waits.Add(1)
	s.lo.hold = true
	s.p.syncSink.SubmitNotify(ev, s.lo.notify)
}

// durable is the stream's answer to loopSubmit, from another goroutine.
func (s *session) durable(err error) {
	if err != nil && !errors.Is(err, pipeline.ErrNotDurable) {
		s.p.dropped.Add(1) // not queued (the stream's loss window counts the late ones)
	} else {
		s.p.events.Add(1)
	}
	if s.lo.waits.Add(-1) == 0 {
		s.lo.l.wake(s)
	}
}

// shutdownFDs wakes the loop of an adopted session so that it ends it.
// Callers hold connMu.
func (s *session) shutdownFDs() {
	if s.cfd >= 0 {
		_ = syscall.Shutdown(s.cfd, syscall.SHUT_RDWR)
	}
	if s.sfd >= 0 {
		_ = syscall.Shutdown(s.sfd, syscall.SHUT_RDWR)
	}
}

// clientInput shows the complete client packets at the start of b to the
// state machine. It returns how many bytes they take and, when a packet is
// incomplete, how large the buffer must be to hold it. It stops after a
// packet that submitted a sync-mode event, and says to hold what it used.
func (s *session) clientInput(b []byte) (used int, hold bool, need int, err error) {
	for {
		end, seq, need, err := mysql.ScanPacket(b[used:], s.p.o.MaxPacket)
		if err != nil {
			return used, false, 0, &protoError{"client", err}
		}
		if end == 0 {
			return used, false, used + need, nil
		}
		if err := s.clientPacket(mysql.PacketPayload(b[used:used+end]), seq); err != nil {
			return used, false, 0, &protoError{"client", err}
		}
		used += end
		if s.lo != nil && s.lo.hold {
			s.lo.hold = false
			return used, true, 0, nil
		}
	}
}

// serverInput shows the complete server frames at the start of b to the
// state machine, frame by frame as serverLoop does.
func (s *session) serverInput(b []byte) (used int, hold bool, need int, err error) {
	for {
		if len(b)-used < mysql.HeaderLen {
			return used, false, used + mysql.HeaderLen, nil
		}
		n := int(b[used]) | int(b[used+1])<<8 | int(b[used+2])<<16
		if err := s.checkServerFrame(n); err != nil {
			return used, false, 0, err
		}
		end := used + mysql.HeaderLen + n
		if len(b) < end {
			return used, false, end, nil
		}
		s.serverFrameRead(n)
		if err := s.serverFrame(b[used:end]); err != nil {
			return used, false, 0, &protoError{"server", err}
		}
		used = end
		if s.lo != nil && s.lo.hold {
			s.lo.hold = false
			return used, true, 0, nil
		}
	}
}
