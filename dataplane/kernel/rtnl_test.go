package kernel

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/mdlayher/netlink"
	"github.com/mdlayher/netlink/nltest"
	"golang.org/x/sys/unix"
)

// fakeRTNL records the one request and answers with an ack stand-in.
func fakeRTNL(t *testing.T, seen *netlink.Message) *RTNL {
	c := nltest.Dial(func(reqs []netlink.Message) ([]netlink.Message, error) {
		if len(reqs) != 1 {
			t.Fatalf("%d requests", len(reqs))
		}
		*seen = reqs[0]
		return []netlink.Message{{Header: netlink.Header{Sequence: reqs[0].Header.Sequence, PID: reqs[0].Header.PID}}}, nil
	})
	t.Cleanup(func() { c.Close() })
	return NewRTNL(c)
}

func TestRTNLGolden(t *testing.T) {
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		t.Skip("golden bytes are little-endian")
	}
	const ackCreate = netlink.Request | netlink.Acknowledge | netlink.Create | netlink.Replace
	tests := []struct {
		name  string
		do    func(r *RTNL) error
		typ   netlink.HeaderType
		flags netlink.HeaderFlags
		data  []byte
	}{
		{"rename+mtu", func(r *RTNL) error { return r.SetLink(7, "sub42", 1400, false) }, unix.RTM_NEWLINK, netlink.Request | netlink.Acknowledge, []byte{
			0, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // ifinfomsg index 7
			10, 0, 3, 0, 's', 'u', 'b', '4', '2', 0, 0, 0, // IFLA_IFNAME
			8, 0, 4, 0, 0x78, 0x05, 0, 0, // IFLA_MTU 1400
		}},
		{"mtu+up", func(r *RTNL) error { return r.SetLink(7, "", 1400, true) }, unix.RTM_NEWLINK, netlink.Request | netlink.Acknowledge, []byte{
			0, 0, 0, 0, 7, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, // ifinfomsg index 7, flags=change=IFF_UP
			8, 0, 4, 0, 0x78, 0x05, 0, 0, // IFLA_MTU 1400
		}},
		{"ppp unit with a name", func(r *RTNL) error { return r.newPPPLink("sub42", 9) }, unix.RTM_NEWLINK,
			netlink.Request | netlink.Acknowledge | netlink.Create | netlink.Excl, []byte{
				0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // ifinfomsg, no index
				10, 0, 3, 0, 's', 'u', 'b', '4', '2', 0, 0, 0, // IFLA_IFNAME
				24, 0, 18, 0x80, // IFLA_LINKINFO | NLA_F_NESTED
				8, 0, 1, 0, 'p', 'p', 'p', 0, // IFLA_INFO_KIND "ppp"
				12, 0, 2, 0x80, // IFLA_INFO_DATA | NLA_F_NESTED
				8, 0, 1, 0, 9, 0, 0, 0, // IFLA_PPP_DEV_FD 9
			}},
		{"up", func(r *RTNL) error { return r.SetUp(7) }, unix.RTM_NEWLINK, netlink.Request | netlink.Acknowledge, []byte{
			0, 0, 0, 0, 7, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, // flags=change=IFF_UP
		}},
		{"ptp address", func(r *RTNL) error {
			return r.AddAddr(7, netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("100.64.0.9"), 32)
		}, unix.RTM_NEWADDR, ackCreate, []byte{
			2, 32, 0, 0, 7, 0, 0, 0, // ifaddrmsg AF_INET /32 scope universe
			8, 0, 2, 0, 192, 0, 2, 1, // IFA_LOCAL
			8, 0, 1, 0, 100, 64, 0, 9, // IFA_ADDRESS (peer)
		}},
		{"group", func(r *RTNL) error { return r.SetGroup(7, 0x4c320001) }, unix.RTM_NEWLINK, netlink.Request | netlink.Acknowledge, []byte{
			0, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // ifinfomsg index 7, no flag change
			8, 0, 27, 0, 0x01, 0x00, 0x32, 0x4c, // IFLA_GROUP 0x4c320001
		}},
		{"delete group", func(r *RTNL) error { return r.DeleteGroup(0x4c320001) }, unix.RTM_DELLINK, netlink.Request | netlink.Acknowledge, []byte{
			0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // ifinfomsg, no index: the group selects
			8, 0, 27, 0, 0x01, 0x00, 0x32, 0x4c, // IFLA_GROUP 0x4c320001
		}},
		{"framed route", func(r *RTNL) error { return r.AddRoute(7, netip.MustParsePrefix("198.51.100.0/24")) }, unix.RTM_NEWROUTE, ackCreate, []byte{
			2, 24, 0, 0, 254, 4, 253, 1, 0, 0, 0, 0, // rtmsg main table, static, scope link, unicast
			8, 0, 1, 0, 198, 51, 100, 0, // RTA_DST
			8, 0, 4, 0, 7, 0, 0, 0, // RTA_OIF
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var seen netlink.Message
			if err := tt.do(fakeRTNL(t, &seen)); err != nil {
				t.Fatal(err)
			}
			if seen.Header.Type != tt.typ || seen.Header.Flags != tt.flags {
				t.Errorf("header type %v flags %v, want %v %v", seen.Header.Type, seen.Header.Flags, tt.typ, tt.flags)
			}
			if string(seen.Data) != string(tt.data) {
				t.Errorf("data\n got % x\nwant % x", seen.Data, tt.data)
			}
		})
	}
}

// The kernel answers RTM_NEWLINK for a ppp unit with EBUSY when another
// thread holds ppp_mutex (a /dev/ppp ioctl of another session): NewPPPLink
// retries, then gives up with the error.
func TestNewPPPLinkRetriesEBUSY(t *testing.T) {
	for _, tc := range []struct {
		busy      int
		wantErr   bool
		wantTries int
	}{
		{busy: 0, wantTries: 1},
		{busy: 3, wantTries: 4},
		{busy: 100, wantErr: true, wantTries: pppLinkTries},
	} {
		tries, waits := 0, 0
		defer func(f func(int)) { pppLinkBackoff = f }(pppLinkBackoff)
		pppLinkBackoff = func(int) { waits++ }
		c := nltest.Dial(func(reqs []netlink.Message) ([]netlink.Message, error) {
			switch reqs[0].Header.Type {
			case unix.RTM_NEWLINK:
				tries++
				if tries <= tc.busy {
					return nltest.Error(int(unix.EBUSY), reqs)
				}
				return []netlink.Message{{Header: netlink.Header{Sequence: reqs[0].Header.Sequence, PID: reqs[0].Header.PID}}}, nil
			case unix.RTM_GETLINK:
				return []netlink.Message{{Header: netlink.Header{Type: unix.RTM_NEWLINK, Sequence: reqs[0].Header.Sequence, PID: reqs[0].Header.PID},
					Data: ifinfomsg(42, 0, 0)}}, nil
			}
			t.Fatalf("unexpected request %v", reqs[0].Header.Type)
			return nil, nil
		})
		idx, err := NewRTNL(c).NewPPPLink("sub1", 9)
		c.Close()
		if tc.wantErr {
			if !errors.Is(err, unix.EBUSY) {
				t.Errorf("busy %d: err %v, want EBUSY", tc.busy, err)
			}
		} else if err != nil || idx != 42 {
			t.Errorf("busy %d: NewPPPLink = %d, %v; want 42, nil", tc.busy, idx, err)
		}
		if tries != tc.wantTries || waits != tries-1 {
			t.Errorf("busy %d: %d tries, %d waits; want %d tries, one wait between each", tc.busy, tries, waits, tc.wantTries)
		}
	}
}

// LinkIndex asks the kernel by ioctl when it can: the loopback device's
// index, and a clear error for a link that does not exist.
func TestLinkIndexIoctl(t *testing.T) {
	r, err := DialRTNL()
	if err != nil {
		t.Skipf("no rtnetlink: %v", err)
	}
	defer r.Close()
	if r.ioctlFD < 0 {
		t.Skip("no AF_INET socket for ioctls")
	}
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Skipf("no lo: %v", err)
	}
	got, err := r.LinkIndex("lo")
	if err != nil || got != lo.Index {
		t.Fatalf("LinkIndex(lo) = %d, %v; want %d", got, err, lo.Index)
	}
	nl, err := r.linkIndexNetlink("lo")
	if err != nil || nl != got {
		t.Fatalf("netlink says %d, %v; ioctl %d", nl, err, got)
	}
	if _, err := r.LinkIndex("l2tpd-nonesuch"); !errors.Is(err, unix.ENODEV) {
		t.Fatalf("LinkIndex of a missing link = %v, want ENODEV", err)
	}
}

// linkMsg is an RTM_NEWLINK body: ifindex, then IFLA_IFNAME and, when
// group is not 0, IFLA_GROUP.
func linkMsg(index int, name string, group uint32) []byte {
	ae := netlink.NewAttributeEncoder()
	ae.String(unix.IFLA_IFNAME, name)
	if group != 0 {
		ae.Uint32(unix.IFLA_GROUP, group)
	}
	return append(ifinfomsg(index, 0, 0), mustEncode(ae)...)
}

// GroupMembers dumps every link and keeps those in the group; a link
// without IFLA_GROUP is in group 0.
func TestGroupMembersDump(t *testing.T) {
	c := nltest.Dial(func(reqs []netlink.Message) ([]netlink.Message, error) {
		if reqs[0].Header.Type != unix.RTM_GETLINK || reqs[0].Header.Flags&netlink.Dump == 0 {
			t.Fatalf("request %v flags %v, want an RTM_GETLINK dump", reqs[0].Header.Type, reqs[0].Header.Flags)
		}
		var msgs []netlink.Message
		for _, l := range []struct {
			i int
			g uint32
		}{{1, 0}, {5, 7}, {6, 0x4c320001}, {9, 0x4c320001}} {
			msgs = append(msgs, netlink.Message{Header: netlink.Header{Type: unix.RTM_NEWLINK, Sequence: reqs[0].Header.Sequence, PID: reqs[0].Header.PID},
				Data: linkMsg(l.i, "x", l.g)})
		}
		// Multipart makes the last message the NLMSG_DONE.
		return nltest.Multipart(append(msgs, netlink.Message{Header: netlink.Header{Sequence: reqs[0].Header.Sequence, PID: reqs[0].Header.PID}}))
	})
	defer c.Close()
	got, err := NewRTNL(c).GroupMembers(0x4c320001)
	if err != nil || len(got) != 2 || got[0] != 6 || got[1] != 9 {
		t.Errorf("GroupMembers = %v, %v; want [6 9]", got, err)
	}
}

func TestParseLinkGroupGolden(t *testing.T) {
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		t.Skip("golden bytes are little-endian")
	}
	for _, tc := range []struct {
		name  string
		b     []byte
		index int
		group uint32
		err   string
	}{
		{"with group", []byte{
			0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
			8, 0, 3, 0, 'p', 'p', 'p', 0, // IFLA_IFNAME
			8, 0, 27, 0, 0x01, 0x00, 0x32, 0x4c, // IFLA_GROUP
		}, 9, 0x4c320001, ""},
		{"no group", []byte{0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 3, 0, ""},
		{"short ifinfomsg", []byte{0, 0, 0, 0, 3, 0, 0}, 0, 0, "shorter than ifinfomsg"},
		{"group of 2 bytes", []byte{
			0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
			6, 0, 27, 0, 1, 0, 0, 0,
		}, 0, 0, "link 9"},
		{"attribute past the end", []byte{
			0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
			40, 0, 27, 0, 1, 0, 0, 0,
		}, 0, 0, "link 9"},
	} {
		i, g, err := parseLinkGroup(tc.b)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: err %v, want one with %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil || i != tc.index || g != tc.group {
			t.Errorf("%s: %d %#x %v; want %d %#x", tc.name, i, g, err, tc.index, tc.group)
		}
	}
}

// The group calls against the host's kernel, in a network namespace of
// their own: two of three veth interfaces go into a group, GroupMembers
// finds exactly them, DeleteGroup removes them (and their veth peers) and
// leaves the third.
func TestGroupLinksKernel(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	ipPath, err := exec.LookPath("ip")
	if err != nil {
		t.Skip("no ip(8)")
	}
	ns := fmt.Sprintf("l2tpd-test-%d", os.Getpid())
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(ipPath, args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v\n%s", args, err, out)
		}
	}
	if out, err := exec.Command(ipPath, "netns", "add", ns).CombinedOutput(); err != nil {
		t.Skipf("no network namespaces: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command(ipPath, "netns", "del", ns).Run() })
	for _, n := range []string{"a", "b", "c"} {
		ip("-n", ns, "link", "add", "v"+n, "type", "veth", "peer", "name", "w"+n)
	}
	f, err := os.Open("/run/netns/" + ns)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c, err := netlink.Dial(unix.NETLINK_ROUTE, &netlink.Config{NetNS: int(f.Fd())})
	if err != nil {
		t.Fatal(err)
	}
	r := NewRTNL(c)
	defer r.Close()
	index := func(name string) int {
		i, err := r.LinkIndex(name)
		if err != nil {
			t.Fatal(err)
		}
		return i
	}
	const group = 0x4c32fffe
	want := []int{index("va"), index("vb")}
	for _, i := range want {
		if err := r.SetGroup(i, group); err != nil {
			t.Fatal(err)
		}
	}
	got, err := r.GroupMembers(group)
	slices.Sort(got)
	slices.Sort(want)
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("GroupMembers = %v, %v; want %v", got, err, want)
	}
	if err := r.DeleteGroup(group); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(ipPath, "-n", ns, "-o", "link", "show").CombinedOutput()
	if err != nil {
		t.Fatal(err)
	}
	for _, gone := range []string{"va", "vb", "wa", "wb"} {
		if strings.Contains(string(out), " "+gone+"@") {
			t.Errorf("%s is still there after DeleteGroup:\n%s", gone, out)
		}
	}
	if !strings.Contains(string(out), " vc@") {
		t.Errorf("vc, not in the group, was deleted:\n%s", out)
	}
	if m, err := r.GroupMembers(group); err != nil || len(m) != 0 {
		t.Errorf("GroupMembers after DeleteGroup = %v, %v", m, err)
	}
}
