package tunnel

import (
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/l2tpd/l2tpd/l2tp"
)

// seeded is a deterministic io.Reader for IDs, challenges and vectors.
type seeded struct{ r *rand.ChaCha8 }

func newSeeded(seed byte) *seeded {
	var s [32]byte
	s[0] = seed
	return &seeded{rand.NewChaCha8(s)}
}
func (s *seeded) Read(p []byte) (int, error) { return s.r.Read(p) }

// pair wires an initiator (LAC) and a responder (LNS) core back to back.
type pair struct {
	t        *testing.T
	now      time.Time
	lac, lns *Tunnel
	lacEv    []Event
	lnsEv    []Event
	loss     float64
	rng      *rand.Rand
	// tamper, when set, may rewrite datagrams from the LAC to the LNS.
	tamper func(b []byte) []byte
}

func cfg(id uint32, host string, seed byte) Config {
	return Config{LocalID: id, HostName: host, Rand: newSeeded(seed)}
}

func newPair(t *testing.T, lacCfg, lnsCfg Config) *pair {
	t.Helper()
	p := &pair{t: t, now: time.Unix(1_700_000_000, 0), rng: rand.New(rand.NewPCG(1, 2))}
	lac, err := NewInitiator(lacCfg, p.now)
	if err != nil {
		t.Fatal(err)
	}
	p.lac = lac
	// Carry the SCCRQ to a new responder, as the endpoint does.
	out := lac.Output(p.now, nil)
	if len(out) != 1 {
		t.Fatalf("initiator produced %d datagrams, want 1 SCCRQ", len(out))
	}
	hdr, payload, err := l2tp.ParseHeader(out[0])
	if err != nil {
		t.Fatal(err)
	}
	m, err := l2tp.ParseMessage(payload, lnsCfg.Secret)
	if err != nil {
		t.Fatalf("SCCRQ: %v", err)
	}
	if m.Type != l2tp.MsgSCCRQ || hdr.TunnelID != 0 {
		t.Fatalf("first message %v to tunnel %d, want SCCRQ to tunnel 0", m.Type, hdr.TunnelID)
	}
	lns, err := NewResponder(lnsCfg, p.now, hdr, m)
	if err != nil {
		t.Fatal(err)
	}
	p.lns = lns
	return p
}

// step moves every pending datagram across (with loss), collects events.
func (p *pair) step() int {
	moved := 0
	for _, b := range p.lac.Output(p.now, nil) {
		if p.tamper != nil {
			b = p.tamper(append([]byte(nil), b...))
		}
		moved++
		if p.rng.Float64() < p.loss {
			continue
		}
		hdr, payload, err := l2tp.ParseHeader(b)
		if err != nil {
			p.t.Fatalf("LAC sent an unparsable datagram: %v", err)
		}
		if hdr.TunnelID != p.lns.LocalID() && hdr.TunnelID != 0 { // 0: SCCRQ retransmission
			p.t.Fatalf("LAC sent to tunnel %d, LNS is %d", hdr.TunnelID, p.lns.LocalID())
		}
		p.lns.Receive(p.now, hdr, payload)
	}
	for _, b := range p.lns.Output(p.now, nil) {
		moved++
		if p.rng.Float64() < p.loss {
			continue
		}
		hdr, payload, err := l2tp.ParseHeader(b)
		if err != nil {
			p.t.Fatalf("LNS sent an unparsable datagram: %v", err)
		}
		if hdr.TunnelID != p.lac.LocalID() {
			p.t.Fatalf("LNS sent to tunnel %d, LAC is %d", hdr.TunnelID, p.lac.LocalID())
		}
		p.lac.Receive(p.now, hdr, payload)
	}
	p.lacEv = p.lac.Events(p.lacEv)
	p.lnsEv = p.lns.Events(p.lnsEv)
	return moved
}

// run exchanges until quiet, advancing the fake clock to the next deadline.
func (p *pair) run(limit time.Duration) {
	end := p.now.Add(limit)
	for p.now.Before(end) {
		for p.step() > 0 {
		}
		next := earliest(p.lac.Deadline(), p.lns.Deadline())
		if next.IsZero() || next.After(end) {
			return
		}
		if next.After(p.now) {
			p.now = next
		}
		p.lac.Tick(p.now)
		p.lns.Tick(p.now)
	}
}

func earliest(a, b time.Time) time.Time {
	switch {
	case a.IsZero():
		return b
	case b.IsZero():
		return a
	case a.Before(b):
		return a
	}
	return b
}

func count[T Event](evs []Event) (n int, last T) {
	for _, e := range evs {
		if v, ok := e.(T); ok {
			n++
			last = v
		}
	}
	return
}

func TestTunnelEstablish(t *testing.T) {
	p := newPair(t, cfg(100, "lac", 1), cfg(200, "lns", 2))
	p.run(5 * time.Second)
	if p.lac.State() != StateEstablished || p.lns.State() != StateEstablished {
		t.Fatalf("states lac=%v lns=%v, want established", p.lac.State(), p.lns.State())
	}
	if n, up := count[TunnelUp](p.lacEv); n != 1 || up.PeerHostName != "lns" || up.PeerID != 200 {
		t.Fatalf("LAC TunnelUp events %d %+v", n, up)
	}
	if n, up := count[TunnelUp](p.lnsEv); n != 1 || up.PeerHostName != "lac" || up.PeerID != 100 {
		t.Fatalf("LNS TunnelUp events %d %+v", n, up)
	}
}

func TestTunnelAuthentication(t *testing.T) {
	cases := []struct {
		name         string
		lacSecret    string
		lacChallenge bool
		lnsSecret    string
		lnsChallenge bool
		hide         bool
		wantUp       bool
		wantResult   uint16
	}{
		{"both challenge, same secret", "s3cret", true, "s3cret", true, false, true, 0},
		{"both challenge, hidden AVPs", "s3cret", true, "s3cret", true, true, true, 0},
		{"LNS challenges only", "s3cret", false, "s3cret", true, false, true, 0},
		{"LAC challenges only", "s3cret", true, "s3cret", false, false, true, 0},
		{"LNS challenges, wrong secret", "wrong", false, "s3cret", true, false, false, l2tp.ResultStopNotAuthorized},
		{"LAC challenges, wrong secret", "s3cret", true, "wrong", false, false, false, l2tp.ResultStopNotAuthorized},
		{"LNS challenges, LAC has no secret", "", false, "s3cret", true, false, false, l2tp.ResultStopNotAuthorized},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			lc := cfg(100, "lac", 1)
			lc.Secret, lc.Challenge, lc.HideAVPs = []byte(c.lacSecret), c.lacChallenge, c.hide
			nc := cfg(200, "lns", 2)
			nc.Secret, nc.Challenge, nc.HideAVPs = []byte(c.lnsSecret), c.lnsChallenge, c.hide
			p := newPair(t, lc, nc)
			p.run(40 * time.Second)
			if c.wantUp {
				if p.lac.State() != StateEstablished || p.lns.State() != StateEstablished {
					t.Fatalf("states lac=%v lns=%v, want established", p.lac.State(), p.lns.State())
				}
				return
			}
			nl, dl := count[TunnelDown](p.lacEv)
			nn, dn := count[TunnelDown](p.lnsEv)
			if p.lac.State() != StateDead || p.lns.State() != StateDead {
				t.Fatalf("states lac=%v lns=%v, want dead after the hold", p.lac.State(), p.lns.State())
			}
			// One side detects the failure and sends StopCCN, the other
			// receives it: both report it with the result code.
			if nl != 1 || nn != 1 || dl.Result.Result != c.wantResult || dn.Result.Result != c.wantResult {
				t.Fatalf("TunnelDown lac=%d %+v lns=%d %+v, want result %d on both", nl, dl, nn, dn, c.wantResult)
			}
			if dl.ByPeer == dn.ByPeer {
				t.Fatalf("exactly one side should have received the StopCCN: lac.ByPeer=%v lns.ByPeer=%v", dl.ByPeer, dn.ByPeer)
			}
		})
	}
}

func TestHiddenAVPsOnTheWire(t *testing.T) {
	lc := cfg(100, "lac", 1)
	lc.Secret, lc.HideAVPs = []byte("k"), true
	nc := cfg(200, "lns", 2)
	nc.Secret, nc.HideAVPs = []byte("k"), true
	p := newPair(t, lc, nc)
	p.run(5 * time.Second)
	// Capture the ICRQ and check Assigned Session ID travels hidden.
	var sawHidden bool
	p.tamper = func(b []byte) []byte {
		_, payload, err := l2tp.ParseHeader(b)
		if err == nil && len(payload) > 0 {
			if m, err := l2tp.ParseMessage(payload, []byte("k")); err == nil && m.Type == l2tp.MsgICRQ {
				a, ok := m.Find(l2tp.AVPAssignedSessionID)
				sawHidden = ok && a.Hidden
			}
		}
		return b
	}
	if _, err := p.lac.PlaceCall(p.now, Incoming, CallInfo{CallingNumber: "555"}); err != nil {
		t.Fatal(err)
	}
	p.run(5 * time.Second)
	if !sawHidden {
		t.Fatal("ICRQ's Assigned Session ID was not hidden")
	}
	if n, _ := count[SessionUp](p.lnsEv); n != 1 {
		t.Fatalf("LNS SessionUp %d, want 1", n)
	}
}

func TestIncomingCall(t *testing.T) {
	p := newPair(t, cfg(100, "lac", 1), cfg(200, "lns", 2))
	p.run(5 * time.Second)
	id, err := p.lac.PlaceCall(p.now, Incoming, CallInfo{CallingNumber: "0123", CalledNumber: "999", TxConnectSpeed: 1e6, SequencingRequired: true})
	if err != nil {
		t.Fatal(err)
	}
	p.run(5 * time.Second)
	nl, ul := count[SessionUp](p.lacEv)
	nn, un := count[SessionUp](p.lnsEv)
	if nl != 1 || nn != 1 {
		t.Fatalf("SessionUp lac=%d lns=%d", nl, nn)
	}
	if ul.ID != id || un.PeerID != id || ul.PeerID != un.ID {
		t.Fatalf("IDs don't match: lac %+v lns %+v", ul, un)
	}
	if un.Info.CallingNumber != "0123" || un.Info.CalledNumber != "999" || un.Info.TxConnectSpeed != 1e6 || !un.Info.SequencingRequired {
		t.Fatalf("LNS call info %+v", un.Info)
	}
	if s := p.lns.Session(un.ID); s == nil || s.State != SessionEstablished || s.WeAreLAC {
		t.Fatalf("LNS session state %+v", s)
	}
	// The LNS hangs up: both see SessionDown, the LAC by peer.
	if err := p.lns.Hangup(p.now, un.ID, l2tp.ResultCode{Result: l2tp.ResultCDNAdmin, Message: "bye"}, "admin"); err != nil {
		t.Fatal(err)
	}
	p.run(5 * time.Second)
	n, d := count[SessionDown](p.lacEv)
	if n != 1 || !d.ByPeer || d.Result.Result != l2tp.ResultCDNAdmin || d.Result.Message != "bye" || !d.WasUp {
		t.Fatalf("LAC SessionDown %d %+v", n, d)
	}
	if p.lac.NumSessions() != 0 || p.lns.NumSessions() != 0 {
		t.Fatalf("sessions left: lac=%d lns=%d", p.lac.NumSessions(), p.lns.NumSessions())
	}
}

func TestOutgoingCall(t *testing.T) {
	p := newPair(t, cfg(100, "lac", 1), cfg(200, "lns", 2))
	p.run(5 * time.Second)
	id, err := p.lns.PlaceCall(p.now, Outgoing, CallInfo{CalledNumber: "12345", MaxBPS: 1e6})
	if err != nil {
		t.Fatal(err)
	}
	p.run(5 * time.Second)
	nl, ul := count[SessionUp](p.lacEv)
	nn, un := count[SessionUp](p.lnsEv)
	if nl != 1 || nn != 1 || un.ID != id || ul.PeerID != id {
		t.Fatalf("SessionUp lac=%d %+v lns=%d %+v", nl, ul, nn, un)
	}
	if ul.Info.CalledNumber != "12345" {
		t.Fatalf("LAC call info %+v", ul.Info)
	}
}

type refuseAll struct{ rc l2tp.ResultCode }

func (r refuseAll) AdmitCall(*Tunnel, Direction, *CallInfo) *l2tp.ResultCode { return &r.rc }

func TestCallRefusedByPolicy(t *testing.T) {
	nc := cfg(200, "lns", 2)
	nc.Policy = refuseAll{l2tp.ResultCode{Result: l2tp.ResultCDNTempResources, Error: l2tp.ErrCodeNoResources, Message: "full"}}
	p := newPair(t, cfg(100, "lac", 1), nc)
	p.run(5 * time.Second)
	if _, err := p.lac.PlaceCall(p.now, Incoming, CallInfo{}); err != nil {
		t.Fatal(err)
	}
	p.run(5 * time.Second)
	n, d := count[SessionDown](p.lacEv)
	if n != 1 || d.Result.Result != l2tp.ResultCDNTempResources || d.Result.Message != "full" || d.WasUp {
		t.Fatalf("LAC SessionDown %d %+v", n, d)
	}
	if n, _ := count[SessionUp](p.lnsEv); n != 0 {
		t.Fatal("LNS brought up a refused session")
	}
}

func TestMaxSessionsPerTunnel(t *testing.T) {
	nc := cfg(200, "lns", 2)
	nc.MaxSessions = 2
	p := newPair(t, cfg(100, "lac", 1), nc)
	p.run(5 * time.Second)
	for range 3 {
		if _, err := p.lac.PlaceCall(p.now, Incoming, CallInfo{}); err != nil {
			t.Fatal(err)
		}
	}
	p.run(5 * time.Second)
	if n, _ := count[SessionUp](p.lnsEv); n != 2 {
		t.Fatalf("LNS SessionUp %d, want 2", n)
	}
	n, d := count[SessionDown](p.lacEv)
	if n != 1 || d.Result.Result != l2tp.ResultCDNTempResources {
		t.Fatalf("LAC SessionDown %d %+v, want one refusal for lack of resources", n, d)
	}
}

func TestStopCCNClosesSessionsAndHoldsState(t *testing.T) {
	p := newPair(t, cfg(100, "lac", 1), cfg(200, "lns", 2))
	p.run(5 * time.Second)
	for range 3 {
		if _, err := p.lac.PlaceCall(p.now, Incoming, CallInfo{}); err != nil {
			t.Fatal(err)
		}
	}
	p.run(5 * time.Second)
	start := p.now
	p.lns.Close(p.now, l2tp.ResultCode{Result: l2tp.ResultStopShuttingDown}, "shutdown")
	p.step()
	if p.lns.State() != StateClosing || p.lac.State() != StateClosing {
		t.Fatalf("states lac=%v lns=%v, want closing", p.lac.State(), p.lns.State())
	}
	if n, _ := count[SessionDown](p.lacEv); n != 3 {
		t.Fatalf("LAC SessionDown %d, want 3", n)
	}
	if n, d := count[TunnelDown](p.lacEv); n != 1 || !d.ByPeer || d.Result.Result != l2tp.ResultStopShuttingDown {
		t.Fatalf("LAC TunnelDown %d %+v", n, d)
	}
	p.run(time.Minute)
	if p.lns.State() != StateDead || p.lac.State() != StateDead {
		t.Fatalf("states lac=%v lns=%v, want dead", p.lac.State(), p.lns.State())
	}
	if held := p.now.Sub(start); held < DefaultStopHold {
		t.Fatalf("state released after %v, want the %v hold", held, DefaultStopHold)
	}
}

func TestPeerSilentTearsDown(t *testing.T) {
	p := newPair(t, cfg(100, "lac", 1), cfg(200, "lns", 2))
	p.run(5 * time.Second)
	p.loss = 1 // the link dies
	p.lac.Close(p.now, l2tp.ResultCode{Result: l2tp.ResultStopGeneral}, "test")
	if _, err := p.lns.PlaceCall(p.now, Outgoing, CallInfo{}); err != nil {
		t.Fatal(err)
	}
	p.run(2 * time.Minute)
	n, d := count[TunnelDown](p.lnsEv)
	if n != 1 || d.ByPeer {
		t.Fatalf("LNS TunnelDown %d %+v, want one local teardown after retransmissions", n, d)
	}
	if p.lns.State() != StateDead {
		t.Fatalf("LNS state %v, want dead", p.lns.State())
	}
}

func TestLossyLinkConverges(t *testing.T) {
	for seed := uint64(0); seed < 20; seed++ {
		lc := cfg(100, "lac", 1)
		lc.Secret, lc.Challenge, lc.HideAVPs = []byte("k"), true, true
		nc := cfg(200, "lns", 2)
		nc.Secret, nc.Challenge, nc.HideAVPs = []byte("k"), true, true
		p := newPair(t, lc, nc)
		p.rng = rand.New(rand.NewPCG(seed, 7))
		p.loss = 0.2
		p.run(30 * time.Second)
		if p.lac.State() != StateEstablished || p.lns.State() != StateEstablished {
			t.Fatalf("seed %d: states lac=%v lns=%v", seed, p.lac.State(), p.lns.State())
		}
		for range 10 {
			if _, err := p.lac.PlaceCall(p.now, Incoming, CallInfo{}); err != nil {
				t.Fatal(err)
			}
		}
		p.run(60 * time.Second)
		if n, _ := count[SessionUp](p.lnsEv); n != 10 {
			t.Fatalf("seed %d: LNS SessionUp %d, want 10", seed, n)
		}
		if n, _ := count[SessionUp](p.lacEv); n != 10 {
			t.Fatalf("seed %d: LAC SessionUp %d, want 10", seed, n)
		}
	}
}

func TestHelloWhenIdle(t *testing.T) {
	lc := cfg(100, "lac", 1)
	lc.Control.HelloInterval = 10 * time.Second
	p := newPair(t, lc, cfg(200, "lns", 2))
	p.run(5 * time.Second)
	before := p.lns.ChannelStats()
	p.run(11 * time.Second)
	after := p.lns.ChannelStats()
	if after.Received <= before.Received {
		t.Fatalf("no Hello reached the LNS after an idle interval: received %d -> %d", before.Received, after.Received)
	}
	if p.lac.State() != StateEstablished {
		t.Fatal("tunnel went down over a Hello")
	}
}

func TestUnknownMandatoryAVP(t *testing.T) {
	p := newPair(t, cfg(100, "lac", 1), cfg(200, "lns", 2))
	p.run(5 * time.Second)
	// Inject an ICRQ with an unknown mandatory vendor AVP from the LAC.
	m := &l2tp.Message{Type: l2tp.MsgICRQ}
	m.AddUint16(l2tp.AVPAssignedSessionID, true, 77)
	m.AddUint32(l2tp.AVPCallSerialNumber, true, 1)
	m.Add(l2tp.AVP{Mandatory: true, Vendor: 9999, Type: 1, Value: []byte{1}})
	p.lac.send(p.now, 0, m)
	p.run(5 * time.Second)
	// Session-scoped with session ID 0 in the header: the tunnel is
	// cleared with error code 8.
	n, d := count[TunnelDown](p.lnsEv)
	if n != 1 || d.Result.Error != l2tp.ErrCodeUnknownMandatory {
		t.Fatalf("LNS TunnelDown %d %+v, want error code 8", n, d)
	}
}

func TestMalformedDroppedNotAcked(t *testing.T) {
	lc := cfg(100, "lac", 1)
	lc.Secret, lc.HideAVPs = []byte("right"), true
	nc := cfg(200, "lns", 2)
	nc.Secret = []byte("right")
	p := newPair(t, lc, nc)
	p.run(5 * time.Second)
	// The LNS's secret changes under it: hidden AVPs no longer reveal.
	p.lns.cfg.Secret = []byte("wrong")
	if _, err := p.lac.PlaceCall(p.now, Incoming, CallInfo{}); err != nil {
		t.Fatal(err)
	}
	p.run(3 * time.Second)
	n, m := count[Malformed](p.lnsEv)
	if n == 0 {
		t.Fatal("no Malformed event for an undecipherable message")
	}
	var e *l2tp.UnknownAVPError
	if errors.As(m.Err, &e) {
		t.Fatalf("wrong error kind: %v", m.Err)
	}
	if nu, _ := count[SessionUp](p.lnsEv); nu != 0 {
		t.Fatal("LNS accepted an undecipherable ICRQ")
	}
	if p.lns.State() != StateEstablished {
		t.Fatalf("a bad message changed the tunnel state to %v", p.lns.State())
	}
}

func TestTieBreaker(t *testing.T) {
	if !TieBreakerWins(1, 2) || TieBreakerWins(2, 1) || TieBreakerWins(5, 5) {
		t.Fatal("lower tie breaker must win; equal values lose on both sides")
	}
}

// Closing a tunnel whose SCCRQ was never answered sends nothing (a StopCCN
// to tunnel 0 is refused by every peer) and releases it at once.
func TestCloseBeforeSCCRPSendsNothing(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	lac, err := NewInitiator(cfg(100, "lac", 1), now)
	if err != nil {
		t.Fatal(err)
	}
	if out := lac.Output(now, nil); len(out) != 1 {
		t.Fatalf("want the SCCRQ, got %d datagrams", len(out))
	}
	lac.Close(now, l2tp.ResultCode{Result: l2tp.ResultStopGeneral}, "setup timeout")
	if out := lac.Output(now.Add(2*time.Second), nil); len(out) != 0 {
		t.Fatalf("sent %d datagrams after closing an unanswered tunnel, want none", len(out))
	}
	if lac.State() != StateDead {
		t.Fatalf("state %v, want dead", lac.State())
	}
	if n, _ := count[TunnelDown](lac.Events(nil)); n != 1 {
		t.Fatalf("TunnelDown %d, want 1", n)
	}
}

// constRand reads as the same byte over and over: every random session
// ID it gives is the same.
type constRand byte

func (c constRand) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(c)
	}
	return len(p), nil
}

// A reserved session ID is not given to a new call, even when the random
// draw keeps landing on it; once released it is given again.
func TestReservedSessionIDNotReused(t *testing.T) {
	nc := cfg(200, "lns", 2)
	nc.Rand = constRand(5) // every draw: session ID 0x0505
	p := newPair(t, cfg(100, "lac", 1), nc)
	p.run(5 * time.Second)
	call := func() uint32 {
		t.Helper()
		p.lnsEv = p.lnsEv[:0]
		if _, err := p.lac.PlaceCall(p.now, Incoming, CallInfo{}); err != nil {
			t.Fatal(err)
		}
		p.run(5 * time.Second)
		n, up := count[SessionUp](p.lnsEv)
		if n != 1 {
			t.Fatalf("LNS SessionUp %d, want 1", n)
		}
		if err := p.lns.Hangup(p.now, up.ID, l2tp.ResultCode{Result: l2tp.ResultCDNAdmin}, "test"); err != nil {
			t.Fatal(err)
		}
		p.run(5 * time.Second)
		return up.ID
	}
	const drawn = 0x0505
	if id := call(); id != drawn {
		t.Fatalf("first call got session %#x, want %#x", id, drawn)
	}
	p.lns.ReserveSessionID(drawn)
	if id := call(); id == drawn {
		t.Fatalf("a call got reserved session ID %#x", id)
	}
	p.lns.ReleaseSessionID(drawn)
	if id := call(); id != drawn {
		t.Fatalf("after release a call got session %#x, want %#x", id, drawn)
	}
}
