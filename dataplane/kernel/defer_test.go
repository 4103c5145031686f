package kernel

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/l2tpd/l2tpd/dataplane"
)

// groupLinks is fakeLinks that numbers the units it creates and can
// delete a group (GroupLinks); foreign are interfaces of someone else's
// that GroupMembers reports in the group too.
type groupLinks struct {
	fakeLinks
	next    int
	foreign []int
	groups  map[int]uint32
}

func (l *groupLinks) NewPPPLink(name string, fd int) (int, error) {
	l.next++
	l.log.add("newlink ppp %s", name)
	return 100 + l.next, nil
}

func (l *groupLinks) SetGroup(i int, g uint32) error {
	l.log.add("setgroup %d %#x", i, g)
	l.groups[i] = g
	return nil
}

func (l *groupLinks) GroupMembers(g uint32) ([]int, error) {
	l.log.add("groupmembers %#x", g)
	var m []int
	for i, gi := range l.groups {
		if gi == g {
			m = append(m, i)
		}
	}
	return append(m, l.foreign...), nil
}

func (l *groupLinks) DeleteGroup(g uint32) error { l.log.add("delgroup %#x", g); return nil }

// deferFixture: a plane on groupLinks with tunnel 5 and sessions 7 and 8,
// both Up (so each has a unit).
func deferFixture(t *testing.T, foreign ...int) (*Plane, *opLog, []dataplane.Session) {
	log := &opLog{}
	ppp := &fakePPP{t: t, log: log, peer: map[string]int{}}
	links := &groupLinks{fakeLinks: fakeLinks{log}, foreign: foreign, groups: map[int]uint32{}}
	p, err := New(fakeGenl(t, log, nil, nil), Options{PPP: ppp, Links: links, StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	p.unitGroup = 0x4c320001
	t.Cleanup(func() { p.Close() })
	tun, err := p.AddTunnel(tunnelCfg(t, 5))
	if err != nil {
		t.Fatal(err)
	}
	var ss []dataplane.Session
	for _, id := range []uint32{7, 8} {
		s, err := tun.AddSession(dataplane.SessionConfig{LocalID: id, PeerID: 70, PWType: dataplane.PWTypePPP, LNSMode: true}, func([]byte) {})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Up(dataplane.NetConfig{IfName: fmt.Sprintf("sub%d", id), MTU: 1400, MRU: 1400,
			Local: netip.MustParseAddr("192.0.2.1"), Peer: netip.AddrFrom4([4]byte{100, 64, 0, byte(id)})}); err != nil {
			t.Fatal(err)
		}
		ss = append(ss, s)
	}
	log.take()
	return p, log, ss
}

// After DeferRemoval a closing session keeps its unit (its channel and
// socket close: traffic stops); Close puts every kept unit in the plane's
// group, checks the group holds only them, deletes it in one request, and
// closes the unit fds.
func TestPlaneDeferredRemovalOneRequest(t *testing.T) {
	p, log, ss := deferFixture(t)
	p.DeferRemoval()
	if err := ss[0].Close(); err != nil {
		t.Fatal(err)
	}
	waitRemoved(t, ss[0])
	if diff := cmp.Diff([]string{"close chan", "close sock", "genl SESSION_DELETE 5 7"}, log.take()); diff != "" {
		t.Errorf("session close after DeferRemoval (-want +got):\n%s", diff)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"close chan", "close sock", "genl SESSION_DELETE 5 8", "genl TUNNEL_DELETE 5",
		"setgroup 101 0x4c320001", "setgroup 102 0x4c320001", "groupmembers 0x4c320001", "delgroup 0x4c320001",
		"close unit", "close unit",
	}
	if diff := cmp.Diff(want, log.take()); diff != "" {
		t.Errorf("plane close (-want +got):\n%s", diff)
	}
	if r := p.LastRemoval(); r.Units != 2 || r.Grouped != 2 || r.Err != nil {
		t.Errorf("LastRemoval = %+v, want 2 units in one group delete", r)
	}
	if p.poller.Len() != 0 {
		t.Errorf("poller still has %d fds", p.poller.Len())
	}
}

// A group that holds an interface not ours is not deleted: the units go
// one by one as their fds close, and LastRemoval says why.
func TestPlaneDeferredRemovalForeignMember(t *testing.T) {
	p, log, _ := deferFixture(t, 9)
	p.DeferRemoval()
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	ops := log.take()
	for _, op := range ops {
		if strings.HasPrefix(op, "delgroup") {
			t.Errorf("deleted a group holding ifindex 9, not ours: %q", ops)
		}
	}
	if n := strings.Count(strings.Join(ops, "\n"), "close unit"); n != 2 {
		t.Errorf("%d units closed, want 2: %q", n, ops)
	}
	if r := p.LastRemoval(); r.Units != 2 || r.Grouped != 0 || r.Err == nil || !strings.Contains(r.Err.Error(), "ifindex 9, which is not ours") {
		t.Errorf("LastRemoval = %+v", r)
	}
}

// Without DeferRemoval nothing changes: the unit closes with its session.
func TestPlaneNoDeferredRemoval(t *testing.T) {
	p, log, ss := deferFixture(t)
	ss[0].Close()
	waitRemoved(t, ss[0])
	if diff := cmp.Diff([]string{"close unit", "close chan", "close sock", "genl SESSION_DELETE 5 7"}, log.take()); diff != "" {
		t.Errorf("session close (-want +got):\n%s", diff)
	}
	p.Close()
	if r := p.LastRemoval(); r.Units != 0 {
		t.Errorf("LastRemoval = %+v, want nothing deferred", r)
	}
}

// A session whose teardown finishes after the plane's Close has removed
// the deferred units (a Close racing the plane's) does not hand its unit
// to a removal that has run: deferUnit refuses, and teardown closes it.
func TestDeferUnitAfterRemoval(t *testing.T) {
	p, _, _ := deferFixture(t)
	p.DeferRemoval()
	if !p.deferUnit(99, 101, "sub7") {
		t.Fatal("deferUnit refused before Close")
	}
	p.unitsMu.Lock()
	p.deferred = nil // not a real fd: keep Close from closing it
	p.unitsMu.Unlock()
	p.Close()
	if p.deferUnit(99, 102, "sub8") {
		t.Error("deferUnit took a unit after Close removed the deferred ones")
	}
}
