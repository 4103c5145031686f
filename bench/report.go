package bench

import (
	"encoding/csv"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Phase is the wall time and CPU time of one part of a run.
type Phase struct {
	Wall   time.Duration `json:"wall_ns"`
	Self   time.Duration `json:"self_cpu_ns"`
	Target time.Duration `json:"target_cpu_ns"`
	// The target's context switches in the phase (ProcSample).
	TargetSwitches    int64 `json:"target_switches,omitempty"`
	TargetPreemptions int64 `json:"target_preemptions,omitempty"`
	// The target's minor page faults in the phase (ProcSample.Faults).
	TargetFaults int64 `json:"target_faults,omitempty"`
}

// DataResult counts the data probes.
type DataResult struct {
	Sent       uint64        `json:"sent"`
	Received   uint64        `json:"received"`
	SendErrors uint64        `json:"send_errors"`
	Wall       time.Duration `json:"wall_ns"`
}

// Sample is one point of the time series.
type Sample struct {
	T           time.Duration `json:"t_ns"`
	Placed      int64         `json:"placed"`
	Up          int64         `json:"up"`
	Failed      int64         `json:"failed"`
	Dropped     int64         `json:"dropped"`
	InFlight    int           `json:"in_flight"`
	Retransmits uint64        `json:"retransmits"`
	SelfCPU     time.Duration `json:"self_cpu_ns"`
	TargetCPU   time.Duration `json:"target_cpu_ns"`
	TargetRSS   int64         `json:"target_rss_bytes"`
}

// OptionsSummary is the part of Options a result records.
type OptionsSummary struct {
	Target       string  `json:"target"`
	Tunnels      int     `json:"tunnels"`
	Sessions     int     `json:"sessions"`
	Rate         float64 `json:"rate"`
	InFlight     int     `json:"in_flight"`
	Auth         string  `json:"auth"`
	Hold         string  `json:"hold"`
	Hello        string  `json:"hello_interval"`
	LCPEcho      string  `json:"lcp_echo_interval"`
	DataPackets  int     `json:"data_packets"`
	TargetPID    int     `json:"target_pid,omitempty"`
	SetupTimeout string  `json:"setup_timeout"`
}

func summarizeOptions(o *Options) OptionsSummary {
	return OptionsSummary{
		Target: o.Target.String(), Tunnels: o.Tunnels, Sessions: o.Sessions, Rate: o.Rate, InFlight: o.InFlight,
		Auth: authName(o.Auth), Hold: o.Hold.String(), Hello: o.HelloInterval.String(), LCPEcho: o.LCPEchoInterval.String(),
		DataPackets: o.DataPackets, TargetPID: o.TargetPID, SetupTimeout: o.SetupTimeout.String(),
	}
}

// Result is what a run measured.
type Result struct {
	Options OptionsSummary `json:"options"`
	Start   time.Time      `json:"start"`

	TunnelsUp     int            `json:"tunnels_up"`
	Placed        int            `json:"sessions_placed"`
	Up            int            `json:"sessions_up"`
	Failed        int            `json:"sessions_failed"`
	Dropped       int            `json:"sessions_dropped_after_up"`
	SessionsAtEnd int            `json:"sessions_up_at_end"`
	Failures      map[string]int `json:"failures"`

	// SetupRate is sessions up divided by SetupSpan (first ICRQ to the
	// last IPCP up).
	SetupRate float64 `json:"setup_rate_per_s"`
	// SetupRate99 is 99% of the sessions up divided by the time from the
	// first ICRQ until 99% were up: the rate without the stragglers that
	// wait out a PPP or L2TP retransmission timer.
	SetupRate99   float64       `json:"setup_rate_99_per_s"`
	SetupSpan     time.Duration `json:"setup_span_ns"`
	TunnelSetup   Latency       `json:"tunnel_setup"`
	SessionSetup  Latency       `json:"session_setup"`
	FirstThousand Latency       `json:"session_setup_first_1000"`
	LastThousand  Latency       `json:"session_setup_last_1000"`

	Retransmits uint64 `json:"control_retransmits"`
	ControlSent uint64 `json:"control_sent"`
	// Duplicates counts the target's control messages received again
	// after they were delivered or while held: its retransmissions (it
	// did not see our acknowledgement in time, or a message was lost).
	Duplicates uint64 `json:"control_duplicates_received"`
	Malformed  uint64 `json:"malformed_data_messages"`

	Setup    Phase         `json:"setup"`
	Hold     Phase         `json:"hold"`
	Teardown time.Duration `json:"teardown_ns"`
	Data     DataResult    `json:"data"`

	SelfCPU           time.Duration `json:"self_cpu_ns"`
	SelfRSS           int64         `json:"self_rss_bytes"`
	SelfCPUPerSetup   time.Duration `json:"self_cpu_per_setup_ns"`
	TargetCPU         time.Duration `json:"target_cpu_ns,omitempty"`
	TargetCPUPerSetup time.Duration `json:"target_cpu_per_setup_ns,omitempty"`
	// The target's context switches per setup: blocking (voluntary) and
	// preempted (involuntary), summed over its threads.
	TargetSwitchesPerSetup    float64 `json:"target_switches_per_setup,omitempty"`
	TargetPreemptionsPerSetup float64 `json:"target_preemptions_per_setup,omitempty"`
	// TargetFaultsPerSetup: the target's minor page faults during the
	// setup, per session up (fresh memory it grew into).
	TargetFaultsPerSetup float64 `json:"target_faults_per_setup,omitempty"`
	TargetRSSBefore      int64   `json:"target_rss_before_bytes,omitempty"`
	TargetRSSHeld        int64   `json:"target_rss_held_bytes,omitempty"`
	TargetRSSAfter       int64   `json:"target_rss_after_bytes,omitempty"`
	TargetRSSPeak        int64   `json:"target_rss_peak_bytes,omitempty"`
	// TargetBytesPerSession is (RSS while held - RSS before) / sessions up.
	TargetBytesPerSession int64 `json:"target_bytes_per_session,omitempty"`
	// TargetHoldCPUPercent is the target's CPU during the hold, in
	// percent of one core.
	TargetHoldCPUPercent float64 `json:"target_hold_cpu_percent,omitempty"`

	Series []Sample `json:"-"`
}

func ms(d time.Duration) string { return strconv.FormatFloat(float64(d)/1e6, 'f', 2, 64) + " ms" }

// cpuMS is a CPU time per setup in milliseconds, three decimals, no unit.
func cpuMS(d time.Duration) string { return strconv.FormatFloat(float64(d)/1e6, 'f', 3, 64) }

func mib(b int64) string { return strconv.FormatFloat(float64(b)/(1<<20), 'f', 1, 64) + " MiB" }

func latLine(name string, l Latency) string {
	if l.N == 0 {
		return fmt.Sprintf("%-24s none\n", name)
	}
	return fmt.Sprintf("%-24s n=%d p50 %s  p90 %s  p99 %s  max %s\n", name, l.N, ms(l.P50), ms(l.P90), ms(l.P99), ms(l.Max))
}

// WriteText writes a human-readable summary.
func (r *Result) WriteText(w io.Writer) error {
	var b strings.Builder
	o := r.Options
	fmt.Fprintf(&b, "target %s: %d tunnels, %d sessions, auth %s, in-flight %d, rate %s\n", o.Target, o.Tunnels, o.Sessions, o.Auth, o.InFlight, rateStr(o.Rate))
	fmt.Fprintf(&b, "tunnels up %d; sessions placed %d, up %d, failed %d, dropped after up %d\n", r.TunnelsUp, r.Placed, r.Up, r.Failed, r.Dropped)
	fmt.Fprintf(&b, "setup rate %.0f sessions/s over %s (%.0f/s until 99%% were up)\n", r.SetupRate, ms(r.SetupSpan), r.SetupRate99)
	b.WriteString(latLine("tunnel setup", r.TunnelSetup))
	b.WriteString(latLine("session setup", r.SessionSetup))
	b.WriteString(latLine("  first 1000", r.FirstThousand))
	b.WriteString(latLine("  last 1000", r.LastThousand))
	fmt.Fprintf(&b, "control messages sent %d, retransmitted %d; received again (the target's retransmissions) %d; undecodable data messages %d\n", r.ControlSent, r.Retransmits, r.Duplicates, r.Malformed)
	if len(r.Failures) > 0 {
		b.WriteString("failures:\n")
		keys := make([]string, 0, len(r.Failures))
		for k := range r.Failures {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(&b, "  %6d  %s\n", r.Failures[k], k)
		}
	}
	if r.Options.DataPackets > 0 {
		fmt.Fprintf(&b, "data: %d echo requests sent, %d replies, %d send errors\n", r.Data.Sent, r.Data.Received, r.Data.SendErrors)
	}
	fmt.Fprintf(&b, "l2tpbench CPU: %s in all, %s during setup (%s per setup), RSS %s\n", ms(r.SelfCPU), ms(r.Setup.Self), ms(r.SelfCPUPerSetup), mib(r.SelfRSS))
	if o.TargetPID > 0 {
		fmt.Fprintf(&b, "target CPU: %s during setup, %s per setup; RSS before %s, held %s, peak %s, after %s",
			ms(r.Setup.Target), ms(r.TargetCPUPerSetup), mib(r.TargetRSSBefore), mib(r.TargetRSSHeld), mib(r.TargetRSSPeak), mib(r.TargetRSSAfter))
		if r.TargetBytesPerSession > 0 {
			fmt.Fprintf(&b, "; %d bytes per session", r.TargetBytesPerSession)
		}
		b.WriteString("\n")
		if r.Up > 0 {
			fmt.Fprintf(&b, "target context switches per setup: %.2f blocking, %.2f preempted\n", r.TargetSwitchesPerSetup, r.TargetPreemptionsPerSetup)
			fmt.Fprintf(&b, "target page faults per setup: %.2f (fresh memory backed on first touch)\n", r.TargetFaultsPerSetup)
		}
		if r.Hold.Wall > 0 {
			fmt.Fprintf(&b, "target CPU while holding %d sessions for %s: %.2f%% of one core\n", r.SessionsAtEnd, r.Hold.Wall.Round(time.Millisecond), r.TargetHoldCPUPercent)
		}
	}
	fmt.Fprintf(&b, "teardown %s\n", ms(r.Teardown))
	_, err := io.WriteString(w, b.String())
	return err
}

func rateStr(r float64) string {
	if r <= 0 {
		return "unbounded"
	}
	return strconv.FormatFloat(r, 'f', -1, 64) + "/s"
}

// CSVHeader are the columns of WriteCSV.
var CSVHeader = []string{"t_s", "placed", "up", "failed", "dropped", "in_flight", "retransmits", "self_cpu_s", "target_cpu_s", "target_rss_bytes"}

// WriteCSV writes the time series, one row per sample.
func (r *Result) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(CSVHeader); err != nil {
		return fmt.Errorf("csv: %w", err)
	}
	sec := func(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', 3, 64) }
	for _, s := range r.Series {
		row := []string{sec(s.T), strconv.FormatInt(s.Placed, 10), strconv.FormatInt(s.Up, 10), strconv.FormatInt(s.Failed, 10),
			strconv.FormatInt(s.Dropped, 10), strconv.Itoa(s.InFlight), strconv.FormatUint(s.Retransmits, 10),
			sec(s.SelfCPU), sec(s.TargetCPU), strconv.FormatInt(s.TargetRSS, 10)}
		if err := cw.Write(row); err != nil {
			return fmt.Errorf("csv: %w", err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("csv: %w", err)
	}
	return nil
}

// ProgressLine formats a sample for the terminal.
func ProgressLine(s Sample, total int) string {
	return fmt.Sprintf("%6.1fs  up %d/%d  failed %d  in flight %d  retx %d  cpu self %.2fs target %.2fs  rss %s",
		s.T.Seconds(), s.Up, total, s.Failed, s.InFlight, s.Retransmits, s.SelfCPU.Seconds(), s.TargetCPU.Seconds(), mib(s.TargetRSS))
}

// meter samples this process and the target.
type meter struct {
	pid    int
	clkTck int64
}

type meterSample struct{ self, target ProcSample }

func newMeter(pid int) *meter { return &meter{pid: pid, clkTck: ClockTicks()} }

func (m *meter) sample() meterSample {
	var s meterSample
	s.self, _ = SelfSample()
	if m.pid > 0 {
		s.target, _ = PIDSample(m.pid, m.clkTck)
	}
	return s
}

// MarkdownTable formats results as a Markdown table, one row per result
// named by names[i].
func MarkdownTable(names []string, results []*Result) string {
	var b strings.Builder
	b.WriteString("| run | tunnels | sessions | up | failed | rate/s | rate/s to 99% | setup p50 | p90 | p99 | max | retx | target CPU/setup | target faults/setup | target RSS | l2tpbench CPU/setup |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	f := func(d time.Duration) string { return strconv.FormatFloat(float64(d)/1e6, 'f', 1, 64) + " ms" }
	for i, r := range results {
		rss := max(r.TargetRSSPeak, r.TargetRSSHeld, r.TargetRSSAfter)
		faults := "-" // no target pid, or a group (xl2tpd+pppd) measured by CPU only
		if r.Options.TargetPID > 0 && r.Up > 0 {
			faults = strconv.FormatFloat(r.TargetFaultsPerSetup, 'f', 2, 64)
		}
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d | %.0f | %.0f | %s | %s | %s | %s | %d | %s | %s | %s | %s |\n",
			names[i], r.Options.Tunnels, r.Options.Sessions, r.Up, r.Failed+r.Dropped, r.SetupRate, r.SetupRate99,
			f(r.SessionSetup.P50), f(r.SessionSetup.P90), f(r.SessionSetup.P99), f(r.SessionSetup.Max), r.Retransmits,
			cpuMS(r.TargetCPUPerSetup)+" ms", faults, mib(rss), cpuMS(r.SelfCPUPerSetup)+" ms")
	}
	return b.String()
}

// MarkdownHoldTable formats the runs that held their sessions (Hold.Wall
// above zero) as a second Markdown table: setup p99 of the first and last
// thousand sessions and their ratio (no collapse as the target fills), and
// the target's memory per session and CPU while holding. It is empty when
// no run held its sessions. A ratio or figure the run could not measure
// is "-".
func MarkdownHoldTable(names []string, results []*Result) string {
	var b strings.Builder
	for i, r := range results {
		if r.Hold.Wall <= 0 {
			continue
		}
		if b.Len() == 0 {
			b.WriteString("| run | first 1,000 p99 | last 1,000 p99 | last / first | held: bytes per session | held: CPU, % of one core |\n")
			b.WriteString("|---|---:|---:|---:|---:|---:|\n")
		}
		f := func(d time.Duration) string { return strconv.FormatFloat(float64(d)/1e6, 'f', 1, 64) + " ms" }
		ratio, bytes, cpu := "-", "-", "-"
		if r.FirstThousand.P99 > 0 && r.LastThousand.P99 > 0 {
			ratio = strconv.FormatFloat(float64(r.LastThousand.P99)/float64(r.FirstThousand.P99), 'f', 2, 64)
		}
		if r.TargetBytesPerSession > 0 {
			bytes = strconv.FormatInt(r.TargetBytesPerSession, 10)
		}
		if r.TargetHoldCPUPercent > 0 {
			cpu = strconv.FormatFloat(r.TargetHoldCPUPercent, 'f', 2, 64) + "%"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", names[i], f(r.FirstThousand.P99), f(r.LastThousand.P99), ratio, bytes, cpu)
	}
	return b.String()
}

// RunGroup is the runs of one load on one target that share a name (a
// benchmark repeats the short runs, whose CPU per setup is a fraction of
// a second of the target's time and moves by a fifth from one run to the
// next) and the run that stands for them.
type RunGroup struct {
	Name string
	Runs []*Result // in the order given
	// Median is the run with the median target CPU per setup (the lower
	// of the two middle runs for an even count): a whole run, so that
	// its row's figures belong together.
	Median *Result
}

// GroupRuns groups results by name, in the order each name first
// appears.
func GroupRuns(names []string, results []*Result) []RunGroup {
	var groups []RunGroup
	at := make(map[string]int)
	for i, r := range results {
		g, ok := at[names[i]]
		if !ok {
			g = len(groups)
			at[names[i]] = g
			groups = append(groups, RunGroup{Name: names[i]})
		}
		groups[g].Runs = append(groups[g].Runs, r)
	}
	for i := range groups {
		byCPU := append([]*Result(nil), groups[i].Runs...)
		sort.SliceStable(byCPU, func(a, b int) bool { return byCPU[a].TargetCPUPerSetup < byCPU[b].TargetCPUPerSetup })
		groups[i].Median = byCPU[(len(byCPU)-1)/2]
	}
	return groups
}

// MarkdownRepeatsTable lists the repeated runs' target CPU per setup and
// setup rate, each run in the order run, and which one the tables use
// (the median). It is empty when no name has more than one run.
func MarkdownRepeatsTable(groups []RunGroup) string {
	var b strings.Builder
	for _, g := range groups {
		if len(g.Runs) < 2 {
			continue
		}
		if b.Len() == 0 {
			b.WriteString("| run | runs | target CPU/setup of each run | median | highest / lowest | rate/s of each run |\n")
			b.WriteString("|---|---:|---|---:|---:|---|\n")
		}
		cpus := make([]string, len(g.Runs))
		rates := make([]string, len(g.Runs))
		lo, hi := g.Runs[0].TargetCPUPerSetup, g.Runs[0].TargetCPUPerSetup
		for i, r := range g.Runs {
			cpus[i] = cpuMS(r.TargetCPUPerSetup)
			rates[i] = strconv.FormatFloat(r.SetupRate, 'f', 0, 64)
			lo, hi = min(lo, r.TargetCPUPerSetup), max(hi, r.TargetCPUPerSetup)
		}
		spread := "-"
		if lo > 0 {
			spread = strconv.FormatFloat(float64(hi)/float64(lo), 'f', 2, 64)
		}
		fmt.Fprintf(&b, "| %s | %d | %s ms | %s ms | %s | %s |\n", g.Name, len(g.Runs), strings.Join(cpus, ", "),
			cpuMS(g.Median.TargetCPUPerSetup), spread, strings.Join(rates, ", "))
	}
	return b.String()
}

// MarkdownRatioTable compares each run with the same load on the target
// base: a run named TARGET-LOAD against base-LOAD (ours-radius-1000
// against l2tpns-1000, ours-local-overload-20000 against
// l2tpns-overload-20000), median runs against median runs. Rates are
// ours over base (higher is better), CPU and latency too (lower is
// better), with two decimals, or two significant digits below 0.1; a
// figure either run lacks is "-". The runs whose names begin
// with base and a dash are base's own. It is empty when no run has a
// counterpart.
func MarkdownRatioTable(groups []RunGroup, base string) string {
	byName := make(map[string]*Result, len(groups))
	for _, g := range groups {
		byName[g.Name] = g.Median
	}
	ratio := func(a, b float64) string {
		if a <= 0 || b <= 0 {
			return "-"
		}
		r := a / b
		if r < 0.1 {
			return strconv.FormatFloat(r, 'g', 2, 64) // 0.0015, not 0.00
		}
		return strconv.FormatFloat(r, 'f', 2, 64)
	}
	var b strings.Builder
	for _, g := range groups {
		if strings.HasPrefix(g.Name, base+"-") {
			continue // base's own runs
		}
		against := ""
		for i := 0; i < len(g.Name); i++ {
			if g.Name[i] != '-' {
				continue
			}
			if _, ok := byName[base+g.Name[i:]]; ok {
				against = base + g.Name[i:]
				break
			}
		}
		if against == "" {
			continue
		}
		if b.Len() == 0 {
			b.WriteString("| run | against | rate/s | rate/s to 99% | target CPU/setup | setup p99 |\n")
			b.WriteString("|---|---|---:|---:|---:|---:|\n")
		}
		r, o := g.Median, byName[against]
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", g.Name, against,
			ratio(r.SetupRate, o.SetupRate), ratio(r.SetupRate99, o.SetupRate99),
			ratio(float64(r.TargetCPUPerSetup), float64(o.TargetCPUPerSetup)),
			ratio(float64(r.SessionSetup.P99), float64(o.SessionSetup.P99)))
	}
	return b.String()
}
