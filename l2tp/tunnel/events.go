package tunnel

import (
	"github.com/l2tpd/l2tpd/l2tp"
)

// Event is something the tunnel's owner must act on.
type Event interface{ event() }

// TunnelUp: the control connection is established.
type TunnelUp struct {
	PeerID       uint32
	PeerHostName string
	PeerVendor   string
}

// TunnelDown: the control connection is gone (StopCCN either way, or the
// peer stopped answering). Every session in it has already had its
// SessionDown.
type TunnelDown struct {
	Result l2tp.ResultCode
	// ByPeer: the peer sent StopCCN; otherwise we closed it.
	ByPeer bool
	// Reason is a sentence for the log.
	Reason string
}

// SessionUp: a session is established (LNS: ICCN/OCCN received; LAC: ICCN
// or OCCN sent).
type SessionUp struct {
	ID     uint32
	PeerID uint32
	Info   CallInfo
}

// SessionDown: a session ended (CDN either way, or its tunnel went down).
type SessionDown struct {
	ID     uint32
	PeerID uint32
	Result l2tp.ResultCode
	ByPeer bool
	Reason string
	// WasUp: SessionUp had been emitted for it.
	WasUp bool
}

// CallErrors: a WEN arrived for an established session.
type CallErrors struct {
	ID     uint32
	Errors l2tp.CallErrors
}

// LinkInfo: an SLI arrived (ACCM for the PPP link).
type LinkInfo struct {
	ID   uint32
	ACCM l2tp.ACCM
}

// Malformed: a message was dropped; the owner logs it (once per cause).
type Malformed struct {
	Err error
}

func (TunnelUp) event()    {}
func (TunnelDown) event()  {}
func (SessionUp) event()   {}
func (SessionDown) event() {}
func (CallErrors) event()  {}
func (LinkInfo) event()    {}
func (Malformed) event()   {}

// CallAbandoned: a call the policy deferred (DeferCall) ended before it was
// admitted: the peer cleared it, its CallAdmitWait ran out, or the tunnel
// went down. The policy never admitted it, so there is no SessionDown.
type CallAbandoned struct {
	ID, PeerID uint32
	// Cause says how it ended, set where the core ends it.
	Cause  AbandonCause
	Reason string
}

// AbandonCause is why a held call ended without being admitted.
type AbandonCause uint8

const (
	// AbandonExpired: Config.CallAdmitWait ran out; refused with
	// DeferCall's result.
	AbandonExpired AbandonCause = iota + 1
	// AbandonPeerCleared: the peer sent a CDN for it.
	AbandonPeerCleared
	// AbandonTunnelDown: its tunnel went down (either side).
	AbandonTunnelDown
	// AbandonRefused: the policy refused it when RetryDeferred asked again.
	AbandonRefused
	// AbandonHungUp: the owner ended it (Tunnel.Hangup).
	AbandonHungUp
)

func (c AbandonCause) String() string {
	switch c {
	case AbandonExpired:
		return "expired"
	case AbandonPeerCleared:
		return "peer-cleared"
	case AbandonTunnelDown:
		return "tunnel-down"
	case AbandonRefused:
		return "refused"
	case AbandonHungUp:
		return "hung-up"
	}
	return "unknown"
}

func (CallAbandoned) event() {}
