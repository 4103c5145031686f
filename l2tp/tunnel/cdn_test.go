package tunnel

import (
	"testing"
	"time"

	"github.com/l2tpd/l2tpd/l2tp"
)

// upCall establishes a pair and one incoming call; it returns the call's
// IDs on both sides.
func upCall(t *testing.T) (p *pair, lacID, lnsID uint32) {
	t.Helper()
	p = newPair(t, cfg(100, "lac", 1), cfg(200, "lns", 2))
	p.run(5 * time.Second)
	id, err := p.lac.PlaceCall(p.now, Incoming, CallInfo{})
	if err != nil {
		t.Fatal(err)
	}
	p.run(5 * time.Second)
	n, up := count[SessionUp](p.lnsEv)
	if n != 1 {
		t.Fatalf("LNS SessionUp %d, want 1", n)
	}
	p.lacEv, p.lnsEv = nil, nil
	return p, id, up.ID
}

// checkQuiet asserts both tunnels are established, fully acknowledged,
// without sessions and without Malformed events, and that a new call still
// comes up on them.
func checkQuiet(t *testing.T, p *pair) {
	t.Helper()
	if p.lac.State() != StateEstablished || p.lns.State() != StateEstablished {
		t.Fatalf("states lac=%v lns=%v, want established", p.lac.State(), p.lns.State())
	}
	if !p.lac.Acknowledged() || !p.lns.Acknowledged() {
		t.Fatalf("unacknowledged messages left: lac=%v lns=%v", p.lac.Acknowledged(), p.lns.Acknowledged())
	}
	if p.lac.NumSessions() != 0 || p.lns.NumSessions() != 0 {
		t.Fatalf("sessions left: lac=%d lns=%d", p.lac.NumSessions(), p.lns.NumSessions())
	}
	for _, evs := range [][]Event{p.lacEv, p.lnsEv} {
		if n, m := count[Malformed](evs); n != 0 {
			t.Fatalf("Malformed event: %v", m.Err)
		}
		if n, _ := count[TunnelDown](evs); n != 0 {
			t.Fatal("a crossing CDN took the tunnel down")
		}
	}
	p.lacEv, p.lnsEv = nil, nil
	if _, err := p.lac.PlaceCall(p.now, Incoming, CallInfo{}); err != nil {
		t.Fatal(err)
	}
	p.run(5 * time.Second)
	if n, _ := count[SessionUp](p.lnsEv); n != 1 {
		t.Fatalf("LNS SessionUp %d after the crossing CDNs, want 1", n)
	}
}

// Both sides clear the same established call at once: the CDNs cross. Each
// side reports its own hangup (not by peer) once, acknowledges the peer's
// CDN for a session it no longer has, and the tunnel carries on.
func TestCrossingCDNs(t *testing.T) {
	p, lacID, lnsID := upCall(t)
	if err := p.lac.Hangup(p.now, lacID, l2tp.ResultCode{Result: l2tp.ResultCDNLostCarrier}, "pppd exited"); err != nil {
		t.Fatal(err)
	}
	if err := p.lns.Hangup(p.now, lnsID, l2tp.ResultCode{Result: l2tp.ResultCDNAdmin}, "admin"); err != nil {
		t.Fatal(err)
	}
	// Both CDNs are on the wire before either arrives.
	lacOut := p.lac.Output(p.now, nil)
	lnsOut := p.lns.Output(p.now, nil)
	if len(lacOut) != 1 || len(lnsOut) != 1 {
		t.Fatalf("datagrams lac=%d lns=%d, want one CDN each", len(lacOut), len(lnsOut))
	}
	deliver := func(to *Tunnel, b []byte) {
		hdr, payload, err := l2tp.ParseHeader(b)
		if err != nil {
			t.Fatal(err)
		}
		to.Receive(p.now, hdr, payload)
	}
	deliver(p.lns, lacOut[0])
	deliver(p.lac, lnsOut[0])
	p.run(10 * time.Second)
	p.lacEv = p.lac.Events(p.lacEv)
	p.lnsEv = p.lns.Events(p.lnsEv)
	for name, evs := range map[string][]Event{"LAC": p.lacEv, "LNS": p.lnsEv} {
		n, d := count[SessionDown](evs)
		if n != 1 || d.ByPeer || !d.WasUp {
			t.Fatalf("%s SessionDown %d %+v, want one, own hangup, was up", name, n, d)
		}
	}
	checkQuiet(t, p)
}

// The LAC gives up on a call (CDN) while the LNS's ICRP is in flight: the
// ICRP finds no session at the LAC, the CDN clears the LNS's half-open
// session, and the tunnel carries on.
func TestCDNCrossesICRP(t *testing.T) {
	p := newPair(t, cfg(100, "lac", 1), cfg(200, "lns", 2))
	p.run(5 * time.Second)
	id, err := p.lac.PlaceCall(p.now, Incoming, CallInfo{})
	if err != nil {
		t.Fatal(err)
	}
	// ICRQ to the LNS; its ICRP is held back.
	for _, b := range p.lac.Output(p.now, nil) {
		hdr, payload, _ := l2tp.ParseHeader(b)
		p.lns.Receive(p.now, hdr, payload)
	}
	icrp := p.lns.Output(p.now, nil)
	if err := p.lac.Hangup(p.now, id, l2tp.ResultCode{Result: l2tp.ResultCDNAdmin}, "gave up"); err != nil {
		t.Fatal(err)
	}
	for _, b := range icrp {
		hdr, payload, _ := l2tp.ParseHeader(b)
		p.lac.Receive(p.now, hdr, payload)
	}
	p.run(10 * time.Second)
	n, d := count[SessionDown](p.lnsEv)
	if n != 1 || !d.ByPeer || d.WasUp {
		t.Fatalf("LNS SessionDown %d %+v, want one by peer, never up", n, d)
	}
	if n, _ := count[SessionUp](p.lacEv); n != 0 {
		t.Fatal("the LAC brought up a call it had cleared")
	}
	p.lacEv, p.lnsEv = nil, nil
	checkQuiet(t, p)
}

// A tunnel whose peer went silent is released as soon as the
// retransmissions fail, not after a further StopCCN hold.
func TestSilentPeerReleasedAtOnce(t *testing.T) {
	p := newPair(t, cfg(100, "lac", 1), cfg(200, "lns", 2))
	p.run(5 * time.Second)
	p.loss = 1
	if _, err := p.lns.PlaceCall(p.now, Outgoing, CallInfo{}); err != nil {
		t.Fatal(err)
	}
	var downAt time.Time
	for i := 0; i < 100 && p.lns.State() != StateDead; i++ {
		p.step()
		if n, _ := count[TunnelDown](p.lnsEv); n > 0 && downAt.IsZero() {
			downAt = p.now
		}
		next := p.lns.Deadline()
		if next.IsZero() {
			break
		}
		if next.After(p.now) {
			p.now = next
		}
		p.lns.Tick(p.now)
	}
	if p.lns.State() != StateDead || downAt.IsZero() {
		t.Fatalf("state %v, down at %v: want dead after TunnelDown", p.lns.State(), downAt)
	}
	if held := p.now.Sub(downAt); held > time.Second {
		t.Fatalf("state held %v after the retransmissions failed", held)
	}
}
