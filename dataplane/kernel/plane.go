package kernel

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/l2tpd/l2tpd/dataplane"
)

// Options configure a Plane. Zero values select the real kernel.
type Options struct {
	PPP    PPP     // nil: SysPPP
	Links  Links   // nil: DialRTNL
	Poller *Poller // nil: NewPoller (the plane then closes it)
	// StateDir holds the journal of tunnels this daemon created (see
	// Cleanup). "" means /run/l2tpd; "-" disables the journal.
	StateDir string
	// OnRemoveError is told of a session whose kernel objects could not
	// all be removed (Session.Close tears a session down on a removal
	// worker, after it returned). nil: such errors are dropped.
	OnRemoveError func(session string, err error)
}

// removalWorkers is how many sessions are torn down at once. Most of a
// teardown is waiting (an RCU grace period when the L2TP session is
// deleted, the RTNL lock and another grace period when the ppp unit's
// interface goes): in the lab VM a session took 60 ms to close, 35 of
// them without its unit. Several at once share those waits.
const removalWorkers = 4

// Plane is the kernel data plane. It implements dataplane.Plane.
type Plane struct {
	nl         *Client
	ppp        PPP
	links      Links
	poller     *Poller
	ownsPoller bool
	journal    *journal

	mu      sync.Mutex
	tunnels map[uint32]*Tunnel
	closed  bool

	// unitsMu guards deferring and deferred: after DeferRemoval, the ppp
	// units of closing sessions wait in deferred for Close.
	unitsMu      sync.Mutex
	deferring    bool
	deferred     []deferredUnit
	removedUnits bool // Close ran removeDeferred: a later unit goes at once
	removal      DeferredRemoval
	// unitGroup is the interface group Close puts the deferred units in
	// to delete them in one request.
	unitGroup uint32

	// rmMu guards the removal queue: sessions closed and waiting for a
	// removal worker (rmQueue); and the holder of each address and route
	// an Up applied (held), from that Up until the session is removed
	// (queued or being removed after Close included), which an Up of
	// another session waits for when it would take one (waitHolders). An
	// Up waits for the holder of a key before it takes it, so a key has
	// one holder at a time.
	rmMu     sync.Mutex
	rmCond   *sync.Cond
	rmQueue  []*Session
	held     map[netip.Prefix]*Session
	rmClosed bool
	// holdWait bounds an Up's wait for a session that holds one of its
	// addresses or routes and is not closing (defaultHoldWait).
	holdWait time.Duration
	rmWG     sync.WaitGroup
	onRmErr  func(string, error)
	// rmWaitHook (tests) is called when AddSession ("session") is about
	// to wait for a removal, or Up ("address") for a holder.
	rmWaitHook func(what string)
}

// deferredUnit is a ppp unit whose session closed after DeferRemoval.
type deferredUnit struct {
	fd, ifindex int
	name        string
}

var (
	_ dataplane.Plane           = (*Plane)(nil)
	_ dataplane.RemovalDeferrer = (*Plane)(nil)
)

// Dial opens the real kernel plane: generic netlink "l2tp", rtnetlink,
// an epoll poller and the state journal.
func Dial(opts Options) (*Plane, error) {
	nl, err := DialClient()
	if err != nil {
		return nil, err
	}
	if opts.Links == nil {
		r, err := DialRTNL()
		if err != nil {
			nl.Close()
			return nil, err
		}
		opts.Links = r
	}
	p, err := New(nl, opts)
	if err != nil {
		nl.Close()
		return nil, err
	}
	return p, nil
}

// New builds a plane on an L2TP netlink client (tests: NewClient on a
// genltest connection, with fake PPP and Links).
func New(nl *Client, opts Options) (*Plane, error) {
	p := &Plane{nl: nl, ppp: opts.PPP, links: opts.Links, poller: opts.Poller, tunnels: make(map[uint32]*Tunnel),
		unitGroup: unitGroupBase | uint32(os.Getpid())&0xffff}
	if p.ppp == nil {
		p.ppp = SysPPP{}
	}
	if p.links == nil {
		return nil, errors.New("kernel: New: Options.Links is nil")
	}
	p.onRmErr = opts.OnRemoveError
	p.rmCond = sync.NewCond(&p.rmMu)
	p.held = make(map[netip.Prefix]*Session)
	p.holdWait = defaultHoldWait
	if p.poller == nil {
		pl, err := NewPoller()
		if err != nil {
			return nil, err
		}
		p.poller, p.ownsPoller = pl, true
	}
	dir := opts.StateDir
	if dir == "" {
		dir = defaultStateDir
	}
	if dir != "-" {
		j, err := openJournal(dir)
		if err != nil {
			if p.ownsPoller {
				p.poller.Close()
			}
			return nil, err
		}
		p.journal = j
	}
	p.rmWG.Add(removalWorkers)
	for range removalWorkers {
		go p.removalWorker()
	}
	return p, nil
}

// removalWorker tears down the sessions Close queued, until the plane's
// Close has stopped the queue and it is empty.
func (p *Plane) removalWorker() {
	defer p.rmWG.Done()
	for {
		p.rmMu.Lock()
		for len(p.rmQueue) == 0 && !p.rmClosed {
			p.rmCond.Wait()
		}
		if len(p.rmQueue) == 0 {
			p.rmMu.Unlock()
			return
		}
		s := p.rmQueue[0]
		p.rmQueue[0] = nil
		p.rmQueue = p.rmQueue[1:]
		p.rmMu.Unlock()
		s.removeGuarded()
	}
}

// enqueueRemoval hands a closed session to the removal workers; false
// once the plane's Close stopped them (the caller removes it itself).
func (p *Plane) enqueueRemoval(s *Session) bool {
	p.rmMu.Lock()
	defer p.rmMu.Unlock()
	if p.rmClosed {
		return false
	}
	p.rmQueue = append(p.rmQueue, s) // its keys stay in held (setHeld) until forget
	p.rmCond.Signal()
	return true
}

// defaultHoldWait is how long an Up waits for a session that holds one
// of its addresses or routes and is not closing. The control plane gives
// an address back just before it closes the session that had it (a new
// Up finds it closing, or closed in a moment); a holder that stays is a
// duplicate the control plane should have refused.
const defaultHoldWait = 3 * time.Second

// waitHolders waits until no other session holds an address or route
// cfg gives (netKeys): the interface of a subscriber who left must be
// gone before another one's takes its address or routes. It waits for a
// session being removed as long as the removal takes, for one not closing
// at most holdWait, and then fails.
func (p *Plane) waitHolders(s *Session, cfg NetConfig) error {
	type holder struct {
		key netip.Prefix
		s   *Session
	}
	var wait []holder
	p.rmMu.Lock()
	if len(p.held) > 0 {
		for _, k := range s.netKeys(cfg) {
			if h := p.held[k]; h != nil && h != s {
				wait = append(wait, holder{k, h})
			}
		}
	}
	p.rmMu.Unlock()
	if len(wait) > 0 && p.rmWaitHook != nil {
		p.rmWaitHook("address")
	}
	var bound <-chan time.Time
	for _, w := range wait {
		if bound == nil && !w.s.isClosing.Load() {
			t := time.NewTimer(p.holdWait)
			defer t.Stop()
			bound = t.C
		}
		select {
		case <-w.s.gone:
		case <-bound:
			if !w.s.isClosing.Load() {
				return fmt.Errorf("%v is still in use by %s after %v: a subscriber's addresses and routes must be unique (check the pools and the addresses RADIUS gives)", w.key, w.s.label(), p.holdWait)
			}
			<-w.s.gone // it closed meanwhile: its removal ends
		}
	}
	return nil
}

// setHeld records s as the holder of the keys its Up applied (now) and no
// longer of those it gave up (before).
func (p *Plane) setHeld(s *Session, before, now []netip.Prefix) {
	p.rmMu.Lock()
	defer p.rmMu.Unlock()
	for _, k := range before {
		if p.held[k] == s && !slices.Contains(now, k) {
			delete(p.held, k)
		}
	}
	for _, k := range now {
		if p.held[k] == nil {
			p.held[k] = s
		}
	}
}

// netKeys are the addresses and routes cfg gives s's interface that no
// other interface may hold at the same time: the subscriber's address
// (the peer's, in LNS mode; a LAC's sessions to one LNS all have the
// LNS's address as their peer) and the routes.
func (s *Session) netKeys(cfg NetConfig) []netip.Prefix {
	var keys []netip.Prefix
	if s.lnsMode && cfg.Local.IsValid() && cfg.Peer.IsValid() {
		keys = append(keys, netip.PrefixFrom(cfg.Peer, cfg.Peer.BitLen()))
	}
	keys = append(keys, cfg.Routes...)
	return append(keys, cfg.IPv6Routes...)
}

// Name implements dataplane.Plane.
func (p *Plane) Name() string { return "kernel" }

// Client is the plane's netlink client (for stats dumps and tools).
func (p *Plane) Client() *Client { return p.nl }

// AddTunnel implements dataplane.Plane: TUNNEL_CREATE with the fd of
// cfg.Conn. The kernel then consumes data messages (T=0) arriving on that
// socket; control messages still reach the socket's reader.
func (p *Plane) AddTunnel(cfg dataplane.TunnelConfig) (dataplane.Tunnel, error) {
	if cfg.Version != 2 && cfg.Version != 3 {
		return nil, fmt.Errorf("kernel: tunnel %d: L2TP version %d", cfg.LocalID, cfg.Version)
	}
	if cfg.Encap != dataplane.EncapUDP {
		return nil, fmt.Errorf("kernel: tunnel %d: only UDP encapsulation: %w", cfg.LocalID, dataplane.ErrUnsupported)
	}
	if cfg.Conn == nil {
		return nil, fmt.Errorf("kernel: tunnel %d: no UDP socket", cfg.LocalID)
	}
	if cfg.Version == 2 && (cfg.LocalID > 0xffff || cfg.PeerID > 0xffff) {
		return nil, fmt.Errorf("kernel: tunnel %d: L2TPv2 tunnel IDs are 16 bits", cfg.LocalID)
	}
	rc, err := cfg.Conn.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("kernel: tunnel %d: socket: %w", cfg.LocalID, err)
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, fmt.Errorf("kernel: tunnel %d: plane closed", cfg.LocalID)
	}
	if _, dup := p.tunnels[cfg.LocalID]; dup {
		p.mu.Unlock()
		return nil, fmt.Errorf("kernel: tunnel %d: %w", cfg.LocalID, ErrExists)
	}
	t := &Tunnel{plane: p, cfg: cfg, raw: rc, sessions: make(map[uint32]*Session)}
	p.tunnels[cfg.LocalID] = t // reserve the ID
	p.mu.Unlock()

	err = t.withFD(func(fd int) error {
		return p.nl.CreateTunnel(TunnelSpec{ID: cfg.LocalID, PeerID: cfg.PeerID, Version: cfg.Version,
			Encap: EncapTypeUDP, FD: fd, UDPCsum: cfg.UDPChecksums})
	})
	if err == nil && p.journal != nil {
		if jerr := p.journal.add(cfg.LocalID); jerr != nil {
			p.nl.DeleteTunnel(cfg.LocalID)
			err = jerr
		}
	}
	if err != nil {
		p.mu.Lock()
		delete(p.tunnels, cfg.LocalID)
		p.mu.Unlock()
		return nil, fmt.Errorf("kernel: add tunnel (peer %v): %w", cfg.Peer, err)
	}
	return t, nil
}

// unitGroupBase is the high half of the interface group Close deletes
// deferred units with ("L2" and the low 16 bits of the PID): a group no
// operator is likely to use, and Close checks it holds nothing else.
const unitGroupBase = 0x4c320000

// DeferRemoval implements dataplane.RemovalDeferrer: from now on a closing
// session's ppp unit (its pppN interface, addresses and routes) stays
// until Close removes them all at once. The session's channel and
// PPPoL2TP socket still close at once, so its traffic stops.
func (p *Plane) DeferRemoval() {
	p.unitsMu.Lock()
	p.deferring = true
	p.unitsMu.Unlock()
}

// deferUnit takes a closing session's unit fd for Close, if removals are
// deferred.
func (p *Plane) deferUnit(fd, ifindex int, name string) bool {
	p.unitsMu.Lock()
	defer p.unitsMu.Unlock()
	if !p.deferring || p.removedUnits {
		return false // not deferring, or Close removed them already
	}
	p.deferred = append(p.deferred, deferredUnit{fd: fd, ifindex: ifindex, name: name})
	return true
}

// DeferredRemoval is what Close did with the units deferred by
// DeferRemoval: how many, how many in one group delete, and why not (nil
// when it did).
type DeferredRemoval struct {
	Units, Grouped int
	Err            error
}

// LastRemoval reports the deferred units Close removed (for the daemon's
// log after Close).
func (p *Plane) LastRemoval() DeferredRemoval {
	p.unitsMu.Lock()
	defer p.unitsMu.Unlock()
	return p.removal
}

// removeDeferred removes the deferred units: all of them in one group
// delete when the Links can (GroupLinks) and the group holds nothing but
// them; then it closes their fds, which removes any the group delete did
// not, one by one. LastRemoval reports it.
func (p *Plane) removeDeferred() {
	p.unitsMu.Lock()
	units := p.deferred
	p.deferred, p.removedUnits = nil, true
	p.unitsMu.Unlock()
	r := DeferredRemoval{Units: len(units)}
	defer func() {
		p.unitsMu.Lock()
		p.removal = r
		p.unitsMu.Unlock()
	}()
	if len(units) == 0 {
		return
	}
	if g, ok := p.links.(GroupLinks); ok {
		if r.Err = removeGroup(g, units, p.unitGroup); r.Err == nil {
			r.Grouped = len(units)
		}
	} else {
		r.Err = errors.New("the interface links cannot delete a group")
	}
	for _, u := range units {
		p.ppp.Close(u.fd)
	}
}

// removeGroup puts units in group and deletes the group, unless the group
// turns out to hold another interface too (which it must not delete).
func removeGroup(g GroupLinks, units []deferredUnit, group uint32) error {
	ours := make(map[int]bool, len(units))
	for _, u := range units {
		if err := g.SetGroup(u.ifindex, group); err != nil {
			return fmt.Errorf("interface %s: %w", u.name, err)
		}
		ours[u.ifindex] = true
	}
	members, err := g.GroupMembers(group)
	if err != nil {
		return err
	}
	for _, m := range members {
		if !ours[m] {
			return fmt.Errorf("interface group %d also holds ifindex %d, which is not ours: not deleting the group", group, m)
		}
	}
	return g.DeleteGroup(group)
}

// Close implements dataplane.Plane: closes every tunnel (and session), the
// ppp units DeferRemoval kept, the poller if the plane made it, and the
// netlink sockets.
func (p *Plane) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	ts := make([]*Tunnel, 0, len(p.tunnels))
	for _, t := range p.tunnels {
		ts = append(ts, t)
	}
	p.mu.Unlock()
	var errs []error
	for _, t := range ts {
		errs = append(errs, t.Close()) // waits for its sessions' removal
	}
	p.rmMu.Lock()
	p.rmClosed = true
	p.rmCond.Broadcast()
	p.rmMu.Unlock()
	p.rmWG.Wait()
	p.removeDeferred()
	if p.ownsPoller {
		errs = append(errs, p.poller.Close())
	}
	if p.journal != nil {
		errs = append(errs, p.journal.close())
	}
	if c, ok := p.links.(interface{ Close() error }); ok {
		errs = append(errs, c.Close())
	}
	errs = append(errs, p.nl.Close())
	return errors.Join(errs...)
}

// Tunnel is a kernel L2TP tunnel. It implements dataplane.Tunnel.
type Tunnel struct {
	plane *Plane
	cfg   dataplane.TunnelConfig // keeps cfg.Conn, whose fd the kernel uses, reachable
	raw   syscall.RawConn

	mu       sync.Mutex
	sessions map[uint32]*Session
	closed   bool
}

var _ dataplane.BlockingAdd = (*Tunnel)(nil)

// withFD runs fn with the tunnel socket's fd, which stays valid meanwhile.
func (t *Tunnel) withFD(fn func(fd int) error) error {
	var ferr error
	if err := t.raw.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		return fmt.Errorf("tunnel socket: %w", err)
	}
	return ferr
}

// HandleData implements dataplane.Tunnel. The kernel consumes data
// messages itself, so any that reach the control plane (a race at tunnel
// creation) are dropped.
func (t *Tunnel) HandleData(pkt []byte) {}

// AddSession implements dataplane.Tunnel: SESSION_CREATE, then for PPP a
// PPPoL2TP socket connected to the session, its channel, and a /dev/ppp
// fd attached to the channel and polled for the peer's control frames.
func (t *Tunnel) AddSession(cfg dataplane.SessionConfig, rx dataplane.FrameHandler) (dataplane.Session, error) {
	tid := t.cfg.LocalID
	if t.cfg.Version == 2 && (cfg.LocalID > 0xffff || cfg.PeerID > 0xffff) {
		return nil, fmt.Errorf("kernel: tunnel %d session %d: L2TPv2 session IDs are 16 bits", tid, cfg.LocalID)
	}
	if cfg.PWType == dataplane.PWTypePPP && rx == nil {
		return nil, fmt.Errorf("kernel: tunnel %d session %d: PPP session without a frame handler", tid, cfg.LocalID)
	}
	s := &Session{tunnel: t, id: cfg.LocalID, peerID: cfg.PeerID, sock: -1, chanFD: -1, unitFD: -1, gone: make(chan struct{})}
	s.sendFD.Store(-1)
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil, fmt.Errorf("kernel: tunnel %d session %d: tunnel closed", tid, cfg.LocalID)
	}
	for {
		old, dup := t.sessions[cfg.LocalID]
		if !dup {
			break
		}
		gone := old.closing()
		if gone == nil {
			t.mu.Unlock()
			return nil, fmt.Errorf("kernel: tunnel %d session %d: %w", tid, cfg.LocalID, ErrExists)
		}
		// The ID's last session is closed but still being removed from
		// the kernel (a removal worker): the new one waits for that.
		t.mu.Unlock()
		if h := t.plane.rmWaitHook; h != nil {
			h("session")
		}
		<-gone
		t.mu.Lock()
		if t.closed {
			t.mu.Unlock()
			return nil, fmt.Errorf("kernel: tunnel %d session %d: tunnel closed", tid, cfg.LocalID)
		}
	}
	// Held while the session opens: a Tunnel.Close running meanwhile (on
	// the tunnel's goroutine, while a worker adds: BlockingAdd) closes it
	// once it is whole, not halfway.
	s.mu.Lock()
	t.sessions[cfg.LocalID] = s
	t.mu.Unlock()

	err := s.open(cfg, rx)
	s.mu.Unlock()
	if err != nil {
		s.teardown()
		t.mu.Lock()
		if t.sessions[cfg.LocalID] == s {
			delete(t.sessions, cfg.LocalID)
		}
		t.mu.Unlock()
		return nil, err
	}
	return s, nil
}

// AddBlocks implements dataplane.BlockingAdd: the control plane runs
// AddSession on a worker.
func (t *Tunnel) AddBlocks() bool { return true }

// Close implements dataplane.Tunnel: closes the sessions, then
// TUNNEL_DELETE. The UDP socket is left open: it belongs to the caller.
func (t *Tunnel) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	ss := make([]*Session, 0, len(t.sessions))
	for _, s := range t.sessions {
		ss = append(ss, s)
	}
	t.mu.Unlock()
	var errs []error
	for _, s := range ss {
		errs = append(errs, s.Close())
	}
	// Before TUNNEL_DELETE and the journal entry go, every session of
	// the tunnel is removed (its teardown's errors go to OnRemoveError).
	for _, s := range ss {
		if gone := s.closing(); gone != nil {
			<-gone
		}
	}
	p := t.plane
	if err := p.nl.DeleteTunnel(t.cfg.LocalID); err != nil && !errors.Is(err, ErrNotFound) {
		errs = append(errs, err)
	}
	if p.journal != nil {
		errs = append(errs, p.journal.remove(t.cfg.LocalID))
	}
	p.mu.Lock()
	delete(p.tunnels, t.cfg.LocalID)
	p.mu.Unlock()
	return errors.Join(errs...)
}

// Session is a kernel L2TP session. It implements dataplane.Session. Its
// footprint: this struct, three fds (PPPoL2TP socket, channel, unit) and
// two poller entries.
type Session struct {
	tunnel     *Tunnel
	id, peerID uint32
	rx         dataplane.FrameHandler

	mu     sync.Mutex
	sock   int // PPPoL2TP socket
	chanFD int // /dev/ppp attached to the channel
	// sendFD is chanFD for SendFrame, which must not wait for an Up in
	// progress (dataplane.BlockingUp): -1 once the session is closing.
	sendFD  atomic.Int32
	unitFD  int // /dev/ppp unit, after Up
	unit    int
	ifindex int
	ifname  string
	applied NetConfig
	created bool // SESSION_CREATE succeeded
	closed  bool
	isPPP   bool
	lnsMode bool // the peer is the subscriber (netKeys)
	// gone is closed once the session's kernel objects are removed after
	// Close (which sets closing first); rmKeys are the addresses and
	// routes its interface held (waitHolders). Neither needs mu (a
	// teardown holds it for its whole length).
	gone      chan struct{}
	isClosing atomic.Bool
	rmKeys    []netip.Prefix
}

// NetConfig is dataplane.NetConfig (re-exported for the package's API).
type NetConfig = dataplane.NetConfig

var _ dataplane.Session = (*Session)(nil)

func (s *Session) label() string {
	return "tunnel " + strconv.FormatUint(uint64(s.tunnel.cfg.LocalID), 10) + " session " + strconv.FormatUint(uint64(s.id), 10)
}

func (s *Session) open(cfg dataplane.SessionConfig, rx dataplane.FrameHandler) error {
	t := s.tunnel
	p := t.plane
	err := p.nl.CreateSession(SessionSpec{TunnelID: t.cfg.LocalID, ID: cfg.LocalID, PeerID: cfg.PeerID,
		Version: t.cfg.Version, PWType: uint16(cfg.PWType), LNSMode: cfg.LNSMode, SendSeq: cfg.SendSeq,
		RecvSeq: cfg.RecvSeq, ReorderTimeout: cfg.ReorderTimeout, Cookie: cfg.Cookie, PeerCookie: cfg.PeerCookie,
		IfName: cfg.IfName})
	if err != nil {
		return err
	}
	s.created = true
	if cfg.PWType != dataplane.PWTypePPP {
		return nil
	}
	s.isPPP = true
	s.lnsMode = cfg.LNSMode
	s.rx = rx
	addr := PPPoL2TPAddr{Version: t.cfg.Version, Peer: t.cfg.Peer, TunnelID: t.cfg.LocalID, SessionID: cfg.LocalID,
		PeerTunnelID: t.cfg.PeerID, PeerSessionID: cfg.PeerID}
	if err := t.withFD(func(fd int) error {
		addr.FD = fd
		sa, err := addr.Marshal()
		if err != nil {
			return err
		}
		s.sock, err = p.ppp.ConnectPPPoL2TP(sa)
		return err
	}); err != nil {
		s.sock = -1
		return fmt.Errorf("kernel: %s: %w", s.label(), err)
	}
	idx, err := p.ppp.ChannelIndex(s.sock)
	if err != nil {
		return fmt.Errorf("kernel: %s: %w", s.label(), err)
	}
	if s.chanFD, err = p.ppp.AttachChannel(idx); err != nil {
		return fmt.Errorf("kernel: %s: %w", s.label(), err)
	}
	if err := p.poller.Register(s.chanFD, s.deliver); err != nil {
		return fmt.Errorf("kernel: %s: %w", s.label(), err)
	}
	s.sendFD.Store(int32(s.chanFD))
	return nil
}

// deliver is the poller's handler for both of the session's fds.
func (s *Session) deliver(frame []byte) { s.rx(frame) }

// SendFrame implements dataplane.Session: writes the frame (protocol field
// first, no address/control: the kernel's PPPoL2TP transmit adds FF 03) to
// the channel fd.
func (s *Session) SendFrame(frame []byte) error {
	fd := int(s.sendFD.Load())
	if fd < 0 {
		return fmt.Errorf("kernel: %s: send frame: session closed or not PPP", s.label())
	}
	if err := s.tunnel.plane.ppp.Write(fd, frame); err != nil {
		return fmt.Errorf("kernel: %s: %w", s.label(), err)
	}
	return nil
}

// UpBlocks implements dataplane.BlockingUp: Up makes the PPP unit, its
// interface, addresses and routes, a dozen system calls that take the
// kernel's RTNL lock, so the control plane runs it on a worker.
func (s *Session) UpBlocks() bool { return true }

// Up implements dataplane.Session. The first call creates the PPP unit
// and its interface (named cfg.IfName at birth through rtnetlink, or
// "ppp<unit>" by the kernel when cfg.IfName is empty), connects the channel
// to it, polls the unit fd for NCP frames, sets MRU and NP modes, sets the
// MTU, brings the interface up and adds the addresses and routes. Later
// calls apply what changed (the name stays).
func (s *Session) Up(cfg NetConfig) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || !s.isPPP {
		return fmt.Errorf("kernel: %s: up: session closed or not PPP", s.label())
	}
	p := s.tunnel.plane
	wrap := func(err error) error { return fmt.Errorf("kernel: %s: up: %w", s.label(), err) }
	// A subscriber who left may still hold this address or these
	// routes on an interface being removed, or about to be closed.
	if err := p.waitHolders(s, cfg); err != nil {
		return wrap(err)
	}
	first := s.unitFD < 0
	if first {
		if err := s.newUnit(cfg.IfName); err != nil {
			return wrap(err)
		}
		if err := p.ppp.ConnectChannel(s.chanFD, s.unit); err != nil {
			return wrap(err)
		}
		if err := p.poller.Register(s.unitFD, s.deliver); err != nil {
			return wrap(err)
		}
	}
	if cfg.MRU > 0 && (first || cfg.MRU != s.applied.MRU) {
		if err := p.ppp.SetMRU(s.unitFD, cfg.MRU); err != nil {
			return wrap(err)
		}
	}
	v4 := cfg.Local.IsValid() && cfg.Peer.IsValid()
	v6 := cfg.PeerIfID != [8]byte{}
	for _, np := range [...]struct {
		proto uint16
		on    bool
	}{{pppIP, v4}, {pppIPv6, v6}} {
		mode := NPModeDrop
		if np.on {
			mode = NPModePass
		}
		if err := p.ppp.SetNPMode(s.unitFD, np.proto, mode); err != nil {
			return wrap(err)
		}
	}
	name := ""
	if cfg.IfName != "" && cfg.IfName != s.ifname {
		name = cfg.IfName
	}
	up := first // the first Up brings the link up, with the name and MTU when it sets them
	if first || name != "" || cfg.MTU != s.applied.MTU {
		if name != "" && !first {
			// Renaming an up link is refused; PPP interfaces keep their
			// first name.
			name = ""
		}
		if name != "" || cfg.MTU > 0 {
			if err := p.links.SetLink(s.ifindex, name, cfg.MTU, up); err != nil {
				return wrap(err)
			}
			up = false
		}
		if name != "" {
			s.ifname = name
		}
	}
	if up {
		if err := p.links.SetUp(s.ifindex); err != nil {
			return wrap(err)
		}
	}
	if err := s.applyAddrs(cfg); err != nil {
		return wrap(err)
	}
	if err := s.applyRoutes(cfg); err != nil {
		return wrap(err)
	}
	before := s.netKeys(s.applied)
	s.applied = cfg
	s.applied.IfName = s.ifname
	s.applied.Routes = slices.Clone(cfg.Routes)
	s.applied.IPv6Routes = slices.Clone(cfg.IPv6Routes)
	p.setHeld(s, before, s.netKeys(s.applied))
	return nil
}

func linkLocal(id [8]byte) netip.Addr {
	var a [16]byte
	a[0], a[1] = 0xfe, 0x80
	copy(a[8:], id[:])
	return netip.AddrFrom16(a)
}

func (s *Session) applyAddrs(cfg NetConfig) error {
	l := s.tunnel.plane.links
	old := s.applied
	if cfg.Local != old.Local || cfg.Peer != old.Peer {
		if old.Local.IsValid() {
			if err := l.DelAddr(s.ifindex, old.Local, old.Peer, 32); err != nil {
				return err
			}
		}
		if cfg.Local.IsValid() {
			if err := l.AddAddr(s.ifindex, cfg.Local, cfg.Peer, 32); err != nil {
				return err
			}
		}
	}
	if cfg.LocalIfID != old.LocalIfID || cfg.PeerIfID != old.PeerIfID {
		if old.LocalIfID != [8]byte{} {
			if err := l.DelAddr(s.ifindex, linkLocal(old.LocalIfID), linkLocal(old.PeerIfID), 128); err != nil {
				return err
			}
		}
		if cfg.LocalIfID != [8]byte{} {
			peer := netip.Addr{}
			if cfg.PeerIfID != [8]byte{} {
				peer = linkLocal(cfg.PeerIfID)
			}
			if err := l.AddAddr(s.ifindex, linkLocal(cfg.LocalIfID), peer, 128); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *Session) applyRoutes(cfg NetConfig) error {
	l := s.tunnel.plane.links
	want := append(slices.Clone(cfg.Routes), cfg.IPv6Routes...)
	have := append(slices.Clone(s.applied.Routes), s.applied.IPv6Routes...)
	for _, r := range have {
		if !slices.Contains(want, r) {
			if err := l.DelRoute(s.ifindex, r); err != nil {
				return err
			}
		}
	}
	for _, r := range want {
		if !slices.Contains(have, r) {
			if err := l.AddRoute(s.ifindex, r); err != nil {
				return err
			}
		}
	}
	return nil
}

// newUnit creates the session's PPP unit and interface. With a name, the
// unit is created through rtnetlink with that name: creating it with
// PPPIOCNEWUNIT and renaming "ppp<unit>" afterwards fails (EEXIST) once a
// renamed interface holds the "ppp<unit>" name the kernel picks next, which
// a pattern like "ppp%d" soon causes. Without a name the kernel names it.
func (s *Session) newUnit(name string) error {
	p := s.tunnel.plane
	if name == "" {
		fd, unit, err := p.ppp.NewUnit()
		if err != nil {
			return err
		}
		s.unitFD, s.unit = fd, unit
		s.ifname = "ppp" + strconv.Itoa(unit)
		idx, err := p.links.LinkIndex(s.ifname)
		if err != nil {
			return err
		}
		s.ifindex = idx
		return nil
	}
	fd, err := p.ppp.OpenPPP()
	if err != nil {
		return err
	}
	s.unitFD = fd // closed by teardown from here on
	idx, err := p.links.NewPPPLink(name, fd)
	if err != nil {
		return err
	}
	s.ifindex, s.ifname = idx, name
	if s.unit, err = p.ppp.UnitIndex(fd); err != nil {
		return err
	}
	return nil
}

// IfName is the session's interface name ("" before Up).
func (s *Session) IfName() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ifname
}

// Stats implements dataplane.Session (SESSION_GET).
func (s *Session) Stats() (dataplane.Stats, error) {
	info, err := s.tunnel.plane.nl.Session(s.tunnel.cfg.LocalID, s.id)
	if err != nil {
		return dataplane.Stats{}, err
	}
	st := info.Stats
	return dataplane.Stats{TxPackets: st.TxPackets, TxBytes: st.TxBytes, TxErrors: st.TxErrors,
		RxPackets: st.RxPackets, RxBytes: st.RxBytes, RxErrors: st.RxErrors}, nil
}

// Close implements dataplane.Session.
//
// Close stops the session at once (nothing is sent or delivered from
// then on) and leaves the removal of its kernel objects, which takes tens
// of milliseconds of waiting in the kernel, to a removal worker: the
// caller, a tunnel's goroutine, goes on with its other sessions. Until
// the removal is done, a new session with the same ID waits in
// AddSession and one taking the same address or routes waits in Up.
// Errors of the removal go to Options.OnRemoveError.
func (s *Session) Close() error {
	p := s.tunnel.plane
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.sendFD.Store(-1)
	if s.unitFD >= 0 {
		s.rmKeys = s.netKeys(s.applied)
	}
	// No frame is delivered for it any more (the fds close later).
	p.poller.Unregister(s.chanFD)
	p.poller.Unregister(s.unitFD)
	s.isClosing.Store(true)
	s.mu.Unlock()
	if p.enqueueRemoval(s) {
		return nil
	}
	return s.remove() // the plane is closing: at once
}

// closing returns the channel closed once the session is removed, nil if
// it is not closed.
func (s *Session) closing() chan struct{} {
	if !s.isClosing.Load() {
		return nil
	}
	return s.gone
}

// remove tears the closed session down and forgets it (once: Close
// hands it to one remover).
func (s *Session) remove() error {
	defer s.forget()
	return s.teardown()
}

// forget takes the removed session out of its tunnel and the pending
// removals, and wakes those waiting for it.
func (s *Session) forget() {
	t := s.tunnel
	t.mu.Lock()
	if t.sessions[s.id] == s {
		delete(t.sessions, s.id)
	}
	t.mu.Unlock()
	p := t.plane
	p.rmMu.Lock()
	for _, k := range s.rmKeys {
		if p.held[k] == s {
			delete(p.held, k)
		}
	}
	p.rmMu.Unlock()
	close(s.gone)
}

// removeGuarded is remove on a removal worker: its error goes to
// OnRemoveError before those waiting for the session are woken, and a
// panic in it (a bug) is that session's error, not the daemon's end; the
// session counts as removed all the same.
func (s *Session) removeGuarded() {
	var err error
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("internal error removing the session (please report it): %v", r)
		}
		if p := s.tunnel.plane; err != nil && p.onRmErr != nil {
			p.onRmErr(s.label(), err)
		}
		s.forget()
	}()
	err = s.teardown()
}

// teardown undoes open and Up, newest first: stop polling; close the unit
// (the kernel removes pppN with its addresses and routes), or after
// DeferRemoval leave it to the plane's Close; close the
// channel; close the PPPoL2TP socket (the kernel deletes the session);
// SESSION_DELETE for kernels or pseudowires where it is still there.
func (s *Session) teardown() error {
	p := s.tunnel.plane
	var errs []error
	s.mu.Lock()
	defer s.mu.Unlock()
	closeFD := func(fd *int) {
		if *fd >= 0 {
			p.poller.Unregister(*fd)
			if err := p.ppp.Close(*fd); err != nil {
				errs = append(errs, fmt.Errorf("close fd %d: %w", *fd, err))
			}
			*fd = -1
		}
	}
	s.sendFD.Store(-1)
	if s.unitFD >= 0 && s.ifindex > 0 && p.deferUnit(s.unitFD, s.ifindex, s.ifname) {
		p.poller.Unregister(s.unitFD)
		s.unitFD = -1
	}
	closeFD(&s.unitFD)
	closeFD(&s.chanFD)
	closeFD(&s.sock)
	if s.created {
		if err := p.nl.DeleteSession(s.tunnel.cfg.LocalID, s.id); err != nil && !errors.Is(err, ErrNotFound) {
			errs = append(errs, err)
		}
		s.created = false
	}
	if len(errs) > 0 {
		return fmt.Errorf("kernel: %s: close: %w", s.label(), errors.Join(errs...))
	}
	return nil
}
