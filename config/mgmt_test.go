package config

import (
	"net/netip"
	"strings"
	"testing"
)

func TestMgmtDefaults(t *testing.T) {
	c := mustParse(t, "")
	if c.API != DefaultAPI() || c.API.SocketMode != 0o600 || c.API.Socket != "/run/l2tpd/l2tpd.sock" {
		t.Errorf("API = %+v", c.API)
	}
	if c.Metrics.Listen.IsValid() || c.Metrics.Path != "/metrics" {
		t.Errorf("Metrics = %+v", c.Metrics)
	}
}

func TestMgmtKeys(t *testing.T) {
	c := mustParse(t, `
[api]
socket = "/run/x/ctl.sock"
socket_mode = "0660"
socket_group = "l2tpadm"

[metrics]
listen = "[::ffff:127.0.0.1]:9641"
path = "/m"
`)
	want := API{Socket: "/run/x/ctl.sock", SocketMode: 0o660, SocketGroup: "l2tpadm"}
	if c.API != want {
		t.Errorf("API = %+v", c.API)
	}
	if c.Metrics.Listen != netip.MustParseAddrPort("127.0.0.1:9641") || c.Metrics.Path != "/m" {
		t.Errorf("Metrics = %+v", c.Metrics)
	}
	// Dump round trip keeps them.
	d, err := Parse([]byte(c.Dump()), "dump.toml")
	if err != nil {
		t.Fatal(err)
	}
	if d.API != c.API || d.Metrics != c.Metrics {
		t.Errorf("after Dump: %+v %+v", d.API, d.Metrics)
	}
	if c := mustParse(t, "[api]\nsocket = \"\"\n"); c.API.Socket != "" {
		t.Errorf("socket off: %+v", c.API)
	}
}

func TestMgmtBad(t *testing.T) {
	for _, tt := range []struct{ in, key, msg string }{
		{"[api]\nsocket = \"rel.sock\"", "api.socket", "absolute path"},
		{"[api]\nsocket_mode = \"0999\"", "api.socket_mode", "not an octal mode"},
		{"[api]\nsocket_mode = \"01777\"", "api.socket_mode", "only permission bits"},
		{"[api]\nsocket_mode = \"0440\"", "api.socket_mode", "needs write permission"},
		{"[api]\nsocket_group = \"a b\"", "api.socket_group", "not a group name"},
		{"[api]\nsockets = \"/x\"", "api.sockets", ""},
		{"[metrics]\nlisten = \"localhost:9641\"", "metrics.listen", "address:port"},
		{"[metrics]\nlisten = \"127.0.0.1:0\"", "metrics.listen", "address:port"},
		{"[metrics]\npath = \"metrics\"", "metrics.path", "starting with /"},
	} {
		_, err := Parse([]byte(tt.in), "t.toml")
		if err == nil || !strings.Contains(err.Error(), tt.key) || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("%q: error %v, want key %s and %q", tt.in, err, tt.key, tt.msg)
		}
	}
}
