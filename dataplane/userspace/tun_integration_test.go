package userspace

import (
	"bytes"
	"net"
	"net/netip"
	"os"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/l2tpd/l2tpd/dataplane"
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("L2TPD_REQUIRE_INTEGRATION") == "1" {
		t.Fatal("integration test needs root (L2TPD_REQUIRE_INTEGRATION=1)")
	}
	t.Skip("needs root")
}

// TestTUNRoundTrip opens a real TUN device in a fresh network namespace and
// sends a UDP datagram from a "subscriber" through the plane to a socket on
// the host side, then the reply back out as an L2TP data message.
func TestTUNRoundTrip(t *testing.T) { inNetns(t, func() { roundTrip(t, nil) }) }

// TestTUNRoundTripPool: the subscriber's address is in a pool prefix, so
// the reply reaches the TUN device through the pool's route (the session
// has none of its own).
func TestTUNRoundTripPool(t *testing.T) {
	inNetns(t, func() { roundTrip(t, []netip.Prefix{netip.MustParsePrefix("10.99.0.0/24")}) })
}

// inNetns runs f on a thread of its own in a fresh network namespace.
func inNetns(t *testing.T, f func()) {
	requireRoot(t)
	setup := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		// This goroutine's thread moves to a new network namespace and is
		// never unlocked, so the runtime discards the thread when it ends.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			setup <- err
			return
		}
		setup <- nil
		f()
	}()
	if err := <-setup; err != nil {
		if os.Getenv("L2TPD_REQUIRE_INTEGRATION") == "1" {
			t.Fatalf("unshare(CLONE_NEWNET): %v", err)
		}
		t.Skipf("unshare(CLONE_NEWNET): %v", err)
	}
	<-done
}

func roundTrip(t *testing.T, pools []netip.Prefix) {
	// Everything created here (TUN, rtnetlink and UDP sockets) belongs to
	// the new namespace.
	nl, err := dialRtnl()
	if err != nil {
		t.Error(err)
		return
	}
	defer nl.close()
	if err := nl.linkUp(1, 0); err != nil { // lo
		t.Error(err)
		return
	}

	// The tunnel's socket and the "LAC" at the other end, on loopback.
	lac, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Error(err)
		return
	}
	defer lac.Close()
	conn, err := net.DialUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}, lac.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Error(err)
		return
	}
	defer conn.Close()

	p := New(Config{IfName: "l2tptest0", PoolPrefixes: pools})
	defer p.Close()
	dt, err := p.AddTunnel(dataplane.TunnelConfig{Version: 2, LocalID: 1, PeerID: 9, Conn: conn})
	if err != nil {
		t.Error(err)
		return
	}
	ds, err := dt.AddSession(dataplane.SessionConfig{LocalID: 2, PeerID: 8, LNSMode: true}, func([]byte) {})
	if err != nil {
		t.Error(err)
		return
	}
	local, peer := netip.MustParseAddr("10.99.0.1"), netip.MustParseAddr("10.99.0.2")
	if err := ds.Up(dataplane.NetConfig{Local: local, Peer: peer, MTU: 1400}); err != nil {
		t.Error(err)
		return
	}

	// A service on the LNS host, at our end of the link.
	srv, err := net.ListenUDP("udp4", &net.UDPAddr{IP: local.AsSlice(), Port: 7007})
	if err != nil {
		t.Error(err)
		return
	}
	defer srv.Close()

	// Subscriber -> host: an L2TP data message as the control plane would
	// pass it on.
	ip := udp4(netip.AddrPortFrom(peer, 5000), netip.AddrPortFrom(local, 7007), []byte("ping"))
	dt.HandleData(cat([]byte{0x00, 0x02, 0x00, 0x01, 0x00, 0x02, 0xff, 0x03, 0x00, 0x21}, ip))
	srv.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 2048)
	n, from, err := srv.ReadFromUDPAddrPort(buf)
	if err != nil {
		st, _ := ds.Stats()
		t.Errorf("service did not receive the subscriber's datagram: %v (stats %+v)", err, st)
		return
	}
	if string(buf[:n]) != "ping" || from != netip.AddrPortFrom(peer, 5000) {
		t.Errorf("service got %q from %v", buf[:n], from)
	}

	// Host -> subscriber: the reply is routed through the TUN device and
	// comes out of the tunnel's socket.
	if _, err := srv.WriteToUDPAddrPort([]byte("pong"), from); err != nil {
		t.Error(err)
		return
	}
	lac.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err = lac.Read(buf)
	if err != nil {
		t.Errorf("no data message from the plane: %v", err)
		return
	}
	msg := buf[:n]
	wantHdr := []byte{0x00, 0x02, 0x00, 0x09, 0x00, 0x08, 0xff, 0x03, 0x00, 0x21}
	if len(msg) < len(wantHdr)+28 || !bytes.Equal(msg[:len(wantHdr)], wantHdr) {
		t.Errorf("data message % x", msg)
		return
	}
	reply := msg[len(wantHdr):]
	if src, dst := netip.AddrFrom4([4]byte(reply[12:16])), netip.AddrFrom4([4]byte(reply[16:20])); src != local || dst != peer || string(reply[28:]) != "pong" {
		t.Errorf("reply %v -> %v %q", src, dst, reply[28:])
	}
	// The TUN reader counts the reply after its send returns, which can
	// be after lac.Read did: closing the last session waits for the
	// reader to end, so the counters are final after Close.
	if err := ds.Close(); err != nil {
		t.Error(err)
	}
	st, _ := ds.Stats()
	if st.RxPackets != 1 || st.TxPackets != 1 {
		t.Errorf("stats = %+v", st)
	}
	if _, err := ifIndex("l2tptest0"); err == nil {
		t.Error("TUN device still present after its last session closed")
	}
}
