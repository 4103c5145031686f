package userspace

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// tunDevice is the real device: a TUN interface (IFF_TUN|IFF_NO_PI) read and
// written through Go's poller, and an rtnetlink socket for its link, address
// and route changes. Both are created on the calling thread, so they belong
// to that thread's network namespace.
type tunDevice struct {
	f       *os.File
	name    string
	ifindex int
	nl      *rtnl
}

func openTUN(cfg Config) (device, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/net/tun: %w", err)
	}
	ifr, err := unix.NewIfreq(cfg.IfName)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("tun %q: %w", cfg.IfName, err)
	}
	ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("tun %q: TUNSETIFF: %w", cfg.IfName, err)
	}
	name := ifr.Name()
	nl, err := dialRtnl()
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	d := &tunDevice{f: os.NewFile(uintptr(fd), "/dev/net/tun:"+name), name: name, nl: nl}
	idx, err := ifIndex(name)
	if err == nil {
		d.ifindex = idx
		err = nl.linkUp(idx, cfg.MTU)
	}
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("tun %s: %w", name, err)
	}
	return d, nil
}

func ifIndex(name string) (int, error) {
	s, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("socket: %w", err)
	}
	defer unix.Close(s)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return 0, err
	}
	if err := unix.IoctlIfreq(s, unix.SIOCGIFINDEX, ifr); err != nil {
		return 0, fmt.Errorf("SIOCGIFINDEX %s: %w", name, err)
	}
	return int(ifr.Uint32()), nil
}

func (d *tunDevice) Read(p []byte) (int, error)  { return d.f.Read(p) }
func (d *tunDevice) Write(p []byte) (int, error) { return d.f.Write(p) }

func (d *tunDevice) AddRoute(p netip.Prefix, mtu int) error {
	return d.nl.route(unix.RTM_NEWROUTE, p, d.ifindex, mtu)
}

func (d *tunDevice) DelRoute(p netip.Prefix) error {
	err := d.nl.route(unix.RTM_DELROUTE, p, d.ifindex, 0)
	if err == unix.ESRCH {
		return nil
	}
	return err
}

func (d *tunDevice) AddAddr(a netip.Addr) error { return d.nl.addr(unix.RTM_NEWADDR, a, d.ifindex) }
func (d *tunDevice) DelAddr(a netip.Addr) error { return d.nl.addr(unix.RTM_DELADDR, a, d.ifindex) }

// Close closes the TUN fd (the kernel then deletes the interface and its
// routes) and the netlink socket. A Read in progress returns an error.
func (d *tunDevice) Close() error {
	err := d.f.Close()
	d.nl.close()
	return err
}

// rtnl is a minimal rtnetlink client: one request at a time, each
// acknowledged.
type rtnl struct {
	mu  sync.Mutex
	fd  int
	seq uint32
	buf []byte
}

func dialRtnl() (*rtnl, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("rtnetlink socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("rtnetlink bind: %w", err)
	}
	return &rtnl{fd: fd, buf: make([]byte, 8192)}, nil
}

func (n *rtnl) close() { unix.Close(n.fd) }

// attr appends one rtattr (RFC 3549 / linux/rtnetlink.h), 4-byte aligned.
func attr(b []byte, typ uint16, val []byte) []byte {
	b = binary.NativeEndian.AppendUint16(b, uint16(unix.SizeofRtAttr+len(val)))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, val...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func u32(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }

// do sends one request (body after the nlmsghdr) and waits for its ack.
func (n *rtnl) do(typ uint16, flags uint16, body []byte) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.seq++
	msg := make([]byte, 0, unix.SizeofNlMsghdr+len(body))
	msg = binary.NativeEndian.AppendUint32(msg, uint32(unix.SizeofNlMsghdr+len(body)))
	msg = binary.NativeEndian.AppendUint16(msg, typ)
	msg = binary.NativeEndian.AppendUint16(msg, flags|unix.NLM_F_REQUEST|unix.NLM_F_ACK)
	msg = binary.NativeEndian.AppendUint32(msg, n.seq)
	msg = binary.NativeEndian.AppendUint32(msg, 0)
	msg = append(msg, body...)
	if err := unix.Sendto(n.fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("rtnetlink send: %w", err)
	}
	for {
		r, _, err := unix.Recvfrom(n.fd, n.buf, 0)
		if err != nil {
			return fmt.Errorf("rtnetlink receive: %w", err)
		}
		for b := n.buf[:r]; len(b) >= unix.SizeofNlMsghdr; {
			l := int(binary.NativeEndian.Uint32(b))
			if l < unix.SizeofNlMsghdr || l > len(b) {
				return fmt.Errorf("rtnetlink: bad message length %d", l)
			}
			typ := binary.NativeEndian.Uint16(b[4:])
			seq := binary.NativeEndian.Uint32(b[8:])
			data := b[unix.SizeofNlMsghdr:l]
			b = b[min((l+3)&^3, len(b)):]
			if seq != n.seq || typ != unix.NLMSG_ERROR {
				continue
			}
			if len(data) < 4 {
				return fmt.Errorf("rtnetlink: short error message")
			}
			if e := int32(binary.NativeEndian.Uint32(data)); e != 0 {
				return unix.Errno(-e)
			}
			return nil
		}
	}
}

func family(a netip.Addr) byte {
	if a.Is4() {
		return unix.AF_INET
	}
	return unix.AF_INET6
}

func (n *rtnl) linkUp(ifindex, mtu int) error {
	var b []byte
	b = append(b, unix.AF_UNSPEC, 0, 0, 0)                   // family, pad, type
	b = binary.NativeEndian.AppendUint32(b, uint32(ifindex)) // index
	b = binary.NativeEndian.AppendUint32(b, unix.IFF_UP)     // flags
	b = binary.NativeEndian.AppendUint32(b, unix.IFF_UP)     // change
	if mtu > 0 {
		b = attr(b, unix.IFLA_MTU, u32(uint32(mtu)))
	}
	if err := n.do(unix.RTM_NEWLINK, 0, b); err != nil {
		return fmt.Errorf("set link %d up: %w", ifindex, err)
	}
	return nil
}

func (n *rtnl) route(typ uint16, p netip.Prefix, ifindex, mtu int) error {
	a := p.Addr()
	b := []byte{
		family(a), byte(p.Bits()), 0, 0, // family, dst_len, src_len, tos
		unix.RT_TABLE_MAIN, unix.RTPROT_STATIC, unix.RT_SCOPE_LINK, unix.RTN_UNICAST,
		0, 0, 0, 0, // flags
	}
	b = attr(b, unix.RTA_DST, a.AsSlice())
	b = attr(b, unix.RTA_OIF, u32(uint32(ifindex)))
	if mtu > 0 {
		b = attr(b, unix.RTA_METRICS, attr(nil, unix.RTAX_MTU, u32(uint32(mtu))))
	}
	var flags uint16
	if typ == unix.RTM_NEWROUTE {
		flags = unix.NLM_F_CREATE | unix.NLM_F_REPLACE
	}
	return n.do(typ, flags, b)
}

func (n *rtnl) addr(typ uint16, a netip.Addr, ifindex int) error {
	b := []byte{family(a), byte(a.BitLen()), 0, unix.RT_SCOPE_UNIVERSE}
	b = binary.NativeEndian.AppendUint32(b, uint32(ifindex))
	b = attr(b, unix.IFA_LOCAL, a.AsSlice())
	b = attr(b, unix.IFA_ADDRESS, a.AsSlice())
	var flags uint16
	if typ == unix.RTM_NEWADDR {
		flags = unix.NLM_F_CREATE | unix.NLM_F_REPLACE
	}
	return n.do(typ, flags, b)
}
