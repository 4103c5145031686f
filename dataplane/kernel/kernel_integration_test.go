package kernel

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/l2tpd/l2tpd/dataplane"
)

// These tests need a kernel with l2tp_ppp, l2tp_netlink and ppp_generic and
// CAP_NET_ADMIN: the qemu lab sets L2TPD_KERNEL_TESTS=1.
func requireKernel(t *testing.T) {
	t.Helper()
	if os.Getenv("L2TPD_KERNEL_TESTS") != "1" {
		t.Skip("set L2TPD_KERNEL_TESTS=1 (the lab does) to run against a real L2TP/PPP kernel")
	}
	if err := Probe(); err != nil {
		t.Fatalf("Probe: %v", err)
	}
}

// udpPair returns two loopback UDP sockets connected to each other.
func udpPair(t *testing.T) (*net.UDPConn, *net.UDPConn) {
	a, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	b, err := net.DialUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}, a.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	a, err = net.DialUDP("udp4", a.LocalAddr().(*net.UDPAddr), b.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// kernelPlane is the real kernel plane (closed when the test ends), with
// any tunnels an earlier run left removed.
func kernelPlane(t *testing.T) *Plane {
	t.Helper()
	requireKernel(t)
	p, err := Dial(Options{StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	if _, err := p.Cleanup(); err != nil {
		t.Fatal(err)
	}
	return p
}

// kernelTunnel adds an L2TPv2 tunnel local -> peer on c.
func kernelTunnel(t *testing.T, p *Plane, local, peer uint32, c *net.UDPConn) dataplane.Tunnel {
	t.Helper()
	tun, err := p.AddTunnel(dataplane.TunnelConfig{Version: 2, LocalID: local, PeerID: peer, Conn: c,
		Local: addrPort(c, false), Peer: addrPort(c, true)})
	if err != nil {
		t.Fatal(err)
	}
	return tun
}

func addrPort(c *net.UDPConn, remote bool) netip.AddrPort {
	if remote {
		return c.RemoteAddr().(*net.UDPAddr).AddrPort()
	}
	return c.LocalAddr().(*net.UDPAddr).AddrPort()
}

func TestKernelTunnelSessionOverLoopback(t *testing.T) {
	p := kernelPlane(t)
	ca, cb := udpPair(t)
	ta := kernelTunnel(t, p, 101, 202, ca)
	tb := kernelTunnel(t, p, 202, 101, cb)
	got := make(chan []byte, 1)
	gotA := make(chan []byte, 1)
	sa, err := ta.AddSession(dataplane.SessionConfig{LocalID: 11, PeerID: 22, PWType: dataplane.PWTypePPP, LNSMode: true},
		func(f []byte) { gotA <- append([]byte(nil), f...) })
	if err != nil {
		t.Fatal(err)
	}
	sb, err := tb.AddSession(dataplane.SessionConfig{LocalID: 22, PeerID: 11, PWType: dataplane.PWTypePPP},
		func(f []byte) { got <- append([]byte(nil), f...) })
	if err != nil {
		t.Fatal(err)
	}
	ts, err := p.Client().Tunnels()
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) < 2 {
		t.Fatalf("kernel lists %d tunnels, want ours two: %+v", len(ts), ts)
	}
	// Several GETs in a row: a GET asking for an ack left the ack queued
	// and broke the next request on Linux 6.1.
	for i := 0; i < 3; i++ {
		info, err := p.Client().Session(101, 11)
		if err != nil || !info.LNSMode || info.PeerID != 22 {
			t.Fatalf("SESSION_GET #%d = %+v, %v", i, info, err)
		}
		ti, err := p.Client().Tunnel(101)
		if err != nil || ti.PeerID != 202 || ti.Version != 2 {
			t.Fatalf("TUNNEL_GET #%d = %+v, %v", i, ti, err)
		}
	}
	if ss, err := p.Client().Sessions(); err != nil || len(ss) != 2 {
		t.Fatalf("SESSION_GET dump = %+v, %v; want 2 sessions", ss, err)
	}

	lcp := []byte{0xc0, 0x21, 0x01, 0x01, 0x00, 0x04}
	if err := sa.SendFrame(lcp); err != nil {
		t.Fatal(err)
	}
	select {
	case f := <-got:
		if string(f) != string(lcp) {
			t.Errorf("B got % x, want % x", f, lcp)
		}
	case <-time.After(5 * time.Second): // a real kernel round trip; not a stand-in for an event
		t.Fatal("LCP frame did not cross the kernel data path")
	}

	if err := sa.Up(dataplane.NetConfig{IfName: "l2tpdtest0", MTU: 1400, MRU: 1400,
		Local: netip.MustParseAddr("10.99.0.1"), Peer: netip.MustParseAddr("10.99.0.2"),
		Routes: []netip.Prefix{netip.MustParsePrefix("10.98.0.0/24")}}); err != nil {
		t.Fatal(err)
	}
	ifc, err := net.InterfaceByName("l2tpdtest0")
	if err != nil || ifc.MTU != 1400 || ifc.Flags&net.FlagUp == 0 {
		t.Fatalf("interface = %+v, %v", ifc, err)
	}
	if st, err := sa.Stats(); err != nil || st.TxPackets == 0 {
		t.Errorf("Stats = %+v, %v; want the LCP frame counted", st, err)
	}
	// Once A's channel is connected to a unit, the kernel queues NCP
	// frames (IPCP here) on the unit fd; the plane polls it too.
	ipcp := []byte{0x80, 0x21, 0x01, 0x07, 0x00, 0x0a, 0x03, 0x06, 0x0a, 0x63, 0x00, 0x02}
	if err := sb.SendFrame(ipcp); err != nil {
		t.Fatal(err)
	}
	select {
	case f := <-gotA:
		if string(f) != string(ipcp) {
			t.Errorf("A got % x, want % x", f, ipcp)
		}
	case <-time.After(5 * time.Second): // a real kernel round trip
		t.Fatal("IPCP frame did not reach A's unit fd")
	}
	// And LCP still arrives on the channel fd.
	if err := sb.SendFrame(lcp); err != nil {
		t.Fatal(err)
	}
	select {
	case f := <-gotA:
		if string(f) != string(lcp) {
			t.Errorf("A got % x, want % x", f, lcp)
		}
	case <-time.After(5 * time.Second): // a real kernel round trip
		t.Fatal("LCP frame did not reach A's channel fd after Up")
	}

	if err := sa.Close(); err != nil {
		t.Fatal(err)
	}
	waitRemoved(t, sa)
	if _, err := net.InterfaceByName("l2tpdtest0"); err == nil {
		t.Error("interface survived session Close")
	}
	if _, err := p.Client().Session(101, 11); !errorsIs(err, ErrNotFound) {
		t.Errorf("session after Close: %v, want ErrNotFound", err)
	}
	sb.Close()
	ta.Close()
	tb.Close()
	if _, err := p.Client().Tunnel(101); !errorsIs(err, ErrNotFound) {
		t.Errorf("tunnel after Close: %v, want ErrNotFound", err)
	}
}

// waitGone polls until the kernel no longer lists the tunnel: the kernel
// deletes a socket's tunnel from a work queue after the socket closes.
func waitGone(t *testing.T, c *Client, id uint32) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := c.Tunnel(id)
		if errorsIs(err, ErrNotFound) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("tunnel %d still listed 5 s after its socket closed (last: %v)", id, err)
		}
		time.Sleep(20 * time.Millisecond) // polling the kernel's deferred destroy; there is no event to wait on
	}
}

// TestKernelTunnelDiesWithSocket: a tunnel made with L2TP_ATTR_FD goes away
// with its UDP socket (what happens when a daemon dies), sessions and the
// PPPoL2TP socket's channel included.
func TestKernelTunnelDiesWithSocket(t *testing.T) {
	requireKernel(t)
	c, err := DialClient()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ca, _ := udpPair(t)
	rc, err := ca.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var cerr error
	rc.Control(func(fd uintptr) {
		cerr = c.CreateTunnel(TunnelSpec{ID: 301, PeerID: 401, Version: 2, Encap: EncapTypeUDP, FD: int(fd)})
	})
	if cerr != nil {
		t.Fatal(cerr)
	}
	if err := c.CreateSession(SessionSpec{TunnelID: 301, ID: 1, PeerID: 2, Version: 2, PWType: uint16(dataplane.PWTypePPP)}); err != nil {
		t.Fatal(err)
	}
	ca.Close()
	waitGone(t, c, 301)
	if _, err := c.Session(301, 1); !errorsIs(err, ErrNotFound) {
		t.Errorf("session after socket close: %v, want ErrNotFound", err)
	}
}

// TestKernelCleanup: Cleanup deletes the tunnels the journal says a
// previous run created, and leaves a tunnel it does not own.
func TestKernelCleanup(t *testing.T) {
	requireKernel(t)
	state := t.TempDir()
	// A previous run created 501 and 502 and deleted 502; 503 belongs to
	// another daemon.
	if err := os.WriteFile(state+"/"+stateFileName, []byte("+501\n+502\n-502\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	c, err := DialClient()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, id := range []uint32{501, 503} {
		conn, _ := udpPair(t)
		rc, err := conn.SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var cerr error
		rc.Control(func(fd uintptr) {
			cerr = c.CreateTunnel(TunnelSpec{ID: id, PeerID: id + 100, Version: 2, Encap: EncapTypeUDP, FD: int(fd)})
		})
		if cerr != nil {
			t.Fatal(cerr)
		}
	}
	p, err := Dial(Options{StateDir: state})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	deleted, err := p.Cleanup()
	if err != nil {
		t.Fatal(err)
	}
	if len(deleted) != 1 || deleted[0] != 501 {
		t.Errorf("Cleanup deleted %v, want [501]", deleted)
	}
	if _, err := c.Tunnel(501); !errorsIs(err, ErrNotFound) {
		t.Errorf("tunnel 501 after Cleanup: %v, want ErrNotFound", err)
	}
	if _, err := c.Tunnel(503); err != nil {
		t.Errorf("tunnel 503 (not ours) after Cleanup: %v", err)
	}
	if deleted, err := p.Cleanup(); err != nil || len(deleted) != 0 {
		t.Errorf("second Cleanup = %v, %v; want nothing", deleted, err)
	}
	c.DeleteTunnel(503)
}

// TestKernelIfNameCollision: with names from a pattern like "ppp%d", a
// session's interface may be given the name the kernel would pick for the
// next unit ("ppp<unit>"). Creating the unit with its name (rtnetlink)
// rather than renaming "ppp<unit>" afterwards keeps the next unit working.
func TestKernelIfNameCollision(t *testing.T) {
	requireKernel(t)
	p, err := Dial(Options{StateDir: "-"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ca, cb := udpPair(t)
	ta, err := p.AddTunnel(dataplane.TunnelConfig{Version: 2, LocalID: 601, PeerID: 602, Conn: ca,
		Local: addrPort(ca, false), Peer: addrPort(ca, true)})
	if err != nil {
		t.Fatal(err)
	}
	_ = cb
	var ss []dataplane.Session
	for i, name := range []string{"ppp1", "ppp2", "ppp0", "sub%x"} {
		s, err := ta.AddSession(dataplane.SessionConfig{LocalID: uint32(10 + i), PeerID: uint32(20 + i), PWType: dataplane.PWTypePPP, LNSMode: true}, func([]byte) {})
		if err != nil {
			t.Fatal(err)
		}
		ss = append(ss, s)
		if name == "sub%x" {
			name = ""
		}
		if err := s.Up(dataplane.NetConfig{IfName: name, MTU: 1400, MRU: 1400}); err != nil {
			t.Fatalf("Up %q: %v", name, err)
		}
		got := s.(*Session).IfName()
		if name != "" && got != name {
			t.Errorf("interface %q, want %q", got, name)
		}
		if _, err := net.InterfaceByName(got); err != nil {
			t.Errorf("interface %q: %v", got, err)
		}
	}
	for _, s := range ss {
		name := s.(*Session).IfName()
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		waitRemoved(t, s)
		if _, err := net.InterfaceByName(name); err == nil {
			t.Errorf("interface %s survived session Close", name)
		}
	}
	ta.Close()
}

// Forty sessions with their interfaces closed at once: Close returns at
// once, the removal workers remove every interface and kernel session.
// The log line gives the times (docs/benchmarks.md, "Stopping"): run in
// the lab with
//
//	go test -c -o build/lab/kt/kt.test ./dataplane/kernel/
//	lab/run.sh SCRIPT  # SCRIPT: L2TPD_KERNEL_TESTS=1 build/lab/kt/kt.test -test.run TestKernelRemovalWorkers -test.v
func TestKernelRemovalWorkers(t *testing.T) {
	p := kernelPlane(t)
	ca, _ := udpPair(t)
	ta := kernelTunnel(t, p, 101, 202, ca)
	defer ta.Close()
	const n = 40
	var ss []dataplane.Session
	for i := range n {
		s, err := ta.AddSession(dataplane.SessionConfig{LocalID: uint32(10 + i), PeerID: uint32(20 + i), PWType: dataplane.PWTypePPP, LNSMode: true}, func([]byte) {})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Up(dataplane.NetConfig{IfName: fmt.Sprintf("l2tprm%d", i), MTU: 1400, MRU: 1400,
			Local: netip.MustParseAddr("10.99.0.1"), Peer: netip.AddrFrom4([4]byte{10, 97, 0, byte(i + 2)})}); err != nil {
			t.Fatal(err)
		}
		ss = append(ss, s)
	}
	start := time.Now()
	for _, s := range ss {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	closed := time.Since(start)
	for _, s := range ss {
		waitRemoved(t, s)
	}
	removed := time.Since(start)
	for i := range n {
		if _, err := net.InterfaceByName(fmt.Sprintf("l2tprm%d", i)); err == nil {
			t.Errorf("interface l2tprm%d survived its session's removal", i)
		}
		if _, err := p.Client().Session(101, uint32(10+i)); !errorsIs(err, ErrNotFound) {
			t.Errorf("session %d after its removal: %v, want ErrNotFound", 10+i, err)
		}
	}
	t.Logf("%d sessions with interfaces: Close returned after %v (%v each), all removed after %v (%v each, %d removal workers)",
		n, closed, closed/n, removed, removed/n, removalWorkers)
}
