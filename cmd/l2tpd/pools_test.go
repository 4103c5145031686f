package main

import (
	"net/netip"
	"testing"

	"github.com/l2tpd/l2tpd/config"
	"github.com/l2tpd/l2tpd/pool"
)

func TestPoolConfigsCIDRExcludesNetworkAndBroadcast(t *testing.T) {
	cfg, err := config.Parse([]byte(`
[[pool]]
name = "p"
ranges = ["10.64.0.0/30", "10.65.0.10-10.65.0.11"]
gateway = "10.64.0.1"
`), "test.toml")
	if err != nil {
		t.Fatal(err)
	}
	set, err := pool.NewSet(poolConfigs(cfg))
	if err != nil {
		t.Fatal(err)
	}
	p, err := set.Get("p")
	if err != nil {
		t.Fatal(err)
	}
	got := map[netip.Addr]bool{}
	for {
		a, err := p.Allocate(1)
		if err != nil {
			break
		}
		got[a] = true
	}
	// /30: .1 and .2 usable, .1 is the gateway; the explicit range keeps both ends.
	want := []string{"10.64.0.2", "10.65.0.10", "10.65.0.11"}
	if len(got) != len(want) {
		t.Fatalf("allocated %v, want %v", got, want)
	}
	for _, w := range want {
		if !got[netip.MustParseAddr(w)] {
			t.Fatalf("allocated %v, want %v", got, want)
		}
	}
}
