package control

import "time"

// Protocol constants and defaults (RFC 2661 section 5.8 and Appendix A).
const (
	// DefaultRecvWindow is the Receive Window Size we advertise when none is
	// configured.
	DefaultRecvWindow uint16 = 16

	// DefaultPeerWindow is the peer's receive window when its SCCRQ/SCCRP
	// carried no Receive Window Size AVP (RFC 2661 5.8: "a default value
	// of 4").
	DefaultPeerWindow uint16 = 4

	// MaxWindow is the largest window (ours or the peer's) the channel uses.
	// Sequence numbers are compared modulo 2^16 (RFC 1982), so a window must
	// stay below half the sequence space for "before" and "after" to remain
	// unambiguous. Larger values are rejected by Validate and clamped by New.
	MaxWindow uint16 = 1<<15 - 1

	// DefaultRetransmitInitial is the first retransmission timeout
	// (RFC 2661 5.8 recommends 1 second).
	DefaultRetransmitInitial = time.Second

	// DefaultRetransmitCap caps the doubling retransmission timeout.
	DefaultRetransmitCap = 16 * time.Second

	// MinRetransmitCap is the smallest cap RFC 2661 5.8 permits: "the
	// cap MUST be no less than 8 seconds per retransmission".
	MinRetransmitCap = 8 * time.Second

	// DefaultMaxRetransmits is how many times one message is retransmitted
	// before the tunnel is declared dead (RFC 2661 5.8 recommends 5).
	DefaultMaxRetransmits = 5

	// DefaultAckDelay is how long an acknowledgement may wait for an
	// outgoing message to carry it before a ZLB is sent. It is an order of
	// magnitude below the 1 s initial retransmission timeout (so our delay
	// never makes a well-behaved peer retransmit) yet long enough for the
	// tunnel layer to answer a request (SCCRQ->SCCRP, ICRQ->ICRP, and
	// replies that wait on a quick local decision) in the same or a nearby
	// event-loop turn, so the reply carries the ack and the ZLB is saved.
	DefaultAckDelay = 100 * time.Millisecond

	// DefaultHelloInterval is the RFC 2661 6.5 suggestion for the keepalive
	// interval. Config.HelloInterval zero means "disabled", so WithDefaults
	// does not apply it: the configuration layer passes this value (jittered)
	// when the operator did not choose one.
	DefaultHelloInterval = 60 * time.Second
)
