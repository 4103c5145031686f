package kernel

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
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
