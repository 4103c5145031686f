package userspace

import (
	"io"
	"net/netip"
	"testing"

	"github.com/l2tpd/l2tpd/dataplane"
)

// nullDev discards everything; Read blocks until Close.
type nullDev struct{ done chan struct{} }

func (d *nullDev) Read([]byte) (int, error)          { <-d.done; return 0, io.EOF }
func (d *nullDev) Write(p []byte) (int, error)       { return len(p), nil }
func (d *nullDev) AddRoute(netip.Prefix, int) error  { return nil }
func (d *nullDev) DelRoute(netip.Prefix) error       { return nil }
func (d *nullDev) AddAddr(netip.Addr) error          { return nil }
func (d *nullDev) DelAddr(netip.Addr) error          { return nil }
func (d *nullDev) Close() error                      { close(d.done); return nil }
func openNull(Config) (device, error)                { return &nullDev{done: make(chan struct{})}, nil }
func discard(dataplane.TunnelConfig) (sender, error) { return discardSender{}, nil }

type discardSender struct{}

func (discardSender) Write(p []byte) (int, error)           { return len(p), nil }
func (discardSender) WriteBatch(pkts [][]byte) (int, error) { return len(pkts), nil }

// benchPlane has nSessions sessions Up in one tunnel, session i at
// 10.(i>>8).(i&255).1... returns the plane, the tunnel and session 1.
func benchPlane(tb testing.TB, nSessions int, scfg dataplane.SessionConfig) (*Plane, *tunnel, *session) {
	p := newPlane(Config{}, openNull)
	p.writer = discard
	tb.Cleanup(func() { p.Close() })
	dt, err := p.AddTunnel(dataplane.TunnelConfig{Version: 2, LocalID: 1, PeerID: 2})
	if err != nil {
		tb.Fatal(err)
	}
	var first *session
	for i := 1; i <= nSessions; i++ {
		scfg.LocalID, scfg.PeerID = uint32(i), uint32(i)
		ds, err := dt.AddSession(scfg, func([]byte) {})
		if err != nil {
			tb.Fatal(err)
		}
		peer := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		if err := ds.Up(dataplane.NetConfig{Local: netip.MustParseAddr("10.255.255.254"), Peer: peer}); err != nil {
			tb.Fatal(err)
		}
		if i == 1 {
			first = ds.(*session)
		}
	}
	return p, dt.(*tunnel), first
}

var (
	benchRx = cat([]byte{0x08, 0x02, 0x00, 0x01, 0x00, 0x01, 0, 0, 0, 0, 0xff, 0x03, 0x00, 0x21},
		udp4(ap("10.0.0.1:1000"), ap("198.51.100.1:53"), make([]byte, 1200)))
	benchTx = udp4(ap("198.51.100.1:53"), ap("10.0.0.1:1000"), make([]byte, 1200))
)

func rxOnce(t *tunnel, ns *uint16) {
	benchRx[6], benchRx[7] = byte(*ns>>8), byte(*ns)
	*ns++
	t.HandleData(benchRx)
}

func txOnce(p *Plane, buf []byte) {
	copy(buf[headroom:], benchTx)
	p.fromDevice(buf, len(benchTx))
}

func TestPacketPathsDoNotAllocate(t *testing.T) {
	p, tun, s := benchPlane(t, 100, dataplane.SessionConfig{SendSeq: true})
	var ns uint16
	if n := testing.AllocsPerRun(100, func() { rxOnce(tun, &ns) }); n != 0 {
		t.Errorf("HandleData: %v allocations per packet", n)
	}
	buf := make([]byte, headroom+len(benchTx))
	if n := testing.AllocsPerRun(100, func() { txOnce(p, buf) }); n != 0 {
		t.Errorf("device to tunnel: %v allocations per packet", n)
	}
	st, _ := s.Stats()
	if st.RxPackets < 100 || st.TxPackets < 100 || st.RxErrors != 0 {
		t.Errorf("the packets did not take the path measured: %+v", st)
	}
}

func BenchmarkHandleDataIPv4(b *testing.B) {
	_, tun, _ := benchPlane(b, 1000, dataplane.SessionConfig{})
	var ns uint16
	b.ReportAllocs()
	b.SetBytes(int64(len(benchRx)))
	for b.Loop() {
		rxOnce(tun, &ns)
	}
}

func BenchmarkFromDeviceIPv4(b *testing.B) {
	p, _, _ := benchPlane(b, 1000, dataplane.SessionConfig{SendSeq: true})
	buf := make([]byte, headroom+len(benchTx))
	b.ReportAllocs()
	b.SetBytes(int64(len(benchTx)))
	for b.Loop() {
		txOnce(p, buf)
	}
}

func FuzzHandleData(f *testing.F) {
	lcp := []byte{0xc0, 0x21, 0x01, 0x01, 0x00, 0x04}
	f.Add(cat([]byte{0x00, 0x02, 0x00, 0x01, 0x00, 0x01, 0xff, 0x03}, lcp))
	f.Add(benchRx)
	f.Add(cat([]byte{0x42, 0x02, 0x00, 0x12, 0x00, 0x01, 0x00, 0x01, 0x00, 0x02, 0xaa, 0xbb}, lcp))
	f.Add(cat([]byte{0x08, 0x02, 0x00, 0x01, 0x00, 0x01, 0xff, 0xff, 0, 0, 0x57}, ip6("2001:db8::1", "2001:db8::2")))
	f.Add([]byte{0x00, 0x02, 0x00, 0x01, 0x00, 0x01, 0x21, 0x45})
	p := newPlane(Config{}, openNull)
	p.writer = discard
	dt, err := p.AddTunnel(dataplane.TunnelConfig{Version: 2, LocalID: 1, PeerID: 2})
	if err != nil {
		f.Fatal(err)
	}
	var got []byte
	var called bool
	ds, err := dt.AddSession(dataplane.SessionConfig{LocalID: 1, PeerID: 1}, func(fr []byte) { called = true; got = append(got[:0], fr...) })
	if err != nil {
		f.Fatal(err)
	}
	if err := ds.Up(dataplane.NetConfig{Peer: netip.MustParseAddr("10.0.0.1"), IPv6Routes: []netip.Prefix{netip.MustParsePrefix("2001:db8::/64")}}); err != nil {
		f.Fatal(err)
	}
	s := ds.(*session)
	tun := dt.(*tunnel)
	f.Fuzz(func(t *testing.T, pkt []byte) {
		got, called = got[:0], false
		orig := string(pkt)
		before, _ := s.Stats()
		tunBefore := tun.rxErrors.Load()
		tun.HandleData(pkt)
		after, _ := s.Stats()
		if string(pkt) != orig {
			t.Fatal("HandleData modified its input")
		}
		if after.RxPackets+after.RxErrors+tun.rxErrors.Load() == before.RxPackets+before.RxErrors+tunBefore {
			t.Fatal("packet neither counted nor dropped")
		}
		if called {
			// A frame to the handler always starts with a full protocol
			// field (widened if it was compressed) and is never IP.
			if len(got) < 2 {
				t.Fatalf("handler got a %d-byte frame", len(got))
			}
			if proto := uint16(got[0])<<8 | uint16(got[1]); proto == protoIPv4 || proto == protoIPv6 {
				t.Fatalf("IP frame went to the handler: % x", got)
			}
		}
	})
}
