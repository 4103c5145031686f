package userspace

import (
	"encoding/binary"
	"net/netip"
	"sync"
)

// routeTable maps destination addresses to sessions. Host routes (the
// subscriber's IPv4 address) and IPv6 /64s are exact-match maps; other
// prefixes (Framed-Route, delegated IPv6 prefixes) are few and kept in
// slices searched longest-first.
//
// Entries are values: every routed session has a slot in sess, and the
// maps hold slot numbers, so they have no pointers for the garbage
// collector to scan (tens of thousands of entries) and take 8 bytes an
// entry for host routes.
type routeTable struct {
	mu    sync.RWMutex
	sess  []*session         // by slot; slot 0 is never used
	free  []uint32           // slots of closed sessions, to reuse
	host4 map[uint32]uint32  // by address (ip4key): the map's fast path
	net64 map[[8]byte]uint32 // IPv6 /64 prefix
	ifid  map[[8]byte]uint32 // fe80::/64 by interface identifier
	other []routeEntry       // everything else, any family
}

type routeEntry struct {
	p    netip.Prefix
	slot uint32
}

// ip4key is IPv4 address a as a number.
func ip4key(a netip.Addr) uint32 {
	b := a.As4()
	return binary.BigEndian.Uint32(b[:])
}

func prefix64(a netip.Addr) [8]byte {
	b := a.As16()
	return [8]byte(b[:8])
}

var linkLocal = netip.MustParsePrefix("fe80::/64")

// slotLocked returns s's slot, giving it one if it has none (caller holds
// mu for writing).
func (t *routeTable) slotLocked(s *session) uint32 {
	if s.slot != 0 {
		return s.slot
	}
	if n := len(t.free); n > 0 {
		s.slot = t.free[n-1]
		t.free = t.free[:n-1]
	} else {
		if len(t.sess) == 0 {
			t.sess = append(t.sess, nil) // slot 0: no session
		}
		s.slot = uint32(len(t.sess))
		t.sess = append(t.sess, nil)
	}
	t.sess[s.slot] = s
	return s.slot
}

// freeSlotLocked gives s's slot back once s has no entries left.
func (t *routeTable) freeSlotLocked(s *session) {
	if s.slot == 0 {
		return
	}
	t.sess[s.slot] = nil
	t.free = append(t.free, s.slot)
	s.slot = 0
}

// at returns the session in slot i (nil for 0 or a freed slot).
func (t *routeTable) at(i uint32) *session {
	if int(i) < len(t.sess) {
		return t.sess[i]
	}
	return nil
}

// owner returns the session p is routed to, or nil.
func (t *routeTable) ownerLocked(p netip.Prefix) *session {
	switch {
	case p.Addr().Is4() && p.Bits() == 32:
		return t.at(t.host4[ip4key(p.Addr())])
	case p.Addr().Is6() && p.Bits() == 64:
		return t.at(t.net64[prefix64(p.Addr())])
	}
	for _, e := range t.other {
		if e.p == p {
			return t.at(e.slot)
		}
	}
	return nil
}

func (t *routeTable) ifidOwnerLocked(id [8]byte) *session {
	return t.at(t.ifid[id])
}

func (t *routeTable) addLocked(p netip.Prefix, s *session) {
	i := t.slotLocked(s)
	switch {
	case p.Addr().Is4() && p.Bits() == 32:
		if t.host4 == nil {
			t.host4 = map[uint32]uint32{}
		}
		t.host4[ip4key(p.Addr())] = i
	case p.Addr().Is6() && p.Bits() == 64:
		if t.net64 == nil {
			t.net64 = map[[8]byte]uint32{}
		}
		t.net64[prefix64(p.Addr())] = i
	default:
		t.other = append(t.other, routeEntry{p, i})
	}
}

func (t *routeTable) delLocked(p netip.Prefix, s *session) {
	i := s.slot
	if i == 0 {
		return // s has no entries
	}
	switch {
	case p.Addr().Is4() && p.Bits() == 32:
		if t.host4[ip4key(p.Addr())] == i {
			delete(t.host4, ip4key(p.Addr()))
		}
	case p.Addr().Is6() && p.Bits() == 64:
		if t.net64[prefix64(p.Addr())] == i {
			delete(t.net64, prefix64(p.Addr()))
		}
	default:
		for j, e := range t.other {
			if e.p == p && e.slot == i {
				t.other = append(t.other[:j], t.other[j+1:]...)
				break
			}
		}
	}
}

func (t *routeTable) setIfIDLocked(id [8]byte, s *session) {
	if t.ifid == nil {
		t.ifid = map[[8]byte]uint32{}
	}
	t.ifid[id] = t.slotLocked(s)
}

func (t *routeTable) delIfIDLocked(id [8]byte, s *session) {
	if s.slot != 0 && t.ifid[id] == s.slot {
		delete(t.ifid, id)
	}
}

func (t *routeTable) longest(a netip.Addr) *session {
	var best uint32
	bits := -1
	for _, e := range t.other {
		if e.p.Bits() > bits && e.p.Contains(a) {
			best, bits = e.slot, e.p.Bits()
		}
	}
	return t.at(best)
}

// lookup4 finds the session for IPv4 destination a.
func (t *routeTable) lookup4(a netip.Addr) *session {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if i, ok := t.host4[ip4key(a)]; ok {
		return t.at(i)
	}
	return t.longest(a)
}

// lookup6 finds the session for IPv6 destination a.
func (t *routeTable) lookup6(a netip.Addr) *session {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if linkLocal.Contains(a) {
		b := a.As16()
		return t.at(t.ifid[[8]byte(b[8:])])
	}
	if i, ok := t.net64[prefix64(a)]; ok {
		return t.at(i)
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

// pool4 is an IPv4 pool prefix as numbers, for poolCovers.
type pool4 struct {
	base, mask uint32
	bits       int
}

func newPool4(q netip.Prefix) pool4 {
	mask := uint32(0)
	if q.Bits() > 0 {
		mask = ^uint32(0) << (32 - q.Bits())
	}
	return pool4{base: ip4key(q.Addr()) & mask, mask: mask, bits: q.Bits()}
}

// poolCovers reports whether r lies inside one of the pool prefixes
// routed to the device (then r needs no route of its own).
func (p *Plane) poolCovers(r netip.Prefix) bool {
	if r.Addr().Is4() {
		a, bits := ip4key(r.Addr()), r.Bits()
		for _, q := range p.pools4 {
			if q.bits <= bits && a&q.mask == q.base {
				return true
			}
		}
		return false
	}
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
func (p *Plane) needRoute(r netip.Prefix, mtu int32) bool {
	return !p.poolCovers(r) || (mtu > 0 && int(mtu) < p.cfg.MTU)
}
