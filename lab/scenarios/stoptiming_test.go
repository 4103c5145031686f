package scenarios

import (
	"os"
	"regexp"
	"testing"
	"time"

	"github.com/l2tpd/l2tpd/lab"
)

// envStopTiming runs TestStopTiming, a measurement rather than a check
// (docs/benchmarks.md, "Stopping").
const envStopTiming = "L2TPD_LAB_STOP_TIMING"

// TestStopTiming measures how long our LAC and then our LNS take to stop
// (SIGTERM to exit) holding 200 sessions over 4 tunnels with the kernel
// data path, and checks that both removed their interfaces in one request.
// Run it alternately against an older binary (L2TPD_LAB_L2TPD) to compare:
//
//	L2TPD_LAB_STOP_TIMING=1 go test ./lab/scenarios -run TestStopTiming -v
func TestStopTiming(t *testing.T) {
	if os.Getenv(envStopTiming) == "" {
		t.Skip("a measurement: set " + envStopTiming + "=1")
	}
	s := newScenario(t)
	const tunnels, sessions = 4, 50
	lns := s.daemon("lns", lnsConfig("10.1.0.1", "", ""))
	lac := s.daemon("lac", lacConfig("10.1.0.1", tunnels, sessions, "auth = [\"chap\"]\n"))
	all := tunnels * sessions
	script := lab.NetnsPair("lns", "10.1.0.1", "lac", "10.1.0.2") +
		lns.Start("lns") + lns.WaitLog(30, 1, "listening for L2TP") +
		lac.Start("lac") +
		lns.WaitLog(120, all, "subscriber up") + lac.WaitLog(120, all, "subscriber up") + `
expect_ppp lns 200 60
expect_ppp lac 200 60
_s=$(date +%s%N)
` + lac.Stop() + `
echo "STOPMS lac $(( ($(date +%s%N)-_s)/1000000 ))"
expect_ppp lns 0 60
` + lac.Start("lac") + lns.WaitLog(180, 2*all, "subscriber up") + lac.WaitLog(180, 2*all, "subscriber up") + `
expect_ppp lns 200 60
expect_ppp lac 200 60
sleep 2
_s=$(date +%s%N)
` + lns.Stop() + `
echo "STOPMS lns $(( ($(date +%s%N)-_s)/1000000 ))"
echo "grouped removals: ` + lns.CountLog("subscriber interfaces removed in one request") + ` ` + lac.CountLog("subscriber interfaces removed in one request") + `"
`
	res := s.run(8*time.Minute, script)
	for _, m := range regexp.MustCompile(`(?m)^STOPMS.*$`).FindAllString(res.Output, -1) {
		t.Logf("%s %s", os.Getenv(envL2TPD), m)
	}
	// The LAC's stop and the LNS's: one grouped removal each (a binary
	// from before the grouping has none).
	if os.Getenv(envL2TPD) == "" && !regexp.MustCompile(`(?m)^grouped removals: 1 1$`).MatchString(res.Output) {
		t.Errorf("want one grouped removal of interfaces per daemon")
	}
}
