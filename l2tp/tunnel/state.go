// Package tunnel holds the L2TP tunnel and session state machines (RFC 2661
// section 7) as a pure core: control messages, events and the current time
// go in; datagrams to send, events for the owner and the next deadline come
// out. It owns a control.Channel for reliable delivery and the l2tp codec for
// the wire format. No sockets, goroutines, logging or wall clock.
package tunnel

// State is a tunnel (control connection) state, RFC 2661 section 7.2.
type State uint8

const (
	StateIdle         State = iota
	StateWaitCtlReply       // initiator: SCCRQ sent, waiting for SCCRP
	StateWaitCtlConn        // responder: SCCRP sent, waiting for SCCCN
	StateEstablished
	StateClosing // StopCCN sent or received; state held for the retransmission cycle
	StateDead    // nothing left to do: the owner may forget the tunnel
)

func (s State) String() string {
	switch s {
	case StateIdle:
		return "idle"
	case StateWaitCtlReply:
		return "wait-ctl-reply"
	case StateWaitCtlConn:
		return "wait-ctl-conn"
	case StateEstablished:
		return "established"
	case StateClosing:
		return "closing"
	case StateDead:
		return "dead"
	}
	return "unknown"
}

// SessionState is a session (call) state, RFC 2661 sections 7.4 and 7.5.
type SessionState uint8

const (
	SessionIdle        SessionState = iota
	SessionWaitReply                // sent ICRQ (LAC) or OCRQ (LNS), waiting for ICRP/OCRP
	SessionWaitConnect              // LNS: sent ICRP or got OCRP, waiting for ICCN/OCCN
	SessionEstablished
	SessionClosed    // CDN sent or received
	SessionWaitAdmit // LNS: got ICRQ, the policy deferred it (DeferCall); no ICRP yet
)

func (s SessionState) String() string {
	switch s {
	case SessionIdle:
		return "idle"
	case SessionWaitReply:
		return "wait-reply"
	case SessionWaitConnect:
		return "wait-connect"
	case SessionEstablished:
		return "established"
	case SessionClosed:
		return "closed"
	case SessionWaitAdmit:
		return "wait-admit"
	}
	return "unknown"
}

// Direction says who placed a call.
type Direction uint8

const (
	// Incoming: the LAC received a call and sends ICRQ to the LNS.
	Incoming Direction = iota
	// Outgoing: the LNS asks the LAC to place a call with OCRQ.
	Outgoing
)

func (d Direction) String() string {
	if d == Outgoing {
		return "outgoing"
	}
	return "incoming"
}
