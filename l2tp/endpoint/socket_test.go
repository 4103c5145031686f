package endpoint

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"testing"

	"github.com/l2tpd/l2tpd/dataplane/fake"
	"github.com/l2tpd/l2tpd/internal/testenv"
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
