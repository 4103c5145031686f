package pool

import (
	"errors"
	"net/netip"
	"slices"
	"testing"
)

func cfg(t *testing.T, name, gw string, ranges ...string) Config {
	t.Helper()
	c := Config{Name: name, Ranges: mustRanges(t, ranges...)}
	if gw != "" {
		c.Gateway = netip.MustParseAddr(gw)
	}
	return c
}

func TestSetReload(t *testing.T) {
	ip := netip.MustParseAddr
	s, err := NewSet([]Config{
		cfg(t, "a", "10.0.0.1", "10.0.0.1-10.0.0.10"),
		cfg(t, "b", "", "10.1.0.0/24"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Names(); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("names = %v", got)
	}
	a, _ := s.Get("a")
	for _, x := range []string{"10.0.0.2", "10.0.0.9", "10.0.0.10"} {
		if p, err := s.Reserve(ip(x), 42); err != nil || p != a {
			t.Fatalf("Reserve(%s) = %v, %v", x, p, err)
		}
	}
	if _, err := s.Reserve(ip("10.0.0.2"), 1); !errors.Is(err, ErrInUse) {
		t.Fatalf("second Reserve = %v, want ErrInUse", err)
	}
	if _, err := s.Reserve(ip("10.2.0.1"), 1); !errors.Is(err, ErrNotInPool) {
		t.Fatalf("Reserve outside = %v, want ErrNotInPool", err)
	}
	b, _ := s.Get("b")
	bAddr, err := s.Allocate("b", 7)
	if err != nil {
		t.Fatal(err)
	}

	// Shrink a to .1-.8 and make .9 the gateway; drop b; add c.
	err = s.Update([]Config{
		cfg(t, "a", "10.0.0.9", "10.0.0.1-10.0.0.8", "10.0.0.20-10.0.0.21"),
		cfg(t, "c", "", "10.3.0.0/30"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if a2, _ := s.Get("a"); a2 != a {
		t.Fatal("pool a lost its identity on reload")
	}
	if _, err := s.Get("b"); !errors.Is(err, ErrUnknownPool) {
		t.Fatalf("Get(b) after removal = %v", err)
	}
	// .1 is no longer the gateway: 8 + 2 addresses, .2 still in use, .9
	// and .10 orphans.
	if got, want := a.Stats(), (Stats{Size: 10, Used: 3, Free: 9, Orphans: 2}); got != want {
		t.Fatalf("stats after reload = %+v, want %+v", got, want)
	}
	if o, ok := a.Owner(ip("10.0.0.10")); !ok || o != 42 {
		t.Fatalf("orphan owner = %d, %v", o, ok)
	}
	if err := a.Reserve(ip("10.0.0.10"), 1); !errors.Is(err, ErrInUse) {
		t.Fatalf("reserve orphan = %v, want ErrInUse", err)
	}
	// Drain a: no orphan, gateway or taken address comes out.
	seen := map[netip.Addr]bool{}
	for {
		x, err := a.Allocate(1)
		if errors.Is(err, ErrExhausted) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if x == ip("10.0.0.2") || x == ip("10.0.0.9") || x == ip("10.0.0.10") || seen[x] {
			t.Fatalf("allocated %v", x)
		}
		seen[x] = true
	}
	if len(seen) != 9 {
		t.Fatalf("allocated %d addresses, want 9", len(seen))
	}
	// Releasing orphans makes them vanish.
	for _, x := range []string{"10.0.0.9", "10.0.0.10"} {
		if err := a.Release(ip(x)); err != nil {
			t.Fatal(err)
		}
		if err := a.Release(ip(x)); !errors.Is(err, ErrNotAllocated) {
			t.Fatalf("double release of orphan %s = %v", x, err)
		}
	}
	if got, want := a.Stats(), (Stats{Size: 10, Used: 10, Free: 0}); got != want {
		t.Fatalf("stats = %+v, want %+v", got, want)
	}
	// The removed pool still takes its address back.
	if err := b.Release(bAddr); err != nil {
		t.Fatal(err)
	}
}

func TestSetReloadBringsOrphanBack(t *testing.T) {
	ip := netip.MustParseAddr
	s, err := NewSet([]Config{cfg(t, "a", "", "10.0.0.1-10.0.0.4")})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := s.Get("a")
	if err := a.Reserve(ip("10.0.0.4"), 5); err != nil {
		t.Fatal(err)
	}
	if err := s.Update([]Config{cfg(t, "a", "", "10.0.0.1-10.0.0.3")}); err != nil {
		t.Fatal(err)
	}
	if a.Stats().Orphans != 1 {
		t.Fatalf("stats = %+v", a.Stats())
	}
	if err := s.Update([]Config{cfg(t, "a", "", "10.0.0.1-10.0.0.8")}); err != nil {
		t.Fatal(err)
	}
	if got, want := a.Stats(), (Stats{Size: 8, Used: 1, Free: 7}); got != want {
		t.Fatalf("stats = %+v, want %+v", got, want)
	}
	if err := a.Reserve(ip("10.0.0.4"), 1); !errors.Is(err, ErrInUse) {
		t.Fatalf("reserve = %v, want ErrInUse", err)
	}
	if o, _ := a.Owner(ip("10.0.0.4")); o != 5 {
		t.Fatalf("owner = %d", o)
	}
}

func TestSetUpdateErrors(t *testing.T) {
	s, err := NewSet([]Config{cfg(t, "a", "", "10.0.0.0/24")})
	if err != nil {
		t.Fatal(err)
	}
	bad := [][]Config{
		{cfg(t, "a", "", "10.0.0.0/24"), cfg(t, "b", "", "10.0.0.128/25")},
		{cfg(t, "a", "", "10.0.0.0/24"), cfg(t, "a", "", "10.1.0.0/24")},
		{cfg(t, "", "", "10.0.0.0/24")},
		{{Name: "x", Ranges: []Range{{First: netip.MustParseAddr("10.0.0.9"), Last: netip.MustParseAddr("10.0.0.1")}}}},
		{{Name: "x", Gateway: netip.MustParseAddr("::1")}},
	}
	for i, c := range bad {
		if err := s.Update(c); err == nil {
			t.Errorf("config %d accepted", i)
		}
	}
	if got := s.Names(); !slices.Equal(got, []string{"a"}) {
		t.Errorf("a failed update changed the set: %v", got)
	}
	if _, err := s.Allocate("nope", 1); !errors.Is(err, ErrUnknownPool) {
		t.Errorf("Allocate(nope) = %v", err)
	}
}
