// Package kernel is the Linux kernel data path (dataplane.Plane): L2TP
// tunnels and sessions through the "l2tp" generic netlink family, PPP
// through PPPoL2TP sockets and /dev/ppp, the subscriber interface through
// rtnetlink. It is the only package that makes these syscalls.
//
// Per PPP session the plane holds three fds:
//   - a PPPoL2TP socket (AF_PPPOX, PX_PROTO_OL2TP) connected to the
//     session created by SESSION_CREATE; it registers a PPP channel;
//   - a /dev/ppp fd attached to that channel (PPPIOCATTCHAN): LCP and
//     authentication frames from the peer are read here, and every frame
//     the control plane sends is written here;
//   - after Up, a /dev/ppp unit fd (PPPIOCNEWUNIT + PPPIOCCONNECT): the
//     kernel queues NCP frames (IPCP, IPv6CP) here once the channel is
//     connected to a unit, so it is polled too.
//
// Frame format: what is read from and written to these fds starts with the
// PPP protocol field; there are no address/control bytes. On transmit the
// PPPoL2TP driver prepends FF 03 itself; on receive it strips FF 03 before
// ppp_generic queues the frame. LCP frames always carry a 2-byte protocol;
// a peer that negotiated protocol-field compression may send NCP frames
// whose protocol is one byte (odd first byte), which the PPP engine must
// accept.
//
// Receive path: one goroutine per plane in epoll_wait (Poller), not a
// goroutine per fd; see Poller for the memory measurement.
//
// Stale objects: tunnels created with L2TP_ATTR_FD are destroyed by the
// kernel when their UDP socket closes, so a daemon that dies normally
// leaves none. For the rest, the plane appends each tunnel ID it creates
// and deletes to a journal (Options.StateDir, default /run/l2tpd, flock'ed
// so two daemons cannot share it); Cleanup deletes the journal's tunnels
// that the kernel still lists, and nothing else.
//
// Root-only tests live in *_integration_test.go and run when
// L2TPD_KERNEL_TESTS=1 (the qemu lab).
package kernel
