package userspace

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/l2tpd/l2tpd/dataplane"
)

var (
	peerIfID = [8]byte{0x02, 0x11, 0x22, 0xff, 0xfe, 0x33, 0x44, 0x55}
	upCfg    = dataplane.NetConfig{
		MTU:        1400,
		Local:      netip.MustParseAddr("10.0.0.1"),
		Peer:       netip.MustParseAddr("10.0.0.2"),
		Routes:     []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")},
		PeerIfID:   peerIfID,
		IPv6Routes: []netip.Prefix{netip.MustParsePrefix("2001:db8:1::/64"), netip.MustParsePrefix("2001:db8:f00::/56")},
	}
)

// setup: tunnel 1 (peer 0x65), session 10 (peer 0x6e).
func setup(t *testing.T, scfg dataplane.SessionConfig) (*testPlane, *tunnel, *session, *frames) {
	t.Helper()
	tp := newTestPlane(t)
	dt, err := tp.AddTunnel(dataplane.TunnelConfig{Version: 2, LocalID: 1, PeerID: 0x65})
	if err != nil {
		t.Fatal(err)
	}
	var fr frames
	scfg.LocalID, scfg.PeerID = 10, 0x6e
	ds, err := dt.AddSession(scfg, fr.handler)
	if err != nil {
		t.Fatal(err)
	}
	return tp, dt.(*tunnel), ds.(*session), &fr
}

func TestHandleDataDemux(t *testing.T) {
	tp, tun, s, fr := setup(t, dataplane.SessionConfig{LNSMode: true})
	if err := s.Up(upCfg); err != nil {
		t.Fatal(err)
	}
	dev := tp.dev()
	hdr := []byte{0x00, 0x02, 0x00, 0x01, 0x00, 0x0a} // v2, tunnel 1, session 10
	lcp := []byte{0xc0, 0x21, 0x01, 0x01, 0x00, 0x04}
	good4 := udp4(ap("10.0.0.2:1000"), ap("198.51.100.1:53"), []byte("q"))
	route4 := udp4(ap("192.0.2.7:1000"), ap("198.51.100.1:53"), nil)
	spoof4 := udp4(ap("10.0.0.3:1000"), ap("198.51.100.1:53"), nil)
	good6 := ip6("2001:db8:1::5", "2001:db8:ffff::1")
	deleg6 := ip6("2001:db8:f00:ab::1", "2001:db8:ffff::1")
	ll6 := ip6("fe80::211:22ff:fe33:4455", "ff02::2")
	spoof6 := ip6("2001:db8:2::5", "2001:db8:ffff::1")

	tests := []struct {
		name      string
		pkt       []byte
		toHandler [][]byte
		toDevice  [][]byte
		rxErr     uint64 // session rx errors added
		tunErr    uint64 // tunnel-level drops added
	}{
		{"lcp with ff03", cat(hdr, []byte{0xff, 0x03}, lcp), [][]byte{lcp}, nil, 0, 0},
		{"lcp without ff03", cat(hdr, lcp), [][]byte{lcp}, nil, 0, 0},
		{"ipcp", cat(hdr, []byte{0xff, 0x03, 0x80, 0x21, 1, 1, 0, 4}), [][]byte{{0x80, 0x21, 1, 1, 0, 4}}, nil, 0, 0},
		{"chap", cat(hdr, []byte{0xc2, 0x23, 2, 1, 0, 4}), [][]byte{{0xc2, 0x23, 2, 1, 0, 4}}, nil, 0, 0},
		{"unknown protocol to handler", cat(hdr, []byte{0xff, 0x03, 0x00, 0x2b, 9}), [][]byte{{0x00, 0x2b, 9}}, nil, 0, 0},
		{"pfc non-ip widened", cat(hdr, []byte{0xff, 0x03, 0x3d, 7}), [][]byte{{0x00, 0x3d, 7}}, nil, 0, 0},
		{"ipv4", cat(hdr, []byte{0xff, 0x03, 0x00, 0x21}, good4), nil, [][]byte{good4}, 0, 0},
		{"ipv4 pfc no ff03", cat(hdr, []byte{0x21}, good4), nil, [][]byte{good4}, 0, 0},
		{"ipv4 framed route source", cat(hdr, []byte{0x00, 0x21}, route4), nil, [][]byte{route4}, 0, 0},
		{"ipv4 spoofed", cat(hdr, []byte{0x00, 0x21}, spoof4), nil, nil, 1, 0},
		{"ipv4 truncated", cat(hdr, []byte{0x00, 0x21}, good4[:19]), nil, nil, 1, 0},
		{"ipv6 in IPv4 protocol", cat(hdr, []byte{0x00, 0x21}, good6), nil, nil, 1, 0},
		{"ipv6 /64", cat(hdr, []byte{0x00, 0x57}, good6), nil, [][]byte{good6}, 0, 0},
		{"ipv6 delegated /56", cat(hdr, []byte{0x57}, deleg6), nil, [][]byte{deleg6}, 0, 0},
		{"ipv6 link-local by ifid", cat(hdr, []byte{0x00, 0x57}, ll6), nil, [][]byte{ll6}, 0, 0},
		{"ipv6 spoofed", cat(hdr, []byte{0x00, 0x57}, spoof6), nil, nil, 1, 0},
		{"length and offset", cat([]byte{0x42, 0x02, 0x00, 0x12, 0x00, 0x01, 0x00, 0x0a, 0x00, 0x02, 0xaa, 0xbb}, lcp, []byte{0xee, 0xee}), [][]byte{lcp}, nil, 0, 0},
		{"empty ppp", cat(hdr, []byte{0xff, 0x03}), nil, nil, 1, 0},
		{"one-byte even protocol", cat(hdr, []byte{0xc0}), nil, nil, 1, 0},
		{"wrong tunnel", cat([]byte{0x00, 0x02, 0x00, 0x02, 0x00, 0x0a}, lcp), nil, nil, 0, 1},
		{"unknown session", cat([]byte{0x00, 0x02, 0x00, 0x01, 0x00, 0x0b}, lcp), nil, nil, 0, 1},
		{"control message", cat([]byte{0xc8, 0x02, 0x00, 0x0c, 0x00, 0x01, 0x00, 0x00, 0, 0, 0, 0}), nil, nil, 0, 1},
		{"v3", cat([]byte{0x00, 0x03, 0x00, 0x00, 0, 0, 0, 10}, lcp), nil, nil, 0, 1},
		{"truncated header", []byte{0x00, 0x02, 0x00}, nil, nil, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, _ := s.Stats()
			tunBefore := tun.rxErrors.Load()
			tun.HandleData(tt.pkt)
			if d := cmp.Diff(tt.toHandler, fr.take()); d != "" {
				t.Errorf("handler frames (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tt.toDevice, dev.take()); d != "" {
				t.Errorf("device packets (-want +got):\n%s", d)
			}
			after, _ := s.Stats()
			if got := after.RxErrors - before.RxErrors; got != tt.rxErr {
				t.Errorf("session rx errors +%d, want +%d", got, tt.rxErr)
			}
			if got := tun.rxErrors.Load() - tunBefore; got != tt.tunErr {
				t.Errorf("tunnel drops +%d, want +%d", got, tt.tunErr)
			}
		})
	}
}

func TestIPDroppedBeforeUp(t *testing.T) {
	_, tun, s, fr := setup(t, dataplane.SessionConfig{})
	pkt := cat([]byte{0x00, 0x02, 0x00, 0x01, 0x00, 0x0a, 0x00, 0x21}, udp4(ap("10.0.0.2:1"), ap("10.0.0.9:2"), nil))
	tun.HandleData(pkt)
	if st, _ := s.Stats(); st.RxErrors != 1 {
		t.Errorf("stats = %+v, want 1 rx error", st)
	}
	if len(fr.take()) != 0 {
		t.Error("IP packet went to the frame handler")
	}
}

func TestSequenceNumbers(t *testing.T) {
	tp, tun, s, fr := setup(t, dataplane.SessionConfig{LNSMode: true, RecvSeq: true})
	lcp := []byte{0xc0, 0x21, 0x09, 0x01, 0x00, 0x04}
	seq := func(ns uint16) []byte {
		return cat([]byte{0x08, 0x02, 0x00, 0x01, 0x00, 0x0a, byte(ns >> 8), byte(ns), 0x00, 0x00}, lcp)
	}
	steps := []struct {
		pkt    []byte
		accept bool
	}{
		{seq(5), true},
		{seq(6), true},
		{seq(4), false}, // older
		{seq(6), false}, // duplicate
		{seq(9), true},  // a gap is fine
		{cat([]byte{0x00, 0x02, 0x00, 0x01, 0x00, 0x0a}, lcp), false}, // RecvSeq: Ns required
		{seq(0xfffe), false}, // far behind
		{seq(0x8008), true},  // just inside the forward half
		{seq(0xffff), true},
		{seq(0x0000), true}, // wraps
		{seq(0xffff), false},
	}
	for i, st := range steps {
		tun.HandleData(st.pkt)
		got := len(fr.take()) == 1
		if got != st.accept {
			t.Errorf("step %d: accepted = %v, want %v", i, got, st.accept)
		}
	}
	// LNS mode: the peer's Ns do not switch our sending on.
	if err := s.SendFrame(lcp); err != nil {
		t.Fatal(err)
	}
	tun.Flush()
	if got := tp.w.next(t); got[0] != 0x00 {
		t.Errorf("LNS started sending sequence numbers: % x", got)
	}
}

func TestLACFollowsPeerSequencing(t *testing.T) {
	tp, tun, s, _ := setup(t, dataplane.SessionConfig{})
	lcp := []byte{0xc0, 0x21, 0x09, 0x01, 0x00, 0x04}
	if err := s.SendFrame(lcp); err != nil {
		t.Fatal(err)
	}
	tun.Flush()
	if got, want := tp.w.next(t), cat([]byte{0x00, 0x02, 0x00, 0x65, 0x00, 0x6e, 0xff, 0x03}, lcp); !bytes.Equal(got, want) {
		t.Fatalf("sent % x, want % x", got, want)
	}
	tun.HandleData(cat([]byte{0x08, 0x02, 0x00, 0x01, 0x00, 0x0a, 0x00, 0x07, 0x00, 0x00}, lcp))
	for ns := range 2 {
		if err := s.SendFrame(lcp); err != nil {
			t.Fatal(err)
		}
		tun.Flush()
		want := cat([]byte{0x08, 0x02, 0x00, 0x65, 0x00, 0x6e, 0x00, byte(ns), 0x00, 0x00, 0xff, 0x03}, lcp)
		if got := tp.w.next(t); !bytes.Equal(got, want) {
			t.Fatalf("sent % x, want % x", got, want)
		}
	}
}

func TestFromDevice(t *testing.T) {
	tp, _, s, _ := setup(t, dataplane.SessionConfig{SendSeq: true})
	if err := s.Up(upCfg); err != nil {
		t.Fatal(err)
	}
	dev := tp.dev()
	to4 := udp4(ap("198.51.100.1:53"), ap("10.0.0.2:1000"), []byte("answer"))
	toRoute := udp4(ap("198.51.100.1:53"), ap("192.0.2.200:1000"), nil)
	to6 := ip6("2001:db8:ffff::1", "2001:db8:1::77")
	to6deleg := ip6("2001:db8:ffff::1", "2001:db8:f00:ff::1")
	toLL := ip6("fe80::1", "fe80::211:22ff:fe33:4455")
	cases := []struct {
		pkt   []byte
		proto []byte
	}{
		{to4, []byte{0x00, 0x21}},
		{toRoute, []byte{0x00, 0x21}},
		{to6, []byte{0x00, 0x57}},
		{to6deleg, []byte{0x00, 0x57}},
		{toLL, []byte{0x00, 0x57}},
	}
	for i, c := range cases {
		dev.in <- c.pkt
		want := cat([]byte{0x08, 0x02, 0x00, 0x65, 0x00, 0x6e, 0x00, byte(i), 0x00, 0x00, 0xff, 0x03}, c.proto, c.pkt)
		if got := tp.w.next(t); !bytes.Equal(got, want) {
			t.Errorf("case %d: sent\n% x\nwant\n% x", i, got, want)
		}
	}
	// No session: counted, nothing sent. The unbuffered channel hand-off
	// means the reader has finished the previous packet when the next one is
	// taken, so after the last send below both drops are counted.
	dev.in <- udp4(ap("198.51.100.1:53"), ap("10.0.0.3:1000"), nil)
	dev.in <- ip6("2001:db8:ffff::1", "2001:db8:2::1")
	dev.in <- to4
	tp.w.next(t)
	if got := tp.NoRoute(); got != 2 {
		t.Errorf("NoRoute = %d, want 2", got)
	}
	// The reader counts a packet after its send returned, which can be
	// after next did: the hand-off of one more packet waits for that.
	dev.in <- udp4(ap("198.51.100.1:53"), ap("10.0.0.3:1000"), nil)
	st, _ := s.Stats()
	if st.TxPackets != 6 || st.TxErrors != 0 {
		t.Errorf("stats = %+v", st)
	}
}

func TestUpRoutesAndClose(t *testing.T) {
	tp, tun, s, _ := setup(t, dataplane.SessionConfig{})
	if err := s.Up(upCfg); err != nil {
		t.Fatal(err)
	}
	dev := tp.dev()
	want := map[netip.Prefix]int{
		netip.MustParsePrefix("10.0.0.2/32"):       1400,
		netip.MustParsePrefix("192.0.2.0/24"):      1400,
		netip.MustParsePrefix("2001:db8:1::/64"):   1400,
		netip.MustParsePrefix("2001:db8:f00::/56"): 1400,
	}
	if d := cmp.Diff(want, dev.routeSet()); d != "" {
		t.Fatalf("routes (-want +got):\n%s", d)
	}
	if !dev.addrs[netip.MustParseAddr("10.0.0.1")] {
		t.Fatal("local address not on the device")
	}

	// A second session may not take the first one's address.
	ds2, err := tun.AddSession(dataplane.SessionConfig{LocalID: 11, PeerID: 0x6f}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s2 := ds2.(*session)
	if err := s2.Up(dataplane.NetConfig{Local: upCfg.Local, Peer: upCfg.Peer}); err == nil {
		t.Fatal("two sessions got the same address")
	}
	if err := s2.Up(dataplane.NetConfig{Local: upCfg.Local, Peer: netip.MustParseAddr("10.0.0.3")}); err != nil {
		t.Fatal(err)
	}

	// Re-Up with fewer routes removes the rest.
	if err := s.Up(dataplane.NetConfig{Local: upCfg.Local, Peer: upCfg.Peer}); err != nil {
		t.Fatal(err)
	}
	want = map[netip.Prefix]int{
		netip.MustParsePrefix("10.0.0.2/32"): 0,
		netip.MustParsePrefix("10.0.0.3/32"): 0,
	}
	if d := cmp.Diff(want, dev.routeSet()); d != "" {
		t.Fatalf("routes after re-Up (-want +got):\n%s", d)
	}
	if p := tp.table.lookup4(netip.MustParseAddr("192.0.2.1")); p != nil {
		t.Fatal("framed route still in the table after re-Up")
	}

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(map[netip.Prefix]int{netip.MustParsePrefix("10.0.0.3/32"): 0}, dev.routeSet()); d != "" {
		t.Fatalf("routes after close (-want +got):\n%s", d)
	}
	if !dev.addrs[upCfg.Local] || dev.closed {
		t.Fatal("shared local address or device removed while still in use")
	}
	if err := s.SendFrame([]byte{0xc0, 0x21}); err == nil {
		t.Fatal("send on closed session succeeded")
	}
	if err := tun.Close(); err != nil {
		t.Fatal(err)
	}
	if !dev.closed {
		t.Fatal("device not closed with its last session")
	}
	if tp.table.lookup4(netip.MustParseAddr("10.0.0.3")) != nil {
		t.Fatal("route table not empty")
	}

	// A new tunnel reopens a device.
	dt, err := tp.AddTunnel(dataplane.TunnelConfig{Version: 2, LocalID: 1, PeerID: 0x65})
	if err != nil {
		t.Fatal(err)
	}
	ds, _ := dt.AddSession(dataplane.SessionConfig{LocalID: 10, PeerID: 0x6e}, nil)
	if err := ds.Up(upCfg); err != nil {
		t.Fatal(err)
	}
	if tp.dev() == dev || len(tp.dev().routeSet()) != 4 {
		t.Fatal("device not reopened")
	}
	if err := tp.Close(); err != nil {
		t.Fatal(err)
	}
	if !tp.dev().closed {
		t.Fatal("Plane.Close left the device open")
	}
}

func TestUpRouteFailure(t *testing.T) {
	tp, _, s, _ := setup(t, dataplane.SessionConfig{})
	tp.openDev = func(Config) (device, error) {
		d := newMemDev()
		d.failAdd = errors.New("EPERM")
		tp.devs = append(tp.devs, d)
		return d, nil
	}
	if err := s.Up(upCfg); err == nil {
		t.Fatal("Up succeeded without routes")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if !tp.dev().closed {
		t.Fatal("failed Up left the device open after Close")
	}
}

func TestAddErrors(t *testing.T) {
	tp := newTestPlane(t)
	for _, cfg := range []dataplane.TunnelConfig{
		{Version: 3, LocalID: 1},
		{Version: 2, Encap: dataplane.EncapIP, LocalID: 1},
		{Version: 2, LocalID: 70000},
	} {
		if _, err := tp.AddTunnel(cfg); err == nil {
			t.Errorf("AddTunnel(%+v) succeeded", cfg)
		}
	}
	dt, err := tp.AddTunnel(dataplane.TunnelConfig{Version: 2, LocalID: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tp.AddTunnel(dataplane.TunnelConfig{Version: 2, LocalID: 1}); err == nil {
		t.Error("duplicate tunnel")
	}
	if _, err := dt.AddSession(dataplane.SessionConfig{LocalID: 5}, nil); err != nil {
		t.Fatal(err)
	}
	for _, cfg := range []dataplane.SessionConfig{
		{LocalID: 5},
		{LocalID: 0},
		{LocalID: 6, PWType: dataplane.PWTypeEthernet},
	} {
		if _, err := dt.AddSession(cfg, nil); err == nil {
			t.Errorf("AddSession(%+v) succeeded", cfg)
		}
	}
	if _, err := New(Config{}).AddTunnel(dataplane.TunnelConfig{Version: 2, LocalID: 1}); err == nil {
		t.Error("tunnel without a socket accepted")
	}
}
