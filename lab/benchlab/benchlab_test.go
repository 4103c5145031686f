package benchlab

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/l2tpd/l2tpd/bench"
	"github.com/l2tpd/l2tpd/config"
	"github.com/l2tpd/l2tpd/lab"
)

func TestTargetString(t *testing.T) {
	for tg, want := range map[Target]string{TargetOurs: "ours-kernel", TargetXL2TPD: "xl2tpd-pppd", 7: "target(7)"} {
		if got := tg.String(); got != want {
			t.Errorf("%d: %q, want %q", int(tg), got, want)
		}
	}
	if got := (Load{Target: TargetXL2TPD, Sessions: 200}).Name(); got != "xl2tpd-pppd-200" {
		t.Errorf("Name %q", got)
	}
}

func testConfig(dir string, loads ...Load) Config {
	return Config{Dir: dir, L2TPD: "/bin/l2tpd", L2TPBench: "/bin/l2tpbench", GroupMeter: "/bin/groupmeter", Loads: loads}
}

func TestScript(t *testing.T) {
	dir := t.TempDir()
	c := testConfig(dir,
		Load{Target: TargetOurs, Tunnels: 2, Sessions: 200, InFlight: 20},
		Load{Target: TargetXL2TPD, Tunnels: 2, Sessions: 50, Timeout: time.Minute})
	s, err := Script(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, re := range []string{
		// Same load for both, ours with --target-pid, xl2tpd without.
		`(?m)^ip netns exec lac /bin/l2tpbench --target 10\.201\.0\.1:1701 --password pw --auth chap --tunnels 2 --sessions 200 --in-flight 20 --hold 2s --setup-timeout 1m0s --timeout 3m0s --json \S+/ours-kernel-200\.json .* --target-pid \$PID > `,
		`(?m)^ip netns exec lac /bin/l2tpbench --target 10\.201\.0\.1:1701 --password pw --auth chap --tunnels 2 --sessions 50 --in-flight 20 --hold 2s --setup-timeout 1m0s --timeout 1m0s --json \S+/xl2tpd-pppd-50\.json \S+ \S+ --quiet > `,
		`(?m)^'/bin/groupmeter' -names l2tpd -interval 250ms -out '\S+/ours-kernel-200\.group\.csv' &$`,
		`(?m)^'/bin/groupmeter' -names xl2tpd,pppd -interval 250ms -out '\S+/xl2tpd-pppd-50\.group\.csv' &$`,
		// The load waits for the meter's first sample.
		`(?m)^'/bin/groupmeter' -names xl2tpd,pppd .*\nGM=\$!\nwait_for 60 test -s '\S+/xl2tpd-pppd-50\.group\.csv' \|\| fail .*\n(.*\n)*ip netns exec lac /bin/l2tpbench .*--sessions 50 `,
		`xl2tpd -D -c `,
		`--log-level '\\''warn'\\''`, // quoted twice: inside sh -c
	} {
		if !regexp.MustCompile(re).MatchString(s) {
			t.Errorf("script does not match %s", re)
		}
	}
	if strings.Contains(s, "--capture") || strings.Contains(s, "dumpcap") {
		t.Errorf("capture without Capture")
	}
	// Ours ran before xl2tpd, in the order of Loads.
	if strings.Index(s, "start ours-kernel-200") > strings.Index(s, "start xl2tpd-pppd-50") {
		t.Errorf("loads out of order")
	}
	// The files the script uses were written: our config has 200 users,
	// chap-secrets 50, installed once.
	conf, err := os.ReadFile(filepath.Join(dir, "l2tpd", "l2tpd.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(conf), "[[subscriber]]"); n != 200 {
		t.Errorf("%d subscribers, want 200", n)
	}
	for _, want := range []string{`dataplane = "kernel"`, "max_sessions = 0", `auth = ["chap"]`, `log_level = "warn"`} {
		if !strings.Contains(string(conf), want) {
			t.Errorf("l2tpd config lacks %s", want)
		}
	}
	secrets, err := os.ReadFile(filepath.Join(dir, "xl2tpd", "chap-secrets"))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(secrets), "\n"); n != 50 || !strings.HasPrefix(string(secrets), "user0 * pw *\n") {
		t.Errorf("chap-secrets: %d lines, starts %q", n, string(secrets)[:min(20, len(secrets))])
	}
	if n := strings.Count(s, ">> /etc/ppp/chap-secrets"); n != 1 {
		t.Errorf("chap-secrets installed %d times", n)
	}
	opts, err := os.ReadFile(filepath.Join(dir, "xl2tpd", "options.pppd"))
	if err != nil || !strings.Contains(string(opts), "ms-dns 10.0.0.53") {
		t.Errorf("pppd options lack ms-dns: %s", opts)
	}

	c.Capture = true
	if s, err = Script(c); err != nil || !strings.Contains(s, "dumpcap") {
		t.Errorf("Capture: no dumpcap (%v)", err)
	}
}

func TestScriptErrors(t *testing.T) {
	dir := t.TempDir()
	for name, c := range map[string]Config{
		"no loads":     testConfig(dir),
		"no binaries":  {Dir: dir, Loads: []Load{{Target: TargetOurs, Tunnels: 1, Sessions: 1}}},
		"bad target":   testConfig(dir, Load{Target: 9, Tunnels: 1, Sessions: 1}),
		"zero tunnels": testConfig(dir, Load{Target: TargetOurs, Sessions: 1}),
	} {
		if _, err := Script(c); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestRatiosAndMarkdown(t *testing.T) {
	ours := &bench.Result{Options: bench.OptionsSummary{Tunnels: 2, Sessions: 200}, Up: 200, SetupRate: 50, SessionSetup: bench.Latency{N: 200, P99: 800 * time.Millisecond},
		TargetCPUPerSetup: 16 * time.Millisecond, TargetRSSPeak: 12 << 20}
	xl := &bench.Result{Options: bench.OptionsSummary{Tunnels: 2, Sessions: 200}, Up: 200, SetupRate: 2, SessionSetup: bench.Latency{N: 200, P99: 80 * time.Second},
		TargetCPUPerSetup: 400 * time.Millisecond, TargetRSSPeak: 720 << 20}
	o := &Outcome{Runs: []Run{
		{Load: Load{Target: TargetOurs, Tunnels: 2, Sessions: 200}, Name: "ours-kernel-200", Result: ours, Cmd: "cmd-a"},
		{Load: Load{Target: TargetOurs, Tunnels: 10, Sessions: 1000}, Name: "ours-kernel-1000", Cmd: "cmd-b", ExitCode: 1},
		{Load: Load{Target: TargetXL2TPD, Tunnels: 2, Sessions: 200}, Name: "xl2tpd-pppd-200", Result: xl, Cmd: "cmd-c"},
	}}
	rs := Ratios(o.Runs)
	if len(rs) != 1 {
		t.Fatalf("%d ratios, want 1: %+v", len(rs), rs)
	}
	want := Ratio{Ours: "ours-kernel-200", XL2TPD: "xl2tpd-pppd-200", Rate: 25, P99: 100, CPUPerSetup: 25, RSS: 60}
	if rs[0] != want {
		t.Errorf("ratio %+v, want %+v", rs[0], want)
	}
	md := o.Markdown()
	for _, w := range []string{"| ours-kernel-200 | 2 | 200 | 200 |", "| xl2tpd-pppd-200 | 2 | 200 | 200 |",
		"| ours-kernel-200 vs xl2tpd-pppd-200 | 25.0x | 100.0x | 25.0x | 60.0x |", "ours-kernel-1000 (exit 1): `cmd-b`"} {
		if !strings.Contains(md, w) {
			t.Errorf("markdown lacks %q:\n%s", w, md)
		}
	}
	if strings.Contains(md, "| ours-kernel-1000 |") {
		t.Errorf("a run without a result is in the table")
	}
}

func TestCollectAppliesGroup(t *testing.T) {
	dir := t.TempDir()
	l := Load{Target: TargetXL2TPD, Tunnels: 1, Sessions: 2}
	start := time.Unix(1700000000, 0)
	res := bench.Result{Start: start, Up: 2, Setup: bench.Phase{Wall: time.Second}}
	b, _ := json.Marshal(&res)
	base := filepath.Join(dir, l.Name())
	os.WriteFile(base+".json", b, 0o644)
	os.WriteFile(base+".cmd", []byte("the command\n"), 0o644)
	series := AppendSampleLine(nil, GroupSample{T: start, CPU: time.Second, RSS: 1 << 20, Procs: 1})
	series = AppendSampleLine(series, GroupSample{T: start.Add(time.Second), CPU: 3 * time.Second, RSS: 8 << 20, Procs: 3})
	os.WriteFile(base+".group.csv", series, 0o644)
	r := collect(dir, l, "BENCHLAB end xl2tpd-pppd-2 rc=3 at 9s\n")
	if r.Err != nil || r.Result == nil {
		t.Fatalf("collect: %v", r.Err)
	}
	if r.ExitCode != 3 || r.Cmd != "the command" {
		t.Errorf("exit %d cmd %q", r.ExitCode, r.Cmd)
	}
	if r.Result.TargetCPUPerSetup != time.Second || r.Result.TargetRSSPeak != 8<<20 {
		t.Errorf("group not applied: %+v", r.Result)
	}
	var again bench.Result
	if b, err := os.ReadFile(base + ".json"); err != nil || json.Unmarshal(b, &again) != nil || again.TargetCPUPerSetup != time.Second {
		t.Errorf("rewritten JSON: %+v, %v", again, err)
	}
	if _, err := os.Stat(base + ".raw.json"); err != nil {
		t.Errorf("raw JSON not kept: %v", err)
	}
	if r := collect(dir, Load{Target: TargetOurs, Tunnels: 1, Sessions: 9}, ""); r.Err == nil || r.ExitCode != -1 {
		t.Errorf("missing result: %+v", r)
	}
}

// TestLabBenchSmoke runs the lab bench small (20 sessions over 2 tunnels
// against our kernel-data-path LNS, then against xl2tpd+pppd) in one VM
// boot: every session comes up on both, the results parse, xl2tpd's group
// figures are filled. It keeps scripts/bench-lab.sh working; the figures
// are not asserted.
func TestLabBenchSmoke(t *testing.T) {
	if testing.Short() && os.Getenv(lab.EnvRequire) != "1" {
		t.Skip("lab VM tests skipped with -short")
	}
	lab.Require(t)
	dir := t.TempDir()
	c := Config{
		Dir:        dir,
		L2TPD:      lab.GoBuild(t, dir, "./cmd/l2tpd"),
		L2TPBench:  lab.GoBuild(t, dir, "./cmd/l2tpbench"),
		GroupMeter: lab.GoBuild(t, dir, "./lab/benchlab/cmd/groupmeter"),
		Loads: []Load{
			{Target: TargetOurs, Tunnels: 2, Sessions: 20, InFlight: 20, Hold: time.Second, Timeout: time.Minute},
			{Target: TargetXL2TPD, Tunnels: 2, Sessions: 20, InFlight: 20, Hold: time.Second, Timeout: time.Minute},
		},
		VMTimeout: 3 * time.Minute,
		Log:       func(l string) { t.Log(l) },
	}
	ctx := context.Background()
	if dl, ok := t.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, dl.Add(-10*time.Second))
		defer cancel()
	}
	out, err := Execute(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Runs) != 2 {
		t.Fatalf("%d runs", len(out.Runs))
	}
	for _, r := range out.Runs {
		if r.Err != nil {
			t.Errorf("%s: %v", r.Name, r.Err)
			continue
		}
		res := r.Result
		if r.ExitCode != 0 || res.Up != 20 || res.Failed != 0 || res.Dropped != 0 || res.TunnelsUp != 2 {
			t.Errorf("%s: exit %d, tunnels up %d, sessions up %d failed %d dropped %d", r.Name, r.ExitCode, res.TunnelsUp, res.Up, res.Failed, res.Dropped)
		}
		if res.SessionSetup.N != 20 || res.SetupRate <= 0 {
			t.Errorf("%s: setup latency n=%d rate %v", r.Name, res.SessionSetup.N, res.SetupRate)
		}
		if res.TargetCPUPerSetup <= 0 || max(res.TargetRSSPeak, res.TargetRSSHeld) <= 0 {
			t.Errorf("%s: target CPU per setup %v, RSS %d: not measured", r.Name, res.TargetCPUPerSetup, res.TargetRSSPeak)
		}
		if !strings.Contains(r.Cmd, "--sessions 20") {
			t.Errorf("%s: command %q", r.Name, r.Cmd)
		}
	}
	// xl2tpd's group held at least the 20 pppd processes.
	if x := out.Runs[1].Result; x != nil && x.TargetRSSPeak < 20*(1<<20) {
		t.Errorf("xl2tpd+pppd peak RSS %d: fewer than 20 pppd counted?", x.TargetRSSPeak)
	}
	md := out.Markdown()
	if !strings.Contains(md, "| ours-kernel-20 vs xl2tpd-pppd-20 |") {
		t.Errorf("no ratio line:\n%s", md)
	}
	t.Logf("\n%s", md)
}

// The lab l2tpd's configuration is one our config parser takes: kernel
// data path, the subscribers asked for, and threads only when set.
func TestL2TPDConfigParses(t *testing.T) {
	for _, threads := range []int{0, 1} {
		c, err := config.Parse([]byte(L2TPDConfig(20, threads)), "lab.toml")
		if err != nil {
			t.Fatalf("threads %d: %v", threads, err)
		}
		if c.Threads != threads || c.DataPlane != config.DataPlaneKernel || len(c.Subscribers) != 20 {
			t.Errorf("threads %d: parsed threads %d, dataplane %v, %d subscribers; want %d, kernel, 20",
				threads, c.Threads, c.DataPlane, len(c.Subscribers), threads)
		}
	}
}
