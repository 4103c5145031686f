package lab

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const testModulesDep = `kernel/fs/overlayfs/overlay.ko:
kernel/fs/9p/9p.ko: kernel/net/9p/9pnet.ko kernel/fs/fscache/fscache.ko kernel/fs/netfs/netfs.ko
kernel/net/9p/9pnet.ko:
kernel/fs/fscache/fscache.ko: kernel/fs/netfs/netfs.ko
kernel/fs/netfs/netfs.ko:
kernel/net/9p/9pnet_virtio.ko: kernel/net/9p/9pnet.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio.ko:
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_legacy_dev.ko kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_pci_legacy_dev.ko:
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/drivers/loop/a.ko: kernel/drivers/loop/b.ko
kernel/drivers/loop/b.ko: kernel/drivers/loop/a.ko
`

func TestModuleLoadOrder(t *testing.T) {
	md, err := parseModulesDep(testModulesDep)
	if err != nil {
		t.Fatal(err)
	}
	builtin := parseModulesBuiltin("kernel/drivers/block/virtio_blk.ko\n")
	tests := []struct {
		names   []string
		want    string
		wantErr string
	}{
		{names: []string{"9p"}, want: "netfs fscache 9pnet 9p"},
		{names: []string{"virtio-pci", "9pnet_virtio", "9p", "overlay"},
			want: "virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci 9pnet 9pnet_virtio netfs fscache 9p overlay"},
		{names: []string{"virtio_blk", "overlay"}, want: "overlay"},
		{names: []string{"nosuch"}, wantErr: "module nosuch: not in modules.dep"},
		{names: []string{"a"}, wantErr: "cycle"},
	}
	for _, tt := range tests {
		order, err := md.loadOrder(builtin, tt.names)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%v: err %v, want %q", tt.names, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%v: %v", tt.names, err)
			continue
		}
		var got []string
		for _, f := range order {
			got = append(got, moduleName(f))
		}
		if strings.Join(got, " ") != tt.want {
			t.Errorf("%v:\n got %s\nwant %s", tt.names, strings.Join(got, " "), tt.want)
		}
	}
}

func TestParseModulesDepErrors(t *testing.T) {
	if _, err := parseModulesDep("kernel/x.ko kernel/y.ko\n"); err == nil {
		t.Error("line without colon: no error")
	}
}

func FuzzParseModulesDep(f *testing.F) {
	f.Add(testModulesDep, "9p")
	f.Add("a.ko: b.ko\nb.ko: a.ko\n", "a")
	f.Fuzz(func(t *testing.T, dep, name string) {
		md, err := parseModulesDep(dep)
		if err != nil {
			return
		}
		order, err := md.loadOrder(nil, []string{name})
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, f := range order {
			if seen[f] {
				t.Fatalf("module %s listed twice in %v", f, order)
			}
			seen[f] = true
			// Every dependency of a module must come before it.
			for _, d := range md.deps[moduleName(f)] {
				if df, ok := md.file[d]; ok && !seen[df] {
					t.Fatalf("%s loaded before its dependency %s: %v", f, df, order)
				}
			}
		}
	})
}

func TestParseMarker(t *testing.T) {
	const p = "LAB:0123:"
	tests := []struct {
		line string
		ev   marker
		arg  string
	}{
		{"LAB:0123:start", markStart, ""},
		{"LAB:0123:exit:0", markExit, "0"},
		{"partial output LAB:0123:exit:17", markExit, "17"},
		{"LAB:0123:modprobe-failed:1", markModprobe, "1"},
		{"LAB:0123:initfail:mount hostroot", markInitFail, "mount hostroot"},
		{"LAB:0123:init", markInit, ""},
		{"LAB:9999:exit:0", markNone, ""}, // another nonce: forged
		{"LAB:0123:bogus", markNone, ""},
		{"hello", markNone, ""},
	}
	for _, tt := range tests {
		ev, arg := parseMarker(tt.line, p)
		if ev != tt.ev || arg != tt.arg {
			t.Errorf("parseMarker(%q) = %v, %q; want %v, %q", tt.line, ev, arg, tt.ev, tt.arg)
		}
	}
}

func FuzzParseMarker(f *testing.F) {
	f.Add("LAB:n:exit:3")
	f.Add("xxLAB:n:start")
	f.Fuzz(func(t *testing.T, line string) {
		ev, arg := parseMarker(line, "LAB:n:")
		if ev != markNone && !strings.Contains(line, "LAB:n:") {
			t.Fatalf("marker %v from line without prefix %q", ev, line)
		}
		if ev == markNone && arg != "" {
			t.Fatalf("no marker but arg %q", arg)
		}
	})
}

func TestVersionLess(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"6.1.0-9-amd64", "6.1.0-56-amd64", true},
		{"6.1.0-56-amd64", "6.1.0-9-amd64", false},
		{"5.10.0-1-amd64", "6.1.0-1-amd64", true},
		{"6.1.0-1-amd64", "6.1.0-1-amd64", false},
	}
	for _, tt := range tests {
		if got := versionLess(tt.a, tt.b); got != tt.want {
			t.Errorf("versionLess(%q, %q) = %v", tt.a, tt.b, got)
		}
	}
}

func TestXL2TPDWrite(t *testing.T) {
	dir := t.TempDir()
	f, err := XL2TPD{
		Name: "lns", ListenAddr: "10.1.0.1", TunnelSecret: "s3cret", Hidden: true,
		LNS: &XL2TPDLNS{IPRange: "10.99.0.100-10.99.0.199", LocalIP: "10.99.0.1",
			Users: []PPPUser{{Name: "alice", Password: "pw"}}},
	}.Write(dir)
	if err != nil {
		t.Fatal(err)
	}
	read := func(p string) string {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	conf := read(f.Conf)
	for _, want := range []string{
		"[global]\nlisten-addr = 10.1.0.1\nport = 1701\n",
		"auth file = " + filepath.Join(dir, "lns", "l2tp-secrets") + "\n",
		"[lns default]\nip range = 10.99.0.100-10.99.0.199\nlocal ip = 10.99.0.1\n",
		"require chap = yes\n", "challenge = yes\n", "hidden bit = yes\n",
		"pppoptfile = " + f.PPPOptions + "\n",
	} {
		if !strings.Contains(conf, want) {
			t.Errorf("xl2tpd.conf lacks %q:\n%s", want, conf)
		}
	}
	if got := read(f.Secrets); got != "* * s3cret\n" {
		t.Errorf("l2tp-secrets = %q", got)
	}
	if got := read(f.PPPSecrets); got != "alice * pw *\n" || f.PPPSecretTo != "/etc/ppp/chap-secrets" {
		t.Errorf("chap-secrets = %q to %s", got, f.PPPSecretTo)
	}
	if opts := read(f.PPPOptions); !strings.Contains(opts, "logfile "+f.PPPLog+"\n") || strings.Contains(opts, "noauth") {
		t.Errorf("LNS pppd options:\n%s", opts)
	}

	lac, err := XL2TPD{Name: "lac", LAC: &XL2TPDLAC{LNS: "10.1.0.1", User: "alice", Password: "pw"}}.Write(dir)
	if err != nil {
		t.Fatal(err)
	}
	if conf := read(lac.Conf); !strings.Contains(conf, "[lac lab]\nlns = 10.1.0.1\n") || !strings.Contains(conf, "challenge = no\n") {
		t.Errorf("LAC xl2tpd.conf:\n%s", conf)
	}
	if opts := read(lac.PPPOptions); !strings.Contains(opts, "noauth\n") || !strings.Contains(opts, "name alice\npassword pw\n") {
		t.Errorf("LAC pppd options:\n%s", opts)
	}
	if lac.PPPSecrets != "" || strings.Contains(lac.Start("lac"), "/etc/ppp") {
		t.Errorf("LAC installs PPP secrets: %q", lac.Start("lac"))
	}
	if got := lac.Dial(""); got != "echo 'c lab' > '"+lac.ControlFile+"'\n" {
		t.Errorf("Dial = %q", got)
	}

	for _, bad := range []XL2TPD{
		{Name: "", LAC: &XL2TPDLAC{}},
		{Name: "x"},
		{Name: "x", LNS: &XL2TPDLNS{Auth: "eap"}},
		{Name: "x", LAC: &XL2TPDLAC{User: "a b"}},
	} {
		if _, err := bad.Write(dir); err == nil {
			t.Errorf("Write(%+v): no error", bad)
		}
	}
}

func TestShq(t *testing.T) {
	if got := shq("it's"); got != `'it'\''s'` {
		t.Errorf("shq = %s", got)
	}
}

func TestAvailableReportsMissingKernel(t *testing.T) {
	t.Setenv("L2TPD_LAB_KERNEL", "/nonexistent/vmlinuz-0.0.0-lab")
	err := Available()
	if err == nil {
		t.Fatal("Available() = nil with a kernel that does not exist")
	}
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "0.0.0-lab") {
		t.Errorf("Available() = %v: want ErrUnavailable naming the kernel", err)
	}
}

func TestModuleRoot(t *testing.T) {
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "lab", "lab.go")); err != nil {
		t.Fatalf("module root %s: %v", root, err)
	}
	t.Chdir(t.TempDir())
	if _, err := moduleRoot(); err == nil || !strings.Contains(err.Error(), "not inside") {
		t.Fatalf("outside the module: %v, want a not-inside error", err)
	}
}
