package endpoint

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"go.uber.org/zap"

	"github.com/l2tpd/l2tpd/l2tp"
	"github.com/l2tpd/l2tpd/l2tp/tunnel"
)

// handleSCCRQ handles a control message with tunnel ID 0 that arrived on a
// listener: an SCCRQ (new tunnel or retransmission), anything else dropped.
func (e *Endpoint) handleSCCRQ(lc *net.UDPConn, local, from netip.AddrPort, hdr l2tp.Header, payload, pkt []byte) {
	if len(payload) == 0 {
		return // a ZLB for tunnel 0: nothing to acknowledge
	}
	// Parse without a secret to learn the host name; if the peer hid AVPs
	// we need its profile (by address) first.
	m, err := l2tp.ParseMessage(payload, nil)
	host := ""
	if err == nil {
		host, _ = m.String(l2tp.AVPHostName)
	}
	if m != nil && m.Type != l2tp.MsgSCCRQ {
		e.logMalformed(from, 0, fmt.Errorf("%v: %w", m.Type, errTunnelZero))
		return
	}
	secret := e.cfg.Handler.PeerSecret(from, host)
	var unknown *l2tp.UnknownAVPError
	if err != nil || len(secret) > 0 {
		m, err = l2tp.ParseMessage(payload, secret)
	}
	if err != nil && !errors.As(err, &unknown) {
		e.logMalformed(from, 0, fmt.Errorf("SCCRQ: %w", err))
		return
	}
	if m == nil || m.Type != l2tp.MsgSCCRQ {
		e.logMalformed(from, 0, errTunnelZero)
		return
	}
	if host == "" {
		host, _ = m.String(l2tp.AVPHostName)
	}
	peerTID := tunnel.PeerTunnelID(m)
	key := peerKey{from, peerTID}
	e.mu.Lock()
	// AcceptTunnel and the core's parse of the SCCRQ run under e.mu: a
	// panic in them (recovered by listenerGuarded) must not leave it held.
	locked := true
	unlock := func() { locked = false; e.mu.Unlock() }
	defer func() {
		if locked {
			e.mu.Unlock()
		}
	}()
	if t := e.byPeer[key]; t != nil {
		unlock()
		t.deliver(from, hdr, pkt) // retransmitted SCCRQ: the channel acknowledges it
		return
	}
	if e.closed {
		unlock()
		return
	}
	// Both sides opened a tunnel to each other: the tie breaker decides.
	if theirs, ok := tunnel.TieBreaker(m); ok {
		for _, t := range e.tunnels {
			// The core belongs to the tunnel's goroutine: only the
			// atomic mirror of its state is read here.
			if t.waitingReply.Load() && t.Peer().Addr() == from.Addr() {
				if tunnel.TieBreakerWins(t.core.OurTieBreaker(), theirs) {
					unlock()
					return // ours wins: the peer drops its SCCRQ
				}
				// theirs wins (or a tie): abandon ours and answer theirs
				go t.Close(l2tp.ResultCode{Result: l2tp.ResultStopAlreadyExists, Message: "tie breaker lost"}, "tie breaker lost to the peer's SCCRQ")
			}
		}
	}
	pl := e.load[from.Addr()]
	if pl != nil && pl.setup >= e.cfg.MaxSetupPerPeer {
		// This address already has as many tunnels in setup as one peer
		// may: one StopCCN, no state, and the role is not asked (nor
		// counts it).
		e.refuseStateless(lc, from, hdr, m, TunnelSettings{}, l2tp.ResultCode{Result: l2tp.ResultStopGeneralError,
			Error: l2tp.ErrCodeNoResources, Message: "too many tunnels in setup from this address"}, errSetupFlood)
		unlock()
		return
	}
	settings, refusal := e.cfg.Handler.AcceptTunnel(from, host)
	if refusal != nil && (e.refused >= e.cfg.MaxRefused || (pl != nil && pl.refused >= e.cfg.MaxRefusedPerPeer)) {
		e.refuseStateless(lc, from, hdr, m, settings, *refusal, errRefusedFlood)
		unlock()
		return
	}
	if refusal == nil && !bytes.Equal(settings.Tunnel.Secret, secret) {
		// The profile's secret must be the one the SCCRQ was read with.
		settings.Tunnel.Secret = secret
	}
	id, err := e.allocTunnelID()
	if err != nil {
		unlock()
		e.log.Error("cannot accept tunnel", zap.Stringer("peer", from), zap.Error(err))
		return
	}
	now := e.cfg.Now()
	cfg := settings.Tunnel
	cfg.LocalID = id
	cfg.Rand = e.rand
	if cfg.Policy == nil {
		cfg.Policy = callPolicy{e}
	}
	var t *Tunnel
	var core *tunnel.Tunnel
	var strays []stray
	if refusal != nil {
		core, err = tunnel.NewRefusal(cfg, now, hdr, m, *refusal)
		if err == nil {
			t = e.newTunnel(id, settings, from, local, nil, lc)
			t.refused = true
		}
	} else {
		var conn *net.UDPConn
		conn, strays, err = openTunnelSocket(local, from)
		if err == nil {
			core, err = tunnel.NewResponder(cfg, now, hdr, m)
			if err != nil {
				conn.Close()
			} else {
				t = e.newTunnel(id, settings, from, local, conn, lc)
				t.connected = true
			}
		}
	}
	if err != nil {
		unlock()
		e.log.Error("cannot set up tunnel", zap.Stringer("peer", from), zap.Error(err))
		e.reinject(lc, local, strays)
		if refusal == nil { // the role counted it: give it back
			e.cfg.Handler.TunnelDown(&Tunnel{e: e, settings: settings, log: e.log}, tunnel.TunnelDown{Reason: err.Error()})
		}
		return
	}
	t.core = core
	core.SetPolicyOwner(t)
	e.tunnels[id] = t
	e.byPeer[key] = t
	e.countLoad(t)
	unlock()
	if refusal != nil {
		t.log.Warn("refused tunnel", zap.String("peer_host", host), zap.Uint16("result", refusal.Result), zap.String("reason", refusal.Message))
	} else {
		t.log.Debug("SCCRQ accepted", zap.String("peer_host", host))
	}
	t.start()
	e.reinject(lc, local, strays)
}

// reinject hands the datagrams a new tunnel socket received before it was
// connected (openTunnelSocket) to the listener's path, as if the listener lc had
// read them: they were addressed to local, which the socket shares with it.
func (e *Endpoint) reinject(lc *net.UDPConn, local netip.AddrPort, strays []stray) {
	for _, s := range strays {
		e.handleListenerPacket(lc, local, s.from, s.pkt)
	}
}

// refuseStateless answers an SCCRQ with one StopCCN and keeps no state:
// the peer already has as many tunnels in setup, or refused tunnels held,
// as it may. Called with e.mu held.
func (e *Endpoint) refuseStateless(lc *net.UDPConn, from netip.AddrPort, hdr l2tp.Header, m *l2tp.Message, settings TunnelSettings, rc l2tp.ResultCode, cause error) {
	id, err := e.allocTunnelID()
	if err != nil {
		return
	}
	cfg := settings.Tunnel
	cfg.LocalID = id
	cfg.Rand = e.rand
	core, err := tunnel.NewRefusal(cfg, e.cfg.Now(), hdr, m, rc)
	if err != nil {
		return
	}
	for _, b := range core.Output(e.cfg.Now(), nil) {
		if _, err := lc.WriteToUDPAddrPort(b, from); err != nil {
			break
		}
	}
	e.logMalformed(from, 0, fmt.Errorf("SCCRQ refused (%q) without holding state: %w", rc.Message, cause))
}

// callPolicy routes the core's AdmitCall to the role's handler.
type callPolicy struct{ e *Endpoint }

func (p callPolicy) AdmitCall(ct *tunnel.Tunnel, dir tunnel.Direction, info *tunnel.CallInfo) *l2tp.ResultCode {
	t, _ := ct.PolicyOwner().(*Tunnel)
	if t == nil {
		return nil
	}
	return t.handler().AdmitCall(t, dir, info)
}

// Dial opens a tunnel to an LNS (LAC role). local may be the zero value (any
// address, ephemeral port).
func (e *Endpoint) Dial(peer, local netip.AddrPort, settings TunnelSettings) (*Tunnel, error) {
	if !local.IsValid() {
		if peer.Addr().Is4() {
			local = netip.AddrPortFrom(netip.IPv4Unspecified(), 0)
		} else {
			local = netip.AddrPortFrom(netip.IPv6Unspecified(), 0)
		}
	}
	conn, err := dialSocket(local, peer)
	if err != nil {
		return nil, fmt.Errorf("dial LNS %v: socket on %v: %w", peer, local, err)
	}
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		conn.Close()
		return nil, errors.New("endpoint is shutting down")
	}
	id, err := e.allocTunnelID()
	if err != nil {
		e.mu.Unlock()
		conn.Close()
		return nil, err
	}
	cfg := settings.Tunnel
	cfg.LocalID = id
	cfg.Rand = e.rand
	if cfg.Policy == nil {
		cfg.Policy = callPolicy{e}
	}
	core, err := tunnel.NewInitiator(cfg, e.cfg.Now())
	if err != nil {
		e.mu.Unlock()
		conn.Close()
		return nil, err
	}
	t := e.newTunnel(id, settings, peer, conn.LocalAddr().(*net.UDPAddr).AddrPort(), conn, nil)
	t.core = core
	t.waitingReply.Store(true)
	core.SetPolicyOwner(t)
	e.tunnels[id] = t
	e.mu.Unlock()
	t.log.Info("dialling LNS")
	t.start()
	return t, nil
}

// Shutdown sends StopCCN on every tunnel, waits (until ctx ends) for the
// peers to acknowledge, then stops every goroutine and closes the sockets.
func (e *Endpoint) Shutdown(ctx context.Context) {
	e.mu.Lock()
	e.closed = true
	ts := make([]*Tunnel, 0, len(e.tunnels))
	for _, t := range e.tunnels {
		if !t.refused { // refused ones have sent their StopCCN already
			ts = append(ts, t)
		}
	}
	e.mu.Unlock()
	type wait struct {
		t   *Tunnel
		ack chan struct{}
	}
	waits := make([]wait, 0, len(ts))
	for _, t := range ts {
		w := make(chan struct{})
		if t.do(func(now time.Time) {
			t.core.Close(now, l2tp.ResultCode{Result: l2tp.ResultStopShuttingDown, Message: "shutting down"}, "daemon shutting down")
			t.stopAcked = w
		}) {
			waits = append(waits, wait{t, w})
		}
	}
	for _, w := range waits {
		select {
		case <-w.ack:
		case <-w.t.done: // ended before (or without) running the close
		case <-ctx.Done():
		}
	}
	e.cancel()
	e.closeListeners()
	e.wg.Wait()
}

// passOn hands a datagram that reached t's socket but is not t's to where
// it belongs, and reports whether it did. Two cases: a datagram the kernel
// matched to the socket just before its connect took effect (it would
// have gone to the listener), and a datagram of another tunnel connected
// to the same 4-tuple (a LAC that opens several tunnels from one port: the
// kernel gives every datagram of the 4-tuple to one of the sockets). Only a
// tunnel whose peer the sender is gets it; tunnel ID 0 goes to the SCCRQ
// path (LNS).
func (t *Tunnel) passOn(from netip.AddrPort, pkt []byte) bool {
	hdr, _, err := l2tp.ParseHeader(pkt)
	if err != nil {
		return false
	}
	if hdr.TunnelID == 0 {
		if t.listener == nil || !hdr.Control {
			return false
		}
		t.e.handleListenerPacket(t.listener, t.Local(), from, pkt)
		return true
	}
	if hdr.TunnelID == t.id {
		return false
	}
	t.e.mu.Lock()
	o := t.e.tunnels[hdr.TunnelID]
	t.e.mu.Unlock()
	if o == nil || !o.acceptsFrom(from) {
		return false
	}
	if hdr.Control {
		o.deliver(from, hdr, pkt)
	} else {
		o.handleData(hdr, pkt, false)
	}
	return true
}
