package migrate

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// XL2TPDOptions are the optional inputs of an xl2tpd import.
type XL2TPDOptions struct {
	// PPPOptions is the pppd options file of the LNS (as named by its
	// pppoptfile); nil: read the pppoptfile through ReadFile, if any.
	PPPOptions *Source
	// CHAPSecrets is /etc/ppp/chap-secrets, for [[subscriber]] entries.
	CHAPSecrets *Source
	// ReadFile reads files the configuration names (pppoptfile, auth
	// file). nil: they are not read, and a comment says so.
	ReadFile func(string) ([]byte, error)
}

// iniLine is one key of an xl2tpd-style INI file.
type iniLine struct {
	key, val, from string
}

type iniSection struct {
	kind, name string // "global", "lns" "default", "lac" "name"
	from       string
	keys       []iniLine
}

// parseXL2TPD splits xl2tpd.conf into sections. Comments start with ';'
// or '#'.
func parseXL2TPD(src Source) ([]*iniSection, []string) {
	var secs []*iniSection
	var bad []string
	var cur *iniSection
	for n, raw := range lines(src.Data) {
		from := at(src.Name, n+1)
		line := raw
		if i := strings.IndexAny(line, ";#"); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if strings.HasPrefix(line, "[") {
			if !strings.HasSuffix(line, "]") {
				bad = append(bad, from+": unterminated section header; ignored")
				cur = nil
				continue
			}
			w := strings.Fields(strings.Trim(line, "[]"))
			s := &iniSection{from: from}
			if len(w) > 0 {
				s.kind = strings.ToLower(w[0])
			}
			if len(w) > 1 {
				s.name = strings.Join(w[1:], " ")
			}
			secs = append(secs, s)
			cur = s
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || cur == nil {
			bad = append(bad, fmt.Sprintf("%s: %q is not \"key = value\" inside a section; ignored", from, line))
			continue
		}
		cur.keys = append(cur.keys, iniLine{strings.ToLower(strings.Join(strings.Fields(k), " ")), strings.TrimSpace(v), from})
	}
	return secs, bad
}

// XL2TPD converts an xl2tpd configuration.
func XL2TPD(conf Source, o XL2TPDOptions) (string, error) {
	if len(conf.Data) > MaxInput {
		return "", fmt.Errorf("%s: %d bytes is too large for a configuration file", conf.Name, len(conf.Data))
	}
	d := newDoc("xl2tpd")
	d.inputs = append(d.inputs, conf.Name)
	secs, bad := parseXL2TPD(conf)
	d.notes = append(d.notes, bad...)

	var lnsSecs, lacSecs []*iniSection
	accessControl := false
	listenAddr, port := "", 1701
	var authFile, authFrom string
	for _, s := range secs {
		switch s.kind {
		case "global":
			for _, k := range s.keys {
				switch k.key {
				case "listen-addr":
					listenAddr = k.val
				case "port":
					if p, ok := intIn(k.val, 1, 65535); ok {
						port = p
					} else {
						d.notef(k.from, "port %q is not a port number", k.val)
					}
				case "access control":
					accessControl, _ = yes(k.val)
				case "auth file":
					authFile, authFrom = k.val, k.from
				case "debug avp", "debug network", "debug packet", "debug state", "debug tunnel":
					d.notef(k.from, "%s: use log_level = \"debug\", or `l2tpctl log trace peer ADDR` at run time", k.key)
				case "ipsec saref", "saref refinfo":
					d.notef(k.from, "%s: not needed; l2tpd works with kernel IPsec transport mode as is", k.key)
				default:
					d.notef(k.from, "[global] %s = %s has no l2tpd equivalent", k.key, k.val)
				}
			}
		case "lns":
			lnsSecs = append(lnsSecs, s)
		case "lac":
			lacSecs = append(lacSecs, s)
		default:
			d.notef(s.from, "section [%s %s] is not an xl2tpd section; ignored", s.kind, s.name)
		}
	}
	if listenAddr != "" || port != 1701 {
		a := "0.0.0.0"
		if listenAddr != "" {
			if ip, err := netip.ParseAddr(listenAddr); err == nil {
				a = ip.String()
			} else {
				d.notef("", "listen-addr %q is not an IP address; listening on every address", listenAddr)
			}
		}
		d.l2tp.list("listen", []string{netip.AddrPortFrom(netip.MustParseAddr(a), uint16(port)).String()}, "listen-addr/port")
	} else {
		d.l2tp.list("listen", []string{"0.0.0.0:1701"}, "xl2tpd's default")
	}
	if len(lnsSecs) > 0 {
		d.l2tp.boolean("accept_unknown_peers", !accessControl, "access control")
	}

	// Tunnel secrets: l2tp-secrets lines "us them secret".
	var defaultSecret string
	hostSecrets := map[string]string{}
	if authFile != "" {
		if data, ok := d.readNamed(o.ReadFile, authFile, authFrom, "auth file"); ok {
			src := Source{Name: authFile, Data: data}
			d.inputs = append(d.inputs, authFile+" (l2tp-secrets)")
			for _, s := range parseSecrets(src) {
				// parseSecrets reads "client server secret": here "us them secret".
				them, sec := s.server, s.secret
				switch {
				case sec == "":
					d.notef(s.from, "no secret on this line; ignored")
				case them == "*" || them == "":
					if defaultSecret == "" {
						defaultSecret = sec
					}
				default:
					hostSecrets[strings.ToLower(them)] = sec
				}
			}
		}
	}

	poolN := 0
	for i, s := range lnsSecs {
		if i > 0 {
			d.notef(s.from, "[lns %s]: only the first [lns] section becomes the defaults; this one needs a [[peer]] by hand", s.name)
			continue
		}
		d.lnsSection(s, o, &poolN, defaultSecret, accessControl)
	}
	// Peers named in the auth file come first: first match wins, and
	// they are more specific than the lac = address ranges.
	var hostPeers []*section
	for host, sec := range sortedMap(hostSecrets) {
		p := &section{header: "[[peer]]"}
		p.str("name", "host-"+sanitizeName(host), authFile)
		p.list("match_host_name", []string{host}, "")
		p.str("secret", sec, "")
		hostPeers = append(hostPeers, p)
	}
	d.peers = append(hostPeers, d.peers...)
	for _, s := range lacSecs {
		d.lacSection(s, o, defaultSecret, hostSecrets)
	}
	return d.finish()
}

func sortedMap(m map[string]string) func(func(string, string) bool) {
	return func(yield func(string, string) bool) {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			if !yield(k, m[k]) {
				return
			}
		}
	}
}

func sanitizeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '-'
	}, s)
}

func (d *doc) readNamed(read func(string) ([]byte, error), name, from, what string) ([]byte, bool) {
	if read == nil {
		d.notef(from, "%s %s was not read; pass it on the command line", what, name)
		return nil, false
	}
	data, err := read(name)
	if err != nil {
		d.notef(from, "%s %s could not be read (%v); pass it on the command line", what, name, err)
		return nil, false
	}
	if len(data) > MaxInput {
		d.notef(from, "%s %s is too large; skipped", what, name)
		return nil, false
	}
	return data, true
}

func (d *doc) lnsSection(s *iniSection, o XL2TPDOptions, poolN *int, secret string, accessControl bool) {
	var ranges []string
	var gateway netip.Addr
	var gwFrom string
	var lacs []string
	var lacFrom string
	var requireAuth []string
	refuse := map[string]bool{}
	var pppopt, pppoptFrom string
	var ourName string
	challenge, hidden := false, false
	for _, k := range s.keys {
		switch k.key {
		case "ip range":
			r, _, ok := ipRange(k.val)
			if !ok {
				d.notef(k.from, "ip range %q: not an IPv4 range", k.val)
				continue
			}
			ranges = append(ranges, r)
		case "no ip range":
			d.notef(k.from, "no ip range: l2tpd always checks pool addresses")
		case "local ip":
			a, err := netip.ParseAddr(k.val)
			if err != nil || !a.Is4() {
				d.notef(k.from, "local ip %q is not an IPv4 address", k.val)
				continue
			}
			gateway, gwFrom = a, k.from
		case "local ip range":
			d.notef(k.from, "local ip range: l2tpd uses one gateway address (local ip) on every link")
		case "lac":
			lacs = append(lacs, strings.Split(k.val, ",")...)
			lacFrom = k.from
		case "no lac":
			d.notef(k.from, "no lac: use a [[peer]] with refuse = true for the LACs to turn away")
		case "hostname":
			d.top.str("host_name", k.val, k.from)
		case "require chap":
			if b, _ := yes(k.val); b {
				requireAuth = append(requireAuth, "chap")
			}
		case "require pap":
			if b, _ := yes(k.val); b {
				requireAuth = append(requireAuth, "pap")
			}
		case "refuse chap":
			if b, _ := yes(k.val); b {
				refuse["chap"], refuse["mschapv2"] = true, true
			}
		case "refuse pap":
			if b, _ := yes(k.val); b {
				refuse["pap"] = true
			}
		case "require authentication":
			if b, _ := yes(k.val); !b {
				d.notef(k.from, "require authentication = no: l2tpd always authenticates subscribers")
			}
		case "refuse authentication", "unix authentication":
			d.notef(k.from, "%s has no l2tpd equivalent", k.key)
		case "challenge":
			challenge, _ = yes(k.val)
		case "hidden bit":
			hidden, _ = yes(k.val)
		case "length bit":
			// l2tpd always sends the length field.
		case "flow bit":
			if b, _ := yes(k.val); b {
				d.l2tp.str("dataseq", "prefer", k.from)
			}
		case "tunnel rws":
			if v, ok := intIn(k.val, 1, 65535); ok {
				d.l2tp.num("recv_window", v, k.from)
			} else {
				d.notef(k.from, "tunnel rws %q is out of range", k.val)
			}
		case "call rws":
			d.notef(k.from, "call rws: data-message flow control is obsolete (RFC 2661 errata); dataseq controls sequencing")
		case "pppoptfile":
			pppopt, pppoptFrom = k.val, k.from
		case "ppp debug":
			d.notef(k.from, "ppp debug: use `l2tpctl log trace user NAME` at run time")
		case "name":
			ourName = k.val
			d.notef(k.from, "name = %s: l2tpd names itself in CHAP with host_name", k.val)
		case "assign ip":
			if b, _ := yes(k.val); !b {
				d.notef(k.from, "assign ip = no: l2tpd always assigns addresses (pool or fixed)")
			}
		case "exclusive":
			if b, _ := yes(k.val); b {
				d.notef(k.from, "exclusive = yes: l2tpd has no one-tunnel-per-LAC limit; set max_tunnels in a [[peer]]")
			}
		case "tx bps", "rx bps":
			d.notef(k.from, "%s: l2tpd takes the connect speed from the LAC", k.key)
		default:
			d.notef(k.from, "[lns] %s = %s has no l2tpd equivalent", k.key, k.val)
		}
	}
	if len(ranges) > 0 {
		p := &section{header: "[[pool]]"}
		*poolN++
		name := "xl2tpd"
		p.str("name", name, s.from)
		p.list("ranges", ranges, "ip range")
		if gateway.IsValid() {
			p.str("gateway", gateway.String(), gwFrom)
		} else {
			_, first, _ := ipRange(ranges[0])
			p.str("gateway", first.String(), "CHECK: xl2tpd had no local ip; the first address of the range is used and not handed out")
			d.notef(s.from, "no local ip: the pool's gateway is set to %s (our end of each link); check it", first)
		}
		d.pools = append(d.pools, p)
		d.ppp.str("ip_pool", name, "")
	} else {
		d.notef(s.from, "no ip range: subscribers need a pool or fixed addresses; add a [[pool]]")
	}
	if len(lacs) > 0 {
		p := &section{header: "[[peer]]"}
		p.str("name", "lacs", lacFrom)
		var match []string
		for _, l := range lacs {
			r, _, ok := ipRange(l)
			if !ok {
				d.notef(lacFrom, "lac %q is a host name; xl2tpd resolved it, l2tpd matches addresses (match_address) or the LAC's Host Name AVP (match_host_name): add it by hand", strings.TrimSpace(l))
				continue
			}
			match = append(match, r)
		}
		if len(match) > 0 {
			p.list("match_address", match, "")
			d.peers = append(d.peers, p)
		}
		if !accessControl {
			d.notef(lacFrom, "lac = ... without access control = yes: xl2tpd accepted other LACs too, and so does this config (accept_unknown_peers = true)")
		}
	}
	if secret != "" {
		d.l2tp.str("secret", secret, "auth file")
	}
	if challenge {
		if secret != "" {
			d.l2tp.str("challenge", "require", "challenge = yes")
		} else {
			d.notef(s.from, "challenge = yes but no tunnel secret was found (auth file); set [l2tp] secret and challenge = \"require\"")
		}
	}
	if hidden {
		if secret != "" {
			d.l2tp.boolean("hide_avps", true, "hidden bit = yes")
		} else {
			d.notef(s.from, "hidden bit = yes needs a tunnel secret; set [l2tp] secret and hide_avps = true")
		}
	}
	var opts pppdOptions
	switch {
	case o.PPPOptions != nil:
		opts = d.applyPPPD(*o.PPPOptions, &d.ppp)
	case pppopt != "":
		if data, ok := d.readNamed(o.ReadFile, pppopt, pppoptFrom, "pppoptfile"); ok {
			opts = d.applyPPPD(Source{Name: pppopt, Data: data}, &d.ppp)
		}
	}
	methods := append(requireAuth, opts.require...)
	if len(methods) > 0 {
		var keep []string
		for _, m := range authOrder(methods) {
			if !refuse[m] {
				keep = append(keep, m)
			}
		}
		if len(keep) > 0 {
			d.ppp.list("auth", keep, "require-*")
		}
	}
	if o.CHAPSecrets != nil {
		d.applySecrets(*o.CHAPSecrets, ourName)
		d.ppp.str("authenticator", "local", "chap-secrets")
	}
}

func (d *doc) lacSection(s *iniSection, o XL2TPDOptions, secret string, hostSecrets map[string]string) {
	l := &section{header: "[[lac]]"}
	l.str("name", sanitizeName(s.name), s.from)
	var lns string
	var pppopt, pppoptFrom string
	autodial := false
	for _, k := range s.keys {
		switch k.key {
		case "lns":
			lns = k.val
			l.str("lns", k.val, k.from)
		case "redial":
			b, _ := yes(k.val)
			l.boolean("redial", b, k.from)
		case "redial timeout":
			if v, ok := seconds(k.val); ok && v != "0s" {
				l.str("redial_min", v, k.from)
				if !l.has("redial_max") {
					l.str("redial_max", v, "xl2tpd redials at a fixed interval")
				}
			}
		case "max redials":
			d.notef(k.from, "max redials: l2tpd redials for ever with backoff (redial_min..redial_max)")
		case "autodial":
			autodial, _ = yes(k.val)
		case "pppoptfile":
			pppopt, pppoptFrom = k.val, k.from
		case "hostname":
			l.str("host_name", k.val, k.from)
		case "length bit", "require chap", "refuse pap", "require authentication", "ppp debug", "challenge", "hidden bit":
			if k.key == "challenge" || k.key == "hidden bit" {
				if b, _ := yes(k.val); b {
					d.notef(k.from, "[lac %s] %s: set challenge/hide_avps with a secret in this [[lac]]", s.name, k.key)
				}
			}
		case "name":
			l.str("username", k.val, k.from)
		case "tunnel rws":
			if v, ok := intIn(k.val, 1, 65535); ok {
				l.num("recv_window", v, k.from)
			}
		default:
			d.notef(k.from, "[lac %s] %s = %s has no l2tpd equivalent", s.name, k.key, k.val)
		}
	}
	if lns == "" {
		d.notef(s.from, "[lac %s] has no lns; skipped", s.name)
		return
	}
	if sec, ok := hostSecrets[strings.ToLower(lns)]; ok {
		l.str("secret", sec, "auth file")
	} else if secret != "" {
		l.str("secret", secret, "auth file")
	}
	if pppopt != "" {
		if data, ok := d.readNamed(o.ReadFile, pppopt, pppoptFrom, "pppoptfile"); ok {
			var scratch section
			opts := d.applyPPPD(Source{Name: pppopt, Data: data}, &scratch)
			if opts.user != "" {
				l.str("username", opts.user, pppopt)
			}
			if opts.password != "" {
				l.str("password", opts.password, "")
			}
			if len(opts.refuse) > 0 {
				var keep []string
				for _, m := range []string{"mschapv2", "chap", "pap"} {
					if !slices.Contains(opts.refuse, m) {
						keep = append(keep, m)
					}
				}
				if len(keep) > 0 {
					l.list("auth", keep, "refuse-*")
				}
			}
		}
	}
	if !autodial {
		l.num("sessions", 0, "autodial = no: dial on demand is not supported; set sessions = 1 to keep a call up")
	} else if !l.has("username") {
		d.notef(s.from, "[lac %s]: no user name found (pppd name/user); set username and password", s.name)
		l.num("sessions", 0, "CHECK: needs username")
	} else if !l.has("password") {
		d.notef(s.from, "[lac %s]: the password is in pppd's secrets files; set password or password_file", s.name)
	}
	d.lacs = append(d.lacs, l)
}
