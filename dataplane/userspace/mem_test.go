package userspace

import (
	"net"
	"net/netip"
	"runtime"
	"testing"

	"github.com/l2tpd/l2tpd/dataplane"
)

// BenchmarkSessionMemory adds benchSessions sessions to one tunnel and
// brings each Up with an address inside a pool, then reports what stays on
// the heap per session: B/session and objects/session (after a GC, so
// garbage of the setup is not counted). ns/op is the time to set them all
// up.
func BenchmarkSessionMemory(b *testing.B) {
	const n = 20000
	local := netip.MustParseAddr("10.255.255.254")
	rx := func([]byte) {}
	var bytesPer, objsPer float64
	for b.Loop() {
		b.StopTimer()
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		b.StartTimer()
		p := newPlane(Config{PoolPrefixes: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}, openNull)
		p.writer = discard
		dt, err := p.AddTunnel(dataplane.TunnelConfig{Version: 2, LocalID: 1, PeerID: 2})
		if err != nil {
			b.Fatal(err)
		}
		for i := 1; i <= n; i++ {
			ds, err := dt.AddSession(dataplane.SessionConfig{LocalID: uint32(i), PeerID: uint32(i), LNSMode: true}, rx)
			if err != nil {
				b.Fatal(err)
			}
			peer := netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})
			if err := ds.Up(dataplane.NetConfig{Local: local, Peer: peer, MTU: 1400}); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		runtime.GC()
		runtime.ReadMemStats(&after)
		bytesPer = float64(after.HeapAlloc-before.HeapAlloc) / n
		objsPer = float64(after.HeapObjects-before.HeapObjects) / n
		runtime.KeepAlive(dt)
		if err := p.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(bytesPer, "B/session")
	b.ReportMetric(objsPer, "objects/session")
}

// lcpInMsg is an L2TPv2 data message (with Ns) carrying an LCP
// Configure-Request to tunnel 1 session 1.
var lcpInMsg = []byte{
	0x08, 0x02, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, // header, Ns
	0xff, 0x03, 0xc0, 0x21, // FF 03, LCP
	0x01, 0x01, 0x00, 0x0e, 0x01, 0x04, 0x05, 0xdc, 0x05, 0x06, 0x12, 0x34, 0x56, 0x78,
}

// BenchmarkHandleDataLCP: a PPP control frame from the peer to the
// session's FrameHandler.
func BenchmarkHandleDataLCP(b *testing.B) {
	_, tun, s := benchPlane(b, 1000, dataplane.SessionConfig{LNSMode: true})
	var got int
	s.rx = func(f []byte) { got += len(f) }
	var ns uint16
	b.ReportAllocs()
	for b.Loop() {
		lcpInMsg[6], lcpInMsg[7] = byte(ns>>8), byte(ns)
		ns++
		tun.HandleData(lcpInMsg)
	}
	if got == 0 {
		b.Fatal("the frames did not reach the handler")
	}
}

// BenchmarkFlushWithPass: one pass of a tunnel goroutine at setup: 2
// control messages and 3 PPP frames (of 3 sessions) out with FlushWith on
// a loopback UDP socket.
func BenchmarkFlushWithPass(b *testing.B) {
	rxc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	defer rxc.Close()
	txc, err := net.DialUDP("udp4", nil, rxc.LocalAddr().(*net.UDPAddr))
	if err != nil {
		b.Fatal(err)
	}
	defer txc.Close()
	done := make(chan struct{})
	go func() { // drain, so the socket buffer never fills
		defer close(done)
		buf := make([]byte, 2048)
		for {
			if _, err := rxc.Read(buf); err != nil {
				return
			}
		}
	}()
	defer func() { rxc.Close(); <-done }()

	p := newPlane(Config{}, openNull)
	defer p.Close()
	dt, err := p.AddTunnel(dataplane.TunnelConfig{Version: 2, LocalID: 1, PeerID: 2, Conn: txc})
	if err != nil {
		b.Fatal(err)
	}
	var ss [3]dataplane.Session
	for i := range ss {
		if ss[i], err = dt.AddSession(dataplane.SessionConfig{LocalID: uint32(i + 1), PeerID: uint32(i + 1), LNSMode: true}, nil); err != nil {
			b.Fatal(err)
		}
	}
	bs := dt.(dataplane.BatchSender)
	ctrl := [][]byte{make([]byte, 60), make([]byte, 20)} // an ICCN-sized message and a ZLB
	lcp := []byte{0xc0, 0x21, 0x01, 0x01, 0x00, 0x0e, 0x01, 0x04, 0x05, 0xdc, 0x05, 0x06, 0x12, 0x34, 0x56, 0x78}
	b.ReportAllocs()
	for b.Loop() {
		for _, s := range ss {
			if err := s.SendFrame(lcp); err != nil {
				b.Fatal(err)
			}
		}
		if err := bs.FlushWith(ctrl); err != nil {
			b.Fatal(err)
		}
	}
	st, _ := ss[0].Stats()
	if st.TxPackets == 0 || st.TxErrors != 0 {
		b.Fatalf("frames not sent: %+v", st)
	}
}

// A closed session's table slot goes to the next session routed, and
// nothing of the old one is found through it; a non-IPv4 local address
// (kept outside the compact netState) is added and removed like an IPv4 one.
func TestSlotReuseAndNonIPv4Local(t *testing.T) {
	tp := newTestPlane(t)
	dt, err := tp.AddTunnel(dataplane.TunnelConfig{Version: 2, LocalID: 1, PeerID: 2})
	if err != nil {
		t.Fatal(err)
	}
	add := func(id uint32) *session {
		ds, err := dt.AddSession(dataplane.SessionConfig{LocalID: id, PeerID: id}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return ds.(*session)
	}
	keep, a, b := add(1), add(2), add(3)
	if err := keep.Up(dataplane.NetConfig{Peer: netip.MustParseAddr("10.0.0.1")}); err != nil {
		t.Fatal(err)
	}
	local6 := netip.MustParseAddr("2001:db8::1")
	if err := a.Up(dataplane.NetConfig{Local: local6, Peer: netip.MustParseAddr("10.0.0.2"),
		IPv6Routes: []netip.Prefix{netip.MustParsePrefix("2001:db8:2::/64")}}); err != nil {
		t.Fatal(err)
	}
	dev := tp.dev()
	if !dev.addrs[local6] {
		t.Fatal("IPv6 local address not on the device")
	}
	if st := a.net.Load(); st.localAddr() != local6 || len(st.extraRoutes()) != 1 || !st.peerHost {
		t.Fatalf("netState: local %v, extra routes %v, peerHost %v", st.localAddr(), st.extraRoutes(), st.peerHost)
	}
	slot := a.slot
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if dev.addrs[local6] {
		t.Fatal("IPv6 local address left on the device")
	}
	if err := b.Up(dataplane.NetConfig{Peer: netip.MustParseAddr("10.0.0.3")}); err != nil {
		t.Fatal(err)
	}
	if b.slot != slot {
		t.Errorf("slot %d not reused (got %d)", slot, b.slot)
	}
	if s := tp.table.lookup4(netip.MustParseAddr("10.0.0.2")); s != nil {
		t.Errorf("closed session's address routed to %v", s)
	}
	if s := tp.table.lookup6(netip.MustParseAddr("2001:db8:2::5")); s != nil {
		t.Errorf("closed session's prefix routed to %v", s)
	}
	if s := tp.table.lookup4(netip.MustParseAddr("10.0.0.3")); s != b {
		t.Errorf("10.0.0.3 routed to %v, want %v", s, b)
	}
	if s := tp.table.lookup4(netip.MustParseAddr("10.0.0.1")); s != keep {
		t.Errorf("10.0.0.1 routed to %v, want %v", s, keep)
	}
}

// BenchmarkSessionLifecycle: one session's AddSession, Up (an address in
// a pool given as a range, as l2tpd configures it) and Close, with 1,000
// other sessions Up.
func BenchmarkSessionLifecycle(b *testing.B) {
	pools := RangePrefixes(netip.MustParseAddr("10.1.0.10"), netip.MustParseAddr("10.1.250.200"))
	p := newPlane(Config{PoolPrefixes: pools}, openNull)
	p.writer = discard
	defer p.Close()
	dt, err := p.AddTunnel(dataplane.TunnelConfig{Version: 2, LocalID: 1, PeerID: 2})
	if err != nil {
		b.Fatal(err)
	}
	local := netip.MustParseAddr("10.255.255.254")
	rx := func([]byte) {}
	up := func(id int) dataplane.Session {
		ds, err := dt.AddSession(dataplane.SessionConfig{LocalID: uint32(id), PeerID: uint32(id), LNSMode: true}, rx)
		if err != nil {
			b.Fatal(err)
		}
		if err := ds.Up(dataplane.NetConfig{Local: local, Peer: netip.AddrFrom4([4]byte{10, 1, byte(id >> 8), byte(id)}), MTU: 1400}); err != nil {
			b.Fatal(err)
		}
		return ds
	}
	for i := 1; i <= 1000; i++ {
		up(1000 + i)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := up(100).Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// poolCovers' IPv4 arithmetic agrees with netip.Prefix.Contains.
func TestPoolCoversIPv4MatchesPrefixContains(t *testing.T) {
	pools := append(RangePrefixes(netip.MustParseAddr("10.1.0.10"), netip.MustParseAddr("10.1.3.200")),
		netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("192.0.2.128/25"), netip.MustParsePrefix("198.51.100.7/32"))
	for _, set := range [][]netip.Prefix{pools[:len(pools)-3], pools[len(pools)-3:], pools[len(pools)-2:]} {
		p := newPlane(Config{PoolPrefixes: set}, openNull)
		p.writer = discard
		for _, q := range p.cfg.PoolPrefixes {
			p.pools4 = append(p.pools4, newPool4(q))
		}
		for _, r := range []netip.Prefix{
			netip.MustParsePrefix("10.1.0.9/32"), netip.MustParsePrefix("10.1.0.10/32"), netip.MustParsePrefix("10.1.3.200/32"),
			netip.MustParsePrefix("10.1.3.201/32"), netip.MustParsePrefix("10.1.2.0/24"), netip.MustParsePrefix("10.1.0.0/22"),
			netip.MustParsePrefix("192.0.2.200/32"), netip.MustParsePrefix("192.0.2.127/32"), netip.MustParsePrefix("192.0.2.128/25"),
			netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("198.51.100.7/32"), netip.MustParsePrefix("198.51.100.6/31"),
			netip.MustParsePrefix("203.0.113.1/32"),
		} {
			want := false
			for _, q := range set {
				if q.Bits() <= r.Bits() && q.Contains(r.Addr()) {
					want = true
				}
			}
			if got := p.poolCovers(r); got != want {
				t.Errorf("pools %v: poolCovers(%v) = %v, want %v", set, r, got, want)
			}
		}
	}
}
