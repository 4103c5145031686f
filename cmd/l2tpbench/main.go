// Command l2tpbench loads an L2TP LNS: it emulates a LAC and its PPP
// subscribers (LCP, PAP/CHAP/MS-CHAPv2, IPCP) with the project's own L2TP
// and PPP code and reports setup rate, latency percentiles, failures by
// cause, retransmissions and CPU and memory (see docs/benchmarks.md).
//
//	l2tpbench --target 127.0.0.1:1701 --tunnels 10 --sessions 1000 --auth chap \
//	    --password secret --in-flight 200 --hold 10s --target-pid $(pidof l2tpd) --json out.json
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/l2tpd/l2tpd/bench"
	"github.com/l2tpd/l2tpd/internal/gctune"
)

// gcPercent is l2tpbench's garbage collector target unless GOGC is set:
// four times Go's default. The emulator keeps every session's state, a
// live heap of hundreds of megabytes at 100,000 sessions; collecting
// it less often leaves more of a 2-core machine to the LNS under test and
// fewer pauses in the latencies measured. 100,000 sessions over 100
// tunnels against our LNS, 6 runs each: 9,060-11,053 setups/s with 400
// against 8,671-9,495 with 100, 0.09 ms of the emulator's CPU per setup
// against 0.10, RSS 469-475 MiB against 358-385 (docs/benchmarks.md).
const gcPercent = 400

func main() {
	gctune.Apply(gcPercent, os.Getenv)
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) > 0 && args[0] == "table" {
		return table(args[1:])
	}
	fs := flag.NewFlagSet("l2tpbench", flag.ContinueOnError)
	var (
		target    = fs.String("target", "127.0.0.1:1701", "LNS address (host:port)")
		local     = fs.String("local", "", "source address (default: the kernel's choice)")
		tunnels   = fs.Int("tunnels", 1, "tunnels to open")
		sessions  = fs.Int("sessions", 100, "sessions to set up, spread over the tunnels")
		rate      = fs.Float64("rate", 0, "session setups started per second (0: as fast as --in-flight allows)")
		inflight  = fs.Int("in-flight", 100, "session setups in flight at most")
		authName  = fs.String("auth", "chap", "PPP authentication: pap, chap or mschapv2")
		userFmt   = fs.String("user", "user%d", "user name format (one %d: the session number modulo --users)")
		users     = fs.Int("users", 0, "distinct user names (0: one per session)")
		password  = fs.String("password", "", "PPP password of every user")
		hostName  = fs.String("host-name", "l2tpbench", "our Host Name AVP")
		secret    = fs.String("secret", "", "tunnel secret (empty: none)")
		hello     = fs.Duration("hello", 60*time.Second, "our Hello interval (0: none)")
		lcpEcho   = fs.Duration("lcp-echo", 0, "our LCP echo interval (0: none; the LNS's are always answered)")
		setupTO   = fs.Duration("setup-timeout", 60*time.Second, "a session not up this long after its ICRQ has failed")
		hold      = fs.Duration("hold", 0, "hold the sessions this long before hanging up")
		data      = fs.Int("data", 0, "ICMP echo requests to send through each session to the LNS's address (needs an LNS that forwards them)")
		dataSize  = fs.Int("data-size", 56, "ICMP payload bytes")
		pid       = fs.Int("target-pid", 0, "pid of a local target process: report its CPU per setup and RSS")
		interval  = fs.Duration("interval", time.Second, "progress and time series interval")
		quiet     = fs.Bool("quiet", false, "no progress lines")
		jsonOut   = fs.String("json", "", "write the result as JSON to this file (- for stdout)")
		csvOut    = fs.String("csv", "", "write the time series as CSV to this file")
		logLevel  = fs.String("log-level", "", "log our L2TP and PPP events to stderr at this level (debug, info, warn)")
		timeLimit = fs.Duration("timeout", 0, "abort the run after this long (0: none)")
	)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	o := bench.Options{
		Tunnels: *tunnels, Sessions: *sessions, Rate: *rate, InFlight: *inflight,
		UserFormat: *userFmt, UserCount: *users, Password: *password, HostName: *hostName, Secret: *secret,
		HelloInterval: *hello, LCPEchoInterval: *lcpEcho, SetupTimeout: *setupTO, Hold: *hold,
		DataPackets: *data, DataSize: *dataSize, TargetPID: *pid, Interval: *interval,
	}
	var err error
	if o.Target, err = resolve(*target); err != nil {
		fmt.Fprintf(os.Stderr, "l2tpbench: --target: %v\n", err)
		return 2
	}
	if *local != "" {
		if o.Local, err = netip.ParseAddr(*local); err != nil {
			fmt.Fprintf(os.Stderr, "l2tpbench: --local: %v\n", err)
			return 2
		}
	}
	if o.Auth, err = bench.ParseAuth(*authName); err != nil {
		fmt.Fprintf(os.Stderr, "l2tpbench: --auth: %v\n", err)
		return 2
	}
	if *logLevel != "" {
		lvl, err := zap.ParseAtomicLevel(*logLevel)
		if err != nil {
			fmt.Fprintf(os.Stderr, "l2tpbench: --log-level: %v\n", err)
			return 2
		}
		c := zap.NewDevelopmentConfig()
		c.Level = lvl
		if o.Log, err = c.Build(); err != nil {
			fmt.Fprintf(os.Stderr, "l2tpbench: logger: %v\n", err)
			return 1
		}
	}
	if !*quiet {
		o.Progress = func(s bench.Sample) { fmt.Fprintln(os.Stderr, bench.ProgressLine(s, o.Sessions)) }
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *timeLimit > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *timeLimit)
		defer cancel()
	}
	res, runErr := bench.Run(ctx, o)
	if res == nil {
		fmt.Fprintf(os.Stderr, "l2tpbench: %v\n", runErr)
		return 1
	}
	if err := res.WriteText(os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "l2tpbench: %v\n", err)
		return 1
	}
	if err := writeOutputs(res, *jsonOut, *csvOut); err != nil {
		fmt.Fprintf(os.Stderr, "l2tpbench: %v\n", err)
		return 1
	}
	if runErr != nil && !errors.Is(runErr, context.Canceled) {
		fmt.Fprintf(os.Stderr, "l2tpbench: run stopped early: %v\n", runErr)
		return 1
	}
	if res.Failed > 0 || res.Dropped > 0 {
		return 3
	}
	return 0
}

// table prints the Markdown tables of JSON results given as NAME=FILE: a
// name given more than once is a repeated run, and its row is the run
// with the median target CPU per setup (a third table lists every run).
// With --against BASE, a fourth gives each run's ratios to BASE's run of
// the same load (TARGET-LOAD against BASE-LOAD).
func table(args []string) int {
	fs := flag.NewFlagSet("l2tpbench table", flag.ContinueOnError)
	against := fs.String("against", "", "compare each TARGET-LOAD run with the run named `BASE`-LOAD")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var names []string
	var results []*bench.Result
	for _, a := range fs.Args() {
		name, path, ok := strings.Cut(a, "=")
		if !ok {
			fmt.Fprintf(os.Stderr, "l2tpbench table: %q: want NAME=FILE.json\n", a)
			return 2
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			fmt.Fprintf(os.Stderr, "l2tpbench table: %v\n", err)
			return 1
		}
		var r bench.Result
		if err := json.Unmarshal(raw, &r); err != nil {
			fmt.Fprintf(os.Stderr, "l2tpbench table: %s: %v\n", path, err)
			return 1
		}
		names = append(names, name)
		results = append(results, &r)
	}
	groups := bench.GroupRuns(names, results)
	names, results = names[:0], results[:0]
	for _, g := range groups {
		names = append(names, g.Name)
		results = append(results, g.Median)
	}
	fmt.Print(bench.MarkdownTable(names, results))
	for _, t := range []string{bench.MarkdownHoldTable(names, results), bench.MarkdownRepeatsTable(groups)} {
		if t != "" {
			fmt.Print("\n" + t)
		}
	}
	if *against != "" {
		if t := bench.MarkdownRatioTable(groups, *against); t != "" {
			fmt.Print("\n" + t)
		}
	}
	return 0
}

func resolve(s string) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap, nil
	}
	ua, err := net.ResolveUDPAddr("udp", s)
	if err != nil {
		return netip.AddrPort{}, err
	}
	ap := ua.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}

func writeOutputs(res *bench.Result, jsonPath, csvPath string) error {
	if jsonPath != "" {
		b, err := json.MarshalIndent(res, "", "  ")
		if err != nil {
			return fmt.Errorf("encoding the JSON result: %w", err)
		}
		b = append(b, '\n')
		if jsonPath == "-" {
			_, err = os.Stdout.Write(b)
		} else {
			err = os.WriteFile(jsonPath, b, 0o644)
		}
		if err != nil {
			return fmt.Errorf("writing the JSON result: %w", err)
		}
	}
	if csvPath != "" {
		f, err := os.Create(csvPath)
		if err != nil {
			return fmt.Errorf("writing the time series: %w", err)
		}
		if err := res.WriteCSV(f); err != nil {
			f.Close()
			return fmt.Errorf("writing %s: %w", csvPath, err)
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("writing %s: %w", csvPath, err)
		}
	}
	return nil
}
