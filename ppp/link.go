package ppp

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"time"

	"github.com/l2tpd/l2tpd/auth"
)

// Role says which side of authentication a Link takes.
type Role uint8

// Roles.
const (
	RoleAuthenticator Role = iota // LNS: we authenticate the peer
	RolePeer                      // LAC dialling out: we prove who we are
)

func (r Role) String() string {
	switch r {
	case RoleAuthenticator:
		return "authenticator"
	case RolePeer:
		return "peer"
	}
	return fmt.Sprintf("role-%d", uint8(r))
}

// Policy says whether a network control protocol is negotiated.
type Policy uint8

// Policies. The zero value allows the protocol.
const (
	PolicyAllow   Policy = iota // negotiate; the link stays up without it
	PolicyRequire               // negotiate; the link goes down without it
	PolicyDisable               // Protocol-Reject it
)

func (p Policy) String() string {
	switch p {
	case PolicyAllow:
		return "allow"
	case PolicyRequire:
		return "require"
	case PolicyDisable:
		return "disable"
	}
	return fmt.Sprintf("policy-%d", uint8(p))
}

// Phase is the link phase (RFC 1661 section 3.2).
type Phase uint8

// Phases.
const (
	PhaseDead Phase = iota
	PhaseEstablish
	PhaseAuthenticate
	PhaseNetwork
	PhaseTerminate
)

func (p Phase) String() string {
	switch p {
	case PhaseDead:
		return "dead"
	case PhaseEstablish:
		return "establish"
	case PhaseAuthenticate:
		return "authenticate"
	case PhaseNetwork:
		return "network"
	case PhaseTerminate:
		return "terminate"
	}
	return fmt.Sprintf("phase-%d", uint8(p))
}

// Config configures a Link. Zero values take the defaults noted.
type Config struct {
	Role Role
	// MRU we ask for (default 1500: not requested).
	MRU int
	// AuthMethods in order of preference. Authenticator: we propose the
	// first and accept a Nak'd one from this list; empty means no
	// authentication. Peer: the methods we agree to (empty: all).
	AuthMethods []auth.Method
	// Username and Password: peer role credentials.
	Username, Password string
	// Hostname is our CHAP name (default "l2tpd").
	Hostname string
	// EchoInterval between LCP Echo-Requests in Opened (default 30 s,
	// negative disables); EchoFailures unanswered ones close the link
	// (default 4).
	EchoInterval time.Duration
	EchoFailures int
	// RFC 1661 counters and timer (defaults 3 s, 10, 5, 2).
	RestartTimer                           time.Duration
	MaxConfigure, MaxFailure, MaxTerminate int
	// AuthTimeout bounds the authentication phase (default 30 s).
	AuthTimeout time.Duration
	// IPv4 (IPCP) and IPv6 (IPv6CP) policies.
	IPv4, IPv6 Policy
	// AcceptPeerAddress: authenticator role, when SetAddresses gave no
	// peer address, acknowledge the address the peer asks for.
	AcceptPeerAddress bool
	// RequestDNS: peer role, ask for primary and secondary DNS.
	RequestDNS bool
	// Session is copied into every auth.Request.
	Session auth.SessionInfo
	// Rand supplies magic numbers, challenges and interface identifiers
	// (default crypto/rand).
	Rand io.Reader
}

func (c *Config) setDefaults() {
	if c.MRU == 0 {
		c.MRU = defaultMRU
	}
	c.MRU = max(c.MRU, minMRU)
	if c.Hostname == "" {
		c.Hostname = defaultHostname
	}
	if c.EchoInterval == 0 {
		c.EchoInterval = echoIntervalDefault
	}
	if c.EchoFailures <= 0 {
		c.EchoFailures = echoFailuresDefault
	}
	if c.RestartTimer <= 0 {
		c.RestartTimer = restartTimerDefault
	}
	if c.MaxConfigure <= 0 {
		c.MaxConfigure = maxConfigureDefault
	}
	if c.MaxFailure <= 0 {
		c.MaxFailure = maxFailureDefault
	}
	if c.MaxTerminate <= 0 {
		c.MaxTerminate = maxTerminateDefault
	}
	if c.AuthTimeout <= 0 {
		c.AuthTimeout = authTimeoutDefault
	}
	if c.Rand == nil {
		c.Rand = rand.Reader
	}
}

// Action is something the caller must do, drained with Link.Actions.
type Action interface{ isAction() }

// SendFrame: send Frame (protocol field first) to the peer. The Link does
// not keep Frame.
type SendFrame struct{ Frame []byte }

// NeedAuth: check these credentials and call Link.AuthDone.
type NeedAuth struct{ Req *auth.Request }

// NeedAddress: authentication succeeded (Result is the authenticator's
// answer, nil without authentication); call Link.SetAddresses with what
// IPCP should offer.
type NeedAddress struct{ Result *auth.Result }

// NetworkUp: the network layer is up, or changed (emitted again when
// another NCP opens or one closes).
type NetworkUp struct {
	IPv4, IPv6  bool // which NCPs are open
	Local, Peer netip.Addr
	DNS, NBNS   [2]netip.Addr // authenticator: offered; peer: received
	LocalIfID   [8]byte
	PeerIfID    [8]byte
	MTU         int // the peer's MRU: the largest frame we may send
	MRU         int // ours
}

// LinkDown: the link is finished; Reason says why (for logs and the
// L2TP CDN). It is emitted once; the Link may still answer frames.
type LinkDown struct{ Reason string }

func (SendFrame) isAction()   {}
func (NeedAuth) isAction()    {}
func (NeedAddress) isAction() {}
func (NetworkUp) isAction()   {}
func (LinkDown) isAction()    {}

// settings is a Link's copy of its Config, without Session (kept apart,
// and only when one is given: a caller that fills auth.Request.Session
// itself saves its ~170 bytes per link).
type settings struct {
	Role                                    Role
	IPv4, IPv6                              Policy
	AcceptPeerAddress, RequestDNS           bool
	MRU                                     int
	AuthMethods                             []auth.Method
	Username, Password, Hostname            string
	EchoInterval, RestartTimer, AuthTimeout time.Duration
	EchoFailures                            int
	MaxConfigure, MaxFailure, MaxTerminate  int
	Rand                                    io.Reader
}

// Link is one PPP link: LCP, authentication, IPCP and IPv6CP.
type Link struct {
	// Its layers point back at it (Init): a copy would drive the
	// original. go vet reports one (noCopy).
	_       noCopy
	cfg     settings
	session *auth.SessionInfo // Config.Session, nil when zero
	actions []Action
	phase   Phase
	// peerNCPSeen: the peer sent an NCP packet, so it is in the network
	// phase (it got our CHAP Success).
	peerNCPSeen bool

	lcp    lcpLayer
	ipcp   ipcpLayer
	ipv6cp ipv6cpLayer
	au     authState

	// Timers are nanoseconds after base (tstamp): 8 bytes and no pointer
	// each instead of a time.Time's 24 bytes with one.
	base        time.Time
	echoTimer   tstamp
	echoPending int
	echoID      uint8

	result     *auth.Result
	sessionEnd tstamp
	idle       time.Duration
	lastData   tstamp

	addrSet    bool
	netMask    uint8 // NCPs reported in the last NetworkUp
	downSent   bool
	reason     string
	earlyAuth  []byte // an auth frame that arrived before LCP opened
	protoRejID uint8
	// out is the chunk the frames sent during negotiation are carved
	// from (sendPacket); dropped when the network comes up.
	out []byte
}

// noCopy has the methods go vet's copylocks check looks for, so that a
// Link copied by value is reported.
type noCopy struct{}

func (*noCopy) Lock()   {}
func (*noCopy) Unlock() {}

// NewLink returns a link in the Dead phase; Open starts it.
func NewLink(cfg Config, now time.Time) *Link {
	l := new(Link)
	l.Init(cfg, now)
	return l
}

// Init makes l, a zero Link, what NewLink returns. It is for a Link that
// is a field of its owner's state, allocated with it: the owner and its
// link, both reached for every frame and timer tick of a session, then lie
// side by side in memory instead of wherever the allocator put each.
func (l *Link) Init(cfg Config, now time.Time) {
	cfg.setDefaults()
	*l = Link{cfg: settings{
		Role: cfg.Role, IPv4: cfg.IPv4, IPv6: cfg.IPv6,
		AcceptPeerAddress: cfg.AcceptPeerAddress, RequestDNS: cfg.RequestDNS,
		MRU: cfg.MRU, AuthMethods: slices.Clone(cfg.AuthMethods),
		Username: cfg.Username, Password: cfg.Password, Hostname: cfg.Hostname,
		EchoInterval: cfg.EchoInterval, RestartTimer: cfg.RestartTimer, AuthTimeout: cfg.AuthTimeout,
		EchoFailures: cfg.EchoFailures, MaxConfigure: cfg.MaxConfigure, MaxFailure: cfg.MaxFailure,
		MaxTerminate: cfg.MaxTerminate, Rand: cfg.Rand,
	}, base: now.Add(-time.Hour)}
	if cfg.Session != (auth.SessionInfo{}) {
		s := cfg.Session
		l.session = &s
	}
	l.lcp.init(l)
	l.ipcp.init(l)
	l.ipv6cp.init(l)
}

// Phase returns the current phase.
func (l *Link) Phase() Phase { return l.phase }

// LCPState, IPCPState and IPv6CPState expose the automata (for stats).
func (l *Link) LCPState() State    { return l.lcp.f.state }
func (l *Link) IPCPState() State   { return l.ipcp.f.state }
func (l *Link) IPv6CPState() State { return l.ipv6cp.f.state }

// Open signals that the lower layer is up: LCP starts negotiating.
func (l *Link) Open(now time.Time) {
	if l.lcp.f.state != StateInitial && l.lcp.f.state != StateStarting {
		return
	}
	l.phase = PhaseEstablish
	l.lcp.f.event(now, EvOpen, Packet{}, 0, nil)
	l.lcp.f.event(now, EvUp, Packet{}, 0, nil)
}

// Close closes the link administratively: LCP Terminate, then LinkDown
// with reason.
func (l *Link) Close(now time.Time, reason string) { l.fail(now, reason) }

// Down signals that the lower layer went away: LinkDown at once.
func (l *Link) Down(now time.Time, reason string) {
	if l.reason == "" {
		l.reason = reason
	}
	l.lcp.f.event(now, EvDown, Packet{}, 0, nil)
	l.emitDown()
}

// DataSeen tells the link that subscriber traffic passed (the caller
// compares the data path's counters); it restarts the idle timer.
func (l *Link) DataSeen(now time.Time) { l.lastData = l.stamp(now) }

// Actions appends the pending actions to dst and clears them.
func (l *Link) Actions(dst []Action) []Action {
	dst = append(dst, l.actions...)
	clear(l.actions)
	l.actions = l.actions[:0]
	return dst
}

// Deadline is when Tick must next be called (zero: no timer).
func (l *Link) Deadline() time.Time {
	var d tstamp
	for _, t := range [...]tstamp{l.lcp.f.timer, l.ipcp.f.timer, l.ipv6cp.f.timer, l.au.timer, l.au.deadline, l.echoTimer, l.sessionEnd, l.idleDeadline()} {
		if t != 0 && (d == 0 || t < d) {
			d = t
		}
	}
	if d == 0 {
		return time.Time{}
	}
	return l.base.Add(time.Duration(d))
}

// tstamp is a point in time as nanoseconds after Link.base; 0 is "not
// set". The base lies an hour before the link was made, so that no timer
// of the link falls on it.
type tstamp int64

// stamp converts t (monotonic readings are used when t and base both
// have them, as time.Time.Sub does).
func (l *Link) stamp(t time.Time) tstamp {
	d := tstamp(t.Sub(l.base))
	if d == 0 {
		d = 1
	}
	return d
}

// after is now+d.
func (l *Link) after(now time.Time, d time.Duration) tstamp { return l.stamp(now.Add(d)) }

// due reports whether the timer t is set and not after now.
func (l *Link) due(t tstamp, now time.Time) bool { return t != 0 && l.stamp(now) >= t }

// time converts back (zero for 0).
func (l *Link) time(t tstamp) time.Time {
	if t == 0 {
		return time.Time{}
	}
	return l.base.Add(time.Duration(t))
}

func (l *Link) idleDeadline() tstamp {
	if l.idle <= 0 || l.phase != PhaseNetwork {
		return 0
	}
	return l.lastData + tstamp(l.idle)
}

// echoAt is when the next LCP Echo-Request falls due: interval after now,
// rounded up to a whole second when the interval is 2 s or more. The
// echoes of thousands of links with jittered intervals then fall due
// together once a second instead of one every few milliseconds, and
// whoever runs them (one goroutine per tunnel) wakes once for all of them
// and sends their Echo-Requests in one batch. A 30 s interval is late by
// under 1 s; the deadline keeps now's monotonic clock reading (the second
// boundary is taken from the wall clock, so a clock step only shifts the
// grid, never the interval by more than a second).
func echoAt(now time.Time, interval time.Duration) time.Time {
	t := now.Add(interval)
	if interval < 2*time.Second {
		return t
	}
	if r := time.Duration(t.UnixNano() % int64(time.Second)); r > 0 {
		t = t.Add(time.Second - r)
	} else if r < 0 { // before 1970
		t = t.Add(-r)
	}
	return t
}

// Tick runs the timers that are due.
func (l *Link) Tick(now time.Time) {
	if l.successResendDue(now) {
		// Before the NCP retransmission, so the peer enters the network
		// phase first and accepts it.
		l.sendCHAPSuccess(l.au.successMsg)
	}
	l.lcp.f.tick(now)
	l.ipcp.f.tick(now)
	l.ipv6cp.f.tick(now)
	l.authTick(now)
	if l.due(l.echoTimer, now) {
		l.echoTimer = 0
		if l.lcp.f.state == StateOpened {
			if l.echoPending >= l.cfg.EchoFailures {
				l.fail(now, fmt.Sprintf("peer not responding: %d LCP Echo-Requests unanswered", l.echoPending))
			} else {
				l.sendEchoRequest()
				l.echoPending++
				l.echoTimer = l.stamp(echoAt(now, l.cfg.EchoInterval))
			}
		}
	}
	if l.due(l.sessionEnd, now) {
		l.sessionEnd = 0
		l.fail(now, "session timeout")
	}
	if l.due(l.idleDeadline(), now) {
		l.idle = 0
		l.fail(now, "idle timeout")
	}
}

// Input handles one frame from the peer. The frame is not kept.
func (l *Link) Input(now time.Time, frame []byte) {
	if len(frame) > maxFrameLen {
		return
	}
	proto, payload, err := SplitFrame(frame)
	if err != nil {
		return
	}
	l.echoPending = 0
	if l.lcp.f.state == StateInitial || l.lcp.f.state == StateStarting {
		l.Open(now) // the peer is there: start now rather than drop this
	}
	switch proto {
	case ProtoLCP:
		p, err := ParsePacket(payload)
		if err != nil {
			return
		}
		wasOpened := l.lcp.f.state == StateOpened
		l.lcp.f.input(now, p, payload, func(p Packet) bool { return l.lcpExtra(now, p) })
		if p.Code == CodeTermReq && wasOpened {
			if l.reason == "" {
				l.reason = "terminated by peer"
				if len(p.Data) > 0 {
					l.reason += ": " + printable(p.Data)
				}
			}
			l.emitDown()
		}
	case ProtoPAP, ProtoCHAP:
		if l.lcp.f.state != StateOpened {
			l.earlyAuth = append(l.earlyAuth[:0], frame...)
			return
		}
		if proto != protocolOf(l.au.method) {
			return // not negotiated
		}
		p, err := ParsePacket(payload)
		if err != nil {
			return
		}
		l.authInput(now, proto, p)
	case ProtoIPCP:
		l.ncpInput(now, &l.ipcp.f, l.cfg.IPv4, &l.ipcp.early, frame, payload)
	case ProtoIPv6CP:
		l.ncpInput(now, &l.ipv6cp.f, l.cfg.IPv6, &l.ipv6cp.early, frame, payload)
	default:
		if l.lcp.f.state == StateOpened && proto != ProtoIPv4 && proto != ProtoIPv6 {
			l.sendProtocolReject(proto, payload)
		}
	}
}

// successResendDue: we are the authenticator, the peer authenticated with
// CHAP but has sent no NCP packet yet, and an NCP retransmission is due. A
// lost CHAP Success strands a peer like pppd, which never resends its
// Response (RFC 1994 4.2 relies on that); so the Success goes again with
// every NCP retransmission until the peer shows it is in the network phase.
func (l *Link) successResendDue(now time.Time) bool {
	return l.cfg.Role == RoleAuthenticator && l.au.step == authDone && !l.peerNCPSeen &&
		protocolOf(l.au.method) == ProtoCHAP &&
		(l.due(l.ipcp.f.timer, now) || l.due(l.ipv6cp.f.timer, now))
}

func (l *Link) ncpInput(now time.Time, f *fsm, pol Policy, early *[]byte, frame, payload []byte) {
	l.peerNCPSeen = true
	if pol == PolicyDisable {
		if l.lcp.f.state == StateOpened {
			l.sendProtocolReject(f.proto, payload)
		}
		return
	}
	if l.phase != PhaseNetwork || f.state == StateInitial || f.state == StateStarting {
		// Not ready yet (LCP, authentication or addresses pending): keep
		// the latest frame and replay it when the NCP starts.
		*early = append((*early)[:0], frame...)
		return
	}
	p, err := ParsePacket(payload)
	if err != nil {
		return
	}
	f.input(now, p, payload, nil)
}

func (l *Link) lcpExtra(now time.Time, p Packet) bool {
	switch p.Code {
	case CodeEchoReq, CodeDiscardReq:
		if p.Code == CodeEchoReq {
			l.lcp.f.event(now, EvRXR, p, 0, nil)
		}
		return true
	case CodeEchoReply:
		return true // any frame already reset echoPending
	case CodeProtoRej:
		if len(p.Data) < 2 || l.lcp.f.state != StateOpened {
			return true
		}
		switch Protocol(be16(p.Data)) {
		case ProtoIPCP:
			l.ipcp.f.event(now, EvRXJMinus, p, 0, nil)
		case ProtoIPv6CP:
			l.ipv6cp.f.event(now, EvRXJMinus, p, 0, nil)
		case ProtoLCP:
			l.lcp.f.event(now, EvRXJMinus, p, 0, nil)
		case ProtoPAP, ProtoCHAP:
			l.fail(now, "peer rejected the authentication protocol")
		}
		return true
	}
	return false
}

// replyCap bounds every reply by our own limits, never by the peer's MRU
// alone.
func (l *Link) replyCap() int {
	c := min(l.cfg.MRU, defaultMRU)
	if m := int(l.lcp.peerMRU); m != 0 {
		c = min(c, m)
	}
	return c
}

// frameChunk is the size of the buffers the frames of a negotiation are
// carved from (an LNS setup sends about 150 bytes in 7 frames).
const frameChunk = 256

func (l *Link) sendPacket(proto Protocol, p Packet) {
	n := protoLen + headerLen + len(p.Data)
	if l.netMask != 0 || n > frameChunk/4 {
		// The network is up (an Echo now and then: no buffer kept for
		// the session's life), or a large frame.
		fr := make([]byte, 0, n)
		l.actions = append(l.actions, SendFrame{Frame: p.AppendFrame(fr, proto)})
		return
	}
	// During negotiation, frames are carved from one chunk, appended to
	// and never rewritten (the caller may hold a frame as long as it
	// likes); a full chunk is left to the frames in it.
	if cap(l.out)-len(l.out) < n {
		l.out = make([]byte, 0, frameChunk)
	}
	start := len(l.out)
	l.out = p.AppendFrame(l.out, proto)
	l.actions = append(l.actions, SendFrame{Frame: l.out[start:len(l.out):len(l.out)]})
}

func (l *Link) sendProtocolReject(proto Protocol, payload []byte) {
	max := l.replyCap() - protoLen - headerLen - 2
	if len(payload) > max {
		payload = payload[:max]
	}
	data := make([]byte, 0, 2+len(payload))
	data = binary.BigEndian.AppendUint16(data, uint16(proto))
	data = append(data, payload...)
	l.protoRejID++
	l.sendPacket(ProtoLCP, Packet{Code: CodeProtoRej, ID: l.protoRejID, Data: data})
}

func (l *Link) sendEchoRequest() {
	l.echoID++
	var d [4]byte
	binary.BigEndian.PutUint32(d[:], l.lcp.magicForEcho())
	l.sendPacket(ProtoLCP, Packet{Code: CodeEchoReq, ID: l.echoID, Data: d[:]})
}

func (l *Link) sendEchoReply(rx Packet) {
	rest := []byte(nil)
	if len(rx.Data) > 4 {
		rest = rx.Data[4:]
	}
	if max := l.replyCap() - protoLen - headerLen - 4; len(rest) > max {
		rest = rest[:max]
	}
	d := make([]byte, 4, 4+len(rest))
	binary.BigEndian.PutUint32(d, l.lcp.magicForEcho())
	d = append(d, rest...)
	l.sendPacket(ProtoLCP, Packet{Code: CodeEchoReply, ID: rx.ID, Data: d})
}

// fail closes the link with reason (the first reason given wins).
func (l *Link) fail(now time.Time, reason string) {
	if l.reason == "" {
		l.reason = reason
	}
	l.phase = PhaseTerminate
	l.lcp.f.event(now, EvClose, Packet{}, 0, nil)
}

func (l *Link) emitDown() {
	if l.downSent {
		return
	}
	l.downSent = true
	if l.reason == "" {
		l.reason = "LCP negotiation failed"
	}
	l.phase = PhaseDead
	l.echoTimer, l.sessionEnd, l.idle = 0, 0, 0
	l.au.stopTimers()
	l.actions = append(l.actions, LinkDown{Reason: l.reason})
}

func (l *Link) random(b []byte) {
	if _, err := io.ReadFull(l.cfg.Rand, b); err != nil {
		// A failing random source is a programming error of the caller's
		// configuration; fall back to something non-constant.
		for i := range b {
			b[i] ^= byte(i*131) + l.echoID + 1
		}
	}
}

func printable(b []byte) string {
	if len(b) > 128 {
		b = b[:128]
	}
	out := make([]byte, 0, len(b))
	for _, c := range b {
		if c >= 0x20 && c < 0x7f {
			out = append(out, c)
		} else {
			out = append(out, '?')
		}
	}
	return string(out)
}

// enterNetwork starts the NCPs once authentication is done.
func (l *Link) enterNetwork(now time.Time) {
	l.phase = PhaseNetwork
	l.lastData = l.stamp(now)
	if l.cfg.IPv4 == PolicyDisable && l.cfg.IPv6 == PolicyDisable {
		l.fail(now, "no network protocol enabled")
		return
	}
	if l.cfg.IPv4 != PolicyDisable {
		if l.cfg.Role == RoleAuthenticator && !l.addrSet {
			l.actions = append(l.actions, NeedAddress{Result: l.result})
		} else {
			l.startNCP(now, &l.ipcp.f, &l.ipcp.early)
		}
	}
	if l.cfg.IPv6 != PolicyDisable {
		l.startNCP(now, &l.ipv6cp.f, &l.ipv6cp.early)
	}
}

func (l *Link) startNCP(now time.Time, f *fsm, early *[]byte) {
	if f.state != StateInitial && f.state != StateStarting {
		return
	}
	f.event(now, EvOpen, Packet{}, 0, nil)
	f.event(now, EvUp, Packet{}, 0, nil)
	if len(*early) > 0 {
		fr := *early
		*early = nil
		l.Input(now, fr)
	}
}

// SetAddresses supplies what IPCP offers (authenticator role): our
// address, the peer's, DNS and NBNS servers (invalid entries are not
// offered). It may be called before or after NeedAddress.
func (l *Link) SetAddresses(now time.Time, local, peer netip.Addr, dns, nbns [2]netip.Addr) {
	l.ipcp.local, l.ipcp.peer = local, peer
	l.ipcp.reqAddr = local.Is4()
	l.ipcp.dns, l.ipcp.nbns = dns, nbns
	l.addrSet = true
	l.result = nil // NeedAddress is not emitted again
	if l.phase == PhaseNetwork && l.cfg.IPv4 != PolicyDisable {
		l.startNCP(now, &l.ipcp.f, &l.ipcp.early)
	}
}

// ncpChanged re-evaluates the network layer after an NCP opened, closed or
// failed.
func (l *Link) ncpChanged(now time.Time) {
	if l.phase != PhaseNetwork {
		return
	}
	v4 := l.ipcp.f.state == StateOpened
	v6 := l.ipv6cp.f.state == StateOpened
	v4dead := l.cfg.IPv4 == PolicyDisable || l.ipcp.f.state == StateStopped || l.ipcp.f.state == StateClosed
	v6dead := l.cfg.IPv6 == PolicyDisable || l.ipv6cp.f.state == StateStopped || l.ipv6cp.f.state == StateClosed
	switch {
	case l.cfg.IPv4 == PolicyRequire && v4dead:
		l.fail(now, "IPCP failed and IPv4 is required")
		return
	case l.cfg.IPv6 == PolicyRequire && v6dead:
		l.fail(now, "IPv6CP failed and IPv6 is required")
		return
	case v4dead && v6dead:
		l.fail(now, "no network protocol could be negotiated")
		return
	}
	if !v4 && !v6 {
		return
	}
	if l.cfg.IPv4 == PolicyRequire && !v4 || l.cfg.IPv6 == PolicyRequire && !v6 {
		return
	}
	var mask uint8
	if v4 {
		mask |= 1
	}
	if v6 {
		mask |= 2
	}
	if mask == l.netMask {
		return
	}
	l.netMask = mask
	l.out = nil
	up := NetworkUp{IPv4: v4, IPv6: v6, MTU: int(l.lcp.peerMRU), MRU: int(l.lcp.mru)}
	if up.MTU == 0 {
		up.MTU = defaultMRU
	}
	if v4 {
		up.Local, up.Peer = l.ipcp.local, l.ipcp.peer
		if l.cfg.Role == RoleAuthenticator {
			up.DNS, up.NBNS = l.ipcp.dns, l.ipcp.nbns
		} else {
			up.DNS = l.ipcp.gotDNS
		}
	}
	if v6 {
		up.LocalIfID, up.PeerIfID = l.ipv6cp.local, l.ipv6cp.peer
	}
	l.actions = append(l.actions, up)
}
