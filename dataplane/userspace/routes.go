package userspace

import (
	"net/netip"
	"sync"
)

// routeTable maps destination addresses to sessions. Host routes (the
// subscriber's IPv4 address) and IPv6 /64s are exact-match maps; other
// prefixes (Framed-Route, delegated IPv6 prefixes) are few and kept in
// slices searched longest-first.
type routeTable struct {
	mu    sync.RWMutex
	host4 map[netip.Addr]*session
	net64 map[[8]byte]*session // IPv6 /64 prefix
	ifid  map[[8]byte]*session // fe80::/64 by interface identifier
	other []routeEntry         // everything else, any family
}

type routeEntry struct {
	p netip.Prefix
	s *session
}

func prefix64(a netip.Addr) [8]byte {
	b := a.As16()
	return [8]byte(b[:8])
}

var linkLocal = netip.MustParsePrefix("fe80::/64")

// owner returns the session p is routed to, or nil.
func (t *routeTable) ownerLocked(p netip.Prefix) *session {
	switch {
	case p.Addr().Is4() && p.Bits() == 32:
		return t.host4[p.Addr()]
	case p.Addr().Is6() && p.Bits() == 64:
		return t.net64[prefix64(p.Addr())]
	}
	for _, e := range t.other {
		if e.p == p {
			return e.s
		}
	}
	return nil
}

func (t *routeTable) addLocked(p netip.Prefix, s *session) {
	switch {
	case p.Addr().Is4() && p.Bits() == 32:
		if t.host4 == nil {
			t.host4 = map[netip.Addr]*session{}
		}
		t.host4[p.Addr()] = s
	case p.Addr().Is6() && p.Bits() == 64:
		if t.net64 == nil {
			t.net64 = map[[8]byte]*session{}
		}
		t.net64[prefix64(p.Addr())] = s
	default:
		t.other = append(t.other, routeEntry{p, s})
	}
}

func (t *routeTable) delLocked(p netip.Prefix, s *session) {
	switch {
	case p.Addr().Is4() && p.Bits() == 32:
		if t.host4[p.Addr()] == s {
			delete(t.host4, p.Addr())
		}
	case p.Addr().Is6() && p.Bits() == 64:
		if t.net64[prefix64(p.Addr())] == s {
			delete(t.net64, prefix64(p.Addr()))
		}
	default:
		for i, e := range t.other {
			if e.p == p && e.s == s {
				t.other = append(t.other[:i], t.other[i+1:]...)
				break
			}
		}
	}
}

func (t *routeTable) setIfIDLocked(id [8]byte, s *session) {
	if t.ifid == nil {
		t.ifid = map[[8]byte]*session{}
	}
	t.ifid[id] = s
}

func (t *routeTable) delIfIDLocked(id [8]byte, s *session) {
	if t.ifid[id] == s {
		delete(t.ifid, id)
	}
}

func (t *routeTable) longest(a netip.Addr) *session {
	var best *session
	bits := -1
	for _, e := range t.other {
		if e.p.Bits() > bits && e.p.Contains(a) {
			best, bits = e.s, e.p.Bits()
		}
	}
	return best
}

// lookup4 finds the session for IPv4 destination a.
func (t *routeTable) lookup4(a netip.Addr) *session {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if s := t.host4[a]; s != nil {
		return s
	}
	return t.longest(a)
}

// lookup6 finds the session for IPv6 destination a.
func (t *routeTable) lookup6(a netip.Addr) *session {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if linkLocal.Contains(a) {
		b := a.As16()
		return t.ifid[[8]byte(b[8:])]
	}
	if s := t.net64[prefix64(a)]; s != nil {
		return s
	}
	return t.longest(a)
}

// RangePrefixes returns the fewest prefixes that together cover exactly
// the addresses first..last (inclusive, one family; nil if first > last or
// the families differ). A pool written as a range ("10.1.0.10-10.1.0.20")
// becomes the prefixes given to Config.PoolPrefixes.
func RangePrefixes(first, last netip.Addr) []netip.Prefix {
	if !first.IsValid() || !last.IsValid() || first.Is4() != last.Is4() || last.Less(first) {
		return nil
	}
	first, last = first.Unmap(), last.Unmap()
	var out []netip.Prefix
	for {
		// The largest prefix starting at first that ends at or before last.
		bits := first.BitLen()
		for bits > 0 {
			p := netip.PrefixFrom(first, bits-1)
			if p.Masked().Addr() != first || lastAddr(p).Compare(last) > 0 {
				break
			}
			bits--
		}
		p := netip.PrefixFrom(first, bits)
		out = append(out, p)
		end := lastAddr(p)
		if end == last {
			return out
		}
		first = end.Next()
	}
}

// lastAddr is the highest address in p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// poolCovers reports whether r lies inside one of the pool prefixes
// routed to the device (then r needs no route of its own).
func (p *Plane) poolCovers(r netip.Prefix) bool {
	for _, q := range p.cfg.PoolPrefixes {
		if q.Bits() <= r.Bits() && q.Contains(r.Addr()) {
			return true
		}
	}
	return false
}

// needRoute reports whether a session's prefix r needs a kernel route of
// its own: it lies outside every pool prefix, or the session's MTU is
// below the device's (its own route carries that MTU).
func (p *Plane) needRoute(r netip.Prefix, mtu int) bool {
	return !p.poolCovers(r) || (mtu > 0 && mtu < p.cfg.MTU)
}
