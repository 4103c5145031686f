package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/l2tpd/l2tpd/mgmt"
	"github.com/l2tpd/l2tpd/mgmt/fake"
)

var update = flag.Bool("update", false, "rewrite golden files")

var now = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// live starts a real management server on a Unix socket with a fake
// backend and returns the socket path.
func live(t *testing.T, b *fake.Backend) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "l2tpd.sock")
	ln, err := mgmt.Listen(path, mgmt.ListenOptions{GID: -1})
	if err != nil {
		t.Fatal(err)
	}
	srv := mgmt.NewServer(b)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return path
}

// ctl runs l2tpctl with args against the socket and returns exit code,
// stdout and stderr.
func ctl(t *testing.T, sock string, args ...string) (int, string, string) {
	t.Helper()
	e := newEnv()
	var out, errb bytes.Buffer
	e.stdout, e.stderr = &out, &errb
	e.now = func() time.Time { return now }
	e.readFile = func(name string) ([]byte, error) {
		return os.ReadFile(filepath.Join("..", "..", "migrate", "testdata", name))
	}
	code := run(context.Background(), append([]string{"--socket", sock}, args...), e)
	return code, out.String(), errb.String()
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		os.MkdirAll("testdata", 0o755)
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test -update creates it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs (go test -update rewrites it):\n--- got\n%s--- want\n%s", path, got, want)
	}
}

// Every show command against a live server, golden tables.
func TestShowGolden(t *testing.T) {
	sock := live(t, fake.Sample(now))
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"sessions", []string{"show", "sessions"}},
		{"sessions-peer", []string{"show", "sessions", "--peer", "bras-1"}},
		{"sessions-columns", []string{"show", "sessions", "--columns", "user,address,rx,tx", "--tunnel", "3"}},
		{"sessions-user", []string{"show", "sessions", "--user", "alice"}},
		{"sessions-address", []string{"show", "sessions", "--address", "10.64.0.3"}},
		{"tunnels", []string{"show", "tunnels"}},
		{"stats", []string{"show", "stats"}},
		{"pools", []string{"show", "pools"}},
		{"peers", []string{"show", "peers"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := ctl(t, sock, tc.args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errs)
			}
			golden(t, tc.name, out)
		})
	}
}

func TestShowJSON(t *testing.T) {
	sock := live(t, fake.Sample(now))
	code, out, errs := ctl(t, sock, "show", "sessions", "--json", "--user", "bob@isp")
	if code != 0 {
		t.Fatal(errs)
	}
	var got []mgmt.Session
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if len(got) != 1 || got[0].TxBytes != 1_500_000 || got[0].Address.String() != "10.64.0.3" {
		t.Errorf("got %+v", got)
	}
	code, out, _ = ctl(t, sock, "show", "sessions", "--json", "--user", "nobody")
	if code != 0 || strings.TrimSpace(out) != "[]" {
		t.Errorf("empty JSON: %d %q", code, out)
	}
	for _, what := range []string{"tunnels", "stats", "pools", "peers"} {
		code, out, _ := ctl(t, sock, "show", what, "--json")
		if code != 0 || !json.Valid([]byte(out)) {
			t.Errorf("show %s --json: %d %s", what, code, out)
		}
	}
}

func TestActions(t *testing.T) {
	b := fake.Sample(now)
	sock := live(t, b)
	tests := []struct {
		args     []string
		code     int
		out, err string
	}{
		{[]string{"terminate", "user", "alice"}, 0, "terminating 1 session(s) softly", ""},
		{[]string{"terminate", "user", "alice"}, exitNotFound, "", "no sessions match user=alice"},
		{[]string{"terminate", "address", "10.64.0.3", "--hard"}, 0, "terminating 1 session(s) hard", ""},
		{[]string{"terminate", "tunnel", "17"}, 0, "terminating 1 tunnel(s) with 1 session(s)", ""},
		{[]string{"terminate"}, exitUsage, "", "terminate what?"},
		{[]string{"terminate", "matching"}, exitUsage, "", "needs a filter"},
		{[]string{"terminate", "address", "nope"}, exitUsage, "", "not an IP address"},
		{[]string{"reload"}, 0, "reloaded /etc/l2tpd/l2tpd.toml", ""},
		{[]string{"drain"}, 0, "draining: new tunnels and sessions are refused; 1 tunnel(s) and 0 session(s) continue", ""},
		{[]string{"undrain"}, 0, "accepting new tunnels and sessions again", ""},
		{[]string{"log", "level"}, 0, "log level info\n", ""},
		{[]string{"log", "level", "debug"}, 0, "log level debug (was info)\n", ""},
		{[]string{"log", "level", "chatty"}, exitUsage, "", "want one of debug, info, warn, error"},
		{[]string{"log", "trace", "user", "bob", "--for", "10m"}, 0, "user bob  in 10m00s", ""},
		{[]string{"log", "trace", "peer", "bras-1"}, 0, "peer bras-1  when turned off", ""},
		{[]string{"log", "trace", "user", "bob", "--off"}, 0, "TRACE        EXPIRES\npeer bras-1  when turned off\n", ""},
		{[]string{"shutdown", "--soft"}, 0, "soft shutdown: refusing new sessions; l2tpd exits when the last of 0 session(s) has gone", ""},
		{[]string{"undrain"}, exitFailed, "", "shutting down; it cannot undrain"},
		{[]string{"frobnicate"}, exitUsage, "", `unknown command "frobnicate"`},
		{[]string{"show", "sessions", "--columns", "user,colour"}, exitUsage, "", `unknown column "colour"; choose from id,user,`},
	}
	for _, tt := range tests {
		code, out, errs := ctl(t, sock, tt.args...)
		if code != tt.code || !strings.Contains(out, tt.out) || !strings.Contains(errs, tt.err) {
			t.Errorf("l2tpctl %s: exit %d\nstdout: %s\nstderr: %s\nwant exit %d, stdout with %q, stderr with %q",
				strings.Join(tt.args, " "), code, out, errs, tt.code, tt.out, tt.err)
		}
	}
	if b.ShutDown == nil || !b.ShutDown.Soft || b.Reloads != 1 || b.Level != "debug" {
		t.Errorf("backend after the actions: shutdown %+v, reloads %d, level %s", b.ShutDown, b.Reloads, b.Level)
	}
}

func TestReloadRefused(t *testing.T) {
	b := fake.Sample(now)
	b.ReloadErr = "/etc/l2tpd/l2tpd.toml:12: [l2tp] retransmit: 0 is out of range (1..100)"
	code, _, errs := ctl(t, live(t, b), "reload")
	if code != exitFailed || !strings.Contains(errs, "keeps running the previous configuration") || !strings.Contains(errs, "l2tpd.toml:12") {
		t.Errorf("exit %d: %s", code, errs)
	}
}

func TestNoDaemon(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "l2tpd.sock")
	code, _, errs := ctl(t, sock, "show", "sessions")
	if code != exitFailed || !strings.Contains(errs, "is l2tpd running?") || !strings.Contains(errs, sock) {
		t.Errorf("exit %d: %s", code, errs)
	}
}

func TestImport(t *testing.T) {
	code, out, errs := ctl(t, "/nonexistent", "import", "accel-ppp", "accel-ppp.conf")
	if code != 0 || !strings.Contains(out, `host_name = "bng-1"`) {
		t.Errorf("import accel-ppp: %d %s", code, errs)
	}
	code, out, errs = ctl(t, "/nonexistent", "import", "xl2tpd", "xl2tpd.conf", "options.xl2tpd", "chap-secrets")
	if code != 0 || !strings.Contains(out, `name = "alice"`) {
		t.Errorf("import xl2tpd: %d %s", code, errs)
	}
	code, _, errs = ctl(t, "/nonexistent", "import", "xl2tpd", "missing.conf")
	if code != exitFailed || !strings.Contains(errs, "missing.conf") {
		t.Errorf("missing file: %d %s", code, errs)
	}
}

func TestHumanUnits(t *testing.T) {
	for _, tt := range []struct {
		got, want string
	}{
		{humanBytes(0), "0 B"}, {humanBytes(1023), "1023 B"}, {humanBytes(1536), "1.5 KiB"},
		{humanBytes(9_876_543_210), "9.2 GiB"}, {humanBytes(200 << 20), "200 MiB"},
		{humanDuration(2 * time.Second), "2s"}, {humanDuration(42*time.Minute + 7*time.Second), "42m07s"},
		{humanDuration(3*time.Hour + 2*time.Minute), "3h02m"}, {humanDuration(26*24*time.Hour + 4*time.Hour), "26d04h"},
		{humanDuration(-time.Second), "0s"},
		{humanCount(950), "950"}, {humanCount(12_345), "12.3k"}, {humanCount(4_500_000), "4.5M"},
		{humanLatency(3200 * time.Microsecond), "3.2ms"}, {humanLatency(41 * time.Millisecond), "41ms"},
		{humanLatency(500 * time.Microsecond), "500µs"}, {humanLatency(0), "-"},
		{sanitize("a\x1b[31mb"), "a?[31mb"}, {sanitize(""), "-"},
	} {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

// Held calls: none held ever (no "held 0" state, "none"), then the JSON
// carries the counters.
func TestStatsHeldCalls(t *testing.T) {
	b := fake.Sample(now)
	b.StatsValue.Held = mgmt.HeldCalls{}
	b.StatsValue.SessionsByState["held"] = 0
	sock := live(t, b)
	code, out, errs := ctl(t, sock, "show", "stats")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{
		"\nsessions  3 (authenticating 1, established 2)\n",
		"\nheld calls      none (max_starting never reached)\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("show stats lacks %q:\n%s", want, out)
		}
	}

	sock = live(t, fake.Sample(now))
	code, out, errs = ctl(t, sock, "show", "stats", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var got mgmt.Stats
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	want := mgmt.HeldCalls{Total: 1250, Admitted: 1210, Expired: 31, Ended: 7, MaxWait: 2400 * time.Millisecond, OldestWait: 850 * time.Millisecond}
	if got.Held != want || got.SessionsByState["held"] != 2 {
		t.Errorf("held calls over the API: %+v, held now %d; want %+v, 2", got.Held, got.SessionsByState["held"], want)
	}
	var raw struct {
		Held map[string]int64 `json:"held_calls"`
	}
	if err := json.Unmarshal([]byte(out), &raw); err != nil {
		t.Fatal(err)
	}
	wire := map[string]int64{"total": 1250, "admitted": 1210, "expired": 31, "ended": 7, "max_wait_ns": 2_400_000_000, "oldest_wait_ns": 850_000_000}
	if !maps.Equal(raw.Held, wire) {
		t.Errorf("held_calls on the wire: %v, want %v", raw.Held, wire)
	}
}
