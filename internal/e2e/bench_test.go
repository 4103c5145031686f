package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/l2tpd/l2tpd/bench"
	"github.com/l2tpd/l2tpd/internal/testenv"
)

var (
	benchOnce sync.Once
	benchBin  string
	benchErr  error
)

// benchBinary builds cmd/l2tpbench once per test process.
func benchBinary(t testing.TB) string {
	t.Helper()
	benchOnce.Do(func() {
		dir, err := os.MkdirTemp("", "l2tpbench-e2e-")
		if err != nil {
			benchErr = err
			return
		}
		benchBin = filepath.Join(dir, "l2tpbench")
		cmd := exec.Command("go", "build", "-o", benchBin, "./cmd/l2tpbench")
		cmd.Dir = repoRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			benchErr = fmt.Errorf("building l2tpbench: %v\n%s", err, out)
		}
	})
	if benchErr != nil {
		t.Fatal(benchErr)
	}
	return benchBin
}

// benchLNSConfig is our LNS on the userspace data path with n local
// subscribers user0..user(n-1) (password "pw") and a pool for them.
func benchLNSConfig(n int) string {
	var b strings.Builder
	fmt.Fprintf(&b, `
dataplane = "userspace"
host_name = "lns-bench"
[l2tp]
listen = ["%s:1701"]
accept_unknown_peers = true
[[pool]]
name = "bench"
ranges = ["10.80.0.0/16"]
gateway = "10.80.0.1"
[ppp]
ip_pool = "bench"
auth = ["chap", "mschapv2", "pap"]
ipv6 = "deny"
`, lnsAddr)
	for i := range n {
		fmt.Fprintf(&b, "[[subscriber]]\nname = \"user%d\"\npassword = \"pw\"\n", i)
	}
	return b.String()
}

// The smoke benchmark `make test` runs: l2tpbench (the real binary, in
// the LAC namespace) sets up 300 subscribers over 3 tunnels with CHAP
// against the real l2tpd (userspace data path), pings the LNS through
// every session, holds them a second and hangs up. Every session must
// come up, every ping must come back, the LNS must account for each, and
// the JSON result must carry the latencies and the LNS's CPU and RSS.
func TestBenchSmoke(t *testing.T) {
	const n = 300
	lnsNS, lacNS := twoHosts(t)
	lns := StartDaemon(t, lnsNS, "lns", benchLNSConfig(n))
	lns.Wait(t, 20*time.Second, `listening for L2TP`)
	bin := benchBinary(t)
	out := filepath.Join(t.TempDir(), "result.json")
	csvPath := filepath.Join(t.TempDir(), "series.csv")
	p := testenv.StartProc(t, lacNS, bin, "--target", lnsAddr+":1701", "--tunnels", "3", "--sessions", fmt.Sprint(n),
		"--in-flight", "100", "--auth", "chap", "--password", "pw", "--data", "1", "--hold", "1s",
		"--target-pid", fmt.Sprint(lns.Pid()), "--json", out, "--csv", csvPath, "--interval", "200ms")
	p.Name = "l2tpbench"
	if err := p.Wait(ctxTimeout(t, 120*time.Second)); err != nil {
		t.Fatalf("l2tpbench: %v\n%s", err, p.String())
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var res bench.Result
	if err := json.Unmarshal(raw, &res); err != nil {
		t.Fatalf("JSON result: %v\n%s", err, raw)
	}
	t.Logf("%s", p.String())
	if res.TunnelsUp != 3 || res.Up != n || res.Failed != 0 || res.Dropped != 0 || len(res.Failures) != 0 {
		t.Fatalf("tunnels %d, up %d, failed %d, dropped %d: %v", res.TunnelsUp, res.Up, res.Failed, res.Dropped, res.Failures)
	}
	if res.SessionSetup.N != n || res.SessionSetup.P99 <= 0 || res.TunnelSetup.N != 3 {
		t.Fatalf("latencies: session %+v tunnel %+v", res.SessionSetup, res.TunnelSetup)
	}
	if res.Data.Sent != n || res.Data.Received != n {
		t.Fatalf("data: sent %d, %d replies; want %d each", res.Data.Sent, res.Data.Received, n)
	}
	if res.TargetCPUPerSetup <= 0 || res.TargetRSSHeld <= 0 {
		t.Fatalf("target CPU per setup %v, RSS %d", res.TargetCPUPerSetup, res.TargetRSSHeld)
	}
	lns.WaitN(t, 30*time.Second, n, `subscriber up`)
	series, err := os.ReadFile(csvPath)
	if err != nil || !strings.HasPrefix(string(series), strings.Join(bench.CSVHeader, ",")+"\n") || strings.Count(string(series), "\n") < 2 {
		t.Fatalf("CSV series (%v):\n%s", err, series)
	}
}

// Above saturation setups slow down instead of failing: with max_starting
// = 10, 300 calls placed at once over 3 tunnels are held (ICRQ
// acknowledged, ICRP once a slot frees) and every one comes up; none is
// refused and no tunnel drops.
func TestBenchOverloadHeldNotRefused(t *testing.T) {
	const n = 300
	lnsNS, lacNS := twoHosts(t)
	cfg := strings.Replace(benchLNSConfig(n), "accept_unknown_peers = true\n",
		"accept_unknown_peers = true\nmax_starting = 10\nmax_starting_wait = \"60s\"\n", 1)
	lns := StartDaemon(t, lnsNS, "lns", cfg)
	lns.Wait(t, 20*time.Second, `listening for L2TP`)
	out := filepath.Join(t.TempDir(), "result.json")
	p := testenv.StartProc(t, lacNS, benchBinary(t), "--target", lnsAddr+":1701", "--tunnels", "3", "--sessions", fmt.Sprint(n),
		"--in-flight", fmt.Sprint(n), "--auth", "chap", "--password", "pw", "--hello", "1s", "--json", out)
	p.Name = "l2tpbench"
	if err := p.Wait(ctxTimeout(t, 120*time.Second)); err != nil {
		t.Fatalf("l2tpbench: %v\n%s", err, p.String())
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var res bench.Result
	if err := json.Unmarshal(raw, &res); err != nil {
		t.Fatalf("JSON result: %v\n%s", err, raw)
	}
	if res.TunnelsUp != 3 || res.Up != n || res.Failed != 0 || res.Dropped != 0 || len(res.Failures) != 0 {
		t.Fatalf("tunnels %d, up %d, failed %d, dropped %d: %v\n%s", res.TunnelsUp, res.Up, res.Failed, res.Dropped, res.Failures, p.String())
	}
	if log := lns.String(); strings.Contains(log, "call refused") {
		t.Fatalf("the LNS refused calls instead of holding them:\n%s", log)
	}
}
