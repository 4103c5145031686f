package kernel

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Links configures the subscriber's network interface (rtnetlink). The
// plane uses RTNL; tests use a fake.
type Links interface {
	// LinkIndex returns the ifindex of the interface called name.
	LinkIndex(name string) (int, error)
	// NewPPPLink creates a PPP unit named name on pppFD, an fd of
	// /dev/ppp with no unit yet (RTM_NEWLINK, kind "ppp", IFLA_PPP_DEV_FD;
	// Linux 4.7 and later), and returns its ifindex. The unit gets its name
	// at birth, so it cannot collide with the "ppp<unit>" name the kernel
	// would otherwise give it.
	NewPPPLink(name string, pppFD int) (int, error)
	// SetLink renames the interface (name "" keeps it), sets its MTU (0
	// keeps it) and, with up, sets IFF_UP, in one request (the kernel
	// applies the flags after the name and the MTU). Renaming needs the
	// link down.
	SetLink(index int, name string, mtu int, up bool) error
	// SetUp sets IFF_UP.
	SetUp(index int) error
	// AddAddr adds local with a point-to-point peer (IFA_LOCAL, IFA_ADDRESS).
	AddAddr(index int, local, peer netip.Addr, prefixLen int) error
	DelAddr(index int, local, peer netip.Addr, prefixLen int) error
	// AddRoute routes dst through the interface (main table, scope link).
	AddRoute(index int, dst netip.Prefix) error
	DelRoute(index int, dst netip.Prefix) error
}

// GroupLinks is what a Links may also do to remove many interfaces in one
// request (RTNL does): the plane puts them in a group of their own and
// deletes the group (rtnetlink's group delete, one
// unregister_netdevice_many for all of them).
type GroupLinks interface {
	// SetGroup puts the interface in group (IFLA_GROUP).
	SetGroup(index int, group uint32) error
	// GroupMembers lists the ifindexes of the interfaces in group.
	GroupMembers(group uint32) ([]int, error)
	// DeleteGroup deletes every interface in group.
	DeleteGroup(group uint32) error
}

var _ GroupLinks = (*RTNL)(nil)

// RTNL is the real Links over a NETLINK_ROUTE socket (and an AF_INET
// datagram socket for interface ioctls, -1 when there is none).
type RTNL struct {
	c       *netlink.Conn
	ioctlFD int
}

var _ Links = (*RTNL)(nil)

// DialRTNL opens a NETLINK_ROUTE socket.
func DialRTNL() (*RTNL, error) {
	c, err := netlink.Dial(unix.NETLINK_ROUTE, nil)
	if err != nil {
		return nil, fmt.Errorf("kernel: dial rtnetlink: %w", err)
	}
	r := NewRTNL(c)
	if fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0); err == nil {
		r.ioctlFD = fd
	}
	return r, nil
}

// NewRTNL wraps c (tests pass one from nltest.Dial); LinkIndex answers by
// netlink only.
func NewRTNL(c *netlink.Conn) *RTNL { return &RTNL{c: c, ioctlFD: -1} }

func (r *RTNL) Close() error {
	if r.ioctlFD >= 0 {
		unix.Close(r.ioctlFD)
		r.ioctlFD = -1
	}
	return r.c.Close()
}

const (
	sizeofIfInfomsg = 16
	sizeofIfAddrmsg = 8
	sizeofRtMsg     = 12
	rtprotL2TPD     = unix.RTPROT_STATIC // routes we add, as an operator's static route
)

// ifinfomsg: family u8, pad u8, type u16, index s32, flags u32, change u32.
func ifinfomsg(index int, flags, change uint32) []byte {
	b := make([]byte, sizeofIfInfomsg)
	b[0] = unix.AF_UNSPEC
	binary.NativeEndian.PutUint32(b[4:], uint32(int32(index)))
	binary.NativeEndian.PutUint32(b[8:], flags)
	binary.NativeEndian.PutUint32(b[12:], change)
	return b
}

func (r *RTNL) exec(typ netlink.HeaderType, flags netlink.HeaderFlags, body []byte, ae *netlink.AttributeEncoder) ([]netlink.Message, error) {
	if ae != nil {
		attrs, err := ae.Encode()
		if err != nil {
			return nil, err
		}
		body = append(body, attrs...)
	}
	return r.c.Execute(netlink.Message{
		Header: netlink.Header{Type: typ, Flags: netlink.Request | netlink.Acknowledge | flags},
		Data:   body,
	})
}

func (r *RTNL) LinkIndex(name string) (int, error) {
	// One ioctl on a datagram socket of this network namespace is much
	// cheaper than a netlink request and its reply (every session's PPP
	// unit is looked up once); netlink is the fallback.
	if r.ioctlFD >= 0 {
		if ifr, err := unix.NewIfreq(name); err == nil {
			if err := unix.IoctlIfreq(r.ioctlFD, unix.SIOCGIFINDEX, ifr); err == nil {
				return int(int32(ifr.Uint32())), nil
			} else if errors.Is(err, unix.ENODEV) {
				return 0, fmt.Errorf("SIOCGIFINDEX %s: %w", name, err)
			}
		}
	}
	return r.linkIndexNetlink(name)
}

func (r *RTNL) linkIndexNetlink(name string) (int, error) {
	ae := netlink.NewAttributeEncoder()
	ae.String(unix.IFLA_IFNAME, name)
	msgs, err := r.c.Execute(netlink.Message{
		Header: netlink.Header{Type: unix.RTM_GETLINK, Flags: netlink.Request},
		Data:   append(ifinfomsg(0, 0, 0), mustEncode(ae)...),
	})
	if err != nil {
		return 0, fmt.Errorf("RTM_GETLINK %s: %w", name, err)
	}
	for _, m := range msgs {
		if m.Header.Type == unix.RTM_NEWLINK && len(m.Data) >= sizeofIfInfomsg {
			return int(int32(binary.NativeEndian.Uint32(m.Data[4:]))), nil
		}
	}
	return 0, fmt.Errorf("RTM_GETLINK %s: no link in reply", name)
}

func mustEncode(ae *netlink.AttributeEncoder) []byte {
	b, err := ae.Encode()
	if err != nil {
		panic(err) // only fixed-size attributes and strings: cannot fail
	}
	return b
}

func (r *RTNL) SetLink(index int, name string, mtu int, up bool) error {
	ae := netlink.NewAttributeEncoder()
	if name != "" {
		ae.String(unix.IFLA_IFNAME, name)
	}
	if mtu > 0 {
		ae.Uint32(unix.IFLA_MTU, uint32(mtu))
	}
	var flags uint32
	if up {
		flags = unix.IFF_UP
	}
	if _, err := r.exec(unix.RTM_NEWLINK, 0, ifinfomsg(index, flags, flags), ae); err != nil {
		return fmt.Errorf("RTM_NEWLINK ifindex %d name %q mtu %d up %v: %w", index, name, mtu, up, err)
	}
	return nil
}

func (r *RTNL) NewPPPLink(name string, pppFD int) (int, error) {
	// The kernel's ppp_nl_newlink only try-locks ppp_mutex, which every
	// /dev/ppp ioctl of every other session takes too, and answers EBUSY
	// when it is held, leaving the retry to us: seen at 1,000 concurrent
	// setups in the lab (6 sessions lost). Retry briefly.
	var err error
	for i := range pppLinkTries {
		if err = r.newPPPLink(name, pppFD); !errors.Is(err, unix.EBUSY) {
			break
		}
		if i < pppLinkTries-1 {
			pppLinkBackoff(i)
		}
	}
	if err != nil {
		return 0, err
	}
	return r.LinkIndex(name)
}

// pppLinkTries bounds the EBUSY retries of NewPPPLink; pppLinkBackoff waits
// before retry i (0.1 ms doubling: under 26 ms in all).
const pppLinkTries = 9

var pppLinkBackoff = func(i int) { time.Sleep(100 * time.Microsecond << i) }

func (r *RTNL) newPPPLink(name string, pppFD int) error {
	ae := netlink.NewAttributeEncoder()
	ae.String(unix.IFLA_IFNAME, name)
	ae.Nested(unix.IFLA_LINKINFO, func(li *netlink.AttributeEncoder) error {
		li.String(unix.IFLA_INFO_KIND, "ppp")
		li.Nested(unix.IFLA_INFO_DATA, func(d *netlink.AttributeEncoder) error {
			d.Uint32(unix.IFLA_PPP_DEV_FD, uint32(int32(pppFD)))
			return nil
		})
		return nil
	})
	if _, err := r.exec(unix.RTM_NEWLINK, netlink.Create|netlink.Excl, ifinfomsg(0, 0, 0), ae); err != nil {
		return fmt.Errorf("RTM_NEWLINK ppp %q: %w", name, err)
	}
	return nil
}

func (r *RTNL) SetUp(index int) error {
	if _, err := r.exec(unix.RTM_NEWLINK, 0, ifinfomsg(index, unix.IFF_UP, unix.IFF_UP), nil); err != nil {
		return fmt.Errorf("RTM_NEWLINK ifindex %d up: %w", index, err)
	}
	return nil
}

func addrMsg(index int, local, peer netip.Addr, prefixLen int) ([]byte, *netlink.AttributeEncoder) {
	b := make([]byte, sizeofIfAddrmsg)
	if local.Is4() {
		b[0] = unix.AF_INET
	} else {
		b[0] = unix.AF_INET6
	}
	b[1] = uint8(prefixLen)
	b[3] = unix.RT_SCOPE_UNIVERSE
	if local.Is6() && local.IsLinkLocalUnicast() {
		b[3] = unix.RT_SCOPE_LINK
	}
	binary.NativeEndian.PutUint32(b[4:], uint32(index))
	ae := netlink.NewAttributeEncoder()
	ae.Bytes(unix.IFA_LOCAL, local.AsSlice())
	if peer.IsValid() {
		ae.Bytes(unix.IFA_ADDRESS, peer.AsSlice())
	}
	return b, ae
}

func (r *RTNL) AddAddr(index int, local, peer netip.Addr, prefixLen int) error {
	b, ae := addrMsg(index, local, peer, prefixLen)
	if _, err := r.exec(unix.RTM_NEWADDR, netlink.Create|netlink.Replace, b, ae); err != nil {
		return fmt.Errorf("RTM_NEWADDR ifindex %d %v peer %v: %w", index, local, peer, err)
	}
	return nil
}

func (r *RTNL) DelAddr(index int, local, peer netip.Addr, prefixLen int) error {
	b, ae := addrMsg(index, local, peer, prefixLen)
	if _, err := r.exec(unix.RTM_DELADDR, 0, b, ae); err != nil {
		return fmt.Errorf("RTM_DELADDR ifindex %d %v: %w", index, local, err)
	}
	return nil
}

func routeMsg(index int, dst netip.Prefix) ([]byte, *netlink.AttributeEncoder) {
	b := make([]byte, sizeofRtMsg)
	if dst.Addr().Is4() {
		b[0] = unix.AF_INET
	} else {
		b[0] = unix.AF_INET6
	}
	b[1] = uint8(dst.Bits())
	b[4] = unix.RT_TABLE_MAIN
	b[5] = rtprotL2TPD
	b[6] = unix.RT_SCOPE_LINK
	b[7] = unix.RTN_UNICAST
	ae := netlink.NewAttributeEncoder()
	ae.Bytes(unix.RTA_DST, dst.Masked().Addr().AsSlice())
	ae.Uint32(unix.RTA_OIF, uint32(index))
	return b, ae
}

func (r *RTNL) AddRoute(index int, dst netip.Prefix) error {
	b, ae := routeMsg(index, dst)
	if _, err := r.exec(unix.RTM_NEWROUTE, netlink.Create|netlink.Replace, b, ae); err != nil {
		return fmt.Errorf("RTM_NEWROUTE %v dev ifindex %d: %w", dst, index, err)
	}
	return nil
}

func (r *RTNL) DelRoute(index int, dst netip.Prefix) error {
	b, ae := routeMsg(index, dst)
	if _, err := r.exec(unix.RTM_DELROUTE, 0, b, ae); err != nil {
		return fmt.Errorf("RTM_DELROUTE %v dev ifindex %d: %w", dst, index, err)
	}
	return nil
}

func (r *RTNL) SetGroup(index int, group uint32) error {
	ae := netlink.NewAttributeEncoder()
	ae.Uint32(unix.IFLA_GROUP, group)
	if _, err := r.exec(unix.RTM_NEWLINK, 0, ifinfomsg(index, 0, 0), ae); err != nil {
		return fmt.Errorf("RTM_NEWLINK ifindex %d group %d: %w", index, group, err)
	}
	return nil
}

func (r *RTNL) GroupMembers(group uint32) ([]int, error) {
	msgs, err := r.c.Execute(netlink.Message{
		Header: netlink.Header{Type: unix.RTM_GETLINK, Flags: netlink.Request | netlink.Dump},
		Data:   ifinfomsg(0, 0, 0),
	})
	if err != nil {
		return nil, fmt.Errorf("RTM_GETLINK dump: %w", err)
	}
	var idx []int
	for _, m := range msgs {
		if m.Header.Type != unix.RTM_NEWLINK {
			continue
		}
		i, g, err := parseLinkGroup(m.Data)
		if err != nil {
			return nil, fmt.Errorf("RTM_GETLINK dump: %w", err)
		}
		if g == group {
			idx = append(idx, i)
		}
	}
	return idx, nil
}

func (r *RTNL) DeleteGroup(group uint32) error {
	ae := netlink.NewAttributeEncoder()
	ae.Uint32(unix.IFLA_GROUP, group)
	if _, err := r.exec(unix.RTM_DELLINK, 0, ifinfomsg(0, 0, 0), ae); err != nil {
		return fmt.Errorf("RTM_DELLINK group %d: %w", group, err)
	}
	return nil
}

// parseLinkGroup reads the ifindex and the group (IFLA_GROUP, 0 when
// absent) of an RTM_NEWLINK message body.
func parseLinkGroup(b []byte) (index int, group uint32, err error) {
	if len(b) < sizeofIfInfomsg {
		return 0, 0, fmt.Errorf("link message of %d bytes, shorter than ifinfomsg", len(b))
	}
	index = int(int32(binary.NativeEndian.Uint32(b[4:])))
	ad, err := netlink.NewAttributeDecoder(b[sizeofIfInfomsg:])
	if err != nil {
		return 0, 0, fmt.Errorf("link %d: %w", index, err)
	}
	for ad.Next() {
		if ad.Type() == unix.IFLA_GROUP {
			group = ad.Uint32()
		}
	}
	if err := ad.Err(); err != nil {
		return 0, 0, fmt.Errorf("link %d: %w", index, err)
	}
	return index, group, nil
}
