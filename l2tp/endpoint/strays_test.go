package endpoint

import (
	"context"
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/l2tpd/l2tpd/dataplane/fake"
	"github.com/l2tpd/l2tpd/l2tp"
	"github.com/l2tpd/l2tpd/l2tp/tunnel"
)

// rmemAlloc is the bytes queued on c's receive queue (SO_MEMINFO's first
// field, sk_rmem_alloc).
func rmemAlloc(t *testing.T, c *net.UDPConn) int {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	var gerr error
	if err := rc.Control(func(fd uintptr) { v, gerr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MEMINFO) }); err != nil {
		t.Fatal(err)
	}
	if gerr != nil {
		t.Fatalf("SO_MEMINFO: %v", gerr)
	}
	return v
}

// sendQueued sends p from src to dst and waits until it is queued on dst.
func sendQueued(t *testing.T, src, dst *net.UDPConn, p []byte) {
	t.Helper()
	before := rmemAlloc(t, dst)
	if _, err := src.WriteToUDPAddrPort(p, dst.LocalAddr().(*net.UDPAddr).AddrPort()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for rmemAlloc(t, dst) <= before {
		if time.Now().After(deadline) {
			t.Fatalf("datagram from %v never queued on %v", src.LocalAddr(), dst.LocalAddr())
		}
		runtime.Gosched()
	}
}

// A tunnel socket is bound before it is connected; whatever reached it in
// between, from anyone, is handed back by connectDrain in arrival order,
// and once connected it receives only the peer's datagrams.
func TestConnectDrainReturnsStrays(t *testing.T) {
	lc := net.ListenConfig{Control: reuseAddr}
	pc, err := lc.ListenPacket(context.Background(), "udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := pc.(*net.UDPConn)
	defer s.Close()
	a, b := udpFrom(t, "127.0.0.1:0"), udpFrom(t, "127.0.0.1:0")
	aAddr, bAddr := a.LocalAddr().(*net.UDPAddr).AddrPort(), b.LocalAddr().(*net.UDPAddr).AddrPort()
	sendQueued(t, a, s, []byte("a1"))
	sendQueued(t, b, s, []byte("b1, longer"))
	sendQueued(t, a, s, []byte{}) // an empty datagram is a datagram too
	sendQueued(t, a, s, []byte("a3"))

	strays, err := connectDrain(s, aAddr)
	if err != nil {
		t.Fatal(err)
	}
	want := []stray{{aAddr, []byte("a1")}, {bAddr, []byte("b1, longer")}, {aAddr, []byte{}}, {aAddr, []byte("a3")}}
	if diff := cmp.Diff(want, strays, cmp.AllowUnexported(stray{}), cmp.Comparer(func(x, y netip.AddrPort) bool { return x == y })); diff != "" {
		t.Fatalf("strays (-want +got):\n%s", diff)
	}
	if got := rmemAlloc(t, s); got != 0 {
		t.Fatalf("%d bytes still queued after the drain", got)
	}

	// Connected: b's datagram is not for it, a's is read as usual.
	if _, err := b.WriteToUDPAddrPort([]byte("b2"), s.LocalAddr().(*net.UDPAddr).AddrPort()); err != nil {
		t.Fatal(err)
	}
	sendQueued(t, a, s, []byte("a4"))
	buf := make([]byte, 64)
	s.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, from, err := s.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatal(err)
	}
	if from != aAddr || string(buf[:n]) != "a4" {
		t.Fatalf("read %q from %v after connect, want \"a4\" from %v", buf[:n], from, aAddr)
	}

	// Nothing queued: nothing handed back.
	strays, err = connectDrain(s, aAddr)
	if err != nil || strays != nil {
		t.Fatalf("connectDrain on an empty queue = %v, %v; want nil, nil", strays, err)
	}
}

// An SCCRQ that arrives while a new tunnel's socket is bound but not yet
// connected (it then competes with the listener for datagrams to the
// shared address) still gets its SCCRP, without the LAC retransmitting.
// Each tunnel's bind sends the next LAC's SCCRQ; the fake LACs never
// retransmit, so a datagram left on the wrong socket is a missing SCCRP.
func TestSCCRQDuringTunnelSocketBind(t *testing.T) {
	const lacs = 20
	lnsRec := newRecorder()
	defer dialTunnelHook.Store(nil) // after cancelAll: no reader left
	lns, err := New(Config{Listen: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:0")}, Plane: fake.New(), Handler: lnsRec, MaxSetupPerPeer: 4 * lacs})
	if err != nil {
		t.Fatal(err)
	}
	defer lns.cancelAll()
	to := lns.ListenAddrs()[0]
	socks := make([]*net.UDPConn, lacs)
	for i := range socks {
		socks[i] = udpFrom(t, "127.0.0.1:0")
	}
	next := 1
	hook := func(*net.UDPConn) {
		// Runs on the listener's path between bind and connect.
		if next < lacs {
			if _, err := socks[next].WriteToUDPAddrPort(sccrq(uint16(100+next)), to); err != nil {
				t.Error(err)
			}
			next++
		}
	}
	dialTunnelHook.Store(&hook)
	if _, err := socks[0].WriteToUDPAddrPort(sccrq(100), to); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2048)
	for i, c := range socks {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, _, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("LAC %d of %d: no SCCRP: %v", i, lacs, err)
		}
		_, payload, err := l2tp.ParseHeader(buf[:n])
		if err != nil {
			t.Fatalf("LAC %d: %v", i, err)
		}
		m, err := l2tp.ParseMessage(payload, nil)
		if err != nil || m.Type != l2tp.MsgSCCRP {
			t.Fatalf("LAC %d: got %v (%v), want SCCRP", i, m, err)
		}
	}
}

// A LAC may open several tunnels from one address and port (xl2tpd and
// many routers use 1701 for all of them). Each LNS tunnel socket is then
// connected to the same 4-tuple and the kernel hands every datagram of
// that 4-tuple to one of them; on the LAC, every answer reaches the socket
// that connected first. Each socket passes a datagram for another tunnel
// to that tunnel: both tunnels come up and carry calls.
func TestTwoTunnelsFromOneLACPort(t *testing.T) {
	lnsRec, lacRec := newRecorder(), newRecorder()
	lns, lac, logs := newPair(t, lnsRec, lacRec)
	t.Cleanup(func() {
		if t.Failed() {
			for _, e := range logs.All() {
				t.Logf("log: %s %v", e.Message, e.ContextMap())
			}
		}
	})
	st := lacRec.settings
	st.Handler = lacRec
	local := freeUDPPort(t, "127.0.0.1")
	var tuns []*Tunnel
	for range 2 {
		tun, err := lac.Dial(lns.ListenAddrs()[0], local, st)
		if err != nil {
			t.Fatal(err)
		}
		tuns = append(tuns, tun)
		waitFor(t, lacRec.tunnelsUp, "LAC tunnel up")
		waitFor(t, lnsRec.tunnelsUp, "LNS tunnel up")
	}
	for _, tun := range tuns {
		if _, err := tun.PlaceCall(tunnel.Incoming, tunnel.CallInfo{CallingNumber: "x"}); err != nil {
			t.Fatal(err)
		}
		s := waitFor(t, lnsRec.sessUp, "LNS session up")
		waitFor(t, lacRec.sessUp, "LAC session up")
		if s.T.Peer().Port() != local.Port() {
			t.Fatalf("LNS session on a tunnel from %v, want port %d", s.T.Peer(), local.Port())
		}
	}
}

// The drain takes at most maxStrays datagrams (it runs on the listener's
// path); the rest stay queued for the tunnel's reader.
func TestConnectDrainBounded(t *testing.T) {
	lc := net.ListenConfig{Control: reuseAddr}
	pc, err := lc.ListenPacket(context.Background(), "udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := pc.(*net.UDPConn)
	defer s.Close()
	a := udpFrom(t, "127.0.0.1:0")
	for i := range maxStrays + 3 {
		sendQueued(t, a, s, []byte{byte(i)})
	}
	strays, err := connectDrain(s, a.LocalAddr().(*net.UDPAddr).AddrPort())
	if err != nil {
		t.Fatal(err)
	}
	if len(strays) != maxStrays || strays[maxStrays-1].pkt[0] != maxStrays-1 {
		t.Fatalf("drained %d datagrams, want the first %d", len(strays), maxStrays)
	}
	if got := rmemAlloc(t, s); got == 0 {
		t.Fatal("nothing left queued: the drain was not bounded")
	}
}
