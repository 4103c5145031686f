package bench

import (
	"encoding/binary"
	"net/netip"
)

// IPv4 and ICMP constants for the data probes (RFC 791, RFC 792).
const (
	ipv4HeaderLen   = 20
	icmpHeaderLen   = 8
	ipProtoICMP     = 1
	icmpEchoRequest = 8
	icmpEchoReply   = 0
	probeTTL        = 64
)

// checksum is the Internet checksum (RFC 1071) of b.
func checksum(b []byte) uint16 {
	var sum uint32
	for len(b) >= 2 {
		sum += uint32(binary.BigEndian.Uint16(b))
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

// AppendEchoRequest appends an IPv4 packet holding an ICMP Echo Request
// from src to dst with identifier id, sequence seq and size payload bytes
// (a repeating pattern) to b.
func AppendEchoRequest(b []byte, src, dst netip.Addr, id, seq uint16, size int) []byte {
	total := ipv4HeaderLen + icmpHeaderLen + size
	start := len(b)
	s4, d4 := src.As4(), dst.As4()
	b = append(b,
		0x45, 0, byte(total>>8), byte(total), // version/IHL, TOS, total length
		0, 0, 0x40, 0, // ID, DF
		probeTTL, ipProtoICMP, 0, 0, // TTL, protocol, checksum
	)
	b = append(b, s4[:]...)
	b = append(b, d4[:]...)
	binary.BigEndian.PutUint16(b[start+10:], checksum(b[start:start+ipv4HeaderLen]))
	icmp := len(b)
	b = append(b, icmpEchoRequest, 0, 0, 0, byte(id>>8), byte(id), byte(seq>>8), byte(seq))
	for i := range size {
		b = append(b, byte(i))
	}
	binary.BigEndian.PutUint16(b[icmp+2:], checksum(b[icmp:]))
	return b
}

// isEchoReply reports whether pkt is an IPv4 ICMP Echo Reply from peer to
// local with valid checksums.
func isEchoReply(pkt []byte, local, peer netip.Addr) bool {
	if len(pkt) < ipv4HeaderLen || pkt[0]>>4 != 4 {
		return false
	}
	ihl := int(pkt[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(pkt[2:]))
	if ihl < ipv4HeaderLen || total < ihl+icmpHeaderLen || total > len(pkt) || pkt[9] != ipProtoICMP {
		return false
	}
	if checksum(pkt[:ihl]) != 0 {
		return false
	}
	if netip.AddrFrom4([4]byte(pkt[12:16])) != peer || netip.AddrFrom4([4]byte(pkt[16:20])) != local {
		return false
	}
	icmp := pkt[ihl:total]
	return icmp[0] == icmpEchoReply && checksum(icmp) == 0
}
