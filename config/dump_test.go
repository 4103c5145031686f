package config

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// rich uses every kind of table and most keys with non-default values.
const rich = `
log_level = "debug"
log_format = "json"
dataplane = "userspace"
host_name = "lns \"one\""

[l2tp]
listen = ["192.0.2.1", "[2001:db8::1]:1702"]
accept_unknown_peers = false
hello_interval = "1500ms"
rtimeout = "250ms"
rtimeout_cap = "1m30s"
retransmit = 7
recv_window = 64
hide_avps = true
secret_file = "tunnel.secret"
challenge = "require"
dataseq = "prefer"
reorder_timeout = "20ms"
ppp_max_mtu = 1460
max_tunnels = 5
max_sessions = 6
max_sessions_per_tunnel = 7
max_starting = 8

[ppp]
mru = 1492
mtu = 1480
auth = ["pap", "chap"]
lcp_echo_interval = "0s"
lcp_echo_failure = 9
restart_timer = "2500ms"
max_configure = 11
max_failure = 12
max_terminate = 13
ipv4 = "allow"
ipv6 = "deny"
dns1 = "192.0.2.53"
dns2 = "192.0.2.54"
nbns1 = "192.0.2.55"
ifname = ""
single_session = "replace"

[ppp.profile.gold]
mtu = 1300
ip_pool = "second"

[ppp.profile.silver-2]
ipv6 = "require"

[[pool]]
name = "first"
ranges = ["10.0.0.0/23", "10.2.0.1-10.2.0.9", "10.3.0.4"]
gateway = "10.0.0.1"

[[pool]]
name = "second"
ranges = ["100.64.0.0/10"]
gateway = "10.0.0.1"

[[peer]]
name = "east"
match_address = ["192.0.2.0/24", "198.51.100.10-198.51.100.20", "2001:db8::/48"]
match_host_name = ["LAC-*"]
ppp = "gold"
secret = "east secret"
hello_interval = "0s"

[[peer]]
name = "evil"
match_address = ["203.0.113.66"]
refuse = true
secret = ""
challenge = "none"
hide_avps = false

[[subscriber]]
name = "alice@example.net"
password = "pa\\ss\"word"
address = "10.9.0.5"

[[subscriber]]
name = "bob"
password_file = "bob.pw"
pool = "second"
disabled = true

[[lac]]
name = "to-core"
lns = "lns.example.net"
local = "192.0.2.1"
host_name = "lac1"
ppp = "silver-2"
redial_min = "2s"
redial_max = "2m"
sessions = 3
username = "carol"
password = "carol-pw"
auth = ["chap"]
secret = "core"
`

var richFiles = map[string]string{"tunnel.secret": "tsecret\n", "bob.pw": "bobpw\n"}

func TestDumpRoundTrip(t *testing.T) {
	example, err := os.ReadFile(filepath.Join("..", "packaging", "l2tpd.toml"))
	if err != nil {
		t.Fatal(err)
	}
	for name, src := range map[string]string{"rich": rich, "example": string(example), "empty": ""} {
		t.Run(name, func(t *testing.T) {
			c, err := parse([]byte(src), "in.toml", fakeFiles(richFiles))
			if err != nil {
				t.Fatal(err)
			}
			// Unredacted: an exact round trip.
			c2, err := parse([]byte(c.dump(false)), "in.toml", noFiles)
			if err != nil {
				t.Fatalf("parse(dump(false)): %v\n%s", err, c.dump(false))
			}
			if diff := cmp.Diff(c, c2, cmpConfig); diff != "" {
				t.Errorf("parse(dump(false)) differs (-orig +reparsed):\n%s", diff)
			}
			// Redacted: equal to the redacted original, and no secret leaks.
			d := c.Dump()
			c3, err := parse([]byte(d), "in.toml", noFiles)
			if err != nil {
				t.Fatalf("parse(Dump()): %v\n%s", err, d)
			}
			if diff := cmp.Diff(c.Redacted(), c3, cmpConfig); diff != "" {
				t.Errorf("parse(Dump()) differs from Redacted() (-want +got):\n%s", diff)
			}
			for _, secret := range []string{"tsecret", "bobpw", "east secret", "carol-pw", `pa\\ss`, "example-tunnel-secret", "alice-password"} {
				if strings.Contains(d, secret) {
					t.Errorf("Dump() leaks %q", secret)
				}
			}
			if d2 := c3.Dump(); d2 != d {
				t.Errorf("Dump is not stable across a round trip:\n%s\n---\n%s", d, d2)
			}
		})
	}
}

func TestRichValues(t *testing.T) {
	c, err := parse([]byte(rich), "rich.toml", fakeFiles(richFiles))
	if err != nil {
		t.Fatal(err)
	}
	if c.L2TP.HelloInterval != 1500*time.Millisecond || c.L2TP.RTimeoutCap != 90*time.Second {
		t.Errorf("durations: %v %v", c.L2TP.HelloInterval, c.L2TP.RTimeoutCap)
	}
	if c.PPP.IPPool != "first" {
		t.Errorf("[ppp] ip_pool defaults to the first pool, got %q", c.PPP.IPPool)
	}
	east := c.Peers[0]
	if east.IPPool != "second" || east.HelloInterval != 0 || string(east.Secret) != "east secret" ||
		east.RTimeout != 250*time.Millisecond || !east.HideAVPs {
		t.Errorf("east = %+v", east)
	}
	if gold := c.PPPProfile("gold"); gold.MTU != 1300 || gold.MRU != 1492 || gold.IPv6 != PolicyDeny {
		t.Errorf("gold = %+v", gold)
	}
	lac := c.LACs[0]
	if lac.LNS != "lns.example.net:1701" || lac.HostName != "lac1" || lac.Sessions != 3 || string(lac.Secret) != "core" ||
		!lac.Redial || lac.RedialMax != 2*time.Minute || lac.Challenge != ChallengeRequire || len(lac.Auth) != 1 {
		t.Errorf("lac = %+v", lac)
	}
	if string(c.Subscribers[0].Password) != `pa\ss"word` || string(c.Subscribers[1].Password) != "bobpw" {
		t.Errorf("passwords: %q %q", c.Subscribers[0].Password, c.Subscribers[1].Password)
	}
	if _, ok := c.MatchPeer(netipAddr("10.0.0.1"), "x"); ok {
		t.Errorf("accept_unknown_peers = false, yet an unknown peer matched")
	}
}

func TestFormatDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0s", time.Hour: "1h", 90 * time.Minute: "90m", 1500 * time.Millisecond: "1500ms",
		60 * time.Second: "1m", 3 * time.Microsecond: "3us", 7: "7ns",
	} {
		if got := formatDuration(d); got != want {
			t.Errorf("formatDuration(%v) = %q, want %q", d, got, want)
		}
		if back, err := time.ParseDuration(formatDuration(d)); err != nil || back != d {
			t.Errorf("ParseDuration(formatDuration(%v)) = %v, %v", d, back, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	// Small seeds, one per kind of table: large ones make each new input
	// slow to minimise.
	f.Add("")
	f.Add("log_level = \"debug\"\nhost_name = \"x\"\n[l2tp]\nlisten = [\"127.0.0.1\"]\nhello_interval = \"5s\"\nsecret = \"s\"\n")
	f.Add("[ppp]\nauth = [\"chap\"]\ndns1 = \"192.0.2.1\"\n[ppp.profile.x]\nmtu = 1300\n")
	f.Add("[[pool]]\nname = \"p\"\nranges = [\"10.0.0.0/24\", \"10.1.0.1-10.1.0.9\"]\ngateway = \"10.0.0.1\"\n")
	f.Add("[[peer]]\nname = \"a\"\nmatch_address = [\"10.0.0.0/8\"]\nmatch_host_name = [\"l*\"]\nppp = \"\"\n")
	f.Add("[[subscriber]]\nname = \"a\"\npassword_file = \"bob.pw\"\naddress = \"10.0.0.1\"\n")
	f.Add("[[lac]]\nname = \"l\"\nlns = \"[::1]:1701\"\nusername = \"u\"\n")
	f.Add("a = { b = [1, {c = '''x'''}], \"d.e\" = \"\"\"\n\"\"\" }\n")
	f.Fuzz(func(t *testing.T, src string) {
		locate([]byte(src)) // must not panic or loop on any input
		c, err := parse([]byte(src), "fuzz.toml", fakeFiles(richFiles))
		if err != nil {
			if len(Errors(err)) == 0 {
				t.Fatalf("error without *Error: %v", err)
			}
			return
		}
		// What was accepted must be dumped as something that parses back
		// to the same configuration (compared through its dump).
		d := c.dump(false)
		c2, err := parse([]byte(d), "fuzz.toml", noFiles)
		if err != nil {
			t.Fatalf("accepted config does not round-trip: %v\n%s", err, d)
		}
		if d2 := c2.dump(false); d2 != d {
			t.Fatalf("round trip differs:\n%s\n---\n%s", d, d2)
		}
	})
}

func BenchmarkParse(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parse([]byte(rich), "rich.toml", fakeFiles(richFiles)); err != nil {
			b.Fatal(err)
		}
	}
}

func netipAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
