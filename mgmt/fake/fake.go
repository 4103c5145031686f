// Package fake is an in-memory mgmt.Backend for tests: it holds tunnels,
// sessions, pools and peers as plain data, applies filters, terminate,
// drain and log-level requests to them, and records every call.
package fake

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

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
	// Now is the fake's clock: trace expiry is Now plus the duration.
	Now     time.Time
	Reloads int
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
				t.Expires = b.Now.Add(r.For)
			}
			b.Traces = append(b.Traces, t)
		}
	}
	return slices.Clone(b.Traces), nil
}

// Sample returns a backend with two tunnels, three sessions, two pools and
// two peers, started at now minus a few hours, for tests and examples.
func Sample(now time.Time) *Backend {
	ap := netip.MustParseAddrPort
	a := netip.MustParseAddr
	return &Backend{
		Now:   now,
		Level: "info",
		TunnelList: []mgmt.Tunnel{
			{ID: 3, PeerID: 41, Role: "lns", Peer: "bras-1", PeerAddr: ap("192.0.2.10:1701"), LocalAddr: ap("192.0.2.1:1701"),
				HostName: "bras-1.example.net", State: "established", Started: now.Add(-26 * time.Hour), Retransmits: 2},
			{ID: 17, PeerID: 5, Role: "lns", Peer: "", PeerAddr: ap("198.51.100.7:1701"), LocalAddr: ap("192.0.2.1:1701"),
				HostName: "lac-x", State: "established", Started: now.Add(-90 * time.Second)},
		},
		SessionList: []mgmt.Session{
			{ID: "3/100", TunnelID: 3, SessionID: 100, User: "alice", Address: a("10.64.0.2"), Interface: "ppp0",
				Peer: "bras-1", PeerAddr: ap("192.0.2.10:1701"), CallingNumber: "0612345678", State: "established",
				Started: now.Add(-25*time.Hour - 3*time.Minute), RxBytes: 1_234_567_890, TxBytes: 9_876_543_210, RxPackets: 1e6, TxPackets: 7e6},
			{ID: "3/101", TunnelID: 3, SessionID: 101, User: "bob@isp", Address: a("10.64.0.3"), Interface: "ppp1",
				Peer: "bras-1", PeerAddr: ap("192.0.2.10:1701"), CallingNumber: "0698765432", State: "established",
				Started: now.Add(-42 * time.Minute), RxBytes: 2048, TxBytes: 1_500_000},
			{ID: "17/7", TunnelID: 17, SessionID: 7, User: "carol", Interface: "",
				PeerAddr: ap("198.51.100.7:1701"), State: "authenticating", Started: now.Add(-2 * time.Second)},
		},
		PoolList: []mgmt.Pool{
			{Name: "default", Ranges: []string{"10.64.0.0/24"}, Gateway: a("10.64.0.1"), Size: 253, Used: 2},
			{Name: "business", Ranges: []string{"10.65.0.10-10.65.0.19"}, Gateway: a("10.65.0.1"), Size: 10, Used: 10},
		},
		PeerList: []mgmt.Peer{
			{Name: "bras-1", Role: "lns", Match: []string{"192.0.2.10"}, Tunnels: 1, Sessions: 2},
			{Name: "blocked", Role: "lns", Match: []string{"203.0.113.0/24"}, Refuse: true},
		},
		StatsValue: mgmt.Stats{
			Version: "test", Config: "/etc/l2tpd/l2tpd.toml", Started: now.Add(-48 * time.Hour), DataPlane: "userspace",
			TunnelsByState:  map[string]int{"established": 2},
			SessionsByState: map[string]int{"established": 2, "authenticating": 1, "held": 2},
			Held: mgmt.HeldCalls{Total: 1250, Admitted: 1210, Expired: 31, Ended: 7,
				MaxWait: 2400 * time.Millisecond, OldestWait: 850 * time.Millisecond},
			TunnelSetups: 5, TunnelFailures: map[string]uint64{"not-authorized": 1},
			SessionSetups: 40, SessionFailures: map[string]uint64{"auth-failed": 3, "pool-exhausted": 1},
			PPPFailures: map[string]uint64{"lcp": 2}, Retransmits: 12,
			RxBytes: 1_234_569_938, TxBytes: 9_878_043_210,
			RADIUS: []mgmt.RADIUSServer{{Server: "192.0.2.50:1812", Kind: "auth", Requests: 43, Accepts: 40, Rejects: 3,
				Timeouts: 1, LatencyAvg: 3200 * time.Microsecond, LatencyP99: 41 * time.Millisecond}},
			AcctSpoolDepth: 0,
		},
	}
}
