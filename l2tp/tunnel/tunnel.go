package tunnel

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/l2tpd/l2tpd/l2tp"
	"github.com/l2tpd/l2tpd/l2tp/control"
)

// Framing and bearer capability bits (RFC 2661 4.4.3).
const (
	FramingSync   = 1
	FramingAsync  = 2
	BearerDigital = 1
	BearerAnalog  = 2
)

// DefaultStopHold is how long state is held after a StopCCN: the whole
// retransmission cycle (1+2+4+8+16 s).
const DefaultStopHold = 31 * time.Second

// Policy lets the owner decide about new sessions. It is called inside the
// core, synchronously; it must be fast and must not call back into the
// tunnel.
type Policy interface {
	// AdmitCall decides about a call the peer placed (ICRQ at the LNS, OCRQ
	// at the LAC). A nil result admits it; DeferCall holds it (see
	// Config.CallAdmitWait and RetryDeferred); otherwise a CDN with that
	// result is sent.
	AdmitCall(t *Tunnel, dir Direction, info *CallInfo) *l2tp.ResultCode
}

// DeferCall, returned by Policy.AdmitCall, holds an incoming call instead
// of refusing it: the ICRQ is acknowledged but not answered (the peer's
// call setup waits, it does not fail) until RetryDeferred admits it, for
// at most Config.CallAdmitWait; then it is refused with this result. Later
// calls of the same tunnel queue behind it. A deferred call was not
// admitted: when it ends, no SessionDown is emitted for it (CallAbandoned
// is).
var DeferCall = &l2tp.ResultCode{Result: l2tp.ResultCDNTempResources, Error: l2tp.ErrCodeNoResources,
	Message: "too many session setups in flight: not admitted in time"}

// Config configures one tunnel.
type Config struct {
	// LocalID is our Assigned Tunnel ID (non-zero; 16 bits for L2TPv2).
	LocalID          uint32
	HostName         string
	VendorName       string
	FirmwareRevision uint16
	// Secret is the tunnel secret: it answers the peer's Challenge, checks
	// its Challenge Response and hides AVPs.
	Secret []byte
	// Challenge: send a Challenge; the peer must answer it with Secret.
	Challenge bool
	// HideAVPs: hide the AVPs that may be hidden (needs Secret).
	HideAVPs bool
	// Control configures the reliable channel (windows, retransmission,
	// Hello interval).
	Control control.Config
	// FramingCaps/BearerCaps we advertise (default: sync|async framing).
	FramingCaps uint32
	BearerCaps  uint32
	// MaxSessions per tunnel (0: 65535).
	MaxSessions int
	// StopHold is how long state is held after StopCCN (default 31 s).
	StopHold time.Duration
	// Rand supplies challenges, random vectors, session IDs and tie
	// breakers.
	Rand io.Reader
	// Policy decides about calls placed by the peer (nil: admit all).
	Policy Policy
	// CallAdmitWait is how long a call the Policy deferred (DeferCall)
	// waits for RetryDeferred to admit it before it is refused with
	// DeferCall's result. 0: DeferCall refuses at once.
	CallAdmitWait time.Duration
}

// Tunnel is one L2TP control connection and its sessions.
type Tunnel struct {
	cfg       Config
	state     State
	initiator bool
	ch        *control.Channel

	peerID       uint32
	peerHostName string
	peerVendor   string
	peerFraming  uint32
	peerBearer   uint32
	tieBreaker   uint64

	// challenge we sent (tunnel authentication), nil if none.
	ourChallenge []byte

	sessions   map[uint32]*Session
	reserved   map[uint32]struct{}  // session IDs not to give out (ReserveSessionID)
	byPeer     map[peerKey]*Session // sessions by the peer's ID, once known
	nextSerial uint32
	// deferred: calls held by DeferCall, oldest first (also in sessions,
	// in SessionWaitAdmit).
	deferred []heldCall

	closeAt   time.Time // when StopCCN was sent/received
	downEvent *TunnelDown

	owner any // the runner's handle, for Policy callbacks

	events  []Event
	pending [][]byte // encoded frames to hand out
	scratch []control.Frame
	msgBuf  []byte
	zlbBuf  []byte // the ZLB Output hands out (at most one per call)

	// rx is the message being dispatched and rxRec its record for the
	// channel (session ID, body); both reused by every Receive: nothing
	// keeps them, or values aliasing them, across calls.
	rx    l2tp.Message
	rxRec []byte
	// tx is the message being built (newMsg), reused once send has
	// encoded it; txBusy while one is being built (a message built while
	// another is, e.g. the StopCCN of a failed answer, gets its own).
	tx     l2tp.Message
	txBusy bool
}

// Session is one call inside a tunnel.
type Session struct {
	ID, PeerID uint32
	State      SessionState
	Dir        Direction
	// WeAreLAC: we are the LAC side of this call.
	WeAreLAC bool
	up       bool // beside the other small fields: no padding
	Info     CallInfo
}

// heldCall is a call deferred by the policy and when it is refused (kept
// here, not in every Session).
type heldCall struct {
	s       *Session
	admitBy time.Time
}

// CallInfo describes a call: what the LAC knows about the subscriber's line.
type CallInfo struct {
	SerialNumber      uint32
	BearerType        uint32
	FramingType       uint32
	PhysicalChannelID uint32
	CallingNumber     string
	CalledNumber      string
	SubAddress        string
	TxConnectSpeed    uint32
	RxConnectSpeed    uint32
	MinBPS, MaxBPS    uint32
	PrivateGroupID    string
	// SequencingRequired: the LAC requires sequence numbers on data.
	SequencingRequired bool
	// Proxy LCP and authentication AVPs as received (proxy LCP/auth, later).
	Proxy []l2tp.AVP
}

var errNoTunnelID = errors.New("tunnel: local tunnel ID must be non-zero")

func newTunnel(cfg Config, now time.Time) (*Tunnel, error) {
	if cfg.LocalID == 0 || cfg.LocalID > 0xffff {
		return nil, errNoTunnelID
	}
	if cfg.FramingCaps == 0 {
		cfg.FramingCaps = FramingSync | FramingAsync
	}
	if cfg.StopHold == 0 {
		cfg.StopHold = DefaultStopHold
	}
	if cfg.MaxSessions <= 0 || cfg.MaxSessions > 0xffff {
		cfg.MaxSessions = 0xffff
	}
	if cfg.HideAVPs && len(cfg.Secret) == 0 {
		cfg.HideAVPs = false
	}
	if cfg.Rand == nil {
		return nil, errors.New("tunnel: Config.Rand is required")
	}
	cfg.Control = cfg.Control.WithDefaults()
	t := &Tunnel{
		cfg:      cfg,
		ch:       control.New(cfg.Control, now),
		sessions: make(map[uint32]*Session),
		byPeer:   make(map[peerKey]*Session),
	}
	return t, nil
}

// NewInitiator creates a tunnel that we open: it queues an SCCRQ.
func NewInitiator(cfg Config, now time.Time) (*Tunnel, error) {
	t, err := newTunnel(cfg, now)
	if err != nil {
		return nil, err
	}
	t.initiator = true
	var tb [8]byte
	if _, err := io.ReadFull(cfg.Rand, tb[:]); err != nil {
		return nil, fmt.Errorf("tunnel %d: tie breaker: %w", cfg.LocalID, err)
	}
	t.tieBreaker = binary.BigEndian.Uint64(tb[:])
	m := t.newMsg(l2tp.MsgSCCRQ)
	t.addTunnelAVPs(m)
	m.AddUint64(l2tp.AVPTieBreaker, false, t.tieBreaker)
	if cfg.Challenge && len(cfg.Secret) > 0 {
		if err := t.addChallenge(m); err != nil {
			return nil, err
		}
	}
	t.state = StateWaitCtlReply
	t.send(now, 0, m)
	return t, nil
}

// NewResponder creates a tunnel from a peer's SCCRQ (already parsed with the
// secret of the peer's profile). If the SCCRQ is unacceptable the tunnel
// answers with a StopCCN and goes to Closing; the owner keeps it until Dead
// like any other.
func NewResponder(cfg Config, now time.Time, hdr l2tp.Header, sccrq *l2tp.Message) (*Tunnel, error) {
	t, err := newTunnel(cfg, now)
	if err != nil {
		return nil, err
	}
	// The SCCRQ occupies Ns 0 of the peer's sequence space.
	if _, err := t.ch.Receive(now, hdr.Ns, hdr.Nr, []byte{0}); err != nil {
		return nil, fmt.Errorf("tunnel %d: SCCRQ sequence: %w", cfg.LocalID, err)
	}
	t.handleSCCRQ(now, sccrq)
	return t, nil
}

// NewRefusal answers an unacceptable SCCRQ with a StopCCN carrying rc and
// holds the state for the retransmission cycle.
func NewRefusal(cfg Config, now time.Time, hdr l2tp.Header, sccrq *l2tp.Message, rc l2tp.ResultCode) (*Tunnel, error) {
	t, err := newTunnel(cfg, now)
	if err != nil {
		return nil, err
	}
	if _, err := t.ch.Receive(now, hdr.Ns, hdr.Nr, []byte{0}); err != nil {
		return nil, fmt.Errorf("tunnel %d: SCCRQ sequence: %w", cfg.LocalID, err)
	}
	t.peerID = PeerTunnelID(sccrq)
	t.peerHostName, _ = sccrq.String(l2tp.AVPHostName)
	t.goDown(now, rc, false, "refused: "+rc.Message, true)
	t.events = t.events[:0] // never up: no TunnelDown
	return t, nil
}

// SetPolicyOwner attaches the runner's handle, returned by PolicyOwner.
func (t *Tunnel) SetPolicyOwner(o any) { t.owner = o }

// PolicyOwner returns what SetPolicyOwner attached.
func (t *Tunnel) PolicyOwner() any { return t.owner }

// Acknowledged reports whether every control message we sent has been
// acknowledged.
func (t *Tunnel) Acknowledged() bool { return t.ch.Outstanding() == 0 && t.ch.InFlight() == 0 }

// PeerTunnelID extracts the Assigned Tunnel ID of an SCCRQ (0 if absent or
// malformed), for the owner's duplicate-SCCRQ check.
func PeerTunnelID(m *l2tp.Message) uint32 {
	v, ok, err := m.Uint16(l2tp.AVPAssignedTunnelID)
	if !ok || err != nil {
		return 0
	}
	return uint32(v)
}

// TieBreaker returns the tie breaker of an SCCRQ, if present.
func TieBreaker(m *l2tp.Message) (uint64, bool) {
	v, ok, err := m.Uint64(l2tp.AVPTieBreaker)
	return v, ok && err == nil
}

// TieBreakerWins reports whether our SCCRQ wins against the peer's when both
// sides opened a tunnel to each other at once: the lower value wins (RFC
// 2661 4.4.3); on equal values neither wins and both must give up.
func TieBreakerWins(ours, theirs uint64) bool { return ours < theirs }

// State returns the tunnel state.
func (t *Tunnel) State() State { return t.state }

// LocalID is our tunnel ID; PeerID the peer's (0 until known).
func (t *Tunnel) LocalID() uint32 { return t.cfg.LocalID }
func (t *Tunnel) PeerID() uint32  { return t.peerID }

// PeerHostName is the Host Name AVP the peer sent.
func (t *Tunnel) PeerHostName() string { return t.peerHostName }

// Initiator reports whether we opened the tunnel.
func (t *Tunnel) Initiator() bool { return t.initiator }

// OurTieBreaker is the tie breaker of our SCCRQ (initiator only).
func (t *Tunnel) OurTieBreaker() uint64 { return t.tieBreaker }

// Session returns a session by our ID.
func (t *Tunnel) Session(id uint32) *Session { return t.sessions[id] }

// NumSessions counts sessions not yet closed.
func (t *Tunnel) NumSessions() int { return len(t.sessions) }

// ChannelStats returns the control channel's counters.
func (t *Tunnel) ChannelStats() control.Stats { return t.ch.Stats() }

// Events appends pending events to dst and clears them.
func (t *Tunnel) Events(dst []Event) []Event {
	dst = append(dst, t.events...)
	clear(t.events)
	t.events = t.events[:0]
	return dst
}

// Output appends the datagrams due now to dst. The returned byte slices are
// valid until the next call into the tunnel.
func (t *Tunnel) Output(now time.Time, dst [][]byte) [][]byte {
	if t.state == StateDead {
		return dst
	}
	t.scratch = t.ch.Output(now, t.scratch[:0])
	for _, f := range t.scratch {
		if f.Body == nil {
			dst = append(dst, t.encodeZLB(f.Ns, f.Nr))
			continue
		}
		// Body is the whole encoded datagram; patch the sequence numbers.
		binary.BigEndian.PutUint16(f.Body[8:], f.Ns)
		binary.BigEndian.PutUint16(f.Body[10:], f.Nr)
		dst = append(dst, f.Body)
	}
	if t.ch.Failed() {
		t.Tick(now) // the retransmission limit was reached just now
	}
	return dst
}

// encodeZLB encodes a ZLB into the tunnel's buffer (the channel puts at
// most one in an Output; the caller copies or sends it before the next call).
func (t *Tunnel) encodeZLB(ns, nr uint16) []byte {
	h := l2tp.Header{Control: true, HasLength: true, HasSeq: true, Version: 2, TunnelID: t.peerID, Ns: ns, Nr: nr}
	t.zlbBuf = l2tp.AppendHeader(t.zlbBuf[:0], h, 0)
	return t.zlbBuf
}

// Deadline is when Tick must next be called (zero: nothing scheduled).
func (t *Tunnel) Deadline() time.Time {
	switch t.state {
	case StateDead:
		return time.Time{}
	case StateClosing:
		if t.ch.Failed() {
			// Nothing of ours can be delivered any more: no reason to
			// hold the state.
			return t.closeAt
		}
		d := t.closeAt.Add(t.cfg.StopHold)
		if cd := t.ch.Deadline(); !cd.IsZero() && cd.Before(d) {
			return cd
		}
		return d
	}
	d := t.ch.Deadline()
	if len(t.deferred) > 0 {
		if a := t.deferred[0].admitBy; d.IsZero() || a.Before(d) {
			d = a
		}
	}
	return d
}

// Tick runs the timers: retransmission failure, Hello, StopCCN hold.
func (t *Tunnel) Tick(now time.Time) {
	switch t.state {
	case StateDead:
		return
	case StateClosing:
		if !now.Before(t.closeAt.Add(t.cfg.StopHold)) || t.ch.Failed() {
			t.state = StateDead
		}
		return
	}
	if t.ch.Failed() {
		t.goDown(now, l2tp.ResultCode{Result: l2tp.ResultStopGeneralError, Error: l2tp.ErrCodeNone, Message: "peer stopped acknowledging control messages"},
			false, "peer did not acknowledge control messages after all retransmissions", false)
		return
	}
	if t.state == StateEstablished && t.ch.HelloDue(now) {
		t.send(now, 0, t.newMsg(l2tp.MsgHello))
	}
	t.expireDeferred(now)
}

// Close sends StopCCN with rc and closes every session.
func (t *Tunnel) Close(now time.Time, rc l2tp.ResultCode, reason string) {
	if t.state == StateClosing || t.state == StateDead {
		return
	}
	if t.peerID == 0 {
		// The peer never told us its tunnel ID (no SCCRP yet): a StopCCN
		// could only go to tunnel 0, which no peer accepts. Drop the state.
		t.goDown(now, rc, false, reason, false)
		t.state = StateDead
		return
	}
	t.goDown(now, rc, false, reason, true)
}

// goDown ends every session, optionally sends StopCCN, and enters Closing.
func (t *Tunnel) goDown(now time.Time, rc l2tp.ResultCode, byPeer bool, reason string, sendStop bool) {
	if len(t.sessions) > 0 {
		sreason := "tunnel closed: " + reason
		for _, s := range t.sessions {
			t.endSession(s, rc, byPeer, sreason, AbandonTunnelDown)
			t.removeSession(s)
		}
	}
	if sendStop {
		m := t.newMsg(l2tp.MsgStopCCN)
		m.AddUint16(l2tp.AVPAssignedTunnelID, true, uint16(t.cfg.LocalID))
		m.AddResultCode(rc)
		t.send(now, 0, m)
	}
	t.state = StateClosing
	t.closeAt = now
	t.events = append(t.events, TunnelDown{Result: rc, ByPeer: byPeer, Reason: reason})
}

// Receive handles a control message (header already parsed, payload = the
// bytes after it) addressed to this tunnel.
func (t *Tunnel) Receive(now time.Time, hdr l2tp.Header, payload []byte) {
	if t.state == StateDead {
		return
	}
	var msg *l2tp.Message
	var unknown *l2tp.UnknownAVPError
	if len(payload) > 0 {
		msg = &t.rx
		if err := msg.Decode(payload, t.cfg.Secret); err != nil {
			if unknown = asUnknown(err); unknown == nil {
				// Undecodable: not acknowledged, so a peer with a transient
				// problem retransmits; a broken one gives up.
				t.events = append(t.events, Malformed{Err: fmt.Errorf("tunnel %d: dropped message Ns=%d: %w", t.cfg.LocalID, hdr.Ns, err)})
				return
			}
		}
	}
	defer t.rx.Reset(0) // keep no reference to the caller's buffer
	var rec []byte
	if msg != nil {
		// The channel may hold this message until earlier ones arrive: keep
		// the header's session ID with it. (It copies what it holds.)
		t.rxRec = binary.BigEndian.AppendUint32(t.rxRec[:0], hdr.SessionID)
		t.rxRec = append(t.rxRec, payload...)
		rec = t.rxRec
	}
	delivered, err := t.ch.Receive(now, hdr.Ns, hdr.Nr, rec)
	if err != nil {
		t.events = append(t.events, Malformed{Err: fmt.Errorf("tunnel %d: dropped message Ns=%d Nr=%d: %w", t.cfg.LocalID, hdr.Ns, hdr.Nr, err)})
		return
	}
	// delivered[0], if any, is this message (in order); the rest were held
	// and are parsed again now, into the same Message.
	for i, b := range delivered {
		m, unk := msg, unknown
		if i > 0 {
			m, unk = &t.rx, nil
			if perr := m.Decode(b[4:], t.cfg.Secret); perr != nil {
				if unk = asUnknown(perr); unk == nil {
					continue
				}
			}
		}
		if m == nil {
			continue
		}
		t.dispatch(now, binary.BigEndian.Uint32(b[:4]), m, unk)
		if t.state == StateClosing || t.state == StateDead {
			return
		}
	}
}

// asUnknown returns the *l2tp.UnknownAVPError in err, or nil.
func asUnknown(err error) *l2tp.UnknownAVPError {
	var u *l2tp.UnknownAVPError
	if errors.As(err, &u) {
		return u
	}
	return nil
}
