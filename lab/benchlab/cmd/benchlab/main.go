// Command benchlab runs the lab-VM benchmarks (package benchlab): our
// l2tpd with the kernel data path, then xl2tpd + pppd, in one boot of the
// lab VM, loaded by l2tpbench; writes the results (JSON per run) and a
// Markdown table (results.md) into -dir. scripts/bench-lab.sh builds the
// binaries and runs it.
//
//	benchlab -dir build/bench-lab/lab -l2tpd BIN -l2tpbench BIN -groupmeter BIN \
//	    -ours 200:2,1000:10 -xl2tpd 200:2 -in-flight 20
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/l2tpd/l2tpd/lab/benchlab"
)

func main() {
	var (
		dir       = flag.String("dir", "build/bench/lab", "output directory (shared with the VM)")
		l2tpd     = flag.String("l2tpd", "", "l2tpd binary")
		l2tpbench = flag.String("l2tpbench", "", "l2tpbench binary")
		gm        = flag.String("groupmeter", "", "groupmeter binary")
		ours      = flag.String("ours", "200:2", "our loads, SESSIONS:TUNNELS,...")
		xl        = flag.String("xl2tpd", "200:2", "xl2tpd+pppd loads, SESSIONS:TUNNELS,... (empty: none)")
		inflight  = flag.Int("in-flight", 20, "l2tpbench --in-flight")
		threads   = flag.Int("threads", 0, "our l2tpd's threads key (0: not set, its default)")
		hold      = flag.Duration("hold", 2*time.Second, "l2tpbench --hold")
		oursTO    = flag.Duration("ours-timeout", 3*time.Minute, "l2tpbench --timeout for our runs")
		xlTO      = flag.Duration("xl2tpd-timeout", 4*time.Minute, "l2tpbench --timeout for xl2tpd runs")
		capture   = flag.Bool("capture", false, "capture our runs on the LNS veth (NAME.pcap)")
		profile   = flag.Duration("profile", 0, "take a Go CPU profile of our l2tpd for this long in each of our runs (NAME.cpu.pb.gz)")
		vmTO      = flag.Duration("vm-timeout", 0, "bound of the whole VM run (0: from the loads)")
		quiet     = flag.Bool("quiet", false, "do not print the VM console")
	)
	flag.Parse()
	abs := func(p string) string {
		a, err := filepath.Abs(p)
		if err != nil {
			fmt.Fprintln(os.Stderr, "benchlab:", err)
			os.Exit(2)
		}
		return a
	}
	c := benchlab.Config{Dir: abs(*dir), L2TPD: abs(*l2tpd), L2TPBench: abs(*l2tpbench), GroupMeter: abs(*gm),
		Capture: *capture, Profile: *profile, VMTimeout: *vmTO, Threads: *threads}
	if !*quiet {
		c.Log = func(l string) { fmt.Println(l) }
	}
	for _, spec := range []struct {
		s  string
		t  benchlab.Target
		to time.Duration
	}{{*ours, benchlab.TargetOurs, *oursTO}, {*xl, benchlab.TargetXL2TPD, *xlTO}} {
		ls, err := parseLoads(spec.s, spec.t, *inflight, *hold, spec.to)
		if err != nil {
			fmt.Fprintln(os.Stderr, "benchlab:", err)
			os.Exit(2)
		}
		c.Loads = append(c.Loads, ls...)
	}
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "benchlab:", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	out, err := benchlab.Execute(ctx, c)
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchlab:", err)
		fmt.Fprintf(os.Stderr, "benchlab: console in %s\n", filepath.Join(c.Dir, ".lab", "console.log"))
		os.Exit(1)
	}
	md := out.Markdown()
	if err := os.WriteFile(filepath.Join(c.Dir, "results.md"), []byte(md), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "benchlab:", err)
		os.Exit(1)
	}
	fmt.Print(md)
	for _, r := range out.Runs {
		if r.Err != nil || r.ExitCode != 0 {
			os.Exit(3)
		}
	}
}

// parseLoads reads "200:2,1000:10" (sessions:tunnels).
func parseLoads(s string, t benchlab.Target, inflight int, hold, timeout time.Duration) ([]benchlab.Load, error) {
	var out []benchlab.Load
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		a, b, ok := strings.Cut(f, ":")
		n, err1 := strconv.Atoi(a)
		tn, err2 := strconv.Atoi(b)
		if !ok || err1 != nil || err2 != nil || n <= 0 || tn <= 0 {
			return nil, fmt.Errorf("load %q for %s: want SESSIONS:TUNNELS", f, t)
		}
		out = append(out, benchlab.Load{Target: t, Sessions: n, Tunnels: tn, InFlight: inflight, Hold: hold, Timeout: timeout})
	}
	return out, nil
}
