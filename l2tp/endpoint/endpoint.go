// Package endpoint runs L2TP tunnels: it owns the UDP sockets (the shared
// listener and one bound-and-connected socket per tunnel, which the kernel
// data path needs), one goroutine per tunnel that feeds the pure
// l2tp/tunnel core with datagrams and timer ticks, and the wiring of
// established sessions to the data plane and to a per-session driver (PPP).
// Roles (lns, lac) supply policy through Handler.
package endpoint

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/l2tpd/l2tpd/dataplane"
	"github.com/l2tpd/l2tpd/l2tp"
	"github.com/l2tpd/l2tpd/l2tp/tunnel"
)

// TunnelSettings is what a role decides for one tunnel.
type TunnelSettings struct {
	Tunnel tunnel.Config // LocalID and Rand are filled in by the endpoint
	// Name of the peer profile, for logs.
	Profile string
	// DataSeq: put sequence numbers on data messages we send.
	DataSeq bool
	// ReorderTimeout for out-of-order data messages (0: drop them).
	ReorderTimeout time.Duration
	// Handler, when set, receives this tunnel's events instead of the
	// endpoint's handler (the LAC role's dialled tunnels).
	Handler Handler
	// Opaque is kept with the tunnel for the role's own use.
	Opaque any
}

// Handler is the role's policy and the receiver of tunnel/session life
// events. Methods are called from tunnel goroutines; they must not block.
type Handler interface {
	// AcceptTunnel decides about an SCCRQ from peer (LNS role). A non-nil
	// result refuses it with a StopCCN carrying that result.
	AcceptTunnel(peer netip.AddrPort, hostName string) (TunnelSettings, *l2tp.ResultCode)
	// PeerSecret returns the tunnel secret for a peer (nil: none), to read
	// an SCCRQ's hidden AVPs. No side effects.
	PeerSecret(peer netip.AddrPort, hostName string) []byte
	// AdmitCall decides about a call the peer placed.
	AdmitCall(t *Tunnel, dir tunnel.Direction, info *tunnel.CallInfo) *l2tp.ResultCode
	TunnelUp(t *Tunnel)
	// TunnelDown is called once for every tunnel that AcceptTunnel admitted
	// or Dial opened, whether or not it came up (TunnelUp).
	TunnelDown(t *Tunnel, ev tunnel.TunnelDown)
	// SessionUp is told about an established session, with its data plane
	// session (nil if the plane could not create one, then the session is
	// hung up). It returns the session's driver (PPP), or nil.
	SessionUp(s *Session) Driver
	SessionDown(s *Session, ev tunnel.SessionDown)
}

// Driver runs a session's payload protocol (PPP) inside the tunnel's
// goroutine: frames from the data plane, ticks, and a close.
type Driver interface {
	// Frame handles a frame the peer sent (PPP control frame).
	Frame(now time.Time, frame []byte)
	// Tick is called at or after Deadline.
	Tick(now time.Time)
	Deadline() time.Time
	// Close is called once when the session ends; the driver must release
	// what it holds (accounting Stop, pool address).
	Close(now time.Time, reason string)
}

// Config configures an Endpoint.
type Config struct {
	Listen  []netip.AddrPort
	Plane   dataplane.Plane
	Handler Handler
	Logger  *zap.Logger
	// Rand for IDs, challenges, vectors (default crypto/rand).
	Rand io.Reader
	// Now is the clock (default time.Now); tests may replace it.
	Now func() time.Time
}

// Endpoint holds every tunnel of the process.
type Endpoint struct {
	cfg  Config
	log  *zap.Logger
	rand io.Reader

	mu        sync.Mutex
	tunnels   map[uint32]*Tunnel // by our tunnel ID
	byPeer    map[peerKey]*Tunnel
	listeners []*net.UDPConn
	closed    bool

	wg     sync.WaitGroup
	ctx    context.Context
	cancel context.CancelFunc
	// malformed logs each cause once per peer address.
	logOnce sync.Map
}

type peerKey struct {
	addr   netip.AddrPort
	peerID uint32
}

// New creates an endpoint and opens its listening sockets.
func New(cfg Config) (*Endpoint, error) {
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Handler == nil {
		cfg.Handler = refuseAll{}
	}
	e := &Endpoint{
		cfg:     cfg,
		log:     cfg.Logger,
		rand:    cfg.Rand,
		tunnels: make(map[uint32]*Tunnel),
		byPeer:  make(map[peerKey]*Tunnel),
	}
	e.ctx, e.cancel = context.WithCancel(context.Background())
	for _, a := range cfg.Listen {
		c, err := listen(a)
		if err != nil {
			e.closeListeners()
			return nil, err
		}
		e.listeners = append(e.listeners, c)
	}
	for _, c := range e.listeners {
		e.wg.Add(1)
		go e.readListener(c)
	}
	return e, nil
}

// ListenAddrs returns the bound listener addresses (useful with port 0).
func (e *Endpoint) ListenAddrs() []netip.AddrPort {
	var out []netip.AddrPort
	for _, c := range e.listeners {
		out = append(out, c.LocalAddr().(*net.UDPAddr).AddrPort())
	}
	return out
}

func (e *Endpoint) closeListeners() {
	for _, c := range e.listeners {
		c.Close()
	}
}

// allocTunnelID picks a free random tunnel ID; called with e.mu held.
func (e *Endpoint) allocTunnelID() (uint32, error) {
	var b [2]byte
	for range 64 {
		if _, err := io.ReadFull(e.rand, b[:]); err != nil {
			return 0, err
		}
		id := uint32(b[0])<<8 | uint32(b[1])
		if id != 0 && e.tunnels[id] == nil {
			return id, nil
		}
	}
	for id := uint32(1); id <= 0xffff; id++ {
		if e.tunnels[id] == nil {
			return id, nil
		}
	}
	return 0, errors.New("no free tunnel ID (65535 tunnels in use)")
}

// Tunnels returns a snapshot of the tunnels.
func (e *Endpoint) Tunnels() []*Tunnel {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]*Tunnel, 0, len(e.tunnels))
	for _, t := range e.tunnels {
		out = append(out, t)
	}
	return out
}

// logMalformed logs a dropped datagram once per (peer, cause).
func (e *Endpoint) logMalformed(peer netip.AddrPort, tunnelID uint32, err error) {
	key := peer.Addr().String() + "|" + causeKey(err)
	if _, loaded := e.logOnce.LoadOrStore(key, struct{}{}); loaded {
		return
	}
	e.log.Warn("dropped malformed L2TP message (logged once per peer and cause)",
		zap.Stringer("peer", peer), zap.Uint32("tunnel", tunnelID), zap.Error(err))
}

func causeKey(err error) string {
	// The innermost error names the cause without per-packet numbers.
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err.Error()
		}
		err = u
	}
}

// readListener receives datagrams on a shared listening socket.
func (e *Endpoint) readListener(c *net.UDPConn) {
	defer e.wg.Done()
	buf := make([]byte, 65536)
	oob := make([]byte, 128)
	laddr := c.LocalAddr().(*net.UDPAddr).AddrPort()
	for {
		n, oobn, _, from, err := c.ReadMsgUDPAddrPort(buf, oob)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			e.log.Warn("reading L2TP listener", zap.Stringer("listen", laddr), zap.Error(err))
			continue
		}
		local := laddr
		if d, ok := dstAddr(oob[:oobn]); ok {
			local = netip.AddrPortFrom(d, laddr.Port())
		}
		from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		e.handleListenerPacket(c, local, from, buf[:n])
	}
}

func (e *Endpoint) handleListenerPacket(lc *net.UDPConn, local, from netip.AddrPort, pkt []byte) {
	hdr, payload, err := l2tp.ParseHeader(pkt)
	if err != nil {
		e.logMalformed(from, 0, err)
		return
	}
	if hdr.TunnelID != 0 {
		e.mu.Lock()
		t := e.tunnels[hdr.TunnelID]
		e.mu.Unlock()
		if t == nil || t.peerAddr().Addr() != from.Addr() {
			if hdr.Control {
				e.logMalformed(from, hdr.TunnelID, fmt.Errorf("control message for unknown tunnel %d", hdr.TunnelID))
			}
			return
		}
		if !hdr.Control {
			t.handleData(pkt)
			return
		}
		t.deliver(from, hdr, pkt)
		return
	}
	if !hdr.Control {
		return // data message on the control path: dropped quietly
	}
	e.handleSCCRQ(lc, local, from, hdr, payload, pkt)
}

// refuseAll is the handler of an endpoint that only dials (LAC only): it
// refuses every SCCRQ.
type refuseAll struct{}

func (refuseAll) AcceptTunnel(netip.AddrPort, string) (TunnelSettings, *l2tp.ResultCode) {
	return TunnelSettings{}, &l2tp.ResultCode{Result: l2tp.ResultStopNotAuthorized, Message: "this node accepts no tunnels"}
}
func (refuseAll) PeerSecret(netip.AddrPort, string) []byte { return nil }
func (refuseAll) AdmitCall(*Tunnel, tunnel.Direction, *tunnel.CallInfo) *l2tp.ResultCode {
	return &l2tp.ResultCode{Result: l2tp.ResultCDNPermResources, Message: "no calls accepted"}
}
func (refuseAll) TunnelUp(*Tunnel)                         {}
func (refuseAll) TunnelDown(*Tunnel, tunnel.TunnelDown)    {}
func (refuseAll) SessionUp(*Session) Driver                { return nil }
func (refuseAll) SessionDown(*Session, tunnel.SessionDown) {}
