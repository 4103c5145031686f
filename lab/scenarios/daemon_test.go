package scenarios

import (
	"regexp"
	"testing"

	"time"

	"github.com/l2tpd/l2tpd/lab"
)

// TestDaemonKernelObjects: our LAC dials our LNS, both with the kernel data
// path, in two namespaces. Checked with iproute2 in each namespace: the
// kernel tunnels and sessions appear; they disappear when either side stops
// (SIGTERM: StopCCN) and when the LNS is killed (SIGKILL: the kernel
// reclaims them with the sockets); restarts leave no stray objects. The
// control plane alone (no PPP over the sessions) is enough for this.
func TestDaemonKernelObjects(t *testing.T) {
	s := newScenario(t)
	const tunnels, sessions = 2, 3
	lns := s.daemon("lns", lnsConfig("10.1.0.1", "", ""))
	lac := s.daemon("lac", lacConfig("10.1.0.1", tunnels, sessions, ""))
	all := tunnels * sessions
	script := lab.NetnsPair("lns", "10.1.0.1", "lac", "10.1.0.2") +
		s.capture("lns", "veth0") + `
# 1. LAC dials LNS: tunnels and sessions in both kernels.
` + lns.Start("lns") + lns.WaitLog(30, 1, "listening for L2TP") +
		lac.Start("lac") +
		lns.WaitLog(90, all, "session established") + lac.WaitLog(90, all, "session established") + `
expect_kernel lns 2 6
expect_kernel lac 2 6
ip -n lns l2tp show session | head -12
# 2. The LAC stops (StopCCN): both kernels empty.
` + lac.Stop() + `
expect_kernel lac 0 0
expect_kernel lns 0 0
# 3. The LAC starts again; then the LNS stops: both kernels empty (the LAC
# keeps redialling a dead LNS, which creates nothing in its kernel).
` + lac.Start("lac") + lns.WaitLog(90, 2*all, "session established") + `
expect_kernel lns 2 6
expect_kernel lac 2 6
` + lns.Stop() + `
expect_kernel lns 0 0
expect_kernel lac 0 0
# 4. The LNS restarts; the LAC redials by itself.
` + lns.Start("lns") + lns.WaitLog(120, 3*all, "session established") + `
expect_kernel lns 2 6
expect_kernel lac 2 6 60
# 5. The LNS crashes (SIGKILL): its kernel objects die with its sockets.
` + lns.Kill() + `
expect_kernel lns 0 0 10
# The LAC notices (hello, retransmits) and tears its tunnels down, then
# redials the restarted LNS: again exactly 2 tunnels and 6 sessions a side.
` + lns.Start("lns") + lns.WaitLog(180, 4*all, "session established") + `
expect_kernel lns 2 6 60
expect_kernel lac 2 6 90
` + lac.Stop() + lns.Stop() + `
expect_kernel lns 0 0
expect_kernel lac 0 0
expect_ppp lns 0
echo "panics: ` + lns.CountLog("panic|DATA RACE") + ` ` + lac.CountLog("panic|DATA RACE") + `"
`
	res := s.run(8*time.Minute, script)
	if !regexp.MustCompile(`(?m)^panics: 0 0$`).MatchString(res.Output) {
		t.Errorf("a daemon panicked or raced")
	}
	if n := len(regexp.MustCompile(`(?m)^CHECK lns kernel tunnels=2 sessions=6`).FindAllString(res.Output, -1)); n != 4 {
		t.Errorf("LNS kernel reached 2 tunnels / 6 sessions %d times, want 4", n)
	}
}
