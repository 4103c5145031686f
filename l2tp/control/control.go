// Package control is the reliable delivery layer of the L2TP control
// channel (RFC 2661 section 5.8 and Appendix A), as a pure core.
//
// A Channel numbers outgoing control message bodies (Ns), acknowledges the
// peer's (Nr), holds out-of-order arrivals until the gap is filled,
// retransmits with exponential backoff, limits what is in flight by the
// peer's Receive Window Size and a slow-start congestion window, sends a ZLB
// acknowledgement when no reply carries the ack, and says when a Hello is
// due. It never encodes headers or AVPs: bodies are opaque bytes, and the
// tunnel layer builds each wire message from a Frame's Ns, Nr and Body.
// The same 16-bit Ns/Nr serve L2TPv3 (RFC 3931 4.2) unchanged.
//
// The Channel has no goroutines, timers, sockets or clock: every call takes
// now, and Deadline says when Output next has work. It is not safe for
// concurrent use; one tunnel owns one Channel.
package control

import (
	"errors"
	"fmt"
	"time"
)

// ErrBadNr is returned by Receive when a message's Nr acknowledges messages
// that were never sent.
var ErrBadNr = errors.New("control: Nr acknowledges unsent messages")

// Config tunes one Channel. Zero fields take the defaults of WithDefaults,
// except HelloInterval, where zero means no Hello.
type Config struct {
	// RecvWindow is our Receive Window Size, advertised to the peer:
	// messages with Ns at or beyond Nr+RecvWindow are dropped, those inside
	// are held until they can be delivered in order. Default 16.
	RecvWindow uint16
	// PeerWindow is the peer's Receive Window Size AVP; 0 means the AVP was
	// absent, which RFC 2661 5.8 says means 4.
	PeerWindow uint16
	// RetransmitInitial is the first retransmission timeout. Default 1 s.
	RetransmitInitial time.Duration
	// RetransmitCap caps the doubling timeout. Default 16 s. RFC 2661 5.8
	// requires at least 8 s: Validate rejects less, New raises it to 8 s.
	RetransmitCap time.Duration
	// MaxRetransmits is how many times a message is retransmitted; when the
	// last retransmission also times out, the channel has Failed.
	// Default 5.
	MaxRetransmits int
	// AckDelay is how long an acknowledgement waits for an outgoing message
	// to carry it before a ZLB is sent. Default none: the end of the pass
	// (see DefaultAckDelay).
	AckDelay time.Duration
	// HelloInterval is the idle time (nothing received from the peer and
	// nothing of ours outstanding) after which a Hello is due. Zero
	// disables Hello. The caller passes an already-jittered value per
	// tunnel; DefaultHelloInterval is the usual base.
	HelloInterval time.Duration
}

// WithDefaults returns c with every zero field (but HelloInterval) set to
// its default.
func (c Config) WithDefaults() Config {
	if c.RecvWindow == 0 {
		c.RecvWindow = DefaultRecvWindow
	}
	if c.PeerWindow == 0 {
		c.PeerWindow = DefaultPeerWindow
	}
	if c.RetransmitInitial == 0 {
		c.RetransmitInitial = DefaultRetransmitInitial
	}
	if c.RetransmitCap == 0 {
		c.RetransmitCap = DefaultRetransmitCap
	}
	if c.MaxRetransmits == 0 {
		c.MaxRetransmits = DefaultMaxRetransmits
	}
	if c.AckDelay == 0 {
		c.AckDelay = DefaultAckDelay
	}
	return c
}

// Validate reports the first setting of c (after WithDefaults) that breaks
// RFC 2661 5.8 or cannot work.
func (c Config) Validate() error {
	c = c.WithDefaults()
	switch {
	case c.RecvWindow > MaxWindow:
		return fmt.Errorf("control: receive window %d exceeds %d", c.RecvWindow, MaxWindow)
	case c.PeerWindow > MaxWindow:
		return fmt.Errorf("control: peer window %d exceeds %d", c.PeerWindow, MaxWindow)
	case c.RetransmitInitial < 0:
		return fmt.Errorf("control: negative initial retransmission timeout %v", c.RetransmitInitial)
	case c.RetransmitCap < MinRetransmitCap:
		return fmt.Errorf("control: retransmission cap %v is below the %v RFC 2661 5.8 requires", c.RetransmitCap, MinRetransmitCap)
	case c.RetransmitCap < c.RetransmitInitial:
		return fmt.Errorf("control: retransmission cap %v is below the initial timeout %v", c.RetransmitCap, c.RetransmitInitial)
	case c.MaxRetransmits < 0:
		return fmt.Errorf("control: negative retransmission limit %d", c.MaxRetransmits)
	case c.AckDelay < 0:
		return fmt.Errorf("control: negative ack delay %v", c.AckDelay)
	case c.HelloInterval < 0:
		return fmt.Errorf("control: negative hello interval %v", c.HelloInterval)
	}
	return nil
}

// sanitize makes any Config usable: defaults, then clamps what Validate
// would reject.
func (c Config) sanitize() Config {
	c = c.WithDefaults()
	c.RecvWindow = min(c.RecvWindow, MaxWindow)
	c.PeerWindow = min(c.PeerWindow, MaxWindow)
	if c.RetransmitInitial < 0 {
		c.RetransmitInitial = DefaultRetransmitInitial
	}
	c.RetransmitCap = max(c.RetransmitCap, MinRetransmitCap, c.RetransmitInitial)
	c.MaxRetransmits = max(c.MaxRetransmits, 0)
	c.AckDelay = max(c.AckDelay, 0)
	c.HelloInterval = max(c.HelloInterval, 0)
	return c
}

// Frame is one control message to transmit. The tunnel layer encodes the
// header with Ns and Nr and appends Body (its encoded AVPs); a nil Body is a
// ZLB acknowledgement.
type Frame struct {
	Ns, Nr     uint16
	Body       []byte // nil: ZLB
	Retransmit bool
}

// IsZLB reports whether f is a zero-length body acknowledgement.
func (f Frame) IsZLB() bool { return f.Body == nil }

// Stats counts what a Channel did.
type Stats struct {
	Sent          uint64 // messages transmitted the first time
	Retransmitted uint64 // retransmissions
	Acked         uint64 // our messages acknowledged by the peer
	Received      uint64 // non-ZLB messages received (any Ns)
	Delivered     uint64 // messages delivered in order
	Duplicates    uint64 // received again after delivery, or again while held
	OutOfOrder    uint64 // held inside the receive window
	Dropped       uint64 // beyond the receive window
	BadNr         uint64 // messages refused for ErrBadNr
	ZLBsSent      uint64
	ZLBsReceived  uint64
	Timeouts      uint64 // retransmission timeouts (congestion events)
}

// outMsg is one of our messages not yet acknowledged.
type outMsg struct {
	body    []byte
	due     time.Time // sent: retransmission due; unsent: when queued
	retries int       // retransmissions so far
}

// heldMsg is a slot of the out-of-order buffer. body keeps its backing
// array after delivery so the slot can be reused without allocating.
type heldMsg struct {
	body []byte
	ok   bool
}

// Channel is the reliable control channel of one tunnel.
type Channel struct {
	cfg Config

	// Send side. queue[i] has Ns sendUna+i; the first inflight are sent.
	queue    []outMsg
	sendUna  uint16 // oldest unacknowledged Ns
	nextNs   uint16 // Ns the next Send assigns
	inflight int
	cwnd     int // congestion window, in messages
	caCount  int // acks counted toward the next congestion-avoidance step
	ssthresh int

	// Receive side.
	nr         uint16    // next Ns expected from the peer
	held       []heldMsg // ring: Ns nr+k is at (heldBase+k) % RecvWindow; nil until first needed
	heldBase   int
	nheld      int
	deliver    [][]byte // reused result of Receive
	ackPending bool
	ackDue     time.Time
	lastRecv   time.Time

	failed bool
	stats  Stats
}

// New returns a Channel at Ns = Nr = 0 (RFC 2661 5.8: both start at 0 for a
// new tunnel). cfg is completed by WithDefaults; values Validate would
// reject are clamped (notably RetransmitCap is raised to 8 s), so New never
// fails. now starts the Hello idle timer.
func New(cfg Config, now time.Time) *Channel {
	cfg = cfg.sanitize()
	return &Channel{
		cfg:      cfg,
		cwnd:     1,
		ssthresh: int(cfg.PeerWindow),
		lastRecv: now,
	}
}

// Config returns the configuration in effect (defaults applied, clamped).
func (c *Channel) Config() Config { return c.cfg }

// SetPeerWindow records the peer's Receive Window Size AVP (0: absent, so
// 4), learned from SCCRQ or SCCRP. It also resets the slow-start threshold
// to the window (Appendix A) and trims the congestion window to it.
func (c *Channel) SetPeerWindow(w uint16) {
	if w == 0 {
		w = DefaultPeerWindow
	}
	w = min(w, MaxWindow)
	c.cfg.PeerWindow = w
	c.ssthresh = int(w)
	c.cwnd = min(c.cwnd, int(w))
}

// Send queues body for reliable delivery and returns its Ns. The Channel
// keeps body until the peer acknowledges it: the caller must not modify it.
// The message goes out from Output when the congestion window and the
// peer's window allow.
func (c *Channel) Send(now time.Time, body []byte) (ns uint16) {
	ns = c.nextNs
	c.nextNs++
	c.queue = append(c.queue, outMsg{body: body, due: now})
	return ns
}

// Receive handles an incoming control message: its Ns and Nr, and its body
// (empty for a ZLB). It first applies the acknowledgement in Nr, then
// returns the bodies now deliverable in order: the message itself and any
// held ones it released.
//
// A duplicate (Ns already received) is not delivered; a ZLB acknowledging it
// goes out at the next Output. A message ahead of the next expected Ns but
// inside RecvWindow is copied and held; one beyond the window is dropped.
// If Nr acknowledges messages never sent, Receive returns an error wrapping
// ErrBadNr and ignores the whole message (neither its ack nor its body is
// used): the peer is confused or the message is forged, and a message whose
// header is inconsistent must not drive the tunnel state machine.
//
// deliver aliases body and the Channel's own buffers: it is valid until the
// next call to Receive.
func (c *Channel) Receive(now time.Time, ns, nr uint16, body []byte) (deliver [][]byte, err error) {
	if err := c.ack(nr); err != nil {
		c.stats.BadNr++
		return nil, err
	}
	c.lastRecv = now
	if len(body) == 0 {
		c.stats.ZLBsReceived++
		return nil, nil
	}
	c.stats.Received++
	c.deliver = c.deliver[:0]
	switch d := ns - c.nr; {
	case d == 0:
		c.deliver = append(c.deliver, body)
		c.advance()
		for c.nheld > 0 {
			s := &c.held[c.heldBase]
			if !s.ok {
				break
			}
			s.ok = false
			c.nheld--
			c.deliver = append(c.deliver, s.body)
			c.advance()
		}
		c.stats.Delivered += uint64(len(c.deliver))
		c.scheduleAck(now.Add(c.cfg.AckDelay))
		return c.deliver, nil
	case SeqLess(ns, c.nr):
		c.stats.Duplicates++
		c.scheduleAck(now)
	case d < c.cfg.RecvWindow:
		if c.held == nil {
			c.held = make([]heldMsg, c.cfg.RecvWindow)
		}
		s := &c.held[(c.heldBase+int(d))%len(c.held)]
		if s.ok {
			c.stats.Duplicates++
			return nil, nil
		}
		s.body = append(s.body[:0], body...)
		s.ok = true
		c.nheld++
		c.stats.OutOfOrder++
	default:
		c.stats.Dropped++
	}
	return nil, nil
}

// advance moves Nr past one delivered message.
func (c *Channel) advance() {
	c.nr++
	if c.held != nil {
		c.heldBase = (c.heldBase + 1) % len(c.held)
	}
}

// ack applies an incoming Nr: every message with Ns before nr is
// acknowledged. An Nr behind sendUna is stale (reordered) and ignored.
func (c *Channel) ack(nr uint16) error {
	k := int(nr - c.sendUna)
	if k > c.inflight {
		if SeqLess(nr, c.sendUna) {
			return nil
		}
		return fmt.Errorf("Nr %d with %d unacknowledged from Ns %d (next unsent %d): %w",
			nr, c.inflight, c.sendUna, c.sendUna+uint16(c.inflight), ErrBadNr)
	}
	if k == 0 {
		return nil
	}
	for range k {
		c.onAck()
	}
	n := copy(c.queue, c.queue[k:])
	clear(c.queue[n:])
	c.queue = c.queue[:n]
	c.sendUna += uint16(k)
	c.inflight -= k
	c.stats.Acked += uint64(k)
	return nil
}

// onAck grows the congestion window for one acknowledged message
// (RFC 2661 Appendix A): by 1 in slow start, by 1/CWND in congestion
// avoidance, never beyond the peer's window.
func (c *Channel) onAck() {
	if c.cwnd < c.ssthresh {
		c.cwnd++
	} else {
		c.caCount++
		if c.caCount >= c.cwnd {
			c.caCount = 0
			c.cwnd++
		}
	}
	c.cwnd = min(c.cwnd, int(c.cfg.PeerWindow))
}

// onTimeout collapses the congestion window (Appendix A).
func (c *Channel) onTimeout() {
	c.stats.Timeouts++
	c.ssthresh = max(c.cwnd/2, 1)
	c.cwnd = 1
	c.caCount = 0
}

func (c *Channel) scheduleAck(due time.Time) {
	if !c.ackPending || due.Before(c.ackDue) {
		c.ackDue = due
	}
	c.ackPending = true
}

// window is how many messages may be unacknowledged now.
func (c *Channel) window() int { return min(c.cwnd, int(c.cfg.PeerWindow)) }

// rto is the retransmission timeout after retries retransmissions.
func (c *Channel) rto(retries int) time.Duration {
	d := c.cfg.RetransmitInitial
	for i := 0; i < retries && d < c.cfg.RetransmitCap; i++ {
		d *= 2
	}
	return min(d, c.cfg.RetransmitCap)
}

// Output appends to out the frames to transmit now: retransmissions that
// are due (carrying the current Nr), then new messages the windows allow,
// then, if the delayed-ack timer expired and no frame above carried the
// ack, a ZLB. When a message's last allowed retransmission times out,
// the channel has Failed and Output sends nothing more.
func (c *Channel) Output(now time.Time, out []Frame) []Frame {
	if c.failed {
		return out
	}
	for i := range c.inflight {
		if m := &c.queue[i]; !now.Before(m.due) && m.retries >= c.cfg.MaxRetransmits {
			c.failed = true
			c.ackPending = false
			return out
		}
	}
	start := len(out)
	timedOut := false
	for i := range c.inflight {
		m := &c.queue[i]
		if now.Before(m.due) {
			continue
		}
		m.retries++
		m.due = now.Add(c.rto(m.retries))
		timedOut = true
		out = append(out, Frame{Ns: c.sendUna + uint16(i), Nr: c.nr, Body: m.body, Retransmit: true})
		c.stats.Retransmitted++
	}
	if timedOut {
		c.onTimeout()
	}
	for c.inflight < len(c.queue) && c.inflight < c.window() {
		m := &c.queue[c.inflight]
		m.due = now.Add(c.cfg.RetransmitInitial)
		out = append(out, Frame{Ns: c.sendUna + uint16(c.inflight), Nr: c.nr, Body: m.body})
		c.inflight++
		c.stats.Sent++
	}
	switch {
	case len(out) > start:
		c.ackPending = false
	case c.ackPending && !now.Before(c.ackDue):
		out = append(out, Frame{Ns: c.sendUna + uint16(c.inflight), Nr: c.nr})
		c.ackPending = false
		c.stats.ZLBsSent++
	}
	return out
}

// Deadline returns the earliest time at which Output has something to do
// or a Hello becomes due; a time not after now means "call Output now".
// It is zero when nothing is pending (or the channel has failed).
func (c *Channel) Deadline() time.Time {
	if c.failed {
		return time.Time{}
	}
	var d time.Time
	earliest := func(t time.Time) {
		if d.IsZero() || t.Before(d) {
			d = t
		}
	}
	for i := range c.inflight {
		earliest(c.queue[i].due)
	}
	if c.inflight < len(c.queue) && c.inflight < c.window() {
		earliest(c.queue[c.inflight].due)
	}
	if c.ackPending {
		earliest(c.ackDue)
	}
	if c.cfg.HelloInterval > 0 && len(c.queue) == 0 {
		earliest(c.lastRecv.Add(c.cfg.HelloInterval))
	}
	return d
}

// HelloDue reports whether nothing has been received from the peer for
// HelloInterval and nothing of ours is outstanding: the caller should Send
// a Hello (whose acknowledgement then resets the idle timer).
func (c *Channel) HelloDue(now time.Time) bool {
	return !c.failed && c.cfg.HelloInterval > 0 && len(c.queue) == 0 &&
		!now.Before(c.lastRecv.Add(c.cfg.HelloInterval))
}

// Failed reports whether a message went unacknowledged through
// MaxRetransmits retransmissions and the timeout after the last one: the
// tunnel is dead.
func (c *Channel) Failed() bool { return c.failed }

// Outstanding returns how many of our messages are unacknowledged: sent
// and in flight, plus queued behind the windows.
func (c *Channel) Outstanding() int { return len(c.queue) }

// InFlight returns how many messages are sent but unacknowledged.
func (c *Channel) InFlight() int { return c.inflight }

// NextNs returns the Ns the next Send will assign.
func (c *Channel) NextNs() uint16 { return c.nextNs }

// Nr returns the next Ns expected from the peer (the Nr we send).
func (c *Channel) Nr() uint16 { return c.nr }

// CWND returns the congestion window and slow-start threshold, in messages.
func (c *Channel) CWND() (cwnd, ssthresh int) { return c.cwnd, c.ssthresh }

// Stats returns the counters.
func (c *Channel) Stats() Stats { return c.stats }
