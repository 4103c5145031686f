package kernel

import (
	"errors"
	"fmt"
	"os"
	"os/exec"

	"golang.org/x/sys/unix"
)

// modules the kernel data path needs, for the modprobe hint.
var modules = []string{"l2tp_ppp", "l2tp_netlink", "ppp_generic"}

// Probe reports whether the running kernel can host the kernel data
// plane: the "l2tp" generic netlink family resolves, /dev/ppp opens and an
// AF_PPPOX/PX_PROTO_OL2TP socket can be created. If not, and we are root,
// it runs `modprobe -a l2tp_ppp l2tp_netlink ppp_generic` once and checks
// again. The error wraps dataplane.ErrUnsupported and names what is missing.
func Probe() error {
	err := probeOnce()
	if err == nil || os.Geteuid() != 0 {
		return err
	}
	if path, lerr := exec.LookPath("modprobe"); lerr == nil {
		exec.Command(path, append([]string{"-a", "-q"}, modules...)...).Run() // errors show in the re-check
		return probeOnce()
	}
	return err
}

func probeOnce() error {
	var missing []error
	if c, err := DialClient(); err != nil {
		missing = append(missing, err)
	} else {
		c.Close()
	}
	if fd, err := openPPP(); err != nil {
		if !devPPPExists() {
			err = fmt.Errorf("%s does not exist (modprobe ppp_generic; CONFIG_PPP): %w", devPPP, err)
		}
		missing = append(missing, err)
	} else {
		unix.Close(fd)
	}
	if fd, err := unix.Socket(afPPPoX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, pxProtoOL2TP); err != nil {
		missing = append(missing, fmt.Errorf("socket(AF_PPPOX, PX_PROTO_OL2TP): %w (modprobe l2tp_ppp; CONFIG_PPPOL2TP)", err))
	} else {
		unix.Close(fd)
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("kernel data plane unavailable: %w", errUnsupported(errors.Join(missing...)))
}

// FDBudget checks that RLIMIT_NOFILE leaves room for maxSessions sessions
// (3 fds each: PPPoL2TP socket, /dev/ppp channel, /dev/ppp unit) plus a
// margin for tunnel sockets, netlink, RADIUS and logs.
func FDBudget(maxSessions int) error {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		return fmt.Errorf("kernel: getrlimit(RLIMIT_NOFILE): %w", err)
	}
	return fdBudget(rl.Cur, rl.Max, maxSessions)
}

func fdBudget(cur, hard uint64, maxSessions int) error {
	need := uint64(maxSessions)*fdsPerSession + defaultFDMargin
	if cur >= need {
		return nil
	}
	return fmt.Errorf("kernel: open file limit %d (hard %d) is too low for %d sessions: they need %d fds "+
		"(%d per session + %d); raise it (systemd LimitNOFILE=%d, or ulimit -n) or lower max-sessions to %d",
		cur, hard, maxSessions, need, fdsPerSession, defaultFDMargin, need, maxSessionsFor(cur))
}

func maxSessionsFor(limit uint64) uint64 {
	if limit <= defaultFDMargin {
		return 0
	}
	return (limit - defaultFDMargin) / fdsPerSession
}
