package endpoint

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/l2tpd/l2tpd/dataplane"
	"github.com/l2tpd/l2tpd/l2tp/control"
	"github.com/l2tpd/l2tpd/l2tp/tunnel"
)

// TunnelInfo is a consistent picture of one tunnel, read on its goroutine
// (for the management API and metrics).
type TunnelInfo struct {
	ID        uint32
	PeerID    uint32
	Peer      netip.AddrPort
	Local     netip.AddrPort
	HostName  string // the peer's Host Name AVP
	Initiator bool   // we sent the SCCRQ (LAC role)
	State     tunnel.State
	// Sessions is the number of sessions the core holds (any state).
	Sessions int
	// Control-channel counters and the messages not yet acknowledged
	// (queued or in flight).
	Control  control.Stats
	TxQueue  int
	Settings TunnelSettings
	// SessionInfo is filled by Inspect when asked, sorted by ID.
	SessionInfo []SessionInfo
}

// SessionInfo is one established session (with a data plane session) as
// read on its tunnel's goroutine.
type SessionInfo struct {
	ID, PeerID uint32
	Info       tunnel.CallInfo
	// Stats are the data plane's counters; StatsErr says why they are
	// missing.
	Stats    dataplane.Stats
	StatsErr error
	Opaque   any
}

// Inspect reads the tunnel's state on its goroutine, so that it never
// races with the protocol. withSessions adds every established session and
// its data counters. It fails when the tunnel has ended, refused tunnels
// (answered with StopCCN and unknown to the role) included, or ctx ends.
func (t *Tunnel) Inspect(ctx context.Context, withSessions bool) (TunnelInfo, error) {
	ch := make(chan TunnelInfo, 1)
	gone := make(chan struct{}, 1)
	f := func(time.Time) {
		if t.refused {
			gone <- struct{}{}
			return
		}
		c := t.core
		ti := TunnelInfo{
			ID: t.id, PeerID: c.PeerID(), Peer: t.Peer(), Local: t.Local(),
			HostName: c.PeerHostName(), Initiator: c.Initiator(), State: c.State(),
			Sessions: c.NumSessions(), Control: c.ChannelStats(), Settings: t.settings,
		}
		if s := ti.Control; s.Sent >= s.Acked {
			ti.TxQueue = int(s.Sent - s.Acked)
		}
		if withSessions {
			ti.SessionInfo = make([]SessionInfo, 0, len(t.sessions))
			for _, s := range t.sessions {
				si := SessionInfo{ID: s.ID, PeerID: s.PeerID, Info: s.Info, Opaque: s.Opaque}
				if s.DP != nil {
					si.Stats, si.StatsErr = s.DP.Stats()
				} else {
					si.StatsErr = fmt.Errorf("tunnel %d session %d: no data plane session", t.id, s.ID)
				}
				ti.SessionInfo = append(ti.SessionInfo, si)
			}
			slices.SortFunc(ti.SessionInfo, func(a, b SessionInfo) int { return cmpU32(a.ID, b.ID) })
		}
		ch <- ti
	}
	select {
	case t.cmds <- f:
	case <-t.done:
		return TunnelInfo{}, fmt.Errorf("inspecting tunnel %d: %w", t.id, ErrTunnelGone)
	case <-ctx.Done():
		return TunnelInfo{}, fmt.Errorf("inspecting tunnel %d: %w", t.id, ctx.Err())
	}
	select {
	case ti := <-ch:
		return ti, nil
	case <-gone:
		return TunnelInfo{}, fmt.Errorf("inspecting tunnel %d: %w", t.id, ErrTunnelGone)
	case <-t.done:
		return TunnelInfo{}, fmt.Errorf("inspecting tunnel %d: %w", t.id, ErrTunnelGone)
	case <-ctx.Done():
		return TunnelInfo{}, fmt.Errorf("inspecting tunnel %d: %w", t.id, ctx.Err())
	}
}

// ErrTunnelGone: the tunnel ended (or was refused) before it could be read.
var ErrTunnelGone = fmt.Errorf("tunnel gone")

// Inspect reads every live tunnel (refused ones left out), sorted by ID.
// Tunnels that end meanwhile are left out; ctx bounds the whole read.
func (e *Endpoint) Inspect(ctx context.Context, withSessions bool) ([]TunnelInfo, error) {
	ts := e.Tunnels()
	out := make([]TunnelInfo, 0, len(ts))
	for _, t := range ts {
		ti, err := t.Inspect(ctx, withSessions)
		if err != nil {
			if ctx.Err() != nil {
				return out, err
			}
			continue
		}
		out = append(out, ti)
	}
	slices.SortFunc(out, func(a, b TunnelInfo) int { return cmpU32(a.ID, b.ID) })
	return out, nil
}

// Tunnel returns the live tunnel with our ID id, or nil.
func (e *Endpoint) Tunnel(id uint32) *Tunnel {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.tunnels[id]
}

func cmpU32(a, b uint32) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
