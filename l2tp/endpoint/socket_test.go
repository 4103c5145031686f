package endpoint

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"
	"testing"

	"github.com/l2tpd/l2tpd/dataplane/fake"
	"github.com/l2tpd/l2tpd/internal/testenv"
	"golang.org/x/sys/unix"
)

// freeUDPPort returns addr with a UDP port nothing is bound to (at the time
// of the call).
func freeUDPPort(t *testing.T, addr string) netip.AddrPort {
	t.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(addr), 0)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).AddrPort()
}

// Two LAC tunnels dialled with local port 0 never share a port. With
// SO_REUSEADDR on both, Linux does not count one as a conflict when it
// picks the other's ephemeral port, and with a one-port range it hands the
// same port out twice. A second Dial must fail instead (the LNS would see
// both tunnels on one 4-tuple and answer one on the other's socket).
func TestDialEphemeralPortNotShared(t *testing.T) {
	ns := testenv.NewNetns(t, "ephemeral")
	ns.Exec(t, "sysctl", "-q", "-w", "net.ipv4.ip_local_port_range=40000 40000")
	lns := netip.MustParseAddrPort("127.0.0.1:9") // nothing answers
	err := ns.Do(func() error {
		lac, err := New(Config{Plane: fake.New()})
		if err != nil {
			return err
		}
		defer lac.cancelAll()
		st := stormSettings()
		st.Handler = newRecorder()
		first, err := lac.Dial(lns, netip.AddrPort{}, st)
		if err != nil {
			return fmt.Errorf("first Dial: %w", err)
		}
		if p := first.Local().Port(); p != 40000 {
			return fmt.Errorf("first Dial got port %d, want the only one in range, 40000", p)
		}
		second, err := lac.Dial(lns, netip.AddrPort{}, st)
		if err == nil {
			return fmt.Errorf("second Dial succeeded on %v while the first tunnel holds %v", second.Local(), first.Local())
		}
		if !errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("second Dial: %w, want EADDRINUSE", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Every L2TP socket (listener, an LNS tunnel's, a LAC tunnel's on a given
// or an ephemeral port) asks for receiveBuffer, so that a burst of PPP
// frames (not retransmitted by L2TP) waits instead of being dropped; as
// root (SO_RCVBUFFORCE) the kernel's rmem_max does not cap it.
func TestSocketsReceiveBuffer(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("SO_RCVBUFFORCE needs CAP_NET_ADMIN")
	}
	lst, err := listen(freeUDPPort(t, "127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	defer lst.Close()
	local := lst.LocalAddr().(*net.UDPAddr).AddrPort()
	peer := freeUDPPort(t, "127.0.0.1")
	tun, err := dialTunnel(local, peer)
	if err != nil {
		t.Fatal(err)
	}
	defer tun.Close()
	given, err := dialSocket(freeUDPPort(t, "127.0.0.1"), peer)
	if err != nil {
		t.Fatal(err)
	}
	defer given.Close()
	eph, err := dialSocket(netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), 0), peer)
	if err != nil {
		t.Fatal(err)
	}
	defer eph.Close()
	for name, c := range map[string]*net.UDPConn{"listener": lst, "LNS tunnel": tun, "LAC tunnel": given, "LAC tunnel, ephemeral port": eph} {
		rc, err := c.SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var n int
		var gerr error
		if err := rc.Control(func(fd uintptr) { n, gerr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF) }); err != nil || gerr != nil {
			t.Fatal(err, gerr)
		}
		// The kernel reports twice the size set (its bookkeeping).
		if n < 2*receiveBuffer {
			t.Errorf("%s: SO_RCVBUF %d, want %d (2 x receiveBuffer)", name, n, 2*receiveBuffer)
		}
	}
}
