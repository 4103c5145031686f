// Package udpbatch reads and writes batches of UDP datagrams on one socket
// with recvmmsg(2) and sendmmsg(2): one system call (and, for a reader, one
// wake-up of its goroutine) for every datagram that is already waiting or
// ready to go, instead of one each. It is used on the L2TP tunnel sockets,
// where a busy tunnel carries many small control messages and PPP frames.
//
// A Reader or a Writer belongs to one goroutine; it keeps its message
// headers between calls and allocates nothing per datagram. Readers share
// their receive buffers (Buffers) and hold them only while they have
// datagrams to hand out.
//
// Every system call here is made with MSG_DONTWAIT on a non-blocking
// socket (waiting is left to the runtime's poller) and returns as soon as
// the kernel has copied the datagrams, so it is made with RawSyscall6, not
// Syscall6: without the runtime's entersyscall/exitsyscall, the goroutine
// keeps its P, and the runtime's monitor thread (sysmon), which otherwise
// wakes every 20 us to take the P of a thread it finds in a system call
// and hand it to another thread, backs off. That was 15-18% of l2tpd's
// CPU per session setup in the benchmark (docs/benchmarks.md), and only
// when no path of a busy socket used Syscall6: one write(2) left on
// net.UDPConn kept most of the cost. So Conn sends single datagrams the
// same way.
package udpbatch

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Buffers is a shared supply of receive buffers for many Readers: a
// reader holds one block of buffers only while it has datagrams to hand
// out, so an idle tunnel's reader parked in Read costs no buffer memory
// (thousands of remote-access tunnels with one session each).
type Buffers struct {
	n, size int
	pool    sync.Pool
}

// NewBuffers returns blocks of n buffers of size bytes each (a longer
// datagram is truncated by the kernel and reported by Reader.Truncated).
func NewBuffers(n, size int) (*Buffers, error) {
	if n < 1 || size < 1 || n > maxBatch {
		return nil, fmt.Errorf("udpbatch: blocks of %d datagrams of %d bytes", n, size)
	}
	b := &Buffers{n: n, size: size}
	b.pool.New = func() any { return &block{mem: make([]byte, n*size)} }
	return b, nil
}

type block struct{ mem []byte }

// Reader reads datagrams in batches. It belongs to one goroutine.
type Reader struct {
	rc    syscall.RawConn
	bufs  *Buffers
	cur   *block
	hs    []unix.Mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrInet6
}

// NewReader returns a reader of c taking its buffers from bufs.
func NewReader(c *net.UDPConn, bufs *Buffers) (*Reader, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("udpbatch: %w", err)
	}
	n := bufs.n
	r := &Reader{
		rc:    rc,
		bufs:  bufs,
		hs:    make([]unix.Mmsghdr, n),
		iovs:  make([]unix.Iovec, n),
		names: make([]unix.RawSockaddrInet6, n),
	}
	for i := range n {
		r.iovs[i].SetLen(bufs.size)
		r.hs[i].Hdr.Iov = &r.iovs[i]
		r.hs[i].Hdr.SetIovlen(1)
		r.hs[i].Hdr.Name = (*byte)(unsafe.Pointer(&r.names[i]))
	}
	return r, nil
}

// recvmmsg reads what is waiting, up to len(hs) datagrams, without
// blocking (a variable so that tests can count the system calls).
var recvmmsg = func(fd uintptr, hs []unix.Mmsghdr) (int, syscall.Errno) {
	m, _, e := unix.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&hs[0])), uintptr(len(hs)), unix.MSG_DONTWAIT, 0, 0)
	return int(m), e
}

// sendmmsg sends hs without blocking; it returns how many went out (a
// variable so that tests can count the system calls).
var sendmmsg = func(fd uintptr, hs []unix.Mmsghdr) (int, syscall.Errno) {
	m, _, e := unix.RawSyscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&hs[0])), uintptr(len(hs)), unix.MSG_DONTWAIT, 0, 0)
	return int(m), e
}

// sendto sends one datagram on a connected socket without blocking (a
// variable so that tests can count the system calls).
var sendto = func(fd uintptr, p []byte) (int, syscall.Errno) {
	var ptr unsafe.Pointer
	if len(p) > 0 {
		ptr = unsafe.Pointer(&p[0])
	}
	n, _, e := unix.RawSyscall6(unix.SYS_SENDTO, fd, uintptr(ptr), uintptr(len(p)), unix.MSG_DONTWAIT, 0, 0)
	return int(n), e
}

func (r *Reader) take() {
	r.cur = r.bufs.pool.Get().(*block)
	size := r.bufs.size
	for i := range r.iovs {
		r.iovs[i].Base = &r.cur.mem[i*size]
	}
}

// Release gives the buffers of the last Read back; Msg may not be called
// after it. Read calls it itself.
func (r *Reader) Release() {
	if r.cur == nil {
		return
	}
	for i := range r.iovs {
		r.iovs[i].Base = nil
	}
	r.bufs.pool.Put(r.cur)
	r.cur = nil
}

// Read waits until at least one datagram is there and reads as many as are
// waiting, up to the batch size of its Buffers. It returns how many; Msg
// gives each. The datagrams stay valid until the next Read or Release. An
// error from the socket (ECONNREFUSED after an ICMP port unreachable, or
// net.ErrClosed once the socket is closed) is returned with no datagram.
func (r *Reader) Read() (int, error) {
	var n int
	var rerr error
	err := r.loop(func(k int, e error) bool { n, rerr = k, e; return false })
	if err == nil {
		err = rerr
	}
	if err != nil {
		r.Release()
		return 0, err
	}
	return n, nil
}

// Each reads the socket until fn says stop or the socket is closed, all
// inside one wait of the runtime's poller: fn(n, nil) is called for every
// batch of n datagrams (Msg and Truncated give them while fn runs), and
// fn(0, err) for an error the socket reported (ECONNREFUSED after an ICMP
// port unreachable); fn returns false to stop, and Each then returns nil.
// Once the socket is closed Each returns net.ErrClosed.
//
// The difference from calling Read in a loop is one system call per
// wake-up: a batch shorter than the batch size means the receive queue was
// empty when it was read, so Each waits for the next readiness instead of
// reading again only to be told EAGAIN. That is safe because the wait
// happens inside the same poller wait as the reads (Read's every call
// resets the descriptor's readiness first, so it must read to learn it is
// empty): a datagram that arrives after the short batch marks the
// descriptor ready, and the wait returns at once.
//
// fn may block (the caller applies backpressure there), but whoever it
// waits for must not close the socket before letting it go: Close waits
// for Each's system call section to end.
func (r *Reader) Each(fn func(n int, err error) bool) error {
	defer r.Release()
	return r.loop(fn)
}

// loop is Each without the final Release (Read keeps its batch for Msg).
func (r *Reader) loop(fn func(n int, err error) bool) error {
	stopped := false
	err := r.rc.Read(func(fd uintptr) bool {
		for {
			r.Release()
			for i := range r.hs {
				r.hs[i].Hdr.Namelen = uint32(unsafe.Sizeof(r.names[i]))
				r.hs[i].Hdr.Flags = 0
				r.hs[i].Len = 0
			}
			r.take()
			m, e := recvmmsg(fd, r.hs)
			switch {
			case e == unix.EINTR:
				continue
			case e == unix.EAGAIN:
				r.Release() // parked: hold no buffer
				return false
			case e != 0:
				r.Release()
				if !fn(0, fmt.Errorf("udpbatch: recvmmsg: %w", e)) {
					stopped = true
					return true
				}
				continue
			}
			n := m
			if !fn(n, nil) {
				stopped = true
				return true
			}
			if n < len(r.hs) {
				r.Release()
				return false // the queue was empty: wait for the next datagram
			}
		}
	})
	if stopped {
		return nil
	}
	return err
}

// Truncated reports whether the i-th datagram of the last Read was longer
// than a buffer (its tail is lost: drop it).
func (r *Reader) Truncated(i int) bool { return r.hs[i].Hdr.Flags&unix.MSG_TRUNC != 0 }

// Msg is the i-th datagram of the last Read and its source address (the
// zero AddrPort if the kernel gave none).
func (r *Reader) Msg(i int) ([]byte, netip.AddrPort) {
	h := &r.hs[i]
	size := r.bufs.size
	return r.cur.mem[i*size : i*size+min(int(h.Len), size) : (i+1)*size], sockaddr(&r.names[i], h.Hdr.Namelen)
}

// sockaddr decodes a sockaddr_in or sockaddr_in6 the kernel wrote.
func sockaddr(rsa *unix.RawSockaddrInet6, n uint32) netip.AddrPort {
	switch rsa.Family {
	case unix.AF_INET:
		if n < unix.SizeofSockaddrInet4 {
			return netip.AddrPort{}
		}
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(rsa))
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), ntohs(sa.Port))
	case unix.AF_INET6:
		if n < unix.SizeofSockaddrInet6 {
			return netip.AddrPort{}
		}
		a := netip.AddrFrom16(rsa.Addr)
		return netip.AddrPortFrom(a.Unmap(), ntohs(rsa.Port))
	}
	return netip.AddrPort{}
}

func ntohs(p uint16) uint16 {
	b := (*[2]byte)(unsafe.Pointer(&p))
	return uint16(b[0])<<8 | uint16(b[1])
}

// Writer sends datagrams in batches on a connected socket.
type Writer struct {
	rc   syscall.RawConn
	hs   []unix.Mmsghdr
	iovs []unix.Iovec
	// The state of one sendmmsg loop (send), kept here so that the
	// function given to rc.Write, made once, allocates nothing per call.
	sendFn           func(fd uintptr) bool
	k, done, skipped int
	errno            syscall.Errno
	calls            uint64 // sendmmsg calls made (Conn.Calls)
}

// NewWriter returns a writer on c, which must be connected (the datagrams
// carry no address).
func NewWriter(c *net.UDPConn) (*Writer, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("udpbatch: %w", err)
	}
	return &Writer{rc: rc}, nil
}

// maxBatch bounds one sendmmsg call (the kernel's UIO_MAXIOV).
const maxBatch = 1024

// Write sends every datagram of pkts, in order, with as few system calls as
// the kernel allows (waiting while the socket's send buffer is full). A
// datagram the kernel refuses (ECONNREFUSED from an earlier ICMP error,
// EMSGSIZE) is skipped and the rest still go out; Write returns how many
// were sent and the first such error. After net.ErrClosed nothing more is
// tried.
func (w *Writer) Write(pkts [][]byte) (int, error) {
	var sent int
	var first error
	for len(pkts) > 0 {
		k := min(len(pkts), maxBatch)
		if cap(w.hs) < k {
			w.hs = make([]unix.Mmsghdr, k)
			w.iovs = make([]unix.Iovec, k)
		}
		hs, iovs := w.hs[:k], w.iovs[:k]
		for i, p := range pkts[:k] {
			iovs[i] = unix.Iovec{}
			if len(p) > 0 {
				iovs[i].Base = &p[0]
			}
			iovs[i].SetLen(len(p))
			hs[i] = unix.Mmsghdr{}
			hs[i].Hdr.Iov = &iovs[i]
			hs[i].Hdr.SetIovlen(1)
		}
		w.k, w.done, w.skipped, w.errno = k, 0, 0, 0
		if w.sendFn == nil {
			w.sendFn = w.send
		}
		err := w.rc.Write(w.sendFn)
		done, skipped, errno := w.done, w.skipped, w.errno
		if err != nil {
			if first == nil {
				first = err
			}
			if errors.Is(err, net.ErrClosed) {
				return sent, first
			}
		}
		if errno != 0 && first == nil {
			first = fmt.Errorf("udpbatch: sendmmsg: %w", errno)
		}
		sent += done - skipped
		clear(iovs) // keep no caller buffer alive
		pkts = pkts[k:]
	}
	return sent, first
}

// send is the sendmmsg loop of Write over w.hs[:w.k], from w.done on.
func (w *Writer) send(fd uintptr) bool {
	for w.done < w.k {
		m, e := sendmmsg(fd, w.hs[w.done:w.k])
		w.calls++
		switch e {
		case 0:
			w.done += m
		case unix.EINTR:
		case unix.EAGAIN:
			return false
		default:
			// The datagram at done failed: skip it.
			w.errno = e
			w.done++
			w.skipped++
		}
	}
	return true
}

// Conn sends on a connected UDP socket: Write sends one datagram (any
// goroutine), WriteBatch one or more with sendmmsg(2) (one goroutine at a
// time). Both go around net.UDPConn's Write, whose write(2) is made with
// Syscall6 (the package comment says why that matters).
type Conn struct {
	c  *net.UDPConn
	rc syscall.RawConn // nil if c gave none: then Write is c.Write
	w  *Writer
	// calls counts the system calls Write and WriteBatch made (tests).
	calls atomic.Uint64
}

// NewConn returns a Conn on c, which must be connected.
func NewConn(c *net.UDPConn) *Conn {
	rc, _ := c.SyscallConn() // nil only for an invalid conn: Write falls back to c.Write
	return &Conn{c: c, rc: rc}
}

// oneSend is the state of one Conn.Write, pooled so that the function
// given to RawConn.Write is made once and Write allocates nothing.
type oneSend struct {
	p     []byte
	n     int
	e     syscall.Errno
	calls uint64
	fn    func(fd uintptr) bool
}

var oneSends = sync.Pool{New: func() any {
	o := &oneSend{}
	o.fn = o.send
	return o
}}

func (o *oneSend) send(fd uintptr) bool {
	for {
		n, e := sendto(fd, o.p)
		o.calls++
		switch e {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false // the send buffer is full: wait until it is not
		}
		o.n, o.e = n, e
		return true
	}
}

// Write sends one datagram. A datagram the kernel refuses (ECONNREFUSED
// after an ICMP port unreachable, EMSGSIZE) is an error wrapping its
// errno; net.ErrClosed once the socket is closed.
func (c *Conn) Write(p []byte) (int, error) {
	if c.rc == nil {
		return c.c.Write(p)
	}
	o := oneSends.Get().(*oneSend)
	o.p, o.n, o.e, o.calls = p, 0, 0, 0
	err := c.rc.Write(o.fn)
	c.calls.Add(o.calls)
	n, e := o.n, o.e
	o.p = nil
	oneSends.Put(o)
	if err != nil {
		return 0, fmt.Errorf("udpbatch: send: %w", err)
	}
	if e != 0 {
		return 0, fmt.Errorf("udpbatch: send: %w", e)
	}
	return n, nil
}

// WriteBatch sends every datagram of pkts in order, like Writer.Write.
func (c *Conn) WriteBatch(pkts [][]byte) (int, error) {
	if c.w == nil {
		w, err := NewWriter(c.c)
		if err != nil {
			return 0, err
		}
		c.w = w
	}
	calls := c.w.calls
	n, err := c.w.Write(pkts)
	c.calls.Add(c.w.calls - calls)
	return n, err
}

// Calls reports how many system calls Write and WriteBatch have made
// (tests: a batch is one call, not one per datagram).
func (c *Conn) Calls() uint64 { return c.calls.Load() }

// SetReceiveBuffer asks for a receive buffer of n bytes on c: with
// SO_RCVBUFFORCE when the process may (CAP_NET_ADMIN, as l2tpd has), so
// that net.core.rmem_max does not cap it, else with SO_RCVBUF (capped).
// A burst of replies (RADIUS answers after a LAC re-dials thousands of
// calls) then waits in the socket instead of being dropped and resent.
// It returns the size the kernel reports (twice what was set, for its
// bookkeeping).
func SetReceiveBuffer(c *net.UDPConn, n int) (int, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, fmt.Errorf("udpbatch: %w", err)
	}
	var got int
	var serr error
	err = rc.Control(func(fd uintptr) {
		if e := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, n); e != nil {
			if e = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, n); e != nil {
				serr = fmt.Errorf("udpbatch: SO_RCVBUF %d: %w", n, e)
				return
			}
		}
		got, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF)
	})
	if err == nil {
		err = serr
	}
	return got, err
}
