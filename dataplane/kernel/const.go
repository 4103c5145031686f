package kernel

import "fmt"

// Constants from the kernel's UAPI headers, kept together. Sources:
// linux/l2tp.h (generic netlink family "l2tp"), linux/if_pppox.h,
// linux/if_pppol2tp.h, linux/ppp-ioctl.h, linux/ppp_defs.h.

// Generic netlink family.
const (
	genlName    = "l2tp" // L2TP_GENL_NAME
	genlVersion = 1      // L2TP_GENL_VERSION
)

// Command is an L2TP generic netlink command (enum L2TP_CMD_*).
type Command uint8

const (
	CmdNoop          Command = 0
	CmdTunnelCreate  Command = 1
	CmdTunnelDelete  Command = 2
	CmdTunnelModify  Command = 3
	CmdTunnelGet     Command = 4
	CmdSessionCreate Command = 5
	CmdSessionDelete Command = 6
	CmdSessionModify Command = 7
	CmdSessionGet    Command = 8
)

func (c Command) String() string {
	switch c {
	case CmdNoop:
		return "NOOP"
	case CmdTunnelCreate:
		return "TUNNEL_CREATE"
	case CmdTunnelDelete:
		return "TUNNEL_DELETE"
	case CmdTunnelModify:
		return "TUNNEL_MODIFY"
	case CmdTunnelGet:
		return "TUNNEL_GET"
	case CmdSessionCreate:
		return "SESSION_CREATE"
	case CmdSessionDelete:
		return "SESSION_DELETE"
	case CmdSessionModify:
		return "SESSION_MODIFY"
	case CmdSessionGet:
		return "SESSION_GET"
	}
	return fmt.Sprintf("Command(%d)", uint8(c))
}

// Top-level attributes (enum L2TP_ATTR_*).
const (
	attrNone           = 0
	attrPWType         = 1  // u16
	attrEncapType      = 2  // u16
	attrOffset         = 3  // u16, unused
	attrDataSeq        = 4  // u16, unused
	attrL2SpecType     = 5  // u8
	attrL2SpecLen      = 6  // u8, unused
	attrProtoVersion   = 7  // u8
	attrIfName         = 8  // string
	attrConnID         = 9  // u32
	attrPeerConnID     = 10 // u32
	attrSessionID      = 11 // u32
	attrPeerSessionID  = 12 // u32
	attrUDPCsum        = 13 // u8
	attrVLANID         = 14 // u16, unused
	attrCookie         = 15 // 0, 4 or 8 bytes
	attrPeerCookie     = 16 // 0, 4 or 8 bytes
	attrDebug          = 17 // u32, unused
	attrRecvSeq        = 18 // u8
	attrSendSeq        = 19 // u8
	attrLNSMode        = 20 // u8
	attrUsingIPsec     = 21 // u8
	attrRecvTimeout    = 22 // u64 milliseconds (nla_put_msecs)
	attrFD             = 23 // u32 (int)
	attrIPSaddr        = 24 // be32 (struct in_addr)
	attrIPDaddr        = 25 // be32
	attrUDPSport       = 26 // u16 host order
	attrUDPDport       = 27 // u16 host order
	attrMTU            = 28 // u16, unused
	attrMRU            = 29 // u16, unused
	attrStats          = 30 // nested
	attrIP6Saddr       = 31 // struct in6_addr
	attrIP6Daddr       = 32 // struct in6_addr
	attrUDPZeroCsum6TX = 33 // flag
	attrUDPZeroCsum6RX = 34 // flag
	attrPad            = 35
)

// Attributes nested in attrStats (enum L2TP_ATTR_STATS_*). All u64.
const (
	statsTxPackets       = 1
	statsTxBytes         = 2
	statsTxErrors        = 3
	statsRxPackets       = 4
	statsRxBytes         = 5
	statsRxSeqDiscards   = 6
	statsRxOOSPackets    = 7
	statsRxErrors        = 8
	statsPad             = 9
	statsRxCookieDiscard = 10
	statsRxInvalid       = 11
)

// EncapType is enum l2tp_encap_type.
type EncapType uint16

const (
	EncapTypeUDP EncapType = 0
	EncapTypeIP  EncapType = 1
)

func (e EncapType) String() string {
	switch e {
	case EncapTypeUDP:
		return "udp"
	case EncapTypeIP:
		return "ip"
	}
	return fmt.Sprintf("EncapType(%d)", uint16(e))
}

// L2SpecType is enum l2tp_l2spec_type (L2TPv3 only).
const (
	l2specTypeNone    = 0
	l2specTypeDefault = 1
)

// PPPoX socket family and protocol (linux/if_pppox.h). x/sys/unix has
// AF_PPPOX but not PX_PROTO_OL2TP.
const (
	afPPPoX      = 24 // AF_PPPOX
	pxProtoOL2TP = 1  // PX_PROTO_OL2TP
)

// PPP protocol numbers (linux/ppp_defs.h) the plane sets NP modes for.
const (
	pppIP   = 0x0021 // PPP_IP
	pppIPv6 = 0x0057 // PPP_IPV6
)

// NPMode is enum NPmode (linux/ppp_defs.h): what the unit does with packets
// of one network protocol.
type NPMode uint32

const (
	NPModePass  NPMode = 0 // NPMODE_PASS: pass the packet through
	NPModeDrop  NPMode = 1 // NPMODE_DROP: silently drop
	NPModeError NPMode = 2 // NPMODE_ERROR: return an error
	NPModeQueue NPMode = 3 // NPMODE_QUEUE: save it up for later
)

func (m NPMode) String() string {
	switch m {
	case NPModePass:
		return "pass"
	case NPModeDrop:
		return "drop"
	case NPModeError:
		return "error"
	case NPModeQueue:
		return "queue"
	}
	return fmt.Sprintf("NPMode(%d)", uint32(m))
}

// Size of the kernel's struct npioctl { int protocol; enum NPmode mode; }.
const sizeofNPIoctl = 8

// Sizes of the packed sockaddr structs of linux/if_pppox.h (checked
// against the C compiler's sizeof on x86_64; all fields are fixed size, so
// the same on every Linux architecture).
const (
	sizeofSockaddrPPPoL2TP      = 38 // sockaddr_pppol2tp
	sizeofSockaddrPPPoL2TPin6   = 50 // sockaddr_pppol2tpin6
	sizeofSockaddrPPPoL2TPv3    = 46 // sockaddr_pppol2tpv3
	sizeofSockaddrPPPoL2TPv3in6 = 58 // sockaddr_pppol2tpv3in6
	sizeofSockaddrIn            = 16
	sizeofSockaddrIn6           = 28
	sockaddrPPPoXHeaderLen      = 6 // sa_family u16 + sa_protocol u32, packed
	fdsPerSession               = 3 // PPPoL2TP socket, /dev/ppp channel, /dev/ppp unit
	defaultFDMargin             = 256
	defaultStateDir             = "/run/l2tpd"
	stateFileName               = "kernel-tunnels"
)
