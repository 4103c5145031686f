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

func TestL2TPDWrite(t *testing.T) {
	dir := t.TempDir()
	if _, err := (L2TPD{Name: "a b", Bin: "/x"}).Write(dir); err == nil {
		t.Error("a name with a space was accepted")
	}
	if _, err := (L2TPD{Name: "lns"}).Write(dir); err == nil {
		t.Error("an instance without a binary was accepted")
	}
	f, err := L2TPD{Name: "lns", Bin: "/bin/l2tpd", Config: "dataplane = \"kernel\"\n"}.Write(dir)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(f.Conf); err != nil || string(b) != "dataplane = \"kernel\"\n" {
		t.Errorf("config file: %q, %v", b, err)
	}
	start := f.Start("ns1")
	for _, want := range []string{"ip netns exec 'ns1' unshare -m", `mount --bind '\''/run/l2tpd-lns'\'' /run/l2tpd`, `--log-level '\''debug'\''`, "> '/run/l2tpd-lns.pid'"} {
		if !strings.Contains(start, want) {
			t.Errorf("Start lacks %q:\n%s", want, start)
		}
	}
	if !strings.Contains(f.Kill(), "kill -KILL") || !strings.Contains(f.Stop(), "kill -TERM") {
		t.Errorf("Stop/Kill: %q %q", f.Stop(), f.Kill())
	}
}

// The shell WaitLog and CountLog produce, run by bash on the host against a
// log file: quoting of patterns with quotes and regexp metacharacters.
func TestL2TPDWaitLogShell(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	dir := t.TempDir()
	f, err := L2TPD{Name: "d", Bin: "/x"}.Write(dir)
	if err != nil {
		t.Fatal(err)
	}
	log := "a subscriber up {\"user\": \"alice\"}\nb subscriber up {\"user\": \"bob\"}\nother\n"
	if err := os.WriteFile(f.Log, []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(script string) (string, error) {
		out, err := exec.Command(bash, "-c", ShellLib+"fail() { echo \"FAIL: $*\"; exit 1; }\n"+script).CombinedOutput()
		return string(out), err
	}
	if out, err := run(f.WaitLog(1, 2, `subscriber up.*"user": "(alice|bob)"`) + "echo done\n"); err != nil || !strings.Contains(out, "done") {
		t.Errorf("WaitLog for 2 present lines: %v\n%s", err, out)
	}
	out, err := run(f.WaitLog(1, 3, `subscriber up`) + "echo done\n")
	if err == nil || !strings.Contains(out, "FAIL: d: fewer than 3 log lines match subscriber up") {
		t.Errorf("WaitLog for 3 of 2 lines did not fail: %v\n%s", err, out)
	}
	if out, err := run("echo n=" + f.CountLog(`"user": "bob"`)); err != nil || strings.TrimSpace(out) != "n=1" {
		t.Errorf("CountLog: %q, %v", out, err)
	}
}

// Stop on a process that ignores SIGTERM: the script reports where it is
// (stuck_report), sends SIGQUIT, and fails naming the daemon. A process
// that exits is reported with the time it took.
func TestL2TPDStopStuck(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	dir := t.TempDir()
	f, err := L2TPD{Name: "d", Bin: "/x", ExitWait: 1}.Write(dir)
	if err != nil {
		t.Fatal(err)
	}
	f.PIDFile = filepath.Join(dir, "d.pid")
	quitMark, ready := filepath.Join(dir, "quit"), filepath.Join(dir, "ready")
	run := func(child string) string {
		// The child says it is ready (its traps set) by creating ready;
		// only then does the script stop it.
		os.Remove(ready)
		script := ShellLib + "fail() { echo \"FAIL: $*\"; exit 1; }\n" + child + " &\necho $! > " + shq(f.PIDFile) +
			"\nwait_for 10 test -e " + shq(ready) + " || fail 'the child never got ready'\n" + f.Stop() + "echo passed\n"
		cmd := exec.Command(bash, "-c", script)
		cmd.WaitDelay = 10 * time.Second // a child left running must not hang the test
		out, _ := cmd.CombinedOutput()
		if b, err := os.ReadFile(f.PIDFile); err == nil {
			exec.Command("kill", "-KILL", strings.TrimSpace(string(b))).Run()
		}
		return string(out)
	}
	// A background job of a script starts with SIGQUIT ignored, which
	// bash cannot trap; env gives it back its default first (the Go
	// runtime installs its handler either way).
	// This child ignores TERM; on QUIT it leaves a mark and exits.
	out := run("env --default-signal=QUIT bash -c 'trap \"\" TERM; trap \"touch " + quitMark + "; exit 0\" QUIT; touch " + ready + "; while :; do sleep 0.1; done'")
	for _, want := range []string{"----- d (pid ", "threads by state", "FAIL: l2tpd d did not exit within 1 s of SIGTERM"} {
		if !strings.Contains(out, want) {
			t.Errorf("stuck: output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "passed") {
		t.Errorf("the script went on after a daemon that did not stop:\n%s", out)
	}
	if _, err := os.Stat(quitMark); err != nil {
		t.Errorf("no SIGQUIT reached the stuck process: %v", err)
	}
	out = run("sh -c 'touch " + ready + "; exec sleep 30'")
	if !regexp.MustCompile(`l2tpd d exited [01] s after SIGTERM\npassed`).MatchString(out) {
		t.Errorf("a process that exits on SIGTERM:\n%s", out)
	}
}
