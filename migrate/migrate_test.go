package migrate

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/l2tpd/l2tpd/config"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func readTestdata(name string) ([]byte, error) {
	return os.ReadFile(filepath.Join("testdata", name))
}

func src(t *testing.T, name string) *Source {
	t.Helper()
	b, err := readTestdata(name)
	if err != nil {
		t.Fatal(err)
	}
	return &Source{Name: name, Data: b}
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (go test -update rewrites it):\n%s", path, got)
	}
}

func mustParse(t *testing.T, out string) *config.Config {
	t.Helper()
	c, err := config.Parse([]byte(out), "imported.toml")
	if err != nil {
		t.Fatalf("config.Parse rejects the import: %v\n%s", err, out)
	}
	return c
}

func TestXL2TPDGolden(t *testing.T) {
	out, err := XL2TPD(*src(t, "xl2tpd.conf"), XL2TPDOptions{
		CHAPSecrets: src(t, "chap-secrets"),
		ReadFile:    readTestdata,
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	golden(t, "xl2tpd.golden.toml", out)
	c := mustParse(t, out)
	// Spot checks against the inputs, independent of the golden file.
	if c.AcceptUnknownPeers {
		t.Error("access control = yes should refuse unknown LACs")
	}
	if got := c.Listen[0].String(); got != "192.0.2.1:1701" {
		t.Errorf("listen %s", got)
	}
	if string(c.L2TP.Secret) != "tunnelsecret" || c.L2TP.Challenge != config.ChallengeRequire {
		t.Errorf("tunnel secret %q, challenge %v", c.L2TP.Secret, c.L2TP.Challenge)
	}
	p := c.Pool("xl2tpd")
	if p == nil || p.Gateway.String() != "10.10.0.1" || len(p.Ranges) != 2 || p.Ranges[1].To.String() != "10.10.1.50" {
		t.Errorf("pool %+v", p)
	}
	if got := c.PPP.DNS[1].String(); got != "192.0.2.54" || c.PPP.MTU != 1410 || c.PPP.LCPEchoFailure != 3 {
		t.Errorf("ppp %+v", c.PPP)
	}
	var names []string
	for _, s := range c.Subscribers {
		names = append(names, s.Name+"="+string(s.Password)+"@"+addr(s))
	}
	if want := "alice=correct horse@,bob=b0bpass@10.20.0.5,carol smith=quote\"d@,frank=fpass@"; strings.Join(names, ",") != want {
		t.Errorf("subscribers %s, want %s", strings.Join(names, ","), want)
	}
	if len(c.LACs) != 1 || c.LACs[0].Username != "branch7" || string(c.LACs[0].Password) != "s3cret pass" {
		t.Errorf("lac %+v", c.LACs)
	}
	for _, must := range []string{"options.xl2tpd:12: idle 1800", "chap-secrets:6: wildcard client", `chap-secrets:7: secret of "dave" is for server "othersrv"`, "require-mppe-128",
		"proxyarp", "lac-b.example.net", "chap-secrets:9: \"frank\": address 10.20.0.5 is already"} {
		if !strings.Contains(out, must) {
			t.Errorf("no comment mentions %q", must)
		}
	}
}

func addr(s config.Subscriber) string {
	if s.Address.IsValid() {
		return s.Address.String()
	}
	return ""
}

func TestAccelPPPGolden(t *testing.T) {
	out, err := AccelPPP(*src(t, "accel-ppp.conf"), AccelPPPOptions{})
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	golden(t, "accel-ppp.golden.toml", out)
	c := mustParse(t, out)
	if c.HostName != "bng-1" || c.L2TP.ReorderTimeout.Milliseconds() != 50 || !c.L2TP.HideAVPs || c.L2TP.MaxStarting != 200 {
		t.Errorf("l2tp %+v", c.L2TP)
	}
	if c.PPP.IPPool != "l2tp" || c.PPP.IfName != "l2tp%d" || c.PPP.IPv6 != config.PolicyDeny || c.PPP.SingleSession.String() != "replace" {
		t.Errorf("ppp %+v", c.PPP)
	}
	if len(c.PPP.Auth) != 2 || c.PPP.Auth[0].String() != "mschapv2" {
		t.Errorf("auth %v", c.PPP.Auth)
	}
	p := c.Pool("l2tp")
	if p == nil || len(p.Ranges) != 2 || p.Ranges[0].To.String() != "100.64.0.255" || p.Gateway.String() != "100.64.0.1" {
		t.Errorf("pool l2tp %+v", p)
	}
	for _, must := range []string{"# server = 192.0.2.50,testing123", "module pppoe", "auth_mschap_v1", "next=l2tp", "[cli] telnet"} {
		if !strings.Contains(out, must) {
			t.Errorf("no comment mentions %q", must)
		}
	}
}

func TestEmptyInputsParse(t *testing.T) {
	for _, f := range []func() (string, error){
		func() (string, error) { return XL2TPD(Source{Name: "empty"}, XL2TPDOptions{}) },
		func() (string, error) { return AccelPPP(Source{Name: "empty"}, AccelPPPOptions{}) },
	} {
		out, err := f()
		if err != nil {
			t.Fatal(err)
		}
		mustParse(t, out)
	}
}

func TestUnreadableFilesAreNoted(t *testing.T) {
	out, err := XL2TPD(Source{Name: "x.conf", Data: []byte("[lns default]\nip range = 10.0.0.2-10.0.0.9\npppoptfile = /nonexistent\n")}, XL2TPDOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "pppoptfile /nonexistent was not read; pass it on the command line") {
		t.Errorf("no note about the unread file:\n%s", out)
	}
	if !strings.Contains(out, `gateway = "10.0.0.2" # CHECK`) {
		t.Errorf("gateway placeholder not flagged:\n%s", out)
	}
}

func TestIPRange(t *testing.T) {
	tests := []struct{ in, want string }{
		{"10.0.0.2-10.0.0.20", "10.0.0.2-10.0.0.20"},
		{"10.0.0.2-20", "10.0.0.2-10.0.0.20"},
		{"10.0.0.0/24", "10.0.0.0/24"},
		{"10.0.0.5/24", "10.0.0.0/24"},
		{"10.0.0.7", "10.0.0.7"},
		{"10.0.0.7-7", "10.0.0.7"},
		{"10.0.0.9-3", ""},
		{"10.0.0.1-300", ""},
		{"::1-::2", ""},
		{"host.example", ""},
	}
	for _, tt := range tests {
		got, _, ok := ipRange(tt.in)
		if got != tt.want || ok != (tt.want != "") {
			t.Errorf("ipRange(%q) = %q, %v; want %q", tt.in, got, ok, tt.want)
		}
	}
}

func TestFields(t *testing.T) {
	got := strings.Join(fields(`alice * "a b\"c" 10.0.0.1 # comment`), "|")
	if want := `alice|*|a b"c|10.0.0.1`; got != want {
		t.Errorf("fields = %q, want %q", got, want)
	}
	if got := fields(`"" x`); len(got) != 2 || got[0] != "" {
		t.Errorf("empty quoted field: %q", got)
	}
}

func fuzzCheck(t *testing.T, out string, err error) {
	if err != nil {
		// The converter refused its own output: it must say why in the header.
		if !strings.Contains(out, "l2tpd rejects the converted file") {
			t.Fatalf("error %v without the note", err)
		}
		return
	}
	if _, err := config.Parse([]byte(out), "fuzz.toml"); err != nil {
		t.Fatalf("output does not parse: %v\n%s", err, out)
	}
}

func FuzzXL2TPD(f *testing.F) {
	for _, n := range []string{"xl2tpd.conf", "options.xl2tpd"} {
		b, _ := readTestdata(n)
		f.Add(b, []byte("alice * pw 10.9.9.9\n"))
	}
	f.Add([]byte("[lns default]\nip range = 10.0.0.1-5\nlocal ip = 10.0.0.1\n"), []byte(`"a\" * "`))
	f.Fuzz(func(t *testing.T, conf, secrets []byte) {
		out, err := XL2TPD(Source{Name: "f.conf", Data: conf}, XL2TPDOptions{
			CHAPSecrets: &Source{Name: "chap-secrets", Data: secrets},
			ReadFile: func(string) ([]byte, error) {
				return secrets, nil
			},
		})
		fuzzCheck(t, out, err)
	})
}

func FuzzAccelPPP(f *testing.F) {
	b, _ := readTestdata("accel-ppp.conf")
	f.Add(b)
	f.Add([]byte("[ip-pool]\n10.0.0.1-9,name=a b\n[l2tp]\nsecret=\"x\n"))
	f.Fuzz(func(t *testing.T, conf []byte) {
		out, err := AccelPPP(Source{Name: "f.conf", Data: conf}, AccelPPPOptions{
			ReadFile: func(string) ([]byte, error) { return []byte("u * p\n"), nil },
		})
		fuzzCheck(t, out, err)
	})
}
