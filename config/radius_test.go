package config

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const richRADIUS = `
host_name = "lns-a"
[ppp]
authenticator = "radius"

[radius]
nas_ip_address = "192.0.2.1"
nas_ipv6_address = "2001:db8::1"
timeout = "1500ms"
retries = 1
require_message_authenticator = false
dead_after = 5
dead_time = "1m"
max_in_flight = 32
acct_interim_interval = "5m"
spool_dir = "/tmp/spool"
spool_sync_interval = "250ms"
dae_listen = "127.0.0.1"

[[radius.server]]
address = "127.0.0.1"
secret = "primary-secret"
priority = 0

[[radius.server]]
address = "2001:db8::2"
secret_file = "radius.secret"
auth_port = 0
acct_port = 1646
weight = 3
timeout = "5s"
retries = 4
require_message_authenticator = true

[[radius.dae_client]]
address = "127.0.0.2"
secret = "dae-secret"
`

func TestRADIUSValues(t *testing.T) {
	c, err := parse([]byte(richRADIUS), "r.toml", fakeFiles(map[string]string{"radius.secret": "file-secret\nignored\n"}))
	if err != nil {
		t.Fatal(err)
	}
	want := RADIUS{
		NASIdentifier:  "lns-a",
		NASIPAddress:   netip.MustParseAddr("192.0.2.1"),
		NASIPv6Address: netip.MustParseAddr("2001:db8::1"),
		Timeout:        1500 * time.Millisecond, Retries: 1, RequireMessageAuthenticator: false,
		DeadAfter: 5, DeadTime: time.Minute, MaxInFlight: 32, InterimInterval: 5 * time.Minute,
		SpoolDir: "/tmp/spool", SpoolSyncInterval: 250 * time.Millisecond,
		DAEListen:  netip.MustParseAddrPort("127.0.0.1:3799"),
		DAEClients: []RADIUSClient{{Address: netip.MustParseAddr("127.0.0.2"), Secret: []byte("dae-secret")}},
		Servers: []RADIUSServer{
			{Address: netip.MustParseAddr("127.0.0.1"), AuthPort: 1812, AcctPort: 1813, Secret: []byte("primary-secret"),
				Priority: 0, Weight: 1, Timeout: 1500 * time.Millisecond, Retries: 1},
			{Address: netip.MustParseAddr("2001:db8::2"), AuthPort: 0, AcctPort: 1646, Secret: []byte("file-secret"),
				Priority: 1, Weight: 3, Timeout: 5 * time.Second, Retries: 4, RequireMessageAuthenticator: true},
		},
	}
	if diff := cmp.Diff(want, c.RADIUS, cmpConfig); diff != "" {
		t.Errorf("RADIUS (-want +got):\n%s", diff)
	}
	if c.PPP.Authenticator != AuthenticatorRADIUS {
		t.Errorf("authenticator = %v", c.PPP.Authenticator)
	}
}

func TestRADIUSDefaults(t *testing.T) {
	c, err := parse([]byte(`host_name = "x"`), "r.toml", noFiles)
	if err != nil {
		t.Fatal(err)
	}
	want := DefaultRADIUS()
	want.NASIdentifier = "x"
	if diff := cmp.Diff(want, c.RADIUS, cmpConfig); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
}

func TestRADIUSDumpRoundTrip(t *testing.T) {
	c, err := parse([]byte(richRADIUS), "r.toml", fakeFiles(map[string]string{"radius.secret": "file-secret\n"}))
	if err != nil {
		t.Fatal(err)
	}
	c2, err := parse([]byte(c.dump(false)), "r.toml", noFiles)
	if err != nil {
		t.Fatalf("parse(dump(false)): %v\n%s", err, c.dump(false))
	}
	if diff := cmp.Diff(c, c2, cmpConfig); diff != "" {
		t.Errorf("round trip (-orig +reparsed):\n%s", diff)
	}
	d := c.Dump()
	for _, s := range []string{"primary-secret", "file-secret", "dae-secret"} {
		if strings.Contains(d, s) {
			t.Errorf("Dump leaks %q", s)
		}
	}
	c3, err := parse([]byte(d), "r.toml", noFiles)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(c.Redacted(), c3, cmpConfig); diff != "" {
		t.Errorf("redacted round trip (-want +got):\n%s", diff)
	}
}

// max_in_flight defaults to 64, what FreeRADIUS's default receive buffer
// holds (a burst of 128 lost some); 1..256 accepted.
func TestRADIUSMaxInFlightDefault(t *testing.T) {
	if n := DefaultRADIUS().MaxInFlight; n != 64 {
		t.Errorf("default max_in_flight %d, want 64", n)
	}
	for _, bad := range []string{"0", "257"} {
		_, err := Parse([]byte("[radius]\nmax_in_flight = "+bad+"\n"), "l2tpd.toml")
		if err == nil || !strings.Contains(err.Error(), "max_in_flight") {
			t.Errorf("max_in_flight = %s: error %v, want one naming the key", bad, err)
		}
	}
}

// spool_sync_interval: 0 (fsync every pass) up to 1m; default 1s.
func TestRADIUSSpoolSyncInterval(t *testing.T) {
	if d := DefaultRADIUS().SpoolSyncInterval; d != time.Second {
		t.Errorf("default spool_sync_interval %v, want 1s", d)
	}
	for _, tc := range []struct {
		val  string
		want time.Duration
		ok   bool
	}{
		{`"0s"`, 0, true},
		{`"60s"`, time.Minute, true},
		{`"61s"`, 0, false},
		{`"-1s"`, 0, false},
		{`5`, 0, false},
	} {
		c, err := parse([]byte("host_name = \"x\"\n[radius]\nspool_sync_interval = "+tc.val+"\n"), "r.toml", noFiles)
		if !tc.ok {
			if err == nil || !strings.Contains(err.Error(), "spool_sync_interval") {
				t.Errorf("%s: error %v, want one naming spool_sync_interval", tc.val, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.val, err)
			continue
		}
		if c.RADIUS.SpoolSyncInterval != tc.want {
			t.Errorf("%s: %v, want %v", tc.val, c.RADIUS.SpoolSyncInterval, tc.want)
		}
	}
}
