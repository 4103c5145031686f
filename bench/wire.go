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
	"github.com/l2tpd/l2tpd/internal/udpbatch"
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
// probes of SendEcho) are counted per session. A tunnel holds the frames
// its sessions send until its Flush (dataplane.Flusher) and sends them
// with one sendmmsg; between Flushes it keeps a buffer from a shared pool.
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
	if cfg.Conn == nil {
		return nil, fmt.Errorf("bench wire plane: tunnel %d: no socket", cfg.LocalID)
	}
	return &wireTunnel{plane: p, cfg: cfg, w: udpbatch.NewConn(cfg.Conn), sessions: make(map[uint16]*wireSession)}, nil
}

type wireTunnel struct {
	plane *WirePlane
	cfg   dataplane.TunnelConfig
	w     batchWriter

	mu       sync.RWMutex
	sessions map[uint16]*wireSession

	// txMu guards the messages SendFrame holds until Flush (SendFrame and
	// Flush run on the tunnel goroutine; Close may not).
	txMu     sync.Mutex
	pending  *wireBatch
	txClosed bool
}

var (
	_ dataplane.Tunnel  = (*wireTunnel)(nil)
	_ dataplane.Flusher = (*wireTunnel)(nil)
)

// batchWriter is the tunnel's socket: Write for one message from any
// goroutine (SendEcho), WriteBatch for the held ones (under txMu).
type batchWriter interface {
	io.Writer
	WriteBatch(pkts [][]byte) (int, error)
}

// Bounds of one tunnel's held messages; past either they leave at once.
const (
	maxBatchMsgs  = 64
	maxBatchBytes = 32 << 10
)

// wireBatch is a tunnel's held messages, from a pool shared by every
// tunnel (an idle tunnel holds none).
type wireBatch struct {
	buf  []byte    // the encoded messages, back to back
	msgs []wireMsg // one per message, in order
	pkts [][]byte
}

type wireMsg struct {
	s        *wireSession
	end, n   int // the message is buf[end-n:end]
	frameLen int // for the counters
}

var wireBatchPool = sync.Pool{New: func() any { return new(wireBatch) }}

// hold encodes s's frame into the tunnel's batch.
func (t *wireTunnel) hold(s *wireSession, frame []byte) error {
	t.txMu.Lock()
	defer t.txMu.Unlock()
	if t.txClosed {
		return fmt.Errorf("bench wire plane: tunnel %d session %d: tunnel closed", t.cfg.LocalID, s.id)
	}
	b := t.pending
	if b != nil && (len(b.msgs) >= maxBatchMsgs || len(b.buf)+10+len(frame) > maxBatchBytes) {
		t.flushLocked()
		b = nil
	}
	if b == nil {
		b = wireBatchPool.Get().(*wireBatch)
		t.pending = b
	}
	start := len(b.buf)
	b.buf = AppendDataMessage(b.buf, uint16(t.cfg.PeerID), s.peer, frame)
	b.msgs = append(b.msgs, wireMsg{s: s, end: len(b.buf), n: len(b.buf) - start, frameLen: len(frame)})
	if endsLink(frame) {
		t.flushLocked()
	}
	return nil
}

// endsLink reports whether frame (protocol field first) is an LCP
// Terminate-Request/Ack (RFC 1661 5.5), a PAP Authenticate-Nak (RFC 1334
// 2.2.2) or a CHAP Failure (RFC 1994 4.4). Such a frame leaves at once
// with what is held before it, so a CDN the endpoint sends later in the
// same pass does not overtake it.
func endsLink(frame []byte) bool {
	if len(frame) < 3 {
		return false
	}
	code := frame[2]
	switch uint16(frame[0])<<8 | uint16(frame[1]) {
	case 0xc021:
		return code == 5 || code == 6
	case 0xc023:
		return code == 3
	case 0xc223:
		return code == 4
	}
	return false
}

// Flush implements dataplane.Flusher: the messages held since the last
// Flush leave in one sendmmsg.
func (t *wireTunnel) Flush() {
	t.txMu.Lock()
	t.flushLocked()
	t.txMu.Unlock()
}

func (t *wireTunnel) flushLocked() {
	b := t.pending
	if b == nil {
		return
	}
	t.pending = nil
	for _, m := range b.msgs {
		b.pkts = append(b.pkts, b.buf[m.end-m.n:m.end])
	}
	sent, _ := t.w.WriteBatch(b.pkts)
	for i, m := range b.msgs {
		if i < sent {
			m.s.txPackets.Add(1)
			m.s.txBytes.Add(uint64(m.frameLen))
		} else {
			m.s.txErrors.Add(1)
		}
	}
	clear(b.msgs)
	clear(b.pkts)
	b.buf, b.msgs, b.pkts = b.buf[:0], b.msgs[:0], b.pkts[:0]
	if cap(b.buf) > 2*maxBatchBytes {
		b.buf = nil
	}
	wireBatchPool.Put(b)
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

// Close implements dataplane.Tunnel: held messages leave first.
func (t *wireTunnel) Close() error {
	t.txMu.Lock()
	t.flushLocked()
	t.txClosed = true
	t.txMu.Unlock()
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

// maxFrame is the longest PPP frame one data message carries.
const maxFrame = 0xffff - 8

func (s *wireSession) check(frame []byte) error {
	if s.closed.Load() {
		return fmt.Errorf("bench wire plane: tunnel %d session %d: closed", s.t.cfg.LocalID, s.id)
	}
	if len(frame) < 2 || len(frame) > maxFrame {
		return fmt.Errorf("bench wire plane: tunnel %d session %d: %d bytes: %w", s.t.cfg.LocalID, s.id, len(frame), ErrShortFrame)
	}
	return nil
}

// SendFrame implements dataplane.Session: the message is held until the
// tunnel's Flush (the end of the tunnel goroutine's pass).
func (s *wireSession) SendFrame(frame []byte) error {
	if err := s.check(frame); err != nil {
		return err
	}
	return s.t.hold(s, frame)
}

// sendNow sends one frame at once (any goroutine: SendEcho).
func (s *wireSession) sendNow(frame []byte) error {
	if err := s.check(frame); err != nil {
		return err
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
	return s.sendNow(frame) // not the tunnel goroutine: no batch
}

// EchoReplies is the number of ICMP Echo Replies received.
func (s *wireSession) EchoReplies() uint64 { return s.echoReplies.Load() }
