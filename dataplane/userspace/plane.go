// Package userspace is the data path for hosts whose kernel has no L2TP or
// PPP support: L2TP data messages are read by the control plane from each
// tunnel's UDP socket and handed to Tunnel.HandleData, and subscriber IP
// packets go in and out of the host's network stack through a TUN device.
//
// # One TUN device for every session
//
// All sessions share a single TUN device (Config.IfName, "l2tp0" by
// default) and one goroutine reads it. Each subscriber address (and each
// Framed-Route / IPv6 prefix) gets a kernel route through that device; a
// packet read from it is matched to its session by destination address in
// an in-memory table and sent as an L2TP data message on the tunnel's socket.
// The alternative, one TUN per session (what pppd does with ppp units),
// would cost a file descriptor, a network interface and a reader goroutine
// per subscriber: at 100,000 sessions that is 100,000 interfaces for the
// kernel to walk and 100,000 goroutine stacks. With one device a session
// costs a few hundred bytes, a table entry and a route. What is lost is the
// per-subscriber interface (per-interface firewall rules, counters in
// `ip link`); the plane keeps its own per-session counters instead, and
// firewall rules can match on the subscriber's addresses.
//
// With Config.PoolPrefixes, each pool prefix is routed to the device once
// and a session inside a pool costs no kernel route at all: installing a
// route per session over rtnetlink was 7% of the daemon's CPU per setup.
//
// Packets from a subscriber reach the TUN device only once its session is
// Up, and only if their source address is one the subscriber was given
// (anti-spoofing). PPP control protocols (LCP, PAP, CHAP, IPCP, IPv6CP and
// every other non-IP protocol) go to the session's FrameHandler.
//
// The device is opened at the first Up and removed (with its routes) when
// the last session that was Up is closed, or by Plane.Close.
//
// The per-packet paths (HandleData and the TUN reader) do not allocate.
package userspace

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/l2tpd/l2tpd/dataplane"
	"github.com/l2tpd/l2tpd/internal/udpbatch"
)

// PPP protocol numbers seen by the data path (RFC 1661, RFC 1332, RFC 5072).
const (
	protoIPv4   = 0x0021
	protoIPv6   = 0x0057
	pppAddress  = 0xff
	pppControl  = 0x03
	maxHeader   = 14 // v2 data header with Ns/Nr (10) + FF 03 + protocol (4)
	headroom    = 16
	maxIPPacket = 65535
)

// DefaultIfName is the TUN device's name when Config.IfName is empty.
const DefaultIfName = "l2tp0"

// Config configures the userspace plane.
type Config struct {
	// IfName is the TUN device's name (DefaultIfName if empty).
	IfName string
	// MTU of the TUN device (1400 if zero: room for the L2TP, UDP and IP
	// headers in a 1500-byte path). A session's NetConfig.MTU, if set,
	// becomes the MTU of its routes.
	MTU int
	// PoolPrefixes are the prefixes of the configured address pools (see
	// RangePrefixes). Each is routed to the device once, when it opens;
	// a session's address or Framed-Route inside one gets no kernel route
	// of its own (only an entry in the plane's table), unless the
	// session's MTU is below the device's. A packet to a pool address
	// with no session is dropped and counted (NoRoute). The prefixes are
	// fixed for the plane's life: a pool added by a reload is served with
	// per-session routes, a removed pool stays routed (its packets
	// dropped) until restart.
	PoolPrefixes []netip.Prefix
}

// device is the TUN device together with the host routing table: the only
// part of the plane that makes syscalls. tunDevice is the real one; tests
// use an in-memory one.
type device interface {
	// Read reads one IP packet. It returns an error once Close was called.
	Read(p []byte) (int, error)
	// Write writes one IP packet into the host's stack.
	Write(p []byte) (int, error)
	// AddRoute routes p through the device (mtu 0: the device's).
	AddRoute(p netip.Prefix, mtu int) error
	DelRoute(p netip.Prefix) error
	// AddAddr / DelAddr put our end of a link (NetConfig.Local) on the
	// device as a host address.
	AddAddr(a netip.Addr) error
	DelAddr(a netip.Addr) error
	// Close removes the device (and with it every route through it).
	Close() error
}

// Plane is the userspace data plane. Create it with New.
type Plane struct {
	cfg     Config
	openDev func(Config) (device, error)
	// writer returns where a tunnel's data messages go (tests replace it).
	writer func(dataplane.TunnelConfig) (sender, error)

	table  routeTable
	pools4 []pool4 // the IPv4 prefixes of cfg.PoolPrefixes (set when the device opens)

	mu       sync.Mutex // guards the fields below
	dev      device
	readDone chan struct{}
	devGen   uint32             // counts device opens: netState.gen names the one a session holds
	devUsers int                // sessions that are Up
	addrs    map[netip.Addr]int // local addresses on the device, refcounted
	tunnels  map[uint32]*tunnel
	closed   bool

	// live is the open device for the per-packet path (nil when closed).
	live atomic.Pointer[liveDev]

	noRoute atomic.Uint64 // packets from the device with no session
}

// liveDev is an open device and its open count (Plane.devGen).
type liveDev struct {
	dev device
	gen uint32
}

var _ dataplane.Plane = (*Plane)(nil)

// New returns a userspace plane. Nothing is opened until a session is Up.
func New(cfg Config) *Plane {
	return newPlane(cfg, openTUN)
}

func newPlane(cfg Config, open func(Config) (device, error)) *Plane {
	if cfg.IfName == "" {
		cfg.IfName = DefaultIfName
	}
	if cfg.MTU == 0 {
		cfg.MTU = 1400
	}
	var pools []netip.Prefix
	for _, q := range cfg.PoolPrefixes {
		if q.IsValid() && !slices.Contains(pools, q.Masked()) {
			pools = append(pools, q.Masked())
		}
	}
	cfg.PoolPrefixes = pools
	return &Plane{
		cfg:     cfg,
		openDev: open,
		writer:  connWriter,
		tunnels: map[uint32]*tunnel{},
		addrs:   map[netip.Addr]int{},
	}
}

func connWriter(cfg dataplane.TunnelConfig) (sender, error) {
	if cfg.Conn == nil {
		return nil, errors.New("no socket (TunnelConfig.Conn is nil)")
	}
	return udpbatch.NewConn(cfg.Conn), nil
}

// Name implements dataplane.Plane.
func (p *Plane) Name() string { return "userspace" }

// NoRoute counts packets read from the device that matched no session.
func (p *Plane) NoRoute() uint64 { return p.noRoute.Load() }

// AddTunnel implements dataplane.Plane. Only L2TPv2 over UDP is supported.
func (p *Plane) AddTunnel(cfg dataplane.TunnelConfig) (dataplane.Tunnel, error) {
	if cfg.Version != 2 || cfg.Encap != dataplane.EncapUDP {
		return nil, fmt.Errorf("userspace dataplane: tunnel %d: version %d encap %d: %w", cfg.LocalID, cfg.Version, cfg.Encap, dataplane.ErrUnsupported)
	}
	if cfg.LocalID > 0xffff || cfg.PeerID > 0xffff {
		return nil, fmt.Errorf("userspace dataplane: tunnel %d/%d: L2TPv2 tunnel IDs are 16 bits", cfg.LocalID, cfg.PeerID)
	}
	w, err := p.writer(cfg)
	if err != nil {
		return nil, fmt.Errorf("userspace dataplane: tunnel %d: %w", cfg.LocalID, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, fmt.Errorf("userspace dataplane: tunnel %d: plane closed", cfg.LocalID)
	}
	if _, dup := p.tunnels[cfg.LocalID]; dup {
		return nil, fmt.Errorf("userspace dataplane: tunnel %d: already exists", cfg.LocalID)
	}
	t := &tunnel{plane: p, cfg: cfg, w: w, sessions: map[uint32]*session{}}
	p.tunnels[cfg.LocalID] = t
	return t, nil
}

// Close implements dataplane.Plane: it closes every tunnel and the device.
func (p *Plane) Close() error {
	p.mu.Lock()
	p.closed = true
	ts := make([]*tunnel, 0, len(p.tunnels))
	for _, t := range p.tunnels {
		ts = append(ts, t)
	}
	p.mu.Unlock()
	var errs []error
	for _, t := range ts {
		errs = append(errs, t.Close())
	}
	p.mu.Lock()
	errs = append(errs, p.closeDeviceLocked())
	p.mu.Unlock()
	return errors.Join(errs...)
}

// acquireDevice opens the device for one more Up session.
func (p *Plane) acquireDeviceLocked() error {
	if p.closed {
		return errors.New("plane closed")
	}
	if p.dev == nil {
		dev, err := p.openDev(p.cfg)
		if err != nil {
			return err
		}
		for _, q := range p.cfg.PoolPrefixes {
			if err := dev.AddRoute(q, 0); err != nil {
				dev.Close()
				return fmt.Errorf("route pool prefix %v to %s: %w", q, p.cfg.IfName, err)
			}
		}
		p.pools4 = p.pools4[:0]
		for _, q := range p.cfg.PoolPrefixes {
			if q.Addr().Is4() {
				p.pools4 = append(p.pools4, newPool4(q))
			}
		}
		p.dev = dev
		p.devGen++
		p.live.Store(&liveDev{dev: dev, gen: p.devGen})
		p.readDone = make(chan struct{})
		go p.readLoop(dev, p.readDone)
	}
	p.devUsers++
	return nil
}

func (p *Plane) releaseDeviceLocked() error {
	p.devUsers--
	if p.devUsers > 0 {
		return nil
	}
	return p.closeDeviceLocked()
}

func (p *Plane) closeDeviceLocked() error {
	if p.dev == nil {
		return nil
	}
	p.live.Store(nil)
	err := p.dev.Close()
	<-p.readDone
	p.dev, p.readDone, p.devUsers = nil, nil, 0
	clear(p.addrs)
	if err != nil {
		return fmt.Errorf("userspace dataplane: close %s: %w", p.cfg.IfName, err)
	}
	return nil
}

// readLoop is the one goroutine reading the device.
func (p *Plane) readLoop(dev device, done chan<- struct{}) {
	defer close(done)
	buf := make([]byte, headroom+maxIPPacket)
	for {
		n, err := dev.Read(buf[headroom:])
		if err != nil {
			// The device was closed (or failed for good): the plane
			// reopens one at the next Up.
			return
		}
		p.fromDevice(buf, n)
	}
}

// fromDevice routes the IP packet in buf[headroom:headroom+n] to its session.
func (p *Plane) fromDevice(buf []byte, n int) {
	pkt := buf[headroom : headroom+n]
	var s *session
	var proto uint16
	switch {
	case n >= 20 && pkt[0]>>4 == 4:
		s = p.table.lookup4(netip.AddrFrom4([4]byte(pkt[16:20])))
		proto = protoIPv4
	case n >= 40 && pkt[0]>>4 == 6:
		s = p.table.lookup6(netip.AddrFrom16([16]byte(pkt[24:40])))
		proto = protoIPv6
	}
	if s == nil {
		p.noRoute.Add(1)
		return
	}
	s.sendIP(buf, headroom, n, proto)
}
