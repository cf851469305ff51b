//go:build linux

package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"github.com/das-mysql/das/internal/mysql"
)

// Event loops relay plaintext sessions after login. One OS thread per loop
// waits in epoll for all the sessions it owns, reads what is ready and
// writes it on at once; nothing is parked or woken per packet.
//
// Why: through Go's netpoller, each packet costs its direction a goroutine
// wake-up and a read that finds nothing (EAGAIN) before parking. On a machine
// whose cores the database and its clients keep busy, that scheduling and
// the extra syscalls were most of what das cost beyond haproxy's own event
// loop (docs/PERFORMANCE.md). TLS sessions, and every session while the
// stream is in sync mode (its statements wait for durability, which a shared
// thread must not), keep the goroutine relay.

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
		ls.ls = append(ls.ls, &loop{p: p, ep: -1, conns: make(map[int32]*lconn)})
	}
	return ls
}

// loop is one epoll instance and the thread that waits on it.
type loop struct {
	p       *Proxy
	buf     []byte     // what the thread reads into
	mu      sync.Mutex // guards the fields below against adopt
	ep      int
	running bool
	conns   map[int32]*lconn // by fd
	n       int              // sessions
}

// lconn is one side of a session on a loop.
type lconn struct {
	s      *session
	fd     int
	client bool
	peer   *lconn
	in     []byte // read, not yet relayed: an incomplete packet
	out    []byte // relayed, not yet written: the socket was full
	mask   uint32 // epoll events asked for
	closed bool
}

// adopt moves a logged-in session onto the least busy loop. It returns false,
// with nothing changed, when the session must keep the goroutine relay.
func (ls *loops) adopt(s *session) bool {
	if ls == nil || s.client != s.rawClient || s.server != s.rawServer ||
		s.cr.Buffered() > 0 || s.sr.Buffered() > 0 || s.p.syncMode() {
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
		l.ep, l.running = ep, true
		if l.p.o.EventLoopProcs {
			addProcs(1)
		}
		go l.run(ep)
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
func (l *loop) run(ep int) {
	runtime.LockOSThread()
	l.buf = make([]byte, 0, 2*bufSize)
	defer runtime.UnlockOSThread()
	evs := make([]syscall.EpollEvent, 128)
	batch := make([]*lconn, 0, 128)
	for {
		timeout := -1
		l.mu.Lock()
		if l.n == 0 {
			timeout = loopIdleMillis
		}
		l.mu.Unlock()
		n, err := syscall.EpollWait(ep, evs, timeout)
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
		if n == 0 && l.n == 0 && timeout >= 0 {
			l.running = false
			l.ep = -1
			if l.p.o.EventLoopProcs {
				addProcs(-1)
			}
			l.mu.Unlock()
			syscall.Close(ep)
			return
		}
		for i := 0; i < n; i++ {
			batch = append(batch, l.conns[evs[i].Fd])
		}
		l.mu.Unlock()
		for i, c := range batch {
			if c == nil || c.closed {
				continue
			}
			l.serve(c, evs[i].Events)
		}
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
	if events&(syscall.EPOLLHUP|syscall.EPOLLERR) == 0 && (events&syscall.EPOLLIN == 0 || c.mask&syscall.EPOLLIN == 0) {
		return
	}
	if s.p.syncMode() {
		l.eject(c)
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
	s := c.s
	b := l.buf[:0]
	if len(c.in) > 0 {
		if len(c.in) == cap(c.in) {
			c.in = grow(c.in, len(c.in)+bufSize)
		}
		b = c.in
	}
	n, err := syscall.Read(c.fd, b[len(b):cap(b)])
	switch {
	case err == syscall.EAGAIN || err == syscall.EINTR:
		return nil
	case err != nil:
		return c.connErr(err)
	case n == 0:
		if len(c.in) > 0 {
			return c.connErr(io.ErrUnexpectedEOF)
		}
		if c.client {
			return errClientClosed
		}
		return errServerClosed
	}
	b = b[:len(b)+n]
	var used, need int
	if c.client {
		used, need, err = s.clientInput(b)
	} else {
		used, need, err = s.serverInput(b)
	}
	if used > 0 {
		if werr := l.send(c, b[:used]); werr != nil {
			return werr
		}
		if c.client {
			s.p.bytesClient.Add(uint64(used))
		} else {
			s.p.bytesServer.Add(uint64(used))
		}
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
			n, err := syscall.Write(d.fd, p)
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
	if err := l.setMask(d, d.mask|syscall.EPOLLOUT); err != nil {
		return err
	}
	return l.setMask(c, c.mask&^syscall.EPOLLIN)
}

// flush writes what c's socket refused before; once all is out, the peer is
// read again.
func (l *loop) flush(c *lconn) error {
	for len(c.out) > 0 {
		n, err := syscall.Write(c.fd, c.out)
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
	if err := l.setMask(c, c.mask&^syscall.EPOLLOUT); err != nil {
		return err
	}
	return l.setMask(c.peer, c.peer.mask|syscall.EPOLLIN)
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
		return fmt.Errorf("client connection: %w", err)
	}
	return fmt.Errorf("server connection: %w", err)
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
		_, _ = syscall.Write(cl.fd, cl.out)
	}
	l.detach(c)
	s.end(err)
	s.connMu.Lock()
	syscall.Close(s.cfd)
	syscall.Close(s.sfd)
	s.cfd, s.sfd = -1, -1
	s.connMu.Unlock()
	close(s.loopDone)
}

// eject gives the session back to its goroutine (the stream went to sync
// mode): the descriptors become net.Conns again, with what each side had
// buffered.
func (l *loop) eject(c *lconn) {
	s := c.s
	l.detach(c)
	cl, sv := c, c.peer
	if !c.client {
		cl, sv = c.peer, c
	}
	s.ejected = &ejected{clientIn: cl.in, serverIn: sv.in, clientOut: cl.out, serverOut: sv.out}
	s.onLoop = false
	close(s.loopDone)
}

// resume puts an ejected session back on net.Conns for the goroutine relay.
func (s *session) resume() error {
	e := s.ejected
	s.ejected = nil
	conv := func(fd *int, name string) (net.Conn, error) {
		s.connMu.Lock()
		defer s.connMu.Unlock()
		f := os.NewFile(uintptr(*fd), name)
		*fd = -1
		defer f.Close()
		return net.FileConn(f)
	}
	client, err := conv(&s.cfd, "client")
	if err != nil {
		return fmt.Errorf("client connection: %w", err)
	}
	server, err := conv(&s.sfd, "server")
	if err != nil {
		client.Close()
		return fmt.Errorf("server connection: %w", err)
	}
	s.connMu.Lock()
	s.rawClient, s.rawServer, s.client, s.server = client, server, client, server
	closed := s.closed
	s.connMu.Unlock()
	if closed {
		client.Close()
		server.Close()
		return errShutdown
	}
	if _, err := client.Write(e.clientOut); err != nil {
		return fmt.Errorf("client connection: %w", err)
	}
	if _, err := server.Write(e.serverOut); err != nil {
		return fmt.Errorf("server connection: %w", err)
	}
	s.cr = bufio.NewReaderSize(io.MultiReader(bytes.NewReader(e.clientIn), client), bufSize)
	s.sr = bufio.NewReaderSize(io.MultiReader(bytes.NewReader(e.serverIn), server), bufSize)
	s.cw = bufio.NewWriterSize(client, bufSize)
	s.sw = bufio.NewWriterSize(server, bufSize)
	return nil
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
// incomplete, how large the buffer must be to hold it.
func (s *session) clientInput(b []byte) (used, need int, err error) {
	for {
		end, seq, need, err := mysql.ScanPacket(b[used:], s.p.o.MaxPacket)
		if err != nil {
			return used, 0, &protoError{"client", err}
		}
		if end == 0 {
			return used, used + need, nil
		}
		if err := s.clientPacket(mysql.PacketPayload(b[used:used+end]), seq); err != nil {
			return used, 0, &protoError{"client", err}
		}
		used += end
	}
}

// serverInput shows the complete server frames at the start of b to the
// state machine, frame by frame as serverLoop does.
func (s *session) serverInput(b []byte) (used, need int, err error) {
	for {
		if len(b)-used < mysql.HeaderLen {
			return used, used + mysql.HeaderLen, nil
		}
		n := int(b[used]) | int(b[used+1])<<8 | int(b[used+2])<<16
		if err := s.checkServerFrame(n); err != nil {
			return used, 0, err
		}
		end := used + mysql.HeaderLen + n
		if len(b) < end {
			return used, end, nil
		}
		s.serverFrameRead(n)
		if err := s.serverFrame(b[used:end]); err != nil {
			return used, 0, &protoError{"server", err}
		}
		used = end
	}
}
