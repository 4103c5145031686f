package kernel

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/l2tpd/l2tpd/dataplane"
)

// gatedPPP is fakePPP whose unit closes wait for the test (an interface
// the kernel takes its time to remove).
type gatedPPP struct {
	*fakePPP
	entered chan struct{}
	gate    chan struct{}
}

func (g *gatedPPP) Close(fd int) error {
	if g.name(fd) == "unit" {
		g.entered <- struct{}{}
		<-g.gate
	}
	return g.fakePPP.Close(fd)
}

// opIndex is the index of the first op with prefix at or after from, -1
// if none.
func opIndex(ops []string, from int, prefix string) int {
	for i := from; i < len(ops); i++ {
		if strings.HasPrefix(ops[i], prefix) {
			return i
		}
	}
	return -1
}

// Close returns while the session's kernel objects are still being
// removed (a removal worker does it), and nothing that needs them gone
// overtakes the removal: a new session with the same ID waits in
// AddSession, another session taking the subscriber's address waits in
// Up; both go on once the removal is done, after it in the kernel.
func TestCloseLeavesRemovalToWorker(t *testing.T) {
	log := &opLog{}
	ppp := &gatedPPP{fakePPP: &fakePPP{t: t, log: log, peer: map[string]int{}},
		entered: make(chan struct{}, 1), gate: make(chan struct{})}
	p, err := New(fakeGenl(t, log, nil, nil), Options{PPP: ppp, Links: fakeLinks{log}, StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	var release sync.Once
	open := func() { release.Do(func() { close(ppp.gate) }) }
	t.Cleanup(open) // before the plane's Close (cleanups run last first), which waits for removals
	waits := make(chan string, 2)
	p.rmWaitHook = func(what string) { waits <- what }
	tun, err := p.AddTunnel(tunnelCfg(t, 5))
	if err != nil {
		t.Fatal(err)
	}
	add := func(id uint32) dataplane.Session {
		s, err := tun.AddSession(dataplane.SessionConfig{LocalID: id, PeerID: 70, PWType: dataplane.PWTypePPP, LNSMode: true}, func([]byte) {})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	cfg := subscriberNet("sub7", "100.64.0.9")
	s7, s8 := add(7), add(8)
	if err := s7.Up(cfg); err != nil {
		t.Fatal(err)
	}
	log.take()

	closed := make(chan error, 1)
	go func() { closed <- s7.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close waited for the removal of the session's kernel objects")
	}
	<-ppp.entered // the worker is removing the unit, held by the test

	type result struct {
		s   dataplane.Session
		err error
	}
	again := make(chan result, 1)
	go func() {
		s, err := tun.AddSession(dataplane.SessionConfig{LocalID: 7, PeerID: 71, PWType: dataplane.PWTypePPP, LNSMode: true}, func([]byte) {})
		again <- result{s, err}
	}()
	upped := make(chan error, 1)
	go func() {
		c := cfg
		c.IfName = "sub8"
		upped <- s8.Up(c)
	}()
	var got []string
	for len(got) < 2 {
		select {
		case w := <-waits:
			got = append(got, w)
		case <-time.After(10 * time.Second):
			t.Fatalf("waits %q: AddSession and Up did not both wait for the removal", got)
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"address", "session"}) {
		t.Fatalf("waits %q, want one for the session ID and one for the address", got)
	}
	open()
	r := <-again
	if r.err != nil {
		t.Fatalf("AddSession with the ID of a session being removed: %v", r.err)
	}
	if err := <-upped; err != nil {
		t.Fatalf("Up with the address of a session being removed: %v", err)
	}
	ops := log.take()
	unit := opIndex(ops, 0, "close unit")
	del := opIndex(ops, 0, "genl SESSION_DELETE 5 7")
	create := opIndex(ops, 0, "genl SESSION_CREATE 5 7")
	addr := opIndex(ops, 0, "addaddr 42 192.0.2.1 peer 100.64.0.9")
	if unit < 0 || del < unit || create < del || addr < unit {
		t.Fatalf("ops %q: the new session 7 and the address must come after the old session's removal", ops)
	}
	waitRemoved(t, s7)
	r.s.Close()
	s8.Close()
	waitRemoved(t, r.s)
	waitRemoved(t, s8)
	p.rmMu.Lock()
	defer p.rmMu.Unlock()
	if len(p.held) != 0 || len(p.rmQueue) != 0 {
		t.Fatalf("after every removal: addresses held %v, queue %d", p.held, len(p.rmQueue))
	}
}

// A removal that fails is reported to OnRemoveError with the session's
// name (Close returned long before).
func TestRemovalErrorReported(t *testing.T) {
	log := &opLog{}
	ppp := &fakePPP{t: t, log: log, peer: map[string]int{}}
	var mu sync.Mutex
	var reported []string
	p, err := New(fakeGenl(t, log, map[Command]unix.Errno{CmdSessionDelete: unix.EPERM}, nil), Options{PPP: ppp, Links: fakeLinks{log}, StateDir: t.TempDir(),
		OnRemoveError: func(session string, err error) {
			mu.Lock()
			reported = append(reported, session+": "+err.Error())
			mu.Unlock()
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	tun, err := p.AddTunnel(tunnelCfg(t, 5))
	if err != nil {
		t.Fatal(err)
	}
	s, err := tun.AddSession(dataplane.SessionConfig{LocalID: 7, PeerID: 70, PWType: dataplane.PWTypePPP, LNSMode: true}, func([]byte) {})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	waitRemoved(t, s)
	mu.Lock()
	defer mu.Unlock()
	if len(reported) != 1 || !strings.HasPrefix(reported[0], "tunnel 5 session 7: ") || !strings.Contains(reported[0], "SESSION_DELETE") {
		t.Fatalf("reported %q, want one error for tunnel 5 session 7", reported)
	}
}

// subscriberNet is an LNS session's network: interface name, our
// address 192.0.2.1, the subscriber's peer.
func subscriberNet(name, peer string) dataplane.NetConfig {
	return dataplane.NetConfig{IfName: name, MTU: 1400, MRU: 1400,
		Local: netip.MustParseAddr("192.0.2.1"), Peer: netip.MustParseAddr(peer)}
}

// noWait fails the test if an Up reported a wait on waits.
func noWait(t *testing.T, waits chan string, what string) {
	t.Helper()
	select {
	case w := <-waits:
		t.Fatalf("an Up waited (%s) %s", w, what)
	default:
	}
}

// holderFixture: a plane on fakes with tunnel 5 and sessions 7 and 8
// (not up; in LNS mode unless lac), and the Up waits reported on the
// channel it returns.
func holderFixture(t *testing.T, lac ...bool) (*Plane, *opLog, dataplane.Session, dataplane.Session, chan string) {
	t.Helper()
	log := &opLog{}
	ppp := &fakePPP{t: t, log: log, peer: map[string]int{}}
	p, err := New(fakeGenl(t, log, nil, nil), Options{PPP: ppp, Links: fakeLinks{log}, StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	waits := make(chan string, 4)
	p.rmWaitHook = func(what string) { waits <- what }
	tun, err := p.AddTunnel(tunnelCfg(t, 5))
	if err != nil {
		t.Fatal(err)
	}
	var ss []dataplane.Session
	for _, id := range []uint32{7, 8} {
		s, err := tun.AddSession(dataplane.SessionConfig{LocalID: id, PeerID: 70, PWType: dataplane.PWTypePPP, LNSMode: len(lac) == 0}, func([]byte) {})
		if err != nil {
			t.Fatal(err)
		}
		ss = append(ss, s)
	}
	return p, log, ss[0], ss[1], waits
}

// An Up taking the address of a session that is up and not closing (the
// control plane gave the address back just before it closed that
// session) waits for that session to close and be removed, then goes
// on; a session's own Up again does not wait for itself.
func TestUpWaitsForLiveHolder(t *testing.T) {
	p, log, s7, s8, waits := holderFixture(t)
	cfg := subscriberNet("sub7", "100.64.0.9")
	if err := s7.Up(cfg); err != nil {
		t.Fatal(err)
	}
	cfg.MTU = 1380
	if err := s7.Up(cfg); err != nil {
		t.Fatal(err)
	}
	noWait(t, waits, "for the address it holds itself")
	log.take()
	upped := make(chan error, 1)
	go func() {
		c := cfg
		c.IfName = "sub8"
		upped <- s8.Up(c)
	}()
	select {
	case <-waits:
	case err := <-upped:
		t.Fatalf("Up with the address of a session still up returned at once (%v)", err)
	case <-time.After(10 * time.Second):
		t.Fatal("Up with the address of a session still up neither waited nor returned")
	}
	if err := s7.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-upped; err != nil {
		t.Fatalf("Up after the holder closed: %v", err)
	}
	ops := log.take()
	unit := opIndex(ops, 0, "close unit")
	addr := opIndex(ops, 0, "addaddr")
	if unit < 0 || addr < unit {
		t.Fatalf("ops %q: the address must be added after the old holder's interface is gone", ops)
	}
	s8.Close()
	waitRemoved(t, s8)
	p.rmMu.Lock()
	defer p.rmMu.Unlock()
	if len(p.held) != 0 {
		t.Fatalf("after every removal: addresses held %v", p.held)
	}
}

// An Up taking the address of a session that stays up (a duplicate the
// control plane should have refused) fails after holdWait, naming the
// address and the session that holds it, and adds nothing.
func TestUpFailsOnDuplicateHolder(t *testing.T) {
	p, log, s7, s8, _ := holderFixture(t)
	p.holdWait = 50 * time.Millisecond
	cfg := subscriberNet("sub7", "100.64.0.9")
	if err := s7.Up(cfg); err != nil {
		t.Fatal(err)
	}
	log.take()
	cfg.IfName = "sub8"
	err := s8.Up(cfg)
	if err == nil || !strings.Contains(err.Error(), "100.64.0.9/32") || !strings.Contains(err.Error(), "session 7") {
		t.Fatalf("Up with the address of a session that stays up: %v, want an error naming 100.64.0.9/32 and session 7", err)
	}
	if i := opIndex(log.take(), 0, "addaddr"); i >= 0 {
		t.Fatal("the duplicate address was added")
	}
}

// An Up that moves a session to another address gives up the old one: an
// Up of another session takes it without waiting.
func TestUpGivesUpOldAddress(t *testing.T) {
	_, _, s7, s8, waits := holderFixture(t)
	cfg := subscriberNet("sub7", "100.64.0.9")
	if err := s7.Up(cfg); err != nil {
		t.Fatal(err)
	}
	cfg.Peer = netip.MustParseAddr("100.64.0.10")
	if err := s7.Up(cfg); err != nil {
		t.Fatal(err)
	}
	cfg.IfName, cfg.Peer = "sub8", netip.MustParseAddr("100.64.0.9")
	if err := s8.Up(cfg); err != nil {
		t.Fatal(err)
	}
	noWait(t, waits, "for an address its old holder had given up")
}

// A LAC's sessions to one LNS all have the LNS's address as their peer:
// their Ups do not wait for one another.
func TestLACSessionsShareThePeer(t *testing.T) {
	_, _, s7, s8, waits := holderFixture(t, true)
	for i, s := range []dataplane.Session{s7, s8} {
		cfg := dataplane.NetConfig{IfName: fmt.Sprintf("lac%d", i), MTU: 1400, MRU: 1400,
			Local: netip.AddrFrom4([4]byte{100, 64, 0, byte(10 + i)}), Peer: netip.MustParseAddr("192.0.2.1")}
		if err := s.Up(cfg); err != nil {
			t.Fatalf("LAC session %d: %v", i, err)
		}
	}
	noWait(t, waits, "for another LAC session with the same LNS")
}
