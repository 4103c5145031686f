package e2e

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/l2tpd/l2tpd/internal/testenv"
)

const (
	lnsAddr = "10.99.0.1"
	lacAddr = "10.99.0.2"
)

// twoHosts makes an LNS and a LAC namespace joined by a veth pair.
func twoHosts(t *testing.T) (lns, lac *testenv.Netns) {
	t.Helper()
	testenv.Require(t, "ip", "nft")
	lns = testenv.NewNetns(t, "lns")
	lac = testenv.NewNetns(t, "lac")
	testenv.ConnectVeth(t, lns, lac, netip.MustParsePrefix(lnsAddr+"/24"), netip.MustParsePrefix(lacAddr+"/24"))
	return lns, lac
}

func lnsConfig(extraPeer string) string {
	return fmt.Sprintf(`
dataplane = "userspace"
host_name = "lns-e2e"
[l2tp]
listen = ["%s:1701"]
accept_unknown_peers = false
rtimeout_cap = "8s"
retransmit = 8
[[peer]]
name = "lac1"
match_address = ["%s"]
%s
[[pool]]
name = "default"
ranges = ["10.64.0.0/24"]
gateway = "10.64.0.1"
[ppp]
ip_pool = "default"
[[subscriber]]
name = "alice"
password = "pw"
`, lnsAddr, lacAddr, extraPeer)
}

func lacConfig(extra string, sessions int) string {
	return fmt.Sprintf(`
dataplane = "userspace"
host_name = "lac-e2e"
[l2tp]
listen = []
rtimeout_cap = "8s"
retransmit = 8
[[lac]]
name = "core"
lns = "%s:1701"
sessions = %d
redial_min = "1s"
username = "alice"
password = "pw"
%s
`, lnsAddr, sessions, extra)
}

// Our LAC and our LNS establish a tunnel and sessions with 20% random loss
// on the path both ways, tunnel authentication and hidden AVPs on.
func TestLACToLNSLossyAuthHidden(t *testing.T) {
	lnsNS, lacNS := twoHosts(t)
	secret := `secret = "tunnel-s3cret"
challenge = "require"
hide_avps = true`
	// Loss: 20% of what arrives at the LNS (port 1701) and at the LAC
	// (whatever its port: the rule matches the LNS's source port).
	lnsLoss := lnsNS.DropInbound(t, "udp", 1701, 20)
	lacDropped, lacLossRemove := dropFromPort(t, lacNS, 1701, 20)

	lns := StartDaemon(t, lnsNS, "lns", lnsConfig(secret))
	lns.Wait(t, 10*time.Second, `listening for L2TP`)
	lac := StartDaemon(t, lacNS, "lac", lacConfig(secret, 5))

	lns.Wait(t, 60*time.Second, `tunnel established.*"peer_host": "lac-e2e"`)
	lac.Wait(t, 60*time.Second, `tunnel established.*"peer_host": "lns-e2e"`)
	lns.WaitN(t, 90*time.Second, 5, `session established`)
	lac.WaitN(t, 90*time.Second, 5, `session established`)

	dl, _ := lnsLoss.Dropped()
	dc := lacDropped()
	if dl+dc == 0 {
		t.Fatal("the loss rules dropped nothing: the test did not exercise loss")
	}
	t.Logf("dropped %d datagrams to the LNS and %d to the LAC", dl, dc)
	if n := lns.Count(`refused tunnel|not authorized`); n != 0 {
		t.Fatalf("LNS refused something (%d lines)", n)
	}

	// The loss has done its work (setup under loss) and goes before the
	// LNS stops. With it, after a retransmission timeout (slow start: one
	// message in flight, the timeout doubling up to rtimeout_cap) the CDNs
	// and the StopCCN queued behind them need not get through within the
	// daemon's 5 s StopCCN wait; it failed that way once in CI (the CDNs
	// reached the LAC 7 s after they were sent, the StopCCN never did).
	if err := lnsLoss.Remove(); err != nil {
		t.Fatal(err)
	}
	if err := lacLossRemove(); err != nil {
		t.Fatal(err)
	}

	// SIGTERM on the LNS: StopCCN reaches the LAC, which reports it.
	from := lac.Len()
	if err := lns.Stop(10 * time.Second); err != nil {
		t.Logf("stopping lns: %v", err)
	}
	ctxLine := `tunnel closed.*"by_peer": true`
	if _, err := lac.WaitForFrom(ctxTimeout(t, 30*time.Second), from, ctxLine); err != nil {
		t.Fatalf("LAC did not see the LNS's StopCCN: %v", err)
	}
}

// A LAC with the wrong secret is refused (StopCCN not authorized) and never
// gets a session; a LAC that no [[peer]] matches is refused too.
func TestLACWrongSecretRefused(t *testing.T) {
	lnsNS, lacNS := twoHosts(t)
	lns := StartDaemon(t, lnsNS, "lns", lnsConfig(`secret = "right"
challenge = "require"`))
	lns.Wait(t, 10*time.Second, `listening for L2TP`)
	lac := StartDaemon(t, lacNS, "lac", lacConfig(`secret = "wrong"
challenge = "none"`, 1))
	lns.Wait(t, 30*time.Second, `tunnel closed.*Challenge Response is wrong`)
	lac.Wait(t, 30*time.Second, `tunnel closed.*"by_peer": true.*"result": 4`)
	if n := lns.Count(`session established`); n != 0 {
		t.Fatalf("LNS established %d sessions for a LAC with the wrong secret", n)
	}
}
