package config

import (
	"errors"
	"fmt"
	"net/netip"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/l2tpd/l2tpd/auth"
)

// Defaults. Every key has one; docs/configuration.md lists them.
const (
	DefaultHostName = "l2tpd"
	DefaultIfName   = "ppp%d"
	// MaxThreads bounds threads (GOMAXPROCS).
	MaxThreads = 1024
	// MinRTimeoutCap is RFC 2661 5.8's floor for the retransmission
	// timeout ceiling.
	MinRTimeoutCap = 8 * time.Second
	// maxIfNameLen is IFNAMSIZ-1; patterns must leave room for 6 digits.
	maxIfNameLen = 15
	ifNameDigits = 6
)

// DefaultL2TP returns the [l2tp] defaults.
func DefaultL2TP() L2TP {
	return L2TP{
		HostName:        DefaultHostName,
		HelloInterval:   60 * time.Second,
		RTimeout:        time.Second,
		RTimeoutCap:     16 * time.Second,
		Retransmit:      5,
		RecvWindow:      16,
		Challenge:       ChallengeOptional,
		DataSeq:         PolicyAllow,
		PPPMaxMTU:       1420,
		MaxTunnels:      1000,
		MaxSessions:     50000,
		MaxStarting:     1000,
		MaxStartingWait: 30 * time.Second,
	}
}

// DefaultPPP returns the [ppp] defaults.
func DefaultPPP() PPP {
	return PPP{
		MRU:             1400,
		MTU:             1400,
		Auth:            []AuthMethod{auth.MethodMSCHAPv2, auth.MethodCHAPMD5, auth.MethodPAP},
		LCPEchoInterval: 30 * time.Second,
		LCPEchoFailure:  4,
		RestartTimer:    3 * time.Second,
		MaxConfigure:    10,
		MaxFailure:      5,
		MaxTerminate:    2,
		IPv4:            PolicyRequire,
		IPv6:            PolicyAllow,
		IfName:          DefaultIfName,
		Authenticator:   AuthenticatorLocal,
	}
}

// Key sets, for unknown-key detection and suggestions.
var (
	topKeys  = []string{"log_level", "log_format", "dataplane", "threads", "host_name", "l2tp", "ppp", "peer", "pool", "subscriber", "lac", "radius", "api", "metrics"}
	l2tpKeys = []string{"hello_interval", "rtimeout", "rtimeout_cap", "retransmit", "recv_window", "hide_avps",
		"secret", "secret_file", "challenge", "dataseq", "reorder_timeout", "ppp_max_mtu",
		"max_tunnels", "max_sessions", "max_sessions_per_tunnel", "max_starting", "max_starting_wait"}
	l2tpTableKeys = append([]string{"listen", "accept_unknown_peers"}, l2tpKeys...)
	peerKeys      = append([]string{"name", "match_address", "match_host_name", "refuse", "host_name", "ppp", "ip_pool"}, l2tpKeys...)
	lacKeys       = append([]string{"name", "lns", "local", "host_name", "ppp", "redial", "redial_min", "redial_max",
		"sessions", "username", "password", "password_file", "auth"}, l2tpKeys...)
	pppKeys = []string{"mru", "mtu", "auth", "lcp_echo_interval", "lcp_echo_failure", "restart_timer",
		"max_configure", "max_failure", "max_terminate", "ipv4", "ipv6", "dns1", "dns2", "nbns1", "nbns2",
		"ip_pool", "ifname", "authenticator", "single_session"}
	pppTableKeys  = append([]string{"profile"}, pppKeys...)
	poolKeys      = []string{"name", "ranges", "gateway"}
	subscriberKey = []string{"name", "password", "password_file", "address", "pool", "disabled"}

	reserved = "is reserved for a later version of l2tpd and cannot be configured yet"
	topHints = map[string]string{
		"l2tpv3": "[l2tpv3] " + reserved,
		"listen": "listen belongs in [l2tp]",
	}
	l2tpHints = map[string]string{
		"host_name": "host_name is set at the top level (or per [[peer]] / [[lac]]), not in [l2tp]",
	}
	peerHints = map[string]string{
		"listen":               "listen can only be set in [l2tp]",
		"accept_unknown_peers": "accept_unknown_peers can only be set in [l2tp]",
		"lac":                  "a [[peer]] matches LACs with match_address and match_host_name",
	}
	lacHints = map[string]string{
		"listen": "listen can only be set in [l2tp]",
	}
)

func parse(data []byte, filename string, readFile func(string) ([]byte, error)) (*Config, error) {
	var raw map[string]any
	if _, err := toml.Decode(string(data), &raw); err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, joinErrors([]*Error{{File: filename, Line: pe.Position.Line, Msg: "TOML syntax: " + pe.Message, err: err}})
		}
		return nil, joinErrors([]*Error{{File: filename, Msg: err.Error(), err: err}})
	}
	r := &reader{file: filename, loc: locate(data), readFile: readFile}
	c := r.config(r.table("", raw))
	if err := joinErrors(r.errs); err != nil {
		return nil, err
	}
	return c, nil
}

func (r *reader) config(root *table) *Config {
	c := &Config{
		File:               r.file,
		LogLevel:           LogInfo,
		DataPlane:          DataPlaneAuto,
		HostName:           DefaultHostName,
		Listen:             []netip.AddrPort{netip.MustParseAddrPort("0.0.0.0:1701"), netip.MustParseAddrPort("[::]:1701")},
		AcceptUnknownPeers: true,
		L2TP:               DefaultL2TP(),
		PPP:                DefaultPPP(),
		Profiles:           map[string]*PPP{},
	}
	enumField(root, "log_level", &c.LogLevel, logLevelNames)
	enumField(root, "log_format", &c.LogFormat, logFormatNames)
	enumField(root, "dataplane", &c.DataPlane, dataPlaneNames)
	root.integer("threads", &c.Threads, 0, MaxThreads)
	r.hostName(root, &c.HostName)
	c.L2TP.HostName = c.HostName
	c.RADIUS = DefaultRADIUS()
	c.RADIUS.NASIdentifier = c.HostName
	if t := root.sub("radius"); t != nil {
		r.radius(t, c)
	}

	l2tpT := root.sub("l2tp")
	if l2tpT != nil {
		r.listen(l2tpT, c)
		l2tpT.boolean("accept_unknown_peers", &c.AcceptUnknownPeers)
		r.l2tp(l2tpT, &c.L2TP)
		if c.AcceptUnknownPeers {
			r.checkL2TP(l2tpT, &c.L2TP, "[l2tp] (used for unknown peers, accept_unknown_peers = true)")
		}
		l2tpT.finish(l2tpTableKeys, l2tpHints)
	}

	for _, t := range root.tables("pool") {
		c.Pools = append(c.Pools, r.pool(t))
	}
	r.checkPools(c)

	pppT := root.sub("ppp")
	var profileTs []*table
	var profileNames []string
	if pppT != nil {
		r.ppp(pppT, &c.PPP, c)
		if prof := pppT.sub("profile"); prof != nil {
			names := make([]string, 0, len(prof.m))
			for n := range prof.m {
				names = append(names, n)
			}
			slices.Sort(names)
			for _, n := range names {
				if t := prof.sub(n); t != nil {
					profileTs = append(profileTs, t)
					profileNames = append(profileNames, n)
				}
			}
		}
		pppT.finish(pppTableKeys, nil)
	}
	if c.PPP.IPPool == "" && len(c.Pools) > 0 {
		c.PPP.IPPool = c.Pools[0].Name
	}
	for i, t := range profileTs {
		name := profileNames[i]
		p := c.PPP
		p.Auth = slices.Clone(p.Auth)
		p.Name = name
		if !isBare(name) {
			r.errf(t.path, "profile name %s: use only letters, digits, _ and -", tomlString(name))
		}
		r.ppp(t, &p, c)
		t.finish(pppKeys, map[string]string{"profile": "profiles cannot be nested"})
		c.Profiles[name] = &p
	}

	seen := map[string]string{}
	for _, t := range root.tables("peer") {
		p := r.peer(t, c)
		r.uniqueName(t, "peer", p.Name, seen)
		c.Peers = append(c.Peers, p)
	}
	c.unknownPeer = Peer{L2TP: c.L2TP, IPPool: c.PPP.IPPool}

	seen = map[string]string{}
	for _, t := range root.tables("subscriber") {
		s := r.subscriber(t, c)
		r.uniqueName(t, "subscriber", s.Name, seen)
		c.Subscribers = append(c.Subscribers, s)
	}
	r.checkSubscribers(c)

	seen = map[string]string{}
	for _, t := range root.tables("lac") {
		l := r.lac(t, c)
		r.uniqueName(t, "lac", l.Name, seen)
		c.LACs = append(c.LACs, l)
	}

	r.mgmt(root, c)
	root.finish(topKeys, topHints)
	return c
}

func (r *reader) hostName(t *table, dst *string) {
	var s string
	if !t.str("host_name", &s) {
		return
	}
	switch {
	case s == "":
		t.errf("host_name", "the host name is empty")
	case len(s) > 255:
		t.errf("host_name", "the host name is %d bytes long; at most 255", len(s))
	case strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		t.errf("host_name", "the host name contains control characters")
	default:
		*dst = s
	}
}

func (r *reader) listen(t *table, c *Config) {
	list, ok := t.list("listen")
	if !ok {
		return
	}
	c.Listen = c.Listen[:0:0]
	for i, s := range list {
		ap, err := parseListen(s)
		if err != nil {
			r.errf(indexPath(t.key("listen"), i), "%s: %v", tomlString(s), err)
			continue
		}
		if slices.Contains(c.Listen, ap) {
			r.errf(indexPath(t.key("listen"), i), "%s is listed twice", tomlString(s))
			continue
		}
		c.Listen = append(c.Listen, ap)
	}
}

// l2tp applies the tunnel keys of t to dst.
func (r *reader) l2tp(t *table, dst *L2TP) {
	t.duration("hello_interval", &dst.HelloInterval, 0, 24*time.Hour)
	t.duration("rtimeout", &dst.RTimeout, 10*time.Millisecond, time.Minute)
	t.duration("rtimeout_cap", &dst.RTimeoutCap, MinRTimeoutCap, 10*time.Minute)
	t.integer("retransmit", &dst.Retransmit, 1, 100)
	t.integer("recv_window", &dst.RecvWindow, 1, 65535)
	t.boolean("hide_avps", &dst.HideAVPs)
	t.secret("secret", "secret_file", &dst.Secret)
	enumField(t, "challenge", &dst.Challenge, challengeNames)
	enumField(t, "dataseq", &dst.DataSeq, policyNames)
	t.duration("reorder_timeout", &dst.ReorderTimeout, 0, 10*time.Second)
	t.integer("ppp_max_mtu", &dst.PPPMaxMTU, 128, 65535)
	t.integer("max_tunnels", &dst.MaxTunnels, 0, 65535)
	t.integer("max_sessions", &dst.MaxSessions, 0, 10_000_000)
	t.integer("max_sessions_per_tunnel", &dst.MaxSessionsPerTunnel, 0, 65535)
	t.integer("max_starting", &dst.MaxStarting, 0, 1_000_000)
	t.duration("max_starting_wait", &dst.MaxStartingWait, 0, 10*time.Minute)
}

// checkL2TP checks the combination of resolved tunnel settings, blaming the
// key of t that was set, or t itself when everything was inherited.
func (r *reader) checkL2TP(t *table, l *L2TP, what string) {
	blame := func(keys ...string) string {
		for _, k := range keys {
			if t.has(k) {
				return t.key(k)
			}
		}
		return t.path
	}
	if l.RTimeoutCap < l.RTimeout {
		r.errf(blame("rtimeout_cap", "rtimeout"), "rtimeout_cap (%s) is below rtimeout (%s) in %s",
			formatDuration(l.RTimeoutCap), formatDuration(l.RTimeout), what)
	}
	if len(l.Secret) == 0 {
		if l.Challenge == ChallengeRequire {
			r.errf(blame("challenge", "secret", "secret_file"), "challenge = \"require\" needs a secret (secret or secret_file) in %s", what)
		}
		if l.HideAVPs {
			r.errf(blame("hide_avps", "secret", "secret_file"), "hide_avps = true needs a secret (secret or secret_file) in %s", what)
		}
	}
}

func (r *reader) pool(t *table) Pool {
	var p Pool
	if !t.str("name", &p.Name) {
		t.r.errf(t.path, "a [[pool]] needs a name")
	}
	if list, ok := t.list("ranges"); ok {
		if len(list) == 0 {
			t.errf("ranges", "the list is empty; give CIDR prefixes or a-b ranges of IPv4 addresses")
		}
		for i, s := range list {
			k := indexPath(t.key("ranges"), i)
			rg, err := parseRange(s)
			if err != nil {
				r.errf(k, "%s: %v", tomlString(s), err)
				continue
			}
			if !rg.From.Is4() {
				r.errf(k, "%s: pools hold IPv4 addresses only", tomlString(s))
				continue
			}
			p.Ranges = append(p.Ranges, rg)
		}
	} else if !t.has("ranges") {
		t.r.errf(t.path, "pool %s needs ranges", tomlString(p.Name))
	}
	if !t.has("gateway") {
		t.r.errf(t.path, "pool %s needs a gateway (our IPv4 address on subscriber links)", tomlString(p.Name))
	} else if t.addr("gateway", &p.Gateway, true) && !p.Gateway.IsValid() {
		t.errf("gateway", "the gateway is empty; give our IPv4 address on subscriber links")
	}
	t.finish(poolKeys, nil)
	return p
}

// checkPools: unique names, no overlap between any two ranges, no gateway
// inside another pool (unless that pool has the same gateway, which it
// excludes).
func (r *reader) checkPools(c *Config) {
	type owned struct {
		rg   AddrRange
		pool int
		idx  int
	}
	var all []owned
	seen := map[string]string{}
	for i, p := range c.Pools {
		pt := indexPath("pool", i)
		if p.Name != "" {
			if prev, dup := seen[p.Name]; dup {
				r.errf(joinPath(pt, "name"), "pool %s is already defined at %s", tomlString(p.Name), prev)
			} else {
				seen[p.Name] = pt
			}
		}
		for j, rg := range p.Ranges {
			all = append(all, owned{rg, i, j})
		}
	}
	for a := range all {
		for b := a + 1; b < len(all); b++ {
			if all[a].rg.Overlaps(all[b].rg) {
				x, y := all[a], all[b]
				r.errf(indexPath(joinPath(indexPath("pool", y.pool), "ranges"), y.idx),
					"%s overlaps %s of pool %s", y.rg, x.rg, tomlString(c.Pools[x.pool].Name))
			}
		}
	}
	for i, p := range c.Pools {
		if !p.Gateway.IsValid() {
			continue
		}
		for j, q := range c.Pools {
			if i == j || q.Gateway == p.Gateway {
				continue // a pool never hands out its own gateway
			}
			for _, rg := range q.Ranges {
				if rg.Contains(p.Gateway) {
					r.errf(joinPath(indexPath("pool", i), "gateway"),
						"gateway %s lies in pool %s (%s), which would hand it to a subscriber", p.Gateway, tomlString(q.Name), rg)
				}
			}
		}
	}
}

// ppp applies the PPP keys of t to dst.
func (r *reader) ppp(t *table, dst *PPP, c *Config) {
	t.integer("mru", &dst.MRU, 128, 65535)
	t.integer("mtu", &dst.MTU, 128, 65535)
	t.authList("auth", &dst.Auth)
	t.duration("lcp_echo_interval", &dst.LCPEchoInterval, 0, time.Hour)
	t.integer("lcp_echo_failure", &dst.LCPEchoFailure, 1, 1000)
	t.duration("restart_timer", &dst.RestartTimer, 100*time.Millisecond, time.Minute)
	t.integer("max_configure", &dst.MaxConfigure, 1, 255)
	t.integer("max_failure", &dst.MaxFailure, 1, 255)
	t.integer("max_terminate", &dst.MaxTerminate, 1, 255)
	enumField(t, "ipv4", &dst.IPv4, policyNames)
	enumField(t, "ipv6", &dst.IPv6, policyNames)
	if dst.IPv4 == PolicyDeny && dst.IPv6 == PolicyDeny && (t.has("ipv4") || t.has("ipv6")) {
		k := "ipv6"
		if !t.has(k) {
			k = "ipv4"
		}
		t.errf(k, "ipv4 and ipv6 are both \"deny\": no network protocol could open")
	}
	t.addr("dns1", &dst.DNS[0], true)
	t.addr("dns2", &dst.DNS[1], true)
	t.addr("nbns1", &dst.NBNS[0], true)
	t.addr("nbns2", &dst.NBNS[1], true)
	r.poolRef(t, "ip_pool", &dst.IPPool, c)
	var ifname string
	if t.str("ifname", &ifname) {
		if err := checkIfName(ifname); err != nil {
			t.errf("ifname", "%s: %v", tomlString(ifname), err)
		} else {
			dst.IfName = ifname
		}
	}
	if enumField(t, "authenticator", &dst.Authenticator, authenticatorNames) && dst.Authenticator == AuthenticatorRADIUS &&
		!c.RADIUS.hasAuthServer() {
		t.errf("authenticator", "\"radius\" needs a [[radius.server]] with auth_port set")
	}
	enumField(t, "single_session", &dst.SingleSession, singleSessionNames)
}

func checkIfName(s string) error {
	if s == "" {
		return nil
	}
	if strings.Count(s, "%d") != 1 || strings.Count(s, "%") != 1 {
		return errors.New(`want exactly one "%d" (replaced by a number), like "ppp%d"`)
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("%_.-", c)) {
			return fmt.Errorf("%q is not allowed in interface names; use letters, digits, _ . -", c)
		}
	}
	if n := len(s) - 2 + ifNameDigits; n > maxIfNameLen {
		return fmt.Errorf("too long: with %d digits it has %d characters, the kernel allows %d", ifNameDigits, n, maxIfNameLen)
	}
	return nil
}

func (r *reader) poolRef(t *table, k string, dst *string, c *Config) {
	var s string
	if !t.str(k, &s) {
		return
	}
	if s != "" && c.Pool(s) == nil {
		t.errf(k, "no [[pool]] is named %s%s", tomlString(s), nameHint(s, poolNames(c)))
		return
	}
	*dst = s
}

func poolNames(c *Config) []string {
	var n []string
	for _, p := range c.Pools {
		n = append(n, p.Name)
	}
	return n
}

func nameHint(s string, names []string) string {
	if len(names) == 0 {
		return " (none is defined)"
	}
	if best, ok := suggest(s, names); ok {
		return fmt.Sprintf("; did you mean %s?", tomlString(best))
	}
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = tomlString(n)
	}
	return "; defined: " + strings.Join(q, ", ")
}

func (r *reader) profileRef(t *table, k string, dst *string, c *Config) {
	var s string
	if !t.str(k, &s) {
		return
	}
	if s != "" && c.Profiles[s] == nil {
		var names []string
		for n := range c.Profiles {
			names = append(names, n)
		}
		slices.Sort(names)
		t.errf(k, "no [ppp.profile.%s] is defined%s", s, nameHint(s, names))
		return
	}
	*dst = s
}

func (r *reader) uniqueName(t *table, kind, name string, seen map[string]string) {
	if name == "" {
		return
	}
	if prev, dup := seen[name]; dup {
		t.errf("name", "%s %s is already defined at %s", kind, tomlString(name), prev)
		return
	}
	seen[name] = t.path
}

func (r *reader) peer(t *table, c *Config) Peer {
	p := Peer{L2TP: c.L2TP}
	if !t.str("name", &p.Name) || p.Name == "" {
		t.r.errf(t.path, "a [[peer]] needs a name")
	}
	if list, ok := t.list("match_address"); ok {
		for i, s := range list {
			rg, err := parseRange(s)
			if err != nil {
				r.errf(indexPath(t.key("match_address"), i), "%s: %v", tomlString(s), err)
				continue
			}
			p.MatchAddress = append(p.MatchAddress, rg)
		}
	}
	if list, ok := t.list("match_host_name"); ok {
		for i, s := range list {
			g := strings.ToLower(s)
			if _, err := path.Match(g, ""); err != nil || s == "" {
				r.errf(indexPath(t.key("match_host_name"), i), "%s is not a valid glob (* ? [a-z])", tomlString(s))
				continue
			}
			p.MatchHostName = append(p.MatchHostName, g)
		}
	}
	t.boolean("refuse", &p.Refuse)
	r.hostName(t, &p.HostName)
	r.l2tp(t, &p.L2TP)
	if !p.Refuse {
		r.checkL2TP(t, &p.L2TP, "peer "+tomlString(p.Name))
	}
	r.profileRef(t, "ppp", &p.PPPProfile, c)
	p.IPPool = c.PPPProfile(p.PPPProfile).IPPool
	r.poolRef(t, "ip_pool", &p.IPPool, c)
	t.finish(peerKeys, peerHints)
	return p
}

func (r *reader) subscriber(t *table, c *Config) Subscriber {
	var s Subscriber
	if !t.str("name", &s.Name) || s.Name == "" {
		t.r.errf(t.path, "a [[subscriber]] needs a name (the PPP user name)")
	}
	if t.secret("password", "password_file", &s.Password) {
		if len(s.Password) == 0 {
			t.errf("password", "the password is empty")
		}
	} else if !t.has("password") && !t.has("password_file") {
		t.r.errf(t.path, "subscriber %s needs a password or password_file", tomlString(s.Name))
	}
	t.addr("address", &s.Address, true)
	r.poolRef(t, "pool", &s.Pool, c)
	if s.Address.IsValid() && s.Pool != "" {
		t.errf("pool", "subscriber %s has a fixed address; set address or pool, not both", tomlString(s.Name))
	}
	t.boolean("disabled", &s.Disabled)
	t.finish(subscriberKey, nil)
	return s
}

// checkSubscribers: fixed addresses are unique, outside every pool and
// not a gateway.
func (r *reader) checkSubscribers(c *Config) {
	seen := map[netip.Addr]string{}
	for i, s := range c.Subscribers {
		if !s.Address.IsValid() {
			continue
		}
		k := joinPath(indexPath("subscriber", i), "address")
		if prev, dup := seen[s.Address]; dup {
			r.errf(k, "%s is already the fixed address of subscriber %s", s.Address, prev)
			continue
		}
		seen[s.Address] = tomlString(s.Name)
		for _, p := range c.Pools {
			if p.Gateway == s.Address {
				r.errf(k, "%s is the gateway of pool %s", s.Address, tomlString(p.Name))
			}
			for _, rg := range p.Ranges {
				if rg.Contains(s.Address) {
					r.errf(k, "%s lies in pool %s (%s); fixed addresses must be outside every pool", s.Address, tomlString(p.Name), rg)
				}
			}
		}
	}
}

func (r *reader) lac(t *table, c *Config) LAC {
	l := LAC{L2TP: c.L2TP, Redial: true, RedialMin: time.Second, RedialMax: time.Minute, Sessions: 1,
		Auth: slices.Clone(DefaultPPP().Auth)}
	if !t.str("name", &l.Name) || l.Name == "" {
		t.r.errf(t.path, "a [[lac]] needs a name")
	}
	var lns string
	if t.str("lns", &lns) {
		hp, err := parseHostPort(lns)
		if err != nil {
			t.errf("lns", "%s: %v; want \"host:port\" or \"host\" (port %d)", tomlString(lns), err, DefaultPort)
		} else {
			l.LNS = hp
		}
	} else if !t.has("lns") {
		t.r.errf(t.path, "lac %s needs lns (the LNS address, \"host:port\")", tomlString(l.Name))
	}
	t.addr("local", &l.Local, false)
	r.hostName(t, &l.HostName)
	r.l2tp(t, &l.L2TP)
	r.checkL2TP(t, &l.L2TP, "lac "+tomlString(l.Name))
	r.profileRef(t, "ppp", &l.PPPProfile, c)
	t.boolean("redial", &l.Redial)
	t.duration("redial_min", &l.RedialMin, 10*time.Millisecond, 24*time.Hour)
	t.duration("redial_max", &l.RedialMax, 10*time.Millisecond, 24*time.Hour)
	if l.RedialMax < l.RedialMin {
		k := "redial_max"
		if !t.has(k) {
			k = "redial_min"
		}
		t.errf(k, "redial_max (%s) is below redial_min (%s)", formatDuration(l.RedialMax), formatDuration(l.RedialMin))
	}
	t.integer("sessions", &l.Sessions, 0, 65535)
	t.str("username", &l.Username)
	t.secret("password", "password_file", &l.Password)
	t.authList("auth", &l.Auth)
	if l.Sessions > 0 && l.Username == "" {
		k := "username"
		if !t.has(k) {
			k = "sessions"
		}
		if !t.has(k) {
			t.r.errf(t.path, "lac %s places %d session(s) and needs a username", tomlString(l.Name), l.Sessions)
		} else {
			t.errf(k, "lac %s places %d session(s) and needs a username", tomlString(l.Name), l.Sessions)
		}
	}
	t.finish(lacKeys, lacHints)
	return l
}
