package auth

import (
	"net/netip"
	"time"
)

// TerminateCause is RFC 2866 Acct-Terminate-Cause.
type TerminateCause uint32

const (
	CauseUserRequest        TerminateCause = 1
	CauseLostCarrier        TerminateCause = 2
	CauseLostService        TerminateCause = 3
	CauseIdleTimeout        TerminateCause = 4
	CauseSessionTimeout     TerminateCause = 5
	CauseAdminReset         TerminateCause = 6
	CauseAdminReboot        TerminateCause = 7
	CausePortError          TerminateCause = 8
	CauseNASError           TerminateCause = 9
	CauseNASRequest         TerminateCause = 10
	CauseNASReboot          TerminateCause = 11
	CausePortUnneeded       TerminateCause = 12
	CausePortPreempted      TerminateCause = 13
	CausePortSuspended      TerminateCause = 14
	CauseServiceUnavailable TerminateCause = 15
	CauseCallback           TerminateCause = 16
	CauseUserError          TerminateCause = 17
	CauseHostRequest        TerminateCause = 18
)

// AcctSession describes one subscriber session for accounting. The PPP
// driver fills it when the network layer comes up (Start) and keeps it
// until Stop.
type AcctSession struct {
	ID         string // Acct-Session-Id, unique across restarts
	Username   string
	Method     Method
	Info       SessionInfo
	FramedIP   netip.Addr
	FramedIPv6 netip.Prefix
	Delegated  netip.Prefix
	Class      [][]byte
	Start      time.Time
	IfName     string
}

// AcctCounters are a session's data counters from the data path.
type AcctCounters struct {
	InOctets, OutOctets   uint64 // from the subscriber / to the subscriber
	InPackets, OutPackets uint64
	SessionTime           time.Duration
}

// Accounter records the life of subscriber sessions (RADIUS accounting).
// Calls must not block the caller: an implementation queues (and, for
// RADIUS, spools to disk) what it cannot send at once. Every Start is
// followed by exactly one Stop.
type Accounter interface {
	Start(s *AcctSession)
	Interim(s *AcctSession, c AcctCounters)
	Stop(s *AcctSession, c AcctCounters, cause TerminateCause)
}

// NopAccounter records nothing.
type NopAccounter struct{}

func (NopAccounter) Start(*AcctSession)                              {}
func (NopAccounter) Interim(*AcctSession, AcctCounters)              {}
func (NopAccounter) Stop(*AcctSession, AcctCounters, TerminateCause) {}
