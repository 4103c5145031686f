// Package fake is an in-memory mgmt.Backend for tests: it holds tunnels,
// sessions, pools and peers as plain data, applies filters, terminate,
// drain and log-level requests to them, and records every call.
package fake

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/l2tpd/l2tpd/mgmt"
)

// Backend is a fake daemon. Set its fields before serving; lock Mu to
// read them while a server is running.
type Backend struct {
	Mu sync.Mutex

	TunnelList  []mgmt.Tunnel
	SessionList []mgmt.Session
	PoolList    []mgmt.Pool
	PeerList    []mgmt.Peer
	StatsValue  mgmt.Stats
	Level       string
	Traces      []mgmt.Trace
	Draining    bool
	ShutDown    *mgmt.ShutdownRequest // the last shutdown request
	// ReloadErr, if set, is what Reload returns (as CodeInvalidConfig);
	// otherwise Reload counts and succeeds.
	ReloadErr string
	Reloads   int
	// Calls lists the methods called, in order.
	Calls []mgmt.Method
}

var _ mgmt.Backend = (*Backend)(nil)

func (b *Backend) call(m mgmt.Method) {
	b.Calls = append(b.Calls, m)
}

func (b *Backend) Tunnels(_ context.Context, f mgmt.Filter) ([]mgmt.Tunnel, error) {
	b.Mu.Lock()
	defer b.Mu.Unlock()
	b.call(mgmt.MethodShowTunnels)
	var out []mgmt.Tunnel
	for i := range b.TunnelList {
		if f.MatchTunnel(&b.TunnelList[i]) {
			t := b.TunnelList[i]
			t.Sessions = b.countSessions(t.ID)
			out = append(out, t)
		}
	}
	return out, nil
}

func (b *Backend) countSessions(tunnel uint32) int {
	n := 0
	for i := range b.SessionList {
		if b.SessionList[i].TunnelID == tunnel {
			n++
		}
	}
	return n
}

func (b *Backend) Sessions(_ context.Context, f mgmt.Filter) ([]mgmt.Session, error) {
	b.Mu.Lock()
	defer b.Mu.Unlock()
	b.call(mgmt.MethodShowSessions)
	var out []mgmt.Session
	for i := range b.SessionList {
		if f.MatchSession(&b.SessionList[i]) {
			out = append(out, b.SessionList[i])
		}
	}
	return out, nil
}

func (b *Backend) Stats(context.Context) (*mgmt.Stats, error) {
	b.Mu.Lock()
	defer b.Mu.Unlock()
	b.call(mgmt.MethodShowStats)
	s := b.StatsValue
	s.Draining = b.Draining
	s.ShuttingDown = b.ShutDown != nil
	s.LogLevel = b.Level
	return &s, nil
}

func (b *Backend) Pools(context.Context) ([]mgmt.Pool, error) {
	b.Mu.Lock()
	defer b.Mu.Unlock()
	b.call(mgmt.MethodShowPools)
	return slices.Clone(b.PoolList), nil
}

func (b *Backend) Peers(context.Context) ([]mgmt.Peer, error) {
	b.Mu.Lock()
	defer b.Mu.Unlock()
	b.call(mgmt.MethodShowPeers)
	return slices.Clone(b.PeerList), nil
}

func (b *Backend) Terminate(_ context.Context, r mgmt.TerminateRequest) (mgmt.TerminateResult, error) {
	b.Mu.Lock()
	defer b.Mu.Unlock()
	b.call(mgmt.MethodTerminate)
	var res mgmt.TerminateResult
	if r.Target == mgmt.TargetTunnels {
		var ids []uint32
		b.TunnelList = slices.DeleteFunc(b.TunnelList, func(t mgmt.Tunnel) bool {
			if r.All || r.Filter.MatchTunnel(&t) {
				ids = append(ids, t.ID)
				return true
			}
			return false
		})
		res.Tunnels = len(ids)
		b.SessionList = slices.DeleteFunc(b.SessionList, func(s mgmt.Session) bool {
			if slices.Contains(ids, s.TunnelID) {
				res.Sessions++
				return true
			}
			return false
		})
	} else {
		b.SessionList = slices.DeleteFunc(b.SessionList, func(s mgmt.Session) bool {
			if r.All || r.Filter.MatchSession(&s) {
				res.Sessions++
				return true
			}
			return false
		})
	}
	if res.Sessions == 0 && res.Tunnels == 0 {
		return res, mgmt.Errorf(mgmt.CodeNotFound, "no %s match %s", r.Target, r.Filter)
	}
	return res, nil
}

func (b *Backend) Reload(context.Context) (mgmt.ReloadResult, error) {
	b.Mu.Lock()
	defer b.Mu.Unlock()
	b.call(mgmt.MethodReload)
	if b.ReloadErr != "" {
		return mgmt.ReloadResult{}, mgmt.Errorf(mgmt.CodeInvalidConfig, "%s", b.ReloadErr)
	}
	b.Reloads++
	return mgmt.ReloadResult{Config: b.StatsValue.Config, Changes: []string{fmt.Sprintf("reload %d", b.Reloads)}}, nil
}

func (b *Backend) status() mgmt.Status {
	return mgmt.Status{Draining: b.Draining, ShuttingDown: b.ShutDown != nil,
		Tunnels: len(b.TunnelList), Sessions: len(b.SessionList)}
}

func (b *Backend) Drain(_ context.Context, on bool) (mgmt.Status, error) {
	b.Mu.Lock()
	defer b.Mu.Unlock()
	if on {
		b.call(mgmt.MethodDrain)
	} else {
		b.call(mgmt.MethodUndrain)
		if b.ShutDown != nil {
			return b.status(), mgmt.Errorf(mgmt.CodeUnavailable, "l2tpd is shutting down; it cannot undrain")
		}
	}
	b.Draining = on
	return b.status(), nil
}

func (b *Backend) Shutdown(_ context.Context, r mgmt.ShutdownRequest) (mgmt.Status, error) {
	b.Mu.Lock()
	defer b.Mu.Unlock()
	b.call(mgmt.MethodShutdown)
	b.ShutDown = &r
	b.Draining = true
	return b.status(), nil
}

func (b *Backend) LogLevel(_ context.Context, r mgmt.LogLevelRequest) (mgmt.LogLevelResult, error) {
	b.Mu.Lock()
	defer b.Mu.Unlock()
	b.call(mgmt.MethodLogLevel)
	res := mgmt.LogLevelResult{Previous: b.Level, Level: b.Level}
	if r.Level != "" {
		b.Level = r.Level
		res.Level = r.Level
	}
	return res, nil
}

func (b *Backend) Trace(_ context.Context, r mgmt.TraceRequest) ([]mgmt.Trace, error) {
	b.Mu.Lock()
	defer b.Mu.Unlock()
	b.call(mgmt.MethodTrace)
	if r.User != "" || r.Peer != "" {
		b.Traces = slices.DeleteFunc(b.Traces, func(t mgmt.Trace) bool { return t.User == r.User && t.Peer == r.Peer })
		if !r.Off {
			t := mgmt.Trace{User: r.User, Peer: r.Peer}
			if r.For > 0 {
				t.Expires = b.StatsValue.Started.Add(r.For) // deterministic for tests
			}
			b.Traces = append(b.Traces, t)
		}
	}
	return slices.Clone(b.Traces), nil
}
