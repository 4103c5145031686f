package testenv

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"
)

// ICMP echo message types.
const (
	icmpv4EchoRequest = 8
	icmpv4EchoReply   = 0
	icmpv6EchoRequest = 128
	icmpv6EchoReply   = 129
)

// Ping sends ICMP echo requests from inside the namespace to dst, one every
// 200ms, until a matching reply arrives or ctx expires. It needs no ping
// binary: a raw socket is opened inside the namespace with Do.
func (ns *Netns) Ping(ctx context.Context, dst netip.Addr) error {
	network, req, rep := "ip4:icmp", byte(icmpv4EchoRequest), byte(icmpv4EchoReply)
	if dst.Is6() && !dst.Is4In6() {
		network, req, rep = "ip6:ipv6-icmp", icmpv6EchoRequest, icmpv6EchoReply
	}
	var conn net.PacketConn
	if err := ns.Do(func() (err error) {
		conn, err = net.ListenPacket(network, "")
		return err
	}); err != nil {
		return fmt.Errorf("testenv: ping %s from %s: %w", dst, ns.Name, err)
	}
	defer conn.Close()
	id := uint16(os.Getpid())
	peer := &net.IPAddr{IP: dst.AsSlice(), Zone: dst.Zone()}
	buf := make([]byte, 1500)
	for seq := uint16(1); ; seq++ {
		msg := echoMessage(req, id, seq, dst.Is4())
		if _, err := conn.WriteTo(msg, peer); err != nil {
			return fmt.Errorf("testenv: ping %s from %s: send: %w", dst, ns.Name, err)
		}
		deadline := time.Now().Add(200 * time.Millisecond)
		if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
			deadline = d
		}
		conn.SetReadDeadline(deadline)
		for {
			n, from, err := conn.ReadFrom(buf)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				break
			}
			if err != nil {
				return fmt.Errorf("testenv: ping %s from %s: receive: %w", dst, ns.Name, err)
			}
			if isEchoReply(buf[:n], rep, id, seq) && from.(*net.IPAddr).IP.Equal(peer.IP) {
				return nil
			}
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("testenv: ping %s from %s: no reply: %w", dst, ns.Name, err)
		}
	}
}

// echoMessage builds an ICMP echo request. For ICMPv6 the kernel fills in
// the checksum (it covers a pseudo-header only the kernel knows).
func echoMessage(typ byte, id, seq uint16, v4 bool) []byte {
	m := []byte{typ, 0, 0, 0, 0, 0, 0, 0, 'l', '2', 't', 'p', 'd'}
	binary.BigEndian.PutUint16(m[4:], id)
	binary.BigEndian.PutUint16(m[6:], seq)
	if v4 {
		binary.BigEndian.PutUint16(m[2:], inetChecksum(m))
	}
	return m
}

// isEchoReply reports whether b is an echo reply with our id and seq. The
// kernel may rewrite the id of datagram ICMP sockets, but raw sockets keep it.
func isEchoReply(b []byte, typ byte, id, seq uint16) bool {
	return len(b) >= 8 && b[0] == typ && b[1] == 0 &&
		binary.BigEndian.Uint16(b[4:]) == id && binary.BigEndian.Uint16(b[6:]) == seq
}

// inetChecksum is the RFC 1071 Internet checksum.
func inetChecksum(b []byte) uint16 {
	var sum uint32
	for len(b) >= 2 {
		sum += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
