package lns

import (
	"time"

	"github.com/l2tpd/l2tpd/l2tp/endpoint"
)

// TunnelPeer returns the [[peer]] name this LNS matched for t and when it
// accepted the tunnel; ok is false for a tunnel this role does not own
// (a LAC-dialled tunnel, or a refused one).
func TunnelPeer(t *endpoint.Tunnel) (peer string, accepted time.Time, ok bool) {
	return TunnelPeerOf(t.Settings())
}

// TunnelPeerOf is TunnelPeer from a tunnel's settings (as in
// endpoint.TunnelInfo).
func TunnelPeerOf(s endpoint.TunnelSettings) (peer string, accepted time.Time, ok bool) {
	st, _ := s.Opaque.(*tunnelState)
	if st == nil || st.peer == nil {
		return "", time.Time{}, false
	}
	return st.peer.Name, st.accepted, true
}

// Draining reports whether new tunnels and sessions are refused.
func (l *LNS) Draining() bool { return l.draining.Load() }

// PeerCount is one [[peer]]'s tunnels and sessions (established or
// setting up) as the LNS counts them for its limits.
type PeerCount struct{ Tunnels, Sessions int }

// PeerCounts returns the counts of every peer that has or had tunnels.
func (l *LNS) PeerCounts() map[string]PeerCount {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]PeerCount, len(l.peers))
	for name, pc := range l.peers {
		out[name] = PeerCount{Tunnels: pc.tunnels, Sessions: pc.sessions}
	}
	return out
}
