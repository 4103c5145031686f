// Package e2e runs the real l2tpd binary (and real peers) in network
// namespaces on the host. Its tests need root, iproute2 and nftables; they
// skip without them unless L2TPD_REQUIRE_INTEGRATION=1.
package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/l2tpd/l2tpd/internal/testenv"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// repoRoot finds the module root from this file's location.
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Binary builds cmd/l2tpd once per test process and returns its path.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "l2tpd-e2e-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "l2tpd")
		cmd := exec.Command("go", "build", "-race", "-o", binPath, "./cmd/l2tpd")
		cmd.Dir = repoRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("building l2tpd: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// Daemon is a running l2tpd.
type Daemon struct {
	*testenv.Proc
	Config string // path of its config file
}

// StartDaemon writes config into a temporary file and runs l2tpd on it in
// ns (debug logging, console format).
func StartDaemon(t testing.TB, ns *testenv.Netns, name, config string) *Daemon {
	t.Helper()
	bin := Binary(t)
	dir := t.TempDir()
	path := filepath.Join(dir, name+".toml")
	if !regexp.MustCompile(`(?m)^\[api\]`).MatchString(config) {
		// Daemons of parallel tests must not share the default management
		// socket (/run/l2tpd/l2tpd.sock).
		config += fmt.Sprintf("\n[api]\nsocket = %q\n", filepath.Join(dir, "l2tpd.sock"))
	}
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	p := testenv.StartProc(t, ns, bin, "--config", path, "--log-level", "debug")
	p.Name = name
	return &Daemon{Proc: p, Config: path}
}

// Wait waits for a log line matching pattern.
func (d *Daemon) Wait(t testing.TB, timeout time.Duration, pattern string) testenv.Match {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	m, err := d.WaitFor(ctx, pattern)
	if err != nil {
		t.Fatalf("%s: %v", d.Name, err)
	}
	return m
}

// WaitN waits until n lines match pattern and returns them.
func (d *Daemon) WaitN(t testing.TB, timeout time.Duration, n int, pattern string) []testenv.Match {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var out []testenv.Match
	from := 0
	for len(out) < n {
		m, err := d.WaitForFrom(ctx, from, pattern)
		if err != nil {
			t.Fatalf("%s: got %d of %d lines: %v", d.Name, len(out), n, err)
		}
		out = append(out, m)
		from = m.Index + 1
	}
	return out
}

// Count returns how many log lines so far match pattern.
func (d *Daemon) Count(pattern string) int {
	n := 0
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	from := 0
	for {
		m, err := d.WaitForFrom(ctx, from, pattern)
		if err != nil {
			return n
		}
		n++
		from = m.Index + 1
	}
}
