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

// Our LAC places 20 calls at once on one tunnel to an LNS with
// max_starting = 1 (real endpoints over loopback UDP, no PPP): calls are
// held and admitted one by one, and the LNS counts them from what the
// tunnel core reports (held behind the first without asking included).
func TestHeldCallsThroughEndpoint(t *testing.T) {
	const calls = 20
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
	up := make(chan struct{}, calls)
	role := New(lnsCfg, zap.NewNop(), func(*endpoint.Session, *config.Peer) endpoint.Driver {
		up <- struct{}{}
		return nil
	})
	lnsEP, err := endpoint.New(endpoint.Config{Listen: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:0")},
		Plane: fake.New(), Handler: role, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer lnsEP.Shutdown(context.Background())
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
	defer lacEP.Shutdown(context.Background())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	lac.Start(ctx, lacEP, &lacCfg.LACs[0], zap.NewNop(), nil)

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
