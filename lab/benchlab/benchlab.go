// Package benchlab runs the lab-VM benchmarks of issue 7: our l2tpd with
// the kernel data path, then xl2tpd + one pppd per session, both as the LNS
// inside one boot of the lab VM (package lab), each loaded by l2tpbench
// (CHAP) from another network namespace with the same options.
//
// Our daemon is measured by l2tpbench itself (--target-pid). xl2tpd + pppd
// are many processes, so cmd/groupmeter samples them as a group during the
// run and ApplyGroup folds the samples into l2tpbench's result on the host
// (see group.go). Every run writes NAME.json (the result), NAME.csv (time
// series), NAME.txt (l2tpbench's output), NAME.cmd (the exact command) and
// NAME.group.csv (group samples) into Config.Dir, which the VM shares
// read-write at the same path; Execute reads them back after the VM powers
// off. scripts/bench-lab.sh and TestLabBenchSmoke drive it.
package benchlab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/l2tpd/l2tpd/bench"
	"github.com/l2tpd/l2tpd/lab"
)

// Target is the LNS under test.
type Target int

// The targets.
const (
	TargetOurs   Target = iota + 1 // our l2tpd, dataplane = "kernel"
	TargetXL2TPD                   // xl2tpd 1.3 + pppd 2.4 (one pppd per session)
)

func (t Target) String() string {
	switch t {
	case TargetOurs:
		return "ours-kernel"
	case TargetXL2TPD:
		return "xl2tpd-pppd"
	}
	return "target(" + strconv.Itoa(int(t)) + ")"
}

// groupNames are the command names measured as the target's group.
func (t Target) groupNames() string {
	if t == TargetXL2TPD {
		return "xl2tpd,pppd"
	}
	return "l2tpd"
}

// Load is one l2tpbench run against one target.
type Load struct {
	Target   Target
	Tunnels  int
	Sessions int
	InFlight int
	// Hold keeps the sessions up this long before hanging up (RSS held and
	// CPU while idle are measured then). Default 2 s.
	Hold time.Duration
	// Timeout bounds the l2tpbench run (--timeout). Default 3 minutes.
	Timeout time.Duration
	// SetupTimeout is l2tpbench's --setup-timeout. Default 60 s.
	SetupTimeout time.Duration
}

// Name is the run's name: the target and the session count.
func (l Load) Name() string { return fmt.Sprintf("%s-%d", l.Target, l.Sessions) }

func (l Load) withDefaults() Load {
	if l.Hold == 0 {
		l.Hold = 2 * time.Second
	}
	if l.Timeout == 0 {
		l.Timeout = 3 * time.Minute
	}
	if l.SetupTimeout == 0 {
		l.SetupTimeout = 60 * time.Second
	}
	if l.InFlight == 0 {
		l.InFlight = 20
	}
	return l
}

// Addresses of the two namespaces inside the VM, the PPP password of every
// user (user0..userN-1) and the namespace names.
const (
	LNSAddr  = "10.201.0.1"
	LACAddr  = "10.201.0.2"
	Password = "pw"
	nsLNS    = "lns"
	nsLAC    = "lac"
)

// profileAddr is where our l2tpd serves its profiles with Config.Profile.
const profileAddr = "127.0.0.1:6060"

// Config is one VM run.
type Config struct {
	// Dir is shared read-write with the VM (same path inside): configs,
	// results and logs go there. No white space.
	Dir string
	// L2TPD, L2TPBench and GroupMeter are the binaries (built with
	// CGO_ENABLED=0, somewhere the VM sees: not under the host's /tmp).
	L2TPD, L2TPBench, GroupMeter string
	// Loads run one after the other in this order.
	Loads []Load
	// Threads is our l2tpd's threads key (0: not set, its default).
	Threads int
	// Capture runs dumpcap on the LNS side of the veth during our runs
	// (NAME.pcap), to look into stragglers with tshark. It costs VM CPU.
	Capture bool
	// Profile, when not zero, takes a Go CPU profile of our l2tpd for this
	// long from the start of each of our loads (NAME.cpu.pb.gz, for
	// `go tool pprof`), through --debug-listen on the LNS namespace's
	// loopback. It costs VM CPU.
	Profile time.Duration
	// VMTimeout bounds the whole VM run (default: the sum of the loads'
	// timeouts plus 2 minutes per load).
	VMTimeout time.Duration
	// MemoryMiB is the VM's memory (default 2048: 200 pppd take ~700 MB).
	MemoryMiB int
	// Log receives the console lines (nil: none).
	Log func(string)
}

// Run is one load's outcome.
type Run struct {
	Load     Load
	Name     string
	JSON     string        // the result file (group-measured for xl2tpd)
	Cmd      string        // the l2tpbench command line, as run in the VM
	ExitCode int           // l2tpbench's exit status (3: some sessions failed)
	Result   *bench.Result // nil when the run wrote no result
	Err      error         // why Result is nil or the group could not be applied
}

// Outcome is what Execute measured.
type Outcome struct {
	Runs []Run
	Lab  lab.Result
}

func (c Config) loads() []Load {
	out := make([]Load, len(c.Loads))
	for i, l := range c.Loads {
		out[i] = l.withDefaults()
	}
	return out
}

func (c Config) vmTimeout() time.Duration {
	if c.VMTimeout > 0 {
		return c.VMTimeout
	}
	d := time.Minute
	for _, l := range c.loads() {
		d += l.Timeout + 2*time.Minute
	}
	return d
}

// maxSessions is the largest load of the target t (the users to create).
func (c Config) maxSessions(t Target) int {
	n := 0
	for _, l := range c.Loads {
		if l.Target == t {
			n = max(n, l.Sessions)
		}
	}
	return n
}

// L2TPDConfig is our LNS's configuration for n local subscribers
// user0..user(n-1): kernel data path, CHAP, no admission limit, warnings
// only, the DNS server that xl2tpd's pppd offers too; threads when not 0.
func L2TPDConfig(n, threads int) string {
	var b strings.Builder
	if threads > 0 {
		fmt.Fprintf(&b, "threads = %d\n", threads)
	}
	fmt.Fprintf(&b, `dataplane = "kernel"
host_name = "l2tpd-lab-bench"
log_level = "warn"
[l2tp]
listen = ["%s:1701"]
accept_unknown_peers = true
max_sessions = 0
[[pool]]
name = "bench"
ranges = ["10.128.0.0/16"]
gateway = "10.128.0.1"
[ppp]
ip_pool = "bench"
auth = ["chap"]
ipv6 = "deny"
dns1 = "10.0.0.53"
`, LNSAddr)
	for i := range n {
		fmt.Fprintf(&b, "[[subscriber]]\nname = \"user%d\"\npassword = %q\n", i, Password)
	}
	return b.String()
}

// XL2TPDConfig is the xl2tpd LNS for n users: CHAP required (pppd
// require-chap through xl2tpd's "require chap"), a local address and a
// range, the same DNS server as ours.
func XL2TPDConfig(n int) lab.XL2TPD {
	users := make([]lab.PPPUser, n)
	for i := range users {
		users[i] = lab.PPPUser{Name: "user" + strconv.Itoa(i), Password: Password}
	}
	return lab.XL2TPD{
		Name: "xl2tpd", ListenAddr: LNSAddr,
		LNS: &lab.XL2TPDLNS{
			IPRange: "10.128.0.2-10.128.255.254", LocalIP: "10.128.0.1",
			Auth: "chap", Users: users,
			PPPOptions: []string{"require-chap", "ms-dns 10.0.0.53"},
		},
	}
}

// benchCmd is the l2tpbench command line of load l (PID: shell variable).
func (c Config) benchCmd(l Load) string {
	base := filepath.Join(c.Dir, l.Name())
	args := []string{
		c.L2TPBench, "--target", LNSAddr + ":1701", "--password", Password, "--auth", "chap",
		"--tunnels", strconv.Itoa(l.Tunnels), "--sessions", strconv.Itoa(l.Sessions),
		"--in-flight", strconv.Itoa(l.InFlight), "--hold", l.Hold.String(),
		"--setup-timeout", l.SetupTimeout.String(), "--timeout", l.Timeout.String(),
		"--json", base + ".json", "--csv", base + ".csv", "--quiet",
	}
	if l.Target == TargetOurs {
		args = append(args, "--target-pid", "$PID")
	}
	return strings.Join(args, " ")
}

// Script writes the configurations into c.Dir and returns the VM script.
func Script(c Config) (string, error) {
	if c.Dir == "" || c.L2TPD == "" || c.L2TPBench == "" || c.GroupMeter == "" {
		return "", errors.New("benchlab: Dir, L2TPD, L2TPBench and GroupMeter are required")
	}
	if len(c.Loads) == 0 {
		return "", errors.New("benchlab: no loads")
	}
	for _, l := range c.Loads {
		if l.Target != TargetOurs && l.Target != TargetXL2TPD {
			return "", fmt.Errorf("benchlab: load %s: unknown target", l.Name())
		}
		if l.Tunnels <= 0 || l.Sessions <= 0 {
			return "", fmt.Errorf("benchlab: load %s: tunnels and sessions must be positive", l.Name())
		}
	}
	var s strings.Builder
	s.WriteString(lab.ShellLib + `set -u
ulimit -n 65536
fail() { echo "FAILED: $*"; exit 1; }
stop_pid() { # stop_pid PID SECONDS: TERM, then KILL after SECONDS
	kill -TERM $1 2>/dev/null
	wait_for $2 sh -c "! kill -0 $1 2>/dev/null" || { echo "pid $1 did not exit on TERM: KILL"; kill -KILL $1 2>/dev/null; }
}
`)
	s.WriteString(lab.NetnsPair(nsLNS, LNSAddr, nsLAC, LACAddr))
	s.WriteString("echo \"BENCHLAB kernel $(uname -r) cpus $(nproc) mem $(awk '/MemTotal/ {print $2}' /proc/meminfo) kB\"\n")
	s.WriteString("echo \"BENCHLAB versions: $(dpkg-query -W -f '${Package} ${Version}; ' xl2tpd ppp 2>&1)\"\n")

	var ours lab.L2TPDFiles
	if n := c.maxSessions(TargetOurs); n > 0 {
		d := lab.L2TPD{Name: "l2tpd", Bin: c.L2TPD, Config: L2TPDConfig(n, c.Threads), LogLevel: "warn"}
		if c.Profile > 0 {
			d.Args = []string{"--debug-listen", profileAddr}
		}
		f, err := d.Write(c.Dir)
		if err != nil {
			return "", fmt.Errorf("benchlab: %w", err)
		}
		ours = f
	}
	var xl lab.XL2TPDFiles
	if n := c.maxSessions(TargetXL2TPD); n > 0 {
		f, err := XL2TPDConfig(n).Write(c.Dir)
		if err != nil {
			return "", fmt.Errorf("benchlab: %w", err)
		}
		// The secrets once (Start appends them on every start).
		fmt.Fprintf(&s, "cat %s >> %s && chmod 600 %s\n", shq(f.PPPSecrets), f.PPPSecretTo, f.PPPSecretTo)
		f.PPPSecrets = ""
		xl = f
	}
	for _, l := range c.loads() {
		name := l.Name()
		base := filepath.Join(c.Dir, name)
		fmt.Fprintf(&s, "\n# ---- %s\necho \"BENCHLAB start %s at ${SECONDS}s\"\n", name, name)
		fmt.Fprintf(&s, "rm -f %[1]s.json %[1]s.csv %[1]s.group.csv %[1]s.pcap\n", shq(base))
		if l.Target == TargetOurs {
			s.WriteString(ours.Start(nsLNS))
			fmt.Fprintf(&s, "wait_for 30 sh -c 'ip netns exec %s ss -uln | grep -q %s:1701' || { tail -20 %s; fail 'l2tpd did not listen'; }\n",
				nsLNS, LNSAddr, shq(ours.Log))
			fmt.Fprintf(&s, "PID=$(cat %s)\n", shq(ours.PIDFile))
			if c.Capture {
				s.WriteString(lab.Capture(nsLNS, "veth0", base+".pcap"))
			}
		} else {
			s.WriteString(xl.Start(nsLNS))
			fmt.Fprintf(&s, "PID=$(cat %s)\n", shq(xl.PIDFile))
		}
		fmt.Fprintf(&s, "%s -names %s -interval 250ms -out %s &\nGM=$!\n", shq(c.GroupMeter), l.Target.groupNames(), shq(base+".group.csv"))
		// The load starts once the meter has its first sample: a meter
		// that starts late (a slow VM reading its binary) has none of
		// the setup, and the group's CPU per setup came out 0.
		fmt.Fprintf(&s, "wait_for 60 test -s %s || fail 'groupmeter wrote no sample'\n", shq(base+".group.csv"))
		cmd := c.benchCmd(l)
		if l.Target == TargetOurs && c.Profile > 0 {
			fmt.Fprintf(&s, "ip netns exec %s curl -s -o %s 'http://%s/debug/pprof/profile?seconds=%d' &\nPROF=$!\n",
				nsLNS, shq(base+".cpu.pb.gz"), profileAddr, int(c.Profile.Seconds()))
		}
		fmt.Fprintf(&s, "echo %s > %s.cmd\n", shq("ip netns exec "+nsLAC+" "+cmd), shq(base))
		fmt.Fprintf(&s, "ip netns exec %s %s > %s.txt 2>&1\nrc=$?\n", nsLAC, cmd, shq(base))
		s.WriteString("kill -INT $GM; wait $GM\n")
		fmt.Fprintf(&s, "echo \"BENCHLAB end %s rc=$rc at ${SECONDS}s\"\ncat %s.txt\n", name, shq(base))
		if l.Target == TargetOurs {
			if c.Capture {
				s.WriteString(lab.StopCaptures)
			}
			if c.Profile > 0 {
				s.WriteString("wait $PROF\n")
			}
			s.WriteString("stop_pid $PID 30\n")
			fmt.Fprintf(&s, "wait_for 30 sh -c '[ $(ip -n %s l2tp show session | grep -c ^Session) -eq 0 ]' || echo 'BENCHLAB warning: kernel sessions left'\n", nsLNS)
			fmt.Fprintf(&s, "echo \"BENCHLAB %s log: $(grep -cE 'panic|DATA RACE' %s) panics, $(wc -l < %s) lines\"\n", name, shq(ours.Log), shq(ours.Log))
		} else {
			s.WriteString("stop_pid $PID 30\n")
			s.WriteString("wait_for 60 sh -c '[ -z \"$(pidof pppd)\" ]' || { echo 'BENCHLAB warning: pppd left, killing'; kill -KILL $(pidof pppd) 2>/dev/null; }\n")
			fmt.Fprintf(&s, "echo \"BENCHLAB %s pppd log: $(grep -c 'LCP: timeout' %s) LCP timeouts, $(grep -ci 'authentication failed\\|CHAP authentication failed' %s) auth failures\"\n",
				name, shq(xl.PPPLog), shq(xl.PPPLog))
		}
		fmt.Fprintf(&s, "ip -n %s link show type ppp 2>/dev/null | grep -c '^[0-9]' | sed 's/^/BENCHLAB ppp links left: /'\n", nsLNS)
	}
	s.WriteString("echo \"BENCHLAB done at ${SECONDS}s\"\n")
	return s.String(), nil
}

// Execute boots the VM, runs the loads and reads the results back. For
// xl2tpd the group samples replace l2tpbench's (absent) target figures and
// the result file is rewritten (the original kept as NAME.raw.json). A run
// that produced no result has Run.Err set; Execute's error is for the VM.
func Execute(ctx context.Context, c Config) (*Outcome, error) {
	script, err := Script(c)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(c.Dir, "vm-script.sh"), []byte(script), 0o644); err != nil {
		return nil, fmt.Errorf("benchlab: %w", err)
	}
	mem := c.MemoryMiB
	if mem == 0 {
		mem = 2048
	}
	res, err := lab.Exec(ctx, lab.Options{Dir: c.Dir, Timeout: c.vmTimeout(), MemoryMiB: mem, Log: c.Log, Quiet: c.Log == nil}, script)
	out := &Outcome{Lab: res}
	if err != nil {
		return out, fmt.Errorf("benchlab: %w", err)
	}
	if res.ExitCode != 0 {
		return out, fmt.Errorf("benchlab: VM script exited %d", res.ExitCode)
	}
	for _, l := range c.loads() {
		out.Runs = append(out.Runs, collect(c.Dir, l, res.Output))
	}
	return out, nil
}

// collect reads one run's files and applies the group samples.
func collect(dir string, l Load, output string) Run {
	name := l.Name()
	base := filepath.Join(dir, name)
	r := Run{Load: l, Name: name, JSON: base + ".json", ExitCode: -1}
	if b, err := os.ReadFile(base + ".cmd"); err == nil {
		r.Cmd = strings.TrimSpace(string(b))
	}
	if _, rest, ok := strings.Cut(output, "BENCHLAB end "+name+" rc="); ok {
		if f := strings.Fields(rest); len(f) > 0 {
			if n, err := strconv.Atoi(f[0]); err == nil {
				r.ExitCode = n
			}
		}
	}
	raw, err := os.ReadFile(r.JSON)
	if err != nil {
		r.Err = fmt.Errorf("%s: no result: %w", name, err)
		return r
	}
	var res bench.Result
	if err := json.Unmarshal(raw, &res); err != nil {
		r.Err = fmt.Errorf("%s: %s: %w", name, r.JSON, err)
		return r
	}
	r.Result = &res
	if l.Target != TargetXL2TPD {
		return r
	}
	f, err := os.Open(base + ".group.csv")
	if err != nil {
		r.Err = fmt.Errorf("%s: group samples: %w", name, err)
		return r
	}
	series, err := ReadSeries(f)
	f.Close()
	if err == nil {
		err = ApplyGroup(&res, series)
	}
	if err != nil {
		r.Err = fmt.Errorf("%s: group samples: %w", name, err)
		return r
	}
	if err := os.WriteFile(base+".raw.json", raw, 0o644); err != nil {
		r.Err = fmt.Errorf("%s: %w", name, err)
		return r
	}
	b, err := json.MarshalIndent(&res, "", "  ")
	if err == nil {
		err = os.WriteFile(r.JSON, append(b, '\n'), 0o644)
	}
	if err != nil {
		r.Err = fmt.Errorf("%s: rewriting the result: %w", name, err)
	}
	return r
}

// Ratio compares our run with xl2tpd's at the same load.
type Ratio struct {
	Ours, XL2TPD string  // run names
	Rate         float64 // our setup rate / xl2tpd's (higher is better)
	P99          float64 // xl2tpd's p99 setup / ours (higher is better)
	CPUPerSetup  float64 // xl2tpd's CPU per setup / ours (higher is better)
	RSS          float64 // xl2tpd's peak RSS / ours (higher is better)
}

// Ratios pairs each xl2tpd run with our run of the same tunnels and
// sessions.
func Ratios(runs []Run) []Ratio {
	var out []Ratio
	div := func(a, b float64) float64 {
		if b == 0 {
			return 0
		}
		return a / b
	}
	for _, x := range runs {
		if x.Load.Target != TargetXL2TPD || x.Result == nil {
			continue
		}
		for _, o := range runs {
			if o.Load.Target != TargetOurs || o.Result == nil || o.Load.Sessions != x.Load.Sessions || o.Load.Tunnels != x.Load.Tunnels {
				continue
			}
			or, xr := o.Result, x.Result
			out = append(out, Ratio{
				Ours: o.Name, XL2TPD: x.Name,
				Rate:        div(or.SetupRate, xr.SetupRate),
				P99:         div(float64(xr.SessionSetup.P99), float64(or.SessionSetup.P99)),
				CPUPerSetup: div(float64(xr.TargetCPUPerSetup), float64(or.TargetCPUPerSetup)),
				RSS:         div(float64(max(xr.TargetRSSPeak, xr.TargetRSSHeld)), float64(max(or.TargetRSSPeak, or.TargetRSSHeld))),
			})
			break
		}
	}
	return out
}

// Markdown is the results table (bench.MarkdownTable), the ratios and the
// exact commands.
func (o *Outcome) Markdown() string {
	var names []string
	var results []*bench.Result
	var b strings.Builder
	for _, r := range o.Runs {
		if r.Result != nil {
			names = append(names, r.Name)
			results = append(results, r.Result)
		}
	}
	b.WriteString(bench.MarkdownTable(names, results))
	if rs := Ratios(o.Runs); len(rs) > 0 {
		b.WriteString("\n| ours / xl2tpd+pppd | setup rate | p99 setup (xl2tpd/ours) | CPU per setup (xl2tpd/ours) | RSS (xl2tpd/ours) |\n|---|---:|---:|---:|---:|\n")
		for _, r := range rs {
			fmt.Fprintf(&b, "| %s vs %s | %.1fx | %.1fx | %.1fx | %.1fx |\n", r.Ours, r.XL2TPD, r.Rate, r.P99, r.CPUPerSetup, r.RSS)
		}
	}
	b.WriteString("\nCommands (inside the VM; `$PID` is our l2tpd):\n\n")
	for _, r := range o.Runs {
		fmt.Fprintf(&b, "- %s (exit %d): `%s`\n", r.Name, r.ExitCode, r.Cmd)
		if r.Err != nil {
			fmt.Fprintf(&b, "  - error: %v\n", r.Err)
		}
	}
	return b.String()
}

// shq quotes s for a POSIX shell.
func shq(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
