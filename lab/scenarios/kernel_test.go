package scenarios

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/l2tpd/l2tpd/lab"
)

func requireVM(t *testing.T) {
	t.Helper()
	if testing.Short() && os.Getenv(lab.EnvRequire) != "1" {
		t.Skip("lab VM scenarios skipped with -short")
	}
	lab.Require(t)
}

// TestKernelPlane runs dataplane/kernel's root-only integration tests
// (built with -race) inside the VM with L2TPD_KERNEL_TESTS=1, then checks
// with iproute2 that they left no L2TP tunnel, session or ppp interface.
func TestKernelPlane(t *testing.T) {
	requireVM(t)
	dir := t.TempDir()
	bin := lab.GoTestBuild(t, dir, "./dataplane/kernel", true)
	script := `set -u
cd "$LAB_DIR"
L2TPD_KERNEL_TESTS=1 ` + bin + ` -test.v -test.count=1 -test.run 'Kernel|Integration' 2>&1
rc=$?
echo "kernel tests exit $rc"
echo "left tunnels: [$(ip l2tp show tunnel)]"
echo "left sessions: [$(ip l2tp show session)]"
echo "left ppp links: [$(ip -o link show type ppp)]"
exit $rc
`
	res := lab.MustRun(t, lab.Options{Dir: dir}, script)
	for _, want := range []string{"left tunnels: []", "left sessions: []", "left ppp links: []"} {
		if !strings.Contains(res.Output, want) {
			t.Errorf("kernel objects left behind: output lacks %q", want)
		}
	}
	if !regexp.MustCompile(`(?m)^--- PASS: TestKernel`).MatchString(res.Output) {
		t.Errorf("no kernel test passed (were they skipped?)")
	}
	if strings.Contains(res.Output, "--- SKIP") {
		t.Errorf("a kernel test skipped inside the VM")
	}
}
