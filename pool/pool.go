// Package pool hands out IPv4 addresses to subscribers from named pools.
//
// A Pool is one or more address ranges minus an optional gateway address.
// Allocation state is a bitmap (one bit per address: 100,000 addresses cost
// about 12 KiB), searched round-robin from a cursor so Allocate is O(1)
// amortised and a just-released address is not handed out again at once.
// Owners (a session handle per allocation) are recorded only when non-zero.
//
// A Set holds the configured pools by name and can be reconfigured without
// losing allocations: an allocated address that falls outside its pool's new
// ranges stays allocated (an "orphan") until it is released, then vanishes.
//
// Everything here is pure and safe for concurrent use.
package pool

import (
	"errors"
	"fmt"
	"math/bits"
	"net/netip"
	"slices"
	"sync"
)

// Errors returned (wrapped with the pool's name and the address) by Pool
// and Set methods; test for them with errors.Is.
var (
	ErrExhausted    = errors.New("address pool exhausted")
	ErrInUse        = errors.New("address already allocated")
	ErrNotInPool    = errors.New("address not in pool")
	ErrNotAllocated = errors.New("address not allocated")
	ErrUnknownPool  = errors.New("unknown pool")
)

// MaxSize bounds the number of addresses in one pool (a /8), so that a
// typing mistake such as 0.0.0.0/0 cannot cost 512 MiB of bitmap.
const MaxSize = 1 << 24

// Stats are a pool's counters.
type Stats struct {
	Size    int // allocatable addresses in the current ranges
	Used    int // allocated addresses, orphans included
	Free    int // Size minus the allocated addresses inside the ranges
	Orphans int // allocated addresses outside the current ranges
}

// segment is one range mapped onto the bitmap: addresses first..first+n-1
// are bits base..base+n-1.
type segment struct {
	first, n, base uint32
}

// Pool is a named IPv4 address pool. The zero value is not usable; call New.
type Pool struct {
	name string

	mu       sync.Mutex
	ranges   []Range
	gateway  netip.Addr
	segs     []segment         // sorted by first, non-overlapping
	bitmap   []uint64          // 1 = allocated, excluded (gateway) or past the end
	total    uint32            // bits in use by segments
	gwIndex  int64             // bit index of the gateway, -1 if none
	cursor   int               // word index where the next search starts
	inRange  int               // allocated addresses inside the segments
	orphans  map[uint32]uint64 // allocated outside the ranges -> owner
	owners   map[uint32]uint64 // address -> owner, only for owner != 0
	capacity int
}

// New makes a pool from ranges (which must not overlap). gateway, if valid,
// is never handed out (nor reservable) even when it lies in a range.
func New(name string, ranges []Range, gateway netip.Addr) (*Pool, error) {
	p := &Pool{name: name}
	if err := p.configure(ranges, gateway); err != nil {
		return nil, err
	}
	return p, nil
}

// Name is the pool's name.
func (p *Pool) Name() string { return p.name }

// Ranges returns a copy of the pool's current ranges.
func (p *Pool) Ranges() []Range {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.ranges)
}

// Gateway returns the excluded gateway address (invalid if none).
func (p *Pool) Gateway() netip.Addr {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.gateway
}

// layout validates ranges and computes segments.
func layout(name string, ranges []Range) ([]segment, uint32, error) {
	rs := slices.Clone(ranges)
	for _, r := range rs {
		if !r.valid() {
			return nil, 0, fmt.Errorf("pool %s: invalid range %v", name, r)
		}
	}
	slices.SortFunc(rs, func(a, b Range) int { return int(int64(v4(a.First)) - int64(v4(b.First))) })
	var segs []segment
	var total uint64
	for i, r := range rs {
		if i > 0 && v4(r.First) <= v4(rs[i-1].Last) {
			return nil, 0, fmt.Errorf("pool %s: ranges %v and %v overlap", name, rs[i-1], r)
		}
		n := r.Size()
		if total+n > MaxSize {
			return nil, 0, fmt.Errorf("pool %s: more than %d addresses", name, MaxSize)
		}
		segs = append(segs, segment{first: v4(r.First), n: uint32(n), base: uint32(total)})
		total += n
	}
	return segs, uint32(total), nil
}

// index maps an address to its bit, or -1.
func indexIn(segs []segment, x uint32) int64 {
	i, found := slices.BinarySearchFunc(segs, x, func(s segment, x uint32) int {
		switch {
		case x < s.first:
			return 1
		case x-s.first >= s.n:
			return -1
		}
		return 0
	})
	if !found {
		return -1
	}
	return int64(segs[i].base + (x - segs[i].first))
}

func (p *Pool) addrAt(idx uint32) uint32 {
	i, _ := slices.BinarySearchFunc(p.segs, idx, func(s segment, idx uint32) int {
		switch {
		case idx < s.base:
			return 1
		case idx-s.base >= s.n:
			return -1
		}
		return 0
	})
	s := p.segs[i]
	return s.first + (idx - s.base)
}

// configure installs new ranges and gateway, carrying over allocations.
func (p *Pool) configure(ranges []Range, gateway netip.Addr) error {
	if gateway.IsValid() && !gateway.Is4() {
		return fmt.Errorf("pool %s: gateway %v is not IPv4", p.name, gateway)
	}
	segs, total, err := layout(p.name, ranges)
	if err != nil {
		return err
	}
	words := (int(total) + 63) / 64
	bm := make([]uint64, words)
	// Bits past the end count as taken so a full-word test suffices.
	if rem := total % 64; rem != 0 {
		bm[words-1] = ^uint64(0) << rem
	}
	gw := int64(-1)
	if gateway.IsValid() {
		gw = indexIn(segs, v4(gateway))
	}
	capacity := int(total)
	if gw >= 0 {
		bm[gw/64] |= 1 << (gw % 64)
		capacity--
	}

	// Carry over what is allocated now.
	var allocated []uint32
	for w, word := range p.bitmap {
		for word != 0 {
			b := bits.TrailingZeros64(word)
			word &^= 1 << b
			idx := int64(w*64 + b)
			if idx >= int64(p.total) || idx == p.gwIndex {
				continue
			}
			allocated = append(allocated, p.addrAt(uint32(idx)))
		}
	}
	for x := range p.orphans {
		allocated = append(allocated, x)
	}
	orphans := map[uint32]uint64(nil)
	inRange := 0
	for _, x := range allocated {
		idx := indexIn(segs, x)
		if idx < 0 || idx == gw {
			if orphans == nil {
				orphans = make(map[uint32]uint64)
			}
			orphans[x] = p.owners[x]
			continue
		}
		bm[idx/64] |= 1 << (idx % 64)
		inRange++
	}

	p.ranges = slices.Clone(ranges)
	p.gateway = gateway
	p.segs = segs
	p.bitmap = bm
	p.total = total
	p.gwIndex = gw
	p.capacity = capacity
	p.inRange = inRange
	p.orphans = orphans
	if p.cursor >= len(bm) {
		p.cursor = 0
	}
	return nil
}

// Allocate hands out the next free address and records owner (0: none).
// It fails with ErrExhausted when no address is free.
func (p *Pool) Allocate(owner uint64) (netip.Addr, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.bitmap)
	for i := 0; i < n; i++ {
		w := p.cursor + i
		if w >= n {
			w -= n
		}
		free := ^p.bitmap[w]
		if free == 0 {
			continue
		}
		b := bits.TrailingZeros64(free)
		p.bitmap[w] |= 1 << b
		p.inRange++
		p.cursor = w
		x := p.addrAt(uint32(w*64 + b))
		p.setOwner(x, owner)
		return addr4(x), nil
	}
	return netip.Addr{}, fmt.Errorf("pool %s: %w (%d addresses)", p.name, ErrExhausted, p.capacity)
}

func (p *Pool) setOwner(x uint32, owner uint64) {
	if owner == 0 {
		return
	}
	if p.owners == nil {
		p.owners = make(map[uint32]uint64)
	}
	p.owners[x] = owner
}

// Contains reports whether a is allocatable from the pool's current ranges
// (the gateway is not).
func (p *Pool) Contains(a netip.Addr) bool {
	if !a.Is4() {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	idx := indexIn(p.segs, v4(a))
	return idx >= 0 && idx != p.gwIndex
}

// Reserve allocates the specific address a (a fixed per-user address or a
// RADIUS Framed-IP-Address) for owner. It fails with ErrNotInPool if a is not
// in the pool's ranges (or is the gateway) and ErrInUse if it is taken.
func (p *Pool) Reserve(a netip.Addr, owner uint64) error {
	if !a.Is4() {
		return fmt.Errorf("pool %s: reserve %v: %w", p.name, a, ErrNotInPool)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	x := v4(a)
	if _, ok := p.orphans[x]; ok {
		return fmt.Errorf("pool %s: reserve %v: %w", p.name, a, ErrInUse)
	}
	idx := indexIn(p.segs, x)
	if idx < 0 || idx == p.gwIndex {
		return fmt.Errorf("pool %s: reserve %v: %w", p.name, a, ErrNotInPool)
	}
	if p.bitmap[idx/64]&(1<<(idx%64)) != 0 {
		return fmt.Errorf("pool %s: reserve %v: %w", p.name, a, ErrInUse)
	}
	p.bitmap[idx/64] |= 1 << (idx % 64)
	p.inRange++
	p.setOwner(x, owner)
	return nil
}

// Release returns a to the pool. Releasing an address that is not
// allocated fails with ErrNotAllocated (a double release is a bug in the
// caller, and is reported rather than silently absorbed).
func (p *Pool) Release(a netip.Addr) error {
	if !a.Is4() {
		return fmt.Errorf("pool %s: release %v: %w", p.name, a, ErrNotAllocated)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	x := v4(a)
	if _, ok := p.orphans[x]; ok {
		delete(p.orphans, x)
		delete(p.owners, x)
		return nil
	}
	idx := indexIn(p.segs, x)
	if idx < 0 || idx == p.gwIndex || p.bitmap[idx/64]&(1<<(idx%64)) == 0 {
		return fmt.Errorf("pool %s: release %v: %w", p.name, a, ErrNotAllocated)
	}
	p.bitmap[idx/64] &^= 1 << (idx % 64)
	p.inRange--
	delete(p.owners, x)
	return nil
}

// Owner returns who holds a: allocated reports whether a is allocated at
// all, owner is 0 when it was allocated without one.
func (p *Pool) Owner(a netip.Addr) (owner uint64, allocated bool) {
	if !a.Is4() {
		return 0, false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	x := v4(a)
	if o, ok := p.orphans[x]; ok {
		return o, true
	}
	idx := indexIn(p.segs, x)
	if idx < 0 || idx == p.gwIndex || p.bitmap[idx/64]&(1<<(idx%64)) == 0 {
		return 0, false
	}
	return p.owners[x], true
}

// Stats returns the pool's counters.
func (p *Pool) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return Stats{
		Size:    p.capacity,
		Used:    p.inRange + len(p.orphans),
		Free:    p.capacity - p.inRange,
		Orphans: len(p.orphans),
	}
}
