package pppsession

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/l2tpd/l2tpd/auth"
	"github.com/l2tpd/l2tpd/auth/local"
	"github.com/l2tpd/l2tpd/dataplane"
	"github.com/l2tpd/l2tpd/l2tp"
)

var gw = netip.MustParseAddr("10.0.0.1")

func lastUp(t *testing.T, s *sideT) dataplane.NetConfig {
	t.Helper()
	ups := s.dp.Ups()
	if len(ups) == 0 {
		t.Fatalf("data plane session was never brought up")
	}
	return ups[len(ups)-1]
}

// A subscriber dials with each method (async authenticator and the inline
// local one), gets a pool address and DNS, both data paths come up with
// mirrored addresses, accounting starts once; a CDN from the LAC releases
// the address and stops accounting exactly once.
func TestDialUpAndRelease(t *testing.T) {
	for _, m := range []auth.Method{auth.MethodPAP, auth.MethodCHAPMD5, auth.MethodMSCHAPv2} {
		for _, inline := range []bool{false, true} {
			name := m.String()
			if inline {
				name += "/inline"
			}
			t.Run(name, func(t *testing.T) {
				h := newHarness(t, "10.0.0.0/29")
				if inline {
					h.useDecider()
				}
				ns, lnsD, cs, lacD := h.dial(1, "alice", "pw", m)
				h.run(20*time.Second, ns, cs)
				if got := len(ns.call.hangup) + len(cs.call.hangup); got != 0 {
					t.Fatalf("hangups: lns %v lac %v", ns.call.reason, cs.call.reason)
				}
				if inline == (h.authn.calls != 0) {
					t.Fatalf("async authenticator called %d times (inline=%v)", h.authn.calls, inline)
				}
				lup, cup := lastUp(t, ns), lastUp(t, cs)
				addr := lnsD.Address()
				if lup.Local != gw || lup.Peer != addr || !strings.HasPrefix(addr.String(), "10.0.0.") || addr == gw {
					t.Fatalf("LNS up %+v, address %v", lup, addr)
				}
				if cup.Local != addr || cup.Peer != gw || lacD.Address() != addr {
					t.Fatalf("LAC up %+v, want local %v peer %v", cup, addr, gw)
				}
				if lup.IfName != "ppp0" || lup.MTU != 1400 {
					t.Fatalf("LNS up ifname %q mtu %d", lup.IfName, lup.MTU)
				}
				if len(h.acct.starts) != 1 || h.acct.starts[0].Username != "alice" || h.acct.starts[0].Method != m || h.acct.starts[0].FramedIP != addr {
					t.Fatalf("accounting starts %+v", h.acct.starts)
				}
				if id := h.acct.starts[0].ID; len(id) != 16 || h.acct.starts[0].Info.AcctSessionID != id {
					t.Fatalf("Acct-Session-Id %q / %q", id, h.acct.starts[0].Info.AcctSessionID)
				}
				if ns.call.established != 1 {
					t.Fatalf("LNS told the L2TP session it is established %d times, want once", ns.call.established)
				}
				if e := h.logged("subscriber up"); len(e) != 2 {
					t.Fatalf("%d subscriber-up lines, want one per side", len(e))
				}
				ns.dp.SetStats(dataplane.Stats{RxBytes: 1000, TxBytes: 2000, RxPackets: 10, TxPackets: 20})
				h.now = h.now.Add(time.Minute)
				lnsD.Close(h.now, "peer sent CDN")
				lnsD.Close(h.now, "peer sent CDN")
				if len(h.acct.stops) != 1 || h.acct.stops[0] != auth.CauseLostCarrier {
					t.Fatalf("accounting stops %v, want one lost-carrier", h.acct.stops)
				}
				c := h.acct.counts[0]
				if c.InOctets != 1000 || c.OutOctets != 2000 || c.InPackets != 10 || c.OutPackets != 20 || c.SessionTime < time.Minute {
					t.Fatalf("counters %+v", c)
				}
				p, _ := h.pools.Get("p")
				if st := p.Stats(); st.Used != 0 {
					t.Fatalf("pool still has %d addresses in use", st.Used)
				}
				if h.env.Active() != 0 || lnsD.Ended() != EndCallCleared {
					t.Fatalf("active %d ended %v", h.env.Active(), lnsD.Ended())
				}
				if len(ns.call.hangup) != 0 {
					t.Fatal("Close must not send a CDN of its own")
				}
			})
		}
	}
}

// Refusals: the LNS logs why, hangs up with CDN result 3, starts no
// accounting and holds no address; the LAC logs that it was refused and
// hangs up too.
func TestRefused(t *testing.T) {
	cases := []struct {
		name, user, pw string
		why            string
	}{
		{"wrong-password", "alice", "nope", "wrong password"},
		{"disabled", "carol", "pw2", "account disabled"},
		{"unknown", "mallory", "pw", "unknown user"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, "10.0.0.0/29", local.Subscriber{Name: "alice", Password: "pw"}, local.Subscriber{Name: "carol", Password: "pw2", Disabled: true})
			h.useDecider()
			ns, lnsD, cs, lacD := h.dial(1, tc.user, tc.pw, auth.MethodCHAPMD5)
			h.run(30*time.Second, ns, cs)
			e := h.logged("subscriber authentication failed")
			if len(e) != 1 || e[0].ContextMap()["reason"] != tc.why || e[0].ContextMap()["user"] != tc.user {
				t.Fatalf("log lines %v", e)
			}
			if len(ns.call.hangup) != 1 || ns.call.hangup[0].Result != l2tp.ResultCDNAdmin || !strings.Contains(ns.call.hangup[0].Message, tc.why) {
				t.Fatalf("LNS hangups %+v", ns.call.hangup)
			}
			if lnsD.Ended() != EndAuthFailed || len(h.acct.starts) != 0 || len(h.acct.stops) != 0 || len(ns.dp.Ups()) != 0 || ns.call.established != 0 {
				t.Fatalf("ended %v, acct %v/%v, ups %d, established %d", lnsD.Ended(), h.acct.starts, h.acct.stops, len(ns.dp.Ups()), ns.call.established)
			}
			if h.env.Active() != 0 {
				t.Fatalf("%d sessions still active", h.env.Active())
			}
			if len(h.logged("the LNS refused our PPP authentication")) != 1 {
				t.Fatalf("LAC did not log the refusal")
			}
			if lacD.Ended() != EndPeerAuthFailed && len(cs.call.hangup) != 0 {
				t.Fatalf("LAC ended %v", lacD.Ended())
			}
		})
	}
}

// With one address in the pool the second subscriber is refused with CDN
// result 4 and an error line naming the exhaustion.
func TestPoolExhausted(t *testing.T) {
	h := newHarness(t, "10.0.0.2/32")
	h.useDecider()
	ns1, _, cs1, _ := h.dial(1, "alice", "pw", auth.MethodPAP)
	h.run(10*time.Second, ns1, cs1)
	ns2, d2, cs2, _ := h.dial(2, "alice", "pw", auth.MethodPAP)
	h.run(20*time.Second, ns1, cs1, ns2, cs2)
	if len(ns2.call.hangup) != 1 || ns2.call.hangup[0].Result != l2tp.ResultCDNTempResources {
		t.Fatalf("second session hangups %+v", ns2.call.hangup)
	}
	if d2.Ended() != EndPoolExhausted || len(h.logged("address pool exhausted: refusing the session")) != 1 {
		t.Fatalf("ended %v", d2.Ended())
	}
	if len(ns1.call.hangup) != 0 || len(h.acct.starts) != 1 {
		t.Fatalf("first session disturbed: %v", ns1.call.reason)
	}
}

// Session-Timeout and Idle-Timeout from the authenticator end the session
// with LCP Terminate, then CDN result 3 and the matching terminate cause.
func TestTimeouts(t *testing.T) {
	cases := []struct {
		name    string
		extra   func(*auth.Result)
		traffic bool
		want    auth.TerminateCause
		after   time.Duration
	}{
		{"session", func(r *auth.Result) { r.SessionTimeout = time.Hour }, false, auth.CauseSessionTimeout, time.Hour},
		{"idle", func(r *auth.Result) { r.IdleTimeout = 10 * time.Minute }, false, auth.CauseIdleTimeout, 10 * time.Minute},
		{"idle-with-traffic", func(r *auth.Result) { r.IdleTimeout = 10 * time.Minute }, true, auth.CauseIdleTimeout, 40 * time.Minute},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, "10.0.0.0/29")
			h.authn.extra = tc.extra
			ns, lnsD, cs, _ := h.dial(1, "alice", "pw", auth.MethodCHAPMD5)
			h.run(10*time.Second, ns, cs)
			upAt := h.now
			if tc.traffic {
				// Data flows for 30 minutes: every check sees new packets.
				for i := 1; i <= 6; i++ {
					h.run(5*time.Minute, ns, cs)
					st, _ := ns.dp.Stats()
					st.RxPackets += 5
					ns.dp.SetStats(st)
				}
				if len(ns.call.hangup) != 0 {
					t.Fatalf("idle timeout despite traffic: %v", ns.call.reason)
				}
			}
			h.run(3*tc.after, ns, cs)
			if len(ns.call.hangup) != 1 || ns.call.hangup[0].Result != l2tp.ResultCDNAdmin {
				t.Fatalf("hangups %+v", ns.call.hangup)
			}
			lnsD.Close(h.now, "session gone")
			if len(h.acct.stops) != 1 || h.acct.stops[0] != tc.want {
				t.Fatalf("stops %v, want %v", h.acct.stops, tc.want)
			}
			if st := h.acct.counts[0].SessionTime; st < tc.after || st > tc.after+2*time.Duration(float64(tc.after)*1.01)+time.Minute {
				t.Fatalf("ended after %v (up at %v)", st, upAt)
			}
		})
	}
}

// When the LAC stops answering, LCP echoes time out: CDN result 1 (loss of
// carrier) and cause Lost-Carrier.
func TestEchoTimeout(t *testing.T) {
	h := newHarness(t, "10.0.0.0/29")
	ns, lnsD, cs, _ := h.dial(1, "alice", "pw", auth.MethodCHAPMD5)
	h.run(10*time.Second, ns, cs)
	h.dropToLNS = true
	h.run(10*time.Minute, ns, cs)
	if len(ns.call.hangup) != 1 || ns.call.hangup[0].Result != l2tp.ResultCDNLostCarrier {
		t.Fatalf("hangups %+v (%v)", ns.call.hangup, ns.call.reason)
	}
	lnsD.Close(h.now, "x")
	if lnsD.Ended() != EndEchoTimeout || len(h.acct.stops) != 1 || h.acct.stops[0] != auth.CauseLostCarrier {
		t.Fatalf("ended %v stops %v", lnsD.Ended(), h.acct.stops)
	}
}

// A fixed address outside every pool is used as is (our end: the pool's
// gateway) and held exclusively; 255.255.255.254 means "from the pool"; a
// fixed address inside the pool is reserved there.
func TestFixedAddresses(t *testing.T) {
	h := newHarness(t, "10.0.0.0/29",
		local.Subscriber{Name: "alice", Password: "pw", Address: netip.MustParseAddr("192.0.2.7")},
		local.Subscriber{Name: "bob", Password: "pw", Address: netip.MustParseAddr("255.255.255.254")},
		local.Subscriber{Name: "dave", Password: "pw", Address: netip.MustParseAddr("10.0.0.5")})
	h.useDecider()
	a1, d1, c1, _ := h.dial(1, "alice", "pw", auth.MethodPAP)
	b, db, cb, _ := h.dial(2, "bob", "pw", auth.MethodPAP)
	dv, dd, cd, _ := h.dial(3, "dave", "pw", auth.MethodPAP)
	a2, _, c2, _ := h.dial(4, "alice", "pw", auth.MethodPAP)
	h.run(20*time.Second, a1, c1, b, cb, dv, cd, a2, c2)
	if d1.Address() != netip.MustParseAddr("192.0.2.7") || lastUp(t, a1).Local != gw {
		t.Fatalf("alice: %v %+v", d1.Address(), lastUp(t, a1))
	}
	if !strings.HasPrefix(db.Address().String(), "10.0.0.") || dd.Address() != netip.MustParseAddr("10.0.0.5") {
		t.Fatalf("bob %v dave %v", db.Address(), dd.Address())
	}
	if len(a2.call.hangup) != 1 || len(h.logged("no address for the subscriber: refusing the session")) != 1 {
		t.Fatalf("second alice: hangups %+v", a2.call.hangup)
	}
	p, _ := h.pools.Get("p")
	if o, ok := p.Owner(dd.Address()); !ok || o == 0 {
		t.Fatalf("dave's address not reserved with an owner")
	}
	for _, d := range []*LNS{d1, db, dd} {
		d.Close(h.now, "x")
	}
	if st := p.Stats(); st.Used != 0 {
		t.Fatalf("%d addresses still used", st.Used)
	}
	if err := h.env.reserveFixed(netip.MustParseAddr("192.0.2.7"), 1); err != nil {
		t.Fatalf("alice's fixed address not released: %v", err)
	}
}

// Closing a session while its authentication is outstanding cancels the
// request; the late answer changes nothing and nothing is accounted.
func TestCloseDuringAuth(t *testing.T) {
	h := newHarness(t, "10.0.0.0/29")
	var pending []func()
	h.env.cfg.Async = func(f func()) { pending = append(pending, f) }
	ns, lnsD, cs, _ := h.dial(1, "alice", "pw", auth.MethodCHAPMD5)
	h.run(5*time.Second, ns, cs)
	if len(pending) != 1 {
		t.Fatalf("%d authentication requests outstanding, want 1", len(pending))
	}
	lnsD.Close(h.now, "peer sent CDN")
	pending[0]()
	if err := h.authn.ctxs[0].Err(); err == nil {
		t.Fatal("authentication context not cancelled")
	}
	h.run(5*time.Second, ns, cs)
	if len(h.acct.starts) != 0 || len(ns.dp.Ups()) != 0 || h.env.Active() != 0 {
		t.Fatalf("starts %d ups %d active %d", len(h.acct.starts), len(ns.dp.Ups()), h.env.Active())
	}
}

func TestEndKindTable(t *testing.T) {
	cases := []struct {
		k      EndKind
		result uint16
		cause  auth.TerminateCause
	}{
		{EndAuthFailed, l2tp.ResultCDNAdmin, auth.CauseUserError},
		{EndPoolExhausted, l2tp.ResultCDNTempResources, auth.CauseNASError},
		{EndPeerTerminated, l2tp.ResultCDNAdmin, auth.CauseUserRequest},
		{EndEchoTimeout, l2tp.ResultCDNLostCarrier, auth.CauseLostCarrier},
		{EndSessionTimeout, l2tp.ResultCDNAdmin, auth.CauseSessionTimeout},
		{EndIdleTimeout, l2tp.ResultCDNAdmin, auth.CauseIdleTimeout},
		{EndDataPlane, l2tp.ResultCDNTempResources, auth.CauseNASError},
		{EndCallCleared, l2tp.ResultCDNAdmin, auth.CauseLostCarrier},
		{EndShutdown, l2tp.ResultCDNAdmin, auth.CauseAdminReboot},
		{EndAdminReset, l2tp.ResultCDNAdmin, auth.CauseAdminReset},
		{EndInternalError, l2tp.ResultCDNAdmin, auth.CauseNASError},
	}
	for _, tc := range cases {
		if rc := tc.k.CDN("m"); rc.Result != tc.result || rc.Error != 0 || rc.Message != "m" {
			t.Errorf("%v: CDN %+v, want result %d", tc.k, rc, tc.result)
		}
		if c := tc.k.Cause(); c != tc.cause {
			t.Errorf("%v: cause %d, want %d", tc.k, c, tc.cause)
		}
		if strings.HasPrefix(tc.k.String(), "EndKind(") {
			t.Errorf("%d has no name", tc.k)
		}
	}
	for reason, want := range map[string]EndKind{
		"terminated by peer: bye":                                   EndPeerTerminated,
		"peer not responding: 3 LCP Echo-Requests unanswered":       EndEchoTimeout,
		`chap authentication failed for "x": authentication failed`: EndAuthFailed,
		"chap authentication rejected by the peer: nope":            EndPeerAuthFailed,
		"LCP negotiation failed":                                    EndNegotiation,
	} {
		if got := classifyLinkDown(reason); got != want {
			t.Errorf("classifyLinkDown(%q) = %v, want %v", reason, got, want)
		}
	}
}

// Acct-Session-Ids are unique within a process and a later process starts
// above every ID an earlier one made.
func TestIDs(t *testing.T) {
	start := time.Unix(1_700_000_000, 0)
	a := NewIDs(start)
	seen := map[string]bool{}
	var last uint64
	for range 1000 {
		n, id := a.Next()
		if seen[id] || n <= last || len(id) != 16 {
			t.Fatalf("id %q (n %d, last %d)", id, n, last)
		}
		seen[id], last = true, n
	}
	b := NewIDs(start.Add(time.Millisecond))
	if n, _ := b.Next(); n <= last {
		t.Fatalf("restarted generator gave %d, not above %d", n, last)
	}
	// The ID is the number as %016X writes it.
	rnd := rand.New(rand.NewPCG(3, 4))
	for _, n := range append([]uint64{0, 1, 0xabcdef, 1<<63 + 5, ^uint64(0)}, rnd.Uint64(), rnd.Uint64(), rnd.Uint64()) {
		if got, want := acctSessionID(n), fmt.Sprintf("%016X", n); got != want {
			t.Fatalf("acctSessionID(%#x) = %q, want %q", n, got, want)
		}
	}
}
