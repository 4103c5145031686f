package userspace

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/l2tpd/l2tpd/dataplane"
	"github.com/l2tpd/l2tpd/l2tp"
)

type tunnel struct {
	plane *Plane
	cfg   dataplane.TunnelConfig
	w     sender

	mu       sync.RWMutex
	sessions map[uint32]*session // by local session ID (a uint32 key: the map's fast path)
	closed   bool

	// txMu guards the frames SendFrame holds until Flush. SendFrame and
	// Flush run on the tunnel goroutine, so it is uncontended, except
	// against a Close from elsewhere (Plane.Close).
	txMu     sync.Mutex
	pending  *txBatch // nil when nothing is held
	txClosed bool     // Close flushed: SendFrame refuses

	rxErrors atomic.Uint64 // malformed or unknown-session data messages
}

var (
	_ dataplane.Tunnel  = (*tunnel)(nil)
	_ dataplane.Flusher = (*tunnel)(nil)
)

// AddSession implements dataplane.Tunnel.
func (t *tunnel) AddSession(cfg dataplane.SessionConfig, rx dataplane.FrameHandler) (dataplane.Session, error) {
	if cfg.LocalID == 0 || cfg.LocalID > 0xffff || cfg.PeerID > 0xffff {
		return nil, fmt.Errorf("userspace dataplane: tunnel %d session %d/%d: L2TPv2 session IDs are 16 bits, non-zero", t.cfg.LocalID, cfg.LocalID, cfg.PeerID)
	}
	if cfg.PWType != 0 && cfg.PWType != dataplane.PWTypePPP {
		return nil, fmt.Errorf("userspace dataplane: tunnel %d session %d: pseudowire type %#x: %w", t.cfg.LocalID, cfg.LocalID, uint16(cfg.PWType), dataplane.ErrUnsupported)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, fmt.Errorf("userspace dataplane: tunnel %d session %d: tunnel closed", t.cfg.LocalID, cfg.LocalID)
	}
	if _, dup := t.sessions[cfg.LocalID]; dup {
		return nil, fmt.Errorf("userspace dataplane: tunnel %d session %d: already exists", t.cfg.LocalID, cfg.LocalID)
	}
	s := &session{tunnel: t, rx: rx, localID: uint16(cfg.LocalID), peerID: uint16(cfg.PeerID),
		lnsMode: cfg.LNSMode, sendSeqCfg: cfg.SendSeq, recvSeq: cfg.RecvSeq}
	t.sessions[cfg.LocalID] = s
	return s, nil
}

// HandleData implements dataplane.Tunnel. It does not allocate (except to
// hand a PFC-compressed non-IP frame to the FrameHandler, which wants the
// 2-byte protocol field).
func (t *tunnel) HandleData(pkt []byte) {
	h, payload, err := l2tp.ParseHeader(pkt)
	if err != nil || h.Control || h.Version != l2tp.Version2 || h.TunnelID != t.cfg.LocalID {
		t.rxErrors.Add(1)
		return
	}
	t.mu.RLock()
	s := t.sessions[h.SessionID]
	t.mu.RUnlock()
	if s == nil {
		t.rxErrors.Add(1)
		return
	}
	s.receive(&h, payload)
}

// Close implements dataplane.Tunnel. Frames held for Flush leave first
// (an LCP Terminate-Request sent just before is not lost).
func (t *tunnel) Close() error {
	t.txMu.Lock()
	t.flushLocked()
	t.txClosed = true
	t.txMu.Unlock()

	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	ss := make([]*session, 0, len(t.sessions))
	for _, s := range t.sessions {
		ss = append(ss, s)
	}
	t.mu.Unlock()
	var errs []error
	for _, s := range ss {
		errs = append(errs, s.Close())
	}
	p := t.plane
	p.mu.Lock()
	delete(p.tunnels, t.cfg.LocalID)
	p.mu.Unlock()
	return errors.Join(errs...)
}

// netState is what Up installed; replaced atomically, read per packet.
// It is one small object (48 bytes) with no pointers in the common case:
// the peer's IPv4 address is 4 bytes (Up takes no other), the host route
// to it (the one route nearly every session has) is a flag, our IPv4
// address is 4 bytes, and the device is the plane's (gen says which).
type netState struct {
	extra     *netExtra // prefixes routed besides peer/32, our non-IPv4 address (nil if neither)
	peerIfID  [8]byte
	peer      [4]byte
	local4    [4]byte // our address (NetConfig.Local) if IPv4
	mtu       int32   // NetConfig.MTU (clamped): with routes, says which are in the kernel (Plane.needRoute)
	gen       uint32  // Plane.devGen of the device the session holds
	hasPeer   bool
	peerHost  bool // peer/32 is routed to the session (in the table; see Plane.needRoute)
	hasIfID   bool
	hasLocal4 bool
}

// netExtra is the rarer part of a netState.
type netExtra struct {
	routes []netip.Prefix // every prefix routed to the session besides peer/32
	local  netip.Addr     // our address if not IPv4
}

// localAddr is our address on the link (the zero Addr if none).
func (n *netState) localAddr() netip.Addr {
	switch {
	case n.hasLocal4:
		return netip.AddrFrom4(n.local4)
	case n.extra != nil:
		return n.extra.local
	}
	return netip.Addr{}
}

func (n *netState) extraRoutes() []netip.Prefix {
	if n.extra == nil {
		return nil
	}
	return n.extra.routes
}

// routeList appends every prefix routed to the session (peer/32 first) to
// dst.
func (n *netState) routeList(dst []netip.Prefix) []netip.Prefix {
	if n.peerHost {
		dst = append(dst, netip.PrefixFrom(netip.AddrFrom4(n.peer), 32))
	}
	return append(dst, n.extraRoutes()...)
}

func (n *netState) sourceOK(src netip.Addr) bool {
	if n.hasPeer && src.Is4() && src.As4() == n.peer {
		return true
	}
	if n.hasIfID && linkLocal.Contains(src) {
		b := src.As16()
		return [8]byte(b[8:]) == n.peerIfID
	}
	// peer/32 (n.peerHost) matched above if it could.
	for _, p := range n.extraRoutes() {
		if p.Contains(src) {
			return true
		}
	}
	return false
}

// clampMTU keeps an MTU in an int32 without changing how it compares with
// the device's (a positive int32).
func clampMTU(mtu int) int32 {
	return int32(max(min(mtu, math.MaxInt32), math.MinInt32))
}

// session is kept small (96 bytes): a server holds tens of thousands.
type session struct {
	tunnel *tunnel
	rx     dataplane.FrameHandler
	net    atomic.Pointer[netState] // nil until Up

	txPackets, txBytes, txErrors atomic.Uint64
	rxPackets, rxBytes, rxErrors atomic.Uint64

	ns    atomic.Uint32 // next Ns we send
	seq   atomic.Uint32 // seqSeen | next Ns expected from the peer
	state atomic.Uint32 // stateClosed, statePeerSeq

	localID, peerID uint16
	slot            uint32 // index in the plane's route table (0: none); under Plane.mu and routeTable.mu

	lnsMode, sendSeqCfg, recvSeq bool
}

// session.state bits.
const (
	stateClosed  = 1 << iota
	statePeerSeq // the peer sends Ns (LAC: we must too, RFC 2661 5.4)
)

const seqSeen = 1 << 16 // session.seq: a sequenced packet was accepted

func (s *session) isClosed() bool { return s.state.Load()&stateClosed != 0 }

// markClosed sets stateClosed and reports whether it was already set.
func (s *session) markClosed() bool { return s.state.Or(stateClosed)&stateClosed != 0 }

func (s *session) String() string {
	return fmt.Sprintf("tunnel %d session %d", s.tunnel.cfg.LocalID, s.localID)
}

// acceptSeq applies RFC 2661 5.4 ordering: with no reorder buffer, a packet
// older than the last one accepted (serial-number comparison modulo 2^16)
// is dropped.
func (s *session) acceptSeq(ns uint16) bool {
	for {
		old := s.seq.Load()
		if old&seqSeen != 0 && int16(ns-uint16(old)) < 0 {
			return false
		}
		if s.seq.CompareAndSwap(old, seqSeen|uint32(ns+1)) {
			return true
		}
	}
}

func (s *session) receive(h *l2tp.Header, payload []byte) {
	st := s.state.Load()
	if st&stateClosed != 0 {
		s.rxErrors.Add(1)
		return
	}
	if h.HasSeq {
		if !s.acceptSeq(h.Ns) {
			s.rxErrors.Add(1)
			return
		}
		if !s.lnsMode && st&statePeerSeq == 0 {
			s.state.Or(statePeerSeq)
		}
	} else if s.recvSeq {
		s.rxErrors.Add(1)
		return
	}
	frame := payload
	if len(frame) >= 2 && frame[0] == pppAddress && frame[1] == pppControl {
		frame = frame[2:]
	}
	if len(frame) == 0 {
		s.rxErrors.Add(1)
		return
	}
	var proto uint16
	var body []byte
	compressed := frame[0]&1 == 1 // RFC 1661 6.5: PFC leaves one odd byte
	if compressed {
		proto, body = uint16(frame[0]), frame[1:]
	} else {
		if len(frame) < 2 {
			s.rxErrors.Add(1)
			return
		}
		proto, body = binary.BigEndian.Uint16(frame), frame[2:]
	}
	s.rxPackets.Add(1)
	s.rxBytes.Add(uint64(len(payload)))
	switch proto {
	case protoIPv4, protoIPv6:
		s.toDevice(proto, body)
		return
	}
	if s.rx == nil {
		return
	}
	if compressed {
		full := make([]byte, 2+len(body))
		full[1] = byte(proto)
		copy(full[2:], body)
		frame = full
	}
	s.rx(frame)
}

func (s *session) toDevice(proto uint16, pkt []byte) {
	st := s.net.Load()
	if st == nil {
		s.rxErrors.Add(1) // IP before Up
		return
	}
	var src netip.Addr
	switch {
	case proto == protoIPv4 && len(pkt) >= 20 && pkt[0]>>4 == 4:
		src = netip.AddrFrom4([4]byte(pkt[12:16]))
	case proto == protoIPv6 && len(pkt) >= 40 && pkt[0]>>4 == 6:
		src = netip.AddrFrom16([16]byte(pkt[8:24]))
	default:
		s.rxErrors.Add(1)
		return
	}
	if !st.sourceOK(src) {
		s.rxErrors.Add(1) // spoofed source
		return
	}
	d := s.tunnel.plane.live.Load()
	if d == nil || d.gen != st.gen {
		s.rxErrors.Add(1) // the device was closed
		return
	}
	if _, err := d.dev.Write(pkt); err != nil {
		s.rxErrors.Add(1)
	}
}

func (s *session) sendSeq() bool {
	return s.sendSeqCfg || s.state.Load()&statePeerSeq != 0
}

// maxFrame is the longest PPP frame (protocol field included) that fits
// in one L2TPv2 data message with sequence numbers and FF 03.
const maxFrame = 0xffff - 12

// encode prepends the L2TP header and FF 03 to the PPP frame (protocol
// field first) in buf[off:off+n] and returns where the message starts. It
// takes the next Ns if the session sends them. buf must have at least 12
// bytes (header with Ns/Nr, FF 03) before off; n must be <= maxFrame.
func (s *session) encode(buf []byte, off, n int) int {
	h := l2tp.Header{Version: l2tp.Version2, TunnelID: s.tunnel.cfg.PeerID, SessionID: uint32(s.peerID)}
	if s.sendSeq() {
		h.HasSeq = true
		h.Ns = uint16(s.ns.Add(1) - 1)
	}
	start := off - h.Len() - 2
	b := l2tp.AppendHeader(buf[start:start], h, 2+n)
	_ = append(b, pppAddress, pppControl)
	return start
}

// send encodes the PPP frame in buf[off:off+n] (see encode) and writes the
// message on the tunnel's socket at once (the TUN reader's path).
func (s *session) send(buf []byte, off, n int) error {
	t := s.tunnel
	if n > maxFrame {
		s.txErrors.Add(1)
		return fmt.Errorf("userspace dataplane: %s: %d-byte frame too long", s, n)
	}
	if s.sendSeq() {
		// Ns is taken and the message written under the lock Flush
		// takes: they leave in Ns order.
		t.txMu.Lock()
		defer t.txMu.Unlock()
	}
	start := s.encode(buf, off, n)
	if _, err := t.w.Write(buf[start : off+n]); err != nil {
		s.txErrors.Add(1)
		return fmt.Errorf("userspace dataplane: %s: send: %w", s, err)
	}
	s.txPackets.Add(1)
	s.txBytes.Add(uint64(n))
	return nil
}

// sendIP sends the IP packet at buf[off:off+n] (headroom before off).
func (s *session) sendIP(buf []byte, off, n int, proto uint16) {
	binary.BigEndian.PutUint16(buf[off-2:], proto)
	_ = s.send(buf, off-2, n+2)
}

// SendFrame implements dataplane.Session. The frame is copied into the
// tunnel's batch and leaves at the tunnel's next Flush (or at once when
// the batch is full); a send error shows in the session's TxErrors.
func (s *session) SendFrame(frame []byte) error {
	if s.isClosed() {
		return fmt.Errorf("userspace dataplane: %s: send on closed session", s)
	}
	if len(frame) < 2 {
		return fmt.Errorf("userspace dataplane: %s: %d-byte frame has no protocol field", s, len(frame))
	}
	if len(frame) > maxFrame {
		s.txErrors.Add(1)
		return fmt.Errorf("userspace dataplane: %s: %d-byte frame too long", s, len(frame))
	}
	return s.tunnel.hold(s, frame)
}

// Up implements dataplane.Session: it opens the device if needed, adds the
// local address, routes the peer's address and prefixes to the session and
// starts forwarding IP. Called again, it installs the new configuration
// (routes no longer wanted are removed).
func (s *session) Up(cfg dataplane.NetConfig) error {
	if s.isClosed() {
		return fmt.Errorf("userspace dataplane: %s: up on closed session", s)
	}
	var want []netip.Prefix
	if cfg.Peer.IsValid() {
		if !cfg.Peer.Is4() {
			return fmt.Errorf("userspace dataplane: %s: peer address %v is not IPv4", s, cfg.Peer)
		}
		want = append(want, netip.PrefixFrom(cfg.Peer, 32))
	}
	for _, r := range slices.Concat(cfg.Routes, cfg.IPv6Routes) {
		if !r.IsValid() {
			return fmt.Errorf("userspace dataplane: %s: invalid route %v", s, r)
		}
		r = r.Masked()
		if !slices.Contains(want, r) {
			want = append(want, r)
		}
	}
	var zeroID [8]byte
	hasIfID := cfg.PeerIfID != zeroID

	p := s.tunnel.plane
	p.mu.Lock()
	defer p.mu.Unlock()
	p.table.mu.RLock()
	for _, r := range want {
		if o := p.table.ownerLocked(r); o != nil && o != s {
			p.table.mu.RUnlock()
			return fmt.Errorf("userspace dataplane: %s: %v is already routed to %s", s, r, o)
		}
	}
	if hasIfID {
		if o := p.table.ifidOwnerLocked(cfg.PeerIfID); o != nil && o != s {
			p.table.mu.RUnlock()
			return fmt.Errorf("userspace dataplane: %s: interface id %x is already used by %s", s, cfg.PeerIfID, o)
		}
	}
	p.table.mu.RUnlock()

	var old netState // what was installed (nothing at the first Up)
	if st := s.net.Load(); st == nil {
		// From here on the session holds the device: Close releases it
		// once a netState is stored (below, or at an error).
		if err := p.acquireDeviceLocked(); err != nil {
			return fmt.Errorf("userspace dataplane: %s: open %s: %w", s, p.cfg.IfName, err)
		}
		old.gen = p.devGen
	} else if st.gen != p.devGen || p.dev == nil {
		return fmt.Errorf("userspace dataplane: %s: %s was closed", s, p.cfg.IfName)
	} else {
		old = *st
	}
	var oldBuf [4]netip.Prefix
	oldRoutes := old.routeList(oldBuf[:0])
	dev := p.dev
	local := old.localAddr()
	if cfg.Local.IsValid() && cfg.Local != local {
		if err := p.addAddrLocked(dev, cfg.Local); err != nil {
			if s.net.Load() == nil {
				s.net.Store(&netState{gen: old.gen}) // Close releases the device
			}
			return fmt.Errorf("userspace dataplane: %s: %w", s, err)
		}
		if local.IsValid() {
			p.delAddrLocked(dev, local)
		}
		local = cfg.Local
	}
	mtu := clampMTU(cfg.MTU)
	// The prefixes routed to the session from now on (in the table; in
	// the kernel too when p.needRoute, else a pool prefix covers them):
	// peer/32 as the flag peerHost, the others in routes.
	var peerHost bool
	var routes []netip.Prefix
	var errs []error
	for i, r := range want {
		hadOwn := slices.Contains(oldRoutes, r) && p.needRoute(r, old.mtu)
		if p.needRoute(r, mtu) {
			if err := dev.AddRoute(r, cfg.MTU); err != nil {
				errs = append(errs, fmt.Errorf("route %v: %w", r, err))
				if !hadOwn {
					continue
				}
			}
		} else if hadOwn {
			// Its MTU no longer needs a route of its own: the pool's
			// route takes over.
			if err := dev.DelRoute(r); err != nil {
				errs = append(errs, fmt.Errorf("remove route %v: %w", r, err))
			}
		}
		if i == 0 && cfg.Peer.IsValid() { // want[0] is peer/32
			peerHost = true
			continue
		}
		if routes == nil {
			routes = make([]netip.Prefix, 0, len(want)-i)
		}
		routes = append(routes, r)
	}
	for _, r := range oldRoutes {
		if slices.Contains(want, r) || !p.needRoute(r, old.mtu) {
			continue
		}
		if err := dev.DelRoute(r); err != nil {
			errs = append(errs, fmt.Errorf("remove route %v: %w", r, err))
		}
	}
	next := &netState{gen: old.gen, peerHost: peerHost, hasIfID: hasIfID, mtu: mtu, peerIfID: cfg.PeerIfID}
	if cfg.Peer.IsValid() {
		next.peer, next.hasPeer = cfg.Peer.As4(), true
	}
	if local.Is4() {
		next.local4, next.hasLocal4 = local.As4(), true
	}
	if routes != nil || (local.IsValid() && !local.Is4()) {
		next.extra = &netExtra{routes: routes}
		if !local.Is4() {
			next.extra.local = local
		}
	}
	var newBuf [4]netip.Prefix
	p.table.mu.Lock()
	for _, r := range oldRoutes {
		p.table.delLocked(r, s)
	}
	if old.hasIfID {
		p.table.delIfIDLocked(old.peerIfID, s)
	}
	for _, r := range next.routeList(newBuf[:0]) {
		p.table.addLocked(r, s)
	}
	if hasIfID {
		p.table.setIfIDLocked(cfg.PeerIfID, s)
	}
	p.table.mu.Unlock()
	s.net.Store(next)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("userspace dataplane: %s: up: %w", s, err)
	}
	return nil
}

func (p *Plane) addAddrLocked(dev device, a netip.Addr) error {
	if p.addrs[a] == 0 {
		if err := dev.AddAddr(a); err != nil {
			return fmt.Errorf("add address %v to %s: %w", a, p.cfg.IfName, err)
		}
	}
	p.addrs[a]++
	return nil
}

func (p *Plane) delAddrLocked(dev device, a netip.Addr) {
	p.addrs[a]--
	if p.addrs[a] <= 0 {
		delete(p.addrs, a)
		_ = dev.DelAddr(a) // best effort: the device may be going away
	}
}

// Stats implements dataplane.Session.
func (s *session) Stats() (dataplane.Stats, error) {
	return dataplane.Stats{
		TxPackets: s.txPackets.Load(), TxBytes: s.txBytes.Load(), TxErrors: s.txErrors.Load(),
		RxPackets: s.rxPackets.Load(), RxBytes: s.rxBytes.Load(), RxErrors: s.rxErrors.Load(),
	}, nil
}

// Close implements dataplane.Session: it removes the session's routes and,
// if it was the last session Up, the device.
func (s *session) Close() error {
	if s.markClosed() {
		return nil
	}
	t := s.tunnel
	t.mu.Lock()
	if t.sessions[uint32(s.localID)] == s {
		delete(t.sessions, uint32(s.localID))
	}
	t.mu.Unlock()

	p := t.plane
	p.mu.Lock()
	defer p.mu.Unlock()
	st := s.net.Swap(nil)
	if st == nil {
		return nil
	}
	var buf [4]netip.Prefix
	routes := st.routeList(buf[:0])
	p.table.mu.Lock()
	for _, r := range routes {
		p.table.delLocked(r, s)
	}
	if st.hasIfID {
		p.table.delIfIDLocked(st.peerIfID, s)
	}
	p.table.freeSlotLocked(s)
	p.table.mu.Unlock()
	if p.dev == nil || st.gen != p.devGen {
		return nil // the device was closed under us (Plane.Close)
	}
	var errs []error
	if p.devUsers > 1 {
		for _, r := range routes {
			if !p.needRoute(r, st.mtu) {
				continue // a pool prefix's route, not the session's
			}
			if err := p.dev.DelRoute(r); err != nil {
				errs = append(errs, fmt.Errorf("remove route %v: %w", r, err))
			}
		}
		if local := st.localAddr(); local.IsValid() {
			p.delAddrLocked(p.dev, local)
		}
	}
	if err := p.releaseDeviceLocked(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("userspace dataplane: %s: close: %w", s, err)
	}
	return nil
}
