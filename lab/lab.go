// Package lab runs shell scripts as root inside a real Linux kernel: Debian's
// linux-image-amd64 booted under qemu-system-x86_64 (TCG), with the host's
// whole root file system as the VM's root (9p, read-only, under an overlay
// with a tmpfs upper layer). Every host binary (our build, xl2tpd, pppd,
// freeradius, iproute2, tshark) therefore works inside, against a kernel
// that has L2TP, PPP and netem, which the host kernel lacks.
//
// One call of Run is one VM boot (about 5-8 s plus the script; TCG runs code
// 15-20 times slower than the host), so put a whole scenario in one script.
//
// Inside the VM:
//   - the script runs as root with bash, cwd $LAB_DIR, stdin /dev/null;
//   - $LAB_DIR is a host directory (Options.Dir, default t.TempDir()) shared
//     read-write at the same absolute path, so the script writes logs and
//     pcaps there and the test reads them afterwards;
//   - /tmp, /run and /dev/shm are fresh tmpfs (the host's /tmp is hidden, so
//     put binaries the script needs in $LAB_DIR or elsewhere on the host);
//     /etc and the rest are writable but changes stay in the VM;
//   - the modules in DefaultModules (plus Options.Modules) are loaded;
//   - there is no network interface but lo: build topologies with ip netns
//     and veth.
//
// Tests that need the lab call Require, which skips when Available reports
// a problem unless L2TPD_REQUIRE_INTEGRATION=1 is set (then it fails).
package lab

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// DefaultModules are loaded (modprobe -a) before every script.
var DefaultModules = []string{
	"l2tp_ppp", "l2tp_netlink", "l2tp_eth", "l2tp_ip", "l2tp_ip6",
	"ppp_generic", "ppp_async", "pppoe", "sch_netem", "veth",
}

// EnvRequire is the environment variable that turns a skip for a missing lab
// into a failure.
const EnvRequire = "L2TPD_REQUIRE_INTEGRATION"

// Options configures one VM run. The zero value is usable.
type Options struct {
	// Dir is the host directory shared read-write with the VM, mounted at
	// the same path inside; the script's $LAB_DIR and cwd. Run defaults it
	// to t.TempDir(). The lab keeps its own files in Dir/.lab/ (script.sh,
	// console.log, dmesg.txt, exit). The path must not contain white space.
	Dir string
	// Timeout bounds the whole run, boot included (default 5 minutes; Run
	// also stops 15 s before the test's deadline). qemu is killed on expiry.
	Timeout time.Duration
	// MemoryMiB is the VM's memory (default 1536).
	MemoryMiB int
	// CPUs is the number of vCPUs (default 2).
	CPUs int
	// Kernel is the kernel image (default: newest /boot/vmlinuz-*). Its
	// modules must be in /lib/modules/<version>.
	Kernel string
	// Modules are loaded in addition to DefaultModules.
	Modules []string
	// Log receives each console line as it arrives (Run defaults it to
	// t.Log unless Quiet).
	Log func(line string)
	// Quiet stops Run from streaming console lines to the test log.
	Quiet bool
	// Stdin, when set, is connected to the VM's console and becomes the
	// script's stdin (for an interactive shell).
	Stdin io.Reader
	// BootTimeout bounds the boot, qemu start until the script starts
	// (default 2 minutes; a boot takes 5-8 s, several times that on a
	// loaded machine). A VM that has not started the script by then is
	// killed and booted once more, within Timeout: now and then a boot
	// hangs before the script starts, and nothing of the script has run.
	BootTimeout time.Duration

	// hangBoots: the first hangBoots boots hang in /init (tests of the
	// boot watchdog).
	hangBoots int
}

// Result is the outcome of a run whose script started.
type Result struct {
	ExitCode int           // the script's exit status
	Output   string        // console lines printed by the script (CR stripped)
	Console  string        // the whole console, boot included
	Boot     time.Duration // qemu start until the script started
	Total    time.Duration // qemu start until qemu exited
	Dir      string        // Options.Dir
	Boots    int           // VM boots: 2 when the first hung (Options.BootTimeout)
}

// ErrUnavailable wraps every reason Available gives.
var ErrUnavailable = errors.New("lab unavailable")

// Available reports why the lab cannot run here (nil when it can).
func Available() error {
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		return fmt.Errorf("%w: qemu-system-x86_64 not found (Debian qemu-system-x86): %v", ErrUnavailable, err)
	}
	if _, err := os.Stat(busyboxPath); err != nil {
		return fmt.Errorf("%w: %s missing (Debian busybox-static): %v", ErrUnavailable, busyboxPath, err)
	}
	if _, err := exec.LookPath("modprobe"); err != nil {
		return fmt.Errorf("%w: modprobe not found (Debian kmod): %v", ErrUnavailable, err)
	}
	k, err := defaultKernel()
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join("/lib/modules", kernelVersion(k), "modules.dep")); err != nil {
		return fmt.Errorf("%w: modules for kernel %s: %v", ErrUnavailable, k, err)
	}
	return nil
}

// Require skips t when the lab is unavailable, or fails it when
// L2TPD_REQUIRE_INTEGRATION=1.
func Require(t testing.TB) {
	t.Helper()
	if err := Available(); err != nil {
		if os.Getenv(EnvRequire) == "1" {
			t.Fatalf("%s=1 but: %v", EnvRequire, err)
		}
		t.Skip(err)
	}
}

func defaultKernel() (string, error) {
	if k := os.Getenv("L2TPD_LAB_KERNEL"); k != "" {
		return k, nil
	}
	ks, _ := filepath.Glob("/boot/vmlinuz-*")
	if len(ks) == 0 {
		return "", fmt.Errorf("%w: no /boot/vmlinuz-* (Debian linux-image-amd64)", ErrUnavailable)
	}
	sort.Slice(ks, func(i, j int) bool { return versionLess(kernelVersion(ks[i]), kernelVersion(ks[j])) })
	return ks[len(ks)-1], nil
}

// kernelVersion gives "6.1.0-56-amd64" for "/boot/vmlinuz-6.1.0-56-amd64".
func kernelVersion(image string) string {
	return strings.TrimPrefix(filepath.Base(image), "vmlinuz-")
}

var numRE = regexp.MustCompile(`\d+|\D+`)

// versionLess compares version strings numerically where both have digits.
func versionLess(a, b string) bool {
	pa, pb := numRE.FindAllString(a, -1), numRE.FindAllString(b, -1)
	for i := 0; i < len(pa) && i < len(pb); i++ {
		if pa[i] == pb[i] {
			continue
		}
		na, ea := strconv.Atoi(pa[i])
		nb, eb := strconv.Atoi(pb[i])
		if ea == nil && eb == nil {
			return na < nb
		}
		return pa[i] < pb[i]
	}
	return len(pa) < len(pb)
}

// CacheDir is where the initramfs and failure logs are kept:
// $L2TPD_LAB_CACHE, else build/lab under the module root (found from the
// working directory), else $XDG_CACHE_HOME/l2tpd-lab.
func CacheDir() (string, error) {
	dir := os.Getenv("L2TPD_LAB_CACHE")
	if dir == "" {
		if root, err := moduleRoot(); err == nil {
			dir = filepath.Join(root, "build", "lab")
		}
	}
	if dir == "" {
		uc, err := os.UserCacheDir()
		if err != nil {
			return "", fmt.Errorf("lab cache dir: %w", err)
		}
		dir = filepath.Join(uc, "l2tpd-lab")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("lab cache dir: %w", err)
	}
	return dir, nil
}

func moduleRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("lab: working directory: %w", err)
	}
	for d := wd; ; d = filepath.Dir(d) {
		b, err := os.ReadFile(filepath.Join(d, "go.mod"))
		switch {
		case err == nil:
			if bytes.Contains(b, []byte("module github.com/l2tpd/l2tpd\n")) {
				return d, nil
			}
			return "", fmt.Errorf("lab: %s/go.mod is not the github.com/l2tpd/l2tpd module", d)
		case !errors.Is(err, fs.ErrNotExist):
			return "", fmt.Errorf("lab: looking for go.mod: %w", err)
		}
		if d == filepath.Dir(d) {
			return "", fmt.Errorf("lab: %s is not inside the github.com/l2tpd/l2tpd module", wd)
		}
	}
}

// Run boots the VM, runs script (bash) in it and returns when the VM has
// powered off. The error is non-nil when the VM did not run the script to
// its end (boot failure, modprobe failure, timeout, qemu error); a script
// that fails is not an error: look at Result.ExitCode. On any failure the
// console log is copied to CacheDir()/logs and its path logged.
func Run(t testing.TB, opts Options, script string) (Result, error) {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	if opts.Log == nil && !opts.Quiet {
		opts.Log = func(line string) { t.Log(line) }
	}
	ctx := context.Background()
	if d, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		if dl, ok := d.Deadline(); ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, dl.Add(-15*time.Second))
			defer cancel()
		}
	}
	res, err := Exec(ctx, opts, script)
	if err != nil || res.ExitCode != 0 {
		if p, kerr := keepLog(t.Name(), opts.Dir); kerr == nil {
			t.Logf("lab: console log kept in %s", p)
		} else {
			t.Logf("lab: could not keep console log: %v", kerr)
		}
	}
	if res.Boots > 1 {
		t.Logf("lab: booted %d times: the first boot hung (console log: %s)", res.Boots, filepath.Join(opts.Dir, ".lab", "console.log"))
	}
	t.Logf("lab: boot %v, total %v, exit %d", res.Boot.Round(time.Millisecond), res.Total.Round(time.Millisecond), res.ExitCode)
	return res, err
}

// MustRun is Run that fails the test unless the script exits 0.
func MustRun(t testing.TB, opts Options, script string) Result {
	t.Helper()
	res, err := Run(t, opts, script)
	if err != nil {
		t.Fatalf("lab: %v", err)
	}
	if res.ExitCode != 0 {
		t.Fatalf("lab: script exited %d", res.ExitCode)
	}
	return res
}

func keepLog(name, dir string) (string, error) {
	cache, err := CacheDir()
	if err != nil {
		return "", err
	}
	logs := filepath.Join(cache, "logs")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		return "", err
	}
	b, err := os.ReadFile(filepath.Join(dir, ".lab", "console.log"))
	if err != nil {
		return "", err
	}
	safe := strings.Map(func(r rune) rune {
		if r == '/' || r == ' ' || r == os.PathSeparator {
			return '_'
		}
		return r
	}, name)
	p := filepath.Join(logs, safe+"-"+time.Now().Format("20060102-150405")+".log")
	if d, err := os.ReadFile(filepath.Join(dir, ".lab", "dmesg.txt")); err == nil {
		b = append(append(b, "\n---- dmesg ----\n"...), d...)
	}
	return p, os.WriteFile(p, b, 0o644)
}

// Exec is Run without a testing.TB: opts.Dir must be set; lines go to
// opts.Log if set. ctx cancels the run (qemu is killed).
func Exec(ctx context.Context, opts Options, script string) (Result, error) {
	res := Result{Dir: opts.Dir}
	if err := Available(); err != nil {
		return res, err
	}
	if opts.Dir == "" {
		return res, errors.New("lab: Options.Dir is required")
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return res, fmt.Errorf("lab: dir %q: %w", opts.Dir, err)
	}
	if strings.ContainsAny(dir, " \t\n\"'\\,") {
		return res, fmt.Errorf("lab: dir %q: white space, quotes, backslashes and commas are not allowed", dir)
	}
	res.Dir = dir
	kernel := opts.Kernel
	if kernel == "" {
		if kernel, err = defaultKernel(); err != nil {
			return res, err
		}
	}
	initrd, err := Initramfs(kernelVersion(kernel))
	if err != nil {
		return res, err
	}
	mods := append(append([]string(nil), DefaultModules...), opts.Modules...)
	for _, m := range mods {
		if m == "" || strings.ContainsAny(m, " ,\t\n") {
			return res, fmt.Errorf("lab: bad module name %q", m)
		}
	}
	labDir := filepath.Join(dir, ".lab")
	if err := os.MkdirAll(labDir, 0o755); err != nil {
		return res, fmt.Errorf("lab: %w", err)
	}
	for _, f := range []string{"exit", "dmesg.txt"} {
		os.Remove(filepath.Join(labDir, f))
	}
	if err := os.WriteFile(filepath.Join(labDir, "script.sh"), []byte(script), 0o755); err != nil {
		return res, fmt.Errorf("lab: write script: %w", err)
	}
	consoleFile, err := os.Create(filepath.Join(labDir, "console.log"))
	if err != nil {
		return res, fmt.Errorf("lab: %w", err)
	}
	defer consoleFile.Close()

	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	bootTimeout := opts.BootTimeout
	if bootTimeout <= 0 {
		bootTimeout = 2 * time.Minute
	}
	for n := 1; ; n++ {
		r, hung, err := boot(ctx, opts, vm{dir: dir, kernel: kernel, initrd: initrd, mods: mods, labDir: labDir,
			console: consoleFile, bootTimeout: bootTimeout, hang: n <= opts.hangBoots})
		r.Dir, r.Boots = dir, n
		if !hung || n == 2 || ctx.Err() != nil {
			return r, err
		}
		note := err.Error() + "; qemu killed, booting once more"
		consoleFile.WriteString(note + "\n")
		if opts.Log != nil {
			opts.Log(note)
		}
	}
}

// vm is what one boot of Exec needs.
type vm struct {
	dir, kernel, initrd, labDir string
	mods                        []string
	console                     *os.File
	bootTimeout                 time.Duration
	hang                        bool // hang in /init (Options.hangBoots)
}

// boot runs qemu once. hung reports a boot that did not reach the script
// within v.bootTimeout (qemu was killed; nothing of the script ran).
func boot(ctx context.Context, opts Options, v vm) (res Result, hung bool, err error) {
	dir, labDir, mods, consoleFile := v.dir, v.labDir, v.mods, v.console
	nb := make([]byte, 8)
	if _, err := rand.Read(nb); err != nil {
		return res, false, fmt.Errorf("lab: nonce: %w", err)
	}
	nonce := hex.EncodeToString(nb)
	mem, cpus := opts.MemoryMiB, opts.CPUs
	if mem <= 0 {
		mem = 1536
	}
	if cpus <= 0 {
		cpus = 2
	}
	appendLine := []string{
		"console=ttyS0", "quiet", "loglevel=1", "panic=-1", "oops=panic",
		"lab.nonce=" + nonce, "lab.dir=" + dir, "lab.modules=" + strings.Join(mods, ","),
	}
	if opts.Stdin != nil {
		appendLine = append(appendLine, "lab.stdin=console")
	}
	if v.hang {
		appendLine = append(appendLine, "lab.hang=1")
	}
	args := qemuArgs(v.kernel, v.initrd, dir, mem, cpus, strings.Join(appendLine, " "))
	// vctx is this boot's: the boot watchdog cancels it alone.
	vctx, vcancel := context.WithCancel(ctx)
	defer vcancel()
	cmd := exec.CommandContext(vctx, "qemu-system-x86_64", args...)
	cmd.WaitDelay = 5 * time.Second
	started := make(chan struct{})
	var bootHung atomic.Bool
	go func() {
		t := time.NewTimer(v.bootTimeout)
		defer t.Stop()
		select {
		case <-started:
		case <-vctx.Done():
		case <-t.C:
			select {
			case <-started: // started as the timer fired: not hung
				return
			default:
			}
			bootHung.Store(true)
			vcancel()
		}
	}()
	if opts.Stdin != nil {
		// Hold input back until the script runs: bytes the serial port gets
		// while the VM boots are lost.
		pr, pw := io.Pipe()
		defer pr.Close()
		cmd.Stdin = pr
		go func() {
			select {
			case <-started:
				_, err := io.Copy(pw, opts.Stdin)
				pw.CloseWithError(err)
			case <-vctx.Done():
				pw.Close()
			}
		}()
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return res, false, fmt.Errorf("lab: %w", err)
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return res, false, fmt.Errorf("lab: start qemu: %w", err)
	}
	mk := "LAB:" + nonce + ":"
	var (
		console, output strings.Builder
		state           = stateBoot
		exitCode        = -1
		failure         string
		inInit          bool // the kernel ran our /init
		wg              sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			line := strings.TrimRight(sc.Text(), "\r")
			console.WriteString(line + "\n")
			consoleFile.WriteString(line + "\n")
			ev, arg := parseMarker(line, mk)
			switch ev {
			case markInit:
				inInit = true
				continue
			case markStart:
				if state != stateBoot {
					continue
				}
				state = stateScript
				res.Boot = time.Since(start)
				close(started)
				continue
			case markExit:
				if n, err := strconv.Atoi(arg); err == nil {
					exitCode = n
				}
				state = stateDone
				continue
			case markModprobe:
				failure = "modprobe " + strings.Join(mods, " ") + " failed with status " + arg
				continue
			case markInitFail:
				failure = "initramfs: " + arg
				continue
			}
			if state == stateScript {
				output.WriteString(line + "\n")
			}
			if opts.Log != nil && state != stateDone {
				opts.Log(line)
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	wg.Wait()
	werr := cmd.Wait()
	res.Total = time.Since(start)
	res.Console = console.String()
	res.Output = output.String()
	res.ExitCode = exitCode

	if exitCode < 0 && state == stateScript {
		// The console lost the marker (or the run was cut short): the file
		// written just before it is the second source.
		if b, err := os.ReadFile(filepath.Join(labDir, "exit")); err == nil {
			if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				exitCode, res.ExitCode = n, n
			}
		}
	}
	switch {
	case bootHung.Load() && state == stateBoot:
		// Only a boot whose script never started is booted again: a
		// script must not run twice.
		where := "the kernel never ran /init"
		if inInit {
			where = "/init ran but did not start the script"
		}
		return res, true, fmt.Errorf("lab: no boot within %v (%s)", v.bootTimeout, where)
	case bootHung.Load() && exitCode < 0:
		return res, false, fmt.Errorf("lab: the script started just as the boot watchdog (%v) killed qemu; run it again", v.bootTimeout)
	case ctx.Err() != nil && exitCode < 0:
		return res, false, fmt.Errorf("lab: timed out after %v (%s): %w", time.Since(start).Round(time.Second), state, ctx.Err())
	case failure != "":
		return res, false, fmt.Errorf("lab: %s", failure)
	case werr != nil && exitCode < 0:
		return res, false, fmt.Errorf("lab: qemu (%s): %w: %s", state, werr, strings.TrimSpace(stderr.String()))
	case exitCode < 0:
		return res, false, fmt.Errorf("lab: VM stopped without reporting the script's exit status (%s); qemu stderr: %s", state, strings.TrimSpace(stderr.String()))
	}
	return res, false, nil
}

func qemuArgs(kernel, initrd, dir string, mem, cpus int, cmdline string) []string {
	return []string{
		"-accel", "tcg", "-cpu", "max",
		"-m", strconv.Itoa(mem), "-smp", strconv.Itoa(cpus),
		"-nodefaults", "-no-user-config",
		"-display", "none", "-monitor", "none", "-serial", "stdio",
		"-no-reboot", "-nic", "none",
		"-kernel", kernel, "-initrd", initrd, "-append", cmdline,
		"-virtfs", "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap",
		"-virtfs", "local,path=" + dir + ",mount_tag=labdir,security_model=none,multidevs=remap",
	}
}

type runState int

const (
	stateBoot runState = iota
	stateScript
	stateDone
)

func (s runState) String() string {
	switch s {
	case stateBoot:
		return "booting"
	case stateScript:
		return "script running"
	case stateDone:
		return "script done"
	}
	return "runState(" + strconv.Itoa(int(s)) + ")"
}

type marker int

const (
	markNone marker = iota
	markStart
	markExit
	markModprobe
	markInitFail
	markInit
)

// parseMarker recognises the stage2/init marker lines. The marker may follow
// other text on the same console line (a kernel message, or script output
// without a trailing newline).
func parseMarker(line, prefix string) (marker, string) {
	i := strings.Index(line, prefix)
	if i < 0 {
		return markNone, ""
	}
	rest := line[i+len(prefix):]
	kind, arg, _ := strings.Cut(rest, ":")
	switch kind {
	case "start":
		return markStart, ""
	case "exit":
		return markExit, strings.TrimSpace(arg)
	case "modprobe-failed":
		return markModprobe, strings.TrimSpace(arg)
	case "initfail":
		return markInitFail, strings.TrimSpace(arg)
	case "init":
		return markInit, ""
	}
	return markNone, ""
}
