package endpoint

import (
	"net"
	"net/netip"
	"testing"
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
