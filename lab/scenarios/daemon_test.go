package scenarios

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"time"

	"github.com/l2tpd/l2tpd/lab"
)

// TestDaemonKernelObjects (issue 4, scenario 4): our LAC dials our LNS,
// both with the kernel data path, in two namespaces: 200 sessions over 4
// tunnels (tunnel authentication, hidden AVPs), each with PPP (CHAP) and a
// pool address, every one pingable from
// both sides. Checked with iproute2 in each namespace: the kernel tunnels,
// sessions and ppp links appear; they disappear when either side stops
// (SIGTERM: StopCCN) and when the LNS is killed (SIGKILL: the kernel
// reclaims them with the sockets); restarts leave no stray objects.
func TestDaemonKernelObjects(t *testing.T) {
	s := newScenario(t)
	const tunnels, sessions = 4, 50
	// Tunnel authentication and hidden AVPs on both sides.
	const tunnelAuth = `secret = "tunnel-s3cret"
challenge = "require"
hide_avps = true`
	lns := s.daemon("lns", lnsConfig("10.1.0.1", tunnelAuth, ""))
	lac := s.daemon("lac", lacConfig("10.1.0.1", tunnels, sessions, "auth = [\"chap\"]\n"+tunnelAuth))
	all := tunnels * sessions
	script := lab.NetnsPair("lns", "10.1.0.1", "lac", "10.1.0.2") +
		s.capture("lns", "veth0") + `
# 1. LAC dials LNS: tunnels and sessions in both kernels.
` + lns.Start("lns") + lns.WaitLog(30, 1, "listening for L2TP") +
		lac.Start("lac") +
		lns.WaitLog(90, all, "session established") + lac.WaitLog(90, all, "session established") + `
expect_kernel lns 4 200
expect_kernel lac 4 200
` + lns.WaitLog(120, all, "subscriber up") + lac.WaitLog(120, all, "subscriber up") + `
expect_ppp lns 200
expect_ppp lac 200
ping_subscribers lns
ping_gateways lac
# 2. The LAC stops (StopCCN): both kernels empty.
` + lac.Stop() + `
expect_kernel lac 0 0
expect_kernel lns 0 0
# 3. The LAC starts again; then the LNS stops: both kernels empty (the LAC
# keeps redialling a dead LNS, which creates nothing in its kernel).
` + lac.Start("lac") + lns.WaitLog(90, 2*all, "session established") + `
expect_kernel lns 4 200
expect_kernel lac 4 200
` + lns.Stop() + `
expect_kernel lns 0 0
expect_kernel lac 0 0
# 4. The LNS restarts; the LAC redials by itself.
` + lns.Start("lns") + lns.WaitLog(120, 3*all, "session established") + `
expect_kernel lns 4 200
expect_kernel lac 4 200 60
# 5. The LNS crashes (SIGKILL): its kernel objects die with its sockets.
` + lns.Kill() + `
expect_kernel lns 0 0 10
# The LAC notices (hello, retransmits) and tears its tunnels down, then
# redials the restarted LNS: again exactly 2 tunnels and 6 sessions a side.
` + lns.Start("lns") + lns.WaitLog(180, 4*all, "session established") + `
expect_kernel lns 4 200 60
expect_kernel lac 4 200 90
` + lac.Stop() + lns.Stop() + `
expect_kernel lns 0 0
expect_kernel lac 0 0
expect_ppp lns 0
expect_ppp lac 0
echo "panics: ` + lns.CountLog("panic|DATA RACE") + ` ` + lac.CountLog("panic|DATA RACE") + `"
`
	res := s.run(8*time.Minute, script)
	if !regexp.MustCompile(`(?m)^panics: 0 0$`).MatchString(res.Output) {
		t.Errorf("a daemon panicked or raced")
	}
	if n := len(regexp.MustCompile(`(?m)^CHECK lns kernel tunnels=4 sessions=200`).FindAllString(res.Output, -1)); n != 4 {
		t.Errorf("LNS kernel reached 4 tunnels / 200 sessions %d times, want 4", n)
	}
	// Once stopping, the LNS refuses the calls the LAC re-places (it
	// would set them up in the kernel only to tear them down again).
	if b, err := os.ReadFile(lns.Log); err != nil {
		t.Error(err)
	} else {
		if n := establishedWhileStopping(string(b)); n != 0 {
			t.Errorf("the LNS established %d sessions while stopping", n)
		}
		// The stops with sessions removed their interfaces in one
		// request (kernel group delete), none one by one.
		if !regexp.MustCompile(`subscriber interfaces removed in one request\s+\{"interfaces": [1-9]`).Match(b) ||
			strings.Contains(string(b), "removed one by one") {
			t.Errorf("the LNS did not remove its subscriber interfaces in one request at a stop")
		}
	}
	for _, want := range []string{"PING lns ok=200 fail=0", "PING lac ok=200 fail=0"} {
		if !regexp.MustCompile(`(?m)^` + want + `$`).MatchString(res.Output) {
			t.Errorf("output lacks %q", want)
		}
	}
}

// establishedWhileStopping counts the "session established" lines of a
// daemon's log (every run) that follow its "stopping:" line in that run.
func establishedWhileStopping(log string) int {
	n, stopping := 0, false
	for _, line := range strings.Split(log, "\n") {
		switch {
		case strings.HasPrefix(line, "==== start"):
			stopping = false
		case strings.Contains(line, "stopping: ending every subscriber session"):
			stopping = true
		case stopping && strings.Contains(line, "session established"):
			n++
		}
	}
	return n
}

func TestEstablishedWhileStopping(t *testing.T) {
	log := "==== start at 1s\nx session established\nx stopping: ending every subscriber session, then\nx session established\n" +
		"==== start at 9s\nx session established\nx stopping: ending every subscriber session\n"
	if n := establishedWhileStopping(log); n != 1 {
		t.Errorf("got %d, want 1", n)
	}
}
