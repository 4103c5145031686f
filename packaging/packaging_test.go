// Package packaging holds the systemd unit, modules-load.d file, nFPM
// definition and man pages; its test builds the .deb and .rpm, installs the
// .deb on this machine, checks it, and removes it.
package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// NFPM is the pinned nFPM the Makefile and this test run.
const NFPM = "github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.43.0"

func require(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("L2TPD_REQUIRE_INTEGRATION") == "1" {
		t.Fatalf("cannot run the packaging test: %s", why)
	}
	t.Skipf("skipping the packaging test: %s (L2TPD_REQUIRE_INTEGRATION=1 makes this a failure)", why)
}

func run(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestUnitFile(t *testing.T) {
	b, err := os.ReadFile("l2tpd.service")
	if err != nil {
		t.Fatal(err)
	}
	unit := string(b)
	for _, want := range []string{
		"After=network-online.target", "LimitNOFILE=400000",
		"CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_BIND_SERVICE\n",
		"AmbientCapabilities=CAP_NET_ADMIN CAP_NET_BIND_SERVICE\n",
		"ProtectSystem=strict", "RuntimeDirectory=l2tpd", "StateDirectory=l2tpd",
		"ExecStart=/usr/sbin/l2tpd --config /etc/l2tpd/l2tpd.toml", "ExecReload=/bin/kill -HUP $MAINPID",
	} {
		if !strings.Contains(unit, want) {
			t.Errorf("the unit lacks %q", want)
		}
	}
	if strings.Contains(unit, "CAP_NET_RAW") && !strings.Contains(unit, "No CAP_NET_RAW") {
		t.Error("the unit grants CAP_NET_RAW, which l2tpd does not need")
	}
	// LimitNOFILE covers 3 fds per session at the largest supported scale.
	if 3*100_000+65_535 > 400_000 {
		t.Error("LimitNOFILE too small for 100,000 sessions")
	}
}

func TestDebAndRPM(t *testing.T) {
	if os.Geteuid() != 0 {
		require(t, "needs root to install the .deb")
	}
	for _, tool := range []string{"dpkg", "rpm", "systemd-analyze", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			require(t, tool+" is not installed")
		}
	}
	if out, err := exec.Command("dpkg-query", "-W", "-f=${Status}", "l2tpd").Output(); err == nil && strings.Contains(string(out), "install ok installed") {
		require(t, "an l2tpd package is already installed on this machine; not touching it")
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	// nfpm.yaml names bin/ and packaging/ relative to the working
	// directory: stage them so the repository's bin/ is left alone.
	stage := filepath.Join(tmp, "stage")
	os.MkdirAll(stage, 0o755)
	if err := os.Symlink(filepath.Join(root, "packaging"), filepath.Join(stage, "packaging")); err != nil {
		t.Fatal(err)
	}
	run(t, root, nil, "go", "build", "-o", filepath.Join(stage, "bin")+"/", "./cmd/l2tpd", "./cmd/l2tpctl")
	env := []string{"VERSION=0.0.0~test"}
	run(t, stage, env, "go", "run", NFPM, "package", "-f", "packaging/nfpm.yaml", "-p", "deb", "-t", tmp+"/")
	run(t, stage, env, "go", "run", NFPM, "package", "-f", "packaging/nfpm.yaml", "-p", "rpm", "-t", tmp+"/")
	debs, _ := filepath.Glob(filepath.Join(tmp, "*.deb"))
	rpms, _ := filepath.Glob(filepath.Join(tmp, "*.rpm"))
	if len(debs) != 1 || len(rpms) != 1 {
		t.Fatalf("packages built: %v %v", debs, rpms)
	}

	files := []string{"/usr/sbin/l2tpd", "/usr/bin/l2tpctl", "/usr/lib/systemd/system/l2tpd.service",
		"/usr/lib/modules-load.d/l2tpd.conf", "/etc/l2tpd/l2tpd.toml", "/usr/share/man/man8/l2tpd.8",
		"/usr/share/man/man8/l2tpctl.8", "/usr/share/man/man5/l2tpd.toml.5"}

	// The rpm lists the same files, the config marked as such.
	list := run(t, tmp, nil, "rpm", "-qlp", rpms[0])
	for _, f := range files {
		if !strings.Contains(list, f+"\n") {
			t.Errorf("rpm -qlp lacks %s:\n%s", f, list)
		}
	}
	if cfg := run(t, tmp, nil, "rpm", "-qcp", rpms[0]); !strings.Contains(cfg, "/etc/l2tpd/l2tpd.toml") {
		t.Errorf("rpm config files: %s", cfg)
	}
	if conf := run(t, tmp, nil, "dpkg-deb", "-f", debs[0], "Package"); strings.TrimSpace(conf) != "l2tpd" {
		t.Errorf("deb package name %q", conf)
	}
	if cf := run(t, tmp, nil, "dpkg-deb", "--ctrl-tarfile", debs[0]); cf == "" {
		t.Error("empty control archive")
	}

	run(t, tmp, nil, "dpkg", "-i", debs[0])
	t.Cleanup(func() {
		if out, err := exec.Command("dpkg", "-P", "l2tpd").CombinedOutput(); err != nil {
			t.Errorf("dpkg -P l2tpd: %v\n%s", err, out)
		}
		if _, err := os.Stat("/usr/sbin/l2tpd"); err == nil {
			t.Error("/usr/sbin/l2tpd is still there after dpkg -P")
		}
	})
	for _, f := range files {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("installed file: %v", err)
		}
	}
	if conff := run(t, tmp, nil, "dpkg-query", "-W", "-f=${Conffiles}", "l2tpd"); !strings.Contains(conff, "/etc/l2tpd/l2tpd.toml") {
		t.Errorf("the config is not a conffile: %q", conff)
	}
	// The unit's ExecStart binary and config are where the package put them.
	out := run(t, tmp, nil, "/usr/sbin/l2tpd", "--check-config", "--config", "/etc/l2tpd/l2tpd.toml")
	if !strings.Contains(out, "[l2tp]") {
		t.Errorf("--check-config printed no resolved config:\n%s", out)
	}
	run(t, tmp, nil, "systemd-analyze", "verify", "/usr/lib/systemd/system/l2tpd.service")
	if out := run(t, tmp, nil, "/usr/bin/l2tpctl", "--help"); !strings.Contains(out, "show sessions") {
		t.Errorf("l2tpctl --help: %s", out)
	}
}
