package endpoint

import (
	"bytes"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/l2tpd/l2tpd/dataplane"
	"github.com/l2tpd/l2tpd/dataplane/fake"
	"github.com/l2tpd/l2tpd/l2tp/tunnel"
)

// frameHandler is a recorder whose sessions get a frameRec driver.
type frameHandler struct {
	*recorder
	mu sync.Mutex
	d  map[uint32]*frameRec
}

func (h *frameHandler) SessionUp(s *Session) Driver {
	h.recorder.SessionUp(s)
	h.mu.Lock()
	defer h.mu.Unlock()
	d := &frameRec{}
	h.d[s.ID] = d
	return d
}

// addFixture: a tunnel (goroutines not started) on a fake data plane
// whose AddSession waits in a gate the test opens.
type addFixture struct {
	tun     *Tunnel
	h       *frameHandler
	plane   *fake.Plane
	entered chan dataplane.SessionConfig
	release chan error
}

func newAddFixture(t *testing.T) *addFixture {
	t.Helper()
	e := fakeEndpoint(t)
	fx := &addFixture{h: &frameHandler{recorder: newRecorder(), d: map[uint32]*frameRec{}},
		plane: fake.New(), entered: make(chan dataplane.SessionConfig, 1), release: make(chan error)}
	fx.plane.SetAddGate(func(cfg dataplane.SessionConfig) error {
		fx.entered <- cfg
		return <-fx.release
	})
	// Run before the Shutdown above (cleanups run last first): a test
	// that failed before releasing an add must not leave Shutdown
	// waiting for its worker.
	t.Cleanup(func() { close(fx.release) })
	settings, core := responderCore(t, e, fx.h)
	fx.tun = e.newTunnel(7, settings, netip.MustParseAddrPort("192.0.2.1:1701"), netip.MustParseAddrPort("192.0.2.2:1701"), nil, nil)
	fx.tun.core = core
	dpt, err := fx.plane.AddTunnel(dataplane.TunnelConfig{Version: 2, LocalID: 7, PeerID: 9})
	if err != nil {
		t.Fatal(err)
	}
	fx.tun.dp = dpt
	return fx
}

// runCmd runs the next command posted to the tunnel goroutine (a
// worker's outcome), as the goroutine would.
func (fx *addFixture) runCmd(t *testing.T, now time.Time) {
	t.Helper()
	select {
	case f := <-fx.tun.cmds:
		f(now)
	case <-time.After(10 * time.Second):
		t.Fatal("no outcome posted to the tunnel goroutine")
	}
}

// A data plane whose AddSession blocks (the kernel's) gets it on a
// worker: sessionUp returns at once, the role hears of the session only
// once it exists, and the PPP frames that came meanwhile (one delivered by
// the data plane session, one read from the tunnel's socket) reach the
// driver then, in the order they came.
func TestBlockingAddOnWorker(t *testing.T) {
	fx := newAddFixture(t)
	now := time.Unix(1000, 0)
	fx.tun.sessionUp(now, tunnel.SessionUp{ID: 3, PeerID: 30})
	if cfg := <-fx.entered; cfg.LocalID != 3 || cfg.PeerID != 30 {
		t.Fatalf("AddSession given %+v", cfg)
	}
	if len(fx.h.sessUp) != 0 {
		t.Fatal("the role had SessionUp before the data plane session existed")
	}
	lcp1 := []byte{0xc0, 0x21, 0x01, 0x01, 0x00, 0x04}
	lcp2 := []byte{0xc0, 0x21, 0x01, 0x02, 0x00, 0x04}
	fx.tun.handleItems(now, []inbound{
		{pkt: lcp1, sid: 3, frame: true},
		{pkt: dataMsg(3, lcp2...), sid: 3, early: true},
	})
	fx.release <- nil
	fx.runCmd(t, now)
	s := waitFor(t, fx.h.sessUp, "SessionUp")
	if s.ID != 3 || s.DP == nil {
		t.Fatalf("SessionUp for %d with data plane session %v", s.ID, s.DP)
	}
	fx.h.mu.Lock()
	d := fx.h.d[3]
	fx.h.mu.Unlock()
	if len(d.frames) != 2 || !bytes.Equal(d.frames[0], lcp1) || !bytes.Equal(d.frames[1], lcp2) {
		t.Fatalf("driver got %x, want %x then %x", d.frames, lcp1, lcp2)
	}
	if _, ok := fx.tun.dpSessions[3]; !ok || len(fx.tun.adding) != 0 || len(fx.tun.early) != 0 {
		t.Fatalf("after the add: dpSessions %v adding %v early %v", fx.tun.dpSessions, fx.tun.adding, fx.tun.early)
	}
}

// A call that ends while its data plane session is being created: the
// role hears SessionDown (never SessionUp), and the session the worker
// made is closed when it is done.
func TestBlockingAddCallEndsMeanwhile(t *testing.T) {
	fx := newAddFixture(t)
	now := time.Unix(1000, 0)
	fx.tun.sessionUp(now, tunnel.SessionUp{ID: 3, PeerID: 30})
	<-fx.entered
	fx.tun.handleEvent(now, tunnel.SessionDown{ID: 3, PeerID: 30, Reason: "peer sent CDN", WasUp: true})
	if ev := waitFor(t, fx.h.sessDown, "SessionDown"); ev.ID != 3 || ev.WasUp {
		t.Fatalf("SessionDown %+v, want session 3 not up", ev)
	}
	if !fx.tun.core.SessionIDReserved(3) {
		t.Fatal("the ended call's session ID is free while its add runs")
	}
	fx.release <- nil
	fx.runCmd(t, now)
	if len(fx.h.sessUp) != 0 {
		t.Fatal("the role had SessionUp for a call that had ended")
	}
	ss := fx.plane.Sessions()
	if len(ss) != 1 || !ss[0].Closed() {
		t.Fatalf("data plane sessions %v, want the one added, closed", ss)
	}
	if len(fx.tun.sessions) != 0 || len(fx.tun.adding) != 0 || fx.tun.core.SessionIDReserved(3) {
		t.Fatalf("sessions %v adding %v, ID reserved %v", fx.tun.sessions, fx.tun.adding, fx.tun.core.SessionIDReserved(3))
	}
}

// The tunnel ending while a call's data plane session is being created:
// the role hears SessionDown for the call, and nothing the worker
// finishes afterwards is left open.
func TestBlockingAddTunnelEndsMeanwhile(t *testing.T) {
	fx := newAddFixture(t)
	now := time.Unix(1000, 0)
	fx.tun.sessionUp(now, tunnel.SessionUp{ID: 3, PeerID: 30})
	<-fx.entered
	fx.tun.finish(now, "test: tunnel down")
	if ev := waitFor(t, fx.h.sessDown, "SessionDown"); ev.ID != 3 || ev.WasUp {
		t.Fatalf("SessionDown %+v, want session 3 not up", ev)
	}
	fx.release <- nil
	fx.tun.e.Shutdown(t.Context()) // waits for the worker too
	if n := openSessions(fx.plane); n != 0 {
		t.Fatalf("%d data plane sessions left open after the tunnel ended", n)
	}
	if len(fx.h.sessUp) != 0 {
		t.Fatal("the role had SessionUp on an ended tunnel")
	}
}

// openSessions counts a fake plane's sessions not closed.
func openSessions(p *fake.Plane) int {
	n := 0
	for _, s := range p.Sessions() {
		if !s.Closed() {
			n++
		}
	}
	return n
}

// The tunnel ending after the worker made the session but before the
// tunnel goroutine handled that outcome: the role hears SessionDown, never
// SessionUp, and the session closes with the data plane tunnel.
func TestBlockingAddTunnelEndsBeforeOutcome(t *testing.T) {
	fx := newAddFixture(t)
	now := time.Unix(1000, 0)
	fx.tun.sessionUp(now, tunnel.SessionUp{ID: 3, PeerID: 30})
	<-fx.entered
	fx.release <- nil
	var outcome func(time.Time)
	select {
	case outcome = <-fx.tun.cmds: // posted, not run
	case <-time.After(10 * time.Second):
		t.Fatal("no outcome posted to the tunnel goroutine")
	}
	if openSessions(fx.plane) != 1 {
		t.Fatalf("data plane sessions %v, want the one added, open", fx.plane.Sessions())
	}
	fx.tun.finish(now, "test: tunnel down")
	if ev := waitFor(t, fx.h.sessDown, "SessionDown"); ev.ID != 3 || ev.WasUp {
		t.Fatalf("SessionDown %+v, want session 3 not up", ev)
	}
	outcome(now) // late: must not bring the session up
	if len(fx.h.sessUp) != 0 || len(fx.h.sessDown) != 0 {
		t.Fatalf("after the late outcome: %d SessionUp, %d more SessionDown", len(fx.h.sessUp), len(fx.h.sessDown))
	}
	if n := openSessions(fx.plane); n != 0 {
		t.Fatalf("%d data plane sessions left open after the tunnel ended", n)
	}
}

// A data plane that refuses the session on the worker: the call is hung
// up (CDN result 2), the frames kept for it dropped.
func TestBlockingAddRefused(t *testing.T) {
	fx := newAddFixture(t)
	now := time.Unix(1000, 0)
	fx.tun.sessionUp(now, tunnel.SessionUp{ID: 3, PeerID: 30})
	<-fx.entered
	fx.tun.handleItems(now, []inbound{{pkt: []byte{0xc0, 0x21, 0x01, 0x01, 0x00, 0x04}, sid: 3, frame: true}})
	fx.release <- errTruncated // any error
	fx.runCmd(t, now)
	if len(fx.h.sessUp) != 0 || len(fx.tun.early) != 0 || fx.tun.earlyBytes != 0 || len(fx.tun.adding) != 0 {
		t.Fatalf("after a refused add: %d SessionUp, early %v (%d bytes), adding %v", len(fx.h.sessUp), fx.tun.early, fx.tun.earlyBytes, fx.tun.adding)
	}
}

// Past addQueueLen AddSessions waiting for a worker, a tunnel adds the
// session itself: the role has SessionUp at once.
func TestBlockingAddQueueFull(t *testing.T) {
	fx := newAddFixture(t)
	fx.plane.SetAddGate(func(dataplane.SessionConfig) error { return nil })
	fx.tun.e.addOnce.Do(func() {})    // no workers
	fx.tun.e.addQ = make(chan addJob) // and no room
	fx.tun.sessionUp(time.Unix(1000, 0), tunnel.SessionUp{ID: 3, PeerID: 30})
	select {
	case s := <-fx.h.sessUp:
		if s.ID != 3 || s.DP == nil {
			t.Fatalf("SessionUp for %d with data plane session %v", s.ID, s.DP)
		}
	default:
		t.Fatal("with the queue full the session was not added inline")
	}
	if len(fx.tun.adding) != 0 {
		t.Fatalf("adding %v, want none", fx.tun.adding)
	}
}

// queuedAdd brings call 3 up on the fixture's tunnel with no add workers
// running and returns its add, queued, for the test to run; the data
// plane adds at once.
func (fx *addFixture) queuedAdd(t *testing.T, now time.Time) addJob {
	t.Helper()
	fx.plane.SetAddGate(func(dataplane.SessionConfig) error { return nil })
	fx.tun.e.addOnce.Do(func() {}) // no workers
	fx.tun.sessionUp(now, tunnel.SessionUp{ID: 3, PeerID: 30})
	select {
	case j := <-fx.tun.e.addQ:
		return j
	default:
		t.Fatal("the add was not queued")
		return addJob{}
	}
}

// A call that ends while its add waits in the queue: the worker never
// makes its session, and its ID is not given to a new call until the
// worker's outcome is handled.
func TestBlockingAddCallEndsQueued(t *testing.T) {
	fx := newAddFixture(t)
	now := time.Unix(1000, 0)
	j := fx.queuedAdd(t, now)
	fx.tun.handleEvent(now, tunnel.SessionDown{ID: 3, PeerID: 30, Reason: "peer sent CDN", WasUp: true})
	if ev := waitFor(t, fx.h.sessDown, "SessionDown"); ev.ID != 3 || ev.WasUp {
		t.Fatalf("SessionDown %+v, want session 3 not up", ev)
	}
	if !fx.tun.core.SessionIDReserved(3) {
		t.Fatal("the ended call's session ID is free while its add is pending")
	}
	j.run()
	fx.runCmd(t, now)
	if n := len(fx.plane.Sessions()); n != 0 {
		t.Fatalf("%d data plane sessions made for a call that ended before its add ran", n)
	}
	if fx.tun.core.SessionIDReserved(3) || len(fx.tun.adding) != 0 || len(fx.h.sessUp) != 0 {
		t.Fatalf("after the outcome: ID reserved %v, adding %v, %d SessionUp", fx.tun.core.SessionIDReserved(3), fx.tun.adding, len(fx.h.sessUp))
	}
}

// A worker whose tunnel goroutine is behind with its commands (its queue
// full) does not wait for it: it goes on with the queue, and the outcome
// reaches the tunnel once it catches up.
func TestBlockingAddTunnelBehind(t *testing.T) {
	fx := newAddFixture(t)
	now := time.Unix(1000, 0)
	j := fx.queuedAdd(t, now)
	for len(fx.tun.cmds) < cap(fx.tun.cmds) {
		fx.tun.cmds <- func(time.Time) {}
	}
	ran := make(chan struct{})
	go func() { j.run(); close(ran) }()
	select {
	case <-ran:
	case <-time.After(10 * time.Second):
		t.Fatal("the worker waited for a tunnel goroutine that was behind")
	}
	for range cap(fx.tun.cmds) + 1 { // the fillers, then the outcome
		fx.runCmd(t, now)
	}
	if s := waitFor(t, fx.h.sessUp, "SessionUp"); s.ID != 3 || s.DP == nil {
		t.Fatalf("SessionUp for %d with data plane session %v", s.ID, s.DP)
	}
}
