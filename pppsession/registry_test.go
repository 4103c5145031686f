package pppsession

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/l2tpd/l2tpd/auth"
	"github.com/l2tpd/l2tpd/auth/local"
	"github.com/l2tpd/l2tpd/config"
	"github.com/l2tpd/l2tpd/dataplane"
	"github.com/l2tpd/l2tpd/l2tp"
	"github.com/l2tpd/l2tpd/l2tp/endpoint"
)

type regPair struct {
	ns, cs *sideT
	d      *LNS
}

// threeUp dials alice (tunnel 1, calling 111), bob (2, 222) and alice
// again (3, 333) and brings them up.
func threeUp(t *testing.T) (*harness, []regPair) {
	t.Helper()
	h := newHarness(t, "10.0.0.0/28", local.Subscriber{Name: "alice", Password: "pw"}, local.Subscriber{Name: "bob", Password: "pw"})
	var ps []regPair
	var sides []*sideT
	for i, u := range []string{"alice", "bob", "alice"} {
		h.calling = []string{"111", "222", "333"}[i]
		ns, d, cs, _ := h.dial(uint32(i+1), u, "pw", auth.MethodCHAPMD5)
		ps = append(ps, regPair{ns, cs, d})
		sides = append(sides, ns, cs)
	}
	h.run(20*time.Second, sides...)
	for _, p := range ps {
		if len(p.ns.call.hangup) != 0 || !p.d.Address().IsValid() {
			t.Fatalf("session %v not up: %v", p.d, p.ns.call.reason)
		}
	}
	return h, ps
}

func allSides(ps []regPair) []*sideT {
	var out []*sideT
	for _, p := range ps {
		out = append(out, p.ns, p.cs)
	}
	return out
}

func ids(snaps []Snapshot) []uint32 {
	var out []uint32
	for _, s := range snaps {
		out = append(out, s.TunnelID)
	}
	return out
}

func equalIDs(a, b []uint32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// The registry finds sessions by every key, alone and combined, and shows
// what each session is.
func TestRegistrySelect(t *testing.T) {
	h, ps := threeUp(t)
	r := h.env.Sessions()
	if r.Len() != 3 {
		t.Fatalf("Len %d", r.Len())
	}
	id0 := ps[0].d.rec.ID
	cases := []struct {
		name string
		sel  Selector
		want []uint32
	}{
		{"all", Selector{}, []uint32{1, 2, 3}},
		{"acct-id", Selector{AcctSessionID: id0}, []uint32{1}},
		{"acct-id-unknown", Selector{AcctSessionID: "nope"}, nil},
		{"user", Selector{User: "alice"}, []uint32{1, 3}},
		{"user-unknown", Selector{User: "carol"}, nil},
		{"address", Selector{Address: ps[1].d.Address()}, []uint32{2}},
		{"address-unknown", Selector{Address: netip.MustParseAddr("192.0.2.1")}, nil},
		{"calling", Selector{CallingNumber: "333"}, []uint32{3}},
		{"user+calling", Selector{User: "alice", CallingNumber: "222"}, nil},
		{"user+address", Selector{User: "alice", Address: ps[2].d.Address()}, []uint32{3}},
		{"acct-id+wrong-user", Selector{AcctSessionID: id0, User: "bob"}, nil},
		{"tunnel", Selector{TunnelID: 2}, []uint32{2}},
	}
	for _, tc := range cases {
		if got := ids(r.List(tc.sel)); !equalIDs(got, tc.want) {
			t.Errorf("%s: tunnels %v, want %v", tc.name, got, tc.want)
		}
	}
	s, ok := r.Find(id0)
	want := Snapshot{AcctSessionID: id0, TunnelID: 1, SessionID: 1, CallingNumber: "111", User: "alice", Method: auth.MethodCHAPMD5,
		Address: ps[0].d.Address(), Interface: lastUp(t, ps[0].ns).IfName, State: StateUp}
	s.Created, s.Started = time.Time{}, time.Time{}
	if !ok || s != want {
		t.Fatalf("Find = %+v, %v; want %+v", s, ok, want)
	}
}

// Terminate (soft): LCP Terminate, then Stop with Admin-Reset and a CDN
// result 3; only the matching sessions end, each once, and they leave the
// registry. Hard: at once, no LCP exchange.
func TestRegistryTerminate(t *testing.T) {
	for _, hard := range []bool{false, true} {
		name := "soft"
		if hard {
			name = "hard"
		}
		t.Run(name, func(t *testing.T) {
			h, ps := threeUp(t)
			r := h.env.Sessions()
			n := r.Terminate(Selector{User: "alice"}, Termination{Kind: EndAdminReset, Message: "radius disconnect", Hard: hard})
			if n != 2 {
				t.Fatalf("Terminate matched %d, want 2", n)
			}
			if got := r.Terminate(Selector{User: "alice"}, Termination{Hard: hard}); got != 2 {
				t.Fatalf("terminating again before the posts ran: %d", got)
			}
			if s, _ := r.Find(ps[0].d.rec.ID); s.State != StateStopping {
				t.Fatalf("state %v, want stopping", s.State)
			}
			h.run(30*time.Second, allSides(ps)...)
			for _, i := range []int{0, 2} {
				p := ps[i]
				if len(p.ns.call.hangup) != 1 || p.ns.call.hangup[0].Result != l2tp.ResultCDNAdmin || p.ns.call.hangup[0].Message != "radius disconnect" {
					t.Fatalf("session %d hangups %+v", i, p.ns.call.hangup)
				}
				if p.d.Ended() != EndAdminReset {
					t.Fatalf("session %d ended %v", i, p.d.Ended())
				}
			}
			// The LNS sent an LCP Terminate-Request only when soft.
			if sawTerm := lcpTerminates(ps[0].ns.dp.Sent()) > 0; sawTerm == hard {
				t.Fatalf("LCP Terminate-Request seen by the LAC: %v (hard %v)", sawTerm, hard)
			}
			if len(ps[1].ns.call.hangup) != 0 {
				t.Fatal("bob's session was ended too")
			}
			if len(h.acct.stops) != 2 || h.acct.stops[0] != auth.CauseAdminReset || h.acct.stops[1] != auth.CauseAdminReset {
				t.Fatalf("stops %v", h.acct.stops)
			}
			if r.Len() != 1 || len(r.List(Selector{User: "alice"})) != 0 || len(r.List(Selector{Address: ps[0].d.addr})) != 0 {
				t.Fatalf("registry after terminate: %+v", r.List(Selector{}))
			}
			// The runner closes the driver after the CDN: nothing more.
			ps[0].d.Close(h.now, "session closed")
			if len(h.acct.stops) != 2 {
				t.Fatalf("second Stop: %v", h.acct.stops)
			}
			if n := r.Terminate(Selector{User: "alice"}, Termination{}); n != 0 {
				t.Fatalf("terminated %d gone sessions", n)
			}
		})
	}
}

// CoA: a new Session-Timeout ends the session that long after the change;
// Idle-Timeout 0 removes the idle limit; a new Acct-Interim-Interval
// changes how often Interim-Updates go out, with the data path's counters.
func TestRegistryChange(t *testing.T) {
	h, ps := threeUp(t)
	r := h.env.Sessions()
	if len(h.acct.interims) != 0 {
		t.Fatalf("interims without an interval: %d", len(h.acct.interims))
	}
	iv := 10 * time.Minute
	if n := r.Change(Selector{User: "bob"}, Change{InterimInterval: &iv}); n != 1 {
		t.Fatalf("Change matched %d", n)
	}
	ps[1].ns.dp.SetStats(dataplane.Stats{RxBytes: 5000, TxBytes: 7000, RxPackets: 50, TxPackets: 70})
	h.run(time.Hour, allSides(ps)...)
	// 60 minutes at 10 min (jittered 7.5..12.5): 4 to 8 updates.
	if n := len(h.acct.interims); n < 4 || n > 8 {
		t.Fatalf("%d interims in an hour at 10m", n)
	}
	if c := h.acct.interims[0]; c.InOctets < 5000 || c.OutOctets < 7000 || c.InPackets < 50 || c.SessionTime < 5*time.Minute {
		t.Fatalf("interim counters %+v", c)
	}
	zero := time.Duration(0)
	r.Change(Selector{User: "bob"}, Change{InterimInterval: &zero})
	h.run(time.Second, allSides(ps)...)
	n := len(h.acct.interims)
	h.run(time.Hour, allSides(ps)...)
	if len(h.acct.interims) != n {
		t.Fatal("interims after the interval was set to 0")
	}

	st := 5 * time.Minute
	at := h.now
	r.Change(Selector{CallingNumber: "111"}, Change{SessionTimeout: &st})
	h.run(10*time.Minute, allSides(ps)...)
	if ps[0].d.Ended() != EndSessionTimeout || len(h.acct.stops) != 1 || h.acct.stops[0] != auth.CauseSessionTimeout {
		t.Fatalf("ended %v, stops %v", ps[0].d.Ended(), h.acct.stops)
	}
	if got := h.acct.counts[0].SessionTime; got < at.Sub(h.acct.starts[0].Start)+st {
		t.Fatalf("session ended too early: %v", got)
	}
	if len(ps[1].ns.call.hangup)+len(ps[2].ns.call.hangup) != 0 {
		t.Fatal("other sessions ended")
	}
}

// An Idle-Timeout from the authenticator can be removed by a CoA, and one
// can be added to a session that had none.
func TestRegistryChangeIdle(t *testing.T) {
	h := newHarness(t, "10.0.0.0/29")
	h.authn.extra = func(r *auth.Result) { r.IdleTimeout = 10 * time.Minute }
	ns, d, cs, _ := h.dial(1, "alice", "pw", auth.MethodPAP)
	h.run(10*time.Second, ns, cs)
	zero := time.Duration(0)
	h.env.Sessions().Change(Selector{User: "alice"}, Change{IdleTimeout: &zero})
	h.run(2*time.Hour, ns, cs)
	if d.Ended() != EndUnknown {
		t.Fatalf("ended %v with the idle timeout removed", d.Ended())
	}
	idle := 3 * time.Minute
	h.env.Sessions().Change(Selector{User: "alice"}, Change{IdleTimeout: &idle})
	h.run(10*time.Minute, ns, cs)
	if d.Ended() != EndIdleTimeout {
		t.Fatalf("ended %v, want idle timeout", d.Ended())
	}
}

// The authenticator's Acct-Interim-Interval, else the Env's default,
// schedules Interim-Updates from the network coming up.
func TestInterimFromAuth(t *testing.T) {
	for _, tc := range []struct {
		name     string
		result   time.Duration
		fallback time.Duration
		min, max int
	}{
		{"from-result", 2 * time.Minute, 0, 15, 40},
		{"result-wins", 2 * time.Minute, time.Hour, 15, 40},
		{"fallback", 0, 5 * time.Minute, 6, 16},
		{"none", 0, 0, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, "10.0.0.0/29")
			h.env.cfg.InterimInterval = tc.fallback
			h.authn.extra = func(r *auth.Result) { r.InterimInterval = tc.result }
			ns, _, cs, _ := h.dial(1, "alice", "pw", auth.MethodPAP)
			h.run(time.Hour, ns, cs)
			if n := len(h.acct.interims); n < tc.min || n > tc.max {
				t.Fatalf("%d interims in an hour, want %d..%d", n, tc.min, tc.max)
			}
		})
	}
}

// While the daemon shuts down, sessions whose L2TP session goes away end
// with Admin-Reboot; before, with Lost-Carrier.
func TestShutdownCause(t *testing.T) {
	h, ps := threeUp(t)
	ps[0].d.Close(h.now, "tunnel closed by peer")
	h.env.ShuttingDown()
	ps[1].d.Close(h.now, "tunnel closed: shutting down")
	ps[2].d.Close(h.now, "daemon stopped")
	want := []auth.TerminateCause{auth.CauseLostCarrier, auth.CauseAdminReboot, auth.CauseAdminReboot}
	if len(h.acct.stops) != 3 {
		t.Fatalf("stops %v", h.acct.stops)
	}
	for i := range want {
		if h.acct.stops[i] != want[i] {
			t.Fatalf("stops %v, want %v", h.acct.stops, want)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := h.env.Sessions().WaitEmpty(ctx); err != nil {
		t.Fatalf("WaitEmpty: %v", err)
	}
}

// A session the endpoint ended because of an internal error (a recovered
// panic) is released like any other, its Stop record saying NAS-Error.
func TestInternalErrorCause(t *testing.T) {
	h, ps := threeUp(t)
	addr := ps[1].d.Address()
	ps[1].d.Close(h.now, endpoint.ReasonInternalError)
	if len(h.acct.stops) != 1 || h.acct.stops[0] != auth.CauseNASError {
		t.Fatalf("stops %v, want one NAS-Error", h.acct.stops)
	}
	if ps[1].d.Ended() != EndInternalError {
		t.Fatalf("ended %v, want %v", ps[1].d.Ended(), EndInternalError)
	}
	if !addr.IsValid() || ps[1].d.Address().IsValid() {
		t.Fatalf("address %v before Close, %v after; want it released", addr, ps[1].d.Address())
	}
}

// WaitEmpty returns when the last session leaves, not before.
func TestWaitEmpty(t *testing.T) {
	h, ps := threeUp(t)
	r := h.env.Sessions()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := r.WaitEmpty(ctx); err == nil {
		t.Fatal("WaitEmpty returned nil with sessions left")
	}
	done := make(chan error, 1)
	go func() { done <- r.WaitEmpty(context.Background()) }()
	for i, p := range ps {
		p.d.Close(h.now, "gone")
		if i < 2 {
			select {
			case err := <-done:
				t.Fatalf("WaitEmpty returned (%v) with %d sessions left", err, r.Len())
			default:
			}
		}
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second): // a bound, not a wait for an event
		t.Fatalf("WaitEmpty did not return after the last session left (%d registered)", r.Len())
	}
}

// A profile with authenticator = "radius" asks the RADIUS authenticator
// (and is refused when none is configured); others ask Auth.
func TestProfileAuthenticator(t *testing.T) {
	t.Run("radius", func(t *testing.T) {
		h := newHarness(t, "10.0.0.0/29")
		rad := &asyncAuth{a: h.authn.a}
		h.env.cfg.RADIUS = rad
		h.prof.Authenticator = config.AuthenticatorRADIUS
		ns, d, cs, _ := h.dial(1, "alice", "pw", auth.MethodPAP)
		h.run(10*time.Second, ns, cs)
		if rad.calls != 1 || h.authn.calls != 0 || !d.Address().IsValid() {
			t.Fatalf("radius calls %d, local calls %d, address %v", rad.calls, h.authn.calls, d.Address())
		}
	})
	t.Run("radius-missing", func(t *testing.T) {
		h := newHarness(t, "10.0.0.0/29")
		h.prof.Authenticator = config.AuthenticatorRADIUS
		ns, d, cs, _ := h.dial(1, "alice", "pw", auth.MethodPAP)
		h.run(10*time.Second, ns, cs)
		if h.authn.calls != 0 || len(ns.call.hangup) != 1 || d.Ended() != EndAuthFailed {
			t.Fatalf("local calls %d, hangups %v, ended %v", h.authn.calls, ns.call.reason, d.Ended())
		}
	})
}

// lcpTerminates counts LCP Terminate-Requests among PPP frames (with or
// without address and control fields).
func lcpTerminates(frames [][]byte) int {
	n := 0
	for _, f := range frames {
		if len(f) >= 2 && f[0] == 0xff && f[1] == 0x03 {
			f = f[2:]
		}
		if len(f) >= 3 && f[0] == 0xc0 && f[1] == 0x21 && f[2] == 5 {
			n++
		}
	}
	return n
}

// A session still waiting for its authenticator is listed as starting and
// can be terminated: CDN, no accounting, and the late answer is ignored.
func TestTerminateDuringAuth(t *testing.T) {
	h := newHarness(t, "10.0.0.0/29")
	var pending func()
	h.env.cfg.Async = func(f func()) { pending = f }
	ns, d, cs, _ := h.dial(1, "alice", "pw", auth.MethodPAP)
	h.run(5*time.Second, ns, cs)
	if pending == nil {
		t.Fatal("no authentication outstanding")
	}
	l := h.env.Sessions().List(Selector{})
	if len(l) != 1 || l[0].State != StateStarting || l[0].User != "" || l[0].Address.IsValid() {
		t.Fatalf("registry while authenticating: %+v", l)
	}
	if n := h.env.Sessions().Terminate(Selector{}, Termination{Kind: EndShutdown, Message: "daemon shutting down"}); n != 1 {
		t.Fatalf("terminated %d", n)
	}
	h.run(30*time.Second, ns, cs)
	if len(ns.call.hangup) != 1 || d.Ended() != EndShutdown || h.env.Sessions().Len() != 0 {
		t.Fatalf("hangups %v, ended %v, registered %d", ns.call.reason, d.Ended(), h.env.Sessions().Len())
	}
	pending()
	h.run(time.Second, ns, cs)
	if len(h.acct.starts)+len(h.acct.stops) != 0 || d.Address().IsValid() {
		t.Fatalf("accounting %v/%v or address %v after a terminated authentication", h.acct.starts, h.acct.stops, d.Address())
	}
}

// Entries sharing a user name and calling number leave their lists in
// any order, and the lists stay exact (each entry at the index it
// records, none lost or kept).
func TestRegistrySharedKeysRemoval(t *testing.T) {
	r := newRegistry()
	now := time.Unix(1_700_000_000, 0)
	var es []*regEntry
	for i := range 50 {
		d := &LNS{}
		d.rec.ID = fmt.Sprintf("%016X", i+1)
		d.rec.Info.CallingNumber = "shared-calling"
		e := r.add(d, now)
		r.authenticated(e, "shared-user", auth.MethodCHAPMD5)
		es = append(es, e)
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	rnd.Shuffle(len(es), func(i, j int) { es[i], es[j] = es[j], es[i] })
	for n, e := range es {
		r.remove(e)
		left := es[n+1:]
		for _, l := range [][]*regEntry{r.byUser["shared-user"], r.byCalling["shared-calling"]} {
			if len(l) != len(left) {
				t.Fatalf("after %d removals: list of %d, want %d", n+1, len(l), len(left))
			}
			for _, want := range left {
				if !slices.Contains(l, want) {
					t.Fatalf("after %d removals: entry %s lost", n+1, want.snap.AcctSessionID)
				}
			}
		}
		for i, x := range r.byUser["shared-user"] {
			if x.userAt != i {
				t.Fatalf("entry %s at %d records %d", x.snap.AcctSessionID, i, x.userAt)
			}
		}
		for i, x := range r.byCalling["shared-calling"] {
			if x.callingAt != i {
				t.Fatalf("entry %s at %d records calling index %d", x.snap.AcctSessionID, i, x.callingAt)
			}
		}
	}
	if len(r.byUser) != 0 || len(r.byCalling) != 0 || len(r.byID) != 0 {
		t.Fatalf("left: %d users, %d calling numbers, %d ids", len(r.byUser), len(r.byCalling), len(r.byID))
	}
}

// BenchmarkRegistryCycle is one session's life in a registry that holds
// 20,000 others (maps as large as a busy server's, their entries mostly
// out of the caches): add, authenticated, up, remove.
func BenchmarkRegistryCycle(b *testing.B) {
	const held = 20000
	r := newRegistry()
	now := time.Unix(1_700_000_000, 0)
	ids := make([]string, 2*held)
	users := make([]string, 2*held)
	callings := make([]string, 2*held)
	for i := range ids {
		ids[i] = fmt.Sprintf("%016X", i+1)
		users[i] = fmt.Sprintf("user%d", i)
		callings[i] = fmt.Sprintf("0612%06d", i)
	}
	ds := make([]LNS, 2*held)
	es := make([]*regEntry, 2*held)
	enter := func(i int) {
		d := &ds[i]
		d.rec.ID, d.rec.Info.CallingNumber = ids[i], callings[i]
		es[i] = r.add(d, now)
		r.authenticated(es[i], users[i], auth.MethodCHAPMD5)
		r.up(es[i], netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), "", now)
	}
	for i := range held {
		enter(i)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		// The oldest leaves, a new one comes: the registry stays at held.
		out, in := i%(2*held), (i+held)%(2*held)
		r.remove(es[out])
		enter(in)
		i++
	}
}

// An entry updated after its removal (an authentication answer or IPCP
// up that was already on its way) is not indexed again: nothing finds it
// by user name or address, and the registry is empty.
func TestRegistryUpdateAfterRemove(t *testing.T) {
	r := newRegistry()
	now := time.Unix(1_700_000_000, 0)
	d := &LNS{}
	d.rec.ID = "00000000000000A1"
	e := r.add(d, now)
	r.remove(e)
	addr := netip.MustParseAddr("10.64.0.9")
	r.authenticated(e, "alice", auth.MethodCHAPMD5)
	r.up(e, addr, "ppp0", now)
	if len(r.byUser) != 0 || len(r.byAddr) != 0 || len(r.byID) != 0 {
		t.Fatalf("a removed entry was indexed again: %d by user, %d by address, %d by ID", len(r.byUser), len(r.byAddr), len(r.byID))
	}
}
