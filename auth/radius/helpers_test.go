package radius

import (
	"crypto/md5"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"layeh.com/radius"

	"github.com/l2tpd/l2tpd/config"
)

// fakeServer is an in-process RADIUS server on loopback. handle gets each
// request (raw and parsed) and returns the raw reply to send (nil: none).
type fakeServer struct {
	t      testing.TB
	conn   *net.UDPConn
	secret []byte
	handle func(raw []byte, p *radius.Packet) []byte

	mu   sync.Mutex
	reqs []*radius.Packet
	got  chan *radius.Packet
}

func newFakeServer(t testing.TB, secret string, handle func(raw []byte, p *radius.Packet) []byte) *fakeServer {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	s := &fakeServer{t: t, conn: conn, secret: []byte(secret), handle: handle, got: make(chan *radius.Packet, 1000)}
	t.Cleanup(func() { conn.Close() })
	go func() {
		buf := make([]byte, 4096)
		for {
			n, src, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			raw := append([]byte(nil), buf[:n]...)
			p, err := radius.Parse(raw, s.secret)
			if err != nil {
				t.Errorf("fake server: bad request: %v", err)
				continue
			}
			s.mu.Lock()
			s.reqs = append(s.reqs, p)
			h := s.handle
			s.mu.Unlock()
			select {
			case s.got <- p:
			default:
			}
			if resp := h(raw, p); resp != nil {
				conn.WriteToUDPAddrPort(resp, src)
			}
		}
	}()
	return s
}

func (s *fakeServer) setHandle(h func(raw []byte, p *radius.Packet) []byte) {
	s.mu.Lock()
	s.handle = h
	s.mu.Unlock()
}

func (s *fakeServer) port() int { return s.conn.LocalAddr().(*net.UDPAddr).Port }

func (s *fakeServer) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.reqs)
}

// reply builds a correctly signed reply to raw.
func reply(t testing.TB, raw []byte, secret []byte, code radius.Code, withMA bool, attrs ...*radius.AVP) []byte {
	t.Helper()
	req, err := radius.Parse(raw, secret)
	if err != nil {
		t.Fatal(err)
	}
	r := req.Response(code)
	r.Attributes = append(r.Attributes, attrs...)
	b, err := encodeResponse(r, req.Authenticator, withMA)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func avp(t radius.Type, v []byte) *radius.AVP { return &radius.AVP{Type: t, Attribute: v} }

func vsa(vt byte, v []byte) *radius.AVP {
	p := radius.New(radius.CodeAccessAccept, nil)
	addVSA(p, vendorMicrosoft, vt, v)
	return p.Attributes[0]
}

func u32(v uint32) []byte { return radius.NewInteger(v) }

// testConfig returns a config for servers at the given auth ports (acct
// port 0) with short timeouts.
func testConfig(t testing.TB, secret string, ports ...int) config.RADIUS {
	c := config.DefaultRADIUS()
	c.NASIdentifier = "lns-test"
	c.NASIPAddress = netip.MustParseAddr("192.0.2.1")
	c.Timeout = 100 * time.Millisecond
	c.Retries = 1
	c.DeadTime = time.Minute
	c.SpoolDir = t.TempDir()
	for i, p := range ports {
		c.Servers = append(c.Servers, config.RADIUSServer{Address: netip.MustParseAddr("127.0.0.1"), AuthPort: p,
			Secret: []byte(secret), Priority: i, Weight: 1, Timeout: c.Timeout, Retries: c.Retries, RequireMessageAuthenticator: true})
	}
	return c
}

func md5sum(b, secret []byte) []byte {
	h := md5.New()
	h.Write(b)
	h.Write(secret)
	return h.Sum(nil)
}
