package userspace

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/l2tpd/l2tpd/dataplane"
)

func TestRangePrefixes(t *testing.T) {
	tests := []struct {
		first, last string
		want        []string
	}{
		{"10.64.0.0", "10.64.0.255", []string{"10.64.0.0/24"}},
		{"10.64.0.1", "10.64.0.254", []string{"10.64.0.1/32", "10.64.0.2/31", "10.64.0.4/30", "10.64.0.8/29", "10.64.0.16/28", "10.64.0.32/27", "10.64.0.64/26", "10.64.0.128/26", "10.64.0.192/27", "10.64.0.224/28", "10.64.0.240/29", "10.64.0.248/30", "10.64.0.252/31", "10.64.0.254/32"}},
		{"198.51.100.10", "198.51.100.20", []string{"198.51.100.10/31", "198.51.100.12/30", "198.51.100.16/30", "198.51.100.20/32"}},
		{"10.0.0.5", "10.0.0.5", []string{"10.0.0.5/32"}},
		{"0.0.0.0", "255.255.255.255", []string{"0.0.0.0/0"}},
		{"10.255.255.255", "11.0.0.0", []string{"10.255.255.255/32", "11.0.0.0/32"}},
		{"2001:db8::", "2001:db8::ffff", []string{"2001:db8::/112"}},
		{"10.0.0.9", "10.0.0.8", nil},
		{"10.0.0.1", "2001:db8::1", nil},
	}
	for _, tt := range tests {
		var want []netip.Prefix
		for _, w := range tt.want {
			want = append(want, netip.MustParsePrefix(w))
		}
		got := RangePrefixes(netip.MustParseAddr(tt.first), netip.MustParseAddr(tt.last))
		if d := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); d != "" {
			t.Errorf("RangePrefixes(%s, %s) (-want +got):\n%s", tt.first, tt.last, d)
		}
	}
}

func FuzzRangePrefixes(f *testing.F) {
	f.Add(uint32(0x0a400001), uint32(0x0a4000fe))
	f.Add(uint32(0), uint32(0xffffffff))
	f.Add(uint32(7), uint32(7))
	f.Fuzz(func(t *testing.T, a, b uint32) {
		first := netip.AddrFrom4([4]byte{byte(a >> 24), byte(a >> 16), byte(a >> 8), byte(a)})
		last := netip.AddrFrom4([4]byte{byte(b >> 24), byte(b >> 16), byte(b >> 8), byte(b)})
		ps := RangePrefixes(first, last)
		if a > b {
			if ps != nil {
				t.Fatalf("reversed range gave %v", ps)
			}
			return
		}
		// Contiguous, in order, exactly first..last, each prefix aligned,
		// and no two neighbours that could merge into one.
		next := first
		for i, p := range ps {
			if p.Masked() != p || p.Addr() != next {
				t.Fatalf("prefix %d %v: want one starting at %v", i, p, next)
			}
			if i > 0 && ps[i-1].Bits() == p.Bits() && netip.PrefixFrom(ps[i-1].Addr(), p.Bits()-1).Masked().Addr() == ps[i-1].Addr() {
				t.Fatalf("%v and %v could be one prefix", ps[i-1], p)
			}
			next = lastAddr(p).Next()
		}
		if len(ps) == 0 || lastAddr(ps[len(ps)-1]) != last {
			t.Fatalf("%v..%v: %v does not end at the last address", first, last, ps)
		}
		if len(ps) > 62 {
			t.Fatalf("%d prefixes for one IPv4 range", len(ps))
		}
	})
}

// poolPlane is a test plane with the pool 10.64.0.0/16 and a 1400-byte
// device MTU; tunnel 1 with sessions 10 and 11.
func poolPlane(t *testing.T) (*testPlane, *session, *session) {
	t.Helper()
	tp := newTestPlane(t)
	tp.cfg.PoolPrefixes = []netip.Prefix{netip.MustParsePrefix("10.64.0.0/16")}
	dt, err := tp.AddTunnel(dataplane.TunnelConfig{Version: 2, LocalID: 1, PeerID: 0x65})
	if err != nil {
		t.Fatal(err)
	}
	a, err := dt.AddSession(dataplane.SessionConfig{LocalID: 10, PeerID: 0x6e}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := dt.AddSession(dataplane.SessionConfig{LocalID: 11, PeerID: 0x6f}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return tp, a.(*session), b.(*session)
}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func TestPoolPrefixRoutedOnce(t *testing.T) {
	tp, a, b := poolPlane(t)
	gw := netip.MustParseAddr("10.64.0.1")
	// a: pool address plus a Framed-Route inside the pool and one outside.
	if err := a.Up(dataplane.NetConfig{MTU: 1400, Local: gw, Peer: netip.MustParseAddr("10.64.0.2"),
		Routes: []netip.Prefix{pfx("10.64.8.0/24"), pfx("192.0.2.0/24")}}); err != nil {
		t.Fatal(err)
	}
	// b: a RADIUS Framed-IP-Address outside the pools.
	if err := b.Up(dataplane.NetConfig{MTU: 1400, Local: gw, Peer: netip.MustParseAddr("172.16.0.9")}); err != nil {
		t.Fatal(err)
	}
	dev := tp.dev()
	want := map[netip.Prefix]int{
		pfx("10.64.0.0/16"):  0,
		pfx("192.0.2.0/24"):  1400,
		pfx("172.16.0.9/32"): 1400,
	}
	if d := cmp.Diff(want, dev.routeSet()); d != "" {
		t.Fatalf("kernel routes (-want +got):\n%s", d)
	}
	for addr, s := range map[string]*session{"10.64.0.2": a, "10.64.8.77": a, "192.0.2.1": a, "172.16.0.9": b, "10.64.0.3": nil} {
		if got := tp.table.lookup4(netip.MustParseAddr(addr)); got != s {
			t.Errorf("lookup %s = %v, want %v", addr, got, s)
		}
	}
	// A packet to a pool address with no session: dropped and counted.
	dev.in <- udp4(ap("198.51.100.1:53"), ap("10.64.0.3:1000"), nil)
	dev.in <- udp4(ap("198.51.100.1:53"), ap("10.64.0.2:1000"), nil)
	tp.w.next(t)
	if tp.NoRoute() != 1 {
		t.Errorf("NoRoute = %d, want 1", tp.NoRoute())
	}

	// A smaller MTU needs the session's own host route (it carries the
	// MTU); back at the device's MTU the pool's route serves again.
	if err := a.Up(dataplane.NetConfig{MTU: 1300, Local: gw, Peer: netip.MustParseAddr("10.64.0.2")}); err != nil {
		t.Fatal(err)
	}
	want = map[netip.Prefix]int{pfx("10.64.0.0/16"): 0, pfx("10.64.0.2/32"): 1300, pfx("172.16.0.9/32"): 1400}
	if d := cmp.Diff(want, dev.routeSet()); d != "" {
		t.Fatalf("kernel routes after MTU 1300 (-want +got):\n%s", d)
	}
	if err := a.Up(dataplane.NetConfig{MTU: 1400, Local: gw, Peer: netip.MustParseAddr("10.64.0.2")}); err != nil {
		t.Fatal(err)
	}
	want = map[netip.Prefix]int{pfx("10.64.0.0/16"): 0, pfx("172.16.0.9/32"): 1400}
	if d := cmp.Diff(want, dev.routeSet()); d != "" {
		t.Fatalf("kernel routes after MTU 1400 (-want +got):\n%s", d)
	}

	// Closing a pool session leaves the pool's route; the last session
	// takes the device (and the routes through it) away.
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(want, dev.routeSet()); d != "" {
		t.Fatalf("kernel routes after the pool session closed (-want +got):\n%s", d)
	}
	if tp.table.lookup4(netip.MustParseAddr("10.64.0.2")) != nil {
		t.Fatal("closed session still in the table")
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	// (The kernel removes the interface's routes with it.)
	if !dev.closed {
		t.Fatal("device open after its last session closed")
	}
}

func TestPoolRouteFailureFailsUp(t *testing.T) {
	tp, a, _ := poolPlane(t)
	tp.openDev = func(Config) (device, error) {
		d := newMemDev()
		d.failAdd = errors.New("EPERM")
		tp.mu.Lock()
		tp.devs = append(tp.devs, d)
		tp.mu.Unlock()
		return d, nil
	}
	if err := a.Up(dataplane.NetConfig{Peer: netip.MustParseAddr("10.64.0.2")}); err == nil {
		t.Fatal("Up succeeded though the pool could not be routed")
	}
	if !tp.dev().closed {
		t.Fatal("device left open after its pool route failed")
	}
}
