package endpoint

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/l2tpd/l2tpd/l2tp"
)

// FuzzListenerPacket feeds arbitrary datagrams to the listener's packet
// handler of an endpoint that refuses every tunnel (so well-formed SCCRQs
// create refused tunnels, bounded per peer, and their goroutines): it must
// never panic or block.
func FuzzListenerPacket(f *testing.F) {
	f.Add(sccrq(7))
	f.Add(ctlPacket(0, 0, 0, 0, msgTypeAVP(l2tp.MsgHello)))
	f.Add(ctlPacket(0, 0, 0, 0, msgTypeAVP(l2tp.MsgSCCRQ), rawAVP(0x8000, 3, 7, []byte("x"))))
	f.Add(ctlPacket(0, 0, 0, 0, msgTypeAVP(l2tp.MsgSCCRQ), rawAVP(0x8000, -1, uint16(l2tp.AVPRandomVector), []byte("rv")),
		hiddenAVP(uint16(l2tp.AVPAssignedTunnelID), []byte("k"), []byte("rv"), []byte{0, 1}, 2)))
	f.Add([]byte{0x00, 0x02, 0, 0, 0, 0})
	f.Add([]byte{})

	e, err := New(Config{Listen: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:0")}, MaxRefusedPerPeer: 4})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		e.Shutdown(ctx)
	})
	lc := e.listeners[0]
	local := lc.LocalAddr().(*net.UDPAddr).AddrPort()
	// The refused tunnels' StopCCNs go to the discard port.
	from := netip.MustParseAddrPort("127.0.0.1:9")
	f.Fuzz(func(t *testing.T, data []byte) {
		e.handleListenerPacket(lc, local, from, data)
		if n := len(e.Tunnels()); n > 4 {
			t.Fatalf("%d refused tunnels held for one peer, want at most 4", n)
		}
	})
}

// A refused peer that floods SCCRQs with fresh tunnel IDs: state is held
// for at most MaxRefusedPerPeer of them, yet every one is answered with a
// StopCCN carrying the refusal.
func TestRefusedFloodBounded(t *testing.T) {
	rec := newRecorder()
	rec.refuse = &l2tp.ResultCode{Result: l2tp.ResultStopNotAuthorized, Message: "go away"}
	e, err := New(Config{Listen: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:0")}, Handler: rec, MaxRefusedPerPeer: 3})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		e.Shutdown(ctx)
	})
	peer := udpFrom(t, "127.0.0.1:0")
	from := peer.LocalAddr().(*net.UDPAddr).AddrPort()
	lc := e.listeners[0]
	local := lc.LocalAddr().(*net.UDPAddr).AddrPort()
	const n = 100
	for i := range n {
		e.handleListenerPacket(lc, local, from, sccrq(uint16(100+i)))
	}
	if got := len(e.Tunnels()); got != 3 {
		t.Errorf("%d refused tunnels hold state, want 3 (MaxRefusedPerPeer)", got)
	}
	answered := map[uint16]bool{}
	_ = peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 2048)
	for len(answered) < n {
		k, err := peer.Read(buf)
		if err != nil {
			t.Fatalf("%d of %d SCCRQs answered: %v", len(answered), n, err)
		}
		hdr, payload, err := l2tp.ParseHeader(buf[:k])
		if err != nil || len(payload) == 0 {
			continue
		}
		m, err := l2tp.ParseMessage(payload, nil)
		if err != nil || m.Type != l2tp.MsgStopCCN {
			t.Fatalf("answer %v, %v; want StopCCN", m, err)
		}
		v, _ := m.Bytes(l2tp.AVPResultCode)
		if rc, err := l2tp.ParseResultCode(v); err != nil || rc.Result != l2tp.ResultStopNotAuthorized {
			t.Fatalf("StopCCN result %+v, %v; want not authorized", rc, err)
		}
		answered[uint16(hdr.TunnelID)] = true
	}
}
