package endpoint

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/l2tpd/l2tpd/dataplane"
	"github.com/l2tpd/l2tpd/internal/fault"
	"github.com/l2tpd/l2tpd/internal/udpbatch"
	"github.com/l2tpd/l2tpd/l2tp"
	"github.com/l2tpd/l2tpd/l2tp/tunnel"
)

// inbound is one item for a tunnel's goroutine.
type inbound struct {
	hdr   l2tp.Header
	pkt   []byte // whole datagram (control) or PPP frame
	sid   uint32 // frame, early: our session ID
	frame bool
	// early: a data message (whole datagram) for a session the data plane
	// did not know when it was read; it follows the control messages read
	// before it (the ICCN that creates the session) through t.in.
	early bool
}

// Tunnel is a running tunnel. Its methods may be called from any goroutine.
type Tunnel struct {
	e        *Endpoint
	id       uint32
	core     *tunnel.Tunnel
	settings TunnelSettings
	log      *zap.Logger

	mu        sync.Mutex
	peer      netip.AddrPort
	connected bool // conn is connected to peer
	local     netip.AddrPort

	conn     *net.UDPConn // own socket; nil: send through listener
	listener *net.UDPConn
	dp       dataplane.Tunnel
	// dpFlush is dp when it holds frames until Flush (tunnel goroutine only).
	dpFlush dataplane.Flusher
	// dpSessions: our session IDs the data plane has (set once AddSession
	// returned, cleared when the session goes). A data message for another
	// session goes through the tunnel goroutine in order (see early).
	dpSessions map[uint32]struct{}
	// early: PPP control frames that arrived for a call the core has
	// answered but that is not established yet (the peer sent its first
	// LCP frame right after an ICCN that is still on its way: delayed by
	// its send window, or lost and being retransmitted). They go to the
	// session's driver when it is up, and are dropped with the call.
	// earlyBytes is what they hold. Tunnel goroutine only.
	early      map[uint32][][]byte
	earlyBytes int
	// adding: established calls whose data plane session a worker is
	// creating (dataplane.BlockingAdd); their PPP frames wait in early
	// meanwhile. Tunnel goroutine only.
	adding map[uint32]*pendingAdd
	wasUp  bool
	// refused: answered with StopCCN at once; the role never hears of it.
	refused bool
	// downReported: the role has had TunnelDown.
	downReported bool
	// waitingReply mirrors "we sent SCCRQ and wait for SCCRP" for the tie
	// breaker check on other goroutines.
	waitingReply atomic.Bool
	// loaded: counted in e.load under loadAddr (guarded by e.mu).
	loaded   bool
	loadAddr netip.Addr

	in   mailbox
	cmds chan func(now time.Time)
	done chan struct{}

	// owned by the tunnel goroutine
	sessions map[uint32]*Session
	timers   sessionHeap // sessions with a driver deadline, earliest first
	// slots: sessions whose deadline is a whole second (LCP echoes),
	// grouped by it (timers.go); slotOf finds a deadline's slot.
	slots      slotHeap
	slotOf     map[int64]*timerSlot
	spareSlots []*timerSlot
	dueBuf     []*Session
	outBuf     [][]byte
	evBuf      []tunnel.Event
	// A pass's control messages, copied (the core reuses its buffers) and
	// sent together on the connected socket.
	sendBuf []byte
	sendQ   [][]byte
	writer  *udpbatch.Writer // on conn, once connected
	// stopAcked is closed once our StopCCN is acknowledged (shutdown).
	stopAcked chan struct{}
	// crashing: a panic ended the tunnel (contain.go); finished: finish
	// has begun (it may be re-entered after a panic in it).
	crashing, finished bool
}

// Session is an established session as the roles see it.
type Session struct {
	T      *Tunnel
	ID     uint32
	PeerID uint32
	Info   tunnel.CallInfo
	// DP is the data plane session.
	DP     dataplane.Session
	driver Driver
	// due is the driver's deadline as last read; hidx its place in the
	// tunnel's timer heap plus one (0: not in it), or slot the tunnel's
	// slot it is in (at spos) when due is a whole second (timers.go).
	// Tunnel goroutine only.
	due  time.Time
	hidx int32
	spos int32
	slot *timerSlot
	// failed: a call into the driver panicked; it gets no calls but
	// Close from then on (contain.go). Tunnel goroutine only.
	failed bool
	// gone: taken out of the tunnel's sessions (its ID may name another
	// session from then on); live reads it instead of looking the ID up
	// again. Tunnel goroutine only.
	gone bool
	// Opaque is for the role's own use.
	Opaque any
}

// ID is our tunnel ID.
func (t *Tunnel) ID() uint32 { return t.id }

// Peer is the peer's address.
func (t *Tunnel) Peer() netip.AddrPort {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.peer
}

// acceptsFrom reports whether a datagram from addr may be the peer's: once
// the tunnel's socket is connected, only from the peer's address and port.
func (t *Tunnel) acceptsFrom(addr netip.AddrPort) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.connected {
		return addr == t.peer
	}
	return addr.Addr() == t.peer.Addr()
}

// Local is our address for this tunnel.
func (t *Tunnel) Local() netip.AddrPort {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.local
}

// Settings returns what the role decided for this tunnel.
func (t *Tunnel) Settings() TunnelSettings { return t.settings }

// Core gives read access to the protocol state; only from inside handler
// callbacks (the tunnel goroutine).
func (t *Tunnel) Core() *tunnel.Tunnel { return t.core }

// Done is closed when the tunnel is gone.
func (t *Tunnel) Done() <-chan struct{} { return t.done }

// Logger carries the tunnel's fields.
func (t *Tunnel) Logger() *zap.Logger { return t.log }

func (e *Endpoint) newTunnel(id uint32, settings TunnelSettings, peer, local netip.AddrPort, conn, listener *net.UDPConn) *Tunnel {
	t := &Tunnel{
		e:        e,
		id:       id,
		settings: settings,
		peer:     peer,
		local:    local,
		conn:     conn,
		listener: listener,
		in:       newMailbox(),
		cmds:     make(chan func(time.Time), 16),
		done:     make(chan struct{}),
		sessions: make(map[uint32]*Session),

		dpSessions: make(map[uint32]struct{}),
	}
	t.log = e.log.With(zap.Uint32("tunnel", id), zap.Stringer("peer", peer))
	if settings.Profile != "" {
		t.log = t.log.With(zap.String("profile", settings.Profile))
	}
	return t
}

// deliver queues a control datagram for the tunnel goroutine (never blocks:
// when the queue is full the datagram is dropped and the peer retransmits).
func (t *Tunnel) deliver(from netip.AddrPort, hdr l2tp.Header, pkt []byte) {
	t.in.post(inbound{hdr: hdr, pkt: append([]byte(nil), pkt...)})
}

// deliverWait queues a control datagram read from the tunnel's own socket,
// waiting while the tunnel goroutine is busy: the socket's receive buffer
// then absorbs the burst (backpressure) instead of a message being dropped
// here and retransmitted a second later. Only this tunnel waits. The
// reader holds t.in for the batch it is adding (see mailbox).
func (t *Tunnel) deliverWait(hdr l2tp.Header, pkt []byte) {
	t.in.addWait(inbound{hdr: hdr, pkt: append([]byte(nil), pkt...)}, t.done)
}

// handleData gives a data message to the data plane. One for a session the
// data plane does not have yet (the LAC's first LCP Configure-Request read
// right after its ICCN, before the tunnel goroutine created the session)
// is queued behind that ICCN instead of dropped: dropping it cost the
// subscriber a 3 s PPP restart timer. wait: the caller is the tunnel's own
// reader, which may wait (backpressure); the listener's may not.
func (t *Tunnel) handleData(hdr l2tp.Header, pkt []byte, wait bool) {
	t.mu.Lock()
	dp := t.dp
	_, known := t.dpSessions[hdr.SessionID]
	t.mu.Unlock()
	if known && dp != nil {
		dp.HandleData(pkt)
		return
	}
	if hdr.SessionID == 0 {
		if dp != nil {
			dp.HandleData(pkt) // counted as an error there
		}
		return
	}
	// Only a PPP control frame of plausible size is kept for a session the
	// data plane does not know yet (no network is up for it): a peer
	// sending data for unknown sessions cannot fill the queue with 64 KB
	// copies or push out control messages.
	if len(pkt) > maxEarlyDatagram {
		return
	}
	if _, ok := pppControlFrame(pkt); !ok {
		return
	}
	it := inbound{hdr: hdr, pkt: append([]byte(nil), pkt...), sid: hdr.SessionID, early: true}
	if wait {
		t.in.addWait(it, t.done)
		return
	}
	t.in.post(it)
}

// handleEarly runs on the tunnel goroutine: a data message that was read
// before its session reached the data plane. PPP control frames (LCP,
// authentication, NCPs: protocol 0x8000 and up, RFC 1661 2) go to the
// session's driver, or wait for it when the call is not established yet
// (keepEarly); anything else is dropped (no network is up yet).
func (t *Tunnel) handleEarly(now time.Time, it inbound) {
	frame, ok := pppControlFrame(it.pkt)
	if !ok {
		return // handleData queues only control frames
	}
	s := t.sessions[it.sid]
	if s == nil {
		t.keepEarly(it.sid, frame)
		return
	}
	if !t.live(s) || s.driver == nil {
		return
	}
	t.inSession(now, s, func() { s.driver.Frame(now, frame) })
	if t.live(s) {
		t.schedule(s)
	}
}

// Bounds of the frames kept for calls not established yet (t.early): a
// PPP peer sends one Configure-Request and waits for its restart timer
// before the next, so a few frames per call cover a late ICCN; a peer
// sending more, or for many calls, loses only what is beyond the bounds.
const (
	maxEarlyFrames = 4
	maxEarlyBytes  = 64 << 10
)

// keepEarly keeps a PPP control frame for session sid when the core has
// answered that call (our session ID is known to the peer) and it is not
// established yet, or its data plane session is being created (t.adding);
// anything else is dropped, as before the call exists.
// frame is the item's own copy (handleData), so it may be kept.
func (t *Tunnel) keepEarly(sid uint32, frame []byte) {
	if t.adding[sid] == nil {
		cs := t.core.Session(sid)
		if cs == nil || (cs.State != tunnel.SessionWaitConnect && cs.State != tunnel.SessionWaitReply) {
			return
		}
	}
	q := t.early[sid]
	if len(q) >= maxEarlyFrames || t.earlyBytes+len(frame) > maxEarlyBytes {
		t.log.Debug("PPP frame before the call is established dropped: too many kept", zap.Uint32("session", sid))
		return
	}
	if t.early == nil {
		t.early = make(map[uint32][][]byte)
	}
	t.early[sid] = append(q, frame)
	t.earlyBytes += len(frame)
}

// takeEarly returns and forgets the frames kept for session sid.
func (t *Tunnel) takeEarly(sid uint32) [][]byte {
	q, ok := t.early[sid]
	if !ok {
		return nil
	}
	delete(t.early, sid)
	for _, f := range q {
		t.earlyBytes -= len(f)
	}
	return q
}

// maxEarlyDatagram bounds a data message kept for a session the data plane
// does not know yet: LCP/authentication/NCP frames fit well below it (our
// PPP replies are bounded the same way).
const maxEarlyDatagram = 2048

// pppControlFrame returns the PPP control frame (protocol field first, two
// bytes) carried by an L2TPv2 data message, if it carries one.
func pppControlFrame(pkt []byte) ([]byte, bool) {
	h, payload, err := l2tp.ParseHeader(pkt)
	if err != nil || h.Control {
		return nil, false
	}
	if len(payload) >= 2 && payload[0] == 0xff && payload[1] == 0x03 {
		payload = payload[2:]
	}
	// A compressed (one-byte, odd) protocol field is below 0x100: never a
	// control protocol.
	if len(payload) < 2 || payload[0]&1 == 1 || payload[0]&0x80 == 0 {
		return nil, false
	}
	return payload, true
}

// do queues f for the tunnel goroutine; false if the tunnel is gone. A
// queued f does not run if the tunnel ends first: callers waiting for its
// effect must also watch t.done.
func (t *Tunnel) do(f func(now time.Time)) bool {
	select {
	case t.cmds <- f:
		return true
	case <-t.done:
		return false
	}
}

// Close sends StopCCN and ends the tunnel.
func (t *Tunnel) Close(rc l2tp.ResultCode, reason string) {
	t.do(func(now time.Time) { t.core.Close(now, rc, reason) })
}

// PlaceCall places a call (LAC: incoming call, ICRQ) and returns our
// session ID; Handler.SessionUp follows when it is established.
func (t *Tunnel) PlaceCall(dir tunnel.Direction, info tunnel.CallInfo) (uint32, error) {
	type res struct {
		id  uint32
		err error
	}
	ch := make(chan res, 1)
	closed := fmt.Errorf("placing a call: tunnel %d is closed", t.id)
	if !t.do(func(now time.Time) {
		id, err := t.core.PlaceCall(now, dir, info)
		ch <- res{id, err}
	}) {
		return 0, closed
	}
	// A command queued just before the tunnel ended never runs: wait for
	// the end too.
	select {
	case r := <-ch:
		return r.id, r.err
	case <-t.done:
		select {
		case r := <-ch:
			return r.id, r.err
		default:
			return 0, closed
		}
	}
}

// Hangup ends a session with a CDN.
func (t *Tunnel) Hangup(sid uint32, rc l2tp.ResultCode, reason string) {
	t.do(func(now time.Time) { _ = t.core.Hangup(now, sid, rc, reason) })
}

// HangupFromDriver ends a session from inside its driver (tunnel goroutine).
func (s *Session) HangupFromDriver(now time.Time, rc l2tp.ResultCode, reason string) {
	_ = s.T.core.Hangup(now, s.ID, rc, reason)
}

// Logger carries the session's fields.
// The fields are added lazily: nothing is cloned until a line is logged.
func (s *Session) Logger() *zap.Logger { return s.T.log.WithLazy(zap.Uint32("session", s.ID)) }

// start launches the tunnel goroutines.
func (t *Tunnel) start() {
	t.e.wg.Add(1)
	go t.run()
	if t.conn != nil {
		t.e.wg.Add(1)
		go t.readOwn()
	}
}

// readOwn reads the tunnel's own socket, a batch of datagrams per system
// call (udpbatch: recvmmsg). Everything one read produced for this tunnel
// (control messages, early data messages, and the PPP frames the data
// plane hands back during HandleData) reaches the tunnel goroutine as one
// batch (t.in held), which it handles in one pass.
func (t *Tunnel) readOwn() {
	defer t.e.wg.Done()
	r, err := udpbatch.NewReader(t.conn, t.e.rxBufs)
	if err != nil {
		t.log.Error("cannot read the tunnel's socket; closing the tunnel", zap.Error(err))
		t.Close(l2tp.ResultCode{Result: l2tp.ResultStopGeneralError, Error: l2tp.ErrCodeNoResources, Message: "socket error"}, "cannot read the tunnel's socket")
		return
	}
	defer r.Release()
	// Once this goroutine runs, only it changes peer and connected.
	t.mu.Lock()
	rs := readState{peer: t.peer, connected: t.connected}
	t.mu.Unlock()
	// Each reads on until the socket is closed (finish closes t.done
	// first, so a readOne waiting in addWait lets go before Close waits
	// for this reader).
	_ = r.Each(func(n int, err error) bool {
		if err != nil {
			select {
			case <-t.done:
				return false
			default:
			}
			// ECONNREFUSED from ICMP port unreachable: the peer is gone
			// or not up yet; retransmission handles it.
			return true
		}
		t.in.hold()
		t.readGuarded(func() {
			for i := range n {
				pkt, from := r.Msg(i)
				t.readOne(&rs, pkt, from, r.Truncated(i))
			}
		})
		t.in.release()
		return true
	})
}

// readState is what readOwn knows of the peer.
type readState struct {
	peer      netip.AddrPort
	connected bool
}

// errTruncated: a datagram longer than the tunnel socket's receive buffers.
var errTruncated = errors.New("datagram longer than the receive buffer")

// readOne handles one datagram read from the tunnel's own socket.
func (t *Tunnel) readOne(rs *readState, pkt []byte, from netip.AddrPort, truncated bool) {
	from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
	if from.Addr() != rs.peer.Addr() || (rs.connected && from != rs.peer) {
		if !truncated {
			t.passOn(from, pkt) // queued before connect took effect
		}
		return
	}
	if truncated {
		t.e.logMalformed(from, t.id, fmt.Errorf("tunnel %d: %d bytes or more: %w", t.id, len(pkt), errTruncated))
		return
	}
	if !rs.connected {
		// LAC: the LNS may answer from another port (RFC 2661 8.1).
		if err := connectTo(t.conn, from); err != nil {
			t.log.Warn("connecting tunnel socket", zap.Error(err))
			return
		}
		t.mu.Lock()
		t.peer, t.connected = from, true
		if la, ok := t.conn.LocalAddr().(*net.UDPAddr); ok {
			t.local = la.AddrPort()
		}
		t.mu.Unlock()
		rs.peer, rs.connected = from, true
	}
	hdr, payload, err := l2tp.ParseHeader(pkt)
	if err != nil {
		t.e.logMalformed(from, t.id, err)
		return
	}
	if hdr.TunnelID != t.id && hdr.TunnelID != 0 && t.passOn(from, pkt) {
		return // another tunnel on the same 4-tuple
	}
	if !hdr.Control {
		if hdr.TunnelID != t.id {
			// Not this tunnel's, and no other tunnel on this 4-tuple
			// has that ID: the session ID alone must not route it.
			t.e.logMalformed(from, t.id, fmt.Errorf("data message for tunnel %d session %d on tunnel %d's socket: %w", hdr.TunnelID, hdr.SessionID, t.id, errWrongTunnel))
			return
		}
		t.handleData(hdr, pkt, true)
		return
	}
	if hdr.TunnelID == 0 && t.listener != nil {
		// A retransmitted SCCRQ reaches the connected socket once it
		// exists: the SCCRQ path recognises it (or a new tunnel from the
		// same address and port).
		t.e.handleSCCRQ(t.listener, t.Local(), from, hdr, payload, pkt)
		return
	}
	if hdr.TunnelID != t.id {
		t.e.logMalformed(from, t.id, fmt.Errorf("tunnel %d on tunnel %d's socket: %w", hdr.TunnelID, t.id, errWrongTunnel))
		return
	}
	t.deliverWait(hdr, pkt)
}

// writeOne sends one control message without the batch writer (listener,
// or the LAC's socket before it is connected).
func (t *Tunnel) writeOne(b []byte, peer netip.AddrPort, connected bool) {
	var err error
	switch {
	case t.conn != nil && connected:
		_, err = t.conn.Write(b)
	case t.conn != nil:
		_, err = t.conn.WriteToUDPAddrPort(b, peer)
	default:
		_, err = t.listener.WriteToUDPAddrPort(b, peer)
	}
	if err != nil && !errors.Is(err, net.ErrClosed) {
		t.log.Debug("sending control message", zap.Error(err))
	}
}

// queueOut copies control messages the core produced into the pass's send
// queue (the core's buffers are valid only until the next call into it).
func (t *Tunnel) queueOut(msgs [][]byte) {
	for _, b := range msgs {
		t.sendBuf = append(t.sendBuf, b...)
		t.sendQ = append(t.sendQ, t.sendBuf[len(t.sendBuf)-len(b):])
	}
}

// sendPass sends what the pass produced: its control messages, then the
// PPP frames the drivers gave the data plane. When the data plane sends
// on the tunnel's connected socket (dataplane.BatchSender) both leave in
// one system call, in that order.
func (t *Tunnel) sendPass() {
	if bs, ok := t.dpFlush.(dataplane.BatchSender); ok && len(t.sendQ) > 0 {
		t.mu.Lock()
		connected := t.connected
		t.mu.Unlock()
		if t.conn != nil && connected {
			t.cutSendQ()
			if err := bs.FlushWith(t.sendQ); err != nil && !errors.Is(err, net.ErrClosed) {
				t.log.Debug("sending control messages", zap.Error(err))
			}
			t.sentQueued()
			return
		}
	}
	t.sendQueued()
	if t.dpFlush != nil {
		// The PPP frames the drivers sent in this pass, together.
		t.dpFlush.Flush()
	}
}

// cutSendQ points the queued messages into sendBuf again (it may have
// moved while it grew).
func (t *Tunnel) cutSendQ() {
	off := 0
	for i, b := range t.sendQ {
		t.sendQ[i] = t.sendBuf[off : off+len(b) : off+len(b)]
		off += len(b)
	}
}

// sentQueued empties the send queue once its messages left.
func (t *Tunnel) sentQueued() {
	if t.e.writeHook != nil {
		t.e.writeHook(t, t.sendQ)
	}
	clear(t.sendQ)
	t.sendQ = t.sendQ[:0]
	t.sendBuf = t.sendBuf[:0]
	if cap(t.sendBuf) > 16<<10 {
		t.sendBuf, t.sendQ = nil, nil // a burst is over: keep little per tunnel
	}
}

// sendQueued sends the queued control messages: one sendmmsg on the
// connected socket, one write each otherwise.
func (t *Tunnel) sendQueued() {
	if len(t.sendQ) == 0 {
		return
	}
	t.cutSendQ()
	t.mu.Lock()
	peer, connected := t.peer, t.connected
	t.mu.Unlock()
	if t.conn != nil && connected && t.writer == nil {
		w, err := udpbatch.NewWriter(t.conn)
		if err != nil {
			t.log.Warn("batch writer on the tunnel's socket", zap.Error(err))
		}
		t.writer = w
	}
	if t.conn != nil && connected && t.writer != nil {
		if _, err := t.writer.Write(t.sendQ); err != nil && !errors.Is(err, net.ErrClosed) {
			t.log.Debug("sending control messages", zap.Error(err))
		}
	} else {
		for _, b := range t.sendQ {
			t.writeOne(b, peer, connected)
		}
	}
	t.sentQueued()
}

func (t *Tunnel) run() {
	defer t.e.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	defer func() {
		if r := recover(); r != nil {
			t.crashed(r)
		}
	}()
	now := t.e.cfg.Now()
	t.flush(now)
	for {
		// Arm the timer for the earliest deadline before every wait,
		// the first included: a tunnel whose first message (SCCRQ or
		// SCCRP) is lost must retransmit it without waiting for an event.
		next := t.nextDeadline()
		wait := time.Hour
		if !next.IsZero() {
			wait = max(wakeAt(next, now).Sub(now), 0)
		}
		timer.Reset(wait)
		select {
		case <-t.in.notify:
		case f := <-t.cmds:
			f(t.e.cfg.Now())
		case <-timer.C:
		case <-t.e.ctx.Done():
			t.finish(t.e.cfg.Now(), "daemon stopped")
			return
		}
		now = t.e.cfg.Now()
		// Everything queued now is handled before the one pass below.
		items := t.drain(now)
		if t.e.passHook != nil {
			t.e.passHook(t, items)
		}
		if d := t.core.Deadline(); !d.IsZero() && !now.Before(d) {
			t.core.Tick(now)
		}
		t.tickDrivers(now)
		t.process(now)
		t.sendPass()
		if t.waitingReply.Load() && t.core.State() != tunnel.StateWaitCtlReply {
			t.waitingReply.Store(false)
		}
		if t.stopAcked != nil && (t.core.Acknowledged() || t.core.State() == tunnel.StateDead) {
			close(t.stopAcked)
			t.stopAcked = nil
		}
		if t.core.State() == tunnel.StateDead {
			t.finish(now, "")
			return
		}
	}
}

// drain handles every queued item and command (the cmds that are queued
// now) and reports how many items it handled.
func (t *Tunnel) drain(now time.Time) int {
	n := 0
	for range 4 { // bounded: a busy reader cannot starve timers
		items := t.in.take()
		if len(items) == 0 {
			break
		}
		t.handleItems(now, items)
		n += len(items)
	}
	for range len(t.cmds) {
		f := <-t.cmds
		f(now)
	}
	return n
}

// handleItems handles a batch in order. The core's events after each
// control message are handled before the next item, as if it had had a
// pass of its own: the ICCN read just before its session's first LCP frame
// creates the session that frame goes to, and a CDN ends its session
// before frames read after it.
func (t *Tunnel) handleItems(now time.Time, items []inbound) {
	for i := range items {
		it := &items[i]
		switch {
		case it.early:
			t.handleEarly(now, *it)
		case it.frame:
			if s := t.sessions[it.sid]; t.live(s) && s.driver != nil {
				t.inSession(now, s, func() { s.driver.Frame(now, it.pkt) })
				if t.live(s) {
					t.schedule(s)
				}
			} else if t.adding[it.sid] != nil {
				// The data plane session exists and delivers, but the
				// tunnel has not had its worker's answer yet.
				t.keepEarly(it.sid, it.pkt)
			}
		default:
			_, payload, err := l2tp.ParseHeader(it.pkt)
			if err == nil {
				t.core.Receive(now, it.hdr, payload)
				t.process(now)
			}
		}
	}
}

// flush sends what the core produced and handles its events; the control
// messages of the pass go out together (see process).
func (t *Tunnel) flush(now time.Time) {
	t.process(now)
	t.sendQueued()
}

// process queues what the core produced and handles its events. Drivers
// may produce more core output while events are handled, so it loops.
// Queued control messages wait for the end of the pass (flush), unless the
// data plane sends PPP frames at once (no Flusher): then each round's
// messages go before the events whose handling may send frames (the ICCN
// before the LAC's first LCP frame).
func (t *Tunnel) process(now time.Time) {
	for range 8 {
		t.outBuf = t.core.Output(now, t.outBuf[:0])
		t.queueOut(t.outBuf)
		clear(t.outBuf)
		t.evBuf = t.core.Events(t.evBuf[:0])
		if len(t.evBuf) == 0 {
			break
		}
		if t.dpFlush == nil {
			t.sendQueued()
		}
		for _, ev := range t.evBuf {
			t.handleEvent(now, ev)
		}
	}
}

func (t *Tunnel) handleEvent(now time.Time, ev tunnel.Event) {
	h := t.handler()
	switch ev := ev.(type) {
	case tunnel.TunnelUp:
		t.log.Info("tunnel established", zap.String("peer_host", ev.PeerHostName), zap.Uint32("peer_tunnel", ev.PeerID), zap.String("peer_vendor", ev.PeerVendor))
		if t.e.cfg.Plane != nil {
			t.mu.Lock()
			peer, local := t.peer, t.local
			t.mu.Unlock()
			dp, err := t.e.cfg.Plane.AddTunnel(dataplane.TunnelConfig{
				Version: 2, LocalID: t.id, PeerID: ev.PeerID, Encap: dataplane.EncapUDP,
				Local: local, Peer: peer, Conn: t.conn,
			})
			if err != nil {
				t.log.Error("data plane refused the tunnel; closing it", zap.String("dataplane", t.e.cfg.Plane.Name()), zap.Error(err))
				t.core.Close(now, l2tp.ResultCode{Result: l2tp.ResultStopGeneralError, Error: l2tp.ErrCodeNoResources, Message: "data plane error"}, "data plane error")
				return
			}
			t.mu.Lock()
			t.dp = dp
			t.mu.Unlock()
			t.dpFlush, _ = dp.(dataplane.Flusher)
		}
		t.wasUp = true
		t.e.mu.Lock()
		t.e.releaseLoad(t)
		t.e.mu.Unlock()
		h.TunnelUp(t)
	case tunnel.TunnelDown:
		lvl := t.log.Info
		if !ev.ByPeer && ev.Result.Result != l2tp.ResultStopGeneral && ev.Result.Result != l2tp.ResultStopShuttingDown {
			lvl = t.log.Warn
		}
		lvl("tunnel closed", zap.String("reason", ev.Reason), zap.Bool("by_peer", ev.ByPeer), zap.Uint16("result", ev.Result.Result), zap.Uint16("error", ev.Result.Error))
		t.closeDataPlane()
		if !t.refused && !t.downReported {
			t.downReported = true
			h.TunnelDown(t, ev)
		}
	case tunnel.SessionUp:
		t.sessionUp(now, ev)
	case tunnel.SessionDown:
		s := t.dropSession(ev.ID)
		t.forgetDP(ev.ID)
		if pa := t.adding[ev.ID]; pa != nil {
			// Its data plane session goes when the worker is done
			// (addDone), or is never made; until then no new call gets
			// its ID.
			delete(t.adding, ev.ID)
			pa.ended.Store(true)
			t.core.ReserveSessionID(ev.ID)
		}
		t.takeEarly(ev.ID) // frames kept for a call that never came up
		// Fields inline, not t.log.With: With clones the encoder (and a
		// buffer) per call, which showed in profiles at high setup rates.
		// Check first: the fields of a call to Info are on the heap even
		// when the level is off (two per session at log_level "warn").
		if ce := t.log.Check(zap.InfoLevel, "session closed"); ce != nil {
			ce.Write(zap.Uint32("session", ev.ID), zap.Uint32("peer_session", ev.PeerID), zap.String("reason", ev.Reason), zap.Bool("by_peer", ev.ByPeer), zap.Uint16("result", ev.Result.Result), zap.Uint16("error", ev.Result.Error))
		}
		if s == nil {
			// Never established (refused, or failed during setup): the
			// role still hears of it, to release what it reserved. The
			// core may have counted it up (the data plane refused it in
			// sessionUp), but the role never had SessionUp.
			ev.WasUp = false
			t.handler().SessionDown(&Session{T: t, ID: ev.ID, PeerID: ev.PeerID}, ev)
		} else {
			t.endSession(now, s, ev)
		}
	case tunnel.CallAbandoned:
		// A call held for a max_starting slot that never got one (the
		// role never admitted it, so no SessionDown).
		t.log.Info("held call ended before it was admitted", zap.Uint32("session", ev.ID), zap.Uint32("peer_session", ev.PeerID), zap.String("reason", ev.Reason))
		if a, ok := t.handler().(CallAbandonedHandler); ok {
			a.CallAbandoned(t, ev)
		}
	case tunnel.Malformed:
		t.e.logMalformed(t.Peer(), t.id, ev.Err)
	case tunnel.CallErrors:
		t.log.Info("WAN error notify", zap.Uint32("session", ev.ID), zap.Any("errors", ev.Errors))
	case tunnel.LinkInfo:
		t.log.Debug("set link info", zap.Uint32("session", ev.ID), zap.Any("accm", ev.ACCM))
	}
}

func (t *Tunnel) sessionUp(now time.Time, ev tunnel.SessionUp) {
	t.mu.Lock()
	dpt := t.dp
	t.mu.Unlock()
	if dpt == nil {
		t.sessionReady(now, ev, nil)
		return
	}
	cs := t.core.Session(ev.ID)
	seq := t.settings.DataSeq || ev.Info.SequencingRequired
	cfg := dataplane.SessionConfig{
		LocalID: ev.ID, PeerID: ev.PeerID, PWType: dataplane.PWTypePPP,
		LNSMode: cs != nil && !cs.WeAreLAC, SendSeq: seq, RecvSeq: ev.Info.SequencingRequired,
		ReorderTimeout: t.settings.ReorderTimeout,
	}
	sid := ev.ID
	rx := func(frame []byte) {
		// Called during HandleData on the tunnel's reader (the frame
		// joins the batch it holds) or on the data plane's goroutine.
		t.in.post(inbound{pkt: append([]byte(nil), frame...), sid: sid, frame: true})
	}
	if ba, ok := dpt.(dataplane.BlockingAdd); ok && ba.AddBlocks() && t.startAdd(ev, dpt, cfg, rx) {
		return
	}
	dps, err := dpt.AddSession(cfg, rx)
	if err != nil {
		t.dataPlaneRefused(now, ev, err)
		return
	}
	t.sessionReady(now, ev, dps)
}

// dataPlaneRefused hangs up a call the data plane could not create.
func (t *Tunnel) dataPlaneRefused(now time.Time, ev tunnel.SessionUp, err error) {
	t.log.Error("data plane refused the session; hanging up", zap.Uint32("session", ev.ID), zap.Uint32("peer_session", ev.PeerID), zap.Error(err))
	_ = t.core.Hangup(now, ev.ID, l2tp.ResultCode{Result: l2tp.ResultCDNTempResources, Error: l2tp.ErrCodeNoResources, Message: "data plane error"}, "data plane error: "+err.Error())
}

// pendingAdd is a data plane AddSession queued for or running on a
// worker for an established call (t.adding).
type pendingAdd struct {
	ev tunnel.SessionUp
	// ended: the call ended before its session was made (set on the
	// tunnel goroutine, read by the worker): a worker that has not
	// started the add skips it.
	ended atomic.Bool
	dps   dataplane.Session // set by the worker before it posts
	err   error
}

// addJob is one pendingAdd on the endpoint's queue.
type addJob struct {
	t   *Tunnel
	pa  *pendingAdd
	dpt dataplane.Tunnel
	cfg dataplane.SessionConfig
	rx  dataplane.FrameHandler
}

// startAdd queues the call's data plane session for a worker (addWorkers
// run at once across the endpoint): the tunnel goroutine goes on with its
// other calls, and this one's PPP frames wait in t.early until addDone.
// The role hears of the session (SessionUp) only then. It reports false,
// queueing nothing, when addQueueLen adds are already waiting.
func (t *Tunnel) startAdd(ev tunnel.SessionUp, dpt dataplane.Tunnel, cfg dataplane.SessionConfig, rx dataplane.FrameHandler) bool {
	e := t.e
	e.addOnce.Do(e.startAddWorkers)
	pa := &pendingAdd{ev: ev}
	select {
	case e.addQ <- addJob{t: t, pa: pa, dpt: dpt, cfg: cfg, rx: rx}:
	default:
		return false
	}
	if t.adding == nil {
		t.adding = make(map[uint32]*pendingAdd)
	}
	t.adding[ev.ID] = pa
	return true
}

// startAddWorkers starts the endpoint's addWorkers; they end with it
// (Shutdown waits for them). A job left on the queue then belongs to a
// tunnel that has ended too: its finish told the role of the call.
func (e *Endpoint) startAddWorkers() {
	for range addWorkers {
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			for {
				select {
				case j := <-e.addQ:
					j.run()
				case <-e.ctx.Done():
					return
				}
			}
		}()
	}
}

// run makes the job's data plane session, unless its call or tunnel has
// ended, and posts the outcome to the tunnel goroutine (addDone).
func (j addJob) run() {
	t, pa := j.t, j.pa
	select {
	case <-t.done:
		return // finish told the role
	default:
	}
	if !pa.ended.Load() {
		pa.dps, pa.err = t.addGuarded(j.dpt, j.cfg, j.rx)
	}
	post := func(now time.Time) { t.addDone(now, pa) }
	select {
	case t.cmds <- post:
		return
	case <-t.done:
	default:
		// The tunnel goroutine is behind with its commands: post from a
		// goroutine of its own, so that this worker goes on with the
		// other tunnels' adds.
		t.e.wg.Add(1)
		go func() {
			defer t.e.wg.Done()
			if !t.do(post) {
				pa.closeOrphan()
			}
		}()
		return
	}
	pa.closeOrphan()
}

// closeOrphan closes the session a worker made for a tunnel that ended
// meanwhile (its data plane tunnel closed its sessions, or is closing
// them): to make sure of this one.
func (pa *pendingAdd) closeOrphan() {
	if pa.dps != nil {
		pa.dps.Close()
	}
}

// addGuarded is the worker's AddSession: a panic in it (a bug in the data
// path) is that call's error, not the daemon's end.
func (t *Tunnel) addGuarded(dpt dataplane.Tunnel, cfg dataplane.SessionConfig, rx dataplane.FrameHandler) (s dataplane.Session, err error) {
	defer func() {
		if r := recover(); r != nil {
			fault.Recovered(t.log, "internal error creating a session in the data path: hanging it up; its tunnel and the other sessions go on", r,
				zap.Uint32("session", cfg.LocalID))
			s, err = nil, fmt.Errorf("internal error in the data path: %v", r)
		}
	}()
	return dpt.AddSession(cfg, rx)
}

// addDone is a worker's AddSession outcome, on the tunnel goroutine.
func (t *Tunnel) addDone(now time.Time, pa *pendingAdd) {
	id := pa.ev.ID
	if t.adding[id] != pa {
		// The call ended while its session was queued or being created
		// (the role has had SessionDown): the session goes, and a new
		// call may have its ID.
		t.core.ReleaseSessionID(id)
		if pa.dps != nil {
			if err := pa.dps.Close(); err != nil {
				t.log.Warn("removing session from the data plane", zap.Uint32("session", id), zap.Error(err))
			}
		}
		return
	}
	delete(t.adding, id)
	if pa.err != nil {
		t.takeEarly(id)
		t.dataPlaneRefused(now, pa.ev, pa.err)
		return
	}
	t.sessionReady(now, pa.ev, pa.dps)
}

// sessionReady makes an established call a session with its data plane
// session (nil without a data plane) and tells the role.
func (t *Tunnel) sessionReady(now time.Time, ev tunnel.SessionUp, dps dataplane.Session) {
	s := &Session{T: t, ID: ev.ID, PeerID: ev.PeerID, Info: ev.Info}
	if dps != nil {
		s.DP = dps
		t.mu.Lock()
		t.dpSessions[ev.ID] = struct{}{}
		t.mu.Unlock()
	}
	t.dropSession(ev.ID) // none expected: the core reports a call down before its ID is used again
	t.sessions[ev.ID] = s
	if ce := t.log.Check(zap.InfoLevel, "session established"); ce != nil { // see "session closed"
		ce.Write(zap.Uint32("session", ev.ID), zap.Uint32("peer_session", ev.PeerID), zap.String("calling", ev.Info.CallingNumber), zap.String("called", ev.Info.CalledNumber))
	}
	t.inSession(now, s, func() { s.driver = t.handler().SessionUp(s) })
	// The frames that arrived before the ICCN, oldest first, before any
	// read after it.
	for _, f := range t.takeEarly(ev.ID) {
		if !t.live(s) || s.driver == nil {
			break
		}
		t.inSession(now, s, func() { s.driver.Frame(now, f) })
	}
	if t.live(s) {
		t.schedule(s)
	}
}

// forgetDP removes a session from dpSessions (before its data plane
// session is closed).
func (t *Tunnel) forgetDP(id uint32) {
	t.mu.Lock()
	delete(t.dpSessions, id)
	t.mu.Unlock()
}

func (t *Tunnel) closeDataPlane() {
	t.mu.Lock()
	dp := t.dp
	t.dp = nil
	t.mu.Unlock()
	t.dpFlush = nil
	if dp != nil {
		if err := dp.Close(); err != nil {
			t.log.Warn("removing tunnel from the data plane", zap.Error(err))
		}
	}
}

// dropSession takes the session with id out of the tunnel's sessions and
// its timers (heap or slot), and marks it gone so that live is false for it from
// then on; it returns the session, nil if there was none.
func (t *Tunnel) dropSession(id uint32) *Session {
	s := t.sessions[id]
	if s == nil {
		return nil
	}
	delete(t.sessions, id)
	s.gone = true
	t.unschedule(s)
	return s
}

// finish releases everything once the core is dead or the endpoint stops.
// After a panic (crashed) it may run a second time: each step is done
// once, and each may fail without keeping the next from running.
func (t *Tunnel) finish(now time.Time, reason string) {
	t.finished = true
	if reason != "" {
		for id := range t.sessions {
			s := t.dropSession(id)
			t.endSession(now, s, tunnel.SessionDown{ID: id, PeerID: s.PeerID, Reason: reason, WasUp: true})
		}
	}
	// Calls whose data plane session a worker is still creating: the role
	// had no SessionUp for them but admitted them. The data plane tunnel,
	// closed below, closes what the workers add.
	for id, pa := range t.adding {
		delete(t.adding, id)
		r := reason
		if r == "" {
			r = "tunnel gone"
		}
		t.guarded("reporting a session down", func() {
			t.handler().SessionDown(&Session{T: t, ID: id, PeerID: pa.ev.PeerID}, tunnel.SessionDown{ID: id, PeerID: pa.ev.PeerID, Reason: r})
		})
	}
	if !t.refused && !t.downReported {
		t.downReported = true
		if reason == "" {
			reason = "tunnel gone"
		}
		t.guarded("reporting the tunnel down", func() { t.handler().TunnelDown(t, tunnel.TunnelDown{Reason: reason}) })
	}
	t.guarded("removing the tunnel from the data plane", t.closeDataPlane)
	e := t.e
	e.mu.Lock()
	e.releaseLoad(t)
	if e.tunnels[t.id] == t {
		delete(e.tunnels, t.id)
	}
	for k, v := range e.byPeer {
		if v == t {
			delete(e.byPeer, k)
		}
	}
	e.mu.Unlock()
	if t.stopAcked != nil {
		close(t.stopAcked)
		t.stopAcked = nil
	}
	select {
	case <-t.done:
	default:
		close(t.done)
	}
	if t.conn != nil {
		t.conn.Close()
	}
}

// endSession releases an established session that is gone (taken out of
// t.sessions already): its driver's Close, its data plane session, the
// role's SessionDown. A panic in one step ends neither the others nor the
// tunnel (contain.go).
func (t *Tunnel) endSession(now time.Time, s *Session, ev tunnel.SessionDown) {
	t.forgetDP(s.ID)
	if s.driver != nil {
		t.inSession(now, s, func() { s.driver.Close(now, ev.Reason) })
	}
	if s.DP != nil {
		t.inSession(now, s, func() {
			if err := s.DP.Close(); err != nil {
				t.log.Warn("removing session from the data plane", zap.Uint32("session", s.ID), zap.Error(err))
			}
		})
	}
	t.inSession(now, s, func() { t.handler().SessionDown(s, ev) })
}

func (t *Tunnel) handler() Handler {
	if t.settings.Handler != nil {
		return t.settings.Handler
	}
	return t.e.cfg.Handler
}

// Post runs f on the session's tunnel goroutine (for results of work done
// elsewhere, such as an authentication answer), if the session still
// exists then. It may block until the tunnel goroutine takes it; it returns
// false if the tunnel is gone.
func (s *Session) Post(f func(now time.Time)) bool {
	return s.T.do(s.posted(f))
}

// TryPost is Post without blocking: false if the tunnel's command queue
// is full or the tunnel is gone (a caller that must not block, such as a
// RADIUS reader delivering an answer, then posts from a goroutine of its
// own).
func (s *Session) TryPost(f func(now time.Time)) bool {
	t := s.T
	select {
	case t.cmds <- s.posted(f):
		return true
	default:
		return false
	}
}

// CallAbandonedHandler is an optional Handler method: told, on the
// tunnel's goroutine, of a held call that ended before it was admitted.
type CallAbandonedHandler interface {
	CallAbandoned(t *Tunnel, ev tunnel.CallAbandoned)
}

// SessionEstablishedHandler is an optional Handler method: told, on the
// tunnel's goroutine, that a session's payload is established (for PPP:
// its network layer came up), which SessionUp (the L2TP session is up)
// is not yet. The LNS counts a setup in flight (max_starting) until then
// or until SessionDown.
type SessionEstablishedHandler interface {
	SessionEstablished(s *Session)
}

// Established tells the role that the session's payload is established
// (SessionEstablishedHandler). The driver calls it on the tunnel
// goroutine (inside Frame, Tick or a posted function), once; the role
// ignores calls after the first and after SessionDown.
func (s *Session) Established() {
	if h, ok := s.T.handler().(SessionEstablishedHandler); ok {
		h.SessionEstablished(s)
	}
}

// posted wraps f to run only if s is still the session with its ID.
func (s *Session) posted(f func(now time.Time)) func(now time.Time) {
	t := s.T
	return func(now time.Time) {
		if t.live(s) {
			t.inSession(now, s, func() { f(now) })
			if t.live(s) {
				t.schedule(s)
			}
		}
	}
}

// Kick asks the tunnel goroutine to recompute its deadlines (call from a
// driver when something changed outside Frame/Tick).
func (s *Session) Kick() { s.Post(func(time.Time) {}) }
