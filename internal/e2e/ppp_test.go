package e2e

import (
	"fmt"
	"net/netip"
	"regexp"
	"testing"
	"time"
)

// pppLNSConfig is an LNS on the userspace data path with two local
// subscribers (alice, and carol whose account is disabled) and a pool.
func pppLNSConfig() string {
	return fmt.Sprintf(`
dataplane = "userspace"
host_name = "lns-e2e"
[l2tp]
listen = ["%s:1701"]
accept_unknown_peers = false
[[peer]]
name = "lac1"
match_address = ["%s"]
[[pool]]
name = "default"
ranges = ["10.64.0.0/24"]
gateway = "10.64.0.1"
[ppp]
ip_pool = "default"
auth = ["mschapv2", "chap", "pap"]
ipv6 = "deny"
dns1 = "192.0.2.53"
dns2 = "192.0.2.54"
[[subscriber]]
name = "alice"
password = "alice-pw"
[[subscriber]]
name = "carol"
password = "carol-pw"
disabled = true
`, lnsAddr, lacAddr)
}

// pppLACConfig dials the LNS with one call as user/password using method.
func pppLACConfig(user, password, method string) string {
	return fmt.Sprintf(`
dataplane = "userspace"
host_name = "lac-e2e"
[l2tp]
listen = []
[ppp]
ipv6 = "deny"
[[lac]]
name = "core"
lns = "%s:1701"
sessions = 1
redial_min = "1s"
username = %q
password = %q
auth = [%q]
`, lnsAddr, user, password, method)
}

var (
	upAddrRE = regexp.MustCompile(`"address": "([0-9.]+)"`)
	lnsGW    = netip.MustParseAddr("10.64.0.1")
	pool0    = netip.MustParsePrefix("10.64.0.0/24")
)

// Our LAC dials our LNS as a subscriber with each authentication method,
// gets an address from the pool and the DNS servers, and ping passes both
// ways through the tunnel over the userspace data path on both sides.
func TestPPPDialAndPing(t *testing.T) {
	for _, method := range []string{"chap", "pap", "mschapv2"} {
		t.Run(method, func(t *testing.T) {
			lnsNS, lacNS := twoHosts(t)
			lns := StartDaemon(t, lnsNS, "lns", pppLNSConfig())
			lns.Wait(t, 10*time.Second, `listening for L2TP`)
			lac := StartDaemon(t, lacNS, "lac", pppLACConfig("alice", "alice-pw", method))

			m := lns.Wait(t, 30*time.Second, `subscriber up.*"user": "alice".*"method": "`+method+`"`)
			got := upAddrRE.FindStringSubmatch(m.Line)
			if got == nil {
				t.Fatalf("no address in %q", m.Line)
			}
			addr := netip.MustParseAddr(got[1])
			if !pool0.Contains(addr) || addr == lnsGW {
				t.Fatalf("LNS gave %v, want an address of %v other than the gateway", addr, pool0)
			}
			lm := lac.Wait(t, 30*time.Second, `subscriber up.*"user": "alice"`)
			for _, want := range []string{`"address": "` + addr.String() + `"`, `"lns_address": "10.64.0.1"`, `"dns1": "192.0.2.53"`, `"dns2": "192.0.2.54"`} {
				if !regexp.MustCompile(regexp.QuoteMeta(want)).MatchString(lm.Line) {
					t.Errorf("LAC's subscriber-up line lacks %s: %s", want, lm.Line)
				}
			}
			if err := lacNS.Ping(ctxTimeout(t, 15*time.Second), lnsGW); err != nil {
				t.Fatalf("LAC -> LNS gateway through the tunnel: %v", err)
			}
			if err := lnsNS.Ping(ctxTimeout(t, 15*time.Second), addr); err != nil {
				t.Fatalf("LNS -> subscriber %v through the tunnel: %v", addr, err)
			}
		})
	}
}

// A wrong password and a disabled account are refused, with a log line
// saying so on both sides, and the call is cleared with a CDN.
func TestPPPRefused(t *testing.T) {
	cases := []struct {
		name, user, password, method, lnsReason string
	}{
		{"wrong-password", "alice", "not-alices", "chap", "wrong password"},
		{"disabled", "carol", "carol-pw", "mschapv2", "account disabled"},
		{"unknown-user-pap", "mallory", "x", "pap", "unknown user"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			lnsNS, lacNS := twoHosts(t)
			lns := StartDaemon(t, lnsNS, "lns", pppLNSConfig())
			lns.Wait(t, 10*time.Second, `listening for L2TP`)
			lac := StartDaemon(t, lacNS, "lac", pppLACConfig(tc.user, tc.password, tc.method))
			lns.Wait(t, 30*time.Second, `subscriber authentication failed.*"user": "`+tc.user+`".*"reason": "`+tc.lnsReason+`"`)
			lac.Wait(t, 30*time.Second, `the LNS refused our PPP authentication.*"user": "`+tc.user+`"`)
			// The LNS clears the call: CDN result 3 (administrative).
			lac.Wait(t, 30*time.Second, `session closed.*"by_peer": true.*"result": 3|session closed.*PPP: .*authentication`)
			if n := lns.Count(`subscriber up`); n != 0 {
				t.Fatalf("LNS brought %d refused subscribers up", n)
			}
		})
	}
}
