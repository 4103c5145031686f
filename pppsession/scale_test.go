package pppsession

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/l2tpd/l2tpd/auth"
	"github.com/l2tpd/l2tpd/auth/local"
	"github.com/l2tpd/l2tpd/config"
	"github.com/l2tpd/l2tpd/dataplane/fake"
	"github.com/l2tpd/l2tpd/l2tp"
	"github.com/l2tpd/l2tpd/l2tp/endpoint"
	"github.com/l2tpd/l2tpd/lac"
	"github.com/l2tpd/l2tpd/lns"
	"github.com/l2tpd/l2tpd/pool"
)

// countAcct counts accounting records and signals when n have started and
// n have stopped.
type countAcct struct {
	n             int
	mu            sync.Mutex
	addrs         map[netip.Addr]string
	dup           []string
	starts, stops int
	allUp, allDn  chan struct{}
}

func (c *countAcct) Start(s *auth.AcctSession) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if o, ok := c.addrs[s.FramedIP]; ok {
		c.dup = append(c.dup, fmt.Sprintf("%v held by %s and %s", s.FramedIP, o, s.ID))
	}
	c.addrs[s.FramedIP] = s.ID
	c.starts++
	if c.starts == c.n {
		close(c.allUp)
	}
}
func (c *countAcct) Interim(*auth.AcctSession, auth.AcctCounters) {}
func (c *countAcct) Stop(s *auth.AcctSession, _ auth.AcctCounters, _ auth.TerminateCause) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stops++
	if c.stops == c.n {
		close(c.allDn)
	}
}

// hookLogger discards log lines but counts "subscriber up" and keeps the
// first warnings, for the failure message.
type hookLogger struct {
	mu    sync.Mutex
	ups   int
	want  int
	done  chan struct{}
	warns []string
}

func (h *hookLogger) logger() *zap.Logger {
	core := zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(io.Discard), zap.InfoLevel)
	return zap.New(core, zap.Hooks(func(e zapcore.Entry) error {
		h.mu.Lock()
		defer h.mu.Unlock()
		if e.Message == "subscriber up" {
			h.ups++
			if h.ups == h.want {
				close(h.done)
			}
		}
		if e.Level >= zap.WarnLevel && len(h.warns) < 10 {
			h.warns = append(h.warns, e.Message)
		}
		return nil
	}))
}

// route makes each fake plane deliver a session's frames to the matching
// session of the other plane (by the peer's tunnel and session IDs).
func route(from, to *fake.Plane) {
	from.SetSink(func(s *fake.Session, frame []byte) {
		if t := to.Tunnel(s.Tunnel().Config().PeerID); t != nil {
			if ps := t.Session(s.Config().PeerID); ps != nil {
				ps.Inject(frame)
			}
		}
	})
}

// 1,000 subscribers dial in over 10 tunnels (real endpoints over loopback
// UDP, the LNS role with the PPP driver, our LAC with the peer-role
// driver, fake data planes); each holds a distinct address; then every
// call is cleared by the LAC (CDN) and every address returns to the pool.
func TestThousandSubscribers(t *testing.T) {
	if testing.Short() {
		t.Skip("1,000 sessions")
	}
	const tunnels, perTunnel = 10, 100
	const n = tunnels * perTunnel
	lnsCfg, err := config.Parse([]byte(`
[l2tp]
listen = ["127.0.0.1:1701"]
accept_unknown_peers = true
hello_interval = "0s"
max_starting = 0
[ppp]
auth = ["chap"]
ipv6 = "deny"
lcp_echo_interval = "0s"
ip_pool = "big"
[[pool]]
name = "big"
ranges = ["10.64.0.0/20"]
gateway = "10.64.0.1"
[[subscriber]]
name = "alice"
password = "pw"
`), "lns.toml")
	if err != nil {
		t.Fatal(err)
	}
	rs, _ := pool.ParseRanges("10.64.0.0/20")
	pools, err := pool.NewSet([]pool.Config{{Name: "big", Ranges: rs, Gateway: netip.MustParseAddr("10.64.0.1")}})
	if err != nil {
		t.Fatal(err)
	}
	authn, _ := local.New([]local.Subscriber{{Name: "alice", Password: "pw"}})
	acct := &countAcct{n: n, addrs: map[netip.Addr]string{}, allUp: make(chan struct{}), allDn: make(chan struct{})}
	lnsLog := &hookLogger{want: n, done: make(chan struct{})}
	lacLog := &hookLogger{want: n, done: make(chan struct{})}

	lnsPlane, lacPlane := fake.New(), fake.New()
	route(lnsPlane, lacPlane)
	route(lacPlane, lnsPlane)

	env := NewEnv(Config{Config: func() *config.Config { return lnsCfg }, Auth: authn, Acct: acct, Pools: pools})
	role := lns.New(lnsCfg, lnsLog.logger(), env.LNSFactory())
	lnsEP, err := endpoint.New(endpoint.Config{Listen: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:0")}, Plane: lnsPlane, Handler: role, Logger: lnsLog.logger()})
	if err != nil {
		t.Fatal(err)
	}
	defer lnsEP.Shutdown(context.Background())

	lacCfg, err := config.Parse([]byte(fmt.Sprintf(`
[l2tp]
listen = []
hello_interval = "0s"
[ppp]
ipv6 = "deny"
lcp_echo_interval = "0s"
[[lac]]
name = "lac"
lns = "%s"
sessions = %d
username = "alice"
password = "pw"
auth = ["chap"]
`, lnsEP.ListenAddrs()[0], perTunnel)), "lac.toml")
	if err != nil {
		t.Fatal(err)
	}
	lacEnv := NewEnv(Config{Config: func() *config.Config { return lacCfg }})
	var mu sync.Mutex
	type call struct {
		t  *endpoint.Tunnel
		id uint32
	}
	var calls []call
	inner := lacEnv.LACFactory()
	factory := func(s *endpoint.Session, l *config.LAC) endpoint.Driver {
		mu.Lock()
		calls = append(calls, call{s.T, s.ID})
		mu.Unlock()
		return inner(s, l)
	}
	lacEP, err := endpoint.New(endpoint.Config{Plane: lacPlane, Logger: lacLog.logger()})
	if err != nil {
		t.Fatal(err)
	}
	defer lacEP.Shutdown(context.Background())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for range tunnels {
		lac.Start(ctx, lacEP, &lacCfg.LACs[0], zap.NewNop(), factory)
	}

	wait := func(c chan struct{}, what string, d time.Duration) {
		t.Helper()
		select {
		case <-c:
		case <-time.After(d):
			lnsLog.mu.Lock()
			lacLog.mu.Lock()
			acct.mu.Lock()
			t.Fatalf("timed out waiting for %s: %d started, %d stopped, LNS ups %d, LAC ups %d; LNS warnings %q; LAC warnings %q",
				what, acct.starts, acct.stops, lnsLog.ups, lacLog.ups, lnsLog.warns, lacLog.warns)
		}
	}
	start := time.Now()
	wait(acct.allUp, "1,000 LNS sessions up", 90*time.Second)
	wait(lacLog.done, "1,000 LAC sessions up", 30*time.Second)
	t.Logf("1,000 subscribers up in %v", time.Since(start))
	cancel() // the dialers place no more calls
	acct.mu.Lock()
	if len(acct.dup) > 0 || len(acct.addrs) != n {
		t.Fatalf("%d distinct addresses, duplicates %v", len(acct.addrs), acct.dup)
	}
	acct.mu.Unlock()
	p, _ := pools.Get("big")
	if st := p.Stats(); st.Used != n {
		t.Fatalf("pool: %d in use, want %d", st.Used, n)
	}
	if got := len(lnsEP.Tunnels()); got != tunnels {
		t.Fatalf("%d tunnels, want %d", got, tunnels)
	}

	// Every subscriber hangs up: the LAC clears each call with a CDN.
	mu.Lock()
	for _, c := range calls {
		c.t.Hangup(c.id, l2tp.ResultCode{Result: l2tp.ResultCDNLostCarrier, Message: "subscriber hung up"}, "test hangup")
	}
	mu.Unlock()
	wait(acct.allDn, "1,000 accounting stops", 60*time.Second)
	if st := p.Stats(); st.Used != 0 || st.Free != st.Size {
		t.Fatalf("pool after hangup: %+v", st)
	}
	acct.mu.Lock()
	if acct.stops != n || acct.starts != n {
		t.Fatalf("%d starts, %d stops, want %d each", acct.starts, acct.stops, n)
	}
	acct.mu.Unlock()
	if a := env.Active(); a != 0 {
		t.Fatalf("%d LNS sessions still hold resources", a)
	}
}
