package endpoint

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// reuseAddr lets the listener and every tunnel socket share UDP port 1701:
// the kernel delivers a peer's datagrams to the connected tunnel socket
// (most specific match) and everything else to the listener.
func reuseAddr(network, address string, c syscall.RawConn) error {
	return sockOpts(true)(network, address, c)
}

// pktInfoOnly is reuseAddr without SO_REUSEADDR: for a socket bound to an
// ephemeral port (a LAC dialling with local port 0). With SO_REUSEADDR on
// both, Linux's ephemeral port search does not count another SO_REUSEADDR
// socket bound to a port as a conflict (udp_lib_lport_inuse), so two such
// sockets may be given the same port: 100 opened at once shared one about
// one time in five. Two LAC tunnels on one port are one 4-tuple to the LNS;
// the LNS's answers to one reach the other's socket and the first tunnel
// never comes up.
func pktInfoOnly(network, address string, c syscall.RawConn) error {
	return sockOpts(false)(network, address, c)
}

// receiveBuffer is the receive buffer every L2TP socket (listener and
// tunnels) asks for. The kernel's default (net.core.rmem_default, 208 KiB)
// holds about 150 datagrams as the kernel counts them (an skb's true size,
// about 1.3 KiB for a PPP frame). A LAC re-dialling hundreds of calls on
// one tunnel sends their PPP frames in a burst, and PPP frames are not
// retransmitted by L2TP: one dropped waits out a 3 s PPP restart timer (a
// dropped control message, the retransmission timeout). The size is a
// limit, not an allocation: memory is used only while datagrams wait.
const receiveBuffer = 2 << 20

// setReceiveBuffer asks for receiveBuffer on fd: with SO_RCVBUFFORCE when
// the process may (CAP_NET_ADMIN, which l2tpd has), so that
// net.core.rmem_max does not cap it, else with SO_RCVBUF (capped by
// rmem_max). Best effort: a socket keeps the default it has otherwise.
func setReceiveBuffer(fd int) {
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, receiveBuffer) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, receiveBuffer)
	}
}

func sockOpts(reuse bool) func(network, address string, c syscall.RawConn) error {
	return func(network, address string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			setReceiveBuffer(int(fd))
			if reuse {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
			}
			if serr == nil && (network == "udp4" || network == "udp") {
				serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_PKTINFO, 1)
			}
			if serr == nil && network == "udp6" {
				serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}
}

// dialSocket opens a LAC tunnel's socket, unconnected until the LNS
// answers (it may answer from another port). A given local port is shared
// (SO_REUSEADDR, like the listener's); port 0 gets an ephemeral port of its
// own.
func dialSocket(local, peer netip.AddrPort) (*net.UDPConn, error) {
	ctl := reuseAddr
	if local.Port() == 0 {
		ctl = pktInfoOnly
	}
	lc := net.ListenConfig{Control: ctl}
	pc, err := lc.ListenPacket(context.Background(), udpNetwork(peer.Addr()), local.String())
	if err != nil {
		return nil, err
	}
	return pc.(*net.UDPConn), nil
}

func udpNetwork(a netip.Addr) string {
	if a.Is4() || a.Is4In6() {
		return "udp4"
	}
	return "udp6"
}

// listen opens a listening socket on addr.
func listen(addr netip.AddrPort) (*net.UDPConn, error) {
	lc := net.ListenConfig{Control: reuseAddr}
	pc, err := lc.ListenPacket(context.Background(), udpNetwork(addr.Addr()), addr.String())
	if err != nil {
		return nil, fmt.Errorf("listen on %v: %w (is another L2TP daemon running?)", addr, err)
	}
	return pc.(*net.UDPConn), nil
}

// stray is a datagram a tunnel's socket received before it was connected.
type stray struct {
	from netip.AddrPort
	pkt  []byte
}

// openTunnelSocket opens a tunnel's own socket bound to local and connected
// to peer. Between bind and connect the socket is as good a match for
// datagrams to local as the listener (and the newer one is found first):
// an SCCRQ from another peer may land on it then. Everything queued on it
// when connect returns is handed back (strays) for the listener's path;
// once connected, only peer's datagrams reach it.
func openTunnelSocket(local, peer netip.AddrPort) (*net.UDPConn, []stray, error) {
	lc := net.ListenConfig{Control: reuseAddr}
	pc, err := lc.ListenPacket(context.Background(), udpNetwork(peer.Addr()), local.String())
	if err != nil {
		return nil, nil, fmt.Errorf("tunnel socket %v -> %v: %w", local, peer, err)
	}
	c := pc.(*net.UDPConn)
	if h := dialTunnelHook.Load(); h != nil {
		(*h)(c)
	}
	strays, err := connectDrain(c, peer)
	if err != nil {
		c.Close()
		return nil, nil, fmt.Errorf("tunnel socket %v -> %v: %w", local, peer, err)
	}
	return c, strays, nil
}

// dialTunnel is openTunnelSocket for a socket whose local address no
// listener shares (tests): nothing queued before the connect is kept.
func dialTunnel(local, peer netip.AddrPort) (*net.UDPConn, error) {
	c, _, err := openTunnelSocket(local, peer)
	return c, err
}

// dialTunnelHook, when set (tests), runs between a tunnel socket's bind and
// its connect.
var dialTunnelHook atomic.Pointer[func(c *net.UDPConn)]

// maxStrays bounds what connectDrain takes: it runs on the listener's
// path, which a peer sending as fast as it can must not hold. What is left
// is read by the tunnel's own reader, which passes on what is not the
// peer's (Tunnel.passOn).
const maxStrays = 64

// connectDrain connects c to peer and takes the datagrams already queued
// on it (received before the connect, from anyone; or from peer since),
// at most maxStrays.
func connectDrain(c *net.UDPConn, peer netip.AddrPort) ([]stray, error) {
	if err := connectTo(c, peer); err != nil {
		return nil, err
	}
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	var strays []stray
	var rerr error
	err = rc.Control(func(fd uintptr) {
		for range maxStrays {
			// Peek for the length first: the common case (nothing
			// queued) allocates nothing.
			n, _, err := unix.Recvfrom(int(fd), nil, unix.MSG_DONTWAIT|unix.MSG_PEEK|unix.MSG_TRUNC)
			if err != nil {
				if err != unix.EAGAIN && err != unix.EINTR {
					rerr = err
				}
				return
			}
			buf := make([]byte, max(n, 1))
			n, sa, err := unix.Recvfrom(int(fd), buf, unix.MSG_DONTWAIT)
			if err != nil {
				if err != unix.EAGAIN && err != unix.EINTR {
					rerr = err
				}
				return
			}
			var from netip.AddrPort
			switch a := sa.(type) {
			case *unix.SockaddrInet4:
				from = netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port))
			case *unix.SockaddrInet6:
				from = netip.AddrPortFrom(netip.AddrFrom16(a.Addr).Unmap(), uint16(a.Port))
			default:
				continue
			}
			strays = append(strays, stray{from: from, pkt: buf[:n]})
		}
	})
	if err == nil {
		err = rerr
	}
	if err != nil {
		return strays, fmt.Errorf("draining tunnel socket: %w", err)
	}
	return strays, nil
}

// connectTo connects an unconnected socket (LAC side, once the LNS answered,
// possibly from another port).
func connectTo(c *net.UDPConn, peer netip.AddrPort) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var sa unix.Sockaddr
	if peer.Addr().Is4() {
		sa = &unix.SockaddrInet4{Port: int(peer.Port()), Addr: peer.Addr().As4()}
	} else {
		sa = &unix.SockaddrInet6{Port: int(peer.Port()), Addr: peer.Addr().As16()}
	}
	var cerr error
	if err := rc.Control(func(fd uintptr) { cerr = unix.Connect(int(fd), sa) }); err != nil {
		return err
	}
	if cerr != nil {
		return fmt.Errorf("connect tunnel socket to %v: %w", peer, cerr)
	}
	return nil
}

// dstAddr extracts the destination address of a datagram from its
// IP_PKTINFO / IPV6_PKTINFO control message.
func dstAddr(oob []byte) (netip.Addr, bool) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return netip.Addr{}, false
	}
	for _, m := range msgs {
		switch {
		case m.Header.Level == unix.IPPROTO_IP && m.Header.Type == unix.IP_PKTINFO && len(m.Data) >= unix.SizeofInet4Pktinfo:
			var a [4]byte
			copy(a[:], m.Data[8:12]) // struct in_pktinfo: ifindex, spec_dst, addr
			return netip.AddrFrom4(a), true
		case m.Header.Level == unix.IPPROTO_IPV6 && m.Header.Type == unix.IPV6_PKTINFO && len(m.Data) >= unix.SizeofInet6Pktinfo:
			var a [16]byte
			copy(a[:], m.Data[:16])
			return netip.AddrFrom16(a), true
		}
	}
	return netip.Addr{}, false
}
