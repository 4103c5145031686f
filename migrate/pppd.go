package migrate

import (
	"net/netip"
	"slices"
	"strings"
)

// pppdOptions is what a pppd options file says that l2tpd can use.
type pppdOptions struct {
	require  []string // auth methods required of the peer, l2tpd names
	refuse   []string // methods we refuse to authenticate with (client side)
	user     string   // user / name: our name when we authenticate (LAC)
	password string
}

// pppdIgnored are options with no l2tpd meaning that need no comment:
// serial-line and daemon housekeeping.
var pppdIgnored = map[string]bool{
	"lock": true, "nolock": true, "crtscts": true, "nocrtscts": true, "modem": true, "local": true,
	"noipx": true, "hide-password": true, "show-password": true, "noccp": true, "nobsdcomp": true,
	"nodeflate": true, "novj": true, "novjccomp": true, "nopcomp": true, "noaccomp": true,
	"asyncmap": true, "silent": true, "persist": true, "holdoff": true, "maxfail": true,
	"nodetach": true, "updetach": true, "connect-delay": true, "ipcp-accept-local": true,
	"ipcp-accept-remote": true, "noipdefault": true, "usepeerdns": true, "nodefaultroute": true,
	"auth": true, "debug": true, "kdebug": true, "dump": true, "logfd": true,
}

// pppdArgs: options that take a value.
var pppdArgs = map[string]bool{
	"ms-dns": true, "ms-wins": true, "mtu": true, "mru": true, "lcp-echo-interval": true,
	"lcp-echo-failure": true, "name": true, "user": true, "password": true, "idle": true,
	"logfile": true, "plugin": true, "remotename": true, "asyncmap": true, "holdoff": true,
	"maxfail": true, "connect-delay": true, "logfd": true, "ipparam": true, "linkname": true,
	"lcp-restart": true, "lcp-max-configure": true, "lcp-max-failure": true, "lcp-max-terminate": true,
	"ipcp-restart": true, "ipcp-max-configure": true, "ipcp-max-failure": true, "ipcp-max-terminate": true,
	"chap-restart": true, "chap-max-challenge": true, "chap-interval": true, "pap-restart": true,
	"pap-max-authreq": true, "pap-timeout": true, "connect": true, "disconnect": true, "init": true,
	"welcome": true, "demand": true, "ktune": false, "unit": true, "ifname": true, "maxconnect": true,
	"radius-config-file": true,
}

var pppdAuth = map[string]string{
	"pap": "pap", "chap": "chap", "mschap-v2": "mschapv2", "mschap": "mschap",
}

// applyPPPD reads a pppd options file into p (the [ppp] section, LNS
// side) and returns what a LAC would need.
func (d *doc) applyPPPD(src Source, p *section) pppdOptions {
	var o pppdOptions
	d.inputs = append(d.inputs, src.Name+" (pppd options)")
	var dns, wins []string
	for n, line := range lines(src.Data) {
		w := fields(line)
		if len(w) == 0 {
			continue
		}
		from := at(src.Name, n+1)
		opt, val := w[0], ""
		if pppdArgs[opt] {
			if len(w) < 2 {
				d.notef(from, "%s needs a value; ignored", opt)
				continue
			}
			val = w[1]
		}
		switch {
		case opt == "ms-dns" || opt == "ms-wins":
			a, err := netip.ParseAddr(val)
			if err != nil {
				d.notef(from, "%s %s is not an IP address", opt, val)
				continue
			}
			if opt == "ms-dns" {
				dns = append(dns, a.String())
			} else {
				wins = append(wins, a.String())
			}
		case opt == "mtu" || opt == "mru":
			if v, ok := intIn(val, 128, 65535); ok {
				p.num(opt, v, from)
			} else {
				d.notef(from, "%s %s is out of range (128..65535)", opt, val)
			}
		case opt == "lcp-echo-interval":
			if s, ok := seconds(val); ok {
				p.str("lcp_echo_interval", s, from)
			} else {
				d.notef(from, "lcp-echo-interval %s: not a number of seconds", val)
			}
		case opt == "lcp-echo-failure":
			if v, ok := intIn(val, 1, 1000); ok {
				p.num("lcp_echo_failure", v, from)
			} else {
				d.notef(from, "lcp-echo-failure %s is out of range (1..1000)", val)
			}
		case strings.HasPrefix(opt, "require-"):
			m, ok := pppdAuth[strings.TrimPrefix(opt, "require-")]
			switch {
			case !ok:
				d.notef(from, "%s (encryption/other requirement) has no l2tpd equivalent; MPPE is not supported", opt)
			case m == "mschap":
				d.notef(from, "require-mschap: MS-CHAPv1 is not supported; use mschapv2")
			default:
				if !slices.Contains(o.require, m) {
					o.require = append(o.require, m)
				}
			}
		case strings.HasPrefix(opt, "refuse-"):
			if m, ok := pppdAuth[strings.TrimPrefix(opt, "refuse-")]; ok {
				o.refuse = append(o.refuse, m)
			} else {
				d.notef(from, "%s has no l2tpd equivalent", opt)
			}
		case opt == "name" || opt == "user":
			o.user = val
		case opt == "password":
			o.password = val
		case opt == "+ipv6" || opt == "ipv6":
			p.str("ipv6", "allow", from)
		case opt == "noipv6" || opt == "-ipv6":
			p.str("ipv6", "deny", from)
		case opt == "noip":
			p.str("ipv4", "deny", from)
		case opt == "noauth":
			d.notef(from, "noauth: l2tpd always authenticates subscribers on the LNS side")
		case opt == "proxyarp":
			d.notef(from, "proxyarp: l2tpd does not answer ARP for subscribers; route the pool to this host instead")
		case opt == "defaultroute":
			d.notef(from, "defaultroute: l2tpd adds no default route over PPP links")
		case opt == "plugin":
			if strings.Contains(val, "radius") {
				d.notef(from, "plugin %s: configure l2tpd's [radius] section and authenticator = \"radius\" (docs/configuration.md)", val)
			} else {
				d.notef(from, "plugin %s: pppd plugins do not exist in l2tpd", val)
			}
		case opt == "idle":
			d.notef(from, "idle %s: l2tpd takes idle timeouts from RADIUS Idle-Timeout only", val)
		case opt == "logfile" || opt == "debug":
			d.notef(from, "%s: logging is set by log_level/log_format; per-user debugging with `l2tpctl log trace user NAME`", opt)
		case pppdIgnored[opt]:
		default:
			if pppdArgs[opt] {
				d.notef(from, "%s %s has no l2tpd equivalent", opt, val)
			} else {
				d.notef(from, "%s has no l2tpd equivalent", opt)
			}
		}
	}
	for i, a := range dns {
		if i > 1 {
			d.notef(src.Name, "only two DNS servers are offered; %s dropped", a)
			break
		}
		p.str([]string{"dns1", "dns2"}[i], a, src.Name)
	}
	for i, a := range wins {
		if i > 1 {
			d.notef(src.Name, "only two WINS servers are offered; %s dropped", a)
			break
		}
		p.str([]string{"nbns1", "nbns2"}[i], a, src.Name)
	}
	return o
}

// authOrder puts methods in l2tpd's order of preference (strongest first).
func authOrder(ms []string) []string {
	var out []string
	for _, m := range []string{"mschapv2", "chap", "pap"} {
		if slices.Contains(ms, m) {
			out = append(out, m)
		}
	}
	return out
}

// secret is one line of a pppd chap-secrets/pap-secrets file.
type secret struct {
	client, server, secret string
	addrs                  []string
	from                   string
}

func parseSecrets(src Source) []secret {
	var out []secret
	for n, line := range lines(src.Data) {
		w := fields(line)
		if len(w) == 0 {
			continue
		}
		s := secret{from: at(src.Name, n+1), client: w[0]}
		if len(w) > 1 {
			s.server = w[1]
		}
		if len(w) > 2 {
			s.secret = w[2]
		}
		if len(w) > 3 {
			s.addrs = w[3:]
		}
		out = append(out, s)
	}
	return out
}

// applySecrets turns chap-secrets lines into [[subscriber]] entries. Pools
// are consulted so that a fixed address inside a pool is reported rather
// than producing a config l2tpd refuses.
func (d *doc) applySecrets(src Source, ourName string) {
	d.inputs = append(d.inputs, src.Name+" (chap-secrets)")
	seen := map[string]bool{}
	used := map[netip.Addr]bool{}
	for _, s := range parseSecrets(src) {
		switch {
		case s.client == "" || s.client == "*" || strings.ContainsAny(s.client, "*?"):
			d.notef(s.from, "wildcard client %q: l2tpd subscribers are named one by one", s.client)
			continue
		case s.server != "*" && s.server != "" && ourName != "" && s.server != ourName:
			d.notef(s.from, "secret of %q is for server %q, not this one (%q); skipped", s.client, s.server, ourName)
			continue
		case s.secret == "":
			d.notef(s.from, "%q has an empty secret; l2tpd requires a password", s.client)
			continue
		case strings.HasPrefix(s.secret, "@"):
			d.notef(s.from, "%q reads its secret from file %s; use password_file in its [[subscriber]]", s.client, s.secret[1:])
			continue
		case seen[s.client]:
			d.notef(s.from, "%q is listed again; the first entry is kept", s.client)
			continue
		}
		seen[s.client] = true
		sub := &section{header: "[[subscriber]]"}
		sub.str("name", s.client, s.from)
		sub.str("password", s.secret, "")
		switch {
		case len(s.addrs) == 0, len(s.addrs) == 1 && (s.addrs[0] == "*" || s.addrs[0] == "-"):
		case len(s.addrs) == 1:
			a, err := netip.ParseAddr(s.addrs[0])
			switch {
			case err != nil || !a.Is4():
				d.notef(s.from, "%q: address %q is not a single IPv4 address; it gets one from the pool", s.client, s.addrs[0])
			case d.inPool(a):
				d.notef(s.from, "%q: fixed address %s lies inside a pool; l2tpd needs fixed addresses outside every pool, so it gets one from the pool", s.client, a)
			case used[a]:
				d.notef(s.from, "%q: address %s is already another subscriber's", s.client, a)
			default:
				used[a] = true
				sub.str("address", a.String(), "")
			}
		default:
			d.notef(s.from, "%q: several addresses (%s); it gets one from the pool", s.client, strings.Join(s.addrs, " "))
		}
		d.subs = append(d.subs, sub)
	}
}

func (d *doc) inPool(a netip.Addr) bool {
	for _, p := range d.pools {
		for _, k := range p.keys {
			if k.key == "gateway" && k.val == tomlString(a.String()) {
				return true
			}
		}
		for _, r := range p.ranges() {
			if rangeContains(r, a) {
				return true
			}
		}
	}
	return false
}

// ranges returns the range strings of a [[pool]] section.
func (s *section) ranges() []string {
	for _, k := range s.keys {
		if k.key == "ranges" {
			var out []string
			for _, q := range strings.Split(strings.Trim(k.val, "[]"), ",") {
				out = append(out, strings.Trim(strings.TrimSpace(q), `"`))
			}
			return out
		}
	}
	return nil
}
