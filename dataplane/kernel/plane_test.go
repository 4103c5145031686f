package kernel

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/l2tpd/l2tpd/dataplane"
	"github.com/mdlayher/genetlink"
	"github.com/mdlayher/genetlink/genltest"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// opLog collects what the fakes were asked to do, in order.
type opLog struct {
	mu  sync.Mutex
	ops []string
}

func (l *opLog) add(format string, args ...any) {
	l.mu.Lock()
	l.ops = append(l.ops, fmt.Sprintf(format, args...))
	l.mu.Unlock()
}

func (l *opLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	ops := l.ops
	l.ops = nil
	return ops
}

// fakePPP hands out socketpair ends as channel and unit fds; the test
// holds the other ends (what the kernel would see).
type fakePPP struct {
	t     *testing.T
	log   *opLog
	mu    sync.Mutex     // names and peer: removal workers close fds
	peer  map[string]int // "chan", "unit" -> the test's end
	sa    PPPoL2TPAddr
	names map[int]string // our fds -> "sock", "chan", "unit"
}

func (f *fakePPP) pair(name string) int {
	ours, theirs := seqpacketPair(f.t)
	fd, err := unix.Dup(ours) // the plane closes its fd; keep the pair's own for Cleanup
	if err != nil {
		f.t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.peer[name] = theirs
	if f.names == nil {
		f.names = map[int]string{}
	}
	f.names[fd] = name
	return fd
}

// name is what fd is ("sock", "chan", "unit").
func (f *fakePPP) name(fd int) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.names[fd]
}

func (f *fakePPP) ConnectPPPoL2TP(sa []byte) (int, error) {
	a, err := ParsePPPoL2TPAddr(sa)
	if err != nil {
		return -1, err
	}
	f.sa = a
	f.log.add("connect pppol2tp %d/%d -> %d/%d", a.TunnelID, a.SessionID, a.PeerTunnelID, a.PeerSessionID)
	return f.pair("sock"), nil
}
func (f *fakePPP) ChannelIndex(sock int) (int, error) { f.log.add("PPPIOCGCHAN"); return 11, nil }
func (f *fakePPP) AttachChannel(idx int) (int, error) {
	f.log.add("PPPIOCATTCHAN %d", idx)
	return f.pair("chan"), nil
}
func (f *fakePPP) NewUnit() (int, int, error) {
	f.log.add("PPPIOCNEWUNIT")
	return f.pair("unit"), 3, nil
}
func (f *fakePPP) OpenPPP() (int, error) {
	f.log.add("open /dev/ppp")
	return f.pair("unit"), nil
}
func (f *fakePPP) UnitIndex(fd int) (int, error) { f.log.add("PPPIOCGUNIT"); return 3, nil }
func (f *fakePPP) ConnectChannel(chanFD, unit int) error {
	f.log.add("PPPIOCCONNECT %d", unit)
	return nil
}
func (f *fakePPP) SetMRU(fd, mru int) error { f.log.add("PPPIOCSMRU %d", mru); return nil }
func (f *fakePPP) SetNPMode(fd int, proto uint16, m NPMode) error {
	f.log.add("PPPIOCSNPMODE %#04x %v", proto, m)
	return nil
}
func (f *fakePPP) Write(fd int, b []byte) error { _, err := unix.Write(fd, b); return err }
func (f *fakePPP) Close(fd int) error {
	f.mu.Lock()
	f.log.add("close %s", f.names[fd])
	delete(f.names, fd)
	f.mu.Unlock()
	return unix.Close(fd)
}

type fakeLinks struct{ log *opLog }

func (l fakeLinks) LinkIndex(name string) (int, error) { l.log.add("getlink %s", name); return 42, nil }
func (l fakeLinks) NewPPPLink(name string, fd int) (int, error) {
	l.log.add("newlink ppp %s", name)
	return 42, nil
}
func (l fakeLinks) SetLink(i int, name string, mtu int, up bool) error {
	l.log.add("setlink %d name=%q mtu=%d up=%v", i, name, mtu, up)
	return nil
}
func (l fakeLinks) SetUp(i int) error { l.log.add("up %d", i); return nil }
func (l fakeLinks) AddAddr(i int, a, p netip.Addr, n int) error {
	l.log.add("addaddr %d %v peer %v/%d", i, a, p, n)
	return nil
}
func (l fakeLinks) DelAddr(i int, a, p netip.Addr, n int) error {
	l.log.add("deladdr %d %v", i, a)
	return nil
}
func (l fakeLinks) AddRoute(i int, d netip.Prefix) error { l.log.add("addroute %v", d); return nil }
func (l fakeLinks) DelRoute(i int, d netip.Prefix) error { l.log.add("delroute %v", d); return nil }

// fakeGenl is a fake kernel answering every l2tp command and logging it
// with its IDs; fail makes one command fail with an errno.
func fakeGenl(t *testing.T, log *opLog, fail map[Command]unix.Errno, dump []genetlink.Message) *Client {
	conn := genltest.Dial(genltest.ServeFamily(testFamily, func(greq genetlink.Message, nreq netlink.Message) ([]genetlink.Message, error) {
		cmd := Command(greq.Header.Command)
		as, err := netlink.UnmarshalAttributes(greq.Data)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, a := range as {
			switch a.Type {
			case attrConnID, attrSessionID:
				ids = append(ids, fmt.Sprint(nlenc32(a.Data)))
			case attrFD:
				ids = append(ids, "fd")
			}
		}
		log.add("genl %v %s", cmd, strings.Join(ids, " "))
		if e, ok := fail[cmd]; ok {
			return nil, genltest.Error(int(e))
		}
		if nreq.Header.Flags&netlink.Dump != 0 {
			return dump, nil
		}
		return []genetlink.Message{{}}, nil
	}))
	c, err := NewClient(conn)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func nlenc32(b []byte) uint32 {
	if len(b) != 4 {
		return 0
	}
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}

func loopbackUDP(t *testing.T) *net.UDPConn {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

type planeFixture struct {
	p     *Plane
	log   *opLog
	ppp   *fakePPP
	state string
}

func newPlaneFixture(t *testing.T, fail map[Command]unix.Errno) *planeFixture {
	log := &opLog{}
	ppp := &fakePPP{t: t, log: log, peer: map[string]int{}}
	dir := t.TempDir()
	p, err := New(fakeGenl(t, log, fail, nil), Options{PPP: ppp, Links: fakeLinks{log}, StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return &planeFixture{p: p, log: log, ppp: ppp, state: filepath.Join(dir, stateFileName)}
}

func tunnelCfg(t *testing.T, id uint32) dataplane.TunnelConfig {
	return dataplane.TunnelConfig{Version: 2, LocalID: id, PeerID: 50, Encap: dataplane.EncapUDP,
		Peer: netip.MustParseAddrPort("127.0.0.1:1701"), Conn: loopbackUDP(t)}
}

func TestPlaneSessionLifecycle(t *testing.T) {
	fx := newPlaneFixture(t, nil)
	tun, err := fx.p.AddTunnel(tunnelCfg(t, 5))
	if err != nil {
		t.Fatal(err)
	}
	frames := make(chan string, 4)
	s, err := tun.AddSession(dataplane.SessionConfig{LocalID: 7, PeerID: 70, PWType: dataplane.PWTypePPP, LNSMode: true},
		func(f []byte) { frames <- string(f) })
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"genl TUNNEL_CREATE 5 fd",
		"genl SESSION_CREATE 5 7",
		"connect pppol2tp 5/7 -> 50/70",
		"PPPIOCGCHAN",
		"PPPIOCATTCHAN 11",
	}
	if diff := cmp.Diff(want, fx.log.take()); diff != "" {
		t.Errorf("create (-want +got):\n%s", diff)
	}

	// The peer's LCP frame on the channel reaches the handler; ours go out
	// on the channel.
	unix.Write(fx.ppp.peer["chan"], []byte("\xc0\x21\x01\x01\x00\x04"))
	if f := <-frames; f != "\xc0\x21\x01\x01\x00\x04" {
		t.Errorf("handler got % x", f)
	}
	if err := s.SendFrame([]byte("\xc0\x21\x02\x01\x00\x04")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	if n, _ := unix.Read(fx.ppp.peer["chan"], buf); string(buf[:n]) != "\xc0\x21\x02\x01\x00\x04" {
		t.Errorf("peer got % x", buf[:n])
	}

	up := dataplane.NetConfig{IfName: "sub7", MTU: 1400, MRU: 1400,
		Local: netip.MustParseAddr("192.0.2.1"), Peer: netip.MustParseAddr("100.64.0.9"),
		Routes:    []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")},
		LocalIfID: [8]byte{0, 0, 0, 0, 0, 0, 0, 1}, PeerIfID: [8]byte{0, 0, 0, 0, 0, 0, 0, 2}}
	if err := s.Up(up); err != nil {
		t.Fatal(err)
	}
	// The unit is born with its name (no rename of "ppp3").
	want = []string{
		"open /dev/ppp",
		"newlink ppp sub7",
		"PPPIOCGUNIT",
		"PPPIOCCONNECT 3",
		"PPPIOCSMRU 1400",
		"PPPIOCSNPMODE 0x0021 pass",
		"PPPIOCSNPMODE 0x0057 pass",
		`setlink 42 name="" mtu=1400 up=true`,
		"addaddr 42 192.0.2.1 peer 100.64.0.9/32",
		"addaddr 42 fe80::1 peer fe80::2/128",
		"addroute 198.51.100.0/24",
	}
	if diff := cmp.Diff(want, fx.log.take()); diff != "" {
		t.Errorf("up (-want +got):\n%s", diff)
	}
	// NCP frames arrive on the unit fd after Up.
	unix.Write(fx.ppp.peer["unit"], []byte("\x80\x21\x01\x02\x00\x04"))
	if f := <-frames; f != "\x80\x21\x01\x02\x00\x04" {
		t.Errorf("handler got % x from the unit", f)
	}

	// Up again: IPv6CP closed, route changed.
	up.LocalIfID, up.PeerIfID = [8]byte{}, [8]byte{}
	up.Routes = []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}
	if err := s.Up(up); err != nil {
		t.Fatal(err)
	}
	want = []string{
		"PPPIOCSNPMODE 0x0021 pass",
		"PPPIOCSNPMODE 0x0057 drop",
		"deladdr 42 fe80::1",
		"delroute 198.51.100.0/24",
		"addroute 203.0.113.0/24",
	}
	if diff := cmp.Diff(want, fx.log.take()); diff != "" {
		t.Errorf("second up (-want +got):\n%s", diff)
	}
	if got := s.(*Session).IfName(); got != "sub7" {
		t.Errorf("IfName = %q", got)
	}

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if fx.p.poller.Len() != 0 {
		t.Errorf("poller still has %d fds after Close returned: frames could still be delivered", fx.p.poller.Len())
	}
	waitRemoved(t, s)
	want = []string{"close unit", "close chan", "close sock", "genl SESSION_DELETE 5 7"}
	if diff := cmp.Diff(want, fx.log.take()); diff != "" {
		t.Errorf("session close (-want +got):\n%s", diff)
	}
	if fx.p.poller.Len() != 0 {
		t.Errorf("poller still has %d fds after Close", fx.p.poller.Len())
	}
	if err := s.SendFrame([]byte{0xc0, 0x21}); err == nil {
		t.Error("SendFrame after Close succeeded")
	}
	if err := tun.Close(); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"genl TUNNEL_DELETE 5"}, fx.log.take()); diff != "" {
		t.Errorf("tunnel close (-want +got):\n%s", diff)
	}
	j, _ := os.ReadFile(fx.state)
	if string(j) != "+5\n-5\n" {
		t.Errorf("journal = %q", j)
	}
}

func TestPlaneTunnelCloseClosesSessions(t *testing.T) {
	fx := newPlaneFixture(t, nil)
	tun, _ := fx.p.AddTunnel(tunnelCfg(t, 5))
	tun.AddSession(dataplane.SessionConfig{LocalID: 7, PeerID: 70, PWType: dataplane.PWTypePPP}, func([]byte) {})
	fx.log.take()
	if err := fx.p.Close(); err != nil {
		t.Fatal(err)
	}
	want := []string{"close chan", "close sock", "genl SESSION_DELETE 5 7", "genl TUNNEL_DELETE 5"}
	if diff := cmp.Diff(want, fx.log.take()); diff != "" {
		t.Errorf("plane close (-want +got):\n%s", diff)
	}
}

func TestPlaneErrorsRollBack(t *testing.T) {
	fx := newPlaneFixture(t, map[Command]unix.Errno{CmdTunnelCreate: unix.EEXIST})
	_, err := fx.p.AddTunnel(tunnelCfg(t, 5))
	if err == nil || !strings.Contains(err.Error(), "tunnel 5") || !errorsIs(err, ErrExists) {
		t.Fatalf("AddTunnel = %v, want ErrExists naming tunnel 5", err)
	}
	if len(fx.p.tunnels) != 0 {
		t.Error("failed tunnel left registered")
	}

	fx = newPlaneFixture(t, map[Command]unix.Errno{CmdSessionCreate: unix.ENODEV})
	tun, err := fx.p.AddTunnel(tunnelCfg(t, 6))
	if err != nil {
		t.Fatal(err)
	}
	fx.log.take()
	_, err = tun.AddSession(dataplane.SessionConfig{LocalID: 9, PeerID: 90, PWType: dataplane.PWTypePPP}, func([]byte) {})
	if err == nil || !strings.Contains(err.Error(), "tunnel 6 session 9") || !errorsIs(err, ErrNotFound) {
		t.Fatalf("AddSession = %v", err)
	}
	if diff := cmp.Diff([]string{"genl SESSION_CREATE 6 9"}, fx.log.take()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	// The ID is free again.
	if len(tun.(*Tunnel).sessions) != 0 {
		t.Error("failed session left registered")
	}
}

func TestPlaneValidates(t *testing.T) {
	fx := newPlaneFixture(t, nil)
	bad := []dataplane.TunnelConfig{
		{Version: 1, LocalID: 1, Conn: loopbackUDP(t)},
		{Version: 2, LocalID: 0x10000, Conn: loopbackUDP(t)},
		{Version: 3, LocalID: 1, Encap: dataplane.EncapIP, Conn: loopbackUDP(t)},
		{Version: 2, LocalID: 1},
	}
	for _, c := range bad {
		if _, err := fx.p.AddTunnel(c); err == nil {
			t.Errorf("AddTunnel(%+v) succeeded", c)
		}
	}
	if len(fx.log.take()) != 0 {
		t.Error("invalid configs reached the kernel")
	}
}

func TestCleanupDeletesOnlyOurStaleTunnels(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, stateFileName), []byte("+5\n+6\n-6\n+8\n"), 0o600)
	log := &opLog{}
	tunnelMsg := func(id uint32) genetlink.Message {
		b, _ := encodeTunnelID(id)
		return genetlink.Message{Data: b}
	}
	// The kernel has 5 (ours, stale), 6 (deleted by us earlier: now
	// another daemon's), 7 (never ours); 8 is already gone.
	nl := fakeGenl(t, log, nil, []genetlink.Message{tunnelMsg(5), tunnelMsg(6), tunnelMsg(7)})
	p, err := New(nl, Options{PPP: &fakePPP{}, Links: fakeLinks{log}, StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	deleted, err := p.Cleanup()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]uint32{5}, deleted); diff != "" {
		t.Errorf("deleted (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"genl TUNNEL_GET ", "genl TUNNEL_DELETE 5"}, log.take()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	j, _ := os.ReadFile(filepath.Join(dir, stateFileName))
	if len(j) != 0 {
		t.Errorf("journal after cleanup = %q, want empty", j)
	}
	// A second daemon on the same state directory is refused.
	if _, err := New(nl, Options{PPP: &fakePPP{}, Links: fakeLinks{log}, StateDir: dir}); err == nil || !strings.Contains(err.Error(), "another l2tpd") {
		t.Errorf("second New = %v", err)
	}
}

func encodeTunnelID(id uint32) ([]byte, error) {
	ae := netlink.NewAttributeEncoder()
	ae.Uint32(attrConnID, id)
	ae.Uint8(attrProtoVersion, 2)
	return ae.Encode()
}

func TestParseJournal(t *testing.T) {
	got, err := parseJournal(strings.NewReader("+1\n+2\n-1\n\n+65535\n"))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[uint32]bool{2: true, 65535: true}, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	for _, bad := range []string{"1\n", "+x\n", "+\n", "*3\n", "+99999999999\n"} {
		if _, err := parseJournal(strings.NewReader(bad)); err == nil {
			t.Errorf("parseJournal(%q) succeeded", bad)
		}
	}
}
