package kernel

import (
	"errors"
	"fmt"
	"sync"

	"golang.org/x/sys/unix"
)

// Poller delivers datagrams read from many file descriptors (the /dev/ppp
// channel and unit fds of every session) to per-fd handlers, from one
// goroutine blocked in epoll_wait(2).
//
// Why not Go's netpoller (os.NewFile on non-blocking fds)? It would need a
// goroutine blocked in Read per fd: two per session, at least 2 KiB of stack
// each plus a read buffer, so 100,000 sessions would cost >400 MB and
// 200,000 goroutines. Here a registered fd costs one map slot and one
// small entry (BenchmarkPollerRegister measured ~61 B of heap per fd, ~122 B
// per session, on amd64), and all fds share one
// read buffer.
//
// Level-triggered: each wakeup reads one datagram per ready fd, so a busy
// session cannot starve the others. A handler runs on the poller's
// goroutine; it must not block. It may call Unregister (also for its own
// fd). After Unregister returns, no read is made on the fd any more (so
// closing it and having the number reused is safe); a frame already read
// may still be being handled.
type Poller struct {
	epfd  int
	wake  int // eventfd: Close wakes the loop through it
	mu    sync.RWMutex
	fds   map[int32]*pollEntry
	buf   []byte
	done  chan struct{}
	close sync.Once
}

type pollEntry struct {
	mu     sync.Mutex // held while reading fd, and by Unregister
	fd     int32
	closed bool
	h      func(frame []byte)
}

// maxFrame is the read buffer: larger than any PPP frame /dev/ppp returns
// (MRU is at most 65535 minus headers).
const maxFrame = 65536

// NewPoller creates the epoll instance and starts its goroutine.
func NewPoller() (*Poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("kernel: epoll_create1: %w", err)
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("kernel: eventfd: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(wake)}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wake, &ev); err != nil {
		unix.Close(wake)
		unix.Close(epfd)
		return nil, fmt.Errorf("kernel: epoll_ctl add eventfd: %w", err)
	}
	p := &Poller{epfd: epfd, wake: wake, fds: make(map[int32]*pollEntry), buf: make([]byte, maxFrame), done: make(chan struct{})}
	go p.loop()
	return p, nil
}

// Register starts delivering datagrams read from fd to h. fd must be
// non-blocking.
func (p *Poller) Register(fd int, h func(frame []byte)) error {
	e := &pollEntry{fd: int32(fd), h: h}
	p.mu.Lock()
	if _, dup := p.fds[e.fd]; dup {
		p.mu.Unlock()
		return fmt.Errorf("kernel: poller: fd %d registered twice", fd)
	}
	p.fds[e.fd] = e
	p.mu.Unlock()
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: e.fd}
	if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		p.mu.Lock()
		delete(p.fds, e.fd)
		p.mu.Unlock()
		return fmt.Errorf("kernel: epoll_ctl add fd %d: %w", fd, err)
	}
	return nil
}

// Unregister stops reading fd. Unknown fds are ignored.
func (p *Poller) Unregister(fd int) {
	p.mu.Lock()
	e := p.fds[int32(fd)]
	delete(p.fds, int32(fd))
	p.mu.Unlock()
	if e == nil {
		return
	}
	e.mu.Lock()
	if !e.closed {
		e.closed = true
		unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, fd, nil) // may already be gone (ENOENT after EOF)
	}
	e.mu.Unlock()
}

// Len is the number of registered fds.
func (p *Poller) Len() int {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return len(p.fds)
}

// Close stops the goroutine, waits for it and closes the epoll instance.
// Registered fds are not closed (their owners close them).
func (p *Poller) Close() error {
	p.close.Do(func() {
		var one [8]byte
		one[0] = 1
		unix.Write(p.wake, one[:])
		<-p.done
		unix.Close(p.wake)
		unix.Close(p.epfd)
	})
	return nil
}

func (p *Poller) loop() {
	defer close(p.done)
	events := make([]unix.EpollEvent, 128)
	for {
		n, err := unix.EpollWait(p.epfd, events, -1)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return // the epoll fd is broken: nothing sensible left to do
		}
		for i := range events[:n] {
			fd := events[i].Fd
			if fd == int32(p.wake) {
				return
			}
			p.mu.RLock()
			e := p.fds[fd]
			p.mu.RUnlock()
			if e != nil {
				p.service(e)
			}
		}
	}
}

// service reads one datagram from e and hands it to e's handler.
func (p *Poller) service(e *pollEntry) {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return
	}
	n, err := unix.Read(int(e.fd), p.buf)
	if err == unix.EAGAIN || err == unix.EINTR {
		e.mu.Unlock()
		return
	}
	if err != nil || n == 0 {
		// EOF or a hard error (the kernel tore the channel down, or the
		// owner closed the fd without Unregister): stop polling it, or
		// level-triggered epoll would report it forever.
		e.closed = true
		unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, int(e.fd), nil)
		e.mu.Unlock()
		return
	}
	h := e.h
	e.mu.Unlock()
	h(p.buf[:n])
}
