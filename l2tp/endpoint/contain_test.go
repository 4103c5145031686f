package endpoint

import (
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/l2tpd/l2tpd/dataplane"
	"github.com/l2tpd/l2tpd/dataplane/fake"
	"github.com/l2tpd/l2tpd/internal/fault"
	"github.com/l2tpd/l2tpd/l2tp"
	"github.com/l2tpd/l2tpd/l2tp/tunnel"
)

// panicDriver stands for a driver with a bug: a frame whose first byte is
// 0xde makes it panic. It records the other frames and its Close.
type panicDriver struct {
	frames chan []byte
	closed chan string
}

func (d *panicDriver) Frame(_ time.Time, f []byte) {
	if len(f) > 0 && f[0] == 0xde {
		panic("test: a bug in the driver")
	}
	d.frames <- append([]byte(nil), f...)
}
func (d *panicDriver) Tick(time.Time)      {}
func (d *panicDriver) Deadline() time.Time { return time.Time{} }
func (d *panicDriver) Close(_ time.Time, reason string) {
	d.closed <- reason
}

// panicHandler gives every session a panicDriver; AcceptTunnel panics for
// the host name "boom".
type panicHandler struct {
	*recorder
	mu      sync.Mutex
	drivers map[uint32]*panicDriver
	boomed  chan struct{}
}

func newPanicHandler() *panicHandler {
	return &panicHandler{recorder: newRecorder(), drivers: map[uint32]*panicDriver{}, boomed: make(chan struct{}, 16)}
}

func (h *panicHandler) AcceptTunnel(from netip.AddrPort, host string) (TunnelSettings, *l2tp.ResultCode) {
	if host == "boom" {
		h.boomed <- struct{}{}
		panic("test: a bug in the role's AcceptTunnel")
	}
	return h.recorder.AcceptTunnel(from, host)
}

func (h *panicHandler) SessionUp(s *Session) Driver {
	d := &panicDriver{frames: make(chan []byte, 16), closed: make(chan string, 1)}
	h.mu.Lock()
	h.drivers[s.ID] = d
	h.mu.Unlock()
	h.sessUp <- s
	return d
}

func (h *panicHandler) driver(id uint32) *panicDriver {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.drivers[id]
}

// containPair is an LNS with a panicHandler and a LAC, on fake planes.
type containPair struct {
	// faults: fault.Total() when the pair was made (tests in this
	// package do not run in parallel).
	faults   uint64
	lns, lac *Endpoint
	h        *panicHandler
	lacRec   *recorder
	plane    *fake.Plane
}

func newContainPair(t *testing.T, plane dataplane.Plane) *containPair {
	t.Helper()
	p := &containPair{h: newPanicHandler(), lacRec: newRecorder(), faults: fault.Total()}
	p.lns, p.lac, _ = newPairCfg(t, nil, p.lacRec, func(c *Config) {
		c.Handler = p.h
		if plane != nil {
			c.Plane = plane
		}
		p.plane, _ = c.Plane.(*fake.Plane)
	})
	return p
}

// dial opens a tunnel from the LAC with n sessions and returns it, the
// LNS's side of it and the LNS's sessions.
func (p *containPair) dial(t *testing.T, n int) (*Tunnel, *Tunnel, []*Session) {
	t.Helper()
	st := p.lacRec.settings
	st.Handler = p.lacRec
	lacTun, err := p.lac.Dial(p.lns.ListenAddrs()[0], netip.AddrPort{}, st)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, p.lacRec.tunnelsUp, "LAC tunnel up")
	lnsTun := waitFor(t, p.h.tunnelsUp, "LNS tunnel up")
	var ss []*Session
	for range n {
		if _, err := lacTun.PlaceCall(tunnel.Incoming, tunnel.CallInfo{CallingNumber: "x"}); err != nil {
			t.Fatal(err)
		}
		ss = append(ss, waitFor(t, p.h.sessUp, "LNS session up"))
		waitFor(t, p.lacRec.sessUp, "LAC session up")
	}
	return lacTun, lnsTun, ss
}

// recovered is the number of panics recovered since the pair was made.
func (p *containPair) recovered() uint64 { return fault.Total() - p.faults }

// inject hands frame to the LNS session as if its LAC had sent it.
func (p *containPair) inject(t *testing.T, s *Session, frame []byte) {
	t.Helper()
	fs, ok := s.DP.(*fake.Session)
	if !ok || !fs.Inject(frame) {
		t.Fatalf("session %d: cannot inject a frame", s.ID)
	}
}

// frameReaches checks that a frame still reaches s's driver.
func (p *containPair) frameReaches(t *testing.T, s *Session) {
	t.Helper()
	p.inject(t, s, []byte{0xc0, 0x21, 0x01})
	if f := waitFor(t, p.h.driver(s.ID).frames, "a frame at a session that should be unaffected"); f[0] != 0xc0 {
		t.Fatalf("session %d got %x", s.ID, f)
	}
}

func noEvent[T any](t *testing.T, c chan T, what string) {
	t.Helper()
	select {
	case v := <-c:
		t.Fatalf("unexpected %s: %+v", what, v)
	default:
	}
}

// A panic in one session's driver ends that session only: CDN with a
// general error, the driver's Close and the role's SessionDown as for any
// end; the tunnel and its other sessions go on.
func TestDriverPanicEndsOnlyItsSession(t *testing.T) {
	p := newContainPair(t, nil)
	_, lnsTun, ss := p.dial(t, 3)
	bad := ss[1]
	p.inject(t, bad, []byte{0xde, 0xad})

	ev := waitFor(t, p.h.sessDown, "SessionDown of the session whose driver panicked")
	if ev.ID != bad.ID || ev.Reason != ReasonInternalError {
		t.Fatalf("LNS SessionDown %+v, want session %d, reason %q", ev, bad.ID, ReasonInternalError)
	}
	if r := waitFor(t, p.h.driver(bad.ID).closed, "the panicked driver's Close"); r != ReasonInternalError {
		t.Fatalf("driver Close reason %q", r)
	}
	lacEv := waitFor(t, p.lacRec.sessDown, "the LAC's SessionDown (CDN)")
	if !lacEv.ByPeer || lacEv.Result.Result != l2tp.ResultCDNGeneralError || lacEv.Result.Error != l2tp.ErrCodeVendor {
		t.Fatalf("LAC SessionDown %+v, want a CDN with result 2, error 6", lacEv)
	}
	for _, s := range []*Session{ss[0], ss[2]} {
		p.frameReaches(t, s)
	}
	noEvent(t, p.h.tunnelsDown, "LNS TunnelDown")
	noEvent(t, p.h.sessDown, "LNS SessionDown")
	if ti, err := lnsTun.Inspect(t.Context(), true); err != nil || len(ti.SessionInfo) != 2 {
		t.Fatalf("LNS tunnel after the panic: %d sessions, %v; want 2", len(ti.SessionInfo), err)
	}
	if n := p.recovered(); n != 1 {
		t.Fatalf("%d panics recovered, want 1", n)
	}
}

// A panic on a tunnel's goroutine outside any session ends that tunnel:
// StopCCN to its peer, every session released (driver Close, SessionDown),
// TunnelDown; the endpoint and its other tunnels go on.
func TestTunnelPanicEndsOnlyThatTunnel(t *testing.T) {
	p := newContainPair(t, nil)
	_, badTun, badSS := p.dial(t, 2)
	okLAC, okTun, okSS := p.dial(t, 2)

	badTun.do(func(time.Time) { panic("test: a bug on the tunnel goroutine") })

	down := map[uint32]bool{}
	for range 2 {
		ev := waitFor(t, p.h.sessDown, "SessionDown of the panicked tunnel's sessions")
		if ev.Reason != ReasonInternalError {
			t.Fatalf("SessionDown %+v, want reason %q", ev, ReasonInternalError)
		}
		down[ev.ID] = true
	}
	for _, s := range badSS {
		if !down[s.ID] {
			t.Fatalf("session %d of the panicked tunnel was not released (released: %v)", s.ID, down)
		}
		if r := waitFor(t, p.h.driver(s.ID).closed, "driver Close"); r != ReasonInternalError {
			t.Fatalf("driver Close reason %q", r)
		}
	}
	if ev := waitFor(t, p.h.tunnelsDown, "LNS TunnelDown"); ev.Reason != ReasonInternalError {
		t.Fatalf("LNS TunnelDown %+v", ev)
	}
	select {
	case <-badTun.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("the panicked tunnel never ended")
	}
	if p.lns.Tunnel(badTun.ID()) != nil {
		t.Fatal("the panicked tunnel is still in the endpoint's table")
	}
	lacEv := waitFor(t, p.lacRec.tunnelsDown, "the LAC's TunnelDown (StopCCN)")
	if !lacEv.ByPeer || lacEv.Result.Result != l2tp.ResultStopGeneralError || lacEv.Result.Error != l2tp.ErrCodeVendor {
		t.Fatalf("LAC TunnelDown %+v, want a StopCCN with result 2, error 6", lacEv)
	}

	for _, s := range okSS {
		p.frameReaches(t, s)
	}
	if _, err := okLAC.PlaceCall(tunnel.Incoming, tunnel.CallInfo{CallingNumber: "y"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, p.h.sessUp, "a new session on the other tunnel")
	if ti, err := okTun.Inspect(t.Context(), true); err != nil || len(ti.SessionInfo) != 3 {
		t.Fatalf("other tunnel: %d sessions, %v; want 3", len(ti.SessionInfo), err)
	}
	if n := p.recovered(); n != 1 {
		t.Fatalf("%d panics recovered, want 1", n)
	}
}

// panicPlane's tunnels panic on a data message whose last byte is 0xde
// (a bug in the data plane's receive path, on the tunnel's reader).
type panicPlane struct{ *fake.Plane }

func (p panicPlane) AddTunnel(cfg dataplane.TunnelConfig) (dataplane.Tunnel, error) {
	t, err := p.Plane.AddTunnel(cfg)
	if err != nil {
		return nil, err
	}
	return panicTunnel{t}, nil
}

type panicTunnel struct{ dataplane.Tunnel }

func (t panicTunnel) HandleData(pkt []byte) {
	if len(pkt) > 0 && pkt[len(pkt)-1] == 0xde {
		panic("test: a bug in the data plane's receive path")
	}
	t.Tunnel.HandleData(pkt)
}

// A panic on a tunnel's reader closes that tunnel (StopCCN, sessions
// released); the other tunnels go on.
func TestReaderPanicClosesTheTunnel(t *testing.T) {
	p := newContainPair(t, panicPlane{fake.New()})
	badLAC, badTun, _ := p.dial(t, 1)
	_, _, okSS := p.dial(t, 1)

	ti, err := badTun.Inspect(t.Context(), true)
	if err != nil {
		t.Fatal(err)
	}
	data := l2tp.AppendHeader(nil, l2tp.Header{Version: 2, TunnelID: badTun.ID(), SessionID: ti.SessionInfo[0].ID}, 3)
	data = append(data, 0xc0, 0x21, 0xde)
	if _, err := badLAC.conn.Write(data); err != nil {
		t.Fatal(err)
	}
	if ev := waitFor(t, p.h.tunnelsDown, "LNS TunnelDown"); ev.Reason != ReasonInternalError {
		t.Fatalf("LNS TunnelDown %+v", ev)
	}
	if ev := waitFor(t, p.h.sessDown, "SessionDown"); ev.ID != ti.SessionInfo[0].ID {
		t.Fatalf("SessionDown %+v", ev)
	}
	lacEv := waitFor(t, p.lacRec.tunnelsDown, "the LAC's TunnelDown (StopCCN)")
	if !lacEv.ByPeer || lacEv.Result.Error != l2tp.ErrCodeVendor {
		t.Fatalf("LAC TunnelDown %+v, want a StopCCN with error 6", lacEv)
	}
	p.frameReaches(t, okSS[0])
	if n := p.recovered(); n != 1 {
		t.Fatalf("%d panics recovered, want 1", n)
	}
}

// A panic while the listener handles an SCCRQ (here in the role's
// AcceptTunnel, called under the endpoint's lock) drops that SCCRQ; the
// lock is released and the next LAC gets its tunnel.
func TestListenerPanicDropsTheDatagram(t *testing.T) {
	p := newContainPair(t, nil)
	st := p.lacRec.settings
	st.Handler = p.lacRec
	st.Tunnel.HostName = "boom"
	if _, err := p.lac.Dial(p.lns.ListenAddrs()[0], netip.AddrPort{}, st); err != nil {
		t.Fatal(err)
	}
	waitFor(t, p.h.boomed, "the SCCRQ from \"boom\" at AcceptTunnel")
	// The listener handles datagrams in order: this SCCRQ comes after the
	// panic was recovered, and finds the endpoint's lock free.
	_, _, ss := p.dial(t, 1)
	p.frameReaches(t, ss[0])
	if n := p.recovered(); n < 1 {
		t.Fatalf("%d panics recovered, want at least 1", n)
	}
	if got := p.lns.Tunnels(); len(got) != 1 {
		t.Fatalf("%d tunnels, want 1 (an SCCRQ that panicked must leave none)", len(got))
	}
}

// A call admitted but not yet established (ICRP sent, no ICCN) when its
// tunnel's goroutine panics is reported to the role as ended (SessionDown,
// not up), so the role gives back the setup slot it reserved for it.
func TestTunnelPanicReportsStartingCalls(t *testing.T) {
	p := newContainPair(t, nil)
	lac := udpFrom(t, "127.0.0.1:0")
	lnsAddr := p.lns.ListenAddrs()[0]
	read := func(want l2tp.MessageType) (*l2tp.Message, netip.AddrPort) {
		t.Helper()
		buf := make([]byte, 4096)
		for {
			lac.SetReadDeadline(time.Now().Add(20 * time.Second))
			n, from, err := lac.ReadFromUDPAddrPort(buf)
			if err != nil {
				t.Fatalf("waiting for %v: %v", want, err)
			}
			hdr, payload, err := l2tp.ParseHeader(buf[:n])
			if err != nil || !hdr.Control || len(payload) == 0 {
				continue // a ZLB
			}
			m, err := l2tp.ParseMessage(payload, nil)
			if err != nil {
				t.Fatal(err)
			}
			if m.Type == want {
				return m, from
			}
		}
	}
	sendAll(t, lac, lnsAddr, [][]byte{sccrq(41)})
	sccrp, tunAddr := read(l2tp.MsgSCCRP)
	lnsTID, _, _ := sccrp.Uint16(l2tp.AVPAssignedTunnelID)
	sendAll(t, lac, tunAddr, [][]byte{
		ctlPacket(uint32(lnsTID), 0, 1, 1, msgTypeAVP(l2tp.MsgSCCCN)),
		ctlPacket(uint32(lnsTID), 0, 2, 1, msgTypeAVP(l2tp.MsgICRQ),
			rawAVP(0x8000, -1, uint16(l2tp.AVPAssignedSessionID), []byte{0, 9}),
			rawAVP(0x8000, -1, uint16(l2tp.AVPCallSerialNumber), []byte{0, 0, 0, 1})),
	})
	read(l2tp.MsgICRP)
	lnsTun := waitFor(t, p.h.tunnelsUp, "LNS tunnel up")

	lnsTun.do(func(time.Time) { panic("test: a bug on the tunnel goroutine") })
	ev := waitFor(t, p.h.sessDown, "SessionDown of the call in setup")
	if ev.WasUp || ev.PeerID != 9 || ev.Reason != ReasonInternalError {
		t.Fatalf("SessionDown %+v, want the call from session 9, not up, reason %q", ev, ReasonInternalError)
	}
	waitFor(t, p.h.tunnelsDown, "LNS TunnelDown")
	read(l2tp.MsgStopCCN)
}
