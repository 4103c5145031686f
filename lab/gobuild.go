package lab

import (
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"
)

// GoBuild builds the Go package pkg (a path relative to the module root,
// such as "./cmd/l2tpd") into dir/bin/ and returns the binary's path, for a
// lab script to run: put dir = the run's Options.Dir, since the VM hides the
// host's /tmp (where `go test` keeps its binaries). It fails t on error.
func GoBuild(t testing.TB, dir, pkg string) string {
	t.Helper()
	p, err := goBuild(dir, pkg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func goBuild(dir, pkg string) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", fmt.Errorf("go build %s: %w", pkg, err)
	}
	out := filepath.Join(dir, "bin", path.Base(strings.TrimSuffix(pkg, "/...")))
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("lab: go build %s: %w\n%s", pkg, err, b)
	}
	return out, nil
}

// GoTestBuild compiles the tests of package pkg (`go test -c`, with the
// race detector when race is set) into dir/bin/<name>.test and returns the
// binary's path, for a lab script to run (for example with
// L2TPD_KERNEL_TESTS=1 and -test.v). It fails t on error.
func GoTestBuild(t testing.TB, dir, pkg string, race bool) string {
	t.Helper()
	p, err := goTestBuild(dir, pkg, race)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func goTestBuild(dir, pkg string, race bool) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", fmt.Errorf("go test -c %s: %w", pkg, err)
	}
	out := filepath.Join(dir, "bin", path.Base(strings.TrimSuffix(pkg, "/..."))+".test")
	args := []string{"test", "-c", "-o", out}
	env := os.Environ()
	if race {
		// The race detector needs cgo; the binary links the host's libc,
		// which the VM shares.
		args = append(args, "-race")
		env = append(env, "CGO_ENABLED=1")
	} else {
		env = append(env, "CGO_ENABLED=0")
	}
	cmd := exec.Command("go", append(args, pkg)...)
	cmd.Dir = root
	cmd.Env = env
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("lab: go test -c %s: %w\n%s", pkg, err, b)
	}
	return out, nil
}
