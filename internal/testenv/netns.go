package testenv

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// netnsDir is where `ip netns add` bind-mounts named namespaces.
const netnsDir = "/var/run/netns"

// seq makes names unique within this test binary; the pid makes them unique
// across test binaries running in parallel.
var seq atomic.Uint64

// Netns is a named network namespace created for one test.
type Netns struct {
	Name string // the name `ip netns` knows it by
	ifs  atomic.Uint32
}

// NewNetns creates a network namespace with loopback up and deletes it when
// the test ends. name is a hint for humans; the real name is made unique
// (for example "l2td-lns-4711-3").
func NewNetns(t testing.TB, name string) *Netns {
	t.Helper()
	Require(t, "ip")
	ns := &Netns{Name: fmt.Sprintf("l2td-%s-%d-%d", sanitize(name), os.Getpid(), seq.Add(1))}
	if out, err := exec.Command(tool("ip"), "netns", "add", ns.Name).CombinedOutput(); err != nil {
		t.Fatalf("testenv: ip netns add %s: %v: %s", ns.Name, err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() {
		if out, err := exec.Command(tool("ip"), "netns", "del", ns.Name).CombinedOutput(); err != nil {
			t.Errorf("testenv: ip netns del %s: %v: %s", ns.Name, err, bytes.TrimSpace(out))
		}
	})
	ns.Exec(t, "ip", "link", "set", "lo", "up")
	return ns
}

// sanitize keeps a name hint short and made of safe characters.
func sanitize(s string) string {
	var b strings.Builder
	for _, r := range s {
		if b.Len() >= 16 {
			break
		}
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	if b.Len() == 0 {
		return "ns"
	}
	return b.String()
}

// Path is the namespace's bind mount, usable with setns(2).
func (ns *Netns) Path() string { return filepath.Join(netnsDir, ns.Name) }

// String returns the namespace's name.
func (ns *Netns) String() string { return ns.Name }

// Command returns a command that runs name inside the namespace (through
// `ip netns exec`, which execs the program in place: the Cmd's process is
// the program itself, so signals reach it directly).
func (ns *Netns) Command(name string, args ...string) *exec.Cmd {
	return exec.Command(tool("ip"), ns.commandArgs(name, args)...)
}

// CommandContext is Command with a context that kills the process.
func (ns *Netns) CommandContext(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, tool("ip"), ns.commandArgs(name, args)...)
}

func (ns *Netns) commandArgs(name string, args []string) []string {
	return append([]string{"netns", "exec", ns.Name, tool(name)}, args...)
}

// Run runs a command inside the namespace and returns its combined output.
// The error says which command failed, where, and what it printed.
func (ns *Netns) Run(name string, args ...string) (string, error) {
	out, err := ns.Command(name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("testenv: in netns %s: %s %s: %w: %s",
			ns.Name, name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

// Exec runs a command inside the namespace, fails the test if it fails and
// returns its combined output.
func (ns *Netns) Exec(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := ns.Run(name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Do runs fn on an OS thread switched into the namespace, so that sockets
// fn opens belong to it. Caveats:
//   - A socket keeps the namespace it was created in: a UDP or TCP socket
//     opened inside fn can be used from any goroutine after Do returns.
//   - Only the calling thread is switched. Goroutines started inside fn run
//     on other threads in the test's own namespace; so does anything that
//     hands work to another goroutine (for example the Go resolver: use
//     literal addresses).
//   - The thread is never switched back: Do locks it and lets it exit with
//     the goroutine, so no other goroutine ever runs in the wrong namespace.
func (ns *Netns) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		// No UnlockOSThread: the runtime terminates a thread whose goroutine
		// exits while locked, which is what a half-switched thread needs.
		runtime.LockOSThread()
		fd, err := unix.Open(ns.Path(), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- fmt.Errorf("testenv: open netns %s: %w", ns.Name, err)
			return
		}
		err = unix.Setns(fd, unix.CLONE_NEWNET)
		unix.Close(fd)
		if err != nil {
			errc <- fmt.Errorf("testenv: setns into %s: %w", ns.Name, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// Veth is a veth pair joining two namespaces.
type Veth struct {
	A, B         *Netns
	IfA, IfB     string // interface names, unique within each namespace
	AddrA, AddrB netip.Prefix
}

// ConnectVeth joins a and b with a veth pair, assigns addrA in a and addrB in
// b (either may be the zero Prefix for none; IPv4 and IPv6 both work, IPv6
// without duplicate address detection so the address is usable at once),
// brings both ends up and waits until both report carrier. More addresses
// can be added with AddAddr.
func ConnectVeth(t testing.TB, a, b *Netns, addrA, addrB netip.Prefix) *Veth {
	t.Helper()
	v := &Veth{
		A: a, B: b,
		IfA:   fmt.Sprintf("veth%d", a.ifs.Add(1)-1),
		IfB:   fmt.Sprintf("veth%d", b.ifs.Add(1)-1),
		AddrA: addrA, AddrB: addrB,
	}
	// Created inside a with the peer placed straight into b: names never
	// exist in the host namespace, so parallel tests cannot collide.
	a.Exec(t, "ip", "link", "add", v.IfA, "type", "veth", "peer", "name", v.IfB, "netns", b.Name)
	for _, end := range []struct {
		ns   *Netns
		ifc  string
		addr netip.Prefix
	}{{a, v.IfA, addrA}, {b, v.IfB, addrB}} {
		if end.addr.IsValid() {
			end.ns.AddAddr(t, end.ifc, end.addr)
		}
		end.ns.Exec(t, "ip", "link", "set", end.ifc, "up")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, end := range []struct {
		ns  *Netns
		ifc string
	}{{a, v.IfA}, {b, v.IfB}} {
		if err := end.ns.waitOperUp(ctx, end.ifc); err != nil {
			t.Fatal(err)
		}
	}
	return v
}

// AddAddr adds an address to an interface in the namespace; IPv6 addresses
// are added with nodad.
func (ns *Netns) AddAddr(t testing.TB, ifname string, p netip.Prefix) {
	t.Helper()
	args := []string{"addr", "add", p.String(), "dev", ifname}
	if p.Addr().Is6() {
		args = append(args, "nodad")
	}
	ns.Exec(t, "ip", args...)
}

// waitOperUp polls the interface's operational state until it is UP. The
// kernel reports carrier asynchronously (linkwatch); there is no cheaper
// event to wait on from outside the namespace, and the wait is bounded.
func (ns *Netns) waitOperUp(ctx context.Context, ifname string) error {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	var last string
	for {
		out, err := ns.Run("ip", "-j", "link", "show", "dev", ifname)
		if err != nil {
			return err
		}
		var links []struct {
			OperState string `json:"operstate"`
		}
		if err := json.Unmarshal([]byte(out), &links); err != nil {
			return fmt.Errorf("testenv: parse `ip -j link show %s` in %s: %w", ifname, ns.Name, err)
		}
		if len(links) == 1 {
			last = links[0].OperState
			if last == "UP" {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("testenv: %s in netns %s not up (operstate %q): %w", ifname, ns.Name, last, ctx.Err())
		case <-tick.C:
		}
	}
}

// errNoMatch is returned by helpers that scan text and find nothing.
var errNoMatch = errors.New("testenv: no match")
