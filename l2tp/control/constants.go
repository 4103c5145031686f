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
	// outgoing message to carry it before a ZLB is sent: none. The ack
	// goes out at the end of the pass that handled the message, on the
	// reply if the pass produced one (SCCRQ->SCCRP, ICRQ->ICRP), else in a
	// ZLB. A longer delay stalls a peer whose window is full of messages
	// that get no reply (ICCNs, CDNs, after slow start or a timeout shrank
	// its window): with 100 ms, a LAC placing calls at once waited out the
	// delay again and again (l2tpbench, 1,000 calls over 10 tunnels: p99
	// setup 208-420 ms in about one run in three, 10-20 ms with none, and
	// no more CPU per setup).
	DefaultAckDelay = 0

	// DefaultHelloInterval is the RFC 2661 6.5 suggestion for the keepalive
	// interval. Config.HelloInterval zero means "disabled", so WithDefaults
	// does not apply it: the configuration layer passes this value (jittered)
	// when the operator did not choose one.
	DefaultHelloInterval = 60 * time.Second
)
