// Package config reads l2tpd's TOML configuration file: it parses it,
// applies defaults, resolves inheritance (peers and LACs inherit [l2tp],
// PPP profiles inherit [ppp]) and validates everything, reporting every
// problem with its key path, file and line.
//
// The result is plain typed data (time.Duration, netip values, typed
// enums, secrets as []byte) that other packages use directly. The package
// opens no sockets; it reads only the files the configuration names
// (secret_file, password_file). See docs/configuration.md for every key.
package config

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Config is a fully resolved, validated configuration. Treat it as
// read-only: pointers returned by its methods point into it.
type Config struct {
	File string // the file it was read from (for messages)

	LogLevel  LogLevel
	LogFormat LogFormat
	DataPlane DataPlaneMode
	HostName  string // our Host Name AVP (default for L2TP.HostName)
	// Threads is how many threads run the daemon's Go code at once
	// (GOMAXPROCS); 0: auto (cmd/l2tpd decides from the data path).
	Threads int

	// Listen: LNS listening addresses, from [l2tp] listen. Empty: we are
	// not an LNS (LAC only).
	Listen []netip.AddrPort
	// AcceptUnknownPeers: a LAC that matches no [[peer]] may open tunnels
	// with the [l2tp] and [ppp] defaults.
	AcceptUnknownPeers bool

	L2TP L2TP // [l2tp]: defaults for every tunnel
	PPP  PPP  // [ppp]: the default PPP profile
	// Profiles are the named PPP profiles ([ppp.profile.NAME]), each a
	// complete copy of [ppp] with its own keys applied.
	Profiles map[string]*PPP

	Peers       []Peer       // [[peer]], in file order (first match wins)
	Pools       []Pool       // [[pool]]
	Subscribers []Subscriber // [[subscriber]]
	LACs        []LAC        // [[lac]]
	RADIUS      RADIUS       // [radius]
	API         API          // [api] (config/mgmt.go)
	Metrics     Metrics      // [metrics] (config/mgmt.go)

	unknownPeer Peer // what MatchPeer returns for unknown peers
}

// L2TP holds the settings of one tunnel. Config.L2TP has the defaults;
// every Peer and LAC carries a complete resolved copy.
type L2TP struct {
	HostName       string        // Host Name AVP we send
	HelloInterval  time.Duration // 0: no Hello
	RTimeout       time.Duration // first retransmission timeout
	RTimeoutCap    time.Duration // retransmission timeout ceiling (>= 8s)
	Retransmit     int           // retransmissions before the tunnel is torn down
	RecvWindow     int           // our Receive Window Size AVP (1..65535)
	HideAVPs       bool          // hide sensitive AVPs (RFC 2661 4.3); needs Secret
	Secret         []byte        // tunnel secret; empty: none
	Challenge      ChallengeMode // do we demand that the peer authenticate
	DataSeq        Policy        // sequence numbers on data messages
	ReorderTimeout time.Duration // hold out-of-order data this long (0: drop)
	PPPMaxMTU      int           // ceiling for the PPP MTU/MRU on these tunnels

	// Limits. In [l2tp] they apply to the whole daemon; a peer inherits
	// them (so by default a peer is limited only by the global numbers)
	// and may set lower ones that apply to it alone. 0 = no limit.
	MaxTunnels           int
	MaxSessions          int
	MaxSessionsPerTunnel int
	MaxStarting          int // session setups (incoming calls) in flight
	// MaxStartingWait: an incoming call over MaxStarting is held this long
	// for a slot (its ICRQ acknowledged, not answered) before it is
	// refused; 0 refuses it at once.
	MaxStartingWait time.Duration
}

// Peer is a resolved [[peer]]: the LACs it matches and the settings
// their tunnels get.
type Peer struct {
	Name          string
	MatchAddress  []AddrRange // empty: any address
	MatchHostName []string    // lower-case globs (path.Match); empty: any
	// Refuse: matching LACs are refused (StopCCN, not authorized).
	Refuse bool
	L2TP
	PPPProfile string // "" = [ppp]
	// IPPool is the pool for subscribers of this peer: the peer's own
	// ip_pool, or its PPP profile's.
	IPPool string
}

// PPP is a resolved PPP profile.
type PPP struct {
	Name            string // "" for [ppp]
	MRU             int
	MTU             int
	Auth            []AuthMethod // offered to the subscriber, in order of preference
	LCPEchoInterval time.Duration
	LCPEchoFailure  int
	RestartTimer    time.Duration
	MaxConfigure    int
	MaxFailure      int
	MaxTerminate    int
	IPv4            Policy
	IPv6            Policy
	DNS             [2]netip.Addr // zero: not offered
	NBNS            [2]netip.Addr
	IPPool          string // "" only when no pool is configured
	IfName          string // interface name pattern, one %d; "" lets the data path choose
	Authenticator   AuthenticatorKind
	SingleSession   SingleSession
}

// Pool is an IPv4 address pool.
type Pool struct {
	Name   string
	Ranges []AddrRange // IPv4, non-overlapping
	// Gateway is our address on subscriber links; the pool must never
	// hand it out (it may lie inside Ranges).
	Gateway netip.Addr
}

// Subscriber is a local subscriber (authenticator = "local").
type Subscriber struct {
	Name     string
	Password []byte
	Address  netip.Addr // fixed address; zero: from a pool
	Pool     string     // "" = the profile's pool
	Disabled bool
}

// LAC is a resolved [[lac]]: a tunnel we dial as LAC.
type LAC struct {
	Name  string
	LNS   string     // "host:port" (the host may be a DNS name)
	Local netip.Addr // source address; zero: chosen by the kernel
	L2TP
	PPPProfile string // "" = [ppp]
	Redial     bool
	RedialMin  time.Duration // exponential backoff with jitter between
	RedialMax  time.Duration // RedialMin and RedialMax
	Sessions   int           // calls to place and keep up
	Username   string        // what we authenticate with as PPP peer
	Password   []byte
	Auth       []AuthMethod // methods we accept to authenticate with
}

// Load reads and parses the configuration file at path. Files it names
// (secret_file, password_file) are read relative to path's directory.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &Error{File: path, Msg: "cannot read the configuration file: " + err.Error(), err: err}
	}
	return Parse(data, path)
}

// Parse parses a configuration. filename is used in error messages and
// its directory is the base of relative secret_file/password_file paths.
// The error, if any, joins one *Error per problem, sorted by line.
func Parse(data []byte, filename string) (*Config, error) {
	dir := filepath.Dir(filename)
	return parse(data, filename, func(name string) ([]byte, error) {
		if !filepath.IsAbs(name) {
			name = filepath.Join(dir, name)
		}
		return os.ReadFile(name)
	})
}

// MatchPeer returns the peer settings for a LAC at addr that sent the
// Host Name hostName: the first [[peer]] that matches both its
// match_address and match_host_name (a missing list matches anything).
// When none matches it returns the [l2tp]/[ppp] defaults if
// accept_unknown_peers is true, and ok=false otherwise. A matching peer
// with Refuse set is returned with ok=true: the caller refuses it.
// IPv4-mapped IPv6 addresses are matched as IPv4.
func (c *Config) MatchPeer(addr netip.Addr, hostName string) (*Peer, bool) {
	addr = addr.Unmap()
	host := strings.ToLower(hostName)
	for i := range c.Peers {
		if c.Peers[i].matches(addr, host) {
			return &c.Peers[i], true
		}
	}
	if c.AcceptUnknownPeers {
		return &c.unknownPeer, true
	}
	return nil, false
}

func (p *Peer) matches(addr netip.Addr, lowerHost string) bool {
	if len(p.MatchAddress) > 0 {
		in := false
		for _, r := range p.MatchAddress {
			if r.Contains(addr) {
				in = true
				break
			}
		}
		if !in {
			return false
		}
	}
	if len(p.MatchHostName) > 0 {
		for _, g := range p.MatchHostName {
			if globMatch(g, lowerHost) {
				return true
			}
		}
		return false
	}
	return true
}

// PPPProfile returns the resolved PPP profile name ("" = [ppp]), or nil if
// there is no such profile.
func (c *Config) PPPProfile(name string) *PPP {
	if name == "" {
		return &c.PPP
	}
	return c.Profiles[name]
}

// Pool returns the pool with that name, or nil.
func (c *Config) Pool(name string) *Pool {
	for i := range c.Pools {
		if c.Pools[i].Name == name {
			return &c.Pools[i]
		}
	}
	return nil
}
