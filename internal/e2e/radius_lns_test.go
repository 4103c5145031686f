package e2e

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/l2tpd/l2tpd/internal/testenv"
)

const daeSecret = "dae-secret-l2tpd"

// radiusLNSConfig is an LNS whose [ppp] profile authenticates through
// RADIUS (servers in priority order), accounts to the same servers,
// spools to spool and answers Disconnect/CoA on 127.0.0.1:daePort.
func radiusLNSConfig(spool string, daePort int, servers ...*freeRADIUS) string {
	var b strings.Builder
	fmt.Fprintf(&b, `
dataplane = "userspace"
host_name = "lns-e2e"
[l2tp]
listen = ["%s:1701"]
accept_unknown_peers = false
[[peer]]
name = "lac1"
match_address = ["%s"]
[[pool]]
name = "default"
ranges = ["10.64.0.0/24"]
gateway = "10.64.0.1"
[ppp]
ip_pool = "default"
auth = ["mschapv2", "chap", "pap"]
ipv6 = "deny"
authenticator = "radius"
[radius]
nas_identifier = "l2tpd-e2e"
nas_ip_address = "127.0.0.1"
spool_dir = %q
dead_time = "1s"
dead_after = 1
timeout = "500ms"
retries = 1
dae_listen = "127.0.0.1:%d"
[[radius.dae_client]]
address = "127.0.0.1"
secret = %q
`, lnsAddr, lacAddr, spool, daePort, daeSecret)
	for i, f := range servers {
		fmt.Fprintf(&b, `[[radius.server]]
address = "127.0.0.1"
auth_port = %d
acct_port = %d
secret = %q
priority = %d
# FreeRADIUS 3.2.1 does not sign its replies (BlastRADIUS fixes came in 3.2.5).
require_message_authenticator = false
`, f.auth, f.acct, frSecret, i+1)
	}
	return b.String()
}

// radclient sends one DAE request (code "disconnect" or "coa") to the LNS
// and returns radclient's output.
func radclient(t *testing.T, ns *testenv.Netns, port int, code string, attrs ...string) string {
	t.Helper()
	cmd := ns.Command("radclient", "-x", "-r", "2", "-t", "3", fmt.Sprintf("127.0.0.1:%d", port), code, daeSecret)
	cmd.Stdin = strings.NewReader(strings.Join(attrs, ",") + "\n")
	out, _ := cmd.CombinedOutput() // a NAK exits non-zero
	return string(out)
}

// acctRecord is one record of a FreeRADIUS detail file.
type acctRecord map[string]string

// detailRecords parses detail file text into records.
func detailRecords(text string) []acctRecord {
	var out []acctRecord
	var cur acctRecord
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, "\t") {
			if strings.TrimSpace(line) != "" {
				cur = acctRecord{}
				out = append(out, cur)
			}
			continue
		}
		if cur == nil {
			continue
		}
		k, v, ok := strings.Cut(strings.TrimSpace(line), " = ")
		if ok {
			cur[k] = strings.Trim(v, `"`)
		}
	}
	return out
}

// records returns the records of session id with status st.
func records(recs []acctRecord, id, st string) []acctRecord {
	var out []acctRecord
	for _, r := range recs {
		if r["Acct-Session-Id"] == id && r["Acct-Status-Type"] == st {
			out = append(out, r)
		}
	}
	return out
}

func octets(r acctRecord, k string) uint64 {
	n, _ := strconv.ParseUint(r[k], 10, 64)
	return n
}

// waitDetail waits (bounded) until cond holds for the detail records of
// the servers.
func waitDetail(t *testing.T, d time.Duration, what string, cond func([]acctRecord) bool, servers ...*freeRADIUS) []acctRecord {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		var all []acctRecord
		for _, f := range servers {
			all = append(all, detailRecords(f.detail(t))...)
		}
		if cond(all) {
			return all
		}
		if time.Now().After(deadline) {
			t.Fatalf("detail files: %s not seen in %v; records:\n%v", what, d, all)
		}
		time.Sleep(50 * time.Millisecond) // polling files another process writes
	}
}

var acctIDRE = regexp.MustCompile(`"acct_session_id": "([0-9A-F]{16})"`)

func acctID(t *testing.T, line string) string {
	t.Helper()
	m := acctIDRE.FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("no acct_session_id in %q", line)
	}
	return m[1]
}

// Subscribers (our LAC) authenticate through our LNS against FreeRADIUS
// with PAP, CHAP and MS-CHAPv2 and get the Framed-IP-Address it returns;
// traffic passes; accounting shows Start, Interim (after a CoA sets the
// interval live) and Stop with octets; a Disconnect-Request ends the
// session with a CDN and a Stop with Admin-Reset; an unknown user gets a
// NAK; SIGTERM stops the last session with Admin-Reboot and sends
// Accounting-Off.
func TestRADIUSThroughLNS(t *testing.T) {
	requireFreeRADIUS(t)
	testenv.Require(t, "radclient")
	lnsNS, lacNS := twoHosts(t)
	fr := newFreeRADIUS(t)
	fr.ns = lnsNS
	fr.start(t)
	spool := t.TempDir()
	daePort := freePort(t)
	lns := StartDaemon(t, lnsNS, "lns", radiusLNSConfig(spool, daePort, fr))
	lns.Wait(t, 10*time.Second, `radius dynamic authorization listening`)
	lns.Wait(t, 10*time.Second, `radius Accounting-On acknowledged`)
	waitDetail(t, 10*time.Second, "Accounting-On", func(r []acctRecord) bool {
		for _, x := range r {
			if x["Acct-Status-Type"] == "Accounting-On" && x["NAS-Identifier"] == "l2tpd-e2e" {
				return true
			}
		}
		return false
	}, fr)

	for _, tc := range []struct{ method, user, pw, addr string }{
		{"pap", "alice", "alice-pw", "10.77.0.1"},
		{"chap", "bob", "bob-pw", "10.77.0.2"},
		{"mschapv2", "carol", "carol-pw", "10.77.0.3"},
	} {
		t.Run(tc.method, func(t *testing.T) {
			from := lns.Len()
			lac := StartDaemon(t, lacNS, "lac-"+tc.method, pppLACConfig(tc.user, tc.pw, tc.method))
			ctx := ctxTimeout(t, 30*time.Second)
			m, err := lns.WaitForFrom(ctx, from, `subscriber up.*"user": "`+tc.user+`".*"method": "`+tc.method+`"`)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(m.Line, `"address": "`+tc.addr+`"`) {
				t.Fatalf("LNS did not give the Framed-IP-Address %s: %s", tc.addr, m.Line)
			}
			id := acctID(t, m.Line)
			lac.Wait(t, 30*time.Second, `subscriber up.*"address": "`+tc.addr+`"`)
			if err := lacNS.Ping(ctxTimeout(t, 15*time.Second), lnsGW); err != nil {
				t.Fatalf("LAC -> LNS through the tunnel: %v", err)
			}
			if err := lnsNS.Ping(ctxTimeout(t, 15*time.Second), netip.MustParseAddr(tc.addr)); err != nil {
				t.Fatalf("LNS -> subscriber: %v", err)
			}
			if err := lac.Stop(10 * time.Second); err != nil {
				t.Logf("LAC stop: %v", err)
			}
			recs := waitDetail(t, 15*time.Second, "Start and Stop of "+id, func(r []acctRecord) bool {
				return len(records(r, id, "Start")) == 1 && len(records(r, id, "Stop")) == 1
			}, fr)
			st := records(recs, id, "Start")[0]
			if st["User-Name"] != tc.user || st["Framed-IP-Address"] != tc.addr || st["NAS-Port-Type"] != "Virtual" {
				t.Errorf("Start record %v", st)
			}
			stop := records(recs, id, "Stop")[0]
			if octets(stop, "Acct-Input-Octets") == 0 || octets(stop, "Acct-Output-Octets") == 0 || octets(stop, "Acct-Input-Packets") == 0 {
				t.Errorf("Stop without traffic counts: %v", stop)
			}
		})
	}
	if t.Failed() {
		return
	}

	// alice again: CoA sets the Interim interval to 2 s; Interim-Updates
	// with octets arrive; a Disconnect-Request ends the session.
	from := lns.Len()
	lac := StartDaemon(t, lacNS, "lac-dae", pppLACConfig("alice", "alice-pw", "pap"))
	m, err := lns.WaitForFrom(ctxTimeout(t, 30*time.Second), from, `subscriber up.*"user": "alice"`)
	if err != nil {
		t.Fatal(err)
	}
	id := acctID(t, m.Line)
	lac.Wait(t, 30*time.Second, `subscriber up.*"user": "alice"`)
	if err := lnsNS.Ping(ctxTimeout(t, 15*time.Second), netip.MustParseAddr("10.77.0.1")); err != nil {
		t.Fatalf("LNS -> subscriber: %v", err)
	}
	out := radclient(t, lnsNS, daePort, "coa", `User-Name = "alice"`, "Acct-Interim-Interval = 2")
	if !strings.Contains(out, "CoA-ACK") {
		t.Fatalf("CoA: %s", out)
	}
	lns.Wait(t, 10*time.Second, `session limits changed.*"interim_interval": "2s"`)
	recs := waitDetail(t, 15*time.Second, "an Interim-Update with octets", func(r []acctRecord) bool {
		for _, x := range records(r, id, "Interim-Update") {
			if octets(x, "Acct-Input-Octets") > 0 && octets(x, "Acct-Output-Octets") > 0 {
				return true
			}
		}
		return false
	}, fr)
	_ = recs

	out = radclient(t, lnsNS, daePort, "disconnect", `User-Name = "nobody"`)
	if !strings.Contains(out, "Disconnect-NAK") || !strings.Contains(out, "Session-Context-Not-Found") {
		t.Fatalf("Disconnect of an unknown user: %s", out)
	}
	from = lac.Len()
	out = radclient(t, lnsNS, daePort, "disconnect", `Acct-Session-Id = "`+id+`"`)
	if !strings.Contains(out, "Disconnect-ACK") {
		t.Fatalf("Disconnect: %s", out)
	}
	// The LNS sends LCP Terminate-Request, then the CDN; the LAC may
	// clear the call itself on the Terminate-Request first.
	if _, err := lac.WaitForFrom(ctxTimeout(t, 20*time.Second), from,
		`session closed.*("reason": "PPP: terminated by peer"|"by_peer": true.*"result": 3)`); err != nil {
		t.Fatalf("LAC's call was not cleared after LCP Terminate / CDN: %v", err)
	}
	recs = waitDetail(t, 15*time.Second, "Stop of "+id, func(r []acctRecord) bool { return len(records(r, id, "Stop")) == 1 }, fr)
	if stop := records(recs, id, "Stop")[0]; stop["Acct-Terminate-Cause"] != "Admin-Reset" || octets(stop, "Acct-Input-Octets") == 0 {
		t.Fatalf("Stop after Disconnect: %v", stop)
	}

	// The LAC redials; SIGTERM on the LNS ends that session with
	// Admin-Reboot, then Accounting-Off.
	m, err = lns.WaitForFrom(ctxTimeout(t, 30*time.Second), m.Index+1, `subscriber up.*"user": "alice"`)
	if err != nil {
		t.Fatal(err)
	}
	id2 := acctID(t, m.Line)
	if id2 == id {
		t.Fatalf("redial reused Acct-Session-Id %s", id)
	}
	if err := lns.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	lns.Wait(t, 20*time.Second, `l2tpd stopped`)
	recs = waitDetail(t, 10*time.Second, "Stop of "+id2+" and Accounting-Off", func(r []acctRecord) bool {
		off := false
		for _, x := range r {
			off = off || x["Acct-Status-Type"] == "Accounting-Off"
		}
		return off && len(records(r, id2, "Stop")) == 1
	}, fr)
	if stop := records(recs, id2, "Stop")[0]; stop["Acct-Terminate-Cause"] != "Admin-Reboot" {
		t.Fatalf("Stop at shutdown: %v", stop)
	}
	if left, _ := filepath.Glob(filepath.Join(spool, "*.acct")); len(left) != 0 {
		t.Fatalf("%d records left in the spool after an orderly stop", len(left))
	}
	// The Stop came before Accounting-Off.
	iStop, iOff := -1, -1
	for i, x := range recs {
		if x["Acct-Session-Id"] == id2 && x["Acct-Status-Type"] == "Stop" {
			iStop = i
		}
		if x["Acct-Status-Type"] == "Accounting-Off" {
			iOff = i
		}
	}
	if iStop > iOff {
		t.Fatalf("Accounting-Off (record %d) before the last Stop (record %d)", iOff, iStop)
	}
}

// dialOnce starts a LAC daemon for user, waits for the LNS to bring the
// subscriber up with addr and returns the LAC and the Acct-Session-Id.
func dialOnce(t *testing.T, lns *Daemon, lacNS *testenv.Netns, name, user, pw, method, addr string) (*Daemon, string) {
	t.Helper()
	from := lns.Len()
	lac := StartDaemon(t, lacNS, name, pppLACConfig(user, pw, method))
	m, err := lns.WaitForFrom(ctxTimeout(t, 30*time.Second), from, `subscriber up.*"user": "`+user+`"`)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(m.Line, `"address": "`+addr+`"`) {
		t.Fatalf("LNS did not give the Framed-IP-Address %s: %s", addr, m.Line)
	}
	// The LNS logs its side up when IPCP opens there; the LAC's side opens
	// when our last IPCP frame reaches it, a moment later.
	lac.Wait(t, 10*time.Second, `subscriber up`)
	return lac, acctID(t, m.Line)
}

// waitStartAcked waits until the LNS has the answer to session id's
// accounting Start. A server that wrote the Start and dies before its
// answer reaches the LNS leaves the LNS rightly resending the Start to
// another server (at least once delivery), and the test would count two;
// stopping a server is safe only after this.
func waitStartAcked(t *testing.T, lns *Daemon, id string) {
	t.Helper()
	if _, err := lns.WaitFor(ctxTimeout(t, 10*time.Second), `radius accounting acknowledged.*"status": "Start", "acct_session_id": "`+id+`"`); err != nil {
		t.Fatalf("Start of %s never acknowledged: %v", id, err)
	}
}

// Two FreeRADIUS servers by priority: the primary dies mid-test and new
// logins go to the secondary without a failed login; with both down the
// accounting Stop is spooled to disk; with one back the spool drains and
// every session has exactly one Start and one Stop across both servers.
func TestRADIUSFailoverAndSpool(t *testing.T) {
	requireFreeRADIUS(t)
	lnsNS, lacNS := twoHosts(t)
	fr1, fr2 := newFreeRADIUS(t), newFreeRADIUS(t)
	fr1.ns, fr2.ns = lnsNS, lnsNS
	fr1.start(t)
	fr2.start(t)
	spool := t.TempDir()
	lns := StartDaemon(t, lnsNS, "lns", radiusLNSConfig(spool, freePort(t), fr1, fr2))
	lns.Wait(t, 10*time.Second, `radius Accounting-On acknowledged`)

	lac1, id1 := dialOnce(t, lns, lacNS, "lac1", "alice", "alice-pw", "pap", "10.77.0.1")
	waitDetail(t, 10*time.Second, "Start of "+id1+" on the primary", func(r []acctRecord) bool { return len(records(r, id1, "Start")) == 1 }, fr1)
	waitStartAcked(t, lns, id1)

	fr1.stop() // the primary dies
	if err := lac1.Stop(10 * time.Second); err != nil {
		t.Logf("LAC stop: %v", err)
	}
	lac2, id2 := dialOnce(t, lns, lacNS, "lac2", "bob", "bob-pw", "chap", "10.77.0.2")
	if err := lacNS.Ping(ctxTimeout(t, 15*time.Second), lnsGW); err != nil {
		t.Fatalf("LAC -> LNS through the tunnel: %v", err)
	}
	waitDetail(t, 15*time.Second, "Stop of "+id1+" and Start of "+id2+" on the secondary", func(r []acctRecord) bool {
		return len(records(r, id1, "Stop")) == 1 && len(records(r, id2, "Start")) == 1
	}, fr2)
	if n := lns.Count(`subscriber authentication failed`); n != 0 {
		t.Fatalf("%d failed logins during failover", n)
	}
	lns.Wait(t, 5*time.Second, `radius server marked dead`)
	waitStartAcked(t, lns, id2)

	fr2.stop() // both down: the Stop goes to the spool
	from := lns.Len()
	if err := lac2.Stop(10 * time.Second); err != nil {
		t.Logf("LAC stop: %v", err)
	}
	if _, err := lns.WaitForFrom(ctxTimeout(t, 20*time.Second), from, `radius accounting not acknowledged; kept in the spool.*"acct_session_id": "`+id2+`"`); err != nil {
		t.Fatal(err)
	}
	if files, _ := filepath.Glob(filepath.Join(spool, "*.log")); len(files) == 0 {
		t.Fatal("no accounting record in the spool directory with both servers down")
	}

	fr1.start(t) // one back: the spool drains
	waitDetail(t, 20*time.Second, "Stop of "+id2+" after the outage", func(r []acctRecord) bool { return len(records(r, id2, "Stop")) >= 1 }, fr1, fr2)
	deadline := time.Now().Add(10 * time.Second)
	for {
		files, _ := filepath.Glob(filepath.Join(spool, "*.acct"))
		if len(files) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("spool still holds %d records", len(files))
		}
		time.Sleep(50 * time.Millisecond) // polling a directory
	}
	var all []acctRecord
	for _, f := range []*freeRADIUS{fr1, fr2} {
		all = append(all, detailRecords(f.detail(t))...)
	}
	for _, id := range []string{id1, id2} {
		if s, e := len(records(all, id, "Start")), len(records(all, id, "Stop")); s != 1 || e != 1 {
			t.Errorf("session %s: %d Start and %d Stop records across both servers, want 1 and 1", id, s, e)
		}
	}
	stop := records(all, id2, "Stop")
	if len(stop) == 1 && octets(stop[0], "Acct-Delay-Time") == 0 {
		t.Errorf("spooled Stop has no Acct-Delay-Time: %v", stop[0])
	}
	if t.Failed() {
		return
	}

	// Across a daemon restart: a session's Stop spooled while every
	// server is down survives SIGTERM and is sent by the next l2tpd.
	lac3, id3 := dialOnce(t, lns, lacNS, "lac3", "carol", "carol-pw", "mschapv2", "10.77.0.3")
	waitStartAcked(t, lns, id3)
	fr1.stop()
	from = lns.Len()
	if err := lac3.Stop(10 * time.Second); err != nil {
		t.Logf("LAC stop: %v", err)
	}
	if _, err := lns.WaitForFrom(ctxTimeout(t, 20*time.Second), from, `kept in the spool.*"acct_session_id": "`+id3+`"`); err != nil {
		t.Fatal(err)
	}
	if err := lns.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	lns.Wait(t, 20*time.Second, `radius accounting records left in the spool for the next start`)
	lns.Wait(t, 20*time.Second, `l2tpd stopped`)
	if files, _ := filepath.Glob(filepath.Join(spool, "*.log")); len(files) == 0 {
		t.Fatal("the spool is empty after stopping with every server down")
	}
	fr2.start(t)
	lns2 := StartDaemon(t, lnsNS, "lns2", radiusLNSConfig(spool, freePort(t), fr1, fr2))
	lns2.Wait(t, 10*time.Second, `radius accounting spool: resending records from an earlier run`)
	waitDetail(t, 20*time.Second, "Stop of "+id3+" from the spool of the previous run", func(r []acctRecord) bool {
		return len(records(r, id3, "Stop")) >= 1
	}, fr1, fr2)
	all = nil
	for _, f := range []*freeRADIUS{fr1, fr2} {
		all = append(all, detailRecords(f.detail(t))...)
	}
	for _, id := range []string{id1, id2, id3} {
		if s, e := len(records(all, id, "Start")), len(records(all, id, "Stop")); s != 1 || e != 1 {
			t.Errorf("session %s: %d Start and %d Stop records across both servers, want 1 and 1", id, s, e)
		}
	}
}
