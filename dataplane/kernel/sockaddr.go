package kernel

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"
)

// PPPoL2TPAddr is what connect(2) on an AF_PPPOX/PX_PROTO_OL2TP socket
// needs: the tunnel's UDP socket and the four IDs. Marshal picks the
// sockaddr variant: L2TPv2 uses 16-bit IDs (sockaddr_pppol2tp or
// sockaddr_pppol2tpin6), L2TPv3 32-bit IDs (sockaddr_pppol2tpv3 or
// sockaddr_pppol2tpv3in6); IPv4 or IPv6 follows Peer. The kernel tells the
// four apart by the address length.
type PPPoL2TPAddr struct {
	Version       int            // 2 or 3
	FD            int            // the tunnel's UDP socket
	Peer          netip.AddrPort // only used by the kernel for tunnels it does not know yet
	TunnelID      uint32         // s_tunnel: ours, for matching incoming packets
	SessionID     uint32         // s_session
	PeerTunnelID  uint32         // d_tunnel: the peer's, for outgoing packets
	PeerSessionID uint32         // d_session
}

var errBadSockaddr = errors.New("bad PPPoL2TP sockaddr")

// Marshal encodes a in the kernel's packed layout (native byte order for
// the ints, network order for port and address, as struct sockaddr_in/in6).
func (a PPPoL2TPAddr) Marshal() ([]byte, error) {
	peer := a.Peer.Addr().Unmap()
	v6 := peer.Is6()
	if !peer.IsValid() {
		return nil, fmt.Errorf("%w: no peer address", errBadSockaddr)
	}
	var b []byte
	switch a.Version {
	case 2:
		for _, id := range [...]uint32{a.TunnelID, a.SessionID, a.PeerTunnelID, a.PeerSessionID} {
			if id > 0xffff {
				return nil, fmt.Errorf("%w: L2TPv2 ID %d does not fit 16 bits", errBadSockaddr, id)
			}
		}
		if v6 {
			b = make([]byte, sizeofSockaddrPPPoL2TPin6)
		} else {
			b = make([]byte, sizeofSockaddrPPPoL2TP)
		}
	case 3:
		if v6 {
			b = make([]byte, sizeofSockaddrPPPoL2TPv3in6)
		} else {
			b = make([]byte, sizeofSockaddrPPPoL2TPv3)
		}
	default:
		return nil, fmt.Errorf("%w: L2TP version %d", errBadSockaddr, a.Version)
	}
	ne := binary.NativeEndian
	ne.PutUint16(b[0:], afPPPoX)
	ne.PutUint32(b[2:], pxProtoOL2TP)
	ne.PutUint32(b[6:], 0) // pid 0: the fd belongs to the calling process
	ne.PutUint32(b[10:], uint32(int32(a.FD)))
	const body = 14
	ids := func(off int, wide bool) {
		for i, id := range [...]uint32{a.TunnelID, a.SessionID, a.PeerTunnelID, a.PeerSessionID} {
			if wide {
				ne.PutUint32(b[off+4*i:], id)
			} else {
				ne.PutUint16(b[off+2*i:], uint16(id))
			}
		}
	}
	switch {
	case a.Version == 2 && !v6:
		putSockaddrIn(b[body:], peer, a.Peer.Port())
		ids(body+sizeofSockaddrIn, false)
	case a.Version == 2 && v6:
		ids(body, false)
		putSockaddrIn6(b[body+8:], peer, a.Peer.Port())
	case a.Version == 3 && !v6:
		putSockaddrIn(b[body:], peer, a.Peer.Port())
		ids(body+sizeofSockaddrIn, true)
	default:
		ids(body, true)
		putSockaddrIn6(b[body+16:], peer, a.Peer.Port())
	}
	return b, nil
}

// ParsePPPoL2TPAddr decodes what Marshal produced (the variant is chosen by
// len(b), as the kernel does).
func ParsePPPoL2TPAddr(b []byte) (PPPoL2TPAddr, error) {
	var a PPPoL2TPAddr
	ne := binary.NativeEndian
	if len(b) < sockaddrPPPoXHeaderLen+8 {
		return a, fmt.Errorf("%w: %d bytes", errBadSockaddr, len(b))
	}
	if f, p := ne.Uint16(b[0:]), ne.Uint32(b[2:]); f != afPPPoX || p != pxProtoOL2TP {
		return a, fmt.Errorf("%w: family %d protocol %d", errBadSockaddr, f, p)
	}
	a.FD = int(int32(ne.Uint32(b[10:])))
	const body = 14
	ids := func(off int, wide bool) {
		dst := [...]*uint32{&a.TunnelID, &a.SessionID, &a.PeerTunnelID, &a.PeerSessionID}
		for i, p := range dst {
			if wide {
				*p = ne.Uint32(b[off+4*i:])
			} else {
				*p = uint32(ne.Uint16(b[off+2*i:]))
			}
		}
	}
	var err error
	switch len(b) {
	case sizeofSockaddrPPPoL2TP:
		a.Version = 2
		a.Peer, err = parseSockaddrIn(b[body:])
		ids(body+sizeofSockaddrIn, false)
	case sizeofSockaddrPPPoL2TPin6:
		a.Version = 2
		ids(body, false)
		a.Peer, err = parseSockaddrIn6(b[body+8:])
	case sizeofSockaddrPPPoL2TPv3:
		a.Version = 3
		a.Peer, err = parseSockaddrIn(b[body:])
		ids(body+sizeofSockaddrIn, true)
	case sizeofSockaddrPPPoL2TPv3in6:
		a.Version = 3
		ids(body, true)
		a.Peer, err = parseSockaddrIn6(b[body+16:])
	default:
		return a, fmt.Errorf("%w: length %d matches no variant", errBadSockaddr, len(b))
	}
	return a, err
}

func putSockaddrIn(b []byte, ip netip.Addr, port uint16) {
	binary.NativeEndian.PutUint16(b[0:], unix.AF_INET)
	binary.BigEndian.PutUint16(b[2:], port)
	a4 := ip.As4()
	copy(b[4:8], a4[:])
	// b[8:16] is sin_zero, already zero.
}

func putSockaddrIn6(b []byte, ip netip.Addr, port uint16) {
	binary.NativeEndian.PutUint16(b[0:], unix.AF_INET6)
	binary.BigEndian.PutUint16(b[2:], port)
	// b[4:8] flowinfo 0
	a16 := ip.As16()
	copy(b[8:24], a16[:])
	// b[24:28] scope id 0
}

func parseSockaddrIn(b []byte) (netip.AddrPort, error) {
	if f := binary.NativeEndian.Uint16(b); f != unix.AF_INET {
		return netip.AddrPort{}, fmt.Errorf("%w: inner family %d, want AF_INET", errBadSockaddr, f)
	}
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[4:8])), binary.BigEndian.Uint16(b[2:])), nil
}

func parseSockaddrIn6(b []byte) (netip.AddrPort, error) {
	if f := binary.NativeEndian.Uint16(b); f != unix.AF_INET6 {
		return netip.AddrPort{}, fmt.Errorf("%w: inner family %d, want AF_INET6", errBadSockaddr, f)
	}
	return netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[8:24])), binary.BigEndian.Uint16(b[2:])), nil
}
