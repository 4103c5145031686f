package pppsession

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/l2tpd/l2tpd/auth"
	"github.com/l2tpd/l2tpd/dataplane"
	"github.com/l2tpd/l2tpd/dataplane/fake"
	"github.com/l2tpd/l2tpd/internal/fault"
	"github.com/l2tpd/l2tpd/ppp"
)

// upGate holds the LNS side's Ups (the LAC driver's Up is synchronous and
// passes): entered gets the NetConfig of each Up that reached the gate,
// and the Up goes on when release is sent a value.
type upGate struct {
	entered chan dataplane.NetConfig
	release chan struct{}
}

func gateLNSUps(h *harness) *upGate { return gateLNSUpsThen(h, func() error { return nil }) }

// gateLNSUpsThen is gateLNSUps whose held Ups end with then() once
// released.
func gateLNSUpsThen(h *harness, then func() error) *upGate {
	g := &upGate{entered: make(chan dataplane.NetConfig, 4), release: make(chan struct{})}
	h.plane.SetUpGate(func(s *fake.Session, cfg dataplane.NetConfig) error {
		if !s.Config().LNSMode {
			return nil
		}
		g.entered <- cfg
		<-g.release
		return then()
	})
	return g
}

func (g *upGate) waitEntered(t *testing.T) dataplane.NetConfig {
	t.Helper()
	select {
	case nc := <-g.entered:
		return nc
	case <-time.After(10 * time.Second):
		t.Fatal("no Up reached the data plane within 10s")
		return dataplane.NetConfig{}
	}
}

// A data plane whose Up blocks gets it on a worker: the session is not
// up (no accounting Start, no "subscriber up") until the outcome is
// posted back, and then it is, once.
func TestBlockingUpOnWorker(t *testing.T) {
	h := newHarness(t, "10.0.0.0/29")
	g := gateLNSUps(h)
	ns, lnsD, cs, lacD := h.dial(1, "alice", "pw", auth.MethodCHAPMD5)
	h.run(5*time.Second, ns, cs)
	nc := g.waitEntered(t)
	if !lacD.Address().IsValid() {
		t.Fatal("the LAC's network is not up: PPP did not finish while the LNS's Up was held")
	}
	if len(h.acct.starts) != 0 || len(h.logged("subscriber up")) != 1 || ns.call.established != 0 {
		t.Fatalf("while Up is held: %d accounting starts, %d subscriber-up lines (want 0 and the LAC's 1), established %d", len(h.acct.starts), len(h.logged("subscriber up")), ns.call.established)
	}
	if nc.Peer != lnsD.Address() || nc.IfName != "ppp0" {
		t.Fatalf("Up given %+v, subscriber address %v", nc, lnsD.Address())
	}
	g.release <- struct{}{}
	h.waitPost()
	h.run(time.Second, ns, cs)
	if len(h.acct.starts) != 1 || h.acct.starts[0].FramedIP != nc.Peer || ns.call.established != 1 {
		t.Fatalf("accounting starts %+v, want one for %v; established %d, want 1", h.acct.starts, nc.Peer, ns.call.established)
	}
	if ups := ns.dp.Ups(); len(ups) != 1 || ns.dp.Overlaps() != 0 {
		t.Fatalf("%d Ups recorded, %d overlapping calls", len(ups), ns.dp.Overlaps())
	}
	if len(ns.call.hangup) != 0 {
		t.Fatalf("LNS hung up: %v", ns.call.reason)
	}
}

// The session closing while its Up runs waits for the Up, so the data
// plane is never closed under it and the address goes back to the pool
// only once nothing configures it any more; no accounting starts.
func TestCloseWhileUpRuns(t *testing.T) {
	h := newHarness(t, "10.0.0.0/29")
	g := gateLNSUps(h)
	waiting := make(chan struct{})
	h.env.onUpWait = func() { close(waiting) }
	ns, lnsD, cs, _ := h.dial(1, "alice", "pw", auth.MethodCHAPMD5)
	h.run(5*time.Second, ns, cs)
	g.waitEntered(t)
	closed := make(chan struct{})
	go func() {
		lnsD.Close(h.now, "peer sent CDN")
		close(closed)
	}()
	select {
	case <-closed:
		t.Fatal("Close returned while the session's Up was still running")
	case <-waiting:
	}
	p, _ := h.pools.Get("p")
	if p.Stats().Used != 1 {
		t.Fatal("the address went back to the pool while the session's Up was still running")
	}
	g.release <- struct{}{}
	<-closed
	ns.dp.Close()
	h.waitPost()
	h.run(time.Second, ns, cs)
	if ns.dp.Overlaps() != 0 {
		t.Fatal("the data plane session was closed while its Up ran")
	}
	if len(h.acct.starts) != 0 || len(h.acct.stops) != 0 || p.Stats().Used != 0 || h.env.Active() != 0 {
		t.Fatalf("starts %d stops %d pool used %d active %d", len(h.acct.starts), len(h.acct.stops), p.Stats().Used, h.env.Active())
	}
	if lnsD.Ended() != EndCallCleared {
		t.Fatalf("ended %v", lnsD.Ended())
	}
}

// A session that ends while its Up waits for a worker never starts it.
func TestCloseBeforeUpStarts(t *testing.T) {
	h := newHarness(t, "10.0.0.0/29")
	h.env.upSlots = make(chan struct{}, 1)
	h.env.upSlots <- struct{}{} // every worker busy
	gateLNSUps(h)
	ns, lnsD, cs, _ := h.dial(1, "alice", "pw", auth.MethodCHAPMD5)
	h.run(5*time.Second, ns, cs)
	if lnsD.up == nil {
		t.Fatal("no Up outstanding after PPP opened")
	}
	lnsD.Close(h.now, "peer sent CDN")
	h.waitPost()
	h.run(time.Second, ns, cs)
	if n := len(ns.dp.Ups()); n != 0 || len(h.acct.starts) != 0 || h.env.Active() != 0 {
		t.Fatalf("Ups %d starts %d active %d", n, len(h.acct.starts), h.env.Active())
	}
}

// An NCP change while Up runs is applied after it, on the same
// interface, and never alongside it.
func TestNetworkChangeQueuedBehindUp(t *testing.T) {
	h := newHarness(t, "10.0.0.0/29")
	g := gateLNSUps(h)
	ns, lnsD, cs, _ := h.dial(1, "alice", "pw", auth.MethodCHAPMD5)
	h.run(5*time.Second, ns, cs)
	first := g.waitEntered(t)
	change := ppp.NetworkUp{IPv4: true, Local: first.Local, Peer: first.Peer, MTU: 1300, MRU: 1400}
	lnsD.networkUp(h.now, change)
	g.release <- struct{}{}
	h.waitPost()
	h.run(0, ns, cs) // the first outcome: accounting starts, the change goes to a worker
	second := g.waitEntered(t)
	g.release <- struct{}{}
	h.waitPost()
	h.run(time.Second, ns, cs)
	ups := ns.dp.Ups()
	if len(ups) != 2 || ups[0].MTU != 1400 || ups[1].MTU != 1300 || second.IfName != first.IfName {
		t.Fatalf("Ups %+v, want MTU 1400 then 1300 on %s", ups, first.IfName)
	}
	if ns.dp.Overlaps() != 0 || len(h.acct.starts) != 1 || ns.call.established != 1 {
		t.Fatalf("%d overlapping calls, %d accounting starts, established %d (want once, not again for the change)", ns.dp.Overlaps(), len(h.acct.starts), ns.call.established)
	}
}

// A worker's Up that fails ends the session as a data path error, with
// a CDN, and no accounting. So does one that panics (a bug in the data
// path): the panic is that session's error, not the daemon's end.
func TestBlockingUpFails(t *testing.T) {
	for _, tc := range []struct {
		name    string
		then    func() error
		wantErr string
		panics  uint64
	}{
		{"error", func() error { return errors.New("no PPP unit") }, "no PPP unit", 0},
		{"panic", func() error { panic("test: a bug in the data path's Up") }, "internal error in the data path", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := fault.Total()
			h := newHarness(t, "10.0.0.0/29")
			g := gateLNSUpsThen(h, tc.then)
			ns, lnsD, cs, _ := h.dial(1, "alice", "pw", auth.MethodCHAPMD5)
			h.run(5*time.Second, ns, cs)
			g.waitEntered(t)
			// Released only now: the outcome cannot be posted while run
			// is still going (it would be handled there, and waitPost
			// would wait for a post that has already been taken).
			g.release <- struct{}{}
			h.waitPost()
			h.run(30*time.Second, ns, cs)
			if lnsD.Ended() != EndDataPlane || len(ns.call.hangup) != 1 || len(h.acct.starts) != 0 || ns.call.established != 0 {
				t.Fatalf("ended %v, hangups %v, starts %d, established %d", lnsD.Ended(), ns.call.reason, len(h.acct.starts), ns.call.established)
			}
			logs := h.logged("data path refused the subscriber's network: closing the session")
			if len(logs) != 1 || !strings.Contains(fmt.Sprint(logs[0].ContextMap()["error"]), tc.wantErr) {
				t.Fatalf("logged %v, want one line with %q", logs, tc.wantErr)
			}
			if n := fault.Total() - before; n != tc.panics {
				t.Fatalf("%d panics counted, want %d", n, tc.panics)
			}
		})
	}
}
