package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// EnvRequireIntegration names the environment variable that turns the skips
// of Require into failures when set to "1".
const EnvRequireIntegration = "L2TPD_REQUIRE_INTEGRATION"

// Require checks that the test runs as root with every named program on PATH
// (for example "ip", "nft", "xl2tpd", "pppd", "dumpcap"). When something is
// missing the test is skipped with the reason, or failed with it when
// L2TPD_REQUIRE_INTEGRATION=1.
func Require(t testing.TB, tools ...string) {
	t.Helper()
	if reason := missing(tools); reason != "" {
		if os.Getenv(EnvRequireIntegration) == "1" {
			t.Fatalf("integration environment incomplete (%s=1): %s", EnvRequireIntegration, reason)
		}
		t.Skipf("skipping integration test: %s (set %s=1 to fail instead)", reason, EnvRequireIntegration)
	}
}

// missing returns why the environment cannot run the test, or "".
func missing(tools []string) string {
	var reasons []string
	if os.Geteuid() != 0 {
		reasons = append(reasons, fmt.Sprintf("not root (euid %d)", os.Geteuid()))
	}
	var absent []string
	for _, tool := range tools {
		if _, err := toolPath(tool); err != nil {
			absent = append(absent, tool)
		}
	}
	if len(absent) > 0 {
		reasons = append(reasons, "not on PATH: "+strings.Join(absent, ", "))
	}
	return strings.Join(reasons, "; ")
}

// sbinDirs are searched after PATH: root's tools live there and a test
// runner's PATH does not always include them.
var sbinDirs = []string{"/usr/sbin", "/sbin", "/usr/bin", "/bin"}

// toolPath resolves a program name on PATH, then in sbinDirs.
func toolPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	if strings.ContainsRune(name, '/') {
		return "", fmt.Errorf("testenv: %s not found", name)
	}
	for _, dir := range sbinDirs {
		p := dir + "/" + name
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("testenv: %s not found on PATH or in %v", name, sbinDirs)
}

// tool is toolPath for programs whose presence Require already checked; it
// falls back to the bare name so the error surfaces when it is run.
func tool(name string) string {
	if p, err := toolPath(name); err == nil {
		return p
	}
	return name
}
