package migrate

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// AccelPPPOptions are the optional inputs of an accel-ppp import.
type AccelPPPOptions struct {
	// ReadFile reads files the configuration names ([chap-secrets]
	// chap-secrets). nil: they are not read, and a comment says so.
	ReadFile func(string) ([]byte, error)
}

// accelLine is one line of an accel-ppp.conf section: "key=value" or a
// bare word ([modules], [ip-pool] ranges).
type accelLine struct {
	key, val string
	bare     bool
	from     string
}

type accelSection struct {
	name  string
	from  string
	lines []accelLine
}

// parseAccel splits accel-ppp.conf into sections. Comments are lines
// starting with '#'.
func parseAccel(src Source) ([]*accelSection, []string) {
	var secs []*accelSection
	var bad []string
	var cur *accelSection
	for n, raw := range lines(src.Data) {
		from := at(src.Name, n+1)
		line := strings.TrimSpace(raw)
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if line[0] == '[' {
			if !strings.HasSuffix(line, "]") {
				bad = append(bad, from+": unterminated section header; ignored")
				cur = nil
				continue
			}
			cur = &accelSection{name: strings.ToLower(strings.TrimSpace(line[1 : len(line)-1])), from: from}
			secs = append(secs, cur)
			continue
		}
		if cur == nil {
			bad = append(bad, fmt.Sprintf("%s: %q is outside any section; ignored", from, line))
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || cur.name == "modules" || cur.name == "ip-pool" && !isAccelPoolKey(k) || cur.name == "client-ip-range" {
			cur.lines = append(cur.lines, accelLine{key: line, bare: true, from: from})
			continue
		}
		cur.lines = append(cur.lines, accelLine{key: strings.ToLower(strings.TrimSpace(k)), val: strings.TrimSpace(v), from: from})
	}
	return secs, bad
}

func isAccelPoolKey(k string) bool {
	switch strings.TrimSpace(k) {
	case "gw-ip-address", "gw", "attr", "vendor", "shuffle", "tunnel":
		return true
	}
	return false
}

// accelAuth maps accel-ppp's auth modules to l2tpd methods.
var accelAuth = map[string]string{"auth_mschap_v2": "mschapv2", "auth_chap_md5": "chap", "auth_pap": "pap"}

// AccelPPP converts an accel-ppp configuration (its L2TP and PPP parts).
func AccelPPP(conf Source, o AccelPPPOptions) (string, error) {
	if len(conf.Data) > MaxInput {
		return "", fmt.Errorf("%s: %d bytes is too large for a configuration file", conf.Name, len(conf.Data))
	}
	d := newDoc("accel-ppp")
	d.inputs = append(d.inputs, conf.Name)
	secs, bad := parseAccel(conf)
	d.notes = append(d.notes, bad...)

	var auth []string
	hasL2TP, hasRadius, hasChapSecrets := false, false, false
	var radius []string
	var chapFile, chapFrom string
	gw := map[string]netip.Addr{} // pool name ("" default) -> gateway
	var globalGW netip.Addr
	type pool struct {
		name   string
		ranges []string
		from   string
	}
	var pools []*pool
	poolByName := map[string]*pool{}

	for _, s := range secs {
		for _, l := range s.lines {
			switch s.name {
			case "modules":
				m := strings.TrimSpace(l.key)
				switch {
				case m == "l2tp":
					hasL2TP = true
				case accelAuth[m] != "":
					auth = append(auth, accelAuth[m])
				case m == "auth_mschap_v1":
					d.notef(l.from, "auth_mschap_v1: MS-CHAPv1 is not supported; subscribers use MS-CHAPv2, CHAP or PAP")
				case m == "radius":
					hasRadius = true
				case m == "chap-secrets":
					hasChapSecrets = true
				case m == "ippool", m == "log_file", m == "log_syslog", m == "sigchld", m == "pppd_compat", m == "log_tcp":
				case m == "pptp" || m == "pppoe" || m == "ipoe" || m == "sstp":
					d.notef(l.from, "module %s: l2tpd serves L2TP only", m)
				case m == "shaper":
					d.notef(l.from, "module shaper: rate limits are not supported yet")
				case m == "connlimit":
					d.notef(l.from, "module connlimit: use max_starting in [l2tp]")
				default:
					d.notef(l.from, "module %s has no l2tpd equivalent", m)
				}
			case "l2tp":
				d.accelL2TP(l)
			case "ppp", "lcp":
				d.accelPPP(l)
			case "common":
				switch l.key {
				case "single-session":
					if l.val == "deny" || l.val == "replace" {
						d.ppp.str("single_session", l.val, l.from)
					} else {
						d.notef(l.from, "single-session=%s: want deny or replace", l.val)
					}
				case "max-sessions":
					if v, ok := intIn(l.val, 0, 10_000_000); ok {
						d.l2tp.num("max_sessions", v, l.from)
					}
				case "max-starting":
					if v, ok := intIn(l.val, 0, 1_000_000); ok {
						d.l2tp.num("max_starting", v, l.from)
					}
				default:
					d.notef(l.from, "[common] %s=%s has no l2tpd equivalent", l.key, l.val)
				}
			case "dns", "wins":
				a, err := netip.ParseAddr(l.val)
				key := map[string]string{"dns1": "dns1", "dns2": "dns2", "wins1": "nbns1", "wins2": "nbns2"}[l.key]
				if key == "" || err != nil {
					d.notef(l.from, "[%s] %s=%s: not carried over", s.name, l.key, l.val)
					continue
				}
				d.ppp.str(key, a.String(), l.from)
			case "ip-pool":
				if !l.bare {
					switch l.key {
					case "gw-ip-address", "gw":
						if a, err := netip.ParseAddr(l.val); err == nil && a.Is4() {
							globalGW = a
						} else {
							d.notef(l.from, "gw-ip-address %q is not an IPv4 address", l.val)
						}
					case "attr", "vendor":
						d.notef(l.from, "%s=%s: the RADIUS attribute naming the pool is set in l2tpd's [radius] section", l.key, l.val)
					default:
						d.notef(l.from, "[ip-pool] %s=%s has no l2tpd equivalent", l.key, l.val)
					}
					continue
				}
				parts := strings.Split(l.key, ",")
				r, _, ok := ipRange(parts[0])
				if !ok {
					d.notef(l.from, "pool range %q: not an IPv4 range", parts[0])
					continue
				}
				name := "default"
				for _, opt := range parts[1:] {
					k, v, _ := strings.Cut(strings.TrimSpace(opt), "=")
					switch k {
					case "name":
						name = sanitizeName(v)
					case "next":
						d.notef(l.from, "next=%s: pool chaining is not supported; a full pool refuses the session", v)
					case "gw":
						if a, err := netip.ParseAddr(v); err == nil && a.Is4() {
							gw[name] = a
						}
					default:
						d.notef(l.from, "pool option %s has no l2tpd equivalent", opt)
					}
				}
				p := poolByName[name]
				if p == nil {
					p = &pool{name: name, from: l.from}
					poolByName[name] = p
					pools = append(pools, p)
				}
				p.ranges = append(p.ranges, r)
			case "client-ip-range":
				d.notef(l.from, "[client-ip-range] %s: l2tpd does not restrict client source addresses; use [[peer]] match_address for LACs", l.key)
			case "radius":
				hasRadius = true
				radius = append(radius, fmt.Sprintf("%s = %s   # %s", strings.ReplaceAll(l.key, "-", "_"), l.val, l.from))
			case "chap-secrets":
				switch l.key {
				case "chap-secrets":
					chapFile, chapFrom = l.val, l.from
				case "gw-ip-address":
					if a, err := netip.ParseAddr(l.val); err == nil && a.Is4() && !globalGW.IsValid() {
						globalGW = a
					}
				default:
					d.notef(l.from, "[chap-secrets] %s has no l2tpd equivalent", l.key)
				}
			case "log":
				if l.key == "level" {
					lv := map[string]string{"0": "error", "1": "error", "2": "warn", "3": "info", "4": "debug", "5": "debug"}[l.val]
					if lv != "" {
						d.top.str("log_level", lv, l.from)
					}
					continue
				}
				d.notef(l.from, "[log] %s: l2tpd logs to stderr (journald); per-user debugging with `l2tpctl log trace`", l.key)
			case "cli":
				d.notef(l.from, "[cli] %s=%s: use l2tpctl over the management socket ([api])", l.key, l.val)
			case "core":
				d.notef(l.from, "[core] %s=%s: not needed", l.key, l.val)
			default:
				d.notef(l.from, "[%s] %s: not carried over", s.name, l.key)
			}
		}
	}
	if !hasL2TP {
		d.notef("", "the l2tp module is not loaded in [modules]; converted anyway")
	}
	auth = authOrder(auth)
	if len(auth) > 0 {
		d.ppp.list("auth", auth, "[modules] auth_*")
	}
	for _, p := range pools {
		s := &section{header: "[[pool]]"}
		s.str("name", p.name, p.from)
		s.list("ranges", p.ranges, "")
		g, ok := gw[p.name]
		if !ok {
			g = globalGW
		}
		if g.IsValid() {
			s.str("gateway", g.String(), "gw-ip-address")
		} else {
			_, first, _ := ipRange(p.ranges[0])
			s.str("gateway", first.String(), "CHECK: no gw-ip-address; the first address is used and not handed out")
			d.notef(p.from, "pool %s has no gw-ip-address: its gateway is set to %s; check it", p.name, first)
		}
		d.pools = append(d.pools, s)
	}
	if len(pools) > 0 && !d.ppp.has("ip_pool") {
		d.ppp.str("ip_pool", pools[0].name, "")
	}
	if hasRadius {
		d.notef("", "RADIUS: l2tpd's [radius] section takes the same words (server, nas-identifier, acct-interim-interval...); the accel-ppp lines are copied, commented out, at the end: move them by hand and set authenticator = \"radius\" in [ppp]")
		d.trailing = append(d.trailing, "[radius] (from accel-ppp; see docs/configuration.md)")
		d.trailing = append(d.trailing, radius...)
	}
	if hasChapSecrets || chapFile != "" {
		if chapFile == "" {
			chapFile = "/etc/ppp/chap-secrets"
		}
		if data, ok := d.readNamed(o.ReadFile, chapFile, chapFrom, "chap-secrets"); ok {
			d.applySecrets(Source{Name: chapFile, Data: data}, "")
		}
	}
	return d.finish()
}

func (d *doc) accelL2TP(l accelLine) {
	dur := func(key string, conv func(string) (string, bool)) {
		if v, ok := conv(l.val); ok {
			d.l2tp.str(key, v, l.from)
		} else {
			d.notef(l.from, "%s=%s: not a valid number", l.key, l.val)
		}
	}
	num := func(key string, lo, hi int) {
		if v, ok := intIn(l.val, lo, hi); ok {
			d.l2tp.num(key, v, l.from)
		} else {
			d.notef(l.from, "%s=%s: out of range (%d..%d)", l.key, l.val, lo, hi)
		}
	}
	switch l.key {
	case "hello-interval":
		dur("hello_interval", seconds)
	case "rtimeout":
		dur("rtimeout", seconds)
	case "rtimeout-cap":
		dur("rtimeout_cap", seconds)
	case "retransmit":
		num("retransmit", 1, 100)
	case "recv-window":
		num("recv_window", 1, 65535)
	case "reorder-timeout":
		dur("reorder_timeout", millis)
	case "ppp-max-mtu":
		num("ppp_max_mtu", 128, 65535)
	case "host-name":
		d.top.str("host_name", l.val, l.from)
	case "secret":
		d.l2tp.str("secret", l.val, l.from)
		d.l2tp.str("challenge", "require", "accel-ppp authenticates tunnels when a secret is set")
	case "hide-avps":
		b, ok := yes(l.val)
		if ok {
			d.l2tp.boolean("hide_avps", b, l.from)
		}
	case "dataseq":
		if slices.Contains([]string{"deny", "allow", "prefer", "require"}, l.val) {
			d.l2tp.str("dataseq", l.val, l.from)
		} else {
			d.notef(l.from, "dataseq=%s: want deny, allow, prefer or require", l.val)
		}
	case "ip-pool":
		d.ppp.str("ip_pool", sanitizeName(l.val), l.from)
	case "ifname":
		d.ppp.str("ifname", l.val, l.from)
	case "bind":
		a, err := netip.ParseAddr(l.val)
		if err != nil {
			d.notef(l.from, "bind=%s: not an IP address", l.val)
			return
		}
		d.l2tp.list("listen", []string{netip.AddrPortFrom(a, 1701).String()}, l.from)
	case "verbose", "dictionary", "avp_permissive", "dir300_quirk", "use-ephemeral-ports":
		d.notef(l.from, "[l2tp] %s: not needed in l2tpd", l.key)
	case "timeout":
		d.notef(l.from, "[l2tp] timeout=%s (tunnel setup): l2tpd gives up after retransmit attempts", l.val)
	default:
		d.notef(l.from, "[l2tp] %s=%s has no l2tpd equivalent", l.key, l.val)
	}
}

func (d *doc) accelPPP(l accelLine) {
	switch l.key {
	case "mtu", "mru":
		if v, ok := intIn(l.val, 128, 65535); ok {
			d.ppp.num(l.key, v, l.from)
		} else {
			d.notef(l.from, "%s=%s out of range", l.key, l.val)
		}
	case "ipv4", "ipv6":
		if slices.Contains([]string{"deny", "allow", "prefer", "require"}, l.val) {
			d.ppp.str(l.key, l.val, l.from)
		} else {
			d.notef(l.from, "%s=%s: want deny, allow, prefer or require", l.key, l.val)
		}
	case "lcp-echo-interval":
		if v, ok := seconds(l.val); ok {
			d.ppp.str("lcp_echo_interval", v, l.from)
		}
	case "lcp-echo-failure":
		if v, ok := intIn(l.val, 1, 1000); ok {
			d.ppp.num("lcp_echo_failure", v, l.from)
		}
	case "single-session":
		if l.val == "deny" || l.val == "replace" {
			d.ppp.str("single_session", l.val, l.from)
		}
	case "verbose", "unit-cache", "unit-preallocate":
		d.notef(l.from, "[ppp] %s: not needed in l2tpd", l.key)
	case "min-mtu", "mppe", "ccp", "check-ip", "ipv6-intf-id", "ipv6-peer-intf-id", "ipv6-accept-peer-intf-id", "lcp-echo-timeout":
		d.notef(l.from, "[ppp] %s=%s has no l2tpd equivalent", l.key, l.val)
	default:
		d.notef(l.from, "[ppp] %s=%s has no l2tpd equivalent", l.key, l.val)
	}
}
