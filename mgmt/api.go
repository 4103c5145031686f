// Package mgmt is l2tpd's management API: versioned JSON requests and
// responses over a Unix stream socket, one JSON object per line.
//
// The daemon implements Backend and serves it with Server; l2tpctl talks
// to it with Client, which implements Backend too, so every command can be
// tested against a live server with a fake backend (package mgmt/fake).
//
// Wire format (protocol version 1). A request is one line:
//
//	{"v":1,"id":7,"method":"show.sessions","params":{"user":"alice"}}
//
// and its response one line:
//
//	{"v":1,"id":7,"result":[...]}            on success
//	{"v":1,"id":7,"error":{"code":"not_found","message":"..."}}
//
// Unknown fields are ignored in both directions so that a newer l2tpctl
// can talk to an older daemon of the same major version; a request with a
// different "v" is answered with code "unsupported_version".
package mgmt

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// ProtocolVersion is the version of the wire format this package speaks.
const ProtocolVersion = 1

// DefaultSocket is where the daemon listens unless [api] socket says
// otherwise.
const DefaultSocket = "/run/l2tpd/l2tpd.sock"

// MaxMessageSize bounds one request or response line. Responses listing
// many sessions are larger than requests, hence two limits.
const (
	MaxRequestSize  = 64 << 10
	MaxResponseSize = 256 << 20
)

// Method names a request.
type Method string

const (
	MethodShowTunnels  Method = "show.tunnels"
	MethodShowSessions Method = "show.sessions"
	MethodShowStats    Method = "show.stats"
	MethodShowPools    Method = "show.pools"
	MethodShowPeers    Method = "show.peers"
	MethodTerminate    Method = "terminate"
	MethodReload       Method = "reload"
	MethodDrain        Method = "drain"
	MethodUndrain      Method = "undrain"
	MethodShutdown     Method = "shutdown"
	MethodLogLevel     Method = "log.level"
	MethodTrace        Method = "log.trace"
)

// Methods lists every method, for validation and documentation.
var Methods = []Method{MethodShowTunnels, MethodShowSessions, MethodShowStats, MethodShowPools,
	MethodShowPeers, MethodTerminate, MethodReload, MethodDrain, MethodUndrain, MethodShutdown,
	MethodLogLevel, MethodTrace}

// Valid reports whether m is a known method.
func (m Method) Valid() bool {
	for _, k := range Methods {
		if m == k {
			return true
		}
	}
	return false
}

func (m Method) String() string { return string(m) }

// Code classifies an error returned over the API.
type Code string

const (
	CodeBadRequest         Code = "bad_request"         // malformed request or parameters
	CodeUnsupportedVersion Code = "unsupported_version" // "v" is not ProtocolVersion
	CodeUnknownMethod      Code = "unknown_method"
	CodeNotFound           Code = "not_found"      // nothing matched
	CodeInvalidConfig      Code = "invalid_config" // reload refused; the old config keeps running
	CodeUnavailable        Code = "unavailable"    // e.g. shutting down
	CodeInternal           Code = "internal"
)

func (c Code) String() string { return string(c) }

// Error is an error with a code, as carried in a response. A Backend may
// return one (wrapped or not) to choose the code; any other error is sent
// as CodeInternal with its message.
type Error struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return e.Message }

// Errorf returns an *Error with code c.
func Errorf(c Code, format string, args ...any) error {
	return &Error{Code: c, Message: fmt.Sprintf(format, args...)}
}

// CodeOf returns the code of err: the code of an *Error in its chain, or
// CodeInternal.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}

// Filter selects tunnels or sessions. Zero fields match anything; set
// fields must all match. Filter{} matches everything.
type Filter struct {
	// ID is a session's ID (Session.ID) or, for tunnels, the tunnel ID in
	// decimal.
	ID string `json:"id,omitempty"`
	// User: the PPP user name, exact (case-sensitive, as RADIUS sees it).
	User string `json:"user,omitempty"`
	// Address: the subscriber's IPv4 or IPv6 address.
	Address netip.Addr `json:"address,omitzero"`
	// Peer: the [[peer]]/[[lac]] name, or the peer's IP address.
	Peer string `json:"peer,omitempty"`
	// Tunnel: our tunnel ID.
	Tunnel uint32 `json:"tunnel,omitempty"`
	// CallingNumber: the Calling Number AVP, exact.
	CallingNumber string `json:"calling_number,omitempty"`
}

// IsZero reports whether f matches everything.
func (f Filter) IsZero() bool { return f == Filter{} }

// String describes the filter for messages: "user=alice tunnel=3".
func (f Filter) String() string {
	var p []string
	if f.ID != "" {
		p = append(p, "id="+f.ID)
	}
	if f.User != "" {
		p = append(p, "user="+f.User)
	}
	if f.Address.IsValid() {
		p = append(p, "address="+f.Address.String())
	}
	if f.Peer != "" {
		p = append(p, "peer="+f.Peer)
	}
	if f.Tunnel != 0 {
		p = append(p, fmt.Sprintf("tunnel=%d", f.Tunnel))
	}
	if f.CallingNumber != "" {
		p = append(p, "calling-number="+f.CallingNumber)
	}
	if len(p) == 0 {
		return "everything"
	}
	return strings.Join(p, " ")
}

func matchPeer(want, name string, addr netip.AddrPort) bool {
	if want == "" || want == name {
		return true
	}
	if a, err := netip.ParseAddr(want); err == nil && addr.IsValid() {
		return a.Unmap() == addr.Addr().Unmap()
	}
	return false
}

// MatchSession reports whether s passes the filter.
func (f *Filter) MatchSession(s *Session) bool {
	return (f.ID == "" || f.ID == s.ID) &&
		(f.User == "" || f.User == s.User) &&
		(!f.Address.IsValid() || f.Address.Unmap() == s.Address.Unmap() || f.Address == s.AddressV6) &&
		matchPeer(f.Peer, s.Peer, s.PeerAddr) &&
		(f.Tunnel == 0 || f.Tunnel == s.TunnelID) &&
		(f.CallingNumber == "" || f.CallingNumber == s.CallingNumber)
}

// MatchTunnel reports whether t passes the filter. Session-only fields
// (user, address, calling number) must be empty to match any tunnel.
func (f *Filter) MatchTunnel(t *Tunnel) bool {
	if f.User != "" || f.Address.IsValid() || f.CallingNumber != "" {
		return false
	}
	return (f.ID == "" || f.ID == fmt.Sprint(t.ID)) &&
		matchPeer(f.Peer, t.Peer, t.PeerAddr) &&
		(f.Tunnel == 0 || f.Tunnel == t.ID)
}

// Tunnel is one row of `show tunnels`.
type Tunnel struct {
	ID        uint32         `json:"id"`      // ours
	PeerID    uint32         `json:"peer_id"` // the peer's tunnel ID
	Role      string         `json:"role"`    // "lns" (the LAC dialled us) or "lac" (we dialled)
	Peer      string         `json:"peer"`    // [[peer]] or [[lac]] name; "" for an unknown peer
	PeerAddr  netip.AddrPort `json:"peer_addr"`
	LocalAddr netip.AddrPort `json:"local_addr"`
	HostName  string         `json:"host_name"` // the peer's Host Name AVP
	State     string         `json:"state"`
	Sessions  int            `json:"sessions"`
	Started   time.Time      `json:"started"`
	// Control-channel counters.
	Retransmits uint64 `json:"retransmits"`
	TxQueue     int    `json:"tx_queue"` // control messages awaiting acknowledgement
}

// Session is one row of `show sessions`.
type Session struct {
	// ID names the session for terminate: "<tunnel>/<session>" with our IDs.
	ID            string         `json:"id"`
	TunnelID      uint32         `json:"tunnel_id"`
	SessionID     uint32         `json:"session_id"`
	User          string         `json:"user"`
	Address       netip.Addr     `json:"address,omitzero"`    // IPv4 given by IPCP
	AddressV6     netip.Addr     `json:"address_v6,omitzero"` // delegated/framed IPv6, if any
	Interface     string         `json:"interface"`
	Peer          string         `json:"peer"`
	PeerAddr      netip.AddrPort `json:"peer_addr"`
	CallingNumber string         `json:"calling_number"`
	CalledNumber  string         `json:"called_number"`
	State         string         `json:"state"`
	Started       time.Time      `json:"started"`
	RxBytes       uint64         `json:"rx_bytes"` // from the subscriber
	TxBytes       uint64         `json:"tx_bytes"` // to the subscriber
	RxPackets     uint64         `json:"rx_packets"`
	TxPackets     uint64         `json:"tx_packets"`
	Tracing       bool           `json:"tracing,omitempty"`
}

// SessionID formats a Session.ID from our tunnel and session IDs.
func SessionID(tunnel, session uint32) string { return fmt.Sprintf("%d/%d", tunnel, session) }

// Stats is `show stats`.
type Stats struct {
	Version  string    `json:"version"` // l2tpd version
	Config   string    `json:"config"`  // configuration file in use
	Started  time.Time `json:"started"`
	Reloaded time.Time `json:"reloaded,omitzero"`
	Draining bool      `json:"draining"`
	// ShuttingDown: `shutdown --soft` is waiting for sessions to end.
	ShuttingDown bool   `json:"shutting_down"`
	LogLevel     string `json:"log_level"`
	DataPlane    string `json:"dataplane"`

	TunnelsByState map[string]int `json:"tunnels_by_state"`
	// SessionsByState counts calls held for a max_starting slot as
	// "held".
	SessionsByState map[string]int `json:"sessions_by_state"`
	// Held counts the calls held for a max_starting slot since the start.
	Held HeldCalls `json:"held_calls"`

	TunnelSetups    uint64            `json:"tunnel_setups"`
	TunnelFailures  map[string]uint64 `json:"tunnel_failures"` // by cause
	SessionSetups   uint64            `json:"session_setups"`
	SessionFailures map[string]uint64 `json:"session_failures"` // by cause
	PPPFailures     map[string]uint64 `json:"ppp_failures"`     // by protocol/phase
	Retransmits     uint64            `json:"retransmits"`      // control channel, all tunnels

	RxBytes uint64 `json:"rx_bytes"`
	TxBytes uint64 `json:"tx_bytes"`

	RADIUS         []RADIUSServer `json:"radius"`
	AcctSpoolDepth int            `json:"acct_spool_depth"`
}

// HeldCalls counts the incoming calls held for a max_starting slot (ICRQ
// acknowledged, answered when a slot frees, refused with CDN result 4
// after max_starting_wait). Held now is in Stats.SessionsByState["held"].
type HeldCalls struct {
	Total    uint64 `json:"total"`    // ever held
	Admitted uint64 `json:"admitted"` // admitted after being held
	Expired  uint64 `json:"expired"`  // max_starting_wait ran out (CDN result 4)
	Ended    uint64 `json:"ended"`    // ended otherwise: LAC's CDN, tunnel down, refused when retried
	// MaxWait is the longest wait before an admission; OldestWait how
	// long the oldest call held now has waited.
	MaxWait    time.Duration `json:"max_wait_ns"`
	OldestWait time.Duration `json:"oldest_wait_ns"`
}

// RADIUSServer is one RADIUS server's counters.
type RADIUSServer struct {
	Server   string `json:"server"` // "host:port"
	Kind     string `json:"kind"`   // "auth" or "acct"
	Requests uint64 `json:"requests"`
	Accepts  uint64 `json:"accepts"`
	Rejects  uint64 `json:"rejects"`
	Timeouts uint64 `json:"timeouts"`
	// Latency of answered requests: mean and 99th percentile.
	LatencyAvg time.Duration `json:"latency_avg_ns"`
	LatencyP99 time.Duration `json:"latency_p99_ns"`
}

// Pool is one row of `show pools`.
type Pool struct {
	Name    string     `json:"name"`
	Ranges  []string   `json:"ranges"`
	Gateway netip.Addr `json:"gateway,omitzero"`
	Size    int        `json:"size"`
	Used    int        `json:"used"`
}

// Free is the number of addresses left.
func (p *Pool) Free() int { return p.Size - p.Used }

// Peer is one row of `show peers`: a configured [[peer]] or [[lac]].
type Peer struct {
	Name     string   `json:"name"`
	Role     string   `json:"role"`  // "lns" ([[peer]]: LACs dial us) or "lac" ([[lac]]: we dial)
	Match    []string `json:"match"` // match_address / host globs, or the LNS address
	Refuse   bool     `json:"refuse,omitempty"`
	Tunnels  int      `json:"tunnels"`
	Sessions int      `json:"sessions"`
	Tracing  bool     `json:"tracing,omitempty"`
}

// Target says what terminate tears down.
type Target string

const (
	TargetSessions Target = "sessions" // sessions matching the filter (CDN)
	TargetTunnels  Target = "tunnels"  // tunnels matching the filter, with their sessions (StopCCN)
)

// TerminateRequest asks to end sessions or tunnels.
type TerminateRequest struct {
	Target Target `json:"target"`
	Filter Filter `json:"filter"`
	// All must be set for an empty filter, so that a typo cannot end
	// every session.
	All bool `json:"all,omitempty"`
	// Hard: drop at once, without LCP Terminate-Request / CDN exchange.
	// The accounting Stop is sent either way.
	Hard bool `json:"hard,omitempty"`
}

// Validate checks the request as the server does before calling the
// backend.
func (r *TerminateRequest) Validate() error {
	if r.Target != TargetSessions && r.Target != TargetTunnels {
		return Errorf(CodeBadRequest, "terminate: target %q: want %q or %q", r.Target, TargetSessions, TargetTunnels)
	}
	if r.Filter.IsZero() && !r.All {
		return Errorf(CodeBadRequest, "terminate: no filter given; name what to terminate, or set all to end every %s", strings.TrimSuffix(string(r.Target), "s"))
	}
	if !r.Filter.IsZero() && r.All {
		return Errorf(CodeBadRequest, "terminate: all and a filter (%s) are both set; choose one", r.Filter)
	}
	return nil
}

// TerminateResult says what was ended.
type TerminateResult struct {
	Sessions int `json:"sessions"`
	Tunnels  int `json:"tunnels"`
}

// ReloadResult reports a successful reload. A refused reload is an error
// with CodeInvalidConfig whose message carries the config errors.
type ReloadResult struct {
	Config  string   `json:"config"`  // the file read
	Changes []string `json:"changes"` // human summary of what differs, may be empty
}

// Status is the daemon's admission state, returned by drain/undrain.
type Status struct {
	Draining     bool `json:"draining"`
	ShuttingDown bool `json:"shutting_down"`
	Tunnels      int  `json:"tunnels"`
	Sessions     int  `json:"sessions"` // admitted calls: up, or still setting up
}

// ShutdownRequest asks the daemon to exit.
type ShutdownRequest struct {
	// Soft: drain, and exit when the last session has gone. Otherwise
	// StopCCN every tunnel and exit now.
	Soft bool `json:"soft"`
}

// LogLevelRequest changes the log level; an empty Level only reads it.
type LogLevelRequest struct {
	Level string `json:"level,omitempty"`
}

// LogLevels lists the levels the daemon accepts.
var LogLevels = []string{"debug", "info", "warn", "error"}

// LogLevelResult reports the level before and after.
type LogLevelResult struct {
	Previous string `json:"previous"`
	Level    string `json:"level"`
}

// TraceRequest turns debug tracing on or off for one user or one peer,
// whatever the global level. An empty request only lists active traces.
type TraceRequest struct {
	User string `json:"user,omitempty"`
	Peer string `json:"peer,omitempty"` // peer name or address
	Off  bool   `json:"off,omitempty"`
	// For: how long the trace lasts (0: until turned off).
	For time.Duration `json:"for_ns,omitempty"`
}

// Validate checks the request.
func (r *TraceRequest) Validate() error {
	if r.User != "" && r.Peer != "" {
		return Errorf(CodeBadRequest, "trace: give a user or a peer, not both")
	}
	if r.User == "" && r.Peer == "" && (r.Off || r.For != 0) {
		return Errorf(CodeBadRequest, "trace: name a user or a peer")
	}
	if r.For < 0 {
		return Errorf(CodeBadRequest, "trace: negative duration %s", r.For)
	}
	return nil
}

// Trace is one active debug trace.
type Trace struct {
	User    string    `json:"user,omitempty"`
	Peer    string    `json:"peer,omitempty"`
	Expires time.Time `json:"expires,omitzero"` // zero: until turned off
}
