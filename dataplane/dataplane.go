// Package dataplane is the boundary between the control plane (L2TP control
// protocol, PPP negotiation) and the path subscriber packets take.
//
// Three implementations satisfy Plane:
//   - dataplane/kernel: Linux L2TP generic netlink, PPPoL2TP sockets and
//     /dev/ppp channels and units; subscriber traffic never reaches userspace.
//   - dataplane/userspace: L2TP data messages are read from the tunnel's
//     socket and routed through a TUN device (hosts without L2TP/PPP).
//   - dataplane/fake: in memory, for tests.
//
// Everything above this package talks only to these interfaces. All syscalls
// of the data path live below it.
package dataplane

import (
	"errors"
	"net"
	"net/netip"
	"time"
)

// Encap is the tunnel encapsulation.
type Encap uint8

const (
	EncapUDP Encap = iota // L2TPv2 and L2TPv3 over UDP
	EncapIP               // L2TPv3 over IP (protocol 115)
)

// PWType is the pseudowire type carried by a session (RFC 3931 / IANA
// values, as in linux/l2tp.h).
type PWType uint16

const (
	PWTypeEthernet PWType = 0x0005
	PWTypePPP      PWType = 0x0007
)

// ErrUnsupported is returned when an implementation cannot do what was asked
// (for example the kernel lacks a module). Wrap it with the reason.
var ErrUnsupported = errors.New("dataplane: not supported")

// TunnelConfig describes one tunnel to the data path.
type TunnelConfig struct {
	Version int    // 2 or 3
	LocalID uint32 // our tunnel ID (16 bits for L2TPv2)
	PeerID  uint32 // the peer's tunnel ID
	Encap   Encap
	Local   netip.AddrPort
	Peer    netip.AddrPort
	// Conn is the tunnel's own UDP socket, bound to Local and connected to
	// Peer. The control plane keeps reading control messages from it; the
	// kernel plane hands its fd to the kernel (L2TP_ATTR_FD), the userspace
	// plane writes data messages on it.
	Conn *net.UDPConn
	// UDPChecksums enables UDP checksums on data packets (IPv4).
	UDPChecksums bool
}

// SessionConfig describes one session (call) inside a tunnel.
type SessionConfig struct {
	LocalID uint32 // our session ID
	PeerID  uint32 // the peer's session ID
	PWType  PWType
	// LNSMode: we are the LNS for this session (kernel L2TP_ATTR_LNS_MODE).
	LNSMode bool
	// SendSeq/RecvSeq: put sequence numbers on data packets we send;
	// require them on data packets we receive.
	SendSeq bool
	RecvSeq bool
	// ReorderTimeout holds out-of-order data packets this long (0: drop).
	ReorderTimeout time.Duration
	// L2TPv3 cookies (0, 4 or 8 bytes each).
	Cookie     []byte
	PeerCookie []byte
	// IfName is the network interface name to give the subscriber's
	// interface (already expanded from the configured pattern); empty lets
	// the implementation choose.
	IfName string
}

// FrameHandler receives PPP frames from the peer that the control plane must
// see (LCP, authentication, NCPs). A frame starts with the 2-byte PPP
// protocol field; address/control bytes are already removed. It is called on
// the data plane's goroutine (or the caller of Tunnel.HandleData): it must
// not block and must not keep frame after returning.
type FrameHandler func(frame []byte)

// Plane creates tunnels and sessions in one data path.
type Plane interface {
	// Name is "kernel", "userspace" or "fake".
	Name() string
	AddTunnel(cfg TunnelConfig) (Tunnel, error)
	// Close removes everything this plane created.
	Close() error
}

// RemovalDeferrer is implemented by a Plane that can remove the network
// interfaces of many sessions together, much faster than one by one (the
// kernel plane: one unregistration of every ppp unit, where each alone
// waits for RCU grace periods). After DeferRemoval, a Session's Close ends
// its data path at once (the subscriber's traffic stops) but leaves its
// interface in place; the Plane's Close removes them all. The daemon calls
// it when it starts to shut down, when no new session will want the names
// and addresses of the ones that end.
type RemovalDeferrer interface {
	DeferRemoval()
}

// Tunnel is a tunnel known to the data path.
type Tunnel interface {
	// AddSession creates a session. rx receives the peer's PPP control
	// frames (nil for non-PPP pseudowires).
	AddSession(cfg SessionConfig, rx FrameHandler) (Session, error)
	// HandleData is given every data message (T=0) that the control plane
	// read from the tunnel's socket (the whole L2TP packet, header
	// included). The kernel plane never sees any, since the kernel consumes
	// them; the userspace plane forwards them.
	HandleData(pkt []byte)
	// Close deletes the tunnel and every session left in it.
	Close() error
}

// BlockingAdd is implemented by a Tunnel whose AddSession makes system
// calls slow enough (the kernel plane: SESSION_CREATE, a PPPoL2TP socket,
// its channel and a /dev/ppp fd: 17 ms a session in the lab VM) that the
// control plane runs it on a worker and carries on with the tunnel's
// other calls meanwhile. AddBlocks reports whether this Tunnel is such a
// one. For it, AddSession and Close may run at once: a session added
// while the Tunnel closes is closed with it, or refused.
type BlockingAdd interface {
	Tunnel
	AddBlocks() bool
}

// Flusher is implemented by a Tunnel that may hold the PPP frames its
// sessions' SendFrame is given and send them together (one system call for
// many). SendFrame and Flush are called on the tunnel's goroutine only; the
// control plane calls Flush at the end of every pass of that goroutine,
// after the frames of the pass were given, so a frame waits at most for the
// rest of the pass it was produced in.
type Flusher interface {
	Flush()
}

// BatchSender is implemented by a Flusher that sends on the tunnel's own
// connected socket (TunnelConfig.Conn): FlushWith sends ctrl (the pass's
// control messages, whole datagrams) and then the held frames, in that
// order, with one system call instead of one for each. The error is the
// one met sending ctrl (the frames count their own errors). Called on the
// tunnel's goroutine only, in place of the control plane's own send and
// Flush.
type BatchSender interface {
	Flusher
	FlushWith(ctrl [][]byte) error
}

// NetConfig is what the network layer negotiation (IPCP, IPv6CP) settled.
type NetConfig struct {
	IfName string // interface name (pattern already expanded)
	MTU    int
	MRU    int
	// IPv4: our address on the link and the subscriber's.
	Local netip.Addr
	Peer  netip.Addr
	// Routes to install towards the subscriber (Framed-Route).
	Routes []netip.Prefix
	// IPv6: interface identifiers negotiated by IPv6CP (zero if IPv6CP is
	// not open) and prefixes routed to the subscriber.
	LocalIfID  [8]byte
	PeerIfID   [8]byte
	IPv6Routes []netip.Prefix
}

// Session is a session (PPP pseudowire) known to the data path.
type Session interface {
	// SendFrame sends a PPP frame (protocol field first) to the peer.
	SendFrame(frame []byte) error
	// Up connects the session to the host's network (PPP unit / interface
	// / routes) once the NCPs have opened; called again when they change.
	Up(cfg NetConfig) error
	// Stats returns the session's data counters.
	Stats() (Stats, error)
	// Close deletes the session and whatever Up created.
	Close() error
}

// BlockingUp is implemented by a Session whose Up makes system calls slow
// enough (the kernel plane: a PPP unit, its interface, addresses and
// routes, each a netlink or ioctl round trip) that the LNS driver
// (pppsession) runs it on a worker, off the tunnel's goroutine, and
// carries on with the tunnel's other calls meanwhile; the LAC driver still
// calls it inline. UpBlocks reports whether this Session is such a one.
// For it, SendFrame and Stats must not wait for an Up in progress, and
// Close waits for it. The control plane never runs two Ups of one Session
// at once.
type BlockingUp interface {
	Session
	UpBlocks() bool
}

// Stats are per-session data counters, as seen by the data path.
type Stats struct {
	TxPackets, TxBytes, TxErrors uint64
	RxPackets, RxBytes, RxErrors uint64
}
