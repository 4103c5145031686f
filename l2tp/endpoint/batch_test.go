package endpoint

import (
	"bytes"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/l2tpd/l2tpd/dataplane"
	"github.com/l2tpd/l2tpd/dataplane/fake"
	"github.com/l2tpd/l2tpd/l2tp"
	"github.com/l2tpd/l2tpd/l2tp/tunnel"
)

// flushTunnel is a data plane tunnel that behaves like the userspace one
// where it matters here: HandleData gives a PPP control frame to the
// session's FrameHandler on the caller's goroutine (the tunnel's reader),
// and SendFrame holds frames until Flush (dataplane.Flusher).
type flushTunnel struct {
	// onData, if set, runs after each HandleData (on the reader).
	onData func()
	// onFlush, if set, is told how many frames each Flush carried.
	onFlush chan int
	mu      sync.Mutex
	rx      map[uint32]dataplane.FrameHandler
	held    [][]byte
	flushes [][][]byte // the frames of each Flush
}

func (p *flushTunnel) AddSession(cfg dataplane.SessionConfig, rx dataplane.FrameHandler) (dataplane.Session, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.rx == nil {
		p.rx = make(map[uint32]dataplane.FrameHandler)
	}
	p.rx[cfg.LocalID] = rx
	return &flushSession{p}, nil
}

func (p *flushTunnel) HandleData(pkt []byte) {
	h, _, err := l2tp.ParseHeader(pkt)
	if err != nil {
		return
	}
	frame, ok := pppControlFrame(pkt)
	p.mu.Lock()
	rx := p.rx[h.SessionID]
	p.mu.Unlock()
	if ok && rx != nil {
		rx(frame)
	}
	if p.onData != nil {
		p.onData()
	}
}

func (p *flushTunnel) Flush() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.flushes = append(p.flushes, p.held)
	if p.onFlush != nil {
		select {
		case p.onFlush <- len(p.held):
		default:
		}
	}
	p.held = nil
}

func (p *flushTunnel) Close() error { return nil }

func (p *flushTunnel) flushed() [][][]byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([][][]byte(nil), p.flushes...)
}

type flushSession struct{ p *flushTunnel }

func (s *flushSession) SendFrame(f []byte) error {
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	s.p.held = append(s.p.held, append([]byte(nil), f...))
	return nil
}
func (s *flushSession) Up(dataplane.NetConfig) error    { return nil }
func (s *flushSession) Stats() (dataplane.Stats, error) { return dataplane.Stats{}, nil }
func (s *flushSession) Close() error                    { return nil }

// echoDriver records the frames it is given and answers each with a frame
// of its own through the data plane session.
type echoDriver struct {
	s      *Session
	mu     sync.Mutex
	frames [][]byte
}

func (d *echoDriver) Frame(_ time.Time, f []byte) {
	d.mu.Lock()
	d.frames = append(d.frames, append([]byte(nil), f...))
	d.mu.Unlock()
	_ = d.s.DP.SendFrame(append([]byte{0xc0, 0x21, 0x09}, f[3:]...))
}
func (d *echoDriver) Tick(time.Time)          {}
func (d *echoDriver) Deadline() time.Time     { return time.Time{} }
func (d *echoDriver) Close(time.Time, string) {}

// driverHandler gives every session an echoDriver.
type driverHandler struct {
	*recorder
	mu sync.Mutex
	d  map[uint32]*echoDriver
}

func (h *driverHandler) SessionUp(s *Session) Driver {
	h.mu.Lock()
	defer h.mu.Unlock()
	d := &echoDriver{s: s}
	h.d[s.ID] = d
	return d
}

// fakeEndpoint is an endpoint on a fake data plane, with no listener,
// shut down when the test ends.
func fakeEndpoint(t *testing.T) *Endpoint {
	t.Helper()
	e, err := New(Config{Plane: fake.New()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Shutdown(t.Context()) })
	return e
}

// responderCore is the settings (tunnel 7, handler h) and core of an LNS
// tunnel that answered an SCCRQ and waits for the SCCCN.
func responderCore(t *testing.T, e *Endpoint, h Handler) (TunnelSettings, *tunnel.Tunnel) {
	t.Helper()
	hdr, payload, err := l2tp.ParseHeader(sccrq(9))
	if err != nil {
		t.Fatal(err)
	}
	m, err := l2tp.ParseMessage(payload, nil)
	if err != nil {
		t.Fatal(err)
	}
	settings := TunnelSettings{Tunnel: tunnel.Config{HostName: "lns", LocalID: 7, Rand: e.rand}, Handler: h}
	core, err := tunnel.NewResponder(settings.Tunnel, e.cfg.Now(), hdr, m)
	if err != nil {
		t.Fatal(err)
	}
	return settings, core
}

// batchTunnel is an LNS tunnel (responder, waiting for SCCCN) with its own
// socket connected to peer, session 3 known to a flushTunnel data plane,
// and its goroutines not started yet.
func batchTunnel(t *testing.T, e *Endpoint, peer *net.UDPConn) (*Tunnel, *flushTunnel, *echoDriver) {
	t.Helper()
	peerAddr := peer.LocalAddr().(*net.UDPAddr).AddrPort()
	conn, err := dialTunnel(netip.MustParseAddrPort("127.0.0.1:0"), peerAddr)
	if err != nil {
		t.Fatal(err)
	}
	local := conn.LocalAddr().(*net.UDPAddr).AddrPort()
	h := &driverHandler{recorder: newRecorder(), d: map[uint32]*echoDriver{}}
	settings, core := responderCore(t, e, h)
	tun := e.newTunnel(7, settings, peerAddr, local, conn, nil)
	tun.connected = true
	tun.core = core
	dp := &flushTunnel{}
	tun.dp, tun.dpFlush = dp, dp
	tun.sessionUp(e.cfg.Now(), tunnel.SessionUp{ID: 3, PeerID: 5})
	d := h.d[3]
	if d == nil {
		t.Fatal("no driver for session 3")
	}
	return tun, dp, d
}

// zlb is a control message without AVPs for our tunnel 7.
func zlb(ns, nr uint16) []byte {
	return l2tp.AppendHeader(nil, l2tp.Header{Control: true, HasLength: true, HasSeq: true, Version: 2, TunnelID: 7, Ns: ns, Nr: nr}, 0)
}

// Every datagram one read gets from the tunnel's socket (control
// messages, and the PPP frames the data plane hands back during
// HandleData) reaches the tunnel goroutine together: one pass handles them
// all, the drivers' answers leave in that pass's one Flush, and a datagram
// longer than the receive buffers is dropped and logged once.
func TestReadBatchOnePass(t *testing.T) {
	obs, logs := observer.New(zap.WarnLevel)
	e, err := New(Config{Plane: fake.New(), Logger: zap.New(obs)})
	if err != nil {
		t.Fatal(err)
	}
	type pass struct {
		items int
		flush int // Flushes before the pass
	}
	passes := make(chan pass, 100)
	var tun *Tunnel
	var dp *flushTunnel
	handled := make(chan struct{}) // closed at the first pass with items
	var once sync.Once
	e.passHook = func(pt *Tunnel, items int) {
		if pt == tun {
			passes <- pass{items, len(dp.flushed())}
			if items > 0 {
				once.Do(func() { close(handled) })
			}
		}
	}
	defer e.Shutdown(t.Context())
	peer := udpFrom(t, "127.0.0.1:0")
	var d *echoDriver
	tun, dp, d = batchTunnel(t, e, peer)
	to := tun.Local()
	// After the read's first frame, give the tunnel goroutine the chance
	// to handle what is queued so far: it must not take a partial batch
	// (bounded: with the batch held, no such pass ever comes).
	var first sync.Once
	dp.onData = func() {
		first.Do(func() {
			select {
			case <-handled:
			case <-time.After(100 * time.Millisecond):
			}
		})
	}

	// Queued in the socket before the reader starts: its first read gets
	// them all.
	const frames = 6
	var want [][]byte
	var sent [][]byte
	for i := range frames {
		f := []byte{0xc0, 0x21, 0x01, byte(i), 0x00, 0x04}
		want = append(want, f)
		sent = append(sent, dataMsg(3, f...))
		if i%2 == 0 {
			sent = append(sent, zlb(0, 1))
		}
	}
	sent = append(sent, append(dataMsg(3, 0xc0, 0x21, 0x01, 0xee), make([]byte, rxBufSize)...))
	sendAll(t, peer, to, sent)
	tun.start()

	got := 0
	for got < len(sent)-1 {
		select {
		case p := <-passes:
			if p.items == 0 {
				continue // a timer or the first pass
			}
			if p.items != len(sent)-1 {
				t.Fatalf("a pass handled %d items, want all %d of the read at once", p.items, len(sent)-1)
			}
			got += p.items
		case <-time.After(20 * time.Second):
			t.Fatalf("timed out: %d of %d items reached the tunnel goroutine", got, len(sent)-1)
		}
	}
	d.mu.Lock()
	gotFrames := d.frames
	d.mu.Unlock()
	if len(gotFrames) != frames {
		t.Fatalf("driver got %d frames, want %d", len(gotFrames), frames)
	}
	for i := range want {
		if !bytes.Equal(gotFrames[i], want[i]) {
			t.Fatalf("frame %d: %x, want %x (order kept)", i, gotFrames[i], want[i])
		}
	}
	// The answers of that pass leave in its Flush: wait for the next pass
	// (a Kick) to see it.
	tun.do(func(time.Time) {})
	var fl [][][]byte
	select {
	case <-passes:
		fl = dp.flushed()
	case <-time.After(20 * time.Second):
		t.Fatal("no pass after the kick")
	}
	n := 0
	for _, f := range fl {
		if len(f) != 0 && len(f) != frames {
			t.Errorf("a Flush carried %d frames, want the %d of the pass", len(f), frames)
		}
		if len(f) == frames {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d Flushes carried the pass's frames, want 1 (flushes %d)", n, len(fl))
	}
	if es := filterErr(malformedEntries(logs), errTruncated.Error()); len(es) != 1 {
		t.Errorf("truncated datagram logged %d times, want once", len(es))
	}
}

// Flush is called once at the end of every pass, after the frames of the
// pass were given.
func TestFlushOncePerPass(t *testing.T) {
	e, err := New(Config{Plane: fake.New()})
	if err != nil {
		t.Fatal(err)
	}
	var tun *Tunnel
	var dp *flushTunnel
	var mu sync.Mutex
	var passes []int // Flushes seen at the start of each pass
	e.passHook = func(pt *Tunnel, items int) {
		if pt == tun {
			mu.Lock()
			passes = append(passes, len(dp.flushed()))
			mu.Unlock()
		}
	}
	peer := udpFrom(t, "127.0.0.1:0")
	tun, dp, _ = batchTunnel(t, e, peer)
	dp.onFlush = make(chan int, 100)
	tun.start()
	for i := range 5 {
		// Each command is a pass of its own (the next one is queued once
		// this pass's frames were flushed) that sends i+1 frames.
		tun.do(func(time.Time) {
			for range i + 1 {
				_ = tun.sessions[3].DP.SendFrame([]byte{0xc0, 0x21, 0x09, byte(i)})
			}
		})
		for n := range dp.onFlush {
			if n > 0 {
				break
			}
		}
	}
	tun.do(func(time.Time) {}) // one more pass: the fifth Flush is done
	e.Shutdown(t.Context())
	fl := dp.flushed()
	mu.Lock()
	defer mu.Unlock()
	// Every pass but the last has its Flush before the next pass starts.
	for i := 1; i < len(passes); i++ {
		if passes[i] != passes[i-1]+1 {
			t.Fatalf("pass %d started after %d Flushes, the one before after %d: want one Flush per pass", i, passes[i], passes[i-1])
		}
	}
	var sizes []int
	for _, f := range fl {
		if len(f) > 0 {
			sizes = append(sizes, len(f))
		}
	}
	if len(sizes) != 5 {
		t.Fatalf("Flushes with frames %v, want 5 (1..5 frames)", sizes)
	}
	for i, n := range sizes {
		if n != i+1 {
			t.Fatalf("Flush %d carried %d frames, want %d (those of its pass)", i, n, i+1)
		}
	}
}

// The control messages of a pass leave on the connected socket together
// (one batch write), in order, with their bytes as they were when queued
// although the core reuses its buffers.
func TestSendQueuedBatch(t *testing.T) {
	e := fakeEndpoint(t)
	var writes [][][]byte
	e.writeHook = func(_ *Tunnel, msgs [][]byte) {
		var cp [][]byte
		for _, m := range msgs {
			cp = append(cp, append([]byte(nil), m...))
		}
		writes = append(writes, cp)
	}
	peer := udpFrom(t, "127.0.0.1:0")
	tun, _, _ := batchTunnel(t, e, peer)
	defer tun.conn.Close()

	buf := []byte("first message")
	tun.queueOut([][]byte{buf, []byte("second"), []byte("third, a longer one")})
	copy(buf, "XXXXX") // the core reuses its buffer before the send
	tun.queueOut([][]byte{[]byte("fourth")})
	tun.sendQueued()
	want := []string{"first message", "second", "third, a longer one", "fourth"}
	if len(writes) != 1 || len(writes[0]) != len(want) {
		t.Fatalf("writes %q, want one of %d messages", writes, len(want))
	}
	rb := make([]byte, 2048)
	for i, w := range want {
		if err := peer.SetReadDeadline(time.Now().Add(20 * time.Second)); err != nil {
			t.Fatal(err)
		}
		n, _, err := peer.ReadFromUDPAddrPort(rb)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if string(rb[:n]) != w {
			t.Fatalf("message %d: %q, want %q", i, rb[:n], w)
		}
	}
	tun.sendQueued() // nothing queued: nothing written
	if len(writes) != 1 {
		t.Fatalf("%d writes, want 1", len(writes))
	}
}

// An ICCN and the LAC's first LCP frame read in one batch: the frame
// reaches the session the ICCN created (the core's events after each
// control message are handled before the next item), as it did when each
// datagram had a pass of its own.
func TestEarlyFrameAfterICCNInOneBatch(t *testing.T) {
	h := newCallHarness(t)
	sid := h.answerICRQs(5)[0]

	lcp := []byte{0xc0, 0x21, 0x01, 0x01, 0x00, 0x04}
	h.tun.handleItems(h.now, []inbound{h.iccn(sid, 2), h.early(sid, lcp...)})
	s := h.tun.sessions[uint32(sid)]
	if s == nil {
		t.Fatalf("session %d not established by the ICCN", sid)
	}
	d := s.driver.(*echoDriver)
	if len(d.frames) != 1 || !bytes.Equal(d.frames[0], lcp) {
		t.Fatalf("driver got %x, want the LCP frame %x", d.frames, lcp)
	}
}

// callHarness is an LNS tunnel (batchTunnel, our tunnel 7) past SCCCN, the
// control messages it sends recorded, with the LAC's side built by hand.
type callHarness struct {
	t    *testing.T
	tun  *Tunnel
	now  time.Time
	sent [][]byte
	ns   uint16 // the LAC's next Ns
}

func newCallHarness(t *testing.T) *callHarness {
	t.Helper()
	e := fakeEndpoint(t)
	h := &callHarness{t: t}
	e.writeHook = func(_ *Tunnel, msgs [][]byte) {
		for _, m := range msgs {
			h.sent = append(h.sent, append([]byte(nil), m...))
		}
	}
	peer := udpFrom(t, "127.0.0.1:0")
	h.tun, _, _ = batchTunnel(t, e, peer)
	t.Cleanup(func() { h.tun.conn.Close() })
	h.now = e.cfg.Now()
	h.tun.flush(h.now) // our SCCRP
	h.tun.handleItems(h.now, []inbound{h.ctl(ctlPacket(7, 0, 1, 1, msgTypeAVP(l2tp.MsgSCCCN)))})
	h.ns = 2
	return h
}

// ctl is a control datagram as the reader queues it.
func (h *callHarness) ctl(pkt []byte) inbound {
	hdr, _, err := l2tp.ParseHeader(pkt)
	if err != nil {
		h.t.Fatal(err)
	}
	return inbound{hdr: hdr, pkt: pkt}
}

// early is a data message carrying frame (after FF 03) for our session
// sid that the data plane does not have, as handleData queues it.
func (h *callHarness) early(sid uint16, frame ...byte) inbound {
	data := dataMsg(uint32(sid), frame...)
	hdr, _, err := l2tp.ParseHeader(data)
	if err != nil {
		h.t.Fatal(err)
	}
	return inbound{hdr: hdr, pkt: data, sid: uint32(sid), early: true}
}

func avpU16(typ l2tp.AVPType, v uint16) []byte {
	return rawAVP(0x8000, -1, uint16(typ), []byte{byte(v >> 8), byte(v)})
}

func avpU32(typ l2tp.AVPType, v uint32) []byte {
	return rawAVP(0x8000, -1, uint16(typ), []byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// answerICRQs sends an ICRQ for each of the LAC's session IDs and returns
// our session IDs from the ICRPs, in order.
func (h *callHarness) answerICRQs(peerSIDs ...uint16) []uint16 {
	h.t.Helper()
	var items []inbound
	for i, p := range peerSIDs {
		items = append(items, h.ctl(ctlPacket(7, 0, h.ns, 1, msgTypeAVP(l2tp.MsgICRQ), avpU16(l2tp.AVPAssignedSessionID, p), avpU32(l2tp.AVPCallSerialNumber, uint32(i+1)))))
		h.ns++
	}
	h.sent = nil
	h.tun.handleItems(h.now, items)
	h.tun.flush(h.now)
	var ids []uint16
	for _, b := range h.sent {
		_, payload, err := l2tp.ParseHeader(b)
		if err != nil {
			h.t.Fatal(err)
		}
		m, err := l2tp.ParseMessage(payload, nil)
		if err == nil && m != nil && m.Type == l2tp.MsgICRP {
			id, _, _ := m.Uint16(l2tp.AVPAssignedSessionID)
			ids = append(ids, id)
		}
	}
	if len(ids) != len(peerSIDs) {
		h.t.Fatalf("%d ICRPs with our session ID, want %d (tunnel %v)", len(ids), len(peerSIDs), h.tun.core.State())
	}
	return ids
}

// iccn is the LAC's ICCN for our session sid (nr: the Nr it carries).
func (h *callHarness) iccn(sid uint16, nr uint16) inbound {
	it := h.ctl(ctlPacket(7, uint32(sid), h.ns, nr, msgTypeAVP(l2tp.MsgICCN), avpU32(l2tp.AVPTxConnectSpeed, 1000000), avpU32(l2tp.AVPFramingType, 3)))
	h.ns++
	return it
}

// cdn is the LAC's CDN for our session sid, from its session peer.
func (h *callHarness) cdn(sid, peer uint16, nr uint16) inbound {
	it := h.ctl(ctlPacket(7, uint32(sid), h.ns, nr, msgTypeAVP(l2tp.MsgCDN), avpU16(l2tp.AVPResultCode, l2tp.ResultCDNAdmin), avpU16(l2tp.AVPAssignedSessionID, peer)))
	h.ns++
	return it
}

// batchSendTunnel is a flushTunnel that also takes the pass's control
// messages (dataplane.BatchSender): each FlushWith is recorded as one send
// of the control messages followed by the frames held.
type batchSendTunnel struct {
	*flushTunnel
	sends [][][]byte
}

func (p *batchSendTunnel) FlushWith(ctrl [][]byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var send [][]byte
	for _, c := range ctrl {
		send = append(send, append([]byte(nil), c...))
	}
	p.sends = append(p.sends, append(send, p.held...))
	p.held = nil
	return nil
}

// With a data plane that sends on the tunnel's socket, a pass's control
// messages and the frames its drivers sent leave in one send, control
// messages first; without control messages the frames leave by Flush.
func TestPassSendsControlAndFramesTogether(t *testing.T) {
	e := fakeEndpoint(t)
	peer := udpFrom(t, "127.0.0.1:0")
	tun, ft, d := batchTunnel(t, e, peer)
	dp := &batchSendTunnel{flushTunnel: ft}
	tun.dp, tun.dpFlush = dp, dp

	ctrl := zlb(0, 1)
	tun.queueOut([][]byte{ctrl})
	if err := d.s.DP.SendFrame([]byte{0xc0, 0x21, 0x09, 0x01, 0x00, 0x04}); err != nil {
		t.Fatal(err)
	}
	tun.sendPass()
	if len(dp.sends) != 1 || len(dp.flushed()) != 0 {
		t.Fatalf("%d combined sends and %d Flushes, want 1 and 0", len(dp.sends), len(dp.flushed()))
	}
	if s := dp.sends[0]; len(s) != 2 || !bytes.Equal(s[0], ctrl) || s[1][0] != 0xc0 {
		t.Fatalf("combined send %x, want the control message then the frame", s)
	}
	if len(tun.sendQ) != 0 {
		t.Fatal("control messages still queued after the pass")
	}
	// Frames only: Flush.
	if err := d.s.DP.SendFrame([]byte{0xc0, 0x21, 0x09, 0x02, 0x00, 0x04}); err != nil {
		t.Fatal(err)
	}
	tun.sendPass()
	if len(dp.sends) != 1 || len(dp.flushed()) != 1 || len(dp.flushed()[0]) != 1 {
		t.Fatalf("frames alone: %d combined sends, flushes %v", len(dp.sends), dp.flushed())
	}
}

// An LCP frame that arrives before the ICCN of its call (the LAC's ICCN
// was held back by its send window, or lost and retransmitted, while its
// first LCP frame went out) is kept and given to the session's driver
// when the ICCN establishes it, not dropped: dropping it cost the
// subscriber the peer's 3 s restart timer (overload runs in
// docs/benchmarks.md). Frames for calls the core has not answered, beyond
// the bounds, or for a call cleared before its ICCN are not kept.
func TestEarlyFrameBeforeICCNKept(t *testing.T) {
	h := newCallHarness(t)
	tun := h.tun
	ids := h.answerICRQs(5, 6)
	sid, other := ids[0], ids[1]

	// Before the ICCN: a Configure-Request and its retransmissions (more
	// than are kept), a frame for the other call, and one for a call the
	// core does not have.
	var lcps [][]byte
	var items []inbound
	for i := range maxEarlyFrames + 2 {
		lcp := []byte{0xc0, 0x21, 0x01, byte(i + 1), 0x00, 0x04}
		lcps = append(lcps, lcp)
		items = append(items, h.early(sid, lcp...))
	}
	items = append(items, h.early(other, 0xc0, 0x21, 0x01, 0x09, 0x00, 0x04), h.early(0x7fff, 0xc0, 0x21, 0x01, 0x01, 0x00, 0x04))
	tun.handleItems(h.now, items)
	if len(tun.early) != 2 || len(tun.early[uint32(sid)]) != maxEarlyFrames || len(tun.early[uint32(other)]) != 1 {
		t.Fatalf("kept %d calls' frames (%d for session %d), want 2 calls, %d for session %d", len(tun.early), len(tun.early[uint32(sid)]), sid, maxEarlyFrames, sid)
	}

	after := []byte{0xc0, 0x21, 0x02, 0x01, 0x00, 0x04} // read after the ICCN: after the kept ones
	tun.handleItems(h.now, []inbound{h.iccn(sid, 3), h.early(sid, after...)})
	s := tun.sessions[uint32(sid)]
	if s == nil {
		t.Fatalf("session %d not established by the ICCN", sid)
	}
	d := s.driver.(*echoDriver)
	want := append(lcps[:maxEarlyFrames:maxEarlyFrames], after)
	if len(d.frames) != len(want) {
		t.Fatalf("driver got %d frames %x, want %d: %x", len(d.frames), d.frames, len(want), want)
	}
	for i := range want {
		if !bytes.Equal(d.frames[i], want[i]) {
			t.Fatalf("driver frame %d is %x, want %x (in arrival order)", i, d.frames[i], want[i])
		}
	}

	// The other call is cleared by the LAC before its ICCN: its frame goes.
	tun.handleItems(h.now, []inbound{h.cdn(other, 6, 3)})
	if len(tun.early) != 0 || tun.earlyBytes != 0 {
		t.Fatalf("after the CDN: %d calls' frames, %d bytes kept, want none", len(tun.early), tun.earlyBytes)
	}
}
