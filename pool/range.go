package pool

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Range is an inclusive range of IPv4 addresses, First <= Last.
type Range struct {
	First, Last netip.Addr
}

// Size is the number of addresses in r (0 for an invalid range).
func (r Range) Size() uint64 {
	if !r.valid() {
		return 0
	}
	return uint64(v4(r.Last)) - uint64(v4(r.First)) + 1
}

// Contains reports whether a lies in r.
func (r Range) Contains(a netip.Addr) bool {
	if !r.valid() || !a.Is4() {
		return false
	}
	x := v4(a)
	return x >= v4(r.First) && x <= v4(r.Last)
}

func (r Range) valid() bool {
	return r.First.Is4() && r.Last.Is4() && v4(r.First) <= v4(r.Last)
}

// String formats r as "a-b", or "a" for a single address. ParseRange
// reads it back.
func (r Range) String() string {
	if r.First == r.Last {
		return r.First.String()
	}
	return r.First.String() + "-" + r.Last.String()
}

// RangeFromPrefix converts an IPv4 prefix into the range of addresses a pool
// may hand out from it: the network and broadcast addresses are left out
// when the prefix is shorter than /31 (a /31 or /32 has neither).
func RangeFromPrefix(p netip.Prefix) (Range, error) {
	if !p.IsValid() || !p.Addr().Is4() {
		return Range{}, fmt.Errorf("pool: prefix %v: not an IPv4 prefix", p)
	}
	p = p.Masked()
	bits := p.Bits()
	first := v4(p.Addr())
	last := first | uint32(uint64(1)<<(32-bits)-1)
	if bits < 31 {
		first++
		last--
	}
	return Range{First: addr4(first), Last: addr4(last)}, nil
}

// ParseRange parses one pool range:
//
//	"10.0.0.10-10.0.0.200"  an inclusive range
//	"10.0.0.10-200"         the same, last octet only (accel-ppp style)
//	"10.0.0.0/24"           a CIDR, without network and broadcast (< /31)
//	"10.0.0.7"              a single address
func ParseRange(s string) (Range, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return Range{}, fmt.Errorf("pool: range %q: %w", s, err)
		}
		return RangeFromPrefix(p)
	}
	lo, hi, isRange := strings.Cut(s, "-")
	first, err := netip.ParseAddr(strings.TrimSpace(lo))
	if err != nil {
		return Range{}, fmt.Errorf("pool: range %q: %w", s, err)
	}
	if !first.Is4() {
		return Range{}, fmt.Errorf("pool: range %q: not an IPv4 address", s)
	}
	last := first
	if isRange {
		hi = strings.TrimSpace(hi)
		if n, err := strconv.ParseUint(hi, 10, 8); err == nil && !strings.Contains(hi, ".") {
			b := first.As4()
			b[3] = byte(n)
			last = netip.AddrFrom4(b)
		} else {
			last, err = netip.ParseAddr(hi)
			if err != nil {
				return Range{}, fmt.Errorf("pool: range %q: %w", s, err)
			}
			if !last.Is4() {
				return Range{}, fmt.Errorf("pool: range %q: not an IPv4 address", s)
			}
		}
	}
	r := Range{First: first, Last: last}
	if !r.valid() {
		return Range{}, fmt.Errorf("pool: range %q: first address after last", s)
	}
	return r, nil
}

// ParseRanges parses several ranges (see ParseRange).
func ParseRanges(ss ...string) ([]Range, error) {
	out := make([]Range, 0, len(ss))
	for _, s := range ss {
		r, err := ParseRange(s)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

func v4(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func addr4(x uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(x >> 24), byte(x >> 16), byte(x >> 8), byte(x)})
}
