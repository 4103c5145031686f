package endpoint

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/l2tpd/l2tpd/dataplane"
	"github.com/l2tpd/l2tpd/dataplane/fake"
	"github.com/l2tpd/l2tpd/l2tp"
)

// frameRec is a Driver that records the frames it is given.
type frameRec struct{ frames [][]byte }

func (d *frameRec) Frame(_ time.Time, f []byte) {
	d.frames = append(d.frames, append([]byte(nil), f...))
}
func (d *frameRec) Tick(time.Time)          {}
func (d *frameRec) Deadline() time.Time     { return time.Time{} }
func (d *frameRec) Close(time.Time, string) {}

// dataMsg is an L2TPv2 data message to tunnel 7 session sid carrying
// FF 03 and frame.
func dataMsg(sid uint32, frame ...byte) []byte {
	b := l2tp.AppendHeader(nil, l2tp.Header{Version: l2tp.Version2, TunnelID: 7, SessionID: sid}, 2+len(frame))
	b = append(b, 0xff, 0x03)
	return append(b, frame...)
}

// A data message for a session the data plane does not have yet (the
// LAC's first LCP Configure-Request read right after its ICCN) is queued
// for the tunnel goroutine, in order behind the ICCN, and its PPP control
// frame reaches the session's driver there; an IP packet is not.
func TestEarlyFrameKeptForSession(t *testing.T) {
	e := fakeEndpoint(t)
	tun := e.newTunnel(7, TunnelSettings{}, netip.MustParseAddrPort("192.0.2.1:1701"), netip.MustParseAddrPort("192.0.2.2:1701"), nil, nil)
	dpt, err := fake.New().AddTunnel(dataplane.TunnelConfig{Version: 2, LocalID: 7, PeerID: 9})
	if err != nil {
		t.Fatal(err)
	}
	tun.dp = dpt

	lcp := []byte{0xc0, 0x21, 0x01, 0x01, 0x00, 0x04}
	early := dataMsg(3, lcp...)
	hdr, _, err := l2tp.ParseHeader(early)
	if err != nil {
		t.Fatal(err)
	}
	tun.handleData(hdr, early, true)
	ip := dataMsg(3, 0x00, 0x21, 0x45)
	hdrIP, _, _ := l2tp.ParseHeader(ip)
	tun.handleData(hdrIP, ip, false)
	if got := dpt.(*fake.Tunnel).Data(); len(got) != 0 {
		t.Fatalf("data plane was given %d messages for a session it does not have", len(got))
	}
	// Only the control frame is kept: IP before the session exists has no
	// network to go to (see TestEarlyDataBounded).
	if tun.in.queued() != 1 {
		t.Fatalf("%d items queued for the tunnel goroutine, want 1 (the LCP frame)", tun.in.queued())
	}

	// The ICCN queued before them created the session.
	d := &frameRec{}
	tun.sessions[3] = &Session{T: tun, ID: 3, driver: d}
	tun.dpSessions[3] = struct{}{}
	now := time.Unix(1000, 0)
	items := tun.in.take()
	if len(items) != 1 {
		t.Fatalf("took %d items, want 1", len(items))
	}
	for _, it := range items {
		if !it.early || it.sid != 3 {
			t.Fatalf("queued item %+v, want an early data message for session 3", it)
		}
		tun.handleEarly(now, it)
	}
	if len(d.frames) != 1 || !bytes.Equal(d.frames[0], lcp) {
		t.Fatalf("driver got %x, want only the LCP frame %x", d.frames, lcp)
	}
	if got := dpt.(*fake.Tunnel).Data(); len(got) != 0 {
		t.Fatalf("data plane got %x, want nothing: the early IP packet was dropped", got)
	}

	// Once the data plane has the session, data goes straight to it.
	tun.handleData(hdr, early, true)
	if tun.in.queued() != 0 || len(dpt.(*fake.Tunnel).Data()) != 1 {
		t.Fatalf("known session: %d queued, %d to the data plane", tun.in.queued(), len(dpt.(*fake.Tunnel).Data()))
	}
}

func TestPPPControlFrame(t *testing.T) {
	for _, tc := range []struct {
		name string
		pkt  []byte
		want []byte
	}{
		{"lcp", dataMsg(1, 0xc0, 0x21, 1, 1, 0, 4), []byte{0xc0, 0x21, 1, 1, 0, 4}},
		{"ipcp without address/control", append(l2tp.AppendHeader(nil, l2tp.Header{Version: l2tp.Version2, TunnelID: 7, SessionID: 1}, 4), 0x80, 0x21, 1, 1), []byte{0x80, 0x21, 1, 1}},
		{"ipv4", dataMsg(1, 0x00, 0x21, 0x45), nil},
		{"compressed protocol", dataMsg(1, 0x21, 0x45), nil},
		{"one byte", dataMsg(1, 0xc0), nil},
		{"truncated header", []byte{0x00, 0x02, 0x00}, nil},
		{"control message", []byte{0xc8, 0x02, 0x00, 0x0c, 0, 7, 0, 0, 0, 0, 0, 0}, nil},
	} {
		got, ok := pppControlFrame(tc.pkt)
		if ok != (tc.want != nil) || !bytes.Equal(got, tc.want) {
			t.Errorf("%s: %x %v, want %x", tc.name, got, ok, tc.want)
		}
	}
}

// A data message on the tunnel's socket whose tunnel ID is neither this
// tunnel's nor another tunnel's on the same 4-tuple is dropped, not routed
// by its session ID to this tunnel's session of that ID.
func TestDataForOtherTunnelIDDropped(t *testing.T) {
	e := fakeEndpoint(t)
	peer := netip.MustParseAddrPort("192.0.2.2:1701")
	tun := e.newTunnel(7, TunnelSettings{}, netip.MustParseAddrPort("192.0.2.1:1701"), peer, nil, nil)
	dpt, err := fake.New().AddTunnel(dataplane.TunnelConfig{Version: 2, LocalID: 7, PeerID: 9})
	if err != nil {
		t.Fatal(err)
	}
	tun.dp = dpt
	tun.dpSessions[3] = struct{}{}
	rs := readState{peer: peer, connected: true}

	other := l2tp.AppendHeader(nil, l2tp.Header{Version: l2tp.Version2, TunnelID: 8, SessionID: 3}, 4)
	other = append(other, 0x00, 0x21, 0x45, 0x00)
	tun.readOne(&rs, other, peer, false)
	zero := l2tp.AppendHeader(nil, l2tp.Header{Version: l2tp.Version2, TunnelID: 0, SessionID: 3}, 4)
	zero = append(zero, 0x00, 0x21, 0x45, 0x00)
	tun.readOne(&rs, zero, peer, false)
	if got := dpt.(*fake.Tunnel).Data(); len(got) != 0 {
		t.Fatalf("data plane got %d messages addressed to tunnels 8 and 0", len(got))
	}
	if tun.in.queued() != 0 {
		t.Fatalf("%d items queued for the tunnel goroutine, want none", tun.in.queued())
	}
	own := dataMsg(3, 0x00, 0x21, 0x45)
	tun.readOne(&rs, own, peer, false)
	if got := dpt.(*fake.Tunnel).Data(); len(got) != 1 {
		t.Fatalf("data plane got %d messages for tunnel 7 session 3, want 1", len(got))
	}
}
