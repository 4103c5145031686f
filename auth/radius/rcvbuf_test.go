package radius

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// Each server socket asks for room for a burst of replies (the kernel's
// default of about 200 KB holds a few hundred small datagrams).
func TestServerSocketReceiveBuffer(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("SO_RCVBUFFORCE needs CAP_NET_ADMIN; without it the size is capped by net.core.rmem_max")
	}
	c, err := New(testConfig(t, "s3cret", 1812), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rc, err := c.auth[0].sock.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var got int
	if err := rc.Control(func(fd uintptr) { got, err = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF) }); err != nil {
		t.Fatal(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if got < replyBuffer {
		t.Fatalf("server socket receive buffer %d bytes, want at least %d", got, replyBuffer)
	}
}
