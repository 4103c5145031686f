package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path"
	"strconv"
	"strings"
)

// DefaultPort is the L2TP UDP port (RFC 2661).
const DefaultPort = 1701

// AddrRange is an inclusive range of addresses of one family, written in
// the file as a CIDR prefix ("192.0.2.0/24"), a range
// ("198.51.100.10-198.51.100.20") or one address.
type AddrRange struct {
	From, To netip.Addr
}

// Contains reports whether a lies in the range.
func (r AddrRange) Contains(a netip.Addr) bool {
	return a.BitLen() == r.From.BitLen() && r.From.Compare(a) <= 0 && a.Compare(r.To) <= 0
}

// Overlaps reports whether the ranges share an address.
func (r AddrRange) Overlaps(o AddrRange) bool {
	return r.From.BitLen() == o.From.BitLen() && r.From.Compare(o.To) <= 0 && o.From.Compare(r.To) <= 0
}

// Prefix returns the prefix the range is exactly equal to, if any.
func (r AddrRange) Prefix() (netip.Prefix, bool) {
	for bits := 0; bits <= r.From.BitLen(); bits++ {
		p := netip.PrefixFrom(r.From, bits)
		if p.Masked().Addr() != r.From {
			continue
		}
		if lastAddr(p) == r.To {
			return p, true
		}
	}
	return netip.Prefix{}, false
}

// String writes the range the way the file does: a prefix when it is one
// (except a single address, written bare), otherwise "from-to".
func (r AddrRange) String() string {
	if r.From == r.To {
		return r.From.String()
	}
	if p, ok := r.Prefix(); ok {
		return p.String()
	}
	return r.From.String() + "-" + r.To.String()
}

// lastAddr is the highest address of a (masked) prefix.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// parseRange parses a prefix, a range or an address.
func parseRange(s string) (AddrRange, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return AddrRange{}, fmt.Errorf("not a valid prefix: %w", err)
		}
		if p.Addr().Zone() != "" {
			return AddrRange{}, errors.New("zones are not allowed")
		}
		if m := p.Masked(); m != p {
			return AddrRange{}, fmt.Errorf("host bits are set; did you mean %q?", m.String())
		}
		return AddrRange{From: p.Addr(), To: lastAddr(p)}, nil
	}
	if from, to, ok := strings.Cut(s, "-"); ok {
		a, err := parseAddr(strings.TrimSpace(from))
		if err != nil {
			return AddrRange{}, fmt.Errorf("range start: %w", err)
		}
		b, err := parseAddr(strings.TrimSpace(to))
		if err != nil {
			return AddrRange{}, fmt.Errorf("range end: %w", err)
		}
		if a.BitLen() != b.BitLen() {
			return AddrRange{}, errors.New("range mixes IPv4 and IPv6")
		}
		if a.Compare(b) > 0 {
			return AddrRange{}, errors.New("range start is above its end")
		}
		return AddrRange{From: a, To: b}, nil
	}
	a, err := parseAddr(s)
	if err != nil {
		return AddrRange{}, err
	}
	return AddrRange{From: a, To: a}, nil
}

// parseAddr parses an IP address without zone; IPv4-mapped IPv6 is
// unmapped.
func parseAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("not an IP address: %w", err)
	}
	if a.Zone() != "" {
		return netip.Addr{}, errors.New("zones are not allowed")
	}
	return a.Unmap(), nil
}

// parseListen parses "addr:port", "[v6]:port" or a bare address (port
// 1701).
func parseListen(s string) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		if ap.Port() == 0 {
			return netip.AddrPort{}, errors.New("port 0 is not allowed")
		}
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
	}
	a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]"))
	if err != nil {
		return netip.AddrPort{}, errors.New(`want "address:port", "[ipv6]:port" or an address (port 1701)`)
	}
	return netip.AddrPortFrom(a.Unmap(), DefaultPort), nil
}

// parseHostPort normalises "host[:port]" to "host:port" (port 1701 by
// default). The host may be a name; it is not resolved here.
func parseHostPort(s string) (string, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		host, port = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]"), strconv.Itoa(DefaultPort)
	}
	if host == "" {
		return "", errors.New("the host is empty")
	}
	if strings.ContainsAny(host, " \t/[]") {
		return "", errors.New("not a valid host name or address")
	}
	if a, err := netip.ParseAddr(host); err == nil && a.Zone() != "" {
		return "", errors.New("zones are not allowed")
	}
	if !strings.Contains(host, ":") && strings.Count(s, ":") > 1 {
		return "", errors.New("write IPv6 addresses as [addr]:port")
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("port %q is not in 1..65535", port)
	}
	return net.JoinHostPort(host, strconv.Itoa(n)), nil
}

// globMatch matches a lower-case glob against a lower-case name.
func globMatch(glob, name string) bool {
	ok, err := path.Match(glob, name)
	return err == nil && ok
}
