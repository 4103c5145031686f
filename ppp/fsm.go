package ppp

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"time"
)

// State is a state of the RFC 1661 option negotiation automaton.
type State uint8

// States (RFC 1661 section 4.2).
const (
	StateInitial State = iota
	StateStarting
	StateClosed
	StateStopped
	StateClosing
	StateStopping
	StateReqSent
	StateAckRcvd
	StateAckSent
	StateOpened
	numStates
)

var stateNames = [numStates]string{"Initial", "Starting", "Closed", "Stopped", "Closing", "Stopping", "Req-Sent", "Ack-Rcvd", "Ack-Sent", "Opened"}

func (s State) String() string {
	if s < numStates {
		return stateNames[s]
	}
	return fmt.Sprintf("state-%d", uint8(s))
}

// Event is an event of the automaton (RFC 1661 section 4.3).
type Event uint8

// Events.
const (
	EvUp Event = iota
	EvDown
	EvOpen
	EvClose
	EvTOPlus
	EvTOMinus
	EvRCRPlus
	EvRCRMinus
	EvRCA
	EvRCN
	EvRTR
	EvRTA
	EvRUC
	EvRXJPlus
	EvRXJMinus
	EvRXR
	numEvents
)

var eventNames = [numEvents]string{"Up", "Down", "Open", "Close", "TO+", "TO-", "RCR+", "RCR-", "RCA", "RCN", "RTR", "RTA", "RUC", "RXJ+", "RXJ-", "RXR"}

func (e Event) String() string {
	if e < numEvents {
		return eventNames[e]
	}
	return fmt.Sprintf("event-%d", uint8(e))
}

// Actions is a set of automaton actions (RFC 1661 section 4.4), executed in
// the order of the constants below, which is the order the RFC's table
// lists them in.
type Actions uint16

// Actions.
const (
	ActTLD     Actions = 1 << iota // This-Layer-Down
	ActTLF                         // This-Layer-Finished (before irc: never combined)
	ActTLS                         // This-Layer-Started
	ActIRC                         // Initialize-Restart-Count
	ActZRC                         // Zero-Restart-Count
	ActSCR                         // Send-Configure-Request
	ActSCA                         // Send-Configure-Ack
	ActSCN                         // Send-Configure-Nak/Rej
	ActSTR                         // Send-Terminate-Request
	ActSTA                         // Send-Terminate-Ack
	ActSCJ                         // Send-Code-Reject
	ActSER                         // Send-Echo-Reply
	ActTLU                         // This-Layer-Up (after sca)
	numActions = iota
)

var actionNames = [numActions]string{"tld", "tlf", "tls", "irc", "zrc", "scr", "sca", "scn", "str", "sta", "scj", "ser", "tlu"}

func (a Actions) String() string {
	var parts []string
	for i := 0; i < numActions; i++ {
		if a&(1<<i) != 0 {
			parts = append(parts, actionNames[i])
		}
	}
	return strings.Join(parts, ",")
}

type transitionEntry struct {
	next  State
	acts  Actions
	valid bool
}

func t(next State, acts Actions) transitionEntry { return transitionEntry{next, acts, true} }

// table is RFC 1661 section 4.1. A zero entry ("-" in the RFC) is an event
// that cannot happen in that state: it is ignored. The "r" (restart)
// option of Open in Stopped/Opened is not taken.
var table = [numEvents][numStates]transitionEntry{
	EvUp: {StateInitial: t(StateClosed, 0), StateStarting: t(StateReqSent, ActIRC|ActSCR)},
	EvDown: {
		StateClosed: t(StateInitial, 0), StateStopped: t(StateStarting, ActTLS), StateClosing: t(StateInitial, 0),
		StateStopping: t(StateStarting, 0), StateReqSent: t(StateStarting, 0), StateAckRcvd: t(StateStarting, 0),
		StateAckSent: t(StateStarting, 0), StateOpened: t(StateStarting, ActTLD),
	},
	EvOpen: {
		StateInitial: t(StateStarting, ActTLS), StateStarting: t(StateStarting, 0), StateClosed: t(StateReqSent, ActIRC|ActSCR),
		StateStopped: t(StateStopped, 0), StateClosing: t(StateStopping, 0), StateStopping: t(StateStopping, 0),
		StateReqSent: t(StateReqSent, 0), StateAckRcvd: t(StateAckRcvd, 0), StateAckSent: t(StateAckSent, 0), StateOpened: t(StateOpened, 0),
	},
	EvClose: {
		StateInitial: t(StateInitial, 0), StateStarting: t(StateInitial, ActTLF), StateClosed: t(StateClosed, 0),
		StateStopped: t(StateClosed, 0), StateClosing: t(StateClosing, 0), StateStopping: t(StateClosing, 0),
		StateReqSent: t(StateClosing, ActIRC|ActSTR), StateAckRcvd: t(StateClosing, ActIRC|ActSTR),
		StateAckSent: t(StateClosing, ActIRC|ActSTR), StateOpened: t(StateClosing, ActTLD|ActIRC|ActSTR),
	},
	EvTOPlus: {
		StateClosing: t(StateClosing, ActSTR), StateStopping: t(StateStopping, ActSTR), StateReqSent: t(StateReqSent, ActSCR),
		StateAckRcvd: t(StateReqSent, ActSCR), StateAckSent: t(StateAckSent, ActSCR),
	},
	EvTOMinus: {
		StateClosing: t(StateClosed, ActTLF), StateStopping: t(StateStopped, ActTLF), StateReqSent: t(StateStopped, ActTLF),
		StateAckRcvd: t(StateStopped, ActTLF), StateAckSent: t(StateStopped, ActTLF),
	},
	EvRCRPlus: {
		StateClosed: t(StateClosed, ActSTA), StateStopped: t(StateAckSent, ActIRC|ActSCR|ActSCA),
		StateClosing: t(StateClosing, 0), StateStopping: t(StateStopping, 0), StateReqSent: t(StateAckSent, ActSCA),
		StateAckRcvd: t(StateOpened, ActSCA|ActTLU), StateAckSent: t(StateAckSent, ActSCA),
		StateOpened: t(StateAckSent, ActTLD|ActSCR|ActSCA),
	},
	EvRCRMinus: {
		StateClosed: t(StateClosed, ActSTA), StateStopped: t(StateReqSent, ActIRC|ActSCR|ActSCN),
		StateClosing: t(StateClosing, 0), StateStopping: t(StateStopping, 0), StateReqSent: t(StateReqSent, ActSCN),
		StateAckRcvd: t(StateAckRcvd, ActSCN), StateAckSent: t(StateReqSent, ActSCN),
		StateOpened: t(StateReqSent, ActTLD|ActSCR|ActSCN),
	},
	EvRCA: {
		StateClosed: t(StateClosed, ActSTA), StateStopped: t(StateStopped, ActSTA), StateClosing: t(StateClosing, 0),
		StateStopping: t(StateStopping, 0), StateReqSent: t(StateAckRcvd, ActIRC), StateAckRcvd: t(StateReqSent, ActSCR),
		StateAckSent: t(StateOpened, ActIRC|ActTLU), StateOpened: t(StateReqSent, ActTLD|ActSCR),
	},
	EvRCN: {
		StateClosed: t(StateClosed, ActSTA), StateStopped: t(StateStopped, ActSTA), StateClosing: t(StateClosing, 0),
		StateStopping: t(StateStopping, 0), StateReqSent: t(StateReqSent, ActIRC|ActSCR), StateAckRcvd: t(StateReqSent, ActSCR),
		StateAckSent: t(StateAckSent, ActIRC|ActSCR), StateOpened: t(StateReqSent, ActTLD|ActSCR),
	},
	EvRTR: {
		StateClosed: t(StateClosed, ActSTA), StateStopped: t(StateStopped, ActSTA), StateClosing: t(StateClosing, ActSTA),
		StateStopping: t(StateStopping, ActSTA), StateReqSent: t(StateReqSent, ActSTA), StateAckRcvd: t(StateReqSent, ActSTA),
		StateAckSent: t(StateReqSent, ActSTA), StateOpened: t(StateStopping, ActTLD|ActZRC|ActSTA),
	},
	EvRTA: {
		StateClosed: t(StateClosed, 0), StateStopped: t(StateStopped, 0), StateClosing: t(StateClosed, ActTLF),
		StateStopping: t(StateStopped, ActTLF), StateReqSent: t(StateReqSent, 0), StateAckRcvd: t(StateReqSent, 0),
		StateAckSent: t(StateAckSent, 0), StateOpened: t(StateReqSent, ActTLD|ActSCR),
	},
	EvRUC: {
		StateClosed: t(StateClosed, ActSCJ), StateStopped: t(StateStopped, ActSCJ), StateClosing: t(StateClosing, ActSCJ),
		StateStopping: t(StateStopping, ActSCJ), StateReqSent: t(StateReqSent, ActSCJ), StateAckRcvd: t(StateAckRcvd, ActSCJ),
		StateAckSent: t(StateAckSent, ActSCJ), StateOpened: t(StateOpened, ActSCJ),
	},
	EvRXJPlus: {
		StateClosed: t(StateClosed, 0), StateStopped: t(StateStopped, 0), StateClosing: t(StateClosing, 0),
		StateStopping: t(StateStopping, 0), StateReqSent: t(StateReqSent, 0), StateAckRcvd: t(StateReqSent, 0),
		StateAckSent: t(StateAckSent, 0), StateOpened: t(StateOpened, 0),
	},
	EvRXJMinus: {
		StateClosed: t(StateClosed, ActTLF), StateStopped: t(StateStopped, ActTLF), StateClosing: t(StateClosed, ActTLF),
		StateStopping: t(StateStopped, ActTLF), StateReqSent: t(StateStopped, ActTLF), StateAckRcvd: t(StateStopped, ActTLF),
		StateAckSent: t(StateStopped, ActTLF), StateOpened: t(StateStopping, ActTLD|ActIRC|ActSTR),
	},
	EvRXR: {
		StateClosed: t(StateClosed, 0), StateStopped: t(StateStopped, 0), StateClosing: t(StateClosing, 0),
		StateStopping: t(StateStopping, 0), StateReqSent: t(StateReqSent, 0), StateAckRcvd: t(StateAckRcvd, 0),
		StateAckSent: t(StateAckSent, 0), StateOpened: t(StateOpened, ActSER),
	},
}

// Transition is the pure RFC 1661 state table: the next state and the
// actions for event e in state s. ok is false for an event the RFC marks
// impossible in that state (the automaton ignores it).
func Transition(s State, e Event) (next State, acts Actions, ok bool) {
	if s >= numStates || e >= numEvents {
		return s, 0, false
	}
	en := table[e][s]
	if !en.valid {
		return s, 0, false
	}
	return en.next, en.acts, true
}

// layer is what a protocol (LCP, IPCP, IPv6CP) plugs into the automaton.
type layer interface {
	// appendRequest appends our Configure-Request options.
	appendRequest(b []byte) []byte
	// checkRequest examines the peer's options and appends the reply
	// options: nil code means Ack (reply = the request), otherwise
	// CodeConfNak or CodeConfRej. rejectOnly turns Naks into Rejects
	// (Max-Failure reached). It must not change state it needs to undo: it
	// may record the peer's values, applied when they are acked.
	checkRequest(opts []Option, reply []byte, rejectOnly bool) (Code, []byte)
	// gotAck reports whether an Ack matches our last request.
	gotAck(opts []Option, req []byte) bool
	// gotNak and gotRej adjust our next request; false discards the packet.
	gotNak(opts []Option) bool
	gotRej(opts []Option) bool
	up(now time.Time)
	down(now time.Time)
	started(now time.Time)
	finished(now time.Time)
}

// fsm runs the automaton for one protocol of one link.
type fsm struct {
	link     *Link
	l        layer
	proto    Protocol
	state    State
	restarts int // restart counter
	failures int // consecutive Naks sent
	nextID   uint8
	reqID    uint8  // identifier of our last Configure-Request
	timer    tstamp // restart timer, 0: stopped
	lastReq  []byte // options of our last Configure-Request (for Ack checks)
}

func (f *fsm) cfg() *settings { return &f.link.cfg }

// event runs one event. rx is the received packet (for replies), reply the
// prepared Configure-Ack/Nak/Reject data or Code-Reject data.
func (f *fsm) event(now time.Time, e Event, rx Packet, replyCode Code, reply []byte) {
	next, acts, ok := Transition(f.state, e)
	if !ok {
		return
	}
	f.state = next
	switch next {
	case StateInitial, StateStarting, StateClosed, StateStopped, StateOpened:
		f.timer = 0
	}
	c := f.cfg()
	for i := 0; i < numActions; i++ {
		a := acts & (1 << i)
		if a == 0 {
			continue
		}
		switch a {
		case ActTLD:
			f.l.down(now)
		case ActTLF:
			f.l.finished(now)
		case ActTLS:
			f.l.started(now)
		case ActIRC:
			if acts&ActSTR != 0 {
				f.restarts = c.MaxTerminate
			} else {
				f.restarts = c.MaxConfigure
			}
			if e == EvUp || e == EvOpen || e == EvRCRPlus || e == EvRCRMinus {
				f.failures = 0 // a fresh negotiation
			}
		case ActZRC:
			f.restarts = 0
			f.timer = f.link.after(now, c.RestartTimer)
		case ActSCR:
			f.sendConfReq(now)
		case ActSCA:
			f.failures = 0
			f.send(CodeConfAck, rx.ID, rx.Data)
		case ActSCN:
			if replyCode == CodeConfNak {
				f.failures++
			}
			f.send(replyCode, rx.ID, reply)
		case ActSTR:
			f.nextID++
			f.send(CodeTermReq, f.nextID, nil)
			f.restarts--
			f.timer = f.link.after(now, c.RestartTimer)
		case ActSTA:
			f.send(CodeTermAck, rx.ID, nil)
		case ActSCJ:
			f.nextID++
			f.send(CodeCodeRej, f.nextID, reply)
		case ActSER:
			f.link.sendEchoReply(rx)
		case ActTLU:
			f.l.up(now)
		}
	}
}

func (f *fsm) sendConfReq(now time.Time) {
	f.nextID++
	f.reqID = f.nextID
	f.lastReq = f.l.appendRequest(f.lastReq[:0])
	f.send(CodeConfReq, f.reqID, f.lastReq)
	f.restarts--
	f.timer = f.link.after(now, f.cfg().RestartTimer)
}

func (f *fsm) send(code Code, id uint8, data []byte) {
	f.link.sendPacket(f.proto, Packet{Code: code, ID: id, Data: data})
}

// tick delivers the restart timer if it is due.
func (f *fsm) tick(now time.Time) {
	if !f.link.due(f.timer, now) {
		return
	}
	f.timer = 0
	if f.restarts > 0 {
		f.event(now, EvTOPlus, Packet{}, 0, nil)
	} else {
		f.event(now, EvTOMinus, Packet{}, 0, nil)
	}
}

// input handles a packet of this protocol. Codes beyond the common ones are
// passed to extra (LCP); extra returns false for an unknown code.
func (f *fsm) input(now time.Time, p Packet, raw []byte, extra func(Packet) bool) {
	switch p.Code {
	case CodeConfReq:
		var buf [16]Option
		opts, err := ParseOptions(buf[:0], p.Data)
		if err != nil {
			return // malformed: silently discarded
		}
		if f.state == StateClosing || f.state == StateStopping || f.state == StateClosed {
			f.event(now, EvRCRPlus, p, 0, nil) // no reply / sta; checking is pointless
			return
		}
		code, reply := f.checkRequest(opts, f.failures >= f.cfg().MaxFailure)
		if code == 0 {
			f.event(now, EvRCRPlus, p, 0, nil)
		} else {
			f.event(now, EvRCRMinus, p, code, reply)
		}
	case CodeConfAck:
		if p.ID != f.reqID || string(p.Data) != string(f.lastReq) {
			return
		}
		f.event(now, EvRCA, p, 0, nil)
	case CodeConfNak, CodeConfRej:
		if p.ID != f.reqID {
			return
		}
		var buf [16]Option
		opts, err := ParseOptions(buf[:0], p.Data)
		if err != nil {
			return
		}
		if f.state == StateReqSent || f.state == StateAckRcvd || f.state == StateAckSent || f.state == StateOpened {
			var ok bool
			ok = f.gotNakRej(p.Code, opts)
			if !ok {
				return
			}
		}
		f.event(now, EvRCN, p, 0, nil)
	case CodeTermReq:
		f.event(now, EvRTR, p, 0, nil)
	case CodeTermAck:
		f.event(now, EvRTA, p, 0, nil)
	case CodeCodeRej:
		if len(p.Data) < 1 {
			return
		}
		rc := Code(p.Data[0])
		if rc >= CodeConfReq && rc <= CodeCodeRej || f.proto == ProtoLCP && rc == CodeProtoRej {
			f.event(now, EvRXJMinus, p, 0, nil)
		} else {
			f.event(now, EvRXJPlus, p, 0, nil)
		}
	default:
		if extra != nil && extra(p) {
			return
		}
		// Unknown code: Code-Reject with the rejected packet, bounded by
		// our own limit.
		rej := raw
		if max := f.link.replyCap() - headerLen - protoLen; len(rej) > max {
			rej = rej[:max]
		}
		f.event(now, EvRUC, p, 0, rej)
	}
}

// checkRequest and gotNakRej call the layer's method directly for the
// link's own layers, so that the options parsed into input's stack buffer
// do not escape to the heap (through the interface call they would, at
// every Configure-Request). Another layer (tests) gets a copy.
func (f *fsm) checkRequest(opts []Option, rejectOnly bool) (Code, []byte) {
	switch l := f.l.(type) {
	case *lcpLayer:
		return l.checkRequest(opts, nil, rejectOnly)
	case *ipcpLayer:
		return l.checkRequest(opts, nil, rejectOnly)
	case *ipv6cpLayer:
		return l.checkRequest(opts, nil, rejectOnly)
	}
	return f.l.checkRequest(slices.Clone(opts), nil, rejectOnly)
}

func (f *fsm) gotNakRej(code Code, opts []Option) bool {
	nak := code == CodeConfNak
	switch l := f.l.(type) {
	case *lcpLayer:
		if nak {
			return l.gotNak(opts)
		}
		return l.gotRej(opts)
	case *ipcpLayer:
		if nak {
			return l.gotNak(opts)
		}
		return l.gotRej(opts)
	case *ipv6cpLayer:
		if nak {
			return l.gotNak(opts)
		}
		return l.gotRej(opts)
	}
	c := slices.Clone(opts)
	if nak {
		return f.l.gotNak(c)
	}
	return f.l.gotRej(c)
}

func be16(b []byte) uint16 { return binary.BigEndian.Uint16(b) }
