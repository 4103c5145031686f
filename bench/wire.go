package bench

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/l2tpd/l2tpd/dataplane"
	"github.com/l2tpd/l2tpd/l2tp"
)

// PPP protocol numbers and framing bytes the wire plane handles (RFC 1661,
// RFC 1332).
const (
	pppAddress = 0xff
	pppControl = 0x03
	protoIPv4  = 0x0021
)

// Errors of the wire codec.
var (
	ErrNotData    = errors.New("not an L2TPv2 data message")
	ErrShortFrame = errors.New("PPP frame shorter than its protocol field")
)

// AppendDataMessage appends an L2TPv2 data message carrying the PPP frame
// (protocol field first, no address/control bytes) to b: header without
// sequence numbers, then FF 03, then frame (RFC 2661 3.1, RFC 1662 3.1).
func AppendDataMessage(b []byte, peerTunnel, peerSession uint16, frame []byte) []byte {
	h := l2tp.Header{Version: l2tp.Version2, TunnelID: uint32(peerTunnel), SessionID: uint32(peerSession)}
	b = l2tp.AppendHeader(b, h, 2+len(frame))
	b = append(b, pppAddress, pppControl)
	return append(b, frame...)
}

// ParseDataMessage parses an L2TPv2 data message and returns our session
// ID and the PPP frame with its protocol field expanded to two bytes
// (address/control bytes removed; a compressed one-byte protocol field,
// RFC 1661 6.5, is widened into a new slice). frame aliases pkt otherwise.
func ParseDataMessage(pkt []byte) (session uint16, frame []byte, err error) {
	h, payload, err := l2tp.ParseHeader(pkt)
	if err != nil {
		return 0, nil, fmt.Errorf("data message: %w", err)
	}
	if h.Control || h.Version != l2tp.Version2 {
		return 0, nil, ErrNotData
	}
	if len(payload) >= 2 && payload[0] == pppAddress && payload[1] == pppControl {
		payload = payload[2:]
	}
	if len(payload) == 0 {
		return 0, nil, fmt.Errorf("session %d: %w", h.SessionID, ErrShortFrame)
	}
	if payload[0]&1 == 1 { // compressed protocol field
		full := make([]byte, 1+len(payload))
		copy(full[1:], payload)
		return uint16(h.SessionID), full, nil
	}
	if len(payload) < 2 {
		return 0, nil, fmt.Errorf("session %d: %w", h.SessionID, ErrShortFrame)
	}
	return uint16(h.SessionID), payload, nil
}

// WirePlane is the load generator's data plane: no interfaces, no
// syscalls beyond the tunnel's own socket. PPP frames a session sends are
// carried as L2TPv2 data messages on the tunnel's socket; data messages
// the endpoint reads are decoded and PPP control frames given to the
// session's FrameHandler. IPv4 packets that come back (answers to the
// probes of SendEcho) are counted per session. It keeps nothing per frame.
type WirePlane struct {
	closed atomic.Bool
	// Malformed counts data messages that could not be decoded or named
	// no session.
	malformed atomic.Uint64
}

var _ dataplane.Plane = (*WirePlane)(nil)

// NewWirePlane returns an empty wire plane.
func NewWirePlane() *WirePlane { return &WirePlane{} }

// Name implements dataplane.Plane.
func (p *WirePlane) Name() string { return "bench-wire" }

// Malformed is the number of undecodable or unroutable data messages.
func (p *WirePlane) Malformed() uint64 { return p.malformed.Load() }

// Close implements dataplane.Plane (tunnels are closed by the endpoint).
func (p *WirePlane) Close() error {
	p.closed.Store(true)
	return nil
}

// AddTunnel implements dataplane.Plane.
func (p *WirePlane) AddTunnel(cfg dataplane.TunnelConfig) (dataplane.Tunnel, error) {
	if p.closed.Load() {
		return nil, fmt.Errorf("bench wire plane: tunnel %d: plane closed", cfg.LocalID)
	}
	if cfg.Version != 2 || cfg.Encap != dataplane.EncapUDP {
		return nil, fmt.Errorf("bench wire plane: tunnel %d: L2TPv%d encap %d: %w", cfg.LocalID, cfg.Version, cfg.Encap, dataplane.ErrUnsupported)
	}
	var w io.Writer
	if cfg.Conn != nil {
		w = cfg.Conn
	}
	if w == nil {
		return nil, fmt.Errorf("bench wire plane: tunnel %d: no socket", cfg.LocalID)
	}
	return &wireTunnel{plane: p, cfg: cfg, w: w, sessions: make(map[uint16]*wireSession)}, nil
}

type wireTunnel struct {
	plane *WirePlane
	cfg   dataplane.TunnelConfig
	w     io.Writer

	mu       sync.RWMutex
	sessions map[uint16]*wireSession
}

// AddSession implements dataplane.Tunnel.
func (t *wireTunnel) AddSession(cfg dataplane.SessionConfig, rx dataplane.FrameHandler) (dataplane.Session, error) {
	if cfg.PWType != dataplane.PWTypePPP {
		return nil, fmt.Errorf("bench wire plane: tunnel %d session %d: pseudowire %#x: %w", t.cfg.LocalID, cfg.LocalID, cfg.PWType, dataplane.ErrUnsupported)
	}
	s := &wireSession{t: t, id: uint16(cfg.LocalID), peer: uint16(cfg.PeerID), rx: rx}
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, dup := t.sessions[s.id]; dup {
		return nil, fmt.Errorf("bench wire plane: tunnel %d session %d: already exists", t.cfg.LocalID, cfg.LocalID)
	}
	t.sessions[s.id] = s
	return s, nil
}

// HandleData implements dataplane.Tunnel.
func (t *wireTunnel) HandleData(pkt []byte) {
	sid, frame, err := ParseDataMessage(pkt)
	if err != nil {
		t.plane.malformed.Add(1)
		return
	}
	t.mu.RLock()
	s := t.sessions[sid]
	t.mu.RUnlock()
	if s == nil {
		t.plane.malformed.Add(1)
		return
	}
	s.rxPackets.Add(1)
	s.rxBytes.Add(uint64(len(frame)))
	if binary.BigEndian.Uint16(frame) == protoIPv4 {
		if isEchoReply(frame[2:], s.local(), s.peerAddr()) {
			s.echoReplies.Add(1)
		}
		return
	}
	if s.rx != nil {
		s.rx(frame)
	}
}

// Close implements dataplane.Tunnel.
func (t *wireTunnel) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, s := range t.sessions {
		s.closed.Store(true)
	}
	clear(t.sessions)
	return nil
}

type wireSession struct {
	t      *wireTunnel
	id     uint16
	peer   uint16
	rx     dataplane.FrameHandler
	closed atomic.Bool
	// addrs: our address and the LNS's, once Up (nil before).
	addrs atomic.Pointer[[2]netip.Addr]

	txPackets, txBytes, txErrors atomic.Uint64
	rxPackets, rxBytes           atomic.Uint64
	echoReplies                  atomic.Uint64
	echoSeq                      atomic.Uint32
}

func (s *wireSession) local() netip.Addr {
	if a := s.addrs.Load(); a != nil {
		return a[0]
	}
	return netip.Addr{}
}

func (s *wireSession) peerAddr() netip.Addr {
	if a := s.addrs.Load(); a != nil {
		return a[1]
	}
	return netip.Addr{}
}

// SendFrame implements dataplane.Session.
func (s *wireSession) SendFrame(frame []byte) error {
	if s.closed.Load() {
		return fmt.Errorf("bench wire plane: tunnel %d session %d: closed", s.t.cfg.LocalID, s.id)
	}
	if len(frame) < 2 {
		return fmt.Errorf("bench wire plane: tunnel %d session %d: %w", s.t.cfg.LocalID, s.id, ErrShortFrame)
	}
	b := AppendDataMessage(make([]byte, 0, 10+len(frame)), uint16(s.t.cfg.PeerID), s.peer, frame)
	if _, err := s.t.w.Write(b); err != nil {
		s.txErrors.Add(1)
		return fmt.Errorf("bench wire plane: tunnel %d session %d: send: %w", s.t.cfg.LocalID, s.id, err)
	}
	s.txPackets.Add(1)
	s.txBytes.Add(uint64(len(frame)))
	return nil
}

// Up implements dataplane.Session: it records the addresses IPCP settled.
func (s *wireSession) Up(cfg dataplane.NetConfig) error {
	if s.closed.Load() {
		return fmt.Errorf("bench wire plane: tunnel %d session %d: up on a closed session", s.t.cfg.LocalID, s.id)
	}
	s.addrs.Store(&[2]netip.Addr{cfg.Local, cfg.Peer})
	return nil
}

// Stats implements dataplane.Session.
func (s *wireSession) Stats() (dataplane.Stats, error) {
	return dataplane.Stats{
		TxPackets: s.txPackets.Load(), TxBytes: s.txBytes.Load(), TxErrors: s.txErrors.Load(),
		RxPackets: s.rxPackets.Load(), RxBytes: s.rxBytes.Load(),
	}, nil
}

// Close implements dataplane.Session.
func (s *wireSession) Close() error {
	s.closed.Store(true)
	s.t.mu.Lock()
	if s.t.sessions[s.id] == s {
		delete(s.t.sessions, s.id)
	}
	s.t.mu.Unlock()
	return nil
}

// SendEcho sends one ICMP Echo Request from the session's address to the
// LNS's end of the link (IPCP's addresses) with size bytes of payload.
func (s *wireSession) SendEcho(size int) error {
	src, dst := s.local(), s.peerAddr()
	if !src.Is4() || !dst.Is4() {
		return fmt.Errorf("bench wire plane: tunnel %d session %d: no IPv4 addresses yet", s.t.cfg.LocalID, s.id)
	}
	seq := uint16(s.echoSeq.Add(1))
	frame := binary.BigEndian.AppendUint16(make([]byte, 0, 2+28+size), protoIPv4)
	frame = AppendEchoRequest(frame, src, dst, s.id, seq, size)
	return s.SendFrame(frame)
}

// EchoReplies is the number of ICMP Echo Replies received.
func (s *wireSession) EchoReplies() uint64 { return s.echoReplies.Load() }
