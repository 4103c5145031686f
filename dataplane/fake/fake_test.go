package fake

import (
	"errors"
	"net/netip"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/l2tpd/l2tpd/dataplane"
)

func setup(t *testing.T, p *Plane, tid uint32, sids ...uint32) (*Tunnel, []*Session, *[][]byte) {
	t.Helper()
	dt, err := p.AddTunnel(dataplane.TunnelConfig{Version: 2, LocalID: tid, PeerID: tid + 100})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got [][]byte
	var ss []*Session
	for _, sid := range sids {
		ds, err := dt.AddSession(dataplane.SessionConfig{LocalID: sid, PeerID: sid + 100}, func(f []byte) {
			mu.Lock()
			got = append(got, f)
			mu.Unlock()
		})
		if err != nil {
			t.Fatal(err)
		}
		ss = append(ss, ds.(*Session))
	}
	return dt.(*Tunnel), ss, &got
}

func TestRecordsAndInspects(t *testing.T) {
	p := New()
	tun, ss, rx := setup(t, p, 1, 10, 11)
	if p.Tunnel(1) != tun || tun.Session(11) != ss[1] || p.Tunnel(2) != nil {
		t.Fatal("lookup by ID failed")
	}
	if _, err := tun.AddSession(dataplane.SessionConfig{LocalID: 10}, nil); err == nil {
		t.Fatal("duplicate session accepted")
	}
	if _, err := p.AddTunnel(dataplane.TunnelConfig{LocalID: 1}); err == nil {
		t.Fatal("duplicate tunnel accepted")
	}

	var sunk [][]byte
	p.SetSink(func(s *Session, f []byte) {
		if s != ss[0] {
			t.Errorf("sink got session %v", s)
		}
		sunk = append(sunk, f)
	})
	frame := []byte{0xc0, 0x21, 1, 1, 0, 4}
	if err := ss[0].SendFrame(frame); err != nil {
		t.Fatal(err)
	}
	frame[0] = 0 // the fake must have copied
	want := [][]byte{{0xc0, 0x21, 1, 1, 0, 4}}
	if d := cmp.Diff(want, ss[0].Sent()); d != "" {
		t.Errorf("Sent: %s", d)
	}
	if d := cmp.Diff(want, sunk); d != "" {
		t.Errorf("sink: %s", d)
	}
	if !ss[1].Inject([]byte{0x80, 0x21, 9}) {
		t.Fatal("Inject into open session failed")
	}
	if d := cmp.Diff([][]byte{{0x80, 0x21, 9}}, *rx); d != "" {
		t.Errorf("handler: %s", d)
	}

	nc := dataplane.NetConfig{MTU: 1400, Local: netip.MustParseAddr("10.0.0.1"), Peer: netip.MustParseAddr("10.0.0.2"),
		Routes: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}}
	if err := ss[0].Up(nc); err != nil {
		t.Fatal(err)
	}
	nc.Routes[0] = netip.Prefix{}
	if got := ss[0].Ups(); len(got) != 1 || got[0].Routes[0] != netip.MustParsePrefix("192.0.2.0/24") || got[0].MTU != 1400 {
		t.Errorf("Ups = %+v", got)
	}
	st, _ := ss[0].Stats()
	if st.TxPackets != 1 || st.TxBytes != 6 {
		t.Errorf("stats = %+v", st)
	}
	tun.HandleData([]byte{0x00, 0x02})
	if d := cmp.Diff([][]byte{{0, 2}}, tun.Data()); d != "" {
		t.Errorf("Data: %s", d)
	}

	if err := ss[0].Close(); err != nil || !ss[0].Closed() || ss[1].Closed() {
		t.Fatal("session close")
	}
	if err := ss[0].SendFrame(frame); err == nil {
		t.Error("send on closed session succeeded")
	}
	if ss[0].Inject(frame) {
		t.Error("inject into closed session succeeded")
	}
	if err := p.Close(); err != nil || !p.Closed() || !tun.Closed() || !ss[1].Closed() {
		t.Fatal("plane close did not close everything")
	}
	if len(p.Sessions()) != 2 || len(p.Tunnels()) != 1 {
		t.Error("closed objects must stay inspectable")
	}
	if _, err := p.AddTunnel(dataplane.TunnelConfig{LocalID: 5}); err == nil {
		t.Error("AddTunnel after Close succeeded")
	}
}

func TestInjectedErrors(t *testing.T) {
	boom := errors.New("boom")
	p := New()
	tun, ss, _ := setup(t, p, 1, 10)
	checks := []struct {
		op Op
		do func() error
	}{
		{OpAddTunnel, func() error { _, err := p.AddTunnel(dataplane.TunnelConfig{LocalID: 9}); return err }},
		{OpAddSession, func() error { _, err := tun.AddSession(dataplane.SessionConfig{LocalID: 99}, nil); return err }},
		{OpSendFrame, func() error { return ss[0].SendFrame([]byte{0xc0, 0x21}) }},
		{OpUp, func() error { return ss[0].Up(dataplane.NetConfig{}) }},
		{OpStats, func() error { _, err := ss[0].Stats(); return err }},
		{OpCloseSession, func() error { return ss[0].Close() }},
		{OpCloseTunnel, func() error { return tun.Close() }},
	}
	for _, c := range checks {
		p.SetError(c.op, boom)
		if err := c.do(); !errors.Is(err, boom) {
			t.Errorf("%v with injected error = %v", c.op, err)
		}
		p.SetError(c.op, nil)
	}
	if len(tun.Sessions()) != 1 || len(p.Tunnels()) != 1 || ss[0].Closed() || tun.Closed() {
		t.Error("a failed operation changed state")
	}
	if st, _ := ss[0].Stats(); st.TxErrors != 1 {
		t.Errorf("TxErrors = %d", st.TxErrors)
	}
}

func TestConnectBackToBack(t *testing.T) {
	p := New()
	_, a, rxA := setup(t, p, 1, 10)
	_, b, rxB := setup(t, p, 2, 20)
	Connect(a[0], b[0])
	if err := a[0].SendFrame([]byte{0xc0, 0x21, 1}); err != nil {
		t.Fatal(err)
	}
	if err := b[0].SendFrame([]byte{0xc0, 0x21, 2}); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([][]byte{{0xc0, 0x21, 1}}, *rxB); d != "" {
		t.Errorf("b received: %s", d)
	}
	if d := cmp.Diff([][]byte{{0xc0, 0x21, 2}}, *rxA); d != "" {
		t.Errorf("a received: %s", d)
	}
}

func TestConcurrent(t *testing.T) {
	p := New()
	tun, ss, _ := setup(t, p, 1, 10)
	p.SetSink(func(*Session, []byte) {})
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 200 {
				_ = ss[0].SendFrame([]byte{byte(i), byte(j)})
				ss[0].Inject([]byte{1})
				_, _ = ss[0].Stats()
				_ = tun.Sessions()
			}
		}()
	}
	wg.Wait()
	if st, _ := ss[0].Stats(); st.TxPackets != 800 || st.RxPackets != 800 {
		t.Errorf("stats = %+v", st)
	}
}

func TestOpString(t *testing.T) {
	for o := OpAddTunnel; o < numOps; o++ {
		if o.String() == "" || o.String()[0] == 'O' {
			t.Errorf("op %d has no name", o)
		}
	}
}
