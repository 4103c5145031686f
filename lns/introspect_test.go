package lns

import (
	"net/netip"
	"testing"

	"go.uber.org/zap"

	"github.com/l2tpd/l2tpd/config"
	"github.com/l2tpd/l2tpd/l2tp"
	"github.com/l2tpd/l2tpd/l2tp/endpoint"
)

func TestIntrospection(t *testing.T) {
	cfg, err := config.Parse([]byte(`
[[peer]]
name = "lac1"
match_address = ["192.0.2.1"]
`), "test.toml")
	if err != nil {
		t.Fatal(err)
	}
	l := New(cfg, zap.NewNop(), nil)
	from := netip.MustParseAddrPort("192.0.2.1:1701")
	st, rc := l.AcceptTunnel(from, "lac")
	if rc != nil {
		t.Fatalf("refused: %+v", rc)
	}
	name, at, ok := TunnelPeerOf(st)
	if !ok || name != "lac1" || at.IsZero() {
		t.Errorf("TunnelPeerOf = %q %v %v, want lac1, a time, true", name, at, ok)
	}
	if _, _, ok := TunnelPeerOf(st2()); ok {
		t.Errorf("TunnelPeerOf of foreign settings reported ok")
	}
	if got := l.PeerCounts()["lac1"]; got != (PeerCount{Tunnels: 1}) {
		t.Errorf("PeerCounts[lac1] = %+v, want 1 tunnel", got)
	}
	if l.Draining() {
		t.Errorf("draining before SetDraining")
	}
	l.SetDraining(true)
	if !l.Draining() {
		t.Errorf("not draining after SetDraining(true)")
	}
	if _, rc := l.AcceptTunnel(from, "lac"); rc == nil || rc.Result != l2tp.ResultStopShuttingDown {
		t.Errorf("AcceptTunnel while draining: %+v, want StopCCN shutting down", rc)
	}
}

func st2() (s endpoint.TunnelSettings) { return }
