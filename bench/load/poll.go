package load

import (
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// A worker reads its connections with a few epoll loops instead of a
// goroutine per connection: a connected viewer then costs no goroutine, no
// buffer of its own and no runtime netpoller wake-up per frame.
//
// Why not gnet's client (tried first): a hot room delivers about one frame
// per viewer per second, trickling in as the server writes them, and gnet
// wakes per frame (two epoll_waits and a Gosched each); with these loops a
// 15,000-viewer run took 27 % less CPU. They pause batchPause after a light
// wake-up, so one epoll_wait returns many ready sockets: latency gains at
// most batchPause.

const (
	// pollEvents bounds the events one epoll_wait returns.
	pollEvents = 512
	// batchPause is the pause after a wake-up that found fewer than
	// pollEvents/4 ready sockets: 1 ms of added latency against a 2 s target.
	batchPause = time.Millisecond
	// pollReadBuf is a loop's read buffer: one read takes at most this from
	// one socket (level-triggered epoll reports the rest next round).
	pollReadBuf = 64 << 10
	// maxFDTable bounds a loop's descriptor table where the open-files limit
	// is unknown or huge (8 bytes an entry).
	maxFDTable = 1 << 20
)

// pconn is one socket in a loop. Its viewer's mu guards closing it against
// writes and shutdowns from other goroutines; the loop alone closes the fd.
type pconn struct {
	fd     int
	loop   *pollLoop
	v      *viewer
	closed bool // v.mu
}

// pollLoop is one epoll loop.
type pollLoop struct {
	epfd   int
	wakefd int
	conns  []atomic.Pointer[pconn] // by fd: set before EPOLL_CTL_ADD, cleared by the loop
	buf    []byte
	done   chan struct{}
}

// pollers are a worker's loops; connections go round-robin.
type pollers struct {
	loops []*pollLoop
	next  atomic.Uint32
}

func newPollers(n int) (*pollers, error) {
	p := &pollers{}
	for i := 0; i < max(1, n); i++ {
		l, err := newPollLoop()
		if err != nil {
			p.stop()
			return nil, err
		}
		p.loops = append(p.loops, l)
		go l.run()
	}
	return p, nil
}

func newPollLoop() (*pollLoop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll: %w", err)
	}
	wakefd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wakefd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(wakefd)}); err != nil {
		unix.Close(epfd)
		unix.Close(wakefd)
		return nil, fmt.Errorf("epoll add: %w", err)
	}
	// Descriptors are below the open-files limit: a table by fd is a slice.
	size := openFilesLimit()
	if size <= 0 || size > maxFDTable {
		size = maxFDTable
	}
	return &pollLoop{epfd: epfd, wakefd: wakefd, conns: make([]atomic.Pointer[pconn], size),
		buf: make([]byte, pollReadBuf), done: make(chan struct{})}, nil
}

// stop ends the loops (their connections must be closed already).
func (p *pollers) stop() {
	for _, l := range p.loops {
		_, _ = unix.Write(l.wakefd, []byte{1, 0, 0, 0, 0, 0, 0, 0})
		<-l.done
		unix.Close(l.epfd)
		unix.Close(l.wakefd)
	}
}

// adopt takes c's socket into a loop for v: it duplicates the descriptor,
// closes c (the runtime forgets it) and registers the copy. v.opened runs
// before any read.
func (p *pollers) adopt(c net.Conn, v *viewer) error {
	sc, ok := c.(syscall.Conn)
	if !ok {
		c.Close()
		return errors.New("not a socket")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		c.Close()
		return err
	}
	fd := -1
	cerr := rc.Control(func(s uintptr) { fd, err = unix.Dup(int(s)) })
	c.Close()
	if cerr != nil {
		return cerr
	}
	if err != nil {
		return fmt.Errorf("dup: %w", err)
	}
	unix.CloseOnExec(fd)
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return err
	}
	l := p.loops[int(p.next.Add(1))%len(p.loops)]
	if fd >= len(l.conns) {
		unix.Close(fd)
		return fmt.Errorf("descriptor %d above the table of %d", fd, len(l.conns))
	}
	pc := &pconn{fd: fd, loop: l, v: v}
	if !v.opened(pc) { // cut while being handed over
		unix.Close(fd)
		return errors.New("cut during the hand-over")
	}
	l.conns[fd].Store(pc)
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(fd)}); err != nil {
		l.conns[fd].Store(nil)
		v.mu.Lock()
		pc.closed, v.pc = true, nil
		v.mu.Unlock()
		unix.Close(fd)
		return fmt.Errorf("epoll add: %w", err)
	}
	return nil
}

// run is the loop. Hot path: per ready socket one read and the viewer's
// frame handling; nothing allocates.
func (l *pollLoop) run() {
	defer close(l.done)
	runtime.LockOSThread() // one thread per loop, as an event loop should have
	events := make([]unix.EpollEvent, pollEvents)
	for {
		n, err := unix.EpollWait(l.epfd, events, -1)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return
		}
		for i := 0; i < n; i++ {
			fd := int(events[i].Fd)
			if fd == l.wakefd {
				return
			}
			if fd >= 0 && fd < len(l.conns) {
				if pc := l.conns[fd].Load(); pc != nil {
					l.readable(pc)
				}
			}
		}
		if n < pollEvents/4 {
			time.Sleep(batchPause)
		}
	}
}

// readable reads once from a ready socket and hands the bytes to its viewer;
// on end of stream, an error, or a frame the viewer refuses, it closes it.
func (l *pollLoop) readable(pc *pconn) {
	n, err := unix.Read(pc.fd, l.buf)
	switch {
	case n > 0:
		if verr := pc.v.traffic(l.buf[:n]); verr != nil {
			l.close(pc, verr)
		}
	case err == unix.EAGAIN || err == unix.EINTR:
	case err != nil:
		l.close(pc, err)
	default: // 0 bytes: the server closed
		l.close(pc, errServerEOF)
	}
}

var errServerEOF = errors.New("server closed the connection")

// close closes pc on its loop and tells the viewer.
func (l *pollLoop) close(pc *pconn, err error) {
	l.conns[pc.fd].Store(nil)
	_ = unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, pc.fd, nil)
	v := pc.v
	v.mu.Lock()
	pc.closed = true
	if v.pc == pc {
		v.pc = nil
	}
	unix.Close(pc.fd)
	v.mu.Unlock()
	v.closed(err)
}

// write writes a whole frame; v.mu is held. The socket is non-blocking: a
// frame that does not fit the send buffer means the server stopped reading
// (client frames are tiny), and a partial frame would corrupt the stream,
// so both are errors (the caller cuts the connection).
func (pc *pconn) write(b []byte) error {
	if pc.closed {
		return errNotConnected
	}
	n, err := unix.Write(pc.fd, b)
	if err != nil {
		return err
	}
	if n != len(b) {
		return fmt.Errorf("short write of %d of %d bytes", n, len(b))
	}
	return nil
}

// shutdown makes the loop see the end of pc (it then closes it); v.mu is
// held, so the fd cannot have been closed and reused.
func (pc *pconn) shutdown() {
	if !pc.closed {
		_ = unix.Shutdown(pc.fd, unix.SHUT_RDWR)
	}
}
