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
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/l2tpd/l2tpd/dataplane"
	"github.com/l2tpd/l2tpd/internal/udpbatch"
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
	// MaxSetupPerPeer bounds the tunnels one peer address may have in
	// setup (SCCRQ accepted, not yet established) at once; beyond it an
	// SCCRQ gets one StopCCN, no state, and the role is not asked
	// (default 64).
	MaxSetupPerPeer int
	// MaxRefusedPerPeer and MaxRefused bound the refused tunnels whose
	// state is held for the StopCCN retransmission cycle, per peer address
	// and in all (defaults 8 and 1024). Beyond them a refusal is answered
	// with one StopCCN and no state: a peer flooding SCCRQs with fresh
	// tunnel IDs costs a bounded amount of memory.
	MaxRefusedPerPeer int
	MaxRefused        int
}

// Defaults of the per-peer bounds (Config).
const (
	DefaultMaxSetupPerPeer   = 64
	DefaultMaxRefusedPerPeer = 8
	DefaultMaxRefused        = 1024
)

// Endpoint holds every tunnel of the process.
type Endpoint struct {
	cfg  Config
	log  *zap.Logger
	rand io.Reader

	mu        sync.Mutex
	tunnels   map[uint32]*Tunnel // by our tunnel ID
	byPeer    map[peerKey]*Tunnel
	load      map[netip.Addr]*peerLoad // tunnels in setup or refused, per peer address
	refused   int                      // refused tunnels holding state
	listeners []*net.UDPConn
	closed    bool

	wg     sync.WaitGroup
	ctx    context.Context
	cancel context.CancelFunc
	// malformed logs each cause once per peer address.
	logOnce sync.Map // logKey -> struct{}
	logKeys atomic.Int64
	logFull atomic.Bool

	// rxBufs: receive buffers of every tunnel socket's reader, held only
	// while a reader has datagrams to hand out.
	rxBufs *udpbatch.Buffers
	// addQ: data plane AddSessions waiting for one of the addWorkers
	// (dataplane.BlockingAdd), started with the first (addOnce).
	addQ    chan addJob
	addOnce sync.Once

	// Test hooks (nil in production): passHook is called on a tunnel
	// goroutine after it handled the items queued for a pass (how many),
	// writeHook with the control messages of a pass as they are sent.
	passHook  func(t *Tunnel, items int)
	writeHook func(t *Tunnel, msgs [][]byte)
}

// Receive batches of the tunnel sockets: up to rxBatch datagrams per
// recvmmsg, each of up to rxBufSize bytes (data messages carrying a 9000-byte
// MTU: L2TP header, PPP header and payload, with room to spare); a longer
// datagram is dropped as malformed.
const (
	rxBatch   = 16
	rxBufSize = 9216
)

// addWorkers is how many data plane AddSessions run at once, each on a
// worker goroutine of the endpoint (dataplane.BlockingAdd); most of one
// is waiting for the kernel, and the bound keeps a burst of calls from
// tying up an OS thread each.
const addWorkers = 8

// addQueueLen bounds the AddSessions waiting for a worker (each a few
// hundred bytes): admission (max_starting, max_sessions) normally keeps
// them far below; with both off, a flood of calls past it has its
// sessions added on its tunnels' goroutines, as without BlockingAdd.
const addQueueLen = 4096

type logKey struct {
	addr  netip.Addr
	cause string
}

// peerLoad counts one peer address's tunnels that are not established.
type peerLoad struct{ setup, refused int }

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
	if cfg.MaxSetupPerPeer <= 0 {
		cfg.MaxSetupPerPeer = DefaultMaxSetupPerPeer
	}
	if cfg.MaxRefusedPerPeer <= 0 {
		cfg.MaxRefusedPerPeer = DefaultMaxRefusedPerPeer
	}
	if cfg.MaxRefused <= 0 {
		cfg.MaxRefused = DefaultMaxRefused
	}
	e := &Endpoint{
		cfg:     cfg,
		log:     cfg.Logger,
		rand:    cfg.Rand,
		tunnels: make(map[uint32]*Tunnel),
		byPeer:  make(map[peerKey]*Tunnel),
		load:    make(map[netip.Addr]*peerLoad),
		addQ:    make(chan addJob, addQueueLen),
	}
	bufs, err := udpbatch.NewBuffers(rxBatch, rxBufSize)
	if err != nil {
		return nil, fmt.Errorf("endpoint: %w", err)
	}
	e.rxBufs = bufs
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

// countLoad records that t is in setup or refused; called with e.mu held.
func (e *Endpoint) countLoad(t *Tunnel) {
	a := t.peer.Addr()
	pl := e.load[a]
	if pl == nil {
		pl = &peerLoad{}
		e.load[a] = pl
	}
	if t.refused {
		pl.refused++
		e.refused++
	} else {
		pl.setup++
	}
	t.loadAddr, t.loaded = a, true
}

// releaseLoad undoes countLoad once (established or gone); called with
// e.mu held.
func (e *Endpoint) releaseLoad(t *Tunnel) {
	if !t.loaded {
		return
	}
	t.loaded = false
	pl := e.load[t.loadAddr]
	if pl == nil {
		return
	}
	if t.refused {
		pl.refused--
		e.refused--
	} else {
		pl.setup--
	}
	if pl.setup <= 0 && pl.refused <= 0 {
		delete(e.load, t.loadAddr)
	}
}

// Causes of dropped datagrams the endpoint itself detects; each is logged
// once per peer address (the codec's and control channel's errors wrap
// sentinels of their own).
var (
	errUnknownTunnel = errors.New("control message for an unknown tunnel, or from an address that is not the tunnel's peer")
	errTunnelZero    = errors.New("only SCCRQ may carry tunnel ID 0")
	errWrongTunnel   = errors.New("control message for another tunnel on a tunnel's own socket")
	errRefusedFlood  = errors.New("too many refused tunnels held for this peer")
	errSetupFlood    = errors.New("too many tunnels in setup from this peer")
)

// maxLogKeys bounds the (peer, cause) pairs remembered for logMalformed: a
// flood from many source addresses must not grow memory without bound.
const maxLogKeys = 4096

// logMalformed logs a dropped datagram once per (peer, cause).
func (e *Endpoint) logMalformed(peer netip.AddrPort, tunnelID uint32, err error) {
	key := logKey{peer.Addr(), causeKey(err)}
	if _, ok := e.logOnce.Load(key); ok {
		return
	}
	if e.logKeys.Add(1) > maxLogKeys {
		e.logKeys.Add(-1)
		if e.logFull.CompareAndSwap(false, true) {
			e.log.Warn("too many sources of malformed L2TP messages: no longer logging new ones", zap.Int("remembered", maxLogKeys))
		}
		return
	}
	if _, loaded := e.logOnce.LoadOrStore(key, struct{}{}); loaded {
		e.logKeys.Add(-1)
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
		e.listenerGuarded(func() { e.handleListenerPacket(c, local, from, buf[:n]) })
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
		if t == nil || !t.acceptsFrom(from) {
			if hdr.Control {
				e.logMalformed(from, hdr.TunnelID, fmt.Errorf("tunnel %d: %w", hdr.TunnelID, errUnknownTunnel))
			}
			return
		}
		if !hdr.Control {
			t.handleData(hdr, pkt, false)
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
