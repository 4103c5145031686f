package tunnel

import (
	"testing"
	"time"

	"github.com/l2tpd/l2tpd/l2tp"
)

// slots admits while it has slots and defers the rest.
type slots struct {
	free  int
	asked int
}

func (s *slots) AdmitCall(*Tunnel, Direction, *CallInfo) *l2tp.ResultCode {
	s.asked++
	if s.free == 0 {
		return DeferCall
	}
	s.free--
	return nil
}

func deferPair(t *testing.T, pol *slots, wait time.Duration) *pair {
	nc := cfg(200, "lns", 2)
	nc.Policy = pol
	nc.CallAdmitWait = wait
	p := newPair(t, cfg(100, "lac", 1), nc)
	p.run(5 * time.Second)
	return p
}

func placeCalls(t *testing.T, p *pair, n int) []uint32 {
	t.Helper()
	var ids []uint32
	for range n {
		id, err := p.lac.PlaceCall(p.now, Incoming, CallInfo{})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

// upPeers lists the LAC's session IDs of the LNS's SessionUps, in order.
func upPeers(evs []Event) []uint32 {
	var ids []uint32
	for _, ev := range evs {
		if u, ok := ev.(SessionUp); ok {
			ids = append(ids, u.PeerID)
		}
	}
	return ids
}

func TestDeferredCallsAdmittedInOrder(t *testing.T) {
	pol := &slots{free: 1}
	p := deferPair(t, pol, 30*time.Second)
	ids := placeCalls(t, p, 3)
	p.run(5 * time.Second)
	if got := upPeers(p.lnsEv); len(got) != 1 || got[0] != ids[0] {
		t.Fatalf("LNS up %v, want only %d", got, ids[0])
	}
	if n, _ := count[SessionDown](p.lacEv); n != 0 {
		t.Fatal("a deferred call failed at the LAC")
	}
	if p.lns.Deferred() != 2 {
		t.Fatalf("deferred %d, want 2", p.lns.Deferred())
	}
	// Held calls were acknowledged: nothing for the LAC to retransmit,
	// so its calls wait without the tunnel failing.
	p.run(20 * time.Second)
	if n, _ := count[TunnelDown](p.lacEv); n != 0 {
		t.Fatal("tunnel went down while calls were held")
	}
	// A new call queues behind the held ones without asking the policy.
	asked := pol.asked
	ids = append(ids, placeCalls(t, p, 1)...)
	p.run(time.Second)
	if pol.asked != asked || p.lns.Deferred() != 3 {
		t.Fatalf("new call: policy asked %d more times, %d deferred; want 0 and 3", pol.asked-asked, p.lns.Deferred())
	}
	pol.free = 1
	if left := p.lns.RetryDeferred(p.now); left != 2 {
		t.Fatalf("RetryDeferred with one slot left %d held, want 2", left)
	}
	pol.free = 10
	if left := p.lns.RetryDeferred(p.now); left != 0 {
		t.Fatalf("RetryDeferred left %d held, want 0", left)
	}
	p.run(5 * time.Second)
	got := upPeers(p.lnsEv)
	if len(got) != 4 {
		t.Fatalf("LNS up %v, want 4 calls", got)
	}
	for i := range ids {
		if got[i] != ids[i] {
			t.Fatalf("admitted in order %v, want %v", got, ids)
		}
	}
	if n, _ := count[SessionUp](p.lacEv); n != 4 {
		t.Fatalf("LAC up %d, want 4", n)
	}
}

func TestDeferredCallExpires(t *testing.T) {
	pol := &slots{}
	p := deferPair(t, pol, 10*time.Second)
	placeCalls(t, p, 1)
	p.run(30 * time.Second)
	n, d := count[SessionDown](p.lacEv)
	if n != 1 || d.Result.Result != l2tp.ResultCDNTempResources || d.Result.Error != l2tp.ErrCodeNoResources || d.WasUp {
		t.Fatalf("LAC SessionDown %d %+v, want one temporary-resources refusal", n, d)
	}
	if na, a := count[CallAbandoned](p.lnsEv); na != 1 || a.Reason == "" || a.Cause != AbandonExpired {
		t.Fatalf("LNS CallAbandoned %d %+v", na, a)
	}
	if n, _ := count[SessionDown](p.lnsEv); n != 0 {
		t.Fatal("LNS SessionDown for a call its policy never admitted")
	}
	if p.lns.Deferred() != 0 || p.lns.NumSessions() != 0 {
		t.Fatalf("left: %d deferred, %d sessions", p.lns.Deferred(), p.lns.NumSessions())
	}
	if n, _ := count[TunnelDown](p.lacEv); n != 0 {
		t.Fatal("tunnel went down")
	}
}

func TestDeferredCallClearedByPeer(t *testing.T) {
	pol := &slots{}
	p := deferPair(t, pol, time.Minute)
	ids := placeCalls(t, p, 2)
	p.run(time.Second)
	if err := p.lac.Hangup(p.now, ids[0], l2tp.ResultCode{Result: l2tp.ResultCDNAdmin}, "subscriber gone"); err != nil {
		t.Fatal(err)
	}
	p.run(time.Second)
	if na, a := count[CallAbandoned](p.lnsEv); na != 1 || a.Cause != AbandonPeerCleared || a.PeerID != ids[0] {
		t.Fatalf("LNS CallAbandoned %d %+v, want 1 cleared by the peer", na, a)
	}
	if n, _ := count[SessionDown](p.lnsEv); n != 0 {
		t.Fatal("LNS SessionDown for a call never admitted")
	}
	if p.lns.Deferred() != 1 {
		t.Fatalf("deferred %d, want 1", p.lns.Deferred())
	}
	// The tunnel going down abandons the other.
	p.lns.Close(p.now, l2tp.ResultCode{Result: l2tp.ResultStopGeneralError}, "admin")
	p.run(time.Second)
	if na, a := count[CallAbandoned](p.lnsEv); na != 2 || a.Cause != AbandonTunnelDown || a.PeerID != ids[1] {
		t.Fatalf("LNS CallAbandoned %d %+v after close, want 2, the last by the tunnel going down", na, a)
	}
	if n, _ := count[SessionDown](p.lnsEv); n != 0 {
		t.Fatal("LNS SessionDown for a call never admitted")
	}
	if p.lns.Deferred() != 0 {
		t.Fatalf("deferred %d after close", p.lns.Deferred())
	}
}

func TestDeferWithoutWaitRefuses(t *testing.T) {
	p := deferPair(t, &slots{}, 0)
	placeCalls(t, p, 1)
	p.run(time.Second)
	n, d := count[SessionDown](p.lacEv)
	if n != 1 || d.Result.Result != l2tp.ResultCDNTempResources {
		t.Fatalf("LAC SessionDown %d %+v, want an immediate refusal", n, d)
	}
	if p.lns.Deferred() != 0 {
		t.Fatal("call held with CallAdmitWait 0")
	}
}

// refuseNext defers every call until allow is set, then refuses them.
type refuseNext struct{ allow bool }

func (r *refuseNext) AdmitCall(*Tunnel, Direction, *CallInfo) *l2tp.ResultCode {
	if !r.allow {
		return DeferCall
	}
	return &l2tp.ResultCode{Result: l2tp.ResultCDNTempResources, Message: "draining"}
}

func TestDeferredCallRefusedWhenRetried(t *testing.T) {
	pol := &refuseNext{}
	lc, nc := cfg(100, "lac", 1), cfg(200, "lns", 2)
	nc.Policy, nc.CallAdmitWait = pol, time.Minute
	p := newPair(t, lc, nc)
	p.run(5 * time.Second)
	placeCalls(t, p, 1)
	p.run(time.Second)
	pol.allow = true
	if left := p.lns.RetryDeferred(p.now); left != 0 {
		t.Fatalf("%d held after the retry, want 0", left)
	}
	p.run(time.Second)
	if na, a := count[CallAbandoned](p.lnsEv); na != 1 || a.Cause != AbandonRefused || a.Cause.String() != "refused" {
		t.Fatalf("LNS CallAbandoned %d %+v, want 1 refused", na, a)
	}
	if n, d := count[SessionDown](p.lacEv); n != 1 || d.Result.Message != "draining" {
		t.Fatalf("LAC SessionDown %d %+v, want the refusal", n, d)
	}
}
