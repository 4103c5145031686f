package endpoint

import (
	"testing"

	"github.com/l2tpd/l2tpd/l2tp"
)

// Data for a session the data plane does not know yet is queued only when
// it is a PPP control frame of plausible size: IP packets and oversized
// datagrams are dropped at once, so a peer cannot fill a tunnel's queue.
func TestEarlyDataBounded(t *testing.T) {
	msg := func(payload []byte) []byte {
		h := l2tp.Header{Version: 2, HasLength: true, TunnelID: 1, SessionID: 7}
		return append(l2tp.AppendHeader(nil, h, len(payload)), payload...)
	}
	lcp := []byte{0xff, 0x03, 0xc0, 0x21, 1, 1, 0, 4}
	ipv4 := append([]byte{0xff, 0x03, 0x00, 0x21}, make([]byte, 40)...)
	bigLCP := append([]byte{0xff, 0x03, 0xc0, 0x21}, make([]byte, maxEarlyDatagram)...)
	cases := []struct {
		name   string
		pkt    []byte
		queued bool
	}{
		{"LCP request", msg(lcp), true},
		{"IPv4 packet", msg(ipv4), false},
		{"oversized control frame", msg(bigLCP), false},
	}
	for _, c := range cases {
		tn := &Tunnel{in: newMailbox(), done: make(chan struct{}), dpSessions: map[uint32]struct{}{}}
		hdr, _, err := l2tp.ParseHeader(c.pkt)
		if err != nil {
			t.Fatal(err)
		}
		tn.handleData(hdr, c.pkt, false)
		if got := tn.in.queued() == 1; got != c.queued {
			t.Errorf("%s: queued=%v, want %v", c.name, got, c.queued)
		}
	}
}
