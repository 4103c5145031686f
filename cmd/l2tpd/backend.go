package main

import (
	"context"
	"fmt"
	"os"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/l2tpd/l2tpd/config"
	"github.com/l2tpd/l2tpd/internal/fault"
	"github.com/l2tpd/l2tpd/l2tp"
	"github.com/l2tpd/l2tpd/l2tp/endpoint"
	"github.com/l2tpd/l2tpd/lns"
	"github.com/l2tpd/l2tpd/metrics"
	"github.com/l2tpd/l2tpd/mgmt"
	"github.com/l2tpd/l2tpd/pppsession"
)

// The daemon is the management API's backend.
var _ mgmt.Backend = (*daemon)(nil)

func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "dev"
}

// peerName is the [[peer]] or [[lac]] name of a tunnel.
func peerName(ti *endpoint.TunnelInfo) string {
	if name, _, ok := lns.TunnelPeerOf(ti.Settings); ok {
		return name
	}
	return ti.Settings.Profile
}

func toTunnel(ti *endpoint.TunnelInfo) mgmt.Tunnel {
	role := "lns"
	if ti.Initiator {
		role = "lac"
	}
	t := mgmt.Tunnel{
		ID: ti.ID, PeerID: ti.PeerID, Role: role, Peer: peerName(ti), PeerAddr: ti.Peer, LocalAddr: ti.Local,
		HostName: ti.HostName, State: ti.State.String(), Sessions: ti.Sessions,
		Retransmits: ti.Control.Retransmitted, TxQueue: ti.TxQueue,
	}
	if _, at, ok := lns.TunnelPeerOf(ti.Settings); ok {
		t.Started = at
	}
	return t
}

// Tunnels implements mgmt.Backend.
func (d *daemon) Tunnels(ctx context.Context, f mgmt.Filter) ([]mgmt.Tunnel, error) {
	tis, err := d.inspect(ctx, f.Tunnel, false)
	if err != nil {
		return nil, err
	}
	out := []mgmt.Tunnel{}
	for i := range tis {
		t := toTunnel(&tis[i])
		if f.MatchTunnel(&t) {
			out = append(out, t)
		}
	}
	return out, nil
}

// inspect reads one tunnel (id != 0) or all of them.
func (d *daemon) inspect(ctx context.Context, id uint32, withSessions bool) ([]endpoint.TunnelInfo, error) {
	if id == 0 {
		tis, err := d.ep.Inspect(ctx, withSessions)
		if err != nil {
			return nil, fmt.Errorf("reading the tunnels: %w", err)
		}
		return tis, nil
	}
	t := d.ep.Tunnel(id)
	if t == nil {
		return nil, nil
	}
	ti, err := t.Inspect(ctx, withSessions)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("reading tunnel %d: %w", id, err)
		}
		return nil, nil
	}
	return []endpoint.TunnelInfo{ti}, nil
}

// selector narrows the registry look-up with the filter's indexed fields;
// the full filter is applied afterwards.
func selector(f mgmt.Filter) pppsession.Selector {
	sel := pppsession.Selector{User: f.User, CallingNumber: f.CallingNumber, TunnelID: f.Tunnel}
	if f.Address.IsValid() && f.Address.Unmap().Is4() {
		sel.Address = f.Address.Unmap()
	}
	if f.ID != "" && !strings.Contains(f.ID, "/") {
		sel.AcctSessionID = f.ID // an Acct-Session-Id names a session too
	}
	return sel
}

// sessions lists the LNS sessions passing f with the snapshot each came
// from, their data counters and tunnel peers read on the tunnel goroutines.
func (d *daemon) sessions(ctx context.Context, f mgmt.Filter) ([]mgmt.Session, []pppsession.Snapshot, error) {
	f2 := f
	if f.ID != "" && !strings.Contains(f.ID, "/") {
		f2.ID = "" // matched by Acct-Session-Id in the selector
	}
	tunnelID := f.Tunnel
	if tid, _, ok := strings.Cut(f.ID, "/"); ok && tunnelID == 0 {
		if n, err := strconv.ParseUint(tid, 10, 32); err == nil {
			tunnelID = uint32(n)
		}
	}
	sel := selector(f)
	sel.TunnelID = tunnelID
	snaps := d.env.Sessions().List(sel)
	if len(snaps) == 0 {
		return []mgmt.Session{}, nil, nil
	}
	tis, err := d.inspect(ctx, tunnelID, true)
	if err != nil {
		return nil, nil, err
	}
	type key struct{ t, s uint32 }
	stats := make(map[key]*endpoint.SessionInfo)
	peers := make(map[uint32]*endpoint.TunnelInfo, len(tis))
	for i := range tis {
		peers[tis[i].ID] = &tis[i]
		for j := range tis[i].SessionInfo {
			si := &tis[i].SessionInfo[j]
			stats[key{tis[i].ID, si.ID}] = si
		}
	}
	tracing := d.tr.any()
	out := []mgmt.Session{}
	var kept []pppsession.Snapshot
	for _, sn := range snaps {
		s := mgmt.Session{
			ID: mgmt.SessionID(sn.TunnelID, sn.SessionID), TunnelID: sn.TunnelID, SessionID: sn.SessionID,
			User: sn.User, Address: sn.Address, Interface: sn.Interface, PeerAddr: sn.PeerAddr,
			CallingNumber: sn.CallingNumber, CalledNumber: sn.CalledNumber, State: sn.State.String(), Started: sn.Started,
		}
		if s.Started.IsZero() {
			s.Started = sn.Created
		}
		if ti := peers[sn.TunnelID]; ti != nil {
			s.Peer = peerName(ti)
		}
		if si := stats[key{sn.TunnelID, sn.SessionID}]; si != nil && si.StatsErr == nil {
			s.RxBytes, s.TxBytes, s.RxPackets, s.TxPackets = si.Stats.RxBytes, si.Stats.TxBytes, si.Stats.RxPackets, si.Stats.TxPackets
		}
		if tracing {
			s.Tracing = d.tr.user(s.User) || d.tr.peer(s.Peer) || d.tr.peer(s.PeerAddr.Addr().String())
		}
		if f2.MatchSession(&s) {
			out = append(out, s)
			kept = append(kept, sn)
		}
	}
	return out, kept, nil
}

// Sessions implements mgmt.Backend.
func (d *daemon) Sessions(ctx context.Context, f mgmt.Filter) ([]mgmt.Session, error) {
	out, _, err := d.sessions(ctx, f)
	return out, err
}

func countStates(tis []endpoint.TunnelInfo) map[string]int {
	m := map[string]int{}
	for i := range tis {
		m[tis[i].State.String()]++
	}
	return m
}

func (d *daemon) sessionStates() map[string]int {
	m := map[string]int{}
	for st, n := range d.env.Sessions().CountByState() {
		m[st.String()] = n
	}
	return m
}

// Stats implements mgmt.Backend.
func (d *daemon) Stats(ctx context.Context) (*mgmt.Stats, error) {
	tis, err := d.ep.Inspect(ctx, true)
	if err != nil {
		return nil, fmt.Errorf("reading the tunnels: %w", err)
	}
	cfg := d.cfg.Load()
	s := &mgmt.Stats{
		Version: version(), Config: cfg.File, Started: d.started,
		Draining: d.role.Draining(), ShuttingDown: d.shuttingDown.Load(),
		LogLevel: d.level.Level().String(), DataPlane: d.plane.Name(),
		TunnelsByState: countStates(tis), SessionsByState: d.sessionStates(),
		TunnelSetups: d.obs.tunnelSetups.Load(), SessionSetups: d.obs.sessionSetups.Load(),
		Retransmits: d.obs.retransmits(tis),
	}
	h := d.role.HeldCalls()
	s.SessionsByState["held"] = h.Held
	s.Held = mgmt.HeldCalls(heldCounts(h))
	if r := d.reloaded.Load(); r != nil {
		s.Reloaded = *r
	}
	s.TunnelFailures, s.SessionFailures, s.PPPFailures = d.obs.failures()
	for i := range tis {
		for _, si := range tis[i].SessionInfo {
			s.RxBytes += si.Stats.RxBytes
			s.TxBytes += si.Stats.TxBytes
		}
	}
	if d.radA != nil {
		s.RADIUS = append(s.RADIUS, d.radA.stats())
	}
	if d.rad.client != nil {
		s.AcctSpoolDepth = d.rad.client.Pending()
	}
	return s, nil
}

// Pools implements mgmt.Backend.
func (d *daemon) Pools(ctx context.Context) ([]mgmt.Pool, error) {
	out := []mgmt.Pool{}
	for _, name := range d.pools.Names() {
		p, err := d.pools.Get(name)
		if err != nil {
			continue // removed by a reload meanwhile
		}
		st := p.Stats()
		mp := mgmt.Pool{Name: name, Gateway: p.Gateway(), Size: st.Size, Used: st.Used}
		for _, r := range p.Ranges() {
			mp.Ranges = append(mp.Ranges, r.String())
		}
		out = append(out, mp)
	}
	return out, nil
}

// Peers implements mgmt.Backend.
func (d *daemon) Peers(ctx context.Context) ([]mgmt.Peer, error) {
	cfg := d.cfg.Load()
	counts := d.role.PeerCounts()
	tis, err := d.ep.Inspect(ctx, false)
	if err != nil {
		return nil, fmt.Errorf("reading the tunnels: %w", err)
	}
	out := []mgmt.Peer{}
	for _, p := range cfg.Peers {
		mp := mgmt.Peer{Name: p.Name, Role: "lns", Refuse: p.Refuse, Tracing: d.tr.peer(p.Name)}
		for _, a := range p.MatchAddress {
			mp.Match = append(mp.Match, a.String())
		}
		for _, h := range p.MatchHostName {
			mp.Match = append(mp.Match, "host "+h)
		}
		if len(mp.Match) == 0 {
			mp.Match = []string{"any"}
		}
		c := counts[p.Name]
		mp.Tunnels, mp.Sessions = c.Tunnels, c.Sessions
		out = append(out, mp)
	}
	for _, l := range cfg.LACs {
		mp := mgmt.Peer{Name: l.Name, Role: "lac", Match: []string{l.LNS}, Tracing: d.tr.peer(l.Name)}
		for i := range tis {
			if tis[i].Initiator && tis[i].Settings.Profile == l.Name {
				mp.Tunnels++
				mp.Sessions += tis[i].Sessions
			}
		}
		out = append(out, mp)
	}
	return out, nil
}

// Terminate implements mgmt.Backend: soft by default (LCP
// Terminate-Request, accounting Stop, CDN); tunnels end their sessions
// the same way first and send StopCCN once they are gone (or after 3 s).
func (d *daemon) Terminate(ctx context.Context, r mgmt.TerminateRequest) (mgmt.TerminateResult, error) {
	if err := r.Validate(); err != nil { // the server validated; never "everything" by accident
		return mgmt.TerminateResult{}, err
	}
	term := pppsession.Termination{Kind: pppsession.EndAdminReset, Message: "terminated by the operator (l2tpctl)", Hard: r.Hard}
	var res mgmt.TerminateResult
	if r.Target == mgmt.TargetSessions {
		if r.All {
			res.Sessions = d.env.Sessions().Terminate(pppsession.Selector{}, term)
		} else {
			_, snaps, err := d.sessions(ctx, r.Filter)
			if err != nil {
				return res, err
			}
			for _, sn := range snaps {
				res.Sessions += d.env.Sessions().Terminate(pppsession.Selector{AcctSessionID: sn.AcctSessionID}, term)
			}
		}
		if res.Sessions == 0 {
			return res, mgmt.Errorf(mgmt.CodeNotFound, "terminate: no session matches %s; see l2tpctl show sessions", r.Filter)
		}
		d.log.Info("operator terminated sessions", zap.Stringer("filter", filterStr(r.Filter)), zap.Int("sessions", res.Sessions), zap.Bool("hard", r.Hard))
		return res, nil
	}
	tis, err := d.inspect(ctx, r.Filter.Tunnel, false)
	if err != nil {
		return res, err
	}
	for i := range tis {
		t := toTunnel(&tis[i])
		if !r.All && !r.Filter.MatchTunnel(&t) {
			continue
		}
		tun := d.ep.Tunnel(t.ID)
		if tun == nil {
			continue
		}
		res.Tunnels++
		n := d.env.Sessions().Terminate(pppsession.Selector{TunnelID: t.ID}, term)
		res.Sessions += n
		rc := l2tp.ResultCode{Result: l2tp.ResultStopGeneral, Message: "terminated by the operator"}
		if r.Hard || n == 0 {
			tun.Close(rc, "terminated by the operator (l2tpctl)")
			continue
		}
		go d.closeWhenEmpty(tun, rc)
	}
	if res.Tunnels == 0 {
		return res, mgmt.Errorf(mgmt.CodeNotFound, "terminate: no tunnel matches %s; see l2tpctl show tunnels", r.Filter)
	}
	d.log.Info("operator terminated tunnels", zap.Stringer("filter", filterStr(r.Filter)), zap.Int("tunnels", res.Tunnels), zap.Int("sessions", res.Sessions), zap.Bool("hard", r.Hard))
	return res, nil
}

type filterStr mgmt.Filter

func (f filterStr) String() string { return mgmt.Filter(f).String() }

// closeWhenEmpty sends StopCCN once the tunnel's LNS sessions are gone
// (their soft termination done), or after 3 s.
func (d *daemon) closeWhenEmpty(t *endpoint.Tunnel, rc l2tp.ResultCode) {
	deadline := time.NewTimer(3 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for len(d.env.Sessions().List(pppsession.Selector{TunnelID: t.ID()})) > 0 {
		select {
		case <-t.Done():
			return
		case <-deadline.C:
			t.Close(rc, "terminated by the operator (l2tpctl); sessions still ending")
			return
		case <-tick.C:
		}
	}
	t.Close(rc, "terminated by the operator (l2tpctl)")
}

// Reload implements mgmt.Backend.
func (d *daemon) Reload(ctx context.Context) (mgmt.ReloadResult, error) {
	res, err := d.reload()
	if err != nil {
		return res, mgmt.Errorf(mgmt.CodeInvalidConfig, "%v", err)
	}
	return res, nil
}

// reload re-reads the configuration file. An invalid file changes
// nothing. A valid one reaches new tunnels (lns.SetConfig), new sessions
// (the pppsession config function, pools, local subscribers) and the log
// level; established tunnels and sessions keep what they started with.
// Settings that need a restart are named in the changes.
func (d *daemon) reload() (mgmt.ReloadResult, error) {
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	res := mgmt.ReloadResult{Config: d.path}
	nc, err := config.Load(d.path)
	if err != nil {
		d.m.Reloaded(false)
		return res, fmt.Errorf("reload refused, the running configuration stays: %w", err)
	}
	old := d.cfg.Load()
	if err := d.pools.Update(poolConfigs(nc)); err != nil {
		d.m.Reloaded(false)
		return res, fmt.Errorf("reload refused, the running configuration stays: address pools: %w", err)
	}
	if err := d.authn.Replace(localSubscribers(nc)); err != nil {
		d.pools.Update(poolConfigs(old)) // back to the pools that matched
		d.m.Reloaded(false)
		return res, fmt.Errorf("reload refused, the running configuration stays: subscribers: %w", err)
	}
	d.cfg.Store(nc)
	d.role.SetConfig(nc)
	if nc.Threads != old.Threads {
		n, why := applyThreads(nc, d.defaultProcs, os.Getenv)
		d.log.Info("threads running the daemon's code (GOMAXPROCS) changed by a reload", zap.Int("threads", n), zap.String("why", why))
	}
	if nc.LogLevel != old.LogLevel {
		var l zapcore.Level
		if l.UnmarshalText([]byte(nc.LogLevel.String())) == nil {
			d.level.SetLevel(l)
		}
	}
	res.Changes = changes(old, nc)
	now := time.Now()
	d.reloaded.Store(&now)
	d.m.Reloaded(true)
	d.log.Info("configuration reloaded: new tunnels and sessions use it; established ones are untouched",
		zap.String("config", d.path), zap.Strings("changes", res.Changes))
	return res, nil
}

// changes summarises what differs between two configurations.
func changes(a, b *config.Config) []string {
	out := []string{}
	count := func(what string, x, y int) {
		if x != y {
			out = append(out, fmt.Sprintf("%s: %d -> %d", what, x, y))
		}
	}
	count("peers", len(a.Peers), len(b.Peers))
	count("pools", len(a.Pools), len(b.Pools))
	count("subscribers", len(a.Subscribers), len(b.Subscribers))
	if a.LogLevel != b.LogLevel {
		out = append(out, fmt.Sprintf("log_level: %s -> %s", a.LogLevel, b.LogLevel))
	}
	if a.Threads != b.Threads {
		out = append(out, fmt.Sprintf("threads: %d -> %d", a.Threads, b.Threads))
	}
	if a.Dump() == b.Dump() {
		return out
	}
	restart := func(what string, differ bool) {
		if differ {
			out = append(out, what+" changed: takes effect at the next restart")
		}
	}
	restart("listen", !slices.Equal(a.Listen, b.Listen))
	restart("dataplane", a.DataPlane != b.DataPlane)
	restart("[api]", a.API != b.API)
	restart("[metrics]", a.Metrics != b.Metrics)
	restart("[[lac]]", len(a.LACs) != len(b.LACs))
	restart("[radius] servers", len(a.RADIUS.Servers) != len(b.RADIUS.Servers))
	if len(out) == 0 {
		out = append(out, "settings of peers, profiles or pools changed")
	}
	return out
}

func (d *daemon) status() mgmt.Status {
	// Sessions counts every admitted call, those still setting up too
	// (their PPP is not up yet), so a drain watched until it reads 0 has
	// none left.
	tunnels, sessions, starting := d.role.Counts()
	return mgmt.Status{Draining: d.role.Draining(), ShuttingDown: d.shuttingDown.Load(), Tunnels: tunnels, Sessions: sessions + starting}
}

// Drain implements mgmt.Backend.
func (d *daemon) Drain(ctx context.Context, on bool) (mgmt.Status, error) {
	d.softMu.Lock()
	if !on && d.shuttingDown.Load() {
		if d.softCancel == nil {
			d.softMu.Unlock()
			return d.status(), mgmt.Errorf(mgmt.CodeUnavailable, "undrain: the daemon is stopping (shutdown); start it again instead")
		}
		d.softCancel() // undrain cancels a pending shutdown --soft
		d.softCancel = nil
		d.shuttingDown.Store(false)
		d.log.Info("soft shutdown cancelled by the operator (undrain)")
	}
	d.role.SetDraining(on)
	d.softMu.Unlock()
	d.log.Info("admission changed by the operator", zap.Bool("draining", on))
	return d.status(), nil
}

// Shutdown implements mgmt.Backend. Soft: drain, and exit once the last
// session has gone (undrain cancels it); otherwise exit now.
func (d *daemon) Shutdown(ctx context.Context, r mgmt.ShutdownRequest) (mgmt.Status, error) {
	d.softMu.Lock()
	defer d.softMu.Unlock()
	if !r.Soft {
		if d.softCancel != nil {
			d.softCancel()
			d.softCancel = nil
		}
		d.shuttingDown.Store(true)
		d.log.Info("shutdown requested by the operator")
		st := d.status()
		// Give the response a moment to reach l2tpctl before the
		// daemon starts tearing down.
		time.AfterFunc(200*time.Millisecond, func() { d.requestExit("l2tpctl shutdown") })
		return st, nil
	}
	d.role.SetDraining(true)
	if d.shuttingDown.Swap(true) {
		return d.status(), nil
	}
	d.log.Info("soft shutdown requested by the operator: draining, exiting when the last session has gone", zap.Int("sessions", d.env.Sessions().Len()))
	wctx, cancel := context.WithCancel(context.Background())
	d.softCancel = cancel
	go func() {
		if d.env.Sessions().WaitEmpty(wctx) == nil {
			d.requestExit("l2tpctl shutdown --soft: the last session has gone")
		}
	}()
	return d.status(), nil
}

// LogLevel implements mgmt.Backend.
func (d *daemon) LogLevel(ctx context.Context, r mgmt.LogLevelRequest) (mgmt.LogLevelResult, error) {
	prev := d.level.Level()
	res := mgmt.LogLevelResult{Previous: prev.String(), Level: prev.String()}
	if r.Level == "" {
		return res, nil
	}
	if !slices.Contains(mgmt.LogLevels, r.Level) {
		return res, mgmt.Errorf(mgmt.CodeBadRequest, "log level %q: want one of %s", r.Level, strings.Join(mgmt.LogLevels, ", "))
	}
	var l zapcore.Level
	if err := l.UnmarshalText([]byte(r.Level)); err != nil {
		return res, mgmt.Errorf(mgmt.CodeBadRequest, "log level %q: %v", r.Level, err)
	}
	d.level.SetLevel(l)
	res.Level = l.String()
	d.log.Warn("log level changed by the operator", zap.String("previous", res.Previous), zap.String("level", res.Level))
	return res, nil
}

// Trace implements mgmt.Backend.
func (d *daemon) Trace(ctx context.Context, r mgmt.TraceRequest) ([]mgmt.Trace, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	out := d.tr.set(r)
	if r.User != "" || r.Peer != "" {
		d.log.Info("debug trace changed by the operator", zap.String("trace_user", r.User), zap.String("trace_peer", r.Peer), zap.Bool("off", r.Off), zap.Duration("for", r.For))
	}
	if out == nil {
		out = []mgmt.Trace{}
	}
	return out, nil
}

// snapshot feeds the metrics gauges at scrape time.
func (d *daemon) snapshot() metrics.Snapshot {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	tis, _ := d.ep.Inspect(ctx, false)
	d.obs.retransmits(tis)
	h := d.role.HeldCalls()
	s := metrics.Snapshot{TunnelsByState: countStates(tis), SessionsByState: d.sessionStates(), Draining: d.role.Draining(),
		Held: heldCounts(h), InternalErrors: fault.Total()}
	s.SessionsByState["held"] = h.Held
	for _, name := range d.pools.Names() {
		if p, err := d.pools.Get(name); err == nil {
			st := p.Stats()
			s.Pools = append(s.Pools, metrics.PoolUsage{Name: name, Size: st.Size, Used: st.Used})
		}
	}
	if d.rad.client != nil {
		s.AcctSpoolDepth = d.rad.client.Pending()
		st := d.rad.client.Stats()
		s.RADIUS = metrics.RADIUSCounts{Retransmissions: st.Retransmitted, RepliesUnexpected: st.Unexpected, RepliesInvalid: st.Invalid}
	}
	return s
}
