package pool

import (
	"errors"
	"net/netip"
	"sync"
	"testing"
)

func mustRanges(t testing.TB, ss ...string) []Range {
	t.Helper()
	rs, err := ParseRanges(ss...)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func mustPool(t testing.TB, gw string, ss ...string) *Pool {
	t.Helper()
	var g netip.Addr
	if gw != "" {
		g = netip.MustParseAddr(gw)
	}
	p, err := New("test", mustRanges(t, ss...), g)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestParseRange(t *testing.T) {
	a := netip.MustParseAddr
	tests := []struct {
		in          string
		first, last string
		wantErr     bool
	}{
		{in: "10.0.0.1-10.0.0.9", first: "10.0.0.1", last: "10.0.0.9"},
		{in: " 10.0.0.1 - 10.0.0.9 ", first: "10.0.0.1", last: "10.0.0.9"},
		{in: "10.0.0.10-200", first: "10.0.0.10", last: "10.0.0.200"},
		{in: "10.0.0.7", first: "10.0.0.7", last: "10.0.0.7"},
		{in: "192.168.1.0/24", first: "192.168.1.1", last: "192.168.1.254"},
		{in: "192.168.1.77/24", first: "192.168.1.1", last: "192.168.1.254"},
		{in: "10.1.0.0/16", first: "10.1.0.1", last: "10.1.255.254"},
		{in: "10.0.0.4/31", first: "10.0.0.4", last: "10.0.0.5"},
		{in: "10.0.0.4/32", first: "10.0.0.4", last: "10.0.0.4"},
		{in: "10.0.0.0/30", first: "10.0.0.1", last: "10.0.0.2"},
		{in: "10.0.0.9-10.0.0.1", wantErr: true},
		{in: "10.0.0.9-3", wantErr: true},
		{in: "10.0.0.1-256", wantErr: true},
		{in: "2001:db8::/64", wantErr: true},
		{in: "2001:db8::1", wantErr: true},
		{in: "10.0.0.1-2001:db8::1", wantErr: true},
		{in: "10.0.0.0/33", wantErr: true},
		{in: "", wantErr: true},
		{in: "pool", wantErr: true},
	}
	for _, tt := range tests {
		r, err := ParseRange(tt.in)
		if tt.wantErr {
			if err == nil {
				t.Errorf("ParseRange(%q) = %v, want error", tt.in, r)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseRange(%q): %v", tt.in, err)
			continue
		}
		if r.First != a(tt.first) || r.Last != a(tt.last) {
			t.Errorf("ParseRange(%q) = %v, want %s-%s", tt.in, r, tt.first, tt.last)
		}
	}
}

func FuzzParseRange(f *testing.F) {
	for _, s := range []string{"10.0.0.1-10.0.0.9", "10.0.0.10-200", "10.0.0.0/24", "1.2.3.4", "0.0.0.0/0", "::1", "1.2.3.4-", "-"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRange(s)
		if err != nil {
			return
		}
		if !r.First.Is4() || !r.Last.Is4() || r.Size() == 0 {
			t.Fatalf("ParseRange(%q) = %v: invalid range without error", s, r)
		}
		r2, err := ParseRange(r.String())
		if err != nil {
			t.Fatalf("ParseRange(%q) of String of ParseRange(%q): %v", r.String(), s, err)
		}
		if r2 != r {
			t.Fatalf("round trip of %q: %v != %v", s, r2, r)
		}
	})
}

func TestExhaustion(t *testing.T) {
	p := mustPool(t, "10.0.0.1", "10.0.0.0/29") // .1-.6, minus gateway .1
	if got := p.Stats(); got != (Stats{Size: 5, Free: 5}) {
		t.Fatalf("stats = %+v", got)
	}
	want := []string{"10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"}
	for i, w := range want {
		a, err := p.Allocate(uint64(i + 1))
		if err != nil {
			t.Fatalf("allocate %d: %v", i, err)
		}
		if a.String() != w {
			t.Errorf("allocate %d = %v, want %s", i, a, w)
		}
	}
	_, err := p.Allocate(99)
	if !errors.Is(err, ErrExhausted) {
		t.Fatalf("allocate from full pool: %v, want ErrExhausted", err)
	}
	if got, want := err.Error(), "pool test: address pool exhausted (5 addresses)"; got != want {
		t.Errorf("error = %q, want %q", got, want)
	}
	if got := p.Stats(); got != (Stats{Size: 5, Used: 5}) {
		t.Fatalf("stats = %+v", got)
	}
	if o, ok := p.Owner(netip.MustParseAddr("10.0.0.4")); !ok || o != 3 {
		t.Errorf("owner of .4 = %d, %v", o, ok)
	}
	if err := p.Release(netip.MustParseAddr("10.0.0.4")); err != nil {
		t.Fatal(err)
	}
	a, err := p.Allocate(7)
	if err != nil || a.String() != "10.0.0.4" {
		t.Fatalf("allocate after release = %v, %v", a, err)
	}
}

func TestReserveRelease(t *testing.T) {
	p := mustPool(t, "10.0.0.1", "10.0.0.1-10.0.0.10", "10.0.1.0/30")
	ip := netip.MustParseAddr
	if err := p.Reserve(ip("10.0.0.5"), 1); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		a    string
		want error
	}{
		{"10.0.0.5", ErrInUse},
		{"10.0.0.1", ErrNotInPool}, // gateway
		{"10.0.0.11", ErrNotInPool},
		{"10.0.1.0", ErrNotInPool}, // network address of the /30
		{"10.0.1.3", ErrNotInPool}, // broadcast
		{"2001:db8::1", ErrNotInPool},
	} {
		if err := p.Reserve(ip(tt.a), 2); !errors.Is(err, tt.want) {
			t.Errorf("Reserve(%s) = %v, want %v", tt.a, err, tt.want)
		}
	}
	if err := p.Reserve(ip("10.0.1.2"), 0); err != nil {
		t.Fatal(err)
	}
	if o, ok := p.Owner(ip("10.0.1.2")); !ok || o != 0 {
		t.Errorf("owner = %d, %v; want 0, true", o, ok)
	}
	if got := p.Stats(); got != (Stats{Size: 11, Used: 2, Free: 9}) {
		t.Errorf("stats = %+v", got)
	}
	// Allocation skips the reserved address.
	for range 9 {
		a, err := p.Allocate(3)
		if err != nil {
			t.Fatal(err)
		}
		if a == ip("10.0.0.5") || a == ip("10.0.1.2") || a == ip("10.0.0.1") {
			t.Fatalf("allocated %v twice or the gateway", a)
		}
	}
	if err := p.Release(ip("10.0.0.5")); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"10.0.0.5", "10.0.0.1", "10.0.0.99", "::1"} {
		if err := p.Release(ip(a)); !errors.Is(err, ErrNotAllocated) {
			t.Errorf("Release(%s) = %v, want ErrNotAllocated", a, err)
		}
	}
}

func TestFullCycle(t *testing.T) {
	p := mustPool(t, "", "10.0.0.0/22")
	start := p.Stats()
	if start.Size != 1022 {
		t.Fatalf("size = %d", start.Size)
	}
	var got []netip.Addr
	seen := map[netip.Addr]bool{}
	for i := range 1000 {
		a, err := p.Allocate(uint64(i + 1))
		if err != nil {
			t.Fatal(err)
		}
		if seen[a] {
			t.Fatalf("%v handed out twice", a)
		}
		seen[a] = true
		got = append(got, a)
	}
	if s := p.Stats(); s.Used != 1000 || s.Free != 22 {
		t.Fatalf("stats = %+v", s)
	}
	for _, a := range got {
		if err := p.Release(a); err != nil {
			t.Fatal(err)
		}
	}
	if s := p.Stats(); s != start {
		t.Fatalf("stats after releasing all = %+v, want %+v", s, start)
	}
}

func TestConcurrentNoDuplicates(t *testing.T) {
	p := mustPool(t, "10.9.0.1", "10.9.0.0/24")
	var owners sync.Map // addr -> owner currently holding it
	var wg sync.WaitGroup
	errc := make(chan error, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []netip.Addr
			for i := range 2000 {
				if len(mine) < 20 && i%3 != 2 {
					a, err := p.Allocate(uint64(g + 1))
					if errors.Is(err, ErrExhausted) {
						continue
					}
					if err != nil {
						errc <- err
						return
					}
					if prev, dup := owners.LoadOrStore(a, g); dup {
						errc <- errors.New("address " + a.String() + " handed out twice")
						_ = prev
						return
					}
					mine = append(mine, a)
				} else if len(mine) > 0 {
					a := mine[0]
					mine = mine[1:]
					owners.Delete(a)
					if err := p.Release(a); err != nil {
						errc <- err
						return
					}
				}
			}
			for _, a := range mine {
				owners.Delete(a)
				if err := p.Release(a); err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	if s := p.Stats(); s.Used != 0 || s.Free != 253 {
		t.Errorf("stats = %+v", s)
	}
}

func TestMemory(t *testing.T) {
	p := mustPool(t, "", "10.0.0.0/15") // 131,070 addresses
	if got := len(p.bitmap) * 8; got > 20<<10 {
		t.Errorf("bitmap for %d addresses is %d bytes", p.Stats().Size, got)
	}
	if _, err := New("huge", mustRanges(t, "0.0.0.0/0"), netip.Addr{}); err == nil {
		t.Error("a /0 pool was accepted")
	}
	if _, err := New("overlap", mustRanges(t, "10.0.0.0/24", "10.0.0.200-10.0.1.5"), netip.Addr{}); err == nil {
		t.Error("overlapping ranges were accepted")
	}
}

func BenchmarkAllocateRelease(b *testing.B) {
	p := mustPool(b, "", "10.0.0.0/15")
	// Keep the pool 90% full so Allocate has to search.
	for range p.Stats().Size * 9 / 10 {
		if _, err := p.Allocate(1); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		a, err := p.Allocate(0)
		if err != nil {
			b.Fatal(err)
		}
		if err := p.Release(a); err != nil {
			b.Fatal(err)
		}
	}
}
