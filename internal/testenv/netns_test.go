package testenv

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"
)

func TestNetnsVethPing(t *testing.T) {
	Require(t, "ip")
	t.Parallel()
	a, b := NewNetns(t, "a"), NewNetns(t, "b")
	v := ConnectVeth(t, a, b, netip.MustParsePrefix("10.201.0.1/24"), netip.MustParsePrefix("10.201.0.2/24"))
	a.AddAddr(t, v.IfA, netip.MustParsePrefix("fd00:201::1/64"))
	b.AddAddr(t, v.IfB, netip.MustParsePrefix("fd00:201::2/64"))

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, dst := range []string{"10.201.0.2", "fd00:201::2"} {
		if err := a.Ping(ctx, netip.MustParseAddr(dst)); err != nil {
			t.Errorf("ping %s: %v", dst, err)
		}
	}
	if err := b.Ping(ctx, netip.MustParseAddr("10.201.0.1")); err != nil {
		t.Errorf("ping back: %v", err)
	}

	// The ping binary, when the host has it (Debian iputils-ping), bounded.
	if _, err := toolPath("ping"); err == nil {
		for _, dst := range []string{"10.201.0.2", "fd00:201::2"} {
			a.Exec(t, "ping", "-c1", "-W1", dst)
		}
	} else {
		t.Log("no ping binary; checked with ICMP sockets only")
	}

	// A third namespace is isolated: no route, no reply.
	c := NewNetns(t, "c")
	short, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel2()
	if err := c.Ping(short, netip.MustParseAddr("10.201.0.2")); err == nil {
		t.Error("ping from an unconnected namespace succeeded")
	}
}

func TestNetnsDoSocketStaysInNamespace(t *testing.T) {
	Require(t, "ip")
	t.Parallel()
	a, b := NewNetns(t, "doa"), NewNetns(t, "dob")
	ConnectVeth(t, a, b, netip.MustParsePrefix("10.202.0.1/24"), netip.MustParsePrefix("10.202.0.2/24"))

	var srv, cli *net.UDPConn
	if err := b.Do(func() (err error) {
		srv, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("10.202.0.2:4000")))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if err := a.Do(func() (err error) {
		cli, err = net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.MustParseAddrPort("10.202.0.2:4000")))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	// Used from this goroutine, outside Do: the sockets keep their namespaces.
	if _, err := cli.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	srv.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64)
	n, from, err := srv.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatal(err)
	}
	if string(buf[:n]) != "hello" || from.Addr() != netip.MustParseAddr("10.202.0.1") {
		t.Errorf("got %q from %v, want \"hello\" from 10.202.0.1", buf[:n], from)
	}

	// The host namespace has no 10.202.0.2: binding it there fails.
	if _, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("10.202.0.2:4000"))); err == nil {
		t.Error("10.202.0.2 is bindable in the host namespace: Do leaked the namespace switch")
	}

	// Errors from fn come back unchanged.
	sentinel := errors.New("sentinel")
	if err := a.Do(func() error { return sentinel }); !errors.Is(err, sentinel) {
		t.Errorf("Do returned %v, want sentinel", err)
	}
}

func TestNetnsExecAndCleanup(t *testing.T) {
	Require(t, "ip")
	var name string
	t.Run("inner", func(t *testing.T) {
		ns := NewNetns(t, "cleanup me/please")
		name = ns.Name
		if strings.ContainsAny(name, " /") {
			t.Errorf("name %q not sanitized", name)
		}
		out := ns.Exec(t, "ip", "-o", "link", "show")
		if !strings.Contains(out, "lo:") || strings.Count(strings.TrimSpace(out), "\n") != 0 {
			t.Errorf("a new namespace should list only lo, got:\n%s", out)
		}
		if _, err := ns.Run("ip", "link", "show", "dev", "nonexistent0"); err == nil || !strings.Contains(err.Error(), ns.Name) {
			t.Errorf("Run error %v should name the namespace", err)
		}
	})
	if _, err := os.Stat("/var/run/netns/" + name); !os.IsNotExist(err) {
		t.Errorf("namespace %s still exists after cleanup (stat: %v)", name, err)
	}
}
