package scenarios

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/l2tpd/l2tpd/lab"
)

// kernelLib is bash for scenario scripts (after lab.ShellLib): counts of
// the kernel's L2TP objects and ppp links in a namespace, and waits on them.
const kernelLib = `
ktunnels() { ip -n "$1" l2tp show tunnel 2>/dev/null | grep -c '^Tunnel'; }
ksessions() { ip -n "$1" l2tp show session 2>/dev/null | grep -c '^Session'; }
kppp() { ip -n "$1" -o link show type ppp 2>/dev/null | wc -l; }
# ping_subscribers NS: from NS, ping the peer address of every ppp link
# (the LNS side); prints "PING NS ok=N fail=M".
ping_subscribers() {
	local ns=$1
	ip -n $ns -4 -o addr show type ppp | awk '/ peer /{print $6}' | sed 's,/.*,,' |
		xargs -r -P 16 -I{} sh -c "ip netns exec $ns busybox ping -c 1 -W 5 {} >/dev/null 2>&1 || ip netns exec $ns busybox ping -c 2 -W 5 {} >/dev/null 2>&1 && echo ok || echo 'fail {}'" >/run/ping-$ns
	echo "PING $ns ok=$(grep -c '^ok' /run/ping-$ns) fail=$(grep -c '^fail' /run/ping-$ns)"
	grep '^fail' /run/ping-$ns | head -5
}
# ping_gateways NS: from NS, ping the peer address through every ppp link
# bound to it (the LAC side, where every link has the same peer).
ping_gateways() {
	local ns=$1
	ip -n $ns -4 -o addr show type ppp | awk '/ peer /{print $2, $6}' | sed 's,/.*,,' |
		xargs -r -P 16 -L 1 sh -c "ip netns exec $ns busybox ping -I \$0 -c 1 -W 5 \$1 >/dev/null 2>&1 || ip netns exec $ns busybox ping -I \$0 -c 2 -W 5 \$1 >/dev/null 2>&1 && echo ok || echo \"fail \$0 \$1\"" >/run/ping-$ns
	echo "PING $ns ok=$(grep -c '^ok' /run/ping-$ns) fail=$(grep -c '^fail' /run/ping-$ns)"
	grep '^fail' /run/ping-$ns | head -5
}
# expect_kernel NS TUNNELS SESSIONS [SECONDS]: wait until NS has exactly
# that many kernel tunnels and sessions.
expect_kernel() {
	local ns=$1 nt=$2 nsess=$3 limit=${4:-30}
	if ! wait_for "$limit" sh -c "[ \$(ip -n $ns l2tp show tunnel | grep -c '^Tunnel') -eq $nt ] && [ \$(ip -n $ns l2tp show session | grep -c '^Session') -eq $nsess ]"; then
		fail "$ns: kernel has $(ktunnels $ns) tunnels and $(ksessions $ns) sessions, want $nt and $nsess"
	fi
	echo "CHECK $ns kernel tunnels=$nt sessions=$nsess at ${SECONDS}s"
}
expect_ppp() {
	local ns=$1 n=$2 limit=${3:-30}
	if ! wait_for "$limit" sh -c "[ \$(ip -n $ns -o link show type ppp | wc -l) -eq $n ]"; then
		fail "$ns: $(kppp $ns) ppp links, want $n"
	fi
	echo "CHECK $ns ppp links=$n at ${SECONDS}s"
}
`

// envL2TPD names a prebuilt l2tpd binary to use instead of building
// ./cmd/l2tpd.
const envL2TPD = "L2TPD_LAB_L2TPD"

// scenario collects what a VM run needs: its directory, the daemon binary,
// the files to dump on failure and the captures to decode.
type scenario struct {
	t       *testing.T
	dir     string
	l2tpd   string
	logs    []string
	pcaps   []string
	started time.Time
	kept    bool
}

func newScenario(t *testing.T) *scenario {
	t.Helper()
	requireVM(t)
	s := &scenario{t: t, dir: t.TempDir(), started: time.Now()}
	t.Cleanup(func() {
		if t.Failed() && !s.kept {
			s.keep()
		}
	})
	if bin := os.Getenv(envL2TPD); bin != "" {
		// A prebuilt daemon (for example from another checkout): copy it
		// where the VM sees it.
		b, err := os.ReadFile(bin)
		if err != nil {
			t.Fatalf("%s: %v", envL2TPD, err)
		}
		s.l2tpd = filepath.Join(s.dir, "bin", "l2tpd")
		if err := os.MkdirAll(filepath.Dir(s.l2tpd), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(s.l2tpd, b, 0o755); err != nil {
			t.Fatal(err)
		}
		return s
	}
	s.l2tpd = lab.GoBuild(t, s.dir, "./cmd/l2tpd")
	return s
}

// daemon writes an l2tpd instance after checking its configuration on the
// host (--check-config), so a bad config fails before the VM boots.
func (s *scenario) daemon(name, config string) lab.L2TPDFiles {
	s.t.Helper()
	f, err := lab.L2TPD{Name: name, Bin: s.l2tpd, Config: config}.Write(s.dir)
	if err != nil {
		s.t.Fatal(err)
	}
	if out, err := exec.Command(s.l2tpd, "--check-config", "--config", f.Conf).CombinedOutput(); err != nil {
		s.t.Fatalf("%s: l2tpd --check-config: %v\n%s\n%s", name, err, out, config)
	}
	s.logs = append(s.logs, f.Log)
	return f
}

// capture is the shell starting a capture on iface in netns, kept on failure.
func (s *scenario) capture(netns, iface string) string {
	p := filepath.Join(s.dir, netns+"-"+iface+".pcap")
	s.pcaps = append(s.pcaps, p)
	return lab.Capture(netns, iface, p)
}

// failFunc is the script's fail(): dump every log and stop the captures.
func (s *scenario) failFunc() string {
	var q []string
	for _, l := range s.logs {
		q = append(q, "'"+l+"'")
	}
	return fmt.Sprintf(`fail() {
	echo "FAILED: $*"
	for ns in $(ip netns list | cut -d' ' -f1); do
		echo "----- $ns: kernel objects"
		ip -n $ns l2tp show tunnel; ip -n $ns l2tp show session; ip -n $ns -o addr
	done
	dump_logs %s
	%s
	exit 1
}
`, strings.Join(q, " "), strings.ReplaceAll(lab.StopCaptures, "\n", "\n\t"))
}

// run boots the VM with script and fails the test unless it exits 0; on
// failure it keeps the logs and captures (decoded with tshark when present)
// under the lab cache directory.
func (s *scenario) run(timeout time.Duration, script string) lab.Result {
	s.t.Helper()
	full := lab.ShellLib + kernelLib + "set -u\n" + s.failFunc() + script + lab.StopCaptures + "echo \"scenario done at ${SECONDS}s\"\n"
	res, err := lab.Run(s.t, lab.Options{Dir: s.dir, Timeout: timeout}, full)
	if err != nil || res.ExitCode != 0 {
		s.keep()
		if err != nil {
			s.t.Fatalf("lab: %v", err)
		}
		s.t.Fatalf("scenario script exited %d", res.ExitCode)
	}
	s.t.Logf("scenario: boot %v, VM total %v, test total %v", res.Boot.Round(time.Millisecond),
		res.Total.Round(time.Millisecond), time.Since(s.started).Round(time.Millisecond))
	return res
}

// keep copies logs and captures (with a tshark decode) to the cache dir.
func (s *scenario) keep() {
	s.kept = true
	cache, err := lab.CacheDir()
	if err != nil {
		s.t.Logf("keep logs: %v", err)
		return
	}
	dst := filepath.Join(cache, "logs", strings.ReplaceAll(s.t.Name(), "/", "_")+"-"+time.Now().Format("20060102-150405"))
	if err := os.MkdirAll(dst, 0o755); err != nil {
		s.t.Logf("keep logs: %v", err)
		return
	}
	// A daemon that was sent SIGQUIT (it did not stop) left its
	// goroutines in its log: their summary goes into the test output,
	// which is all a CI run shows.
	for _, l := range s.logs {
		if b, err := os.ReadFile(l); err == nil {
			if sum := lab.GoroutineSummary(b, 6); sum != "" {
				s.t.Logf("goroutines of %s at its last dump:\n%s", l, sum)
			}
		}
	}
	files := append(append([]string{filepath.Join(s.dir, ".lab", "console.log")}, s.logs...), s.pcaps...)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		rel, _ := filepath.Rel(s.dir, f)
		name := strings.ReplaceAll(rel, "/", "_")
		os.WriteFile(filepath.Join(dst, name), b, 0o644)
		if strings.HasSuffix(f, ".pcap") {
			if _, err := exec.LookPath("tshark"); err == nil {
				out, _ := exec.Command("tshark", "-r", f, "-V", "-Y", "l2tp.type == 1 || ppp").CombinedOutput()
				os.WriteFile(filepath.Join(dst, name+".txt"), out, 0o644)
			}
		}
	}
	s.t.Logf("scenario logs and captures kept in %s", dst)
}

// lnsConfig is our LNS with the kernel data path listening on addr.
func lnsConfig(addr, extraL2TP, extra string) string {
	return fmt.Sprintf(`dataplane = "kernel"
host_name = "lns-lab"
[l2tp]
listen = ["%s:1701"]
hello_interval = "5s"
rtimeout_cap = "8s"
retransmit = 4
%s
[[pool]]
name = "default"
ranges = ["10.64.0.0/22"]
gateway = "10.64.0.1"
[ppp]
ip_pool = "default"
[[subscriber]]
name = "alice"
password = "wonderland"
%s
`, addr, extraL2TP, extra)
}

// lacConfig is our LAC with the kernel data path: tunnels [[lac]] sections
// to lns, each placing sessions calls.
func lacConfig(lns string, tunnels, sessions int, extra string) string {
	var b strings.Builder
	b.WriteString(`dataplane = "kernel"
host_name = "lac-lab"
[l2tp]
listen = []
hello_interval = "5s"
rtimeout_cap = "8s"
retransmit = 4
`)
	for i := 0; i < tunnels; i++ {
		fmt.Fprintf(&b, `[[lac]]
name = "t%d"
lns = "%s:1701"
sessions = %d
redial_min = "1s"
redial_max = "2s"
username = "alice"
password = "wonderland"
%s
`, i, lns, sessions, extra)
	}
	return b.String()
}
