package tunnel

import (
	"testing"
	"time"

	"github.com/l2tpd/l2tpd/l2tp"
)

// injectICRQ has the LAC send a raw ICRQ with the given Assigned Session
// ID (as a peer reusing an ID would).
func injectICRQ(p *pair, peerSID uint16) {
	m := &l2tp.Message{Type: l2tp.MsgICRQ}
	m.AddUint16(l2tp.AVPAssignedSessionID, true, peerSID)
	m.AddUint32(l2tp.AVPCallSerialNumber, true, uint32(peerSID))
	p.lac.send(p.now, 0, m)
}

// An ICRQ that reuses the Assigned Session ID of a call the LNS still
// holds is ignored; once that call is gone (CDN), the ID may be used
// again; another ID is never taken for a duplicate.
func TestICRQDuplicatePeerSessionID(t *testing.T) {
	p := newPair(t, cfg(100, "lac", 1), cfg(200, "lns", 2))
	p.run(5 * time.Second)
	lnsSessions := func() int { return len(p.lns.sessions) }

	injectICRQ(p, 77)
	p.run(time.Second)
	if lnsSessions() != 1 {
		t.Fatalf("LNS holds %d sessions after the first ICRQ, want 1", lnsSessions())
	}
	injectICRQ(p, 77) // duplicate while the first is held
	p.run(time.Second)
	if lnsSessions() != 1 {
		t.Fatalf("LNS holds %d sessions after a duplicate ICRQ, want 1", lnsSessions())
	}
	injectICRQ(p, 78) // another ID: a call of its own
	p.run(time.Second)
	if lnsSessions() != 2 {
		t.Fatalf("LNS holds %d sessions after ICRQ 78, want 2", lnsSessions())
	}
	// The LNS ends the call of peer ID 77: the ID is free again.
	var ours uint32
	for id, s := range p.lns.sessions {
		if s.PeerID == 77 {
			ours = id
		}
	}
	if ours == 0 {
		t.Fatal("no LNS session for peer ID 77")
	}
	if err := p.lns.Hangup(p.now, ours, l2tp.ResultCode{Result: l2tp.ResultCDNAdmin}, "test"); err != nil {
		t.Fatal(err)
	}
	p.run(time.Second)
	if lnsSessions() != 1 || len(p.lns.byPeer) != 1 {
		t.Fatalf("after the hang-up: %d sessions, %d indexed by peer ID, want 1 and 1", lnsSessions(), len(p.lns.byPeer))
	}
	injectICRQ(p, 77)
	p.run(time.Second)
	if lnsSessions() != 2 {
		t.Fatalf("LNS holds %d sessions after peer ID 77 was reused after its CDN, want 2", lnsSessions())
	}
}
