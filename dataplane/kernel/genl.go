package kernel

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/mdlayher/genetlink"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Client speaks the kernel's L2TP generic netlink family. It is safe for
// concurrent use (genetlink.Conn serialises requests).
type Client struct {
	c      *genetlink.Conn
	family genetlink.Family
}

// DialClient opens a generic netlink socket and resolves the "l2tp"
// family. On a kernel without l2tp_netlink the error wraps
// dataplane.ErrUnsupported (see Probe for the modprobe hint).
func DialClient() (*Client, error) {
	c, err := genetlink.Dial(nil)
	if err != nil {
		return nil, fmt.Errorf("kernel: dial generic netlink: %w", err)
	}
	cl, err := NewClient(c)
	if err != nil {
		c.Close()
		return nil, err
	}
	return cl, nil
}

// NewClient resolves the "l2tp" family on c. Tests pass a connection from
// genltest.Dial. The Client owns c from then on (Close closes it).
func NewClient(c *genetlink.Conn) (*Client, error) {
	f, err := c.GetFamily(genlName)
	if err != nil {
		if errors.Is(err, unix.ENOENT) || netlink.IsNotExist(err) {
			return nil, fmt.Errorf("kernel: generic netlink family %q not found (modprobe l2tp_netlink l2tp_ppp): %w", genlName, errUnsupported(err))
		}
		return nil, fmt.Errorf("kernel: resolve generic netlink family %q: %w", genlName, err)
	}
	return &Client{c: c, family: f}, nil
}

// Close closes the netlink socket.
func (c *Client) Close() error { return c.c.Close() }

// TunnelSpec is TUNNEL_CREATE's input.
type TunnelSpec struct {
	ID, PeerID uint32
	Version    int // 2 or 3
	Encap      EncapType
	FD         int // the tunnel's socket, bound and connected (L2TP_ATTR_FD)
	// UDPCsum is sent as L2TP_ATTR_UDP_CSUM. The kernel honours it only for
	// sockets it creates itself; with FD it follows the socket's SO_NO_CHECK.
	UDPCsum bool
}

// SessionSpec is SESSION_CREATE's input.
type SessionSpec struct {
	TunnelID       uint32
	ID, PeerID     uint32
	Version        int // of the tunnel: cookies and L2SPEC are sent for 3 only
	PWType         uint16
	LNSMode        bool
	SendSeq        bool
	RecvSeq        bool
	ReorderTimeout time.Duration
	Cookie         []byte
	PeerCookie     []byte
	// IfName is sent as L2TP_ATTR_IFNAME. Only Ethernet pseudowires use it;
	// a PPP session's interface is named by the PPP unit (see Session.Up).
	IfName string
}

// SessionParams are what SESSION_MODIFY changes.
type SessionParams struct {
	LNSMode        bool
	SendSeq        bool
	RecvSeq        bool
	ReorderTimeout time.Duration
}

// L2TPStats are the counters of L2TP_ATTR_STATS.
type L2TPStats struct {
	TxPackets, TxBytes, TxErrors uint64
	RxPackets, RxBytes, RxErrors uint64
	RxSeqDiscards, RxOOSPackets  uint64
	RxCookieDiscards, RxInvalid  uint64
}

// TunnelInfo is a TUNNEL_GET reply.
type TunnelInfo struct {
	ID, PeerID uint32
	Version    int
	Encap      EncapType
	Local      netip.AddrPort // from IP(6)_SADDR and UDP_SPORT, when present
	Peer       netip.AddrPort
	UDPCsum    bool
	Stats      L2TPStats
}

// SessionInfo is a SESSION_GET reply.
type SessionInfo struct {
	TunnelID, ID         uint32
	PeerTunnelID, PeerID uint32
	PWType               uint16
	IfName               string
	Cookie, PeerCookie   []byte
	LNSMode              bool
	SendSeq, RecvSeq     bool
	UsingIPsec           bool
	ReorderTimeout       time.Duration
	Stats                L2TPStats
}

func b2u8(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

// CreateTunnel sends TUNNEL_CREATE.
func (c *Client) CreateTunnel(s TunnelSpec) error {
	ae := netlink.NewAttributeEncoder()
	ae.Uint32(attrConnID, s.ID)
	ae.Uint32(attrPeerConnID, s.PeerID)
	ae.Uint8(attrProtoVersion, uint8(s.Version))
	ae.Uint16(attrEncapType, uint16(s.Encap))
	ae.Uint32(attrFD, uint32(int32(s.FD)))
	ae.Uint8(attrUDPCsum, b2u8(s.UDPCsum))
	_, err := c.do(CmdTunnelCreate, ackFlags, ae)
	return opErr(err, CmdTunnelCreate, s.ID, 0)
}

// DeleteTunnel sends TUNNEL_DELETE. It deletes every session of the tunnel;
// the UDP socket stays open (it belongs to the caller).
func (c *Client) DeleteTunnel(id uint32) error {
	ae := netlink.NewAttributeEncoder()
	ae.Uint32(attrConnID, id)
	_, err := c.do(CmdTunnelDelete, ackFlags, ae)
	return opErr(err, CmdTunnelDelete, id, 0)
}

// CreateSession sends SESSION_CREATE.
func (c *Client) CreateSession(s SessionSpec) error {
	ae := netlink.NewAttributeEncoder()
	ae.Uint32(attrConnID, s.TunnelID)
	ae.Uint32(attrSessionID, s.ID)
	ae.Uint32(attrPeerSessionID, s.PeerID)
	ae.Uint16(attrPWType, s.PWType)
	if s.Version == 3 {
		ae.Uint8(attrL2SpecType, l2specTypeDefault)
		if len(s.Cookie) > 0 {
			ae.Bytes(attrCookie, s.Cookie)
		}
		if len(s.PeerCookie) > 0 {
			ae.Bytes(attrPeerCookie, s.PeerCookie)
		}
	}
	encodeParams(ae, SessionParams{LNSMode: s.LNSMode, SendSeq: s.SendSeq, RecvSeq: s.RecvSeq, ReorderTimeout: s.ReorderTimeout})
	if s.IfName != "" {
		ae.String(attrIfName, s.IfName)
	}
	_, err := c.do(CmdSessionCreate, ackFlags, ae)
	return opErr(err, CmdSessionCreate, s.TunnelID, s.ID)
}

func encodeParams(ae *netlink.AttributeEncoder, p SessionParams) {
	ae.Uint8(attrLNSMode, b2u8(p.LNSMode))
	ae.Uint8(attrSendSeq, b2u8(p.SendSeq))
	ae.Uint8(attrRecvSeq, b2u8(p.RecvSeq))
	ae.Uint64(attrRecvTimeout, uint64(p.ReorderTimeout/time.Millisecond))
}

// ModifySession sends SESSION_MODIFY.
func (c *Client) ModifySession(tunnelID, sessionID uint32, p SessionParams) error {
	ae := netlink.NewAttributeEncoder()
	ae.Uint32(attrConnID, tunnelID)
	ae.Uint32(attrSessionID, sessionID)
	encodeParams(ae, p)
	_, err := c.do(CmdSessionModify, ackFlags, ae)
	return opErr(err, CmdSessionModify, tunnelID, sessionID)
}

// DeleteSession sends SESSION_DELETE.
func (c *Client) DeleteSession(tunnelID, sessionID uint32) error {
	ae := netlink.NewAttributeEncoder()
	ae.Uint32(attrConnID, tunnelID)
	ae.Uint32(attrSessionID, sessionID)
	_, err := c.do(CmdSessionDelete, ackFlags, ae)
	return opErr(err, CmdSessionDelete, tunnelID, sessionID)
}

// Tunnel sends TUNNEL_GET for one tunnel.
func (c *Client) Tunnel(id uint32) (TunnelInfo, error) {
	ae := netlink.NewAttributeEncoder()
	ae.Uint32(attrConnID, id)
	msgs, err := c.do(CmdTunnelGet, getFlags, ae)
	if err != nil {
		return TunnelInfo{}, opErr(err, CmdTunnelGet, id, 0)
	}
	if len(msgs) != 1 {
		return TunnelInfo{}, fmt.Errorf("kernel: %v tunnel %d: %d replies, want 1", CmdTunnelGet, id, len(msgs))
	}
	t, err := DecodeTunnel(msgs[0].Data)
	if err != nil {
		return t, fmt.Errorf("kernel: %v tunnel %d: %w", CmdTunnelGet, id, err)
	}
	return t, nil
}

// Tunnels dumps every L2TP tunnel of the network namespace.
func (c *Client) Tunnels() ([]TunnelInfo, error) {
	msgs, err := c.do(CmdTunnelGet, dumpFlags, nil)
	if err != nil {
		return nil, fmt.Errorf("kernel: %v dump: %w", CmdTunnelGet, err)
	}
	out := make([]TunnelInfo, 0, len(msgs))
	for _, m := range msgs {
		t, err := DecodeTunnel(m.Data)
		if err != nil {
			return nil, fmt.Errorf("kernel: %v dump: %w", CmdTunnelGet, err)
		}
		out = append(out, t)
	}
	return out, nil
}

// Session sends SESSION_GET for one session.
func (c *Client) Session(tunnelID, sessionID uint32) (SessionInfo, error) {
	ae := netlink.NewAttributeEncoder()
	ae.Uint32(attrConnID, tunnelID)
	ae.Uint32(attrSessionID, sessionID)
	msgs, err := c.do(CmdSessionGet, getFlags, ae)
	if err != nil {
		return SessionInfo{}, opErr(err, CmdSessionGet, tunnelID, sessionID)
	}
	if len(msgs) != 1 {
		return SessionInfo{}, fmt.Errorf("kernel: %v tunnel %d session %d: %d replies, want 1", CmdSessionGet, tunnelID, sessionID, len(msgs))
	}
	s, err := DecodeSession(msgs[0].Data)
	if err != nil {
		return s, fmt.Errorf("kernel: %v tunnel %d session %d: %w", CmdSessionGet, tunnelID, sessionID, err)
	}
	return s, nil
}

// Sessions dumps every L2TP session of the network namespace.
func (c *Client) Sessions() ([]SessionInfo, error) {
	msgs, err := c.do(CmdSessionGet, dumpFlags, nil)
	if err != nil {
		return nil, fmt.Errorf("kernel: %v dump: %w", CmdSessionGet, err)
	}
	out := make([]SessionInfo, 0, len(msgs))
	for _, m := range msgs {
		s, err := DecodeSession(m.Data)
		if err != nil {
			return nil, fmt.Errorf("kernel: %v dump: %w", CmdSessionGet, err)
		}
		out = append(out, s)
	}
	return out, nil
}

// Request flags. A GET for one object must not ask for an acknowledgement:
// the kernel sends the reply and then the ack as two datagrams, and
// netlink.Conn.Execute reads only the first, so the ack would be left
// queued and fail the next request with "mismatched sequence" (seen on
// Linux 6.1). Dumps end with NLMSG_DONE and get no separate ack.
const (
	ackFlags  = netlink.Request | netlink.Acknowledge
	getFlags  = netlink.Request
	dumpFlags = netlink.Request | netlink.Dump
)

func (c *Client) do(cmd Command, flags netlink.HeaderFlags, ae *netlink.AttributeEncoder) ([]genetlink.Message, error) {
	var data []byte
	if ae != nil {
		var err error
		if data, err = ae.Encode(); err != nil {
			return nil, err
		}
	}
	msg := genetlink.Message{
		Header: genetlink.Header{Command: uint8(cmd), Version: genlVersion},
		Data:   data,
	}
	return c.c.Execute(msg, c.family.ID, flags)
}

// Errors the kernel returns, made readable. They wrap the errno, so
// errors.Is(err, unix.EEXIST) etc. still work, and these sentinels too.
var (
	ErrExists     = errors.New("already exists")
	ErrNotFound   = errors.New("not found")
	ErrPermission = errors.New("permission denied (need CAP_NET_ADMIN)")
)

type kernelError struct {
	cmd             Command
	tunnel, session uint32
	kind, errno     error
}

func (e *kernelError) Error() string {
	what := fmt.Sprintf("tunnel %d", e.tunnel)
	if e.session != 0 {
		what += fmt.Sprintf(" session %d", e.session)
	}
	if e.kind != nil {
		return fmt.Sprintf("kernel: %v %s: %v (%v)", e.cmd, what, e.kind, e.errno)
	}
	return fmt.Sprintf("kernel: %v %s: %v", e.cmd, what, e.errno)
}

func (e *kernelError) Unwrap() []error {
	if e.kind != nil {
		return []error{e.kind, e.errno}
	}
	return []error{e.errno}
}

// opErr maps a netlink error to one naming the command, tunnel and session.
// ENODEV is what the l2tp family returns for an unknown tunnel or session.
func opErr(err error, cmd Command, tunnel, session uint32) error {
	if err == nil {
		return nil
	}
	ke := &kernelError{cmd: cmd, tunnel: tunnel, session: session, errno: err}
	switch {
	case errors.Is(err, unix.EEXIST):
		ke.kind = ErrExists
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.ENODEV):
		ke.kind = ErrNotFound
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		ke.kind = ErrPermission
	}
	return ke
}

// DecodeTunnel decodes the attributes of a TUNNEL_GET reply.
func DecodeTunnel(b []byte) (TunnelInfo, error) {
	var t TunnelInfo
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return t, fmt.Errorf("decode tunnel: %w", err)
	}
	var saddr, daddr netip.Addr
	var sport, dport uint16
	for ad.Next() {
		switch ad.Type() {
		case attrConnID:
			t.ID = ad.Uint32()
		case attrPeerConnID:
			t.PeerID = ad.Uint32()
		case attrProtoVersion:
			t.Version = int(ad.Uint8())
		case attrEncapType:
			t.Encap = EncapType(ad.Uint16())
		case attrUDPCsum:
			t.UDPCsum = ad.Uint8() != 0
		case attrIPSaddr, attrIPDaddr, attrIP6Saddr, attrIP6Daddr:
			typ := ad.Type()
			ad.Do(func(b []byte) error {
				a, ok := netip.AddrFromSlice(b)
				if !ok || (typ <= attrIPDaddr) != a.Is4() {
					return fmt.Errorf("address attribute %d: %d bytes", typ, len(b))
				}
				if typ == attrIPSaddr || typ == attrIP6Saddr {
					saddr = a
				} else {
					daddr = a
				}
				return nil
			})
		case attrUDPSport:
			sport = ad.Uint16()
		case attrUDPDport:
			dport = ad.Uint16()
		case attrStats:
			ad.Nested(func(nad *netlink.AttributeDecoder) error {
				return decodeStats(nad, &t.Stats)
			})
		}
	}
	if err := ad.Err(); err != nil {
		return t, fmt.Errorf("decode tunnel %d: %w", t.ID, err)
	}
	if saddr.IsValid() {
		t.Local = netip.AddrPortFrom(saddr, sport)
	}
	if daddr.IsValid() {
		t.Peer = netip.AddrPortFrom(daddr, dport)
	}
	return t, nil
}

// DecodeSession decodes the attributes of a SESSION_GET reply.
func DecodeSession(b []byte) (SessionInfo, error) {
	var s SessionInfo
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return s, fmt.Errorf("decode session: %w", err)
	}
	for ad.Next() {
		switch ad.Type() {
		case attrConnID:
			s.TunnelID = ad.Uint32()
		case attrSessionID:
			s.ID = ad.Uint32()
		case attrPeerConnID:
			s.PeerTunnelID = ad.Uint32()
		case attrPeerSessionID:
			s.PeerID = ad.Uint32()
		case attrPWType:
			s.PWType = ad.Uint16()
		case attrIfName:
			s.IfName = ad.String()
		case attrCookie:
			s.Cookie = cookie(ad)
		case attrPeerCookie:
			s.PeerCookie = cookie(ad)
		case attrLNSMode:
			s.LNSMode = ad.Uint8() != 0
		case attrSendSeq:
			s.SendSeq = ad.Uint8() != 0
		case attrRecvSeq:
			s.RecvSeq = ad.Uint8() != 0
		case attrUsingIPsec:
			s.UsingIPsec = ad.Uint8() != 0
		case attrRecvTimeout:
			ms := ad.Uint64()
			if ms > uint64(1<<63-1)/uint64(time.Millisecond) {
				ms = uint64(1<<63-1) / uint64(time.Millisecond)
			}
			s.ReorderTimeout = time.Duration(ms) * time.Millisecond
		case attrStats:
			ad.Nested(func(nad *netlink.AttributeDecoder) error {
				return decodeStats(nad, &s.Stats)
			})
		}
	}
	if err := ad.Err(); err != nil {
		return s, fmt.Errorf("decode tunnel %d session %d: %w", s.TunnelID, s.ID, err)
	}
	return s, nil
}

func cookie(ad *netlink.AttributeDecoder) []byte {
	var c []byte
	ad.Do(func(b []byte) error {
		switch len(b) {
		case 0, 4, 8:
			c = append([]byte(nil), b...)
			return nil
		}
		return fmt.Errorf("cookie of %d bytes, want 0, 4 or 8", len(b))
	})
	return c
}

func decodeStats(ad *netlink.AttributeDecoder, s *L2TPStats) error {
	for ad.Next() {
		var p *uint64
		switch ad.Type() {
		case statsTxPackets:
			p = &s.TxPackets
		case statsTxBytes:
			p = &s.TxBytes
		case statsTxErrors:
			p = &s.TxErrors
		case statsRxPackets:
			p = &s.RxPackets
		case statsRxBytes:
			p = &s.RxBytes
		case statsRxSeqDiscards:
			p = &s.RxSeqDiscards
		case statsRxOOSPackets:
			p = &s.RxOOSPackets
		case statsRxErrors:
			p = &s.RxErrors
		case statsRxCookieDiscard:
			p = &s.RxCookieDiscards
		case statsRxInvalid:
			p = &s.RxInvalid
		default:
			continue // statsPad and counters added by newer kernels
		}
		*p = ad.Uint64()
	}
	if err := ad.Err(); err != nil {
		return fmt.Errorf("stats: %w", err)
	}
	return nil
}
