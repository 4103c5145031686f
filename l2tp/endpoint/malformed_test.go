package endpoint

import (
	"context"
	"crypto/md5"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest/observer"

	"github.com/l2tpd/l2tpd/l2tp"
	"github.com/l2tpd/l2tpd/l2tp/control"
	"github.com/l2tpd/l2tpd/l2tp/tunnel"
)

// rawAVP encodes one AVP by hand: flags are the M (0x8000) and H (0x4000)
// bits; length is the Length field (-1: the real length).
func rawAVP(flags uint16, length int, typ uint16, val []byte) []byte {
	if length < 0 {
		length = 6 + len(val)
	}
	b := binary.BigEndian.AppendUint16(nil, flags|uint16(length)&0x3ff)
	b = binary.BigEndian.AppendUint16(b, 0)
	b = binary.BigEndian.AppendUint16(b, typ)
	return append(b, val...)
}

func msgTypeAVP(mt l2tp.MessageType) []byte {
	return rawAVP(0x8000, -1, 0, binary.BigEndian.AppendUint16(nil, uint16(mt)))
}

// ctlPacket wraps AVP bytes in a control header.
func ctlPacket(tunnelID, sessionID uint32, ns, nr uint16, avps ...[]byte) []byte {
	var body []byte
	for _, a := range avps {
		body = append(body, a...)
	}
	h := l2tp.Header{Control: true, HasLength: true, HasSeq: true, Version: 2, TunnelID: tunnelID, SessionID: sessionID, Ns: ns, Nr: nr}
	return append(l2tp.AppendHeader(nil, h, len(body)), body...)
}

// hiddenAVP hides val as AVP typ by RFC 2661 4.3 (MD5 of the type in
// network order, the secret and the Random Vector), with subLen as the
// Original Length inside (which may lie).
func hiddenAVP(typ uint16, secret, rv, val []byte, subLen int) []byte {
	sub := binary.BigEndian.AppendUint16(nil, uint16(subLen))
	sub = append(sub, val...)
	var tb [2]byte
	binary.BigEndian.PutUint16(tb[:], typ)
	key := md5.Sum(append(append(tb[:], secret...), rv...))
	for i := 0; i < len(sub); i += 16 {
		for j := i; j < min(i+16, len(sub)); j++ {
			sub[j] ^= key[j-i]
		}
		key = md5.Sum(append(append([]byte(nil), secret...), sub[i:min(i+16, len(sub))]...))
	}
	return rawAVP(0xc000, -1, typ, sub)
}

// sccrq is a well-formed SCCRQ with the given Assigned Tunnel ID.
func sccrq(peerTID uint16) []byte {
	return ctlPacket(0, 0, 0, 0,
		msgTypeAVP(l2tp.MsgSCCRQ),
		rawAVP(0x8000, -1, uint16(l2tp.AVPProtocolVersion), []byte{1, 0}),
		rawAVP(0x8000, -1, uint16(l2tp.AVPHostName), []byte("flood")),
		rawAVP(0x8000, -1, uint16(l2tp.AVPFramingCapabilities), []byte{0, 0, 0, 3}),
		rawAVP(0x8000, -1, uint16(l2tp.AVPAssignedTunnelID), binary.BigEndian.AppendUint16(nil, peerTID)),
	)
}

func udpFrom(t *testing.T, local string) *net.UDPConn {
	t.Helper()
	lc := net.ListenConfig{Control: reuseAddr}
	pc, err := lc.ListenPacket(context.Background(), "udp4", local)
	if err != nil {
		t.Fatalf("socket on %s: %v", local, err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc.(*net.UDPConn)
}

func sendAll(t *testing.T, c *net.UDPConn, to netip.AddrPort, pkts [][]byte) {
	t.Helper()
	for _, p := range pkts {
		if _, err := c.WriteToUDPAddrPort(p, to); err != nil {
			t.Fatalf("send from %v: %v", c.LocalAddr(), err)
		}
	}
}

// eventually polls cond until it holds or d passes (the conditions are
// states of other goroutines that no channel reports).
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		<-tick.C
	}
}

func malformedEntries(logs *observer.ObservedLogs) []observer.LoggedEntry {
	return logs.FilterMessageSnippet("dropped malformed").All()
}

// TestMalformedInput sends every kind of bad datagram at an LNS endpoint
// that holds a good tunnel with sessions, from the peer's own address and
// port and from others, then checks that each was dropped and logged once
// per peer and cause, that a flood of SCCRQs is bounded, that the good
// tunnel still places calls and answers Hellos, and that no goroutine is
// left behind.
func TestMalformedInput(t *testing.T) {
	secret := []byte("s")
	lnsRec, lacRec := newRecorder(), newRecorder()
	lnsRec.settings.Tunnel.Secret = secret
	lnsRec.settings.Tunnel.StopHold = 300 * time.Millisecond
	lnsRec.settings.Tunnel.Control = control.Config{HelloInterval: time.Minute, RetransmitInitial: 400 * time.Millisecond, MaxRetransmits: 1}
	lns, lac, logs := newPairCfg(t, lnsRec, lacRec, func(c *Config) {
		c.MaxSetupPerPeer, c.MaxRefusedPerPeer = 4, 2
	})
	st := lacRec.settings
	st.Tunnel.Secret = secret
	st.Tunnel.Control.HelloInterval = 100 * time.Millisecond
	st.Handler = lacRec
	// A given local port (SO_REUSEADDR): the spoofer below shares it.
	lacT, err := lac.Dial(lns.ListenAddrs()[0], freeUDPPort(t, "127.0.0.1"), st)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, lacRec.tunnelsUp, "LAC tunnel up")
	lnsT := waitFor(t, lnsRec.tunnelsUp, "LNS tunnel up")
	for range 2 {
		if _, err := lacT.PlaceCall(tunnel.Incoming, tunnel.CallInfo{}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, lnsRec.sessUp, "LNS session up")
		waitFor(t, lacRec.sessUp, "LAC session up")
	}
	goroutines := runtime.NumGoroutine()
	t.Cleanup(func() {
		if t.Failed() {
			for _, e := range logs.All() {
				t.Logf("log: %s %v", e.Message, e.ContextMap())
			}
		}
	})

	to := lns.ListenAddrs()[0]
	attacker := udpFrom(t, "127.0.0.1:0")
	elsewhere := udpFrom(t, "127.0.0.2:0")
	// The LAC's own address and port (SO_REUSEADDR, as its socket has).
	spoof := udpFrom(t, lnsT.Peer().String())

	rv := []byte("0123456789abcdef")
	classes := []struct {
		name string
		from *net.UDPConn
		pkts [][]byte
		// want: a substring of the logged error; 0 entries means the
		// datagram must be dropped without a log line.
		want string
	}{
		{"short packets", nil, func() (p [][]byte) {
			full := ctlPacket(0, 0, 0, 0, msgTypeAVP(l2tp.MsgSCCRQ))
			for n := range 12 {
				p = append(p, full[:n])
			}
			return p
		}(), "l2tp header"},
		{"AVP lengths 0..5", nil, func() (p [][]byte) {
			for l := range 6 {
				p = append(p, ctlPacket(0, 0, 0, 0, msgTypeAVP(l2tp.MsgSCCRQ), rawAVP(0x8000, l, uint16(l2tp.AVPHostName), []byte("abcdef"))))
			}
			return p
		}(), "below 6"},
		{"AVP length past the end", nil, [][]byte{
			ctlPacket(0, 0, 0, 0, msgTypeAVP(l2tp.MsgSCCRQ), rawAVP(0x8000, 60, uint16(l2tp.AVPHostName), []byte("abc"))),
		}, "exceeds the"},
		{"hidden AVP, wrong secret", nil, [][]byte{
			ctlPacket(0, 0, 0, 0, msgTypeAVP(l2tp.MsgSCCRQ), rawAVP(0x8000, -1, uint16(l2tp.AVPRandomVector), rv),
				hiddenAVP(uint16(l2tp.AVPAssignedTunnelID), []byte("wrong"), rv, []byte{0, 9}, 2)),
		}, "hidden"},
		{"hidden AVP, deciphered length beyond the AVP", nil, [][]byte{
			ctlPacket(0, 0, 0, 0, msgTypeAVP(l2tp.MsgSCCRQ), rawAVP(0x8000, -1, uint16(l2tp.AVPRandomVector), rv),
				hiddenAVP(uint16(l2tp.AVPAssignedTunnelID), secret, rv, []byte{0, 9}, 200)),
		}, "hidden"},
		{"Nr beyond what we sent, from the peer's address", spoof, [][]byte{
			ctlPacket(lnsT.ID(), 0, 40000, 30000, msgTypeAVP(l2tp.MsgHello)),
		}, "Nr acknowledges unsent"},
		{"Nr beyond what we sent, from another address", elsewhere, [][]byte{
			ctlPacket(lnsT.ID(), 0, 40000, 30000, msgTypeAVP(l2tp.MsgHello)),
		}, "unknown tunnel"},
		{"tunnel ID 0 on a Hello", nil, [][]byte{
			ctlPacket(0, 0, 0, 0, msgTypeAVP(l2tp.MsgHello)),
			ctlPacket(0, 0, 0, 0, msgTypeAVP(l2tp.MsgICRQ)),
		}, "tunnel ID 0"},
		{"data message for tunnel 0", nil, [][]byte{{0x00, 0x02, 0, 0, 0, 0, 0xff, 0x03}}, ""},
	}
	for i, c := range classes {
		if c.from == nil {
			// Causes are logged once per source address: each class
			// comes from an address of its own.
			c.from = udpFrom(t, fmt.Sprintf("127.0.0.%d:0", 10+i))
		}
		before := len(malformedEntries(logs))
		// Twice: the second round must not log again.
		sendAll(t, c.from, to, c.pkts)
		sendAll(t, c.from, to, c.pkts)
		if c.want == "" {
			continue
		}
		eventually(t, 5*time.Second, c.name+" is logged", func() bool {
			for _, e := range malformedEntries(logs)[before:] {
				if strings.Contains(e.ContextMap()["error"].(string), c.want) {
					return true
				}
			}
			return false
		})
	}

	// A flood of garbage, bounded.
	rng := rand.New(rand.NewPCG(1, 2))
	var flood [][]byte
	for range 3000 {
		p := make([]byte, rng.IntN(120))
		for i := range p {
			p[i] = byte(rng.Uint32())
		}
		if len(p) > 2 && rng.IntN(2) == 0 {
			p[0], p[1] = 0xc8, 0x02 // control, L, S, version 2
		}
		flood = append(flood, p)
	}
	sendAll(t, attacker, to, flood)

	// A flood of SCCRQs with fresh tunnel IDs from one address: at most
	// MaxSetupPerPeer tunnels in setup and MaxRefusedPerPeer refused ones
	// hold state; the rest get a StopCCN and no state.
	// The listener's socket buffer may still be full of the garbage, so
	// the flood is sent in rounds (fresh IDs each) until it is seen.
	nextID := uint16(1000)
	eventually(t, 10*time.Second, "the SCCRQ flood is refused statelessly", func() bool {
		if len(filterErr(malformedEntries(logs), "in setup from this peer")) > 0 {
			return true
		}
		var sccrqs [][]byte
		for range 50 {
			sccrqs = append(sccrqs, sccrq(nextID))
			nextID++
		}
		sendAll(t, attacker, to, sccrqs)
		return false
	})
	if ts := lns.Tunnels(); len(ts) > 1+4 {
		t.Errorf("%d tunnels after an SCCRQ flood, want at most 1 good + 4 in setup", len(ts))
	}
	stops := 0
	_ = attacker.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 2048)
	for stops == 0 {
		n, err := attacker.Read(buf)
		if err != nil {
			break
		}
		if _, payload, err := l2tp.ParseHeader(buf[:n]); err == nil && len(payload) > 0 {
			if m, err := l2tp.ParseMessage(payload, nil); err == nil && m.Type == l2tp.MsgStopCCN {
				stops++
			}
		}
	}
	if stops == 0 {
		t.Error("the flooding peer got no StopCCN")
	}

	// Each (peer address, cause) was logged once.
	seen := map[string]int{}
	for _, e := range malformedEntries(logs) {
		cm := e.ContextMap()
		peer, _ := netip.ParseAddrPort(cm["peer"].(string))
		seen[peer.Addr().String()+"|"+cm["error"].(string)]++
	}
	for k, n := range seen {
		if n > 1 {
			t.Errorf("logged %d times: %s", n, k)
		}
	}
	if n := len(malformedEntries(logs)); n > 40 {
		t.Errorf("%d malformed-message log lines for ~3,400 bad datagrams: not once per cause", n)
	}
	for _, l := range malformedEntries(logs) {
		t.Logf("logged: peer %v: %v", l.ContextMap()["peer"], l.ContextMap()["error"])
	}

	// The good tunnel still works: a new call comes up, Hellos are
	// answered (the LAC sends one every 100 ms when idle).
	if _, err := lacT.PlaceCall(tunnel.Incoming, tunnel.CallInfo{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, lnsRec.sessUp, "LNS session up after the attack")
	waitFor(t, lacRec.sessUp, "LAC session up after the attack")
	hellos := func() uint64 {
		got := make(chan uint64, 1)
		lnsT.do(func(time.Time) { got <- lnsT.core.ChannelStats().Received })
		select {
		case n := <-got:
			return n
		case <-lnsT.Done():
			t.Fatal("the good tunnel ended")
		}
		return 0
	}
	h0 := hellos()
	eventually(t, 5*time.Second, "Hellos reach the LNS", func() bool { return hellos() >= h0+3 })
	select {
	case <-lacT.Done():
		t.Fatal("the LAC's tunnel ended")
	default:
	}

	// The flood's tunnels expire; no goroutine is left behind.
	eventually(t, 10*time.Second, "only the good tunnel is left", func() bool { return len(lns.Tunnels()) == 1 })
	eventually(t, 10*time.Second, "goroutines return to their number before the attack", func() bool {
		return runtime.NumGoroutine() <= goroutines
	})
}

func filterErr(es []observer.LoggedEntry, sub string) []observer.LoggedEntry {
	var out []observer.LoggedEntry
	for _, e := range es {
		if s, _ := e.ContextMap()["error"].(string); strings.Contains(s, sub) {
			out = append(out, e)
		}
	}
	return out
}
