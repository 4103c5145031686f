package config

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/l2tpd/l2tpd/auth"
)

var cmpConfig = cmp.Options{
	cmpopts.IgnoreUnexported(Config{}),
	cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
	cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b }),
	cmpopts.EquateEmpty(),
}

func noFiles(name string) ([]byte, error) {
	return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
}

func fakeFiles(files map[string]string) func(string) ([]byte, error) {
	return func(name string) ([]byte, error) {
		if s, ok := files[name]; ok {
			return []byte(s), nil
		}
		return noFiles(name)
	}
}

func mustParse(t *testing.T, src string) *Config {
	t.Helper()
	c, err := parse([]byte(src), "test.toml", noFiles)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return c
}

// TestExample checks every resolved value of packaging/l2tpd.toml.
func TestExample(t *testing.T) {
	path := filepath.Join("..", "packaging", "l2tpd.toml")
	c, err := Load(path)
	if err != nil {
		t.Fatalf("Load(%s): %v", path, err)
	}
	l2tp := L2TP{
		HostName:        "l2tpd-example",
		HelloInterval:   60 * time.Second,
		RTimeout:        time.Second,
		RTimeoutCap:     16 * time.Second,
		Retransmit:      5,
		RecvWindow:      16,
		Secret:          []byte{},
		Challenge:       ChallengeOptional,
		DataSeq:         PolicyAllow,
		PPPMaxMTU:       1420,
		MaxTunnels:      100,
		MaxSessions:     1000,
		MaxStarting:     100,
		MaxStartingWait: 30 * time.Second,
	}
	ppp := PPP{
		MRU: 1400, MTU: 1400,
		Auth:            []AuthMethod{auth.MethodMSCHAPv2, auth.MethodCHAPMD5, auth.MethodPAP},
		LCPEchoInterval: 30 * time.Second,
		LCPEchoFailure:  4,
		RestartTimer:    3 * time.Second,
		MaxConfigure:    10, MaxFailure: 5, MaxTerminate: 2,
		IPv4:   PolicyRequire,
		IPv6:   PolicyAllow,
		DNS:    [2]netip.Addr{netip.MustParseAddr("192.0.2.53")},
		IPPool: "default",
		IfName: "ppp%d",
	}
	strict := ppp
	strict.Name = "strict"
	strict.Auth = []AuthMethod{auth.MethodMSCHAPv2}
	strict.LCPEchoInterval = 10 * time.Second
	strict.LCPEchoFailure = 3
	peerL2TP := l2tp
	peerL2TP.Secret = []byte("example-tunnel-secret")
	peerL2TP.Challenge = ChallengeRequire
	want := &Config{
		File:      path,
		LogLevel:  LogInfo,
		LogFormat: LogConsole,
		DataPlane: DataPlaneAuto,
		HostName:  "l2tpd-example",
		Listen: []netip.AddrPort{
			netip.MustParseAddrPort("127.0.0.1:1701"),
			netip.MustParseAddrPort("[::1]:1701"),
		},
		AcceptUnknownPeers: true,
		L2TP:               l2tp,
		PPP:                ppp,
		Profiles:           map[string]*PPP{"strict": &strict},
		Pools: []Pool{{
			Name: "default",
			Ranges: []AddrRange{
				{netip.MustParseAddr("10.64.0.0"), netip.MustParseAddr("10.64.0.255")},
				{netip.MustParseAddr("10.64.1.10"), netip.MustParseAddr("10.64.1.200")},
			},
			Gateway: netip.MustParseAddr("10.64.0.1"),
		}},
		Peers: []Peer{{
			Name:          "local-lac",
			MatchAddress:  []AddrRange{{netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.2")}},
			MatchHostName: []string{"test-lac*"},
			L2TP:          peerL2TP,
			PPPProfile:    "strict",
			IPPool:        "default",
		}},
		Subscribers: []Subscriber{
			{Name: "alice", Password: []byte("alice-password"), Address: netip.MustParseAddr("10.64.2.5")},
			{Name: "bob", Password: []byte("bob-password")},
		},
		RADIUS:  DefaultRADIUS(),
		API:     DefaultAPI(),
		Metrics: Metrics{Path: DefaultMetricsPath},
	}
	want.RADIUS.NASIdentifier = "l2tpd-example"
	if diff := cmp.Diff(want, c, cmpConfig); diff != "" {
		t.Errorf("resolved example config (-want +got):\n%s", diff)
	}
	if got := c.PPPProfile("strict"); got == nil || got.LCPEchoFailure != 3 {
		t.Errorf("PPPProfile(strict) = %+v", got)
	}
	if got := c.PPPProfile(""); got != &c.PPP {
		t.Errorf("PPPProfile(\"\") is not the default profile")
	}
	if got := c.PPPProfile("nope"); got != nil {
		t.Errorf("PPPProfile(nope) = %+v, want nil", got)
	}
	p, ok := c.MatchPeer(netip.MustParseAddr("127.0.0.2"), "test-lac-1")
	if !ok || p.Name != "local-lac" || string(p.Secret) != "example-tunnel-secret" {
		t.Errorf("MatchPeer(127.0.0.2, test-lac-1) = %+v, %v", p, ok)
	}
	p, ok = c.MatchPeer(netip.MustParseAddr("127.0.0.1"), "anything")
	if !ok || p.Name != "" || p.L2TP.Challenge != ChallengeOptional || p.IPPool != "default" {
		t.Errorf("MatchPeer(unknown) = %+v, %v; want the defaults", p, ok)
	}
}

func TestDefaults(t *testing.T) {
	c := mustParse(t, "")
	if len(c.Listen) != 2 || c.Listen[0].String() != "0.0.0.0:1701" || c.Listen[1].String() != "[::]:1701" {
		t.Errorf("Listen = %v", c.Listen)
	}
	if diff := cmp.Diff(DefaultL2TP(), c.L2TP, cmpConfig); diff != "" {
		t.Errorf("L2TP defaults (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(DefaultPPP(), c.PPP, cmpConfig); diff != "" {
		t.Errorf("PPP defaults (-want +got):\n%s", diff)
	}
	if !c.AcceptUnknownPeers || c.LogLevel != LogInfo || c.DataPlane != DataPlaneAuto || c.HostName != DefaultHostName || c.Threads != 0 {
		t.Errorf("top-level defaults: %+v", c)
	}
}

func TestThreads(t *testing.T) {
	if c := mustParse(t, "threads = 4"); c.Threads != 4 {
		t.Errorf("threads = 4 gave %d", c.Threads)
	}
	if c := mustParse(t, "threads = 0"); c.Threads != 0 {
		t.Errorf("threads = 0 gave %d", c.Threads)
	}
}

func TestInheritance(t *testing.T) {
	c := mustParse(t, `
host_name = "lns1"
[l2tp]
hello_interval = "30s"
secret = "default-secret"
max_sessions = 100
[ppp]
mru = 1450
[ppp.profile.small]
mtu = 1280
[[pool]]
name = "a"
ranges = ["10.0.0.0/24"]
gateway = "10.0.0.1"
[[pool]]
name = "b"
ranges = ["10.1.0.0/24"]
gateway = "10.1.0.1"
[ppp.profile.onb]
ip_pool = "b"
[[peer]]
name = "p1"
hello_interval = "10s"
host_name = "lns1-for-p1"
ppp = "small"
[[peer]]
name = "p2"
ppp = "onb"
[[peer]]
name = "p3"
ppp = "onb"
ip_pool = "a"
`)
	p1, p2, p3 := c.Peers[0], c.Peers[1], c.Peers[2]
	if p1.HelloInterval != 10*time.Second || p2.HelloInterval != 30*time.Second {
		t.Errorf("hello_interval: p1 %v (want 10s), p2 %v (want 30s inherited)", p1.HelloInterval, p2.HelloInterval)
	}
	if p1.HostName != "lns1-for-p1" || p2.HostName != "lns1" {
		t.Errorf("host_name: p1 %q, p2 %q", p1.HostName, p2.HostName)
	}
	if string(p2.Secret) != "default-secret" || p2.MaxSessions != 100 {
		t.Errorf("p2 did not inherit secret/max_sessions: %q %d", p2.Secret, p2.MaxSessions)
	}
	small := c.PPPProfile("small")
	if small.MRU != 1450 || small.MTU != 1280 || small.Name != "small" {
		t.Errorf("profile small = mru %d mtu %d name %q; want 1450 (inherited), 1280, small", small.MRU, small.MTU, small.Name)
	}
	if c.PPP.IPPool != "a" || small.IPPool != "a" {
		t.Errorf("ip_pool default: [ppp] %q, small %q; want the first pool, a", c.PPP.IPPool, small.IPPool)
	}
	if p1.IPPool != "a" || p2.IPPool != "b" || p3.IPPool != "a" {
		t.Errorf("peer pools: p1 %q p2 %q p3 %q; want a (default), b (profile), a (own)", p1.IPPool, p2.IPPool, p3.IPPool)
	}
}

func TestSecretFiles(t *testing.T) {
	src := `
[l2tp]
secret_file = "tunnel.secret"
[[subscriber]]
name = "carol"
password_file = "/etc/l2tpd/carol.pw"
`
	c, err := parse([]byte(src), "test.toml", fakeFiles(map[string]string{
		"tunnel.secret":       "s3cret\r\nignored second line\n",
		"/etc/l2tpd/carol.pw": "pw\n",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if string(c.L2TP.Secret) != "s3cret" || string(c.Subscribers[0].Password) != "pw" {
		t.Errorf("secret %q password %q; want first lines s3cret and pw", c.L2TP.Secret, c.Subscribers[0].Password)
	}

	// Load resolves relative names against the config's directory.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "tunnel.secret"), []byte("from-disk\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "l2tpd.toml")
	if err := os.WriteFile(cfg, []byte("[l2tp]\nsecret_file = \"tunnel.secret\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err = Load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if string(c.L2TP.Secret) != "from-disk" {
		t.Errorf("Load: secret %q, want from-disk", c.L2TP.Secret)
	}
	_, err = Load(filepath.Join(dir, "missing.toml"))
	if err == nil || !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "missing.toml") {
		t.Errorf("Load(missing) = %v; want a not-exist error naming the file", err)
	}
}

func TestMatchPeer(t *testing.T) {
	c := mustParse(t, `
[l2tp]
accept_unknown_peers = false
[[peer]]
name = "blocked"
match_address = ["192.0.2.66"]
refuse = true
[[peer]]
name = "cidr"
match_address = ["192.0.2.0/24"]
[[peer]]
name = "range"
match_address = ["198.51.100.10-198.51.100.20"]
[[peer]]
name = "v6"
match_address = ["2001:db8::/32"]
[[peer]]
name = "glob"
match_host_name = ["lac-*.example.net", "edge?"]
[[peer]]
name = "both"
match_address = ["203.0.113.0/24"]
match_host_name = ["core-*"]
`)
	tests := []struct {
		addr, host string
		want       string // "" = no match
	}{
		{"192.0.2.66", "x", "blocked"}, // first match wins over "cidr"
		{"192.0.2.1", "x", "cidr"},
		{"192.0.2.255", "lac-1.example.net", "cidr"}, // address peer comes first
		{"::ffff:192.0.2.7", "x", "cidr"},            // v4-mapped is matched as IPv4
		{"198.51.100.10", "x", "range"},
		{"198.51.100.20", "x", "range"},
		{"198.51.100.21", "x", ""},
		{"198.51.100.9", "x", ""},
		{"2001:db8:1::5", "x", "v6"},
		{"2001:db9::1", "x", ""},
		{"10.0.0.1", "LAC-7.Example.NET", "glob"}, // case-insensitive
		{"10.0.0.1", "edge1", "glob"},
		{"10.0.0.1", "edge12", ""},
		{"203.0.113.5", "core-a", "both"},
		{"203.0.113.5", "other", ""}, // both lists must match
		{"10.0.0.1", "core-a", ""},
	}
	for _, tt := range tests {
		p, ok := c.MatchPeer(netip.MustParseAddr(tt.addr), tt.host)
		got := ""
		if ok {
			got = p.Name
		}
		if got != tt.want {
			t.Errorf("MatchPeer(%s, %q) = %q, want %q", tt.addr, tt.host, got, tt.want)
		}
	}
	if p, _ := c.MatchPeer(netip.MustParseAddr("192.0.2.66"), ""); !p.Refuse {
		t.Errorf("blocked peer not marked Refuse")
	}

	open := mustParse(t, `
[[peer]]
name = "catch-all"
`)
	if p, ok := open.MatchPeer(netip.MustParseAddr("10.9.9.9"), ""); !ok || p.Name != "catch-all" {
		t.Errorf("a peer without match keys should match everything, got %+v %v", p, ok)
	}
}

func TestMatchPeerAllocs(t *testing.T) {
	c := mustParse(t, `
[[peer]]
name = "glob"
match_address = ["192.0.2.0/24"]
match_host_name = ["lac-*"]
`)
	a := netip.MustParseAddr("192.0.2.9")
	n := testing.AllocsPerRun(100, func() { c.MatchPeer(a, "lac-1") })
	if n > 0 {
		t.Errorf("MatchPeer allocates %v times per call", n)
	}
}

func BenchmarkMatchPeer(b *testing.B) {
	var src strings.Builder
	for i := range 100 {
		fmt.Fprintf(&src, "[[peer]]\nname = \"p%d\"\nmatch_address = [\"10.%d.0.0/16\"]\n", i, i)
	}
	c, err := parse([]byte(src.String()), "bench.toml", noFiles)
	if err != nil {
		b.Fatal(err)
	}
	a := netip.MustParseAddr("10.99.1.1")
	b.ReportAllocs()
	for b.Loop() {
		if p, ok := c.MatchPeer(a, "lac"); !ok || p.Name == "" {
			b.Fatal("no match")
		}
	}
}

func TestEnumStrings(t *testing.T) {
	for _, tt := range []struct{ got, want string }{
		{LogWarn.String(), "warn"}, {LogJSON.String(), "json"}, {DataPlaneUserspace.String(), "userspace"},
		{PolicyPrefer.String(), "prefer"}, {ChallengeRequire.String(), "require"},
		{AuthenticatorRADIUS.String(), "radius"}, {SingleSessionReplace.String(), "replace"},
		{Policy(200).String(), "unknown"},
	} {
		if tt.got != tt.want {
			t.Errorf("String() = %q, want %q", tt.got, tt.want)
		}
	}
}

// Every key the parser accepts is documented in docs/configuration.md.
func TestDocsCoverEveryKey(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "configuration.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, set := range [][]string{topKeys, l2tpTableKeys, peerKeys, lacKeys, pppTableKeys, poolKeys, subscriberKey, radiusKeys, radiusServerKeys, radiusClientKeys, apiKeys, metricsKeys} {
		for _, k := range set {
			if k == "profile" || k == "peer" || k == "pool" || k == "subscriber" || k == "lac" || k == "l2tp" || k == "ppp" || k == "radius" || k == "server" || k == "dae_client" || k == "api" || k == "metrics" {
				continue // tables, documented by their headings
			}
			if !strings.Contains(string(doc), "`"+k+"`") {
				t.Errorf("key %s is not documented in docs/configuration.md", k)
			}
		}
	}
}
