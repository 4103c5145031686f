package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/l2tpd/l2tpd/auth"
	"github.com/l2tpd/l2tpd/auth/radius"
	"github.com/l2tpd/l2tpd/config"
	"github.com/l2tpd/l2tpd/internal/testenv"
	"github.com/l2tpd/l2tpd/ppp/chap"
	"github.com/l2tpd/l2tpd/ppp/mschapv2"
)

const frSecret = "testing123-l2tpd"

// freeRADIUS is a FreeRADIUS started on loopback with a generated config.
type freeRADIUS struct {
	ns   *testenv.Netns // nil: this namespace
	dir  string
	auth int
	acct int
	cmd  *exec.Cmd
	log  *os.File
}

func freePort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

func requireFreeRADIUS(t *testing.T) {
	t.Helper()
	if _, err := os.Stat("/etc/freeradius/3.0/radiusd.conf"); err != nil {
		skipOrFail(t, "FreeRADIUS (Debian freeradius) is not installed")
	}
	if _, err := exec.LookPath("freeradius"); err != nil {
		skipOrFail(t, "freeradius binary not found")
	}
}

func skipOrFail(t *testing.T, msg string) {
	t.Helper()
	if os.Getenv("L2TPD_REQUIRE_INTEGRATION") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// newFreeRADIUS writes a config (users alice/pap, bob/chap, carol/mschapv2
// with fixed addresses; accounting to detail files) into a temp dir.
func newFreeRADIUS(t *testing.T) *freeRADIUS {
	t.Helper()
	requireFreeRADIUS(t)
	dir := t.TempDir()
	raddb := filepath.Join(dir, "raddb")
	if out, err := exec.Command("cp", "-rL", "/etc/freeradius/3.0", raddb).CombinedOutput(); err != nil {
		t.Fatalf("copying raddb: %v %s", err, out)
	}
	os.Remove(filepath.Join(raddb, "sites-enabled", "inner-tunnel"))
	f := &freeRADIUS{dir: dir, auth: freePort(t), acct: freePort(t)}
	edit := func(name string, fn func(string) string) {
		p := filepath.Join(raddb, name)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(fn(string(b))), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	edit("radiusd.conf", func(s string) string {
		s = regexp.MustCompile(`(?m)^logdir = .*$`).ReplaceAllString(s, "logdir = "+dir+"/log")
		s = regexp.MustCompile(`(?m)^run_dir = .*$`).ReplaceAllString(s, "run_dir = "+dir+"/run")
		s = regexp.MustCompile(`(?m)^\s*(user|group) = freerad$`).ReplaceAllString(s, "")
		return s
	})
	edit("sites-enabled/default", func(s string) string {
		s = strings.ReplaceAll(s, "ipaddr = *", "ipaddr = 127.0.0.1")
		// The IPv6 listeners become spare IPv4 ones on free ports.
		s = regexp.MustCompile(`(?m)^\s*ipv6addr = ::$`).ReplaceAllString(s, "\tipaddr = 127.0.0.1")
		n := 0
		return regexp.MustCompile(`(?m)^\tport = 0$`).ReplaceAllStringFunc(s, func(string) string {
			n++
			switch n {
			case 1:
				return fmt.Sprintf("\tport = %d", f.auth)
			case 2:
				return fmt.Sprintf("\tport = %d", f.acct)
			}
			if n <= 4 {
				return fmt.Sprintf("\tport = %d", freePort(t))
			}
			return "\tport = 0"
		})
	})
	clients := fmt.Sprintf("client lns {\n\tipaddr = 127.0.0.1\n\tsecret = %s\n\trequire_message_authenticator = yes\n}\n", frSecret)
	users := `alice Cleartext-Password := "alice-pw"
	Framed-IP-Address = 10.77.0.1, Acct-Interim-Interval = 60, Class = "alice-class"
bob Cleartext-Password := "bob-pw"
	Framed-IP-Address = 10.77.0.2
carol Cleartext-Password := "carol-pw"
	Framed-IP-Address = 10.77.0.3
`
	os.MkdirAll(filepath.Join(dir, "log"), 0o755)
	os.MkdirAll(filepath.Join(dir, "run"), 0o755)
	if err := os.WriteFile(filepath.Join(raddb, "clients.conf"), []byte(clients), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(raddb, "mods-config", "files", "authorize"), []byte(users), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *freeRADIUS) start(t *testing.T) {
	t.Helper()
	logf, err := os.Create(filepath.Join(f.dir, fmt.Sprintf("freeradius-%d.log", time.Now().UnixNano())))
	if err != nil {
		t.Fatal(err)
	}
	f.log = logf
	if f.ns != nil {
		f.cmd = f.ns.Command("freeradius", "-X", "-d", filepath.Join(f.dir, "raddb"))
	} else {
		f.cmd = exec.Command("freeradius", "-X", "-d", filepath.Join(f.dir, "raddb"))
	}
	pr, pw, _ := os.Pipe()
	f.cmd.Stdout, f.cmd.Stderr = pw, pw
	if err := f.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		once := false
		for sc.Scan() {
			fmt.Fprintln(logf, sc.Text())
			if !once && strings.Contains(sc.Text(), "Ready to process requests") {
				once = true
				close(ready)
			}
		}
		if !once {
			close(ready)
		}
	}()
	t.Cleanup(func() {
		f.stop()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			if len(b) > 6000 {
				b = b[len(b)-6000:]
			}
			t.Logf("FreeRADIUS log (tail):\n%s", b)
		}
	})
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		t.Fatalf("FreeRADIUS did not start; log in %s", logf.Name())
	}
	if f.cmd.ProcessState != nil {
		t.Fatalf("FreeRADIUS exited; log in %s", logf.Name())
	}
}

func (f *freeRADIUS) stop() {
	if f.cmd != nil && f.cmd.Process != nil {
		f.cmd.Process.Kill()
		f.cmd.Wait()
		f.cmd = nil
	}
}

// detail returns the accounting detail files' content.
func (f *freeRADIUS) detail(t *testing.T) string {
	files, _ := filepath.Glob(filepath.Join(f.dir, "log", "radacct", "*", "detail-*"))
	var b strings.Builder
	for _, p := range files {
		d, _ := os.ReadFile(p)
		b.Write(d)
	}
	return b.String()
}

func (f *freeRADIUS) config(t *testing.T, spool string) config.RADIUS {
	c := config.DefaultRADIUS()
	c.NASIdentifier = "l2tpd-e2e"
	c.NASIPAddress = netip.MustParseAddr("127.0.0.1")
	c.SpoolDir = spool
	c.DeadTime = time.Second
	c.Servers = []config.RADIUSServer{{Address: netip.MustParseAddr("127.0.0.1"), AuthPort: f.auth, AcctPort: f.acct,
		Secret: []byte(frSecret), Weight: 1, Timeout: time.Second, Retries: 1,
		// FreeRADIUS 3.2.1 (Debian 12) signs Access-Accept/Reject with a
		// Message-Authenticator only from 3.2.5 on (BlastRADIUS): the
		// per-server switch for old servers. It still checks ours.
		RequireMessageAuthenticator: false}}
	return c
}

func TestFreeRADIUSAuthAndAccounting(t *testing.T) {
	fr := newFreeRADIUS(t)
	fr.start(t)
	c, err := radius.New(fr.config(t, t.TempDir()), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	info := auth.SessionInfo{AcctSessionID: "e2e-1", TunnelID: 1, SessionID: 2, LACHostName: "lac",
		LACAddr: netip.MustParseAddrPort("127.0.0.2:1701"), LocalAddr: netip.MustParseAddrPort("127.0.0.1:1701")}

	// PAP
	res, err := c.Authenticate(ctx, &auth.Request{Method: auth.MethodPAP, Username: "alice", Password: []byte("alice-pw"), Session: info})
	if err != nil || !res.Accept || res.FramedIP != netip.MustParseAddr("10.77.0.1") || res.InterimInterval != time.Minute {
		t.Fatalf("PAP: %+v, %v", res, err)
	}
	res, err = c.Authenticate(ctx, &auth.Request{Method: auth.MethodPAP, Username: "alice", Password: []byte("wrong"), Session: info})
	if err != nil || res.Accept {
		t.Errorf("PAP wrong password: %+v, %v", res, err)
	}
	// CHAP
	challenge := []byte("0123456789abcdef")
	r := chap.CHAPMD5(5, []byte("bob-pw"), challenge)
	res, err = c.Authenticate(ctx, &auth.Request{Method: auth.MethodCHAPMD5, Username: "bob", ID: 5, Challenge: challenge, Response: r[:], Session: info})
	if err != nil || !res.Accept || res.FramedIP != netip.MustParseAddr("10.77.0.2") {
		t.Fatalf("CHAP: %+v, %v", res, err)
	}
	// MS-CHAPv2
	var ac, pc [16]byte
	copy(ac[:], "authchallenge-16")
	copy(pc[:], "peerchallenge-16")
	mr := mschapv2.BuildResponse(ac, pc, "carol", "carol-pw")
	res, err = c.Authenticate(ctx, &auth.Request{Method: auth.MethodMSCHAPv2, Username: "carol", ID: 9, Challenge: ac[:], Response: mr[:], Session: info})
	if err != nil || !res.Accept || res.FramedIP != netip.MustParseAddr("10.77.0.3") {
		t.Fatalf("MS-CHAPv2: %+v, %v", res, err)
	}
	if !mschapv2.CheckAuthenticatorResponse(res.MSCHAPv2AuthResponse, "carol-pw", [24]byte(mr[24:48]), pc, ac, "carol") {
		t.Errorf("MS-CHAP2-Success %q does not verify", res.MSCHAPv2AuthResponse)
	}

	// Accounting: Start, Interim, Stop with octets land in the detail file.
	s := &auth.AcctSession{ID: "e2e-acct-1", Username: "alice", Info: info, FramedIP: res.FramedIP, Class: [][]byte{[]byte("alice-class")}}
	c.Start(s)
	c.Interim(s, auth.AcctCounters{InOctets: 1000, OutOctets: 2000, SessionTime: time.Minute})
	c.Stop(s, auth.AcctCounters{InOctets: 5<<32 + 1234, OutOctets: 4321, InPackets: 10, OutPackets: 20, SessionTime: 2 * time.Minute}, auth.CauseUserRequest)
	waitFor(t, 10*time.Second, func() bool { return c.Pending() == 0 })
	d := fr.detail(t)
	for _, want := range []string{"Acct-Status-Type = Start", "Acct-Status-Type = Interim-Update", "Acct-Status-Type = Stop",
		"Acct-Input-Octets = 1234", "Acct-Input-Gigawords = 5", "Acct-Output-Octets = 4321", "Acct-Terminate-Cause = User-Request",
		`Acct-Session-Id = "e2e-acct-1"`} {
		if !strings.Contains(d, want) {
			t.Errorf("detail file lacks %q:\n%s", want, d)
		}
	}
}

// Both servers down: records spool; one back: each arrives once.
func TestFreeRADIUSSpoolDrains(t *testing.T) {
	fr := newFreeRADIUS(t)
	spool := t.TempDir()
	cfg := fr.config(t, spool)
	cfg.Servers[0].Timeout = 200 * time.Millisecond
	c, err := radius.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		s := &auth.AcctSession{ID: fmt.Sprintf("spool-%d", i), Username: "alice"}
		c.Start(s)
		c.Stop(s, auth.AcctCounters{InOctets: uint64(100 + i)}, auth.CauseLostCarrier)
	}
	c.Close() // a restart with everything unsent
	if n, _ := filepath.Glob(filepath.Join(spool, "*.log")); len(n) == 0 {
		t.Fatal("no spool log written with the server down")
	}
	fr.start(t)
	c2, err := radius.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	waitFor(t, 20*time.Second, func() bool { return c2.Pending() == 0 })
	d := fr.detail(t)
	for i := range 5 {
		if n := strings.Count(d, fmt.Sprintf(`Acct-Session-Id = "spool-%d"`, i)); n != 2 {
			t.Errorf("spool-%d: %d records in the detail file, want 2 (Start, Stop)", i, n)
		}
	}
	if !strings.Contains(d, "Acct-Delay-Time = ") {
		t.Error("no Acct-Delay-Time in the detail file")
	}
}

func waitFor(t *testing.T, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in time")
		}
		time.Sleep(20 * time.Millisecond) // polling a condition
	}
}
