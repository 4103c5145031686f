package lab

import (
	"errors"
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
	root := moduleRoot()
	if root == "" {
		return "", errors.New("lab: go build: not inside the github.com/l2tpd/l2tpd module")
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
