package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/l2tpd/l2tpd/mgmt"
)

// filterFlags registers the filter flags on fs; tunnelsOnly leaves out the
// session-only ones.
func filterFlags(fs *flag.FlagSet, f *mgmt.Filter, tunnelsOnly bool) func() error {
	var addr string
	var tunnel uint
	fs.StringVar(&f.Peer, "peer", "", "peer name or address")
	fs.UintVar(&tunnel, "tunnel", 0, "our tunnel ID")
	if !tunnelsOnly {
		fs.StringVar(&f.User, "user", "", "PPP user name")
		fs.StringVar(&addr, "address", "", "subscriber address")
		fs.StringVar(&f.CallingNumber, "calling-number", "", "Calling Number")
		fs.StringVar(&f.ID, "id", "", "session ID (tunnel/session)")
	}
	return func() error {
		if tunnel > 0xffffffff {
			return usagef("--tunnel %d: tunnel IDs are at most 32 bits", tunnel)
		}
		f.Tunnel = uint32(tunnel)
		if addr != "" {
			a, err := netip.ParseAddr(addr)
			if err != nil {
				return usagef("--address %q is not an IP address", addr)
			}
			f.Address = a
		}
		return nil
	}
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func sessionColumns(now time.Time) []column[mgmt.Session] {
	return []column[mgmt.Session]{
		{"id", false, func(s *mgmt.Session) string { return s.ID }},
		{"user", false, func(s *mgmt.Session) string { return s.User }},
		{"address", false, func(s *mgmt.Session) string { return addrString(s.Address) }},
		{"interface", false, func(s *mgmt.Session) string { return s.Interface }},
		{"tunnel", true, func(s *mgmt.Session) string { return strconv.FormatUint(uint64(s.TunnelID), 10) }},
		{"peer", false, func(s *mgmt.Session) string { return peerString(s.Peer, s.PeerAddr) }},
		{"calling-number", false, func(s *mgmt.Session) string { return s.CallingNumber }},
		{"uptime", true, func(s *mgmt.Session) string { return humanDuration(now.Sub(s.Started)) }},
		{"rx", true, func(s *mgmt.Session) string { return humanBytes(s.RxBytes) }},
		{"tx", true, func(s *mgmt.Session) string { return humanBytes(s.TxBytes) }},
		{"state", false, func(s *mgmt.Session) string { return s.State }},
	}
}

func tunnelColumns(now time.Time) []column[mgmt.Tunnel] {
	return []column[mgmt.Tunnel]{
		{"id", true, func(t *mgmt.Tunnel) string { return strconv.FormatUint(uint64(t.ID), 10) }},
		{"peer-id", true, func(t *mgmt.Tunnel) string { return strconv.FormatUint(uint64(t.PeerID), 10) }},
		{"role", false, func(t *mgmt.Tunnel) string { return t.Role }},
		{"peer", false, func(t *mgmt.Tunnel) string { return t.Peer }},
		{"address", false, func(t *mgmt.Tunnel) string { return addrPortString(t.PeerAddr) }},
		{"host-name", false, func(t *mgmt.Tunnel) string { return t.HostName }},
		{"sessions", true, func(t *mgmt.Tunnel) string { return strconv.Itoa(t.Sessions) }},
		{"uptime", true, func(t *mgmt.Tunnel) string { return humanDuration(now.Sub(t.Started)) }},
		{"retransmits", true, func(t *mgmt.Tunnel) string { return humanCount(t.Retransmits) }},
		{"state", false, func(t *mgmt.Tunnel) string { return t.State }},
	}
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

func addrPortString(a netip.AddrPort) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// peerString names a peer by its config name, or its address when it
// matched no [[peer]].
func peerString(name string, addr netip.AddrPort) string {
	if name != "" {
		return name
	}
	if addr.IsValid() {
		return addr.Addr().String()
	}
	return ""
}

func (c *cmd) showSessions(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("show sessions", flag.ContinueOnError)
	var f mgmt.Filter
	finish := filterFlags(fs, &f, false)
	cols := fs.String("columns", "", "columns to show")
	asJSON := fs.Bool("json", false, "JSON output")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if err := noArgs("show sessions", pos); err != nil {
		return err
	}
	if err := finish(); err != nil {
		return err
	}
	picked, err := pickColumns(sessionColumns(c.now()), *cols)
	if err != nil {
		return usagef("show sessions --columns: %v", err)
	}
	b, err := c.connect(ctx)
	if err != nil {
		return err
	}
	list, err := b.Sessions(ctx, f)
	if err != nil {
		return fmt.Errorf("show sessions: %w", err)
	}
	if *asJSON {
		if list == nil {
			list = []mgmt.Session{}
		}
		return writeJSON(c.stdout, list)
	}
	renderTable(c.stdout, picked, list)
	fmt.Fprintf(c.stdout, "%d session(s)%s\n", len(list), filterNote(f))
	return nil
}

func filterNote(f mgmt.Filter) string {
	if f.IsZero() {
		return ""
	}
	return " matching " + f.String()
}

func (c *cmd) showTunnels(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("show tunnels", flag.ContinueOnError)
	var f mgmt.Filter
	finish := filterFlags(fs, &f, true)
	cols := fs.String("columns", "", "columns to show")
	asJSON := fs.Bool("json", false, "JSON output")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if err := noArgs("show tunnels", pos); err != nil {
		return err
	}
	if err := finish(); err != nil {
		return err
	}
	picked, err := pickColumns(tunnelColumns(c.now()), *cols)
	if err != nil {
		return usagef("show tunnels --columns: %v", err)
	}
	b, err := c.connect(ctx)
	if err != nil {
		return err
	}
	list, err := b.Tunnels(ctx, f)
	if err != nil {
		return fmt.Errorf("show tunnels: %w", err)
	}
	if *asJSON {
		if list == nil {
			list = []mgmt.Tunnel{}
		}
		return writeJSON(c.stdout, list)
	}
	renderTable(c.stdout, picked, list)
	fmt.Fprintf(c.stdout, "%d tunnel(s)%s\n", len(list), filterNote(f))
	return nil
}

func jsonOnly(name string, args []string) (bool, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "JSON output")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return false, err
	}
	return *asJSON, noArgs(name, pos)
}

func (c *cmd) showStats(ctx context.Context, args []string) error {
	asJSON, err := jsonOnly("show stats", args)
	if err != nil {
		return err
	}
	b, err := c.connect(ctx)
	if err != nil {
		return err
	}
	s, err := b.Stats(ctx)
	if err != nil {
		return fmt.Errorf("show stats: %w", err)
	}
	if asJSON {
		return writeJSON(c.stdout, s)
	}
	w := c.stdout
	now := c.now()
	mode := "accepting"
	switch {
	case s.ShuttingDown:
		mode = "shutting down (soft): waiting for the last session"
	case s.Draining:
		mode = "draining: refusing new tunnels and sessions"
	}
	fmt.Fprintf(w, "l2tpd %s, up %s, config %s, data path %s, log level %s\n",
		s.Version, humanDuration(now.Sub(s.Started)), s.Config, s.DataPlane, s.LogLevel)
	if !s.Reloaded.IsZero() {
		fmt.Fprintf(w, "last reload %s ago\n", humanDuration(now.Sub(s.Reloaded)))
	}
	fmt.Fprintf(w, "admission: %s\n\n", mode)
	fmt.Fprintf(w, "tunnels   %s\n", byState(s.TunnelsByState))
	fmt.Fprintf(w, "sessions  %s\n", byState(s.SessionsByState))
	fmt.Fprintf(w, "traffic   rx %s, tx %s\n\n", humanBytes(s.RxBytes), humanBytes(s.TxBytes))
	fmt.Fprintf(w, "tunnel setups   %s%s\n", humanCount(s.TunnelSetups), failures(s.TunnelFailures))
	fmt.Fprintf(w, "session setups  %s%s\n", humanCount(s.SessionSetups), failures(s.SessionFailures))
	fmt.Fprintf(w, "held calls      %s\n", heldCalls(&s.Held))
	fmt.Fprintf(w, "PPP failures    %s\n", orNone(failures(s.PPPFailures)))
	fmt.Fprintf(w, "control retransmissions %s\n", humanCount(s.Retransmits))
	fmt.Fprintf(w, "accounting spool %d record(s)\n", s.AcctSpoolDepth)
	if len(s.RADIUS) > 0 {
		fmt.Fprintln(w)
		renderTable(w, radiusColumns, s.RADIUS)
	}
	return nil
}

var radiusColumns = []column[mgmt.RADIUSServer]{
	{"radius", false, func(r *mgmt.RADIUSServer) string { return r.Server }},
	{"kind", false, func(r *mgmt.RADIUSServer) string { return r.Kind }},
	{"requests", true, func(r *mgmt.RADIUSServer) string { return humanCount(r.Requests) }},
	{"accepts", true, func(r *mgmt.RADIUSServer) string { return humanCount(r.Accepts) }},
	{"rejects", true, func(r *mgmt.RADIUSServer) string { return humanCount(r.Rejects) }},
	{"timeouts", true, func(r *mgmt.RADIUSServer) string { return humanCount(r.Timeouts) }},
	{"avg", true, func(r *mgmt.RADIUSServer) string { return humanLatency(r.LatencyAvg) }},
	{"p99", true, func(r *mgmt.RADIUSServer) string { return humanLatency(r.LatencyP99) }},
}

func sortedKeys[V any](m map[string]V) []string {
	k := make([]string, 0, len(m))
	for n := range m {
		k = append(k, n)
	}
	slices.Sort(k)
	return k
}

// heldCalls renders the calls held for a max_starting slot.
func heldCalls(h *mgmt.HeldCalls) string {
	if h.Total == 0 {
		return "none (max_starting never reached)"
	}
	s := fmt.Sprintf("%s for a max_starting slot: admitted %s, expired %s, ended %s; longest wait %s",
		humanCount(h.Total), humanCount(h.Admitted), humanCount(h.Expired), humanCount(h.Ended), humanLatency(h.MaxWait))
	if h.OldestWait > 0 {
		s += ", oldest held now " + humanLatency(h.OldestWait)
	}
	return s
}

// byState renders counts by state, leaving out empty states.
func byState(m map[string]int) string {
	total := 0
	var parts []string
	for _, k := range sortedKeys(m) {
		if m[k] == 0 {
			continue
		}
		total += m[k]
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	if len(parts) == 0 {
		return "0"
	}
	return fmt.Sprintf("%d (%s)", total, strings.Join(parts, ", "))
}

func failures(m map[string]uint64) string {
	var total uint64
	var parts []string
	for _, k := range sortedKeys(m) {
		total += m[k]
		parts = append(parts, fmt.Sprintf("%s %s", k, humanCount(m[k])))
	}
	if len(parts) == 0 {
		return ""
	}
	return fmt.Sprintf(", failed %s: %s", humanCount(total), strings.Join(parts, ", "))
}

func orNone(s string) string {
	s = strings.TrimPrefix(s, ", failed ")
	if s == "" {
		return "none"
	}
	return s
}

var poolColumns = []column[mgmt.Pool]{
	{"pool", false, func(p *mgmt.Pool) string { return p.Name }},
	{"ranges", false, func(p *mgmt.Pool) string { return strings.Join(p.Ranges, " ") }},
	{"gateway", false, func(p *mgmt.Pool) string { return addrString(p.Gateway) }},
	{"size", true, func(p *mgmt.Pool) string { return strconv.Itoa(p.Size) }},
	{"used", true, func(p *mgmt.Pool) string { return strconv.Itoa(p.Used) }},
	{"free", true, func(p *mgmt.Pool) string { return strconv.Itoa(p.Free()) }},
	{"use%", true, func(p *mgmt.Pool) string {
		if p.Size == 0 {
			return "-"
		}
		return fmt.Sprintf("%.0f%%", 100*float64(p.Used)/float64(p.Size))
	}},
}

func (c *cmd) showPools(ctx context.Context, args []string) error {
	asJSON, err := jsonOnly("show pools", args)
	if err != nil {
		return err
	}
	b, err := c.connect(ctx)
	if err != nil {
		return err
	}
	list, err := b.Pools(ctx)
	if err != nil {
		return fmt.Errorf("show pools: %w", err)
	}
	if asJSON {
		return writeJSON(c.stdout, list)
	}
	renderTable(c.stdout, poolColumns, list)
	return nil
}

var peerColumns = []column[mgmt.Peer]{
	{"peer", false, func(p *mgmt.Peer) string { return p.Name }},
	{"role", false, func(p *mgmt.Peer) string { return p.Role }},
	{"match", false, func(p *mgmt.Peer) string { return strings.Join(p.Match, " ") }},
	{"tunnels", true, func(p *mgmt.Peer) string { return strconv.Itoa(p.Tunnels) }},
	{"sessions", true, func(p *mgmt.Peer) string { return strconv.Itoa(p.Sessions) }},
	{"flags", false, func(p *mgmt.Peer) string {
		var f []string
		if p.Refuse {
			f = append(f, "refuse")
		}
		if p.Tracing {
			f = append(f, "tracing")
		}
		return strings.Join(f, ",")
	}},
}

func (c *cmd) showPeers(ctx context.Context, args []string) error {
	asJSON, err := jsonOnly("show peers", args)
	if err != nil {
		return err
	}
	b, err := c.connect(ctx)
	if err != nil {
		return err
	}
	list, err := b.Peers(ctx)
	if err != nil {
		return fmt.Errorf("show peers: %w", err)
	}
	if asJSON {
		return writeJSON(c.stdout, list)
	}
	renderTable(c.stdout, peerColumns, list)
	return nil
}

func (c *cmd) terminate(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("terminate", flag.ContinueOnError)
	var f mgmt.Filter
	finish := filterFlags(fs, &f, false)
	hard := fs.Bool("hard", false, "drop at once, without the CDN/LCP exchange")
	tunnels := fs.Bool("tunnels", false, "terminate whole tunnels (StopCCN)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if err := finish(); err != nil {
		return err
	}
	req := mgmt.TerminateRequest{Target: mgmt.TargetSessions, Hard: *hard}
	if *tunnels {
		req.Target = mgmt.TargetTunnels
	}
	if len(pos) == 0 {
		return usagef("terminate what? session ID, user NAME, address IP, calling-number N, tunnel ID, matching --FILTERS, or all")
	}
	flagsSet := !f.IsZero()
	switch pos[0] {
	case "all":
		if flagsSet || len(pos) != 1 {
			return usagef("terminate all takes no filter; use terminate matching --FILTERS")
		}
		req.All = true
	case "matching":
		if len(pos) != 1 {
			return usagef("terminate matching: unexpected %q", strings.Join(pos[1:], " "))
		}
		if !flagsSet {
			return usagef("terminate matching needs a filter: --user, --address, --peer, --tunnel, --calling-number or --id")
		}
		req.Filter = f
	default:
		if len(pos) != 2 {
			return usagef("terminate %s needs one value", pos[0])
		}
		if flagsSet {
			return usagef("terminate %s: filters go with terminate matching", pos[0])
		}
		v := pos[1]
		switch pos[0] {
		case "session":
			req.Filter.ID = v
		case "user":
			req.Filter.User = v
		case "address":
			a, err := netip.ParseAddr(v)
			if err != nil {
				return usagef("terminate address %q: not an IP address", v)
			}
			req.Filter.Address = a
		case "calling-number":
			req.Filter.CallingNumber = v
		case "tunnel":
			n, err := strconv.ParseUint(v, 10, 32)
			if err != nil || n == 0 {
				return usagef("terminate tunnel %q: want our tunnel ID (a number, see show tunnels)", v)
			}
			req.Filter.Tunnel = uint32(n)
			req.Target = mgmt.TargetTunnels
		default:
			return usagef("terminate %q: want session, user, address, calling-number, tunnel, matching or all", pos[0])
		}
	}
	b, err := c.connect(ctx)
	if err != nil {
		return err
	}
	res, err := b.Terminate(ctx, req)
	if err != nil {
		return fmt.Errorf("terminate: %w", err)
	}
	how := "softly (CDN / LCP Terminate, accounting Stop)"
	if req.Hard {
		how = "hard (dropped, accounting Stop)"
	}
	if req.Target == mgmt.TargetTunnels {
		fmt.Fprintf(c.stdout, "terminating %d tunnel(s) with %d session(s) %s\n", res.Tunnels, res.Sessions, how)
	} else {
		fmt.Fprintf(c.stdout, "terminating %d session(s) %s\n", res.Sessions, how)
	}
	return nil
}

func (c *cmd) reload(ctx context.Context, args []string) error {
	if err := noArgs("reload", args); err != nil {
		return err
	}
	b, err := c.connect(ctx)
	if err != nil {
		return err
	}
	res, err := b.Reload(ctx)
	if err != nil {
		if mgmt.CodeOf(err) == mgmt.CodeInvalidConfig {
			return fmt.Errorf("reload refused; l2tpd keeps running the previous configuration. Fix these and reload again:\n%w", err)
		}
		return fmt.Errorf("reload: %w", err)
	}
	fmt.Fprintf(c.stdout, "reloaded %s; new tunnels and sessions use it, established ones are unchanged\n", res.Config)
	for _, ch := range res.Changes {
		fmt.Fprintf(c.stdout, "  %s\n", ch)
	}
	return nil
}

func (c *cmd) drain(ctx context.Context, on bool, args []string) error {
	name := "undrain"
	if on {
		name = "drain"
	}
	if err := noArgs(name, args); err != nil {
		return err
	}
	b, err := c.connect(ctx)
	if err != nil {
		return err
	}
	st, err := b.Drain(ctx, on)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if on {
		fmt.Fprintf(c.stdout, "draining: new tunnels and sessions are refused; %d tunnel(s) and %d session(s) continue (undo with l2tpctl undrain)\n", st.Tunnels, st.Sessions)
	} else {
		fmt.Fprintf(c.stdout, "accepting new tunnels and sessions again (%d tunnel(s), %d session(s) up)\n", st.Tunnels, st.Sessions)
	}
	return nil
}

func (c *cmd) shutdown(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("shutdown", flag.ContinueOnError)
	soft := fs.Bool("soft", false, "drain and exit when the last session has gone")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if err := noArgs("shutdown", pos); err != nil {
		return err
	}
	b, err := c.connect(ctx)
	if err != nil {
		return err
	}
	st, err := b.Shutdown(ctx, mgmt.ShutdownRequest{Soft: *soft})
	if err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if *soft {
		fmt.Fprintf(c.stdout, "soft shutdown: refusing new sessions; l2tpd exits when the last of %d session(s) has gone\n", st.Sessions)
	} else {
		fmt.Fprintf(c.stdout, "shutting down: ending %d tunnel(s) and %d session(s)\n", st.Tunnels, st.Sessions)
	}
	return nil
}

func (c *cmd) log(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usagef("log level [LEVEL] or log trace ...")
	}
	switch args[0] {
	case "level":
		if len(args) > 2 {
			return usagef("log level takes one level")
		}
		var req mgmt.LogLevelRequest
		if len(args) == 2 {
			req.Level = strings.ToLower(args[1])
			if !slices.Contains(mgmt.LogLevels, req.Level) {
				return usagef("log level %q: want one of %s", args[1], strings.Join(mgmt.LogLevels, ", "))
			}
		}
		b, err := c.connect(ctx)
		if err != nil {
			return err
		}
		res, err := b.LogLevel(ctx, req)
		if err != nil {
			return fmt.Errorf("log level: %w", err)
		}
		if req.Level == "" || res.Previous == res.Level {
			fmt.Fprintf(c.stdout, "log level %s\n", res.Level)
		} else {
			fmt.Fprintf(c.stdout, "log level %s (was %s)\n", res.Level, res.Previous)
		}
		return nil
	case "trace":
		return c.trace(ctx, args[1:])
	}
	return usagef("log %q: want level or trace", args[0])
}

func (c *cmd) trace(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("log trace", flag.ContinueOnError)
	off := fs.Bool("off", false, "stop tracing")
	dur := fs.Duration("for", 0, "stop tracing after this long")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	var req mgmt.TraceRequest
	switch {
	case len(pos) == 0:
		if *off || *dur != 0 {
			return usagef("log trace: name a user or a peer")
		}
	case len(pos) == 2 && pos[0] == "user":
		req.User = pos[1]
	case len(pos) == 2 && pos[0] == "peer":
		req.Peer = pos[1]
	default:
		return usagef("log trace: want user NAME or peer NAME|IP")
	}
	req.Off, req.For = *off, *dur
	if err := req.Validate(); err != nil {
		return usagef("%v", err)
	}
	b, err := c.connect(ctx)
	if err != nil {
		return err
	}
	list, err := b.Trace(ctx, req)
	if err != nil {
		return fmt.Errorf("log trace: %w", err)
	}
	if len(list) == 0 {
		fmt.Fprintln(c.stdout, "no debug traces active")
		return nil
	}
	now := c.now()
	renderTable(c.stdout, []column[mgmt.Trace]{
		{"trace", false, func(t *mgmt.Trace) string {
			if t.User != "" {
				return "user " + t.User
			}
			return "peer " + t.Peer
		}},
		{"expires", false, func(t *mgmt.Trace) string {
			if t.Expires.IsZero() {
				return "when turned off"
			}
			return "in " + humanDuration(t.Expires.Sub(now))
		}},
	}, list)
	return nil
}
