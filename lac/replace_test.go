package lac

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/l2tpd/l2tpd/config"
	"github.com/l2tpd/l2tpd/dataplane/fake"
	"github.com/l2tpd/l2tpd/internal/tunnelcfg"
	"github.com/l2tpd/l2tpd/l2tp"
	"github.com/l2tpd/l2tpd/l2tp/endpoint"
	"github.com/l2tpd/l2tpd/l2tp/tunnel"
)

// testLNS accepts every tunnel; it refuses every call when refuse is set,
// else hands each established session to ups.
type testLNS struct {
	settings endpoint.TunnelSettings
	refuse   atomic.Bool
	ups      chan *endpoint.Session
}

func (l *testLNS) PeerSecret(netip.AddrPort, string) []byte { return nil }
func (l *testLNS) AcceptTunnel(netip.AddrPort, string) (endpoint.TunnelSettings, *l2tp.ResultCode) {
	return l.settings, nil
}
func (l *testLNS) AdmitCall(*endpoint.Tunnel, tunnel.Direction, *tunnel.CallInfo) *l2tp.ResultCode {
	if l.refuse.Load() {
		return &l2tp.ResultCode{Result: l2tp.ResultCDNTempResources, Message: "test: refused"}
	}
	return nil
}
func (l *testLNS) TunnelUp(*endpoint.Tunnel)                         {}
func (l *testLNS) TunnelDown(*endpoint.Tunnel, tunnel.TunnelDown)    {}
func (l *testLNS) SessionUp(s *endpoint.Session) endpoint.Driver     { l.ups <- s; return nil }
func (l *testLNS) SessionDown(*endpoint.Session, tunnel.SessionDown) {}

// replaceFixture runs an LNS endpoint and a Dialer keeping one call up
// against it. step is how far the Dialer's clock moves at each reading;
// the Dialer's pauses before replacing a call are sent to pauses and not
// waited for.
func replaceFixture(t *testing.T, refuse bool, step time.Duration) (*testLNS, chan time.Duration) {
	t.Helper()
	cfg, err := config.Parse([]byte("[l2tp]\nlisten = []\naccept_unknown_peers = true\nhello_interval = \"0s\"\n"), "lns.toml")
	if err != nil {
		t.Fatal(err)
	}
	lns := &testLNS{settings: tunnelcfg.Settings(&cfg.L2TP, "test"), ups: make(chan *endpoint.Session, 16)}
	lns.refuse.Store(refuse)
	lnsEP, err := endpoint.New(endpoint.Config{Listen: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:0")}, Plane: fake.New(), Handler: lns, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lnsEP.Shutdown(context.Background()) })
	lacCfg, err := config.Parse([]byte(fmt.Sprintf("[l2tp]\nlisten = []\nhello_interval = \"0s\"\n[[lac]]\nname = \"lac\"\nlns = %q\nsessions = 1\nusername = \"a\"\npassword = \"b\"\n",
		lnsEP.ListenAddrs()[0].String())), "lac.toml")
	if err != nil {
		t.Fatal(err)
	}
	lacEP, err := endpoint.New(endpoint.Config{Plane: fake.New(), Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lacEP.Shutdown(context.Background()) })
	d := newDialer(lacEP, &lacCfg.LACs[0], zap.NewNop(), nil)
	var mu sync.Mutex
	clock := time.Unix(1e9, 0)
	d.now = func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		clock = clock.Add(step)
		return clock
	}
	pauses := make(chan time.Duration, 64)
	d.after = func(p time.Duration) <-chan time.Time {
		pauses <- p
		c := make(chan time.Time, 1)
		c <- time.Time{}
		return c
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go d.run(ctx)
	return lns, pauses
}

// hangUp ends an established session from the LNS side (CDN) and waits
// for the LAC's replacement call.
func hangUp(t *testing.T, lns *testLNS, s *endpoint.Session) *endpoint.Session {
	t.Helper()
	s.Post(func(now time.Time) {
		s.HangupFromDriver(now, l2tp.ResultCode{Result: l2tp.ResultCDNAdmin, Message: "test"}, "test hang-up")
	})
	select {
	case n := <-lns.ups:
		return n
	case <-time.After(10 * time.Second):
		t.Fatal("the LAC did not replace the call")
		return nil
	}
}

// Calls that stayed up for StableUptime are replaced at once, however many
// end over the tunnel's life.
func TestStableCallsReplacedAtOnce(t *testing.T) {
	lns, pauses := replaceFixture(t, false, StableUptime)
	s := <-lns.ups
	for range 8 {
		s = hangUp(t, lns, s)
	}
	select {
	case p := <-pauses:
		t.Fatalf("the LAC paused %v before replacing a call that had been up for StableUptime", p)
	default:
	}
}

// Calls that end at once (up, then hung up before StableUptime) slow the
// replacements down from the fourth in a row: 4 s, 5 s, ...
func TestShortCallsSlowReplacement(t *testing.T) {
	lns, pauses := replaceFixture(t, false, time.Second)
	s := <-lns.ups
	for range 5 {
		s = hangUp(t, lns, s)
	}
	for _, want := range []time.Duration{4 * time.Second, 5 * time.Second} {
		select {
		case p := <-pauses:
			if p != want {
				t.Errorf("pause %v, want %v", p, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no pause of %v after calls that did not stay up", want)
		}
	}
}

// Refused calls slow the replacements down too.
func TestRefusedCallsSlowReplacement(t *testing.T) {
	_, pauses := replaceFixture(t, true, StableUptime)
	select {
	case p := <-pauses:
		if p != 4*time.Second {
			t.Errorf("first pause %v, want 4s", p)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no pause while every call is refused")
	}
}
