package userspace

import (
	"fmt"
	"net"
	"sync"
)

// sender is where a tunnel's data messages go: its connected UDP socket.
type sender interface {
	// Write sends one message; any goroutine (the TUN reader).
	Write(p []byte) (int, error)
	// WriteBatch sends every message in order and returns how many were
	// sent and the first error (a refused message is skipped, the rest
	// still go). Called by one goroutine at a time (under tunnel.txMu).
	WriteBatch(pkts [][]byte) (int, error)
}

// Bounds of one tunnel's batch: past either, SendFrame sends at once what
// it holds. 64 frames of LCP/PAP/CHAP/IPCP (tens of bytes each) is what a
// busy tunnel's goroutine produces in one pass at thousands of setups or
// LCP echoes per second; the byte bound keeps a batch of big frames from
// growing the shared buffers.
const (
	maxBatchFrames = 64
	maxBatchBytes  = 32 << 10
	// txRoom is reserved before each frame in a batch for its L2TP header
	// (with Ns/Nr: 10 bytes) and FF 03, written at Flush.
	txRoom = 12
)

// txBatch holds frames of one tunnel between Flushes. Batches come from a
// pool shared by every tunnel and go back to it at Flush: an idle tunnel
// holds none (thousands of one-session VPN tunnels).
type txBatch struct {
	buf  []byte    // txRoom, frame, txRoom, frame, ...
	ents []txEntry // one per frame, in order
	pkts [][]byte  // the encoded messages (built at Flush)
}

type txEntry struct {
	s      *session
	off, n int // the frame is buf[off:off+n]
}

var batchPool = sync.Pool{New: func() any { return new(txBatch) }}

func (b *txBatch) release() {
	clear(b.ents) // keep no session alive
	clear(b.pkts)
	b.buf, b.ents, b.pkts = b.buf[:0], b.ents[:0], b.pkts[:0]
	if cap(b.buf) > 2*maxBatchBytes {
		b.buf = nil // one huge frame: do not keep its memory
	}
	batchPool.Put(b)
}

// hold copies s's frame into the tunnel's batch, sending the batch first
// if the frame would take it past its bounds.
func (t *tunnel) hold(s *session, frame []byte) error {
	t.txMu.Lock()
	defer t.txMu.Unlock()
	if t.txClosed {
		return fmt.Errorf("userspace dataplane: %s: send on closed tunnel", s)
	}
	b := t.pending
	if b != nil && (len(b.ents) >= maxBatchFrames || len(b.buf)+txRoom+len(frame) > maxBatchBytes) {
		t.flushLocked()
		b = nil
	}
	if b == nil {
		b = batchPool.Get().(*txBatch)
		t.pending = b
	}
	off := len(b.buf) + txRoom
	b.buf = append(b.buf, make([]byte, txRoom)...)
	b.buf = append(b.buf, frame...)
	b.ents = append(b.ents, txEntry{s: s, off: off, n: len(frame)})
	if endsLink(frame) {
		t.flushLocked()
	}
	return nil
}

// PPP protocols and codes of the frames that end a link (RFC 1661 5.5,
// RFC 1334 2.2.2, RFC 1994 4.4).
const (
	protoLCP    = 0xc021
	protoPAP    = 0xc023
	protoCHAP   = 0xc223
	lcpTermReq  = 5
	lcpTermAck  = 6
	papNak      = 3
	chapFailure = 4
)

// endsLink reports whether frame (protocol field first) ends the link: an
// LCP Terminate-Request/Ack, a PAP Authenticate-Nak or a CHAP (MS-CHAPv2)
// Failure. Such a frame leaves at once, with what is held before it: the
// control plane may send a CDN right after it in the same pass of the
// tunnel goroutine, and the peer must see why before the call is cleared.
func endsLink(frame []byte) bool {
	if len(frame) < 3 {
		return false
	}
	code := frame[2]
	switch uint16(frame[0])<<8 | uint16(frame[1]) {
	case protoLCP:
		return code == lcpTermReq || code == lcpTermAck
	case protoPAP:
		return code == papNak
	case protoCHAP:
		return code == chapFailure
	}
	return false
}

// Flush implements dataplane.Flusher: every frame held since the last
// Flush leaves, in order, in one system call (sendmmsg).
func (t *tunnel) Flush() {
	t.txMu.Lock()
	t.flushLocked()
	t.txMu.Unlock()
}

// FlushWith implements dataplane.BatchSender: ctrl, then every frame held
// since the last Flush, in one system call.
func (t *tunnel) FlushWith(ctrl [][]byte) error {
	t.txMu.Lock()
	defer t.txMu.Unlock()
	if t.txClosed {
		return fmt.Errorf("userspace dataplane: tunnel %d: control messages on a closed tunnel: %w", t.cfg.LocalID, net.ErrClosed)
	}
	if t.pending == nil {
		if len(ctrl) == 0 {
			return nil
		}
		_, err := t.w.WriteBatch(ctrl)
		return err
	}
	return t.flushWith(ctrl)
}

func (t *tunnel) flushLocked() { _ = t.flushWith(nil) }

// flushWith sends pre and then the held frames (caller holds txMu); the
// error is that of the first message of pre not sent.
func (t *tunnel) flushWith(pre [][]byte) error {
	b := t.pending
	if b == nil {
		return nil
	}
	t.pending = nil
	b.pkts = append(b.pkts, pre...)
	for _, e := range b.ents {
		// The header goes right before the frame; its Ns (if the
		// session sends them) is taken now, so frames and the TUN
		// reader's packets leave in Ns order.
		start := e.s.encode(b.buf, e.off, e.n)
		b.pkts = append(b.pkts, b.buf[start:e.off+e.n])
	}
	sent, err := t.w.WriteBatch(b.pkts)
	var preErr error
	if sent < len(pre) {
		preErr = err
		if preErr == nil {
			preErr = fmt.Errorf("userspace dataplane: tunnel %d: %d of %d control messages sent", t.cfg.LocalID, sent, len(pre))
		}
	}
	sent -= len(pre)
	// Which message a refused send was is not reported: the first `sent`
	// count as sent, the rest as errors (the totals are right).
	for i, e := range b.ents {
		if i < sent {
			e.s.txPackets.Add(1)
			e.s.txBytes.Add(uint64(e.n))
		} else {
			e.s.txErrors.Add(1)
		}
	}
	b.release()
	return preErr
}
