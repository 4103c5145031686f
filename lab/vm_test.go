package lab

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// These tests boot the VM (about 10 s each here). They skip when the lab is
// unavailable (or with -short), and fail then if L2TPD_REQUIRE_INTEGRATION=1.

func requireVM(t *testing.T) {
	t.Helper()
	if testing.Short() && os.Getenv(EnvRequire) != "1" {
		t.Skip("lab VM tests skipped with -short")
	}
	Require(t)
}

// TestKernelFeatures boots once and checks what every later lab test relies
// on: modules loaded, /dev/ppp, the l2tp genetlink family, netem, the shared
// directory writable, and the script's exit status coming back.
func TestKernelFeatures(t *testing.T) {
	requireVM(t)
	dir := t.TempDir()
	bin := GoBuild(t, dir, "./lab/labrun")
	script := bin + ` -h 2>&1 | grep -q -- -timeout && echo "go binary ran"
echo "kernel $(uname -r)"
for m in l2tp_ppp l2tp_netlink l2tp_eth l2tp_ip l2tp_ip6 ppp_generic pppoe sch_netem veth; do
	test -d /sys/module/$m && echo "module $m loaded"
done
test -c /dev/ppp && echo "devppp $(stat -c '%t:%T' /dev/ppp)"
ip l2tp show tunnel && echo "genl l2tp ok"
cat <(echo "process substitution ok")
ip link add v0 type veth peer name v1 && tc qdisc add dev v0 root netem loss 10% delay 5ms && echo "netem ok"
echo "written in vm" > "$LAB_DIR/from-vm.txt"
cat /etc/hostname >/dev/null && echo "host root visible"
echo 'LAB:forged:exit:0'
printf 'no newline at end'
exit 7
`
	res, err := Run(t, Options{Dir: dir}, script)
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 7 {
		t.Errorf("exit code %d, want 7", res.ExitCode)
	}
	for _, want := range []string{
		"module l2tp_ppp loaded", "module l2tp_netlink loaded", "module l2tp_eth loaded",
		"module l2tp_ip loaded", "module l2tp_ip6 loaded", "module ppp_generic loaded",
		"module pppoe loaded", "module sch_netem loaded", "module veth loaded",
		"devppp 6c:0", // major 108, minor 0, in hex
		"genl l2tp ok", "netem ok", "go binary ran", "process substitution ok", "host root visible",
	} {
		if !strings.Contains(res.Output, want+"\n") {
			t.Errorf("output lacks %q", want)
		}
	}
	if !regexp.MustCompile(`(?m)^kernel \d+\.\d+`).MatchString(res.Output) {
		t.Errorf("no kernel version in output")
	}
	b, err := os.ReadFile(filepath.Join(dir, "from-vm.txt"))
	if err != nil || string(b) != "written in vm\n" {
		t.Errorf("file written in the VM: %q, %v", b, err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, ".lab", "exit")); err != nil || strings.TrimSpace(string(b)) != "7" {
		t.Errorf(".lab/exit = %q, %v", b, err)
	}
	if res.Boot <= 0 || res.Total < res.Boot {
		t.Errorf("timings: boot %v total %v", res.Boot, res.Total)
	}
}

// TestModprobeFailure checks that a module that cannot load is an error of
// Run, not a script failure.
func TestModprobeFailure(t *testing.T) {
	requireVM(t)
	_, err := Run(t, Options{Modules: []string{"no_such_module_xyz"}, Quiet: true}, "echo should not run\n")
	if err == nil || !strings.Contains(err.Error(), "modprobe") {
		t.Fatalf("err = %v, want a modprobe failure", err)
	}
}

// TestXL2TPDSmoke is the known-good real-peer scenario and the pattern for
// later lab tests: two network namespaces joined by veth, an xl2tpd+pppd LNS
// in one and an xl2tpd+pppd LAC dialling it from the other (kernel data
// path, CHAP, tunnel authentication), ppp0 up on both sides, ping across
// the tunnel, and a capture on the LNS side read with tshark on the host.
func TestXL2TPDSmoke(t *testing.T) {
	requireVM(t)
	start := time.Now()
	dir := t.TempDir()
	const secret = "tunnel-s3cret"
	lns, err := XL2TPD{
		Name: "lns", ListenAddr: "10.1.0.1", TunnelSecret: secret, Hidden: true,
		LNS: &XL2TPDLNS{
			IPRange: "10.99.0.100-10.99.0.110", LocalIP: "10.99.0.1",
			Users: []PPPUser{{Name: "alice", Password: "wonderland"}},
		},
	}.Write(dir)
	if err != nil {
		t.Fatal(err)
	}
	lac, err := XL2TPD{
		Name: "lac", ListenAddr: "10.1.0.2", TunnelSecret: secret, Hidden: true,
		LAC: &XL2TPDLAC{LNS: "10.1.0.1", User: "alice", Password: "wonderland"},
	}.Write(dir)
	if err != nil {
		t.Fatal(err)
	}
	ppp0Up := func(ns string) string {
		return "wait_for 90 sh -c 'ip -n " + ns + " -4 addr show dev ppp0 2>/dev/null | grep -q \"inet \"'"
	}
	script := ShellLib + `
set -u
fail() {
	echo "FAILED: $*"
	dump_logs ` + lns.Log + " " + lns.PPPLog + " " + lac.Log + " " + lac.PPPLog + `
	exit 1
}
` + NetnsPair("lns", "10.1.0.1", "lac", "10.1.0.2") +
		Capture("lns", "veth0", filepath.Join(dir, "lns.pcap")) +
		lns.Start("lns") + lac.Start("lac") +
		"echo \"peers started at ${SECONDS}s\"\n" +
		lac.Dial("lab") +
		ppp0Up("lac") + " || fail 'LAC ppp0 not up'\n" +
		ppp0Up("lns") + " || fail 'LNS ppp0 not up'\n" + `
echo "ppp0 up at ${SECONDS}s"
echo "LAC: $(ip -n lac -4 -o addr show dev ppp0)"
echo "LNS: $(ip -n lns -4 -o addr show dev ppp0)"
ip -n lns l2tp show tunnel
ip -n lns l2tp show session
# iputils-ping is not installed on the build machines; busybox-static is.
ip netns exec lac busybox ping -c 3 -W 5 10.99.0.1 || fail "ping across the tunnel"
echo "smoke done at ${SECONDS}s"
` + StopCaptures
	res, err := Run(t, Options{Dir: dir}, script)
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 0 {
		t.Fatalf("script exited %d", res.ExitCode)
	}
	for _, re := range []string{
		`(?m)^LAC: .*ppp0\s+inet 10\.99\.0\.1\d\d peer 10\.99\.0\.1/32`,
		`(?m)^LNS: .*ppp0\s+inet 10\.99\.0\.1 peer 10\.99\.0\.1\d\d/32`,
		`(?m)^Tunnel \d+, encap UDP`,     // kernel data path: tunnel in the kernel
		`(?m)^Session \d+ in tunnel \d+`, // and its session
		`3 packets transmitted, 3 packets received, 0% packet loss`,
	} {
		if !regexp.MustCompile(re).MatchString(res.Output) {
			t.Errorf("output does not match %s", re)
		}
	}
	// The capture written in the VM is on the host: the whole control
	// exchange (SCCRQ, SCCRP, SCCCN, ICRQ, ICRP, ICCN) went over the wire.
	// (xl2tpd 1.3.18 sends its AVPs unhidden even with "hidden bit = yes".)
	if _, err := exec.LookPath("tshark"); err == nil {
		cmd := exec.Command("tshark", "-r", filepath.Join(dir, "lns.pcap"), "-Y", "l2tp.type == 1",
			"-T", "fields", "-e", "l2tp.avp.message_type")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("tshark: %v", err)
		}
		seen := map[string]bool{}
		for _, l := range strings.Fields(string(out)) {
			seen[l] = true
		}
		for _, mt := range []string{"1", "2", "3", "10", "11", "12"} {
			if !seen[mt] {
				t.Errorf("message type %s not in the capture (saw %v)", mt, strings.Fields(string(out)))
			}
		}
	}
	t.Logf("smoke test: boot %v, VM total %v, test total %v",
		res.Boot.Round(time.Millisecond), res.Total.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
}

// TestTimeout checks that a run that outlives Options.Timeout is killed and
// reported as an error.
func TestTimeout(t *testing.T) {
	requireVM(t)
	start := time.Now()
	_, err := Run(t, Options{Timeout: 3 * time.Second, Quiet: true}, "sleep 600\n")
	if err == nil || !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("err = %v, want a timeout", err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("Run returned %v after a 3 s timeout", d)
	}
}

// A boot that hangs before the script starts is killed after BootTimeout
// and booted once more, and the script runs once.
func TestBootWatchdog(t *testing.T) {
	requireVM(t)
	res, err := Run(t, Options{BootTimeout: 45 * time.Second, Timeout: 4 * time.Minute, Quiet: true, hangBoots: 1},
		`echo ran >>"$LAB_DIR/runs"`+"\n")
	if err != nil {
		t.Fatal(err)
	}
	if res.Boots != 2 || res.ExitCode != 0 {
		t.Fatalf("%d boots, exit %d; want 2 and 0", res.Boots, res.ExitCode)
	}
	if b, err := os.ReadFile(filepath.Join(res.Dir, "runs")); err != nil || string(b) != "ran\n" {
		t.Fatalf("the script's runs: %q, %v; want one", b, err)
	}
	console, err := os.ReadFile(filepath.Join(res.Dir, ".lab", "console.log"))
	if err != nil || !strings.Contains(string(console), "no boot within 45s (/init ran but did not start the script); qemu killed, booting once more") {
		t.Fatalf("console log does not say the first boot hung in /init (%v):\n%s", err, console)
	}
}

// Two boots that hang: an error, after two boot timeouts, not the run's.
func TestBootWatchdogGivesUp(t *testing.T) {
	requireVM(t)
	start := time.Now()
	res, err := Run(t, Options{BootTimeout: 15 * time.Second, Timeout: 3 * time.Minute, Quiet: true, hangBoots: 2}, "true\n")
	if err == nil || !strings.Contains(err.Error(), "no boot within 15s") || res.Boots != 2 {
		t.Fatalf("err = %v after %d boots; want no boot within 15s after 2", err, res.Boots)
	}
	if d := time.Since(start); d > 2*time.Minute {
		t.Errorf("gave up after %v", d)
	}
}
