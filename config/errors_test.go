package config

import (
	"fmt"
	"strings"
	"testing"
)

// Each bad config must be rejected with an error naming the key path and
// the line where it is written, and saying what is wrong.
func TestBadConfigs(t *testing.T) {
	tests := []struct {
		name string
		src  string
		key  string
		line int
		msg  string // substring of the message
	}{
		{"syntax", "log_level = \n", "", 1, "TOML syntax"},
		{"unknown top key", "log_levle = \"info\"", "log_levle", 1, "did you mean log_level?"},
		{"accel-ppp dash spelling", "[l2tp]\nhello-interval = \"60s\"", "l2tp.hello-interval", 2, "did you mean hello_interval?"},
		{"unknown far key", "[l2tp]\nbanana = 1", "l2tp.banana", 2, "valid keys: accept_unknown_peers"},
		{"radius server not a table", "[radius]\nserver = \"x\"", "radius.server", 2, "want [[radius.server]] tables"},
		{"radius server no secret", "[[radius.server]]\naddress = \"127.0.0.1\"", "radius.server[0]", 1, "needs a secret"},
		{"radius unknown key", "[radius]\nnas_identifer = \"x\"", "radius.nas_identifer", 2, "did you mean nas_identifier?"},
		{"radius interim too short", "[radius]\nacct_interim_interval = \"10s\"", "radius.acct_interim_interval", 2, "below 1m"},
		{"radius dae without clients", "[radius]\ndae_listen = \"127.0.0.1:3799\"", "radius.dae_listen", 2, "no [[radius.dae_client]]"},
		{"host_name in l2tp", "[l2tp]\nhost_name = \"x\"", "l2tp.host_name", 2, "top level"},
		{"bad enum", "\n\nlog_level = \"verbose\"", "log_level", 3, `valid: "debug", "info", "warn", "error"`},
		{"dataplane", "dataplane = \"dpdk\"", "dataplane", 1, `"auto", "kernel", "userspace"`},
		{"threads negative", "threads = -1", "threads", 1, "valid: 0..1024"},
		{"threads too many", "\nthreads = 5000", "threads", 2, "valid: 0..1024"},
		{"threads not a number", "threads = \"auto\"", "threads", 1, "want an integer"},
		{"duration without unit", "[l2tp]\nhello_interval = \"60\"", "l2tp.hello_interval", 2, "with a unit"},
		{"duration as integer", "[l2tp]\n\nhello_interval = 60", "l2tp.hello_interval", 3, `like "60s"`},
		{"rtimeout_cap below 8s", "[l2tp]\nrtimeout_cap = \"4s\"", "l2tp.rtimeout_cap", 2, "valid: 8s..10m"},
		{"rtimeout above cap", "[l2tp]\nrtimeout = \"20s\"\nrtimeout_cap = \"10s\"", "l2tp.rtimeout_cap", 3, "below rtimeout"},
		{"retransmit 0", "[l2tp]\nretransmit = 0", "l2tp.retransmit", 2, "valid: 1..100"},
		{"recv_window", "[l2tp]\nrecv_window = 70000", "l2tp.recv_window", 2, "valid: 1..65535"},
		{"type mismatch", "[l2tp]\nhide_avps = \"yes\"", "l2tp.hide_avps", 2, `want true or false, got the string "yes"`},
		{"challenge needs secret", "[l2tp]\nchallenge = \"require\"", "l2tp.challenge", 2, "needs a secret"},
		{"hide_avps needs secret", "[l2tp]\nhide_avps = true", "l2tp.hide_avps", 2, "needs a secret"},
		{"secret and file", "[l2tp]\nsecret = \"a\"\nsecret_file = \"b\"", "l2tp.secret_file", 3, "not both"},
		{"missing secret_file", "[l2tp]\nsecret_file = \"/nonexistent/x.secret\"", "l2tp.secret_file", 2, `cannot read "/nonexistent/x.secret"`},
		{"listen bad", "[l2tp]\nlisten = [\"127.0.0.1:1701\",\n  \"localhost:1701\"]", "l2tp.listen[1]", 3, `"localhost:1701"`},
		{"listen twice", "[l2tp]\nlisten = [\"127.0.0.1\", \"127.0.0.1:1701\"]", "l2tp.listen[1]", 2, "listed twice"},
		{"listen not array", "[l2tp]\nlisten = \"127.0.0.1:1701\"", "l2tp.listen", 2, `like ["127.0.0.1:1701"]`},
		{"mtu too small", "[ppp]\nmtu = 64", "ppp.mtu", 2, "valid: 128..65535"},
		{"auth method", "[ppp]\nauth = [\"chap\", \"eap\"]", "ppp.auth[1]", 2, `"eap" is not a PPP authentication method`},
		{"auth twice", "[ppp]\nauth = [\"chap\", \"chap\"]", "ppp.auth[1]", 2, "listed twice"},
		{"auth empty", "[ppp]\nauth = []", "ppp.auth", 2, "empty"},
		{"ipv4 prefer ok, both deny", "[ppp]\nipv4 = \"deny\"\nipv6 = \"deny\"", "ppp.ipv6", 3, "no network protocol"},
		{"dns not v4", "[ppp]\ndns1 = \"2001:db8::1\"", "ppp.dns1", 2, "IPv4"},
		{"ifname no %d", "[ppp]\nifname = \"ppp\"", "ppp.ifname", 2, `exactly one "%d"`},
		{"ifname too long", "[ppp]\nifname = \"subscriber%d\"", "ppp.ifname", 2, "too long"},
		{"radius authenticator", "[ppp]\nauthenticator = \"radius\"", "ppp.authenticator", 2, "[[radius.server]]"},
		{"undefined pool", "[ppp]\nip_pool = \"nope\"", "ppp.ip_pool", 2, `no [[pool]] is named "nope" (none is defined)`},
		{"pool typo", "[[pool]]\nname = \"main\"\nranges = [\"10.0.0.0/24\"]\ngateway = \"10.0.0.1\"\n[ppp]\nip_pool = \"mian\"", "ppp.ip_pool", 6, `did you mean "main"?`},
		{"undefined profile", "[[peer]]\nname = \"a\"\nppp = \"gold\"", "peer[0].ppp", 3, "no [ppp.profile.gold]"},
		{"profile unknown key", "[ppp.profile.x]\n\nmtuu = 1400", "ppp.profile.x.mtuu", 3, "did you mean mtu?"},
		{"nested profile", "[ppp.profile.x.profile.y]\nmtu = 1400", "ppp.profile.x.profile", 1, "cannot be nested"},
		{"peer bad cidr", "[[peer]]\nname = \"a\"\n[[peer]]\nname = \"b\"\nmatch_address = [\"192.0.2.0/24\",\n \"192.0.2.1/24\"]", "peer[1].match_address[1]", 6, `did you mean "192.0.2.0/24"?`},
		{"peer range reversed", "[[peer]]\nname = \"a\"\nmatch_address = [\"10.0.0.9-10.0.0.1\"]", "peer[0].match_address[0]", 3, "above its end"},
		{"peer range mixed", "[[peer]]\nname = \"a\"\nmatch_address = [\"10.0.0.1-::1\"]", "peer[0].match_address[0]", 3, "mixes IPv4 and IPv6"},
		{"peer bad glob", "[[peer]]\nname = \"a\"\nmatch_host_name = [\"lac-[\"]", "peer[0].match_host_name[0]", 3, "not a valid glob"},
		{"peer no name", "[[peer]]\nrefuse = true", "peer[0]", 1, "needs a name"},
		{"peer listen", "[[peer]]\nname = \"a\"\nlisten = []", "peer[0].listen", 3, "only be set in [l2tp]"},
		{"peer duplicate", "[[peer]]\nname = \"a\"\n[[peer]]\nname = \"a\"", "peer[1].name", 4, `peer "a" is already defined at peer[0]`},
		{"peer inherits require", "[l2tp]\naccept_unknown_peers = false\nchallenge = \"require\"\n[[peer]]\nname = \"a\"", "peer[0]", 4, `in peer "a"`},
		{"pool overlap", "[[pool]]\nname = \"a\"\nranges = [\"10.0.0.0/24\"]\ngateway = \"10.9.0.1\"\n[[pool]]\nname = \"b\"\nranges = [\"10.1.0.0/24\", \"10.0.0.200-10.0.1.5\"]\ngateway = \"10.9.0.1\"", "pool[1].ranges[1]", 7, `overlaps 10.0.0.0/24 of pool "a"`},
		{"pool v6", "[[pool]]\nname = \"a\"\nranges = [\"2001:db8::/64\"]\ngateway = \"10.0.0.1\"", "pool[0].ranges[0]", 3, "IPv4 addresses only"},
		{"pool no gateway", "[[pool]]\nname = \"a\"\nranges = [\"10.0.0.0/24\"]", "pool[0]", 1, "needs a gateway"},
		{"pool gateway in other pool", "[[pool]]\nname = \"a\"\nranges = [\"10.0.0.0/24\"]\ngateway = \"10.0.1.1\"\n[[pool]]\nname = \"b\"\nranges = [\"10.0.1.0/24\"]\ngateway = \"10.0.1.254\"", "pool[0].gateway", 4, `lies in pool "b"`},
		{"pool duplicate", "[[pool]]\nname = \"a\"\nranges = [\"10.0.0.0/24\"]\ngateway = \"10.0.0.1\"\n[[pool]]\nname = \"a\"\nranges = [\"10.0.1.0/24\"]\ngateway = \"10.0.1.1\"", "pool[1].name", 6, "already defined"},
		{"subscriber no password", "[[subscriber]]\nname = \"alice\"", "subscriber[0]", 1, "needs a password"},
		{"subscriber missing password_file", "[[subscriber]]\nname = \"alice\"\npassword_file = \"alice.pw\"", "subscriber[0].password_file", 3, `cannot read "alice.pw"`},
		{"subscriber address in pool", "[[pool]]\nname = \"a\"\nranges = [\"10.0.0.0/24\"]\ngateway = \"10.0.0.1\"\n[[subscriber]]\nname = \"alice\"\npassword = \"x\"\naddress = \"10.0.0.7\"", "subscriber[0].address", 8, "outside every pool"},
		{"subscriber address and pool", "[[pool]]\nname = \"a\"\nranges = [\"10.0.0.0/24\"]\ngateway = \"10.0.0.1\"\n[[subscriber]]\nname = \"alice\"\npassword = \"x\"\naddress = \"10.1.0.7\"\npool = \"a\"", "subscriber[0].pool", 9, "not both"},
		{"subscriber same address", "[[subscriber]]\nname = \"a\"\npassword = \"x\"\naddress = \"10.1.0.7\"\n[[subscriber]]\nname = \"b\"\npassword = \"x\"\naddress = \"10.1.0.7\"", "subscriber[1].address", 8, `fixed address of subscriber "a"`},
		{"subscriber duplicate", "[[subscriber]]\nname = \"a\"\npassword = \"x\"\n[[subscriber]]\nname = \"a\"\npassword = \"y\"", "subscriber[1].name", 5, "already defined"},
		{"lac no lns", "[[lac]]\nname = \"x\"\nsessions = 0", "lac[0]", 1, "needs lns"},
		{"lac bad port", "[[lac]]\nname = \"x\"\nlns = \"192.0.2.1:99999\"\nsessions = 0", "lac[0].lns", 3, "not in 1..65535"},
		{"lac bad host", "[[lac]]\nname = \"x\"\nlns = \"lns one:1701\"\nsessions = 0", "lac[0].lns", 3, "not a valid host"},
		{"lac sessions negative", "[[lac]]\nname = \"x\"\nlns = \"h\"\nsessions = -1", "lac[0].sessions", 4, "valid: 0..65535"},
		{"lac needs username", "[[lac]]\nname = \"x\"\nlns = \"h\"\nsessions = 2", "lac[0].sessions", 4, "needs a username"},
		{"lac redial order", "[[lac]]\nname = \"x\"\nlns = \"h\"\nsessions = 0\nredial_min = \"2m\"\nredial_max = \"1m\"", "lac[0].redial_max", 6, "below redial_min"},
		{"inline table position", "peer = [\n  {name = \"a\"},\n  {name = \"b\", match_address = [\"x\"]},\n]", "peer[1].match_address[0]", 3, `"x"`},
		{"quoted key", "[ppp.profile.\"gold plan\"]\nmtu = 1", "ppp.profile.\"gold plan\".mtu", 2, "valid: 128..65535"},
		{"quoted profile name", "[ppp.profile.\"gold plan\"]\nmtu = 1400", "ppp.profile.\"gold plan\"", 1, "letters, digits"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parse([]byte(tt.src), "bad.toml", noFiles)
			if err == nil {
				t.Fatalf("accepted:\n%s", tt.src)
			}
			var found []string
			for _, e := range Errors(err) {
				found = append(found, fmt.Sprintf("%d %s %s", e.Line, e.Key, e.Msg))
				if e.Key == tt.key && e.Line == tt.line && strings.Contains(e.Msg, tt.msg) {
					want := fmt.Sprintf("bad.toml:%d: ", tt.line)
					if !strings.HasPrefix(e.Error(), want) {
						t.Errorf("Error() = %q, want prefix %q", e.Error(), want)
					}
					return
				}
			}
			t.Errorf("no error for key %q line %d containing %q; got:\n%s", tt.key, tt.line, tt.msg, strings.Join(found, "\n"))
		})
	}
}

// All problems are reported at once, sorted by line.
func TestErrorsCollectedAndSorted(t *testing.T) {
	src := `log_level = "loud"
[ppp]
mtu = 1
[l2tp]
retransmit = 0
rtimeout = "fast"
[[subscriber]]
name = "a"
`
	_, err := parse([]byte(src), "multi.toml", noFiles)
	errs := Errors(err)
	var lines []int
	for _, e := range errs {
		lines = append(lines, e.Line)
	}
	want := []int{1, 3, 5, 6, 7}
	if fmt.Sprint(lines) != fmt.Sprint(want) {
		t.Errorf("error lines = %v, want %v; errors:\n%v", lines, want, err)
	}
	if n := strings.Count(err.Error(), "\n") + 1; n != len(want) {
		t.Errorf("Error() has %d lines, want %d", n, len(want))
	}
}

func TestSuggest(t *testing.T) {
	keys := []string{"hello_interval", "rtimeout", "rtimeout_cap", "retransmit"}
	for _, tt := range []struct {
		in, want string
		ok       bool
	}{
		{"hello-interval", "hello_interval", true},
		{"Hello_Interval", "hello_interval", true},
		{"rtimout", "rtimeout", true},
		{"retransmits", "retransmit", true},
		{"zebra", "", false},
	} {
		got, ok := suggest(tt.in, keys)
		if got != tt.want || ok != tt.ok {
			t.Errorf("suggest(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}
