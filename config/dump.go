package config

import (
	"bytes"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Redacted is what Dump writes in place of a non-empty secret or password.
const Redacted = "<redacted>"

// Dump writes the fully resolved configuration (every default applied,
// every peer and profile complete) as TOML that Parse accepts, with
// secrets and passwords replaced by "<redacted>". For --check-config.
//
// Parse(Dump()) yields a configuration equal to c.Redacted().
func (c *Config) Dump() string { return c.dump(true) }

// Redacted returns a deep copy of c with every non-empty secret and
// password replaced by "<redacted>".
func (c *Config) Redacted() *Config {
	d := *c
	red := func(b []byte) []byte {
		if len(b) == 0 {
			return b
		}
		return []byte(Redacted)
	}
	d.L2TP.Secret = red(c.L2TP.Secret)
	d.unknownPeer.Secret = red(c.unknownPeer.Secret)
	d.Peers = slices.Clone(c.Peers)
	for i := range d.Peers {
		d.Peers[i].Secret = red(d.Peers[i].Secret)
	}
	d.Subscribers = slices.Clone(c.Subscribers)
	for i := range d.Subscribers {
		d.Subscribers[i].Password = red(d.Subscribers[i].Password)
	}
	d.LACs = slices.Clone(c.LACs)
	for i := range d.LACs {
		d.LACs[i].Secret = red(d.LACs[i].Secret)
		d.LACs[i].Password = red(d.LACs[i].Password)
	}
	d.RADIUS = c.RADIUS.redacted(red)
	return &d
}

type dumper struct {
	b      bytes.Buffer
	redact bool
}

func (c *Config) dump(redact bool) string {
	d := &dumper{redact: redact}
	fmt.Fprintf(&d.b, "# l2tpd configuration, fully resolved (defaults applied) from %s\n", c.File)
	d.kv("log_level", tomlString(c.LogLevel.String()))
	d.kv("log_format", tomlString(c.LogFormat.String()))
	d.kv("dataplane", tomlString(c.DataPlane.String()))
	d.kv("threads", strconv.Itoa(c.Threads))
	d.kv("host_name", tomlString(c.HostName))

	d.b.WriteString("\n[l2tp]\n")
	listen := make([]string, len(c.Listen))
	for i, ap := range c.Listen {
		listen[i] = ap.String()
	}
	d.kv("listen", tomlList(listen))
	d.kv("accept_unknown_peers", strconv.FormatBool(c.AcceptUnknownPeers))
	d.l2tp(&c.L2TP)

	d.b.WriteString("\n[ppp]\n")
	d.ppp(&c.PPP)
	names := make([]string, 0, len(c.Profiles))
	for n := range c.Profiles {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		fmt.Fprintf(&d.b, "\n[ppp.profile.%s]\n", joinPath("", n))
		d.ppp(c.Profiles[n])
	}

	for _, p := range c.Pools {
		d.b.WriteString("\n[[pool]]\n")
		d.kv("name", tomlString(p.Name))
		d.kv("ranges", tomlList(rangeStrings(p.Ranges)))
		d.kv("gateway", tomlString(addrString(p.Gateway)))
	}
	for i := range c.Peers {
		p := &c.Peers[i]
		d.b.WriteString("\n[[peer]]\n")
		d.kv("name", tomlString(p.Name))
		d.kv("match_address", tomlList(rangeStrings(p.MatchAddress)))
		d.kv("match_host_name", tomlList(p.MatchHostName))
		d.kv("refuse", strconv.FormatBool(p.Refuse))
		d.kv("host_name", tomlString(p.HostName))
		d.kv("ppp", tomlString(p.PPPProfile))
		d.kv("ip_pool", tomlString(p.IPPool))
		d.l2tp(&p.L2TP)
	}
	for _, s := range c.Subscribers {
		d.b.WriteString("\n[[subscriber]]\n")
		d.kv("name", tomlString(s.Name))
		d.kv("password", d.secret(s.Password))
		d.kv("address", tomlString(addrString(s.Address)))
		d.kv("pool", tomlString(s.Pool))
		d.kv("disabled", strconv.FormatBool(s.Disabled))
	}
	for i := range c.LACs {
		l := &c.LACs[i]
		d.b.WriteString("\n[[lac]]\n")
		d.kv("name", tomlString(l.Name))
		d.kv("lns", tomlString(l.LNS))
		d.kv("local", tomlString(addrString(l.Local)))
		d.kv("host_name", tomlString(l.HostName))
		d.kv("ppp", tomlString(l.PPPProfile))
		d.kv("redial", strconv.FormatBool(l.Redial))
		d.kv("redial_min", tomlString(formatDuration(l.RedialMin)))
		d.kv("redial_max", tomlString(formatDuration(l.RedialMax)))
		d.kv("sessions", strconv.Itoa(l.Sessions))
		d.kv("username", tomlString(l.Username))
		d.kv("password", d.secret(l.Password))
		d.kv("auth", tomlList(authStrings(l.Auth)))
		d.l2tp(&l.L2TP)
	}
	d.radius(&c.RADIUS)
	d.mgmt(c)
	return d.b.String()
}

func (d *dumper) kv(k, v string) {
	d.b.WriteString(k)
	d.b.WriteString(" = ")
	d.b.WriteString(v)
	d.b.WriteByte('\n')
}

func (d *dumper) secret(b []byte) string {
	if d.redact && len(b) > 0 {
		return tomlString(Redacted)
	}
	return tomlString(string(b))
}

func (d *dumper) l2tp(l *L2TP) {
	d.kv("hello_interval", tomlString(formatDuration(l.HelloInterval)))
	d.kv("rtimeout", tomlString(formatDuration(l.RTimeout)))
	d.kv("rtimeout_cap", tomlString(formatDuration(l.RTimeoutCap)))
	d.kv("retransmit", strconv.Itoa(l.Retransmit))
	d.kv("recv_window", strconv.Itoa(l.RecvWindow))
	d.kv("hide_avps", strconv.FormatBool(l.HideAVPs))
	d.kv("secret", d.secret(l.Secret))
	d.kv("challenge", tomlString(l.Challenge.String()))
	d.kv("dataseq", tomlString(l.DataSeq.String()))
	d.kv("reorder_timeout", tomlString(formatDuration(l.ReorderTimeout)))
	d.kv("ppp_max_mtu", strconv.Itoa(l.PPPMaxMTU))
	d.kv("max_tunnels", strconv.Itoa(l.MaxTunnels))
	d.kv("max_sessions", strconv.Itoa(l.MaxSessions))
	d.kv("max_sessions_per_tunnel", strconv.Itoa(l.MaxSessionsPerTunnel))
	d.kv("max_starting", strconv.Itoa(l.MaxStarting))
	d.kv("max_starting_wait", tomlString(formatDuration(l.MaxStartingWait)))
}

func (d *dumper) ppp(p *PPP) {
	d.kv("mru", strconv.Itoa(p.MRU))
	d.kv("mtu", strconv.Itoa(p.MTU))
	d.kv("auth", tomlList(authStrings(p.Auth)))
	d.kv("lcp_echo_interval", tomlString(formatDuration(p.LCPEchoInterval)))
	d.kv("lcp_echo_failure", strconv.Itoa(p.LCPEchoFailure))
	d.kv("restart_timer", tomlString(formatDuration(p.RestartTimer)))
	d.kv("max_configure", strconv.Itoa(p.MaxConfigure))
	d.kv("max_failure", strconv.Itoa(p.MaxFailure))
	d.kv("max_terminate", strconv.Itoa(p.MaxTerminate))
	d.kv("ipv4", tomlString(p.IPv4.String()))
	d.kv("ipv6", tomlString(p.IPv6.String()))
	d.kv("dns1", tomlString(addrString(p.DNS[0])))
	d.kv("dns2", tomlString(addrString(p.DNS[1])))
	d.kv("nbns1", tomlString(addrString(p.NBNS[0])))
	d.kv("nbns2", tomlString(addrString(p.NBNS[1])))
	d.kv("ip_pool", tomlString(p.IPPool))
	d.kv("ifname", tomlString(p.IfName))
	d.kv("authenticator", tomlString(p.Authenticator.String()))
	d.kv("single_session", tomlString(p.SingleSession.String()))
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

func rangeStrings(rs []AddrRange) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.String()
	}
	return out
}

func authStrings(ms []AuthMethod) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.String()
	}
	return out
}

func tomlList(items []string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = tomlString(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// tomlString writes s as a TOML basic string.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			b.WriteString(`\uFFFD`)
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	b.WriteByte('"')
	return b.String()
}

// formatDuration writes d in the largest unit that is exact.
func formatDuration(d time.Duration) string {
	switch {
	case d == 0:
		return "0s"
	case d%time.Hour == 0:
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	case d%time.Minute == 0:
		return strconv.FormatInt(int64(d/time.Minute), 10) + "m"
	case d%time.Second == 0:
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	case d%time.Millisecond == 0:
		return strconv.FormatInt(int64(d/time.Millisecond), 10) + "ms"
	case d%time.Microsecond == 0:
		return strconv.FormatInt(int64(d/time.Microsecond), 10) + "us"
	}
	return strconv.FormatInt(int64(d), 10) + "ns"
}
