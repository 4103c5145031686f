package config

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"time"
)

// RADIUS is the resolved [radius] section: the RADIUS client (auth/radius)
// and its Dynamic Authorization (RFC 5176) server. With no servers, RADIUS
// is off.
type RADIUS struct {
	NASIdentifier  string     // NAS-Identifier; default: host_name
	NASIPAddress   netip.Addr // NAS-IP-Address; zero: not sent (NAS-Identifier is)
	NASIPv6Address netip.Addr // NAS-IPv6-Address; zero: not sent

	// Defaults for every [[radius.server]].
	Timeout                     time.Duration // wait for a reply this long per try
	Retries                     int           // retransmissions per server after the first try
	RequireMessageAuthenticator bool          // replies must carry a valid Message-Authenticator

	DeadAfter   int           // consecutive timed-out requests before a server is marked dead
	DeadTime    time.Duration // a dead server is probed again after this long
	MaxInFlight int           // requests in flight per server (beyond: queued by the caller)

	InterimInterval time.Duration // Acct-Interim-Interval when RADIUS gives none; 0: no interim
	SpoolDir        string        // durable accounting spool directory
	// SpoolSyncInterval: at most one fsync of the spool per interval (and
	// one at shutdown); records are sent once written. 0: an fsync before
	// every batch of records is sent.
	SpoolSyncInterval time.Duration

	DAEListen  netip.AddrPort // RFC 5176 listener; zero: none
	DAEClients []RADIUSClient // who may send Disconnect/CoA requests

	Servers []RADIUSServer // in file order
}

// RADIUSServer is one [[radius.server]]. Timeout, Retries and
// RequireMessageAuthenticator are resolved (inherited from [radius]).
type RADIUSServer struct {
	Address                     netip.Addr
	AuthPort                    int // 0: not used for authentication
	AcctPort                    int // 0: not used for accounting
	Secret                      []byte
	Priority                    int // lower is tried first
	Weight                      int // load share among servers of one priority
	Timeout                     time.Duration
	Retries                     int
	RequireMessageAuthenticator bool
}

// RADIUSClient is one [[radius.dae_client]]: a host allowed to send
// Disconnect-Request and CoA-Request, with its secret.
type RADIUSClient struct {
	Address netip.Addr
	Secret  []byte
}

// DefaultRADIUS returns the [radius] defaults (no servers: RADIUS off).
func DefaultRADIUS() RADIUS {
	return RADIUS{
		Timeout:                     3 * time.Second,
		Retries:                     2,
		RequireMessageAuthenticator: true,
		DeadAfter:                   3,
		DeadTime:                    30 * time.Second,
		// A request the server drops waits out its timeout (3 s). 64
		// Access-Requests fit FreeRADIUS's default receive buffer
		// (net.core.rmem_default, 208 KiB); 128 did not always (2-3
		// drops in a burst of 20,000 calls, 223 at 256: docs/benchmarks.md).
		// 64 in flight is 64,000 answers/s at 1 ms and 1,280/s at 50 ms.
		MaxInFlight:       64,
		SpoolDir:          "/var/lib/l2tpd/radius-spool",
		SpoolSyncInterval: time.Second,
	}
}

var (
	radiusKeys = []string{"nas_identifier", "nas_ip_address", "nas_ipv6_address", "timeout", "retries",
		"require_message_authenticator", "dead_after", "dead_time", "max_in_flight", "acct_interim_interval",
		"spool_dir", "spool_sync_interval", "dae_listen", "server", "dae_client"}
	radiusServerKeys = []string{"address", "auth_port", "acct_port", "secret", "secret_file", "priority", "weight",
		"timeout", "retries", "require_message_authenticator"}
	radiusClientKeys = []string{"address", "secret", "secret_file"}
)

func (r *reader) radius(t *table, c *Config) {
	rc := &c.RADIUS
	t.str("nas_identifier", &rc.NASIdentifier)
	t.addr("nas_ip_address", &rc.NASIPAddress, true)
	if t.addr("nas_ipv6_address", &rc.NASIPv6Address, false) && rc.NASIPv6Address.Is4() {
		t.errf("nas_ipv6_address", "want an IPv6 address")
	}
	t.duration("timeout", &rc.Timeout, 100*time.Millisecond, time.Minute)
	t.integer("retries", &rc.Retries, 0, 10)
	t.boolean("require_message_authenticator", &rc.RequireMessageAuthenticator)
	t.integer("dead_after", &rc.DeadAfter, 1, 1000)
	t.duration("dead_time", &rc.DeadTime, time.Second, time.Hour)
	t.integer("max_in_flight", &rc.MaxInFlight, 1, 256)
	t.duration("acct_interim_interval", &rc.InterimInterval, 0, 24*time.Hour)
	if rc.InterimInterval > 0 && rc.InterimInterval < time.Minute {
		t.errf("acct_interim_interval", "%s is below 1m (RFC 2869 5.16: at least 60 seconds)", formatDuration(rc.InterimInterval))
	}
	if t.str("spool_dir", &rc.SpoolDir) && rc.SpoolDir == "" {
		t.errf("spool_dir", "the spool directory is empty")
	}
	t.duration("spool_sync_interval", &rc.SpoolSyncInterval, 0, time.Minute)
	var dae string
	if t.str("dae_listen", &dae) && dae != "" {
		ap, err := parseHostPortAddr(dae, 3799)
		if err != nil {
			t.errf("dae_listen", "%s: %v", tomlString(dae), err)
		} else {
			rc.DAEListen = ap
		}
	}
	for _, st := range t.tables("server") {
		s := RADIUSServer{AuthPort: 1812, AcctPort: 1813, Priority: 1, Weight: 1, Timeout: rc.Timeout,
			Retries: rc.Retries, RequireMessageAuthenticator: rc.RequireMessageAuthenticator}
		if !st.has("address") {
			t.r.errf(st.path, "a [[radius.server]] needs an address")
		} else if st.addr("address", &s.Address, false) && !s.Address.IsValid() {
			st.errf("address", "the address is empty")
		}
		st.secret("secret", "secret_file", &s.Secret)
		if len(s.Secret) == 0 && !st.has("secret_file") {
			t.r.errf(st.path, "a [[radius.server]] needs a secret or secret_file")
		}
		st.integer("auth_port", &s.AuthPort, 0, 65535)
		st.integer("acct_port", &s.AcctPort, 0, 65535)
		if s.AuthPort == 0 && s.AcctPort == 0 {
			st.errf("auth_port", "auth_port and acct_port are both 0: the server would not be used")
		}
		st.integer("priority", &s.Priority, 0, 1000)
		st.integer("weight", &s.Weight, 1, 1000)
		st.duration("timeout", &s.Timeout, 100*time.Millisecond, time.Minute)
		st.integer("retries", &s.Retries, 0, 10)
		st.boolean("require_message_authenticator", &s.RequireMessageAuthenticator)
		st.finish(radiusServerKeys, nil)
		rc.Servers = append(rc.Servers, s)
	}
	for _, ct := range t.tables("dae_client") {
		var cl RADIUSClient
		if !ct.has("address") {
			t.r.errf(ct.path, "a [[radius.dae_client]] needs an address")
		} else if ct.addr("address", &cl.Address, false) && !cl.Address.IsValid() {
			ct.errf("address", "the address is empty")
		}
		ct.secret("secret", "secret_file", &cl.Secret)
		if len(cl.Secret) == 0 && !ct.has("secret_file") {
			t.r.errf(ct.path, "a [[radius.dae_client]] needs a secret or secret_file")
		}
		ct.finish(radiusClientKeys, nil)
		rc.DAEClients = append(rc.DAEClients, cl)
	}
	if rc.DAEListen.IsValid() && len(rc.DAEClients) == 0 {
		t.errf("dae_listen", "dae_listen is set but no [[radius.dae_client]] may use it")
	}
	t.finish(radiusKeys, nil)
}

// parseHostPortAddr parses "addr:port", "[v6]:port" or a bare address
// (port def).
func parseHostPortAddr(s string, def uint16) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("want \"addr:port\", \"[v6]:port\" or an address")
	}
	return netip.AddrPortFrom(a, def), nil
}

func (c RADIUS) redacted(red func([]byte) []byte) RADIUS {
	c.Servers = slices.Clone(c.Servers)
	for i := range c.Servers {
		c.Servers[i].Secret = red(c.Servers[i].Secret)
	}
	c.DAEClients = slices.Clone(c.DAEClients)
	for i := range c.DAEClients {
		c.DAEClients[i].Secret = red(c.DAEClients[i].Secret)
	}
	return c
}

func (d *dumper) radius(c *RADIUS) {
	d.b.WriteString("\n[radius]\n")
	d.kv("nas_identifier", tomlString(c.NASIdentifier))
	d.kv("nas_ip_address", tomlString(addrString(c.NASIPAddress)))
	d.kv("nas_ipv6_address", tomlString(addrString(c.NASIPv6Address)))
	d.kv("timeout", tomlString(formatDuration(c.Timeout)))
	d.kv("retries", strconv.Itoa(c.Retries))
	d.kv("require_message_authenticator", strconv.FormatBool(c.RequireMessageAuthenticator))
	d.kv("dead_after", strconv.Itoa(c.DeadAfter))
	d.kv("dead_time", tomlString(formatDuration(c.DeadTime)))
	d.kv("max_in_flight", strconv.Itoa(c.MaxInFlight))
	d.kv("acct_interim_interval", tomlString(formatDuration(c.InterimInterval)))
	d.kv("spool_dir", tomlString(c.SpoolDir))
	d.kv("spool_sync_interval", tomlString(formatDuration(c.SpoolSyncInterval)))
	dae := ""
	if c.DAEListen.IsValid() {
		dae = c.DAEListen.String()
	}
	d.kv("dae_listen", tomlString(dae))
	for _, s := range c.Servers {
		d.b.WriteString("\n[[radius.server]]\n")
		d.kv("address", tomlString(addrString(s.Address)))
		d.kv("auth_port", strconv.Itoa(s.AuthPort))
		d.kv("acct_port", strconv.Itoa(s.AcctPort))
		d.kv("secret", d.secret(s.Secret))
		d.kv("priority", strconv.Itoa(s.Priority))
		d.kv("weight", strconv.Itoa(s.Weight))
		d.kv("timeout", tomlString(formatDuration(s.Timeout)))
		d.kv("retries", strconv.Itoa(s.Retries))
		d.kv("require_message_authenticator", strconv.FormatBool(s.RequireMessageAuthenticator))
	}
	for _, cl := range c.DAEClients {
		d.b.WriteString("\n[[radius.dae_client]]\n")
		d.kv("address", tomlString(addrString(cl.Address)))
		d.kv("secret", d.secret(cl.Secret))
	}
}

func (c *RADIUS) hasAuthServer() bool {
	for _, s := range c.Servers {
		if s.AuthPort != 0 {
			return true
		}
	}
	return false
}
