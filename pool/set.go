package pool

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
)

// Config describes one pool of a Set.
type Config struct {
	Name    string
	Ranges  []Range
	Gateway netip.Addr
}

// Set is the configured pools, by name. Pools keep their identity across
// Update: a *Pool obtained before a reload stays valid, and releasing into a
// pool that a reload removed is still correct (the address just vanishes).
type Set struct {
	mu    sync.RWMutex
	pools map[string]*Pool
}

// NewSet makes a Set from cfgs (see Update for the rules).
func NewSet(cfgs []Config) (*Set, error) {
	s := &Set{pools: map[string]*Pool{}}
	if err := s.Update(cfgs); err != nil {
		return nil, err
	}
	return s, nil
}

// Update replaces the configuration. Names must be unique and pools must not
// overlap one another (otherwise one address could be handed out twice).
// Pools with a name already present are reconfigured in place, keeping their
// allocations; new names are created; pools no longer named are dropped from
// the Set (their holders may still Release into them). On error nothing
// changes.
func (s *Set) Update(cfgs []Config) error {
	type span struct {
		r    Range
		name string
	}
	var spans []span
	seen := map[string]bool{}
	for _, c := range cfgs {
		if c.Name == "" {
			return fmt.Errorf("pool: a pool has no name")
		}
		if seen[c.Name] {
			return fmt.Errorf("pool %s: defined twice", c.Name)
		}
		seen[c.Name] = true
		if _, _, err := layout(c.Name, c.Ranges); err != nil {
			return err
		}
		if c.Gateway.IsValid() && !c.Gateway.Is4() {
			return fmt.Errorf("pool %s: gateway %v is not IPv4", c.Name, c.Gateway)
		}
		for _, r := range c.Ranges {
			spans = append(spans, span{r, c.Name})
		}
	}
	slices.SortFunc(spans, func(a, b span) int { return cmpU32(v4(a.r.First), v4(b.r.First)) })
	for i := 1; i < len(spans); i++ {
		if v4(spans[i].r.First) <= v4(spans[i-1].r.Last) {
			return fmt.Errorf("pool %s: range %v overlaps %v of pool %s", spans[i].name, spans[i].r, spans[i-1].r, spans[i-1].name)
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	next := make(map[string]*Pool, len(cfgs))
	for _, c := range cfgs {
		p := s.pools[c.Name]
		if p == nil {
			p = &Pool{name: c.Name}
		}
		p.mu.Lock()
		err := p.configure(c.Ranges, c.Gateway)
		p.mu.Unlock()
		if err != nil {
			// Validated above; configure cannot fail now.
			return err
		}
		next[c.Name] = p
	}
	s.pools = next
	return nil
}

func cmpU32(a, b uint32) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Get returns the pool called name.
func (s *Set) Get(name string) (*Pool, error) {
	s.mu.RLock()
	p := s.pools[name]
	s.mu.RUnlock()
	if p == nil {
		return nil, fmt.Errorf("pool %s: %w", name, ErrUnknownPool)
	}
	return p, nil
}

// Names returns the pools' names, sorted.
func (s *Set) Names() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	names := make([]string, 0, len(s.pools))
	for n := range s.pools {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Allocate takes the next free address from the pool called name.
func (s *Set) Allocate(name string, owner uint64) (netip.Addr, error) {
	p, err := s.Get(name)
	if err != nil {
		return netip.Addr{}, err
	}
	return p.Allocate(owner)
}

// Reserve allocates the specific address a from whichever pool contains it
// and returns that pool. It fails with ErrNotInPool if no pool contains it
// and ErrInUse if it is taken (also as an orphan of a reload).
func (s *Set) Reserve(a netip.Addr, owner uint64) (*Pool, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var inUse error
	for _, p := range s.pools {
		err := p.Reserve(a, owner)
		if err == nil {
			return p, nil
		}
		if !errors.Is(err, ErrNotInPool) {
			inUse = err
		}
	}
	if inUse != nil {
		return nil, inUse
	}
	return nil, fmt.Errorf("pool: reserve %v: %w", a, ErrNotInPool)
}
