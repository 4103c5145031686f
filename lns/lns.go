// Package lns is the LNS role: which LACs may open tunnels (peer profiles
// matched by address or host name), tunnel and session limits, and what
// runs over an established session (the PPP driver).
package lns

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/l2tpd/l2tpd/config"
	"github.com/l2tpd/l2tpd/internal/tunnelcfg"
	"github.com/l2tpd/l2tpd/l2tp"
	"github.com/l2tpd/l2tpd/l2tp/endpoint"
	"github.com/l2tpd/l2tpd/l2tp/tunnel"
)

// DriverFactory creates what runs over an established session (PPP).
type DriverFactory func(s *endpoint.Session, peer *config.Peer) endpoint.Driver

// LNS implements endpoint.Handler for incoming tunnels.
type LNS struct {
	log     *zap.Logger
	cfg     atomic.Pointer[config.Config]
	drivers DriverFactory
	// draining: refuse new tunnels and sessions (l2tpctl drain).
	draining atomic.Bool

	mu       sync.Mutex
	tunnels  int
	sessions int
	starting int
	peers    map[string]*peerCount
	// adm queues tunnels whose calls wait for a max_starting slot.
	adm admission
	// held counts the calls held for a slot.
	held heldBook
	now  func() time.Time
}

type peerCount struct{ tunnels, sessions int }

// tunnelState is kept with each tunnel (TunnelSettings.Opaque).
type tunnelState struct {
	peer     *config.Peer
	up       bool
	accepted time.Time // when AcceptTunnel admitted it (for l2tpctl)
	held     heldQueue // its calls held for a max_starting slot
}

// New creates the LNS role.
func New(cfg *config.Config, log *zap.Logger, drivers DriverFactory) *LNS {
	l := &LNS{log: log, drivers: drivers, peers: make(map[string]*peerCount), now: time.Now}
	l.cfg.Store(cfg)
	return l
}

// SetConfig replaces the configuration for new tunnels and sessions.
func (l *LNS) SetConfig(cfg *config.Config) { l.cfg.Store(cfg) }

// SetDraining stops (or resumes) accepting new tunnels and sessions.
func (l *LNS) SetDraining(d bool) { l.draining.Store(d) }

// Counts returns tunnels, established sessions and setups in flight.
func (l *LNS) Counts() (tunnels, sessions, starting int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.tunnels, l.sessions, l.starting
}

func (l *LNS) peerCount(name string) *peerCount {
	pc := l.peers[name]
	if pc == nil {
		pc = &peerCount{}
		l.peers[name] = pc
	}
	return pc
}

// PeerSecret implements endpoint.Handler.
func (l *LNS) PeerSecret(from netip.AddrPort, hostName string) []byte {
	if peer, ok := l.cfg.Load().MatchPeer(from.Addr(), hostName); ok {
		return peer.Secret
	}
	return nil
}

// AcceptTunnel implements endpoint.Handler.
func (l *LNS) AcceptTunnel(from netip.AddrPort, hostName string) (endpoint.TunnelSettings, *l2tp.ResultCode) {
	cfg := l.cfg.Load()
	peer, ok := cfg.MatchPeer(from.Addr(), hostName)
	if !ok {
		return endpoint.TunnelSettings{}, &l2tp.ResultCode{Result: l2tp.ResultStopNotAuthorized,
			Message: "not authorized: no [[peer]] matches this LAC"}
	}
	settings := tunnelcfg.Settings(&peer.L2TP, peer.Name)
	if peer.Refuse {
		return settings, &l2tp.ResultCode{Result: l2tp.ResultStopNotAuthorized, Message: "not authorized"}
	}
	if l.draining.Load() {
		return settings, &l2tp.ResultCode{Result: l2tp.ResultStopShuttingDown, Message: "LNS is draining: try another"}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	pc := l.peerCount(peer.Name)
	if g := cfg.L2TP.MaxTunnels; g > 0 && l.tunnels >= g {
		return settings, &l2tp.ResultCode{Result: l2tp.ResultStopGeneralError, Error: l2tp.ErrCodeNoResources, Message: "tunnel limit reached (max_tunnels)"}
	}
	if p := peer.MaxTunnels; p > 0 && pc.tunnels >= p {
		return settings, &l2tp.ResultCode{Result: l2tp.ResultStopGeneralError, Error: l2tp.ErrCodeNoResources, Message: "tunnel limit for this peer reached"}
	}
	l.tunnels++
	pc.tunnels++
	settings.Opaque = &tunnelState{peer: peer, accepted: time.Now()}
	return settings, nil
}

func stateOf(t *endpoint.Tunnel) *tunnelState {
	st, _ := t.Settings().Opaque.(*tunnelState)
	return st
}

// AdmitCall implements endpoint.Handler: the session limits.
func (l *LNS) AdmitCall(t *endpoint.Tunnel, dir tunnel.Direction, info *tunnel.CallInfo) *l2tp.ResultCode {
	rc := l.admitCall(t, dir, info)
	if st := stateOf(t); st != nil && dir == tunnel.Incoming {
		l.noteCall(st, t.Settings().Tunnel.CallAdmitWait, t.Core().Deferred(), rc == nil, rc == tunnel.DeferCall)
	}
	return rc
}

func (l *LNS) admitCall(t *endpoint.Tunnel, dir tunnel.Direction, info *tunnel.CallInfo) *l2tp.ResultCode {
	st := stateOf(t)
	if st == nil {
		return &l2tp.ResultCode{Result: l2tp.ResultCDNPermResources, Message: "unknown tunnel"}
	}
	if dir != tunnel.Incoming {
		return &l2tp.ResultCode{Result: l2tp.ResultCDNPermResources, Message: "the LNS places no calls"}
	}
	if l.draining.Load() {
		return &l2tp.ResultCode{Result: l2tp.ResultCDNTempResources, Error: l2tp.ErrCodeTryAnother, Message: "LNS is draining: try another"}
	}
	cfg := l.cfg.Load()
	l.mu.Lock()
	defer l.mu.Unlock()
	pc := l.peerCount(st.peer.Name)
	full := func(what string) *l2tp.ResultCode {
		l.log.Warn("call refused: "+what, zap.Uint32("tunnel", t.ID()), zap.Stringer("peer", t.Peer()), zap.String("calling", info.CallingNumber))
		return &l2tp.ResultCode{Result: l2tp.ResultCDNTempResources, Error: l2tp.ErrCodeNoResources, Message: what}
	}
	if g := cfg.L2TP.MaxSessions; g > 0 && l.sessions+l.starting >= g {
		return full("session limit reached (max_sessions)")
	}
	if p := st.peer.MaxSessions; p > 0 && pc.sessions >= p {
		return full("session limit for this peer reached")
	}
	if m := cfg.L2TP.MaxStarting; m > 0 && (l.starting >= m || !l.adm.mayAdmit(t)) {
		if t.Settings().Tunnel.CallAdmitWait > 0 {
			// Hold the call (ICRQ acknowledged, no ICRP yet) until a
			// slot frees: above saturation setups slow down instead of
			// failing (max_starting_wait).
			l.adm.enqueue(t)
			return tunnel.DeferCall
		}
		return full("too many session setups in flight (max_starting)")
	}
	l.starting++
	pc.sessions++
	return nil
}

// TunnelUp implements endpoint.Handler.
func (l *LNS) TunnelUp(t *endpoint.Tunnel) {
	if st := stateOf(t); st != nil {
		st.up = true
	}
}

// TunnelDown implements endpoint.Handler.
func (l *LNS) TunnelDown(t *endpoint.Tunnel, ev tunnel.TunnelDown) {
	st := stateOf(t)
	if st == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.tunnels--
	l.peerCount(st.peer.Name).tunnels--
	l.adm.remove(t)
	l.held.drop(&st.held) // its held calls ended with it
}

// A session's place in the counts, kept in endpoint.Session.Opaque: nil
// while it is starting (counted in l.starting, from its admission until
// its PPP network is up: max_starting bounds the PPP negotiations and
// authentications in flight too, as accel-ppp's max-starting does, not
// only the L2TP exchange), then established (in l.sessions), then ended.
type sessionMark struct{ name string }

var (
	sessionEstablished = &sessionMark{"established"}
	sessionEnded       = &sessionMark{"ended"}
)

// SessionUp implements endpoint.Handler: the L2TP session is up; it stays
// a setup in flight until its driver says it is established
// (SessionEstablished), or at once if it has no driver.
func (l *LNS) SessionUp(s *endpoint.Session) endpoint.Driver {
	var d endpoint.Driver
	if st := stateOf(s.T); l.drivers != nil && st != nil {
		d = l.drivers(s, st.peer)
	}
	if d == nil {
		l.SessionEstablished(s)
	}
	return d
}

// SessionEstablished implements endpoint.SessionEstablishedHandler: the
// session's network is up, its max_starting slot frees.
func (l *LNS) SessionEstablished(s *endpoint.Session) {
	if s.Opaque != nil || stateOf(s.T) == nil {
		return // established already, or ended
	}
	s.Opaque = sessionEstablished
	l.mu.Lock()
	l.starting--
	l.sessions++
	l.mu.Unlock()
	l.kick()
}

// SessionDown implements endpoint.Handler.
func (l *LNS) SessionDown(s *endpoint.Session, ev tunnel.SessionDown) {
	st := stateOf(s.T)
	if st == nil {
		return
	}
	starting := s.Opaque != sessionEstablished
	s.Opaque = sessionEnded
	l.mu.Lock()
	if starting {
		l.starting--
	} else {
		l.sessions--
	}
	l.peerCount(st.peer.Name).sessions--
	l.mu.Unlock()
	if starting {
		l.kick()
	}
}

// kick wakes the first tunnel waiting for a max_starting slot, if a slot
// is free and no wake is under way. The wake runs on a goroutine of its
// own: kick is called on tunnel goroutines, which must not wait for
// another tunnel's.
func (l *LNS) kick() {
	l.mu.Lock()
	free := 1
	if m := l.cfg.Load().L2TP.MaxStarting; m > 0 {
		free = m - l.starting
	}
	r := l.adm.next(free)
	l.mu.Unlock()
	if r == nil {
		return
	}
	go func() {
		if !r.RetryDeferred(func(left int) {
			if t, ok := r.(*endpoint.Tunnel); ok {
				l.syncHeld(t, left)
			}
			l.mu.Lock()
			l.adm.woken(r, left)
			l.mu.Unlock()
			l.kick()
		}) {
			// The tunnel is gone.
			l.mu.Lock()
			l.adm.woken(r, 0)
			l.mu.Unlock()
			l.kick()
		}
	}()
}
