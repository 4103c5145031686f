package ppp

import (
	"strings"
	"testing"
)

// rfcTable is RFC 1661 section 4.1 transcribed as text: one row per event,
// one column per state 0..9; "-" is an impossible event; the "r", "p" and
// "x" annotations are dropped.
var rfcTable = map[Event]string{
	EvUp:       "2 irc,scr/6 - - - - - - - -",
	EvDown:     "- - 0 tls/1 0 1 1 1 1 tld/1",
	EvOpen:     "tls/1 1 irc,scr/6 3 5 5 6 7 8 9",
	EvClose:    "0 tlf/0 2 2 4 4 irc,str/4 irc,str/4 irc,str/4 tld,irc,str/4",
	EvTOPlus:   "- - - - str/4 str/5 scr/6 scr/6 scr/8 -",
	EvTOMinus:  "- - - - tlf/2 tlf/3 tlf/3 tlf/3 tlf/3 -",
	EvRCRPlus:  "- - sta/2 irc,scr,sca/8 4 5 sca/8 sca,tlu/9 sca/8 tld,scr,sca/8",
	EvRCRMinus: "- - sta/2 irc,scr,scn/6 4 5 scn/6 scn/7 scn/6 tld,scr,scn/6",
	EvRCA:      "- - sta/2 sta/3 4 5 irc/7 scr/6 irc,tlu/9 tld,scr/6",
	EvRCN:      "- - sta/2 sta/3 4 5 irc,scr/6 scr/6 irc,scr/8 tld,scr/6",
	EvRTR:      "- - sta/2 sta/3 sta/4 sta/5 sta/6 sta/6 sta/6 tld,zrc,sta/5",
	EvRTA:      "- - 2 3 tlf/2 tlf/3 6 6 8 tld,scr/6",
	EvRUC:      "- - scj/2 scj/3 scj/4 scj/5 scj/6 scj/7 scj/8 scj/9",
	EvRXJPlus:  "- - 2 3 4 5 6 6 8 9",
	EvRXJMinus: "- - tlf/2 tlf/3 tlf/2 tlf/3 tlf/3 tlf/3 tlf/3 tld,irc,str/5",
	EvRXR:      "- - 2 3 4 5 6 7 8 ser/9",
}

func parseCell(t *testing.T, cell string) (State, Actions, bool) {
	if cell == "-" {
		return 0, 0, false
	}
	var acts Actions
	st := cell
	if i := strings.IndexByte(cell, '/'); i >= 0 {
		for _, a := range strings.Split(cell[:i], ",") {
			found := false
			for j, n := range actionNames {
				if n == a {
					acts |= 1 << j
					found = true
				}
			}
			if !found {
				t.Fatalf("unknown action %q", a)
			}
		}
		st = cell[i+1:]
	}
	return State(st[0] - '0'), acts, true
}

func TestTransitionTableRFC1661(t *testing.T) {
	if len(rfcTable) != int(numEvents) {
		t.Fatalf("table has %d events", len(rfcTable))
	}
	for e, row := range rfcTable {
		cells := strings.Fields(row)
		if len(cells) != int(numStates) {
			t.Fatalf("%v: %d cells", e, len(cells))
		}
		for s := State(0); s < numStates; s++ {
			wantNext, wantActs, wantOK := parseCell(t, cells[s])
			next, acts, ok := Transition(s, e)
			if ok != wantOK || ok && (next != wantNext || acts != wantActs) {
				t.Errorf("(%v, %v) = %v/%v ok=%v, want %v/%v ok=%v", s, e, acts, next, ok, wantActs, wantNext, wantOK)
			}
		}
	}
}

// recLayer records the layer callbacks in order.
type recLayer struct{ log []string }

func (r *recLayer) appendRequest(b []byte) []byte { return append(b, 5, 6, 1, 2, 3, 4) }
func (r *recLayer) checkRequest(opts []Option, _ []byte, rejectOnly bool) (Code, []byte) {
	if len(opts) > 0 && opts[0].Type == 99 {
		if rejectOnly {
			return CodeConfRej, []byte{99, 2}
		}
		return CodeConfNak, []byte{99, 2}
	}
	return 0, nil
}
func (r *recLayer) gotAck([]Option, []byte) bool { return true }
func (r *recLayer) gotNak([]Option) bool         { return true }
func (r *recLayer) gotRej([]Option) bool         { return true }
func (r *recLayer) up(now timeT)                 { r.log = append(r.log, "tlu") }
func (r *recLayer) down(now timeT)               { r.log = append(r.log, "tld") }
func (r *recLayer) started(now timeT)            { r.log = append(r.log, "tls") }
func (r *recLayer) finished(now timeT)           { r.log = append(r.log, "tlf") }

func sentCodes(l *Link) []Code {
	var out []Code
	for _, a := range l.Actions(nil) {
		if f, ok := a.(SendFrame); ok {
			p, _ := ParsePacket(f.Frame[2:])
			out = append(out, p.Code)
		}
	}
	return out
}

// The executor performs the table's actions: frames, counters, timer.
func TestFSMExecutor(t *testing.T) {
	l := NewLink(Config{Rand: newRand(3)}, testNow)
	r := &recLayer{}
	f := &fsm{link: l, l: r, proto: ProtoIPCP}
	now := testNow

	f.event(now, EvOpen, Packet{}, 0, nil)
	f.event(now, EvUp, Packet{}, 0, nil)
	if f.state != StateReqSent || f.restarts != 9 || !l.time(f.timer).Equal(now.Add(3*second)) {
		t.Fatalf("after Open+Up: %v restarts %d timer %v", f.state, f.restarts, f.timer)
	}
	if got := sentCodes(l); len(got) != 1 || got[0] != CodeConfReq {
		t.Fatalf("sent %v", got)
	}
	// Max-Failure: after 5 Naks the next reply is a Reject.
	bad := Packet{Code: CodeConfReq, ID: 7, Data: []byte{99, 2}}
	for i := 0; i < 5; i++ {
		f.input(now, bad, nil, nil)
	}
	f.input(now, bad, nil, nil)
	got := sentCodes(l)
	want := []Code{CodeConfNak, CodeConfNak, CodeConfNak, CodeConfNak, CodeConfNak, CodeConfRej}
	if len(got) != len(want) {
		t.Fatalf("replies %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("replies %v, want %v", got, want)
		}
	}
	// Ack with a wrong identifier is discarded; the right one moves on.
	f.input(now, Packet{Code: CodeConfAck, ID: f.reqID + 1, Data: f.lastReq}, nil, nil)
	if f.state != StateReqSent {
		t.Fatalf("wrong-ID Ack accepted: %v", f.state)
	}
	f.input(now, Packet{Code: CodeConfAck, ID: f.reqID, Data: []byte{5, 6, 1, 2, 3, 9}}, nil, nil)
	if f.state != StateReqSent {
		t.Fatalf("Ack with other options accepted: %v", f.state)
	}
	f.input(now, Packet{Code: CodeConfAck, ID: f.reqID, Data: append([]byte(nil), f.lastReq...)}, nil, nil)
	if f.state != StateAckRcvd {
		t.Fatalf("after RCA: %v", f.state)
	}
	f.input(now, Packet{Code: CodeConfReq, ID: 8}, nil, nil)
	if f.state != StateOpened || f.timer != 0 || strings.Join(r.log, ",") != "tls,tlu" {
		t.Fatalf("after RCR+: %v timer %v log %v", f.state, f.timer, r.log)
	}
	// Restart timer exhaustion while closing: Max-Terminate requests.
	f.event(now, EvClose, Packet{}, 0, nil)
	for i := 0; i < 5; i++ {
		now = now.Add(3 * second)
		f.tick(now)
	}
	codes := sentCodes(l)
	nTerm := 0
	for _, c := range codes {
		if c == CodeTermReq {
			nTerm++
		}
	}
	if f.state != StateClosed || nTerm != 2 || r.log[len(r.log)-1] != "tlf" {
		t.Fatalf("closing: %v, %d Terminate-Requests (%v), log %v", f.state, nTerm, codes, r.log)
	}
	// Unknown code: Code-Reject.
	f.state = StateOpened
	f.input(now, Packet{Code: 42, ID: 1}, []byte{42, 1, 0, 4}, nil)
	if got := sentCodes(l); len(got) != 1 || got[0] != CodeCodeRej {
		t.Fatalf("unknown code: sent %v", got)
	}
}
