package userspace

import (
	"encoding/binary"
	"errors"
	"io"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/l2tpd/l2tpd/dataplane"
)

// memDev is an in-memory TUN device and routing table.
type memDev struct {
	mu      sync.Mutex
	written [][]byte
	routes  map[netip.Prefix]int // prefix -> mtu
	addrs   map[netip.Addr]bool
	closed  bool
	failAdd error

	in   chan []byte
	done chan struct{}
}

func newMemDev() *memDev {
	return &memDev{routes: map[netip.Prefix]int{}, addrs: map[netip.Addr]bool{}, in: make(chan []byte), done: make(chan struct{})}
}

func (d *memDev) Read(p []byte) (int, error) {
	select {
	case b := <-d.in:
		return copy(p, b), nil
	case <-d.done:
		return 0, io.EOF
	}
}

func (d *memDev) Write(p []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.written = append(d.written, slices.Clone(p))
	return len(p), nil
}

func (d *memDev) AddRoute(p netip.Prefix, mtu int) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.failAdd != nil {
		return d.failAdd
	}
	d.routes[p] = mtu
	return nil
}

func (d *memDev) DelRoute(p netip.Prefix) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.routes[p]; !ok {
		return errors.New("no such route")
	}
	delete(d.routes, p)
	return nil
}

func (d *memDev) AddAddr(a netip.Addr) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.addrs[a] = true
	return nil
}

func (d *memDev) DelAddr(a netip.Addr) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.addrs, a)
	return nil
}

func (d *memDev) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return errors.New("closed twice")
	}
	d.closed = true
	close(d.done)
	return nil
}

func (d *memDev) take() [][]byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	w := d.written
	d.written = nil
	return w
}

func (d *memDev) routeSet() map[netip.Prefix]int {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := map[netip.Prefix]int{}
	for k, v := range d.routes {
		out[k] = v
	}
	return out
}

// chanWriter stands in for the tunnel's UDP socket.
type chanWriter chan []byte

func (c chanWriter) Write(p []byte) (int, error) {
	c <- slices.Clone(p)
	return len(p), nil
}

func (c chanWriter) WriteBatch(pkts [][]byte) (int, error) {
	for _, p := range pkts {
		c.Write(p)
	}
	return len(pkts), nil
}

func (c chanWriter) next(t *testing.T) []byte {
	t.Helper()
	select {
	case b := <-c:
		return b
	case <-time.After(5 * time.Second): // a safety net, not a wait
		t.Fatal("no data message was sent")
		return nil
	}
}

// testPlane is a plane over memDevs (a new one each time the device is
// opened) writing data messages to w.
type testPlane struct {
	*Plane
	w    chanWriter
	mu   sync.Mutex
	devs []*memDev
}

func newTestPlane(t *testing.T) *testPlane {
	tp := &testPlane{w: make(chanWriter, 64)}
	tp.Plane = newPlane(Config{}, func(Config) (device, error) {
		d := newMemDev()
		tp.mu.Lock()
		tp.devs = append(tp.devs, d)
		tp.mu.Unlock()
		return d, nil
	})
	tp.writer = func(dataplane.TunnelConfig) (sender, error) { return tp.w, nil }
	t.Cleanup(func() { tp.Close() })
	return tp
}

func (tp *testPlane) dev() *memDev {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	return tp.devs[len(tp.devs)-1]
}

// frames collects what a FrameHandler receives.
type frames struct {
	mu sync.Mutex
	fs [][]byte
}

func (f *frames) handler(b []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fs = append(f.fs, slices.Clone(b))
}

func (f *frames) take() [][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.fs
	f.fs = nil
	return out
}

func checksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// udp4 builds an IPv4/UDP packet (UDP checksum 0, IP checksum valid).
func udp4(src, dst netip.AddrPort, payload []byte) []byte {
	b := make([]byte, 28+len(payload))
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	b[8] = 64
	b[9] = 17
	s, d := src.Addr().As4(), dst.Addr().As4()
	copy(b[12:], s[:])
	copy(b[16:], d[:])
	binary.BigEndian.PutUint16(b[10:], checksum(b[:20]))
	binary.BigEndian.PutUint16(b[20:], src.Port())
	binary.BigEndian.PutUint16(b[22:], dst.Port())
	binary.BigEndian.PutUint16(b[24:], uint16(8+len(payload)))
	copy(b[28:], payload)
	return b
}

// ip6 builds a minimal IPv6 packet (next header 59, no payload).
func ip6(src, dst string) []byte {
	b := make([]byte, 40)
	b[0] = 0x60
	b[6] = 59
	b[7] = 64
	s, d := netip.MustParseAddr(src).As16(), netip.MustParseAddr(dst).As16()
	copy(b[8:], s[:])
	copy(b[24:], d[:])
	return b
}

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

func cat(bs ...[]byte) []byte { return slices.Concat(bs...) }

// recSender records what a tunnel sends, one entry per system call it
// would make: a single Write (the TUN reader's path) or a WriteBatch.
type recSender struct {
	mu    sync.Mutex
	calls []sendCall
	// refuse makes WriteBatch report this many messages unsent.
	refuse int
}

type sendCall struct {
	batch bool
	msgs  [][]byte
}

func (r *recSender) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, sendCall{msgs: [][]byte{slices.Clone(p)}})
	return len(p), nil
}

func (r *recSender) WriteBatch(pkts [][]byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := sendCall{batch: true}
	for _, p := range pkts {
		c.msgs = append(c.msgs, slices.Clone(p))
	}
	r.calls = append(r.calls, c)
	if r.refuse > 0 {
		return len(pkts) - r.refuse, errors.New("refused")
	}
	return len(pkts), nil
}

func (r *recSender) take() []sendCall {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.calls
	r.calls = nil
	return c
}
