package lns

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/l2tpd/l2tpd/config"
	"github.com/l2tpd/l2tpd/dataplane/fake"
	"github.com/l2tpd/l2tpd/l2tp/endpoint"
	"github.com/l2tpd/l2tpd/lac"
)

// heldPair starts an LNS with max_starting = 1 (role drivers from
// drivers) and our LAC placing calls calls on one tunnel to it, over
// loopback UDP with fake data planes; it returns the LNS role and the
// LAC's endpoint (both shut down when the test ends).
func heldPair(t *testing.T, calls int, drivers DriverFactory) (*LNS, *endpoint.Endpoint) {
	t.Helper()
	lnsCfg, err := config.Parse([]byte(`
[l2tp]
listen = ["127.0.0.1:1701"]
accept_unknown_peers = true
hello_interval = "0s"
max_starting = 1
max_starting_wait = "1m"
`), "lns.toml")
	if err != nil {
		t.Fatal(err)
	}
	role := New(lnsCfg, zap.NewNop(), drivers)
	lnsEP, err := endpoint.New(endpoint.Config{Listen: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:0")},
		Plane: fake.New(), Handler: role, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lnsEP.Shutdown(context.Background()) })
	lacCfg, err := config.Parse([]byte(fmt.Sprintf(`
[l2tp]
listen = []
hello_interval = "0s"
[[lac]]
name = "lac"
lns = "%s"
sessions = %d
username = "alice"
password = "pw"
`, lnsEP.ListenAddrs()[0], calls)), "lac.toml")
	if err != nil {
		t.Fatal(err)
	}
	lacEP, err := endpoint.New(endpoint.Config{Plane: fake.New(), Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lacEP.Shutdown(context.Background()) })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	lac.Start(ctx, lacEP, &lacCfg.LACs[0], zap.NewNop(), nil)
	return role, lacEP
}

// Our LAC places 20 calls at once on one tunnel to an LNS with
// max_starting = 1 (real endpoints over loopback UDP, no PPP): calls are
// held and admitted one by one, and the LNS counts them from what the
// tunnel core reports (held behind the first without asking included).
func TestHeldCallsThroughEndpoint(t *testing.T) {
	const calls = 20
	up := make(chan struct{}, calls)
	role, _ := heldPair(t, calls, func(*endpoint.Session, *config.Peer) endpoint.Driver {
		up <- struct{}{}
		return nil
	})

	timeout := time.After(30 * time.Second)
	for i := range calls {
		select {
		case <-up:
		case <-timeout:
			t.Fatalf("%d of %d sessions up; held calls %+v", i, calls, role.HeldCalls())
		}
	}
	// Every admission was counted before its session came up.
	s := role.HeldCalls()
	if s.Total == 0 || s.Held != 0 || s.Admitted != s.Total || s.Expired != 0 || s.Ended != 0 || s.OldestWait != 0 {
		t.Fatalf("after %d calls through max_starting = 1: %+v, want some held, all admitted", calls, s)
	}
	t.Logf("held calls: %+v", s)
}

// idleDriver is a session's payload that never finishes on its own: the
// test says when it is established.
type idleDriver struct{}

func (idleDriver) Frame(time.Time, []byte) {}
func (idleDriver) Tick(time.Time)          {}
func (idleDriver) Deadline() time.Time     { return time.Time{} }
func (idleDriver) Close(time.Time, string) {}

// max_starting counts a call until its payload (PPP) is established, not
// only until the L2TP session is up: with max_starting = 1 the second of
// two calls stays held while the first one's driver has not said it is
// established, and is admitted once it has. The counts follow each
// session from starting to established to gone.
func TestStartingUntilEstablished(t *testing.T) {
	up := make(chan *endpoint.Session, 2)
	role, lacEP := heldPair(t, 2, func(s *endpoint.Session, _ *config.Peer) endpoint.Driver {
		up <- s
		return idleDriver{}
	})

	next := func(what string) *endpoint.Session {
		t.Helper()
		select {
		case s := <-up:
			return s
		case <-time.After(30 * time.Second):
			t.Fatalf("%s: no session up; held calls %+v", what, role.HeldCalls())
			return nil
		}
	}
	// waitCounts polls the LNS's counts (they change on the tunnel
	// goroutines) until they are (sessions, starting, held).
	waitCounts := func(what string, sessions, starting, held int) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			_, s, st := role.Counts()
			h := role.HeldCalls().Held
			if s == sessions && st == starting && h == held {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: sessions %d starting %d held %d, want %d %d %d", what, s, st, h, sessions, starting, held)
			}
			time.Sleep(5 * time.Millisecond) // polling a state, not standing in for an event
		}
	}
	established := func(s *endpoint.Session) {
		if !s.Post(func(time.Time) { s.Established() }) {
			t.Fatal("tunnel gone")
		}
	}

	first := next("first call")
	// Its L2TP session is up but its payload is not: still starting, and
	// the second call waits for its slot.
	waitCounts("first call up, not established", 0, 1, 1)
	select {
	case <-up:
		t.Fatal("the second call was admitted while the first was still starting")
	default:
	}
	established(first)
	second := next("second call, after the first was established")
	waitCounts("second call up", 1, 1, 0)
	established(second)
	established(second) // once only
	waitCounts("both established", 2, 0, 0)
	lacEP.Shutdown(context.Background())
	waitCounts("both gone", 0, 0, 0)
}
