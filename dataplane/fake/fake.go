// Package fake is an in-memory dataplane.Plane for tests of everything above
// the data path. It records the tunnels and sessions created and closed, the
// frames sent and the NetConfig of every Up call, lets tests inject PPP
// frames into a session's FrameHandler, wires two sessions back to back, and
// makes any operation fail on demand. It is safe for concurrent use; no
// lock of this package is held while a sink or FrameHandler runs, so they
// may call back into it.
package fake

import (
	"fmt"
	"slices"
	"sync"

	"github.com/l2tpd/l2tpd/dataplane"
)

// Op names an operation whose failure can be injected.
type Op uint8

const (
	OpAddTunnel Op = iota
	OpAddSession
	OpSendFrame
	OpUp
	OpStats
	OpCloseSession
	OpCloseTunnel
	numOps
)

func (o Op) String() string {
	switch o {
	case OpAddTunnel:
		return "AddTunnel"
	case OpAddSession:
		return "AddSession"
	case OpSendFrame:
		return "SendFrame"
	case OpUp:
		return "Up"
	case OpStats:
		return "Stats"
	case OpCloseSession:
		return "Session.Close"
	case OpCloseTunnel:
		return "Tunnel.Close"
	}
	return fmt.Sprintf("Op(%d)", uint8(o))
}

// Sink receives the frames a session sends (a copy the sink may keep).
type Sink func(s *Session, frame []byte)

// Plane is the fake data plane. The zero value is not usable; call New.
type Plane struct {
	mu      sync.Mutex
	fail    [numOps]error
	sink    Sink
	tunnels []*Tunnel
	closed  bool
	// upGate, when set, makes every Session a dataplane.BlockingUp whose
	// Up calls it first (outside the plane's lock): a test holds an Up
	// there to see what the control plane does meanwhile, or fails it.
	upGate func(s *Session, cfg dataplane.NetConfig) error
	// addGate, when set, makes every Tunnel a dataplane.BlockingAdd whose
	// AddSession calls it first (outside the plane's lock).
	addGate func(cfg dataplane.SessionConfig) error
}

var _ dataplane.Plane = (*Plane)(nil)

// New returns an empty fake plane.
func New() *Plane { return &Plane{} }

// Name implements dataplane.Plane.
func (p *Plane) Name() string { return "fake" }

// SetUpGate makes the plane's sessions report UpBlocks (the control plane
// then runs Up on a worker) and has their Up call gate first; Up returns
// gate's error if it gives one. nil restores a plain Up.
func (p *Plane) SetUpGate(gate func(s *Session, cfg dataplane.NetConfig) error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.upGate = gate
}

// SetAddGate makes the plane's tunnels report AddBlocks (the control
// plane then runs AddSession on a worker) and has their AddSession call
// gate first; AddSession returns gate's error if it gives one. nil
// restores a plain AddSession.
func (p *Plane) SetAddGate(gate func(cfg dataplane.SessionConfig) error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.addGate = gate
}

// SetError makes every later op fail with err (wrapped); nil clears it.
func (p *Plane) SetError(op Op, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fail[op] = err
}

func (p *Plane) failure(op Op, what string) error {
	p.mu.Lock()
	err := p.fail[op]
	p.mu.Unlock()
	if err != nil {
		return fmt.Errorf("fake dataplane: %s: %s: %w", op, what, err)
	}
	return nil
}

// SetSink sets the default destination of frames sent by sessions that
// have no sink of their own (see Session.SetSink and Connect).
func (p *Plane) SetSink(s Sink) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sink = s
}

// AddTunnel implements dataplane.Plane.
func (p *Plane) AddTunnel(cfg dataplane.TunnelConfig) (dataplane.Tunnel, error) {
	if err := p.failure(OpAddTunnel, fmt.Sprintf("tunnel %d", cfg.LocalID)); err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, fmt.Errorf("fake dataplane: add tunnel %d: plane closed", cfg.LocalID)
	}
	for _, t := range p.tunnels {
		if !t.closed && t.cfg.LocalID == cfg.LocalID {
			return nil, fmt.Errorf("fake dataplane: add tunnel %d: already exists", cfg.LocalID)
		}
	}
	t := &Tunnel{plane: p, cfg: cfg}
	p.tunnels = append(p.tunnels, t)
	return t, nil
}

// Close implements dataplane.Plane: it closes every tunnel.
func (p *Plane) Close() error {
	p.mu.Lock()
	p.closed = true
	ts := slices.Clone(p.tunnels)
	p.mu.Unlock()
	for _, t := range ts {
		t.close()
	}
	return nil
}

// Closed reports whether Close was called.
func (p *Plane) Closed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// Tunnels returns every tunnel ever added, closed ones included, in order.
func (p *Plane) Tunnels() []*Tunnel {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.tunnels)
}

// Tunnel returns the open tunnel with our ID id, or nil.
func (p *Plane) Tunnel(id uint32) *Tunnel {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, t := range p.tunnels {
		if !t.closed && t.cfg.LocalID == id {
			return t
		}
	}
	return nil
}

// Sessions returns every session ever added in any tunnel, in order.
func (p *Plane) Sessions() []*Session {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []*Session
	for _, t := range p.tunnels {
		out = append(out, t.sessions...)
	}
	return out
}

// Tunnel is a fake tunnel. Its state is guarded by the plane's mutex.
type Tunnel struct {
	plane    *Plane
	cfg      dataplane.TunnelConfig
	sessions []*Session
	data     [][]byte
	closed   bool
}

var _ dataplane.BlockingAdd = (*Tunnel)(nil)

// Config returns the configuration the tunnel was added with.
func (t *Tunnel) Config() dataplane.TunnelConfig { return t.cfg }

// AddSession implements dataplane.Tunnel.
func (t *Tunnel) AddSession(cfg dataplane.SessionConfig, rx dataplane.FrameHandler) (dataplane.Session, error) {
	what := fmt.Sprintf("tunnel %d session %d", t.cfg.LocalID, cfg.LocalID)
	p := t.plane
	p.mu.Lock()
	gate := p.addGate
	p.mu.Unlock()
	if gate != nil {
		if err := gate(cfg); err != nil {
			return nil, err
		}
	}
	if err := t.plane.failure(OpAddSession, what); err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if t.closed {
		return nil, fmt.Errorf("fake dataplane: add %s: tunnel closed", what)
	}
	for _, s := range t.sessions {
		if !s.closed && s.cfg.LocalID == cfg.LocalID {
			return nil, fmt.Errorf("fake dataplane: add %s: already exists", what)
		}
	}
	s := &Session{tunnel: t, cfg: cfg, rx: rx}
	t.sessions = append(t.sessions, s)
	return s, nil
}

// AddBlocks implements dataplane.BlockingAdd: true while the plane has an
// AddSession gate (SetAddGate).
func (t *Tunnel) AddBlocks() bool {
	t.plane.mu.Lock()
	defer t.plane.mu.Unlock()
	return t.plane.addGate != nil
}

// HandleData implements dataplane.Tunnel: it records a copy of pkt.
func (t *Tunnel) HandleData(pkt []byte) {
	t.plane.mu.Lock()
	defer t.plane.mu.Unlock()
	t.data = append(t.data, slices.Clone(pkt))
}

// Data returns copies of the packets given to HandleData.
func (t *Tunnel) Data() [][]byte {
	t.plane.mu.Lock()
	defer t.plane.mu.Unlock()
	return cloneFrames(t.data)
}

// Close implements dataplane.Tunnel: it closes the tunnel's sessions too.
func (t *Tunnel) Close() error {
	if err := t.plane.failure(OpCloseTunnel, fmt.Sprintf("tunnel %d", t.cfg.LocalID)); err != nil {
		return err
	}
	t.close()
	return nil
}

func (t *Tunnel) close() {
	p := t.plane
	p.mu.Lock()
	defer p.mu.Unlock()
	t.closed = true
	for _, s := range t.sessions {
		s.closed = true
	}
}

// Closed reports whether the tunnel was closed.
func (t *Tunnel) Closed() bool {
	t.plane.mu.Lock()
	defer t.plane.mu.Unlock()
	return t.closed
}

// Sessions returns every session ever added to t, in order.
func (t *Tunnel) Sessions() []*Session {
	t.plane.mu.Lock()
	defer t.plane.mu.Unlock()
	return slices.Clone(t.sessions)
}

// Session returns the open session with our ID id, or nil.
func (t *Tunnel) Session(id uint32) *Session {
	t.plane.mu.Lock()
	defer t.plane.mu.Unlock()
	for _, s := range t.sessions {
		if !s.closed && s.cfg.LocalID == id {
			return s
		}
	}
	return nil
}

// Session is a fake session. Its state is guarded by the plane's mutex.
type Session struct {
	tunnel *Tunnel
	cfg    dataplane.SessionConfig
	rx     dataplane.FrameHandler
	sink   Sink
	sent   [][]byte
	ups    []dataplane.NetConfig
	stats  dataplane.Stats
	closed bool
	// upping: an Up is in progress; overlaps counts Up or Close calls
	// made while one was (dataplane.BlockingUp forbids both).
	upping   bool
	overlaps int
}

var _ dataplane.BlockingUp = (*Session)(nil)

// Config returns the configuration the session was added with.
func (s *Session) Config() dataplane.SessionConfig { return s.cfg }

// Tunnel returns the session's tunnel.
func (s *Session) Tunnel() *Tunnel { return s.tunnel }

func (s *Session) String() string {
	return fmt.Sprintf("tunnel %d session %d", s.tunnel.cfg.LocalID, s.cfg.LocalID)
}

// SetSink sets where this session's frames go (overrides the plane's).
func (s *Session) SetSink(sink Sink) {
	s.tunnel.plane.mu.Lock()
	defer s.tunnel.plane.mu.Unlock()
	s.sink = sink
}

// Connect wires a and b back to back: what one sends, the other's
// FrameHandler receives, synchronously on the sender's goroutine. A handler
// that answers from within itself therefore recurses into the other side;
// tests of engines that do so should use a Sink that queues instead.
func Connect(a, b *Session) {
	a.SetSink(func(_ *Session, f []byte) { b.Inject(f) })
	b.SetSink(func(_ *Session, f []byte) { a.Inject(f) })
}

// SendFrame implements dataplane.Session: it records a copy of frame and
// passes another copy to the sink, if any.
func (s *Session) SendFrame(frame []byte) error {
	if err := s.tunnel.plane.failure(OpSendFrame, s.String()); err != nil {
		s.count(func(st *dataplane.Stats) { st.TxErrors++ })
		return err
	}
	p := s.tunnel.plane
	p.mu.Lock()
	if s.closed {
		p.mu.Unlock()
		return fmt.Errorf("fake dataplane: send on %s: session closed", s)
	}
	s.sent = append(s.sent, slices.Clone(frame))
	s.stats.TxPackets++
	s.stats.TxBytes += uint64(len(frame))
	sink := s.sink
	if sink == nil {
		sink = p.sink
	}
	p.mu.Unlock()
	if sink != nil {
		sink(s, slices.Clone(frame))
	}
	return nil
}

func (s *Session) count(f func(*dataplane.Stats)) {
	s.tunnel.plane.mu.Lock()
	defer s.tunnel.plane.mu.Unlock()
	f(&s.stats)
}

// Inject delivers frame to the session's FrameHandler as if the peer had
// sent it, and reports whether there was an open session with a handler.
func (s *Session) Inject(frame []byte) bool {
	p := s.tunnel.plane
	p.mu.Lock()
	rx := s.rx
	ok := !s.closed && rx != nil
	if ok {
		s.stats.RxPackets++
		s.stats.RxBytes += uint64(len(frame))
	}
	p.mu.Unlock()
	if ok {
		rx(slices.Clone(frame))
	}
	return ok
}

// Sent returns copies of the frames sent so far.
func (s *Session) Sent() [][]byte {
	s.tunnel.plane.mu.Lock()
	defer s.tunnel.plane.mu.Unlock()
	return cloneFrames(s.sent)
}

// UpBlocks implements dataplane.BlockingUp: true while the plane has an
// Up gate (SetUpGate).
func (s *Session) UpBlocks() bool {
	p := s.tunnel.plane
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.upGate != nil
}

// Overlaps is the number of Up and Close calls made while an Up of the
// session was in progress (0 unless the caller broke BlockingUp's rule).
func (s *Session) Overlaps() int {
	s.tunnel.plane.mu.Lock()
	defer s.tunnel.plane.mu.Unlock()
	return s.overlaps
}

// Up implements dataplane.Session: it records cfg (after the plane's Up
// gate, if any, returns).
func (s *Session) Up(cfg dataplane.NetConfig) error {
	if err := s.tunnel.plane.failure(OpUp, s.String()); err != nil {
		return err
	}
	p := s.tunnel.plane
	p.mu.Lock()
	gate := p.upGate
	if s.upping {
		s.overlaps++
	}
	s.upping = true
	p.mu.Unlock()
	var gerr error
	if gate != nil {
		gerr = gate(s, cfg)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	s.upping = false
	if gerr != nil {
		return gerr
	}
	if s.closed {
		return fmt.Errorf("fake dataplane: up %s: session closed", s)
	}
	cfg.Routes = slices.Clone(cfg.Routes)
	cfg.IPv6Routes = slices.Clone(cfg.IPv6Routes)
	s.ups = append(s.ups, cfg)
	return nil
}

// Ups returns the NetConfig of every Up call, in order.
func (s *Session) Ups() []dataplane.NetConfig {
	s.tunnel.plane.mu.Lock()
	defer s.tunnel.plane.mu.Unlock()
	return slices.Clone(s.ups)
}

// SetStats replaces the session's counters (SendFrame and Inject also count).
func (s *Session) SetStats(st dataplane.Stats) {
	s.count(func(cur *dataplane.Stats) { *cur = st })
}

// Stats implements dataplane.Session.
func (s *Session) Stats() (dataplane.Stats, error) {
	if err := s.tunnel.plane.failure(OpStats, s.String()); err != nil {
		return dataplane.Stats{}, err
	}
	s.tunnel.plane.mu.Lock()
	defer s.tunnel.plane.mu.Unlock()
	return s.stats, nil
}

// Close implements dataplane.Session.
func (s *Session) Close() error {
	if err := s.tunnel.plane.failure(OpCloseSession, s.String()); err != nil {
		return err
	}
	s.tunnel.plane.mu.Lock()
	defer s.tunnel.plane.mu.Unlock()
	if s.upping {
		s.overlaps++
	}
	s.closed = true
	return nil
}

// Closed reports whether the session (or its tunnel) was closed.
func (s *Session) Closed() bool {
	s.tunnel.plane.mu.Lock()
	defer s.tunnel.plane.mu.Unlock()
	return s.closed
}

func cloneFrames(in [][]byte) [][]byte {
	out := make([][]byte, len(in))
	for i, f := range in {
		out[i] = slices.Clone(f)
	}
	return out
}
