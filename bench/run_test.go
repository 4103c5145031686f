package bench

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/l2tpd/l2tpd/auth"
	"github.com/l2tpd/l2tpd/auth/local"
	"github.com/l2tpd/l2tpd/config"
	"github.com/l2tpd/l2tpd/l2tp/endpoint"
	"github.com/l2tpd/l2tpd/lns"
	"github.com/l2tpd/l2tpd/pool"
	"github.com/l2tpd/l2tpd/pppsession"
)

// countingAcct counts accounting Starts and Stops.
type countingAcct struct{ starts, stops atomic.Int64 }

func (c *countingAcct) Start(*auth.AcctSession)                      { c.starts.Add(1) }
func (c *countingAcct) Interim(*auth.AcctSession, auth.AcctCounters) {}
func (c *countingAcct) Stop(*auth.AcctSession, auth.AcctCounters, auth.TerminateCause) {
	c.stops.Add(1)
}

// startLNS runs our LNS in-process on loopback (lns role, PPP driver,
// local subscribers user0..user(n-1) with password "pw" of which the
// first `disabled` are disabled, a pool) over a second wire plane.
func startLNS(t *testing.T, n, disabled int) (netip.AddrPort, *countingAcct) {
	t.Helper()
	lnsCfg, err := config.Parse([]byte(`
[l2tp]
listen = ["127.0.0.1:1701"]
accept_unknown_peers = true
[ppp]
auth = ["chap", "mschapv2", "pap"]
ipv6 = "deny"
ip_pool = "p"
[[pool]]
name = "p"
ranges = ["10.64.0.0/20"]
gateway = "10.64.0.1"
`), "lns.toml")
	if err != nil {
		t.Fatal(err)
	}
	var subs []local.Subscriber
	for i := range n {
		subs = append(subs, local.Subscriber{Name: fmt.Sprintf("user%d", i), Password: "pw", Disabled: i < disabled})
	}
	authn, err := local.New(subs)
	if err != nil {
		t.Fatal(err)
	}
	rs, _ := pool.ParseRanges("10.64.0.0/20")
	pools, err := pool.NewSet([]pool.Config{{Name: "p", Ranges: rs, Gateway: netip.MustParseAddr("10.64.0.1")}})
	if err != nil {
		t.Fatal(err)
	}
	acct := &countingAcct{}
	env := pppsession.NewEnv(pppsession.Config{Config: func() *config.Config { return lnsCfg }, Auth: authn, Acct: acct, Pools: pools})
	ep, err := endpoint.New(endpoint.Config{
		Listen:  []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:0")},
		Plane:   NewWirePlane(),
		Handler: lns.New(lnsCfg, nopLog(), env.LNSFactory()),
		Logger:  nopLog(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ep.Shutdown(context.Background()) })
	return ep.ListenAddrs()[0], acct
}

// 200 subscribers over 4 tunnels against our LNS in this process: every
// session comes up (the LNS accounts each), the latencies cover every
// session, the progress callback sees the count rise, and the hang-up
// stops every accounting record.
func TestRunAgainstOurLNS(t *testing.T) {
	for _, method := range []string{"pap", "chap", "mschapv2"} {
		t.Run(method, func(t *testing.T) {
			const n = 200
			addr, acct := startLNS(t, n, 0)
			m, err := ParseAuth(method)
			if err != nil {
				t.Fatal(err)
			}
			var samples atomic.Int64
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			res, err := Run(ctx, Options{
				Target: addr, Tunnels: 4, Sessions: n, InFlight: 50, Auth: m, Password: "pw",
				Interval: 20 * time.Millisecond, Progress: func(Sample) { samples.Add(1) },
				SetupTimeout: 20 * time.Second,
				TargetPID:    os.Getpid(), // the LNS runs in this process
			})
			if err != nil {
				t.Fatal(err)
			}
			if res.TunnelsUp != 4 || res.Placed != n || res.Up != n || res.Failed != 0 || len(res.Failures) != 0 {
				t.Fatalf("tunnels %d placed %d up %d failed %d %v", res.TunnelsUp, res.Placed, res.Up, res.Failed, res.Failures)
			}
			if res.SessionSetup.N != n || res.TunnelSetup.N != 4 || res.FirstThousand.N != n {
				t.Fatalf("latency counts: %+v %+v", res.SessionSetup, res.TunnelSetup)
			}
			if !(res.SessionSetup.P50 > 0 && res.SessionSetup.P50 <= res.SessionSetup.P99 && res.SessionSetup.P99 <= res.SessionSetup.Max) {
				t.Fatalf("percentiles out of order: %+v", res.SessionSetup)
			}
			if res.SetupRate <= 0 || res.SetupRate99 <= 0 || res.SelfCPU <= 0 || res.ControlSent < 4*3+n*2 {
				t.Fatalf("rate %v self CPU %v control sent %d", res.SetupRate, res.SelfCPU, res.ControlSent)
			}
			if res.TargetCPUPerSetup <= 0 || res.TargetSwitchesPerSetup <= 0 || res.Setup.TargetSwitches <= 0 {
				t.Fatalf("target (this process): CPU per setup %v, context switches per setup %.2f (%d in the setup)",
					res.TargetCPUPerSetup, res.TargetSwitchesPerSetup, res.Setup.TargetSwitches)
			}
			// The LNS and the emulator share this process: 200 sessions' state
			// grows its heap into fresh pages (126 faults or more in 18 runs).
			if res.Setup.TargetFaults <= 0 || res.TargetFaultsPerSetup != float64(res.Setup.TargetFaults)/float64(n) {
				t.Fatalf("target (this process): %d page faults in the setup, %.2f per setup", res.Setup.TargetFaults, res.TargetFaultsPerSetup)
			}
			if got := acct.starts.Load(); got != n {
				t.Fatalf("LNS accounted %d sessions, want %d", got, n)
			}
			waitUntil(t, 10*time.Second, func() bool { return acct.stops.Load() == n })
			var text strings.Builder
			if err := res.WriteText(&text); err != nil || !strings.Contains(text.String(), fmt.Sprintf("up %d, failed 0", n)) ||
				!strings.Contains(text.String(), "target context switches per setup: ") ||
				!strings.Contains(text.String(), "target page faults per setup: ") {
				t.Fatalf("text report (%v):\n%s", err, text.String())
			}
		})
	}
}

// A refused subscriber is a failure with its cause; the others come up.
func TestRunCountsRefusals(t *testing.T) {
	const n, disabled = 60, 10
	addr, _ := startLNS(t, n, disabled)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := Run(ctx, Options{Target: addr, Tunnels: 2, Sessions: n, InFlight: 20, Password: "pw", SetupTimeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if res.Up != n-disabled || res.Failed != disabled {
		t.Fatalf("up %d failed %d (%v), want %d and %d", res.Up, res.Failed, res.Failures, n-disabled, disabled)
	}
	if got := res.Failures["ppp: refused-by-lns"]; got != disabled {
		t.Fatalf("failures %v: want %d refused-by-lns", res.Failures, disabled)
	}
}

// Nobody listening: the tunnels fail, the sessions are failures, and the
// run ends at the setup timeout instead of hanging.
func TestRunNoLNS(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := Run(ctx, Options{Target: netip.MustParseAddrPort("127.0.0.1:9"), Tunnels: 2, Sessions: 5, SetupTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.TunnelsUp != 0 || res.Up != 0 || res.Failed != 5 || res.Failures["session: no tunnel up"] != 5 || res.Failures["tunnel: setup timeout"] != 2 {
		t.Fatalf("tunnels up %d, up %d, failed %d: %v", res.TunnelsUp, res.Up, res.Failed, res.Failures)
	}
}

func TestOptionsErrors(t *testing.T) {
	addr := netip.MustParseAddrPort("127.0.0.1:1701")
	for _, o := range []Options{
		{},
		{Target: addr, Sessions: -1},
		{Target: addr, UserFormat: "user"},
		{Target: addr, Tunnels: 1, Sessions: 70000},
	} {
		if _, err := Run(context.Background(), o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
	if _, err := ParseAuth("eap"); err == nil {
		t.Error("eap accepted")
	}
}

func waitUntil(t *testing.T, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in time")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func nopLog() *zap.Logger { return zap.NewNop() }
