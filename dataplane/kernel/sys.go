package kernel

import (
	"encoding/binary"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// PPP is the PPPoL2TP socket and /dev/ppp half of the data path: every
// syscall a session makes apart from netlink. The plane uses SysPPP; tests
// use a fake. All fds are returned non-blocking and close-on-exec.
type PPP interface {
	// ConnectPPPoL2TP opens an AF_PPPOX/PX_PROTO_OL2TP socket and
	// connects it with sa (PPPoL2TPAddr.Marshal). The tunnel's UDP fd
	// inside sa must stay open during the call.
	ConnectPPPoL2TP(sa []byte) (fd int, err error)
	// ChannelIndex returns the PPP channel of a connected socket (PPPIOCGCHAN).
	ChannelIndex(sock int) (int, error)
	// AttachChannel opens /dev/ppp and attaches it to channel idx
	// (PPPIOCATTCHAN). Reading it yields the frames no unit takes (LCP,
	// authentication; everything before a unit is connected); writing it
	// sends a frame to the peer.
	AttachChannel(idx int) (fd int, err error)
	// NewUnit opens /dev/ppp and creates a PPP unit (PPPIOCNEWUNIT with
	// -1: the kernel picks the number; the interface is "ppp<unit>").
	NewUnit() (fd, unit int, err error)
	// OpenPPP opens /dev/ppp without creating a unit, for
	// Links.NewPPPLink to turn into a unit with a chosen interface name.
	OpenPPP() (fd int, err error)
	// UnitIndex returns the unit number of a unit fd (PPPIOCGUNIT).
	UnitIndex(unitFD int) (int, error)
	// ConnectChannel connects the channel to the unit (PPPIOCCONNECT).
	ConnectChannel(chanFD, unit int) error
	// SetMRU sets the unit's MRU (PPPIOCSMRU).
	SetMRU(unitFD, mru int) error
	// SetNPMode sets what the unit does with a network protocol's packets
	// (PPPIOCSNPMODE).
	SetNPMode(unitFD int, proto uint16, mode NPMode) error
	// Write writes one frame (protocol field first) to a channel or unit fd.
	Write(fd int, frame []byte) error
	Close(fd int) error
}

// SysPPP is the real PPP implementation.
type SysPPP struct{}

var _ PPP = SysPPP{}

const devPPP = "/dev/ppp"

func (SysPPP) ConnectPPPoL2TP(sa []byte) (int, error) {
	fd, err := unix.Socket(afPPPoX, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, pxProtoOL2TP)
	if err != nil {
		return -1, fmt.Errorf("socket(AF_PPPOX, PX_PROTO_OL2TP) (modprobe l2tp_ppp): %w", err)
	}
	_, _, errno := unix.Syscall(unix.SYS_CONNECT, uintptr(fd), uintptr(unsafe.Pointer(&sa[0])), uintptr(len(sa)))
	if errno != 0 {
		unix.Close(fd)
		return -1, fmt.Errorf("connect PPPoL2TP socket: %w", errno)
	}
	return fd, nil
}

func ioctlPtrInt(fd int, req uint, v *int32) error {
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), uintptr(unsafe.Pointer(v)))
	if errno != 0 {
		return errno
	}
	return nil
}

func (SysPPP) ChannelIndex(sock int) (int, error) {
	var idx int32
	if err := ioctlPtrInt(sock, unix.PPPIOCGCHAN, &idx); err != nil {
		return -1, fmt.Errorf("PPPIOCGCHAN: %w", err)
	}
	return int(idx), nil
}

func openPPP() (int, error) {
	fd, err := unix.Open(devPPP, unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open %s (modprobe ppp_generic): %w", devPPP, err)
	}
	return fd, nil
}

func (SysPPP) AttachChannel(idx int) (int, error) {
	fd, err := openPPP()
	if err != nil {
		return -1, err
	}
	v := int32(idx)
	if err := ioctlPtrInt(fd, unix.PPPIOCATTCHAN, &v); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("PPPIOCATTCHAN %d: %w", idx, err)
	}
	return fd, nil
}

func (SysPPP) NewUnit() (int, int, error) {
	fd, err := openPPP()
	if err != nil {
		return -1, -1, err
	}
	unit := int32(-1)
	if err := ioctlPtrInt(fd, unix.PPPIOCNEWUNIT, &unit); err != nil {
		unix.Close(fd)
		return -1, -1, fmt.Errorf("PPPIOCNEWUNIT: %w", err)
	}
	return fd, int(unit), nil
}

func (SysPPP) OpenPPP() (int, error) { return openPPP() }

func (SysPPP) UnitIndex(unitFD int) (int, error) {
	var unit int32
	if err := ioctlPtrInt(unitFD, unix.PPPIOCGUNIT, &unit); err != nil {
		return -1, fmt.Errorf("PPPIOCGUNIT: %w", err)
	}
	return int(unit), nil
}

func (SysPPP) ConnectChannel(chanFD, unit int) error {
	v := int32(unit)
	if err := ioctlPtrInt(chanFD, unix.PPPIOCCONNECT, &v); err != nil {
		return fmt.Errorf("PPPIOCCONNECT unit %d: %w", unit, err)
	}
	return nil
}

func (SysPPP) SetMRU(unitFD, mru int) error {
	v := int32(mru)
	if err := ioctlPtrInt(unitFD, unix.PPPIOCSMRU, &v); err != nil {
		return fmt.Errorf("PPPIOCSMRU %d: %w", mru, err)
	}
	return nil
}

// npioctl encodes struct npioctl { int protocol; enum NPmode mode; }.
func npioctl(proto uint16, mode NPMode) [sizeofNPIoctl]byte {
	var b [sizeofNPIoctl]byte
	binary.NativeEndian.PutUint32(b[0:], uint32(proto))
	binary.NativeEndian.PutUint32(b[4:], uint32(mode))
	return b
}

func (SysPPP) SetNPMode(unitFD int, proto uint16, mode NPMode) error {
	b := npioctl(proto, mode)
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(unitFD), uintptr(unix.PPPIOCSNPMODE), uintptr(unsafe.Pointer(&b[0])))
	if errno != 0 {
		return fmt.Errorf("PPPIOCSNPMODE %#04x %v: %w", proto, mode, errno)
	}
	return nil
}

func (SysPPP) Write(fd int, frame []byte) error {
	_, err := unix.Write(fd, frame)
	if err != nil {
		return fmt.Errorf("write PPP frame: %w", err)
	}
	return nil
}

func (SysPPP) Close(fd int) error { return unix.Close(fd) }

// devPPPExists reports whether the /dev/ppp node is there at all.
func devPPPExists() bool {
	_, err := os.Stat(devPPP)
	return err == nil
}
