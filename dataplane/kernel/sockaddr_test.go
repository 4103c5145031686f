package kernel

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Offsets written down from linux/if_pppox.h and linux/if_pppol2tp.h and
// checked with gcc (sizeof/offsetof) on x86_64:
//
//	sockaddr_pppol2tp      size 38: pid 6, fd 10, addr 14, s_tunnel 30, s_session 32, d_tunnel 34, d_session 36
//	sockaddr_pppol2tpin6   size 50: pid 6, fd 10, s_tunnel 14, s_session 16, d_tunnel 18, d_session 20, addr 22
//	sockaddr_pppol2tpv3    size 46: pid 6, fd 10, addr 14, s_tunnel 30, s_session 34, d_tunnel 38, d_session 42
//	sockaddr_pppol2tpv3in6 size 58: pid 6, fd 10, s_tunnel 14, s_session 18, d_tunnel 22, d_session 26, addr 30
func TestSockaddrLayout(t *testing.T) {
	ne := binary.NativeEndian
	tests := []struct {
		name string
		addr PPPoL2TPAddr
		size int
		ids  [4]int // offsets of s_tunnel, s_session, d_tunnel, d_session
		wide bool
		inet int // offset of the struct sockaddr_in/in6
		v6   bool
	}{
		{"pppol2tp", PPPoL2TPAddr{Version: 2, FD: 7, Peer: netip.MustParseAddrPort("192.0.2.1:1701"), TunnelID: 0x1101, SessionID: 0x2202, PeerTunnelID: 0x3303, PeerSessionID: 0x4404},
			38, [4]int{30, 32, 34, 36}, false, 14, false},
		{"pppol2tpin6", PPPoL2TPAddr{Version: 2, FD: 7, Peer: netip.MustParseAddrPort("[2001:db8::1]:1701"), TunnelID: 0x1101, SessionID: 0x2202, PeerTunnelID: 0x3303, PeerSessionID: 0x4404},
			50, [4]int{14, 16, 18, 20}, false, 22, true},
		{"pppol2tpv3", PPPoL2TPAddr{Version: 3, FD: 7, Peer: netip.MustParseAddrPort("192.0.2.1:1701"), TunnelID: 0x11010101, SessionID: 0x22020202, PeerTunnelID: 0x33030303, PeerSessionID: 0x44040404},
			46, [4]int{30, 34, 38, 42}, true, 14, false},
		{"pppol2tpv3in6", PPPoL2TPAddr{Version: 3, FD: 7, Peer: netip.MustParseAddrPort("[2001:db8::1]:1701"), TunnelID: 0x11010101, SessionID: 0x22020202, PeerTunnelID: 0x33030303, PeerSessionID: 0x44040404},
			58, [4]int{14, 18, 22, 26}, true, 30, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.addr.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if len(b) != tt.size {
				t.Fatalf("len = %d, want sizeof = %d", len(b), tt.size)
			}
			if got := ne.Uint16(b[0:]); got != 24 {
				t.Errorf("sa_family = %d, want AF_PPPOX 24", got)
			}
			if got := ne.Uint32(b[2:]); got != 1 {
				t.Errorf("sa_protocol = %d, want PX_PROTO_OL2TP 1", got)
			}
			if got := ne.Uint32(b[6:]); got != 0 {
				t.Errorf("pid = %d, want 0", got)
			}
			if got := ne.Uint32(b[10:]); got != 7 {
				t.Errorf("fd = %d, want 7", got)
			}
			want := [4]uint32{tt.addr.TunnelID, tt.addr.SessionID, tt.addr.PeerTunnelID, tt.addr.PeerSessionID}
			for i, off := range tt.ids {
				var got uint32
				if tt.wide {
					got = ne.Uint32(b[off:])
				} else {
					got = uint32(ne.Uint16(b[off:]))
				}
				if got != want[i] {
					t.Errorf("id %d at offset %d = %#x, want %#x", i, off, got, want[i])
				}
			}
			if tt.v6 {
				if got := ne.Uint16(b[tt.inet:]); got != 10 {
					t.Errorf("sin6_family = %d, want 10", got)
				}
				if got := binary.BigEndian.Uint16(b[tt.inet+2:]); got != 1701 {
					t.Errorf("sin6_port = %d", got)
				}
				if got := netip.AddrFrom16([16]byte(b[tt.inet+8 : tt.inet+24])); got != tt.addr.Peer.Addr() {
					t.Errorf("sin6_addr = %v", got)
				}
			} else {
				if got := ne.Uint16(b[tt.inet:]); got != 2 {
					t.Errorf("sin_family = %d, want 2", got)
				}
				if got := binary.BigEndian.Uint16(b[tt.inet+2:]); got != 1701 {
					t.Errorf("sin_port = %d", got)
				}
				if got := b[tt.inet+4 : tt.inet+8]; string(got) != "\xc0\x00\x02\x01" {
					t.Errorf("sin_addr = % x", got)
				}
			}
			back, err := ParsePPPoL2TPAddr(b)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.addr, back, cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSockaddrErrors(t *testing.T) {
	peer := netip.MustParseAddrPort("192.0.2.1:1701")
	for _, a := range []PPPoL2TPAddr{
		{Version: 2, Peer: peer, TunnelID: 0x10000},
		{Version: 2, Peer: peer, PeerSessionID: 0x10000},
		{Version: 4, Peer: peer},
		{Version: 2},
	} {
		if _, err := a.Marshal(); !errors.Is(err, errBadSockaddr) {
			t.Errorf("Marshal(%+v) = %v, want errBadSockaddr", a, err)
		}
	}
	for _, n := range []int{0, 13, 37, 39, 100} {
		b := make([]byte, n)
		if n >= 6 {
			binary.NativeEndian.PutUint16(b, 24)
			binary.NativeEndian.PutUint32(b[2:], 1)
		}
		if _, err := ParsePPPoL2TPAddr(b); err == nil {
			t.Errorf("ParsePPPoL2TPAddr(%d bytes) succeeded", n)
		}
	}
}

func TestSockaddrMappedPeerIsIPv4(t *testing.T) {
	b, err := PPPoL2TPAddr{Version: 2, Peer: netip.MustParseAddrPort("[::ffff:192.0.2.1]:1701")}.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != sizeofSockaddrPPPoL2TP {
		t.Errorf("IPv4-mapped peer gave %d bytes, want the IPv4 variant", len(b))
	}
}
