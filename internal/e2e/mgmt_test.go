package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/l2tpd/l2tpd/internal/testenv"
	"github.com/l2tpd/l2tpd/mgmt"
)

var (
	ctlOnce sync.Once
	ctlPath string
	ctlErr  error
)

// ctlBinary builds cmd/l2tpctl once per test process.
func ctlBinary(t testing.TB) string {
	t.Helper()
	ctlOnce.Do(func() {
		dir, err := os.MkdirTemp("", "l2tpctl-e2e-")
		if err != nil {
			ctlErr = err
			return
		}
		ctlPath = filepath.Join(dir, "l2tpctl")
		cmd := exec.Command("go", "build", "-o", ctlPath, "./cmd/l2tpctl")
		cmd.Dir = repoRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			ctlErr = fmt.Errorf("building l2tpctl: %v\n%s", err, out)
		}
	})
	if ctlErr != nil {
		t.Fatal(ctlErr)
	}
	return ctlPath
}

// ctl runs l2tpctl against socket and returns stdout, stderr and the exit
// code.
func ctl(t *testing.T, socket string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, ctlBinary(t), append([]string{"--socket", socket}, args...)...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("l2tpctl %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

// ctlOK runs l2tpctl and fails the test unless it exits 0.
func ctlOK(t *testing.T, socket string, args ...string) string {
	t.Helper()
	out, errs, code := ctl(t, socket, args...)
	if code != 0 {
		t.Fatalf("l2tpctl %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

func ctlJSON[T any](t *testing.T, socket string, args ...string) T {
	t.Helper()
	var v T
	out := ctlOK(t, socket, append(args, "--json")...)
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("l2tpctl %s --json: %v\n%s", strings.Join(args, " "), err, out)
	}
	return v
}

// waitCtl polls l2tpctl show output until cond holds (bounded): the
// daemon's state changes on the tunnel goroutines, reported by the API.
func waitCtl[T any](t *testing.T, d time.Duration, what, socket string, cond func(T) bool, args ...string) T {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		v := ctlJSON[T](t, socket, args...)
		if cond(v) {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s; last: %+v", d, what, v)
		}
		time.Sleep(100 * time.Millisecond) // polling interval of a bounded wait
	}
}

// scrape fetches the metrics page from inside ns.
func scrape(t *testing.T, ns *testenv.Netns, addr string) string {
	t.Helper()
	var body string
	err := ns.Do(func() error {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(c, "GET /metrics HTTP/1.0\r\nHost: %s\r\n\r\n", addr)
		b, err := io.ReadAll(bufio.NewReader(c))
		body = string(b)
		return err
	})
	if err != nil {
		t.Fatalf("scraping %s: %v", addr, err)
	}
	if !strings.HasPrefix(body, "HTTP/1.0 200") && !strings.HasPrefix(body, "HTTP/1.1 200") {
		t.Fatalf("scraping %s: %.200s", addr, body)
	}
	return body
}

// metric returns the value of the series whose line starts with name
// (labels included, exact), or -1.
func metric(page, series string) float64 {
	for _, l := range strings.Split(page, "\n") {
		if rest, ok := strings.CutPrefix(l, series+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err == nil {
				return v
			}
		}
	}
	return -1
}

const (
	lac2Addr   = "10.98.0.2"
	lns2Addr   = "10.98.0.1"
	lac2Prefix = "10.98.0.0/24"
)

// mgmtLNSConfig is pppLNSConfig's LNS with a second peer (lac2, on its own
// link), the management socket and the metrics endpoint.
func mgmtLNSConfig(socket, metricsAddr, extraSubscriber string) string {
	return pppLNSConfig() + extraSubscriber + fmt.Sprintf(`
[[peer]]
name = "lac2"
match_address = [%q]
[api]
socket = %q
[metrics]
listen = %q
`, lac2Addr, socket, metricsAddr)
}

func mgmtLACConfig(name string, sessions int) string {
	return fmt.Sprintf(`
dataplane = "userspace"
host_name = "lac-e2e"
[l2tp]
listen = []
[ppp]
ipv6 = "deny"
[api]
socket = ""
[[lac]]
name = %q
lns = "%s:1701"
sessions = %d
redial_min = "1s"
redial_max = "2s"
username = "alice"
password = "alice-pw"
auth = ["chap"]
`, name, lnsAddr, sessions)
}

// Every l2tpctl command against a live l2tpd (userspace data path) with
// our LACs dialled in: show (tables, --json, filters, columns), log level
// and trace, reload (valid, invalid, SIGHUP) with traffic flowing across,
// drain/undrain, metrics, terminate (session, tunnel, refusals) and
// shutdown --soft.
func TestMgmtLiveDaemon(t *testing.T) {
	lnsNS, lacNS := twoHosts(t)
	lac2NS := testenv.NewNetns(t, "lac2")
	testenv.ConnectVeth(t, lnsNS, lac2NS, netip.MustParsePrefix(lns2Addr+"/24"), netip.MustParsePrefix(lac2Addr+"/24"))
	lac2NS.Exec(t, "ip", "route", "add", "default", "via", lns2Addr)
	dir, err := os.MkdirTemp("", "l2tpd-mgmt-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "l2tpd.sock")
	metricsAddr := lnsAddr + ":9641"
	lns := StartDaemon(t, lnsNS, "lns", mgmtLNSConfig(sock, metricsAddr, ""))
	lns.Wait(t, 10*time.Second, `management API listening`)
	lns.Wait(t, 10*time.Second, `metrics listening`)
	lac1 := StartDaemon(t, lacNS, "lac", mgmtLACConfig("core", 1))
	lns.Wait(t, 30*time.Second, `subscriber up.*"user": "alice"`)

	// show sessions: one, in the pool, with the columns asked for.
	sess := waitCtl(t, 10*time.Second, "a session up", sock, func(s []mgmt.Session) bool {
		return len(s) == 1 && s[0].State == "up"
	}, "show", "sessions")
	s0 := sess[0]
	if s0.User != "alice" || !pool0.Contains(s0.Address) || s0.Peer != "lac1" || s0.PeerAddr.Addr() != netip.MustParseAddr(lacAddr) || s0.Interface == "" || s0.CallingNumber != "core" {
		t.Errorf("session %+v", s0)
	}
	// Traffic to the subscriber, then its counters show it.
	if err := lnsNS.Ping(ctxTimeout(t, 15*time.Second), s0.Address); err != nil {
		t.Fatalf("LNS -> %v: %v", s0.Address, err)
	}
	sess = waitCtl(t, 10*time.Second, "data counters", sock, func(s []mgmt.Session) bool {
		return len(s) == 1 && s[0].RxBytes > 0 && s[0].TxBytes > 0
	}, "show", "sessions")
	table := ctlOK(t, sock, "show", "sessions")
	for _, want := range []string{"alice", s0.Address.String(), s0.ID, "lac1"} {
		if !strings.Contains(table, want) {
			t.Errorf("show sessions table lacks %q:\n%s", want, table)
		}
	}
	cols := ctlOK(t, sock, "show", "sessions", "--columns", "user,address")
	if strings.Contains(cols, "lac1") || !strings.Contains(cols, s0.Address.String()) {
		t.Errorf("show sessions --columns user,address:\n%s", cols)
	}
	for _, f := range [][]string{{"--address", s0.Address.String()}, {"--peer", lacAddr}, {"--peer", "lac1"}, {"--user", "alice"}, {"--calling-number", "core"}, {"--tunnel", fmt.Sprint(s0.TunnelID)}} {
		if got := ctlJSON[[]mgmt.Session](t, sock, append([]string{"show", "sessions"}, f...)...); len(got) != 1 || got[0].ID != s0.ID {
			t.Errorf("show sessions %v: %+v", f, got)
		}
	}
	for _, f := range [][]string{{"--user", "nobody"}, {"--peer", "lac2"}, {"--address", "10.64.0.200"}} {
		if got := ctlJSON[[]mgmt.Session](t, sock, append([]string{"show", "sessions"}, f...)...); len(got) != 0 {
			t.Errorf("show sessions %v: %+v, want none", f, got)
		}
	}

	// show tunnels / stats / pools / peers.
	tuns := ctlJSON[[]mgmt.Tunnel](t, sock, "show", "tunnels")
	if len(tuns) != 1 || tuns[0].Peer != "lac1" || tuns[0].State != "established" || tuns[0].Sessions != 1 || tuns[0].Role != "lns" || tuns[0].HostName != "lac-e2e" || tuns[0].Started.IsZero() {
		t.Fatalf("show tunnels: %+v", tuns)
	}
	if got := ctlJSON[[]mgmt.Tunnel](t, sock, "show", "tunnels", "--peer", "lac2"); len(got) != 0 {
		t.Errorf("show tunnels --peer lac2: %+v", got)
	}
	if !strings.Contains(ctlOK(t, sock, "show", "tunnels"), "established") {
		t.Errorf("show tunnels table lacks the state")
	}
	st := ctlJSON[mgmt.Stats](t, sock, "show", "stats")
	if st.TunnelSetups != 1 || st.SessionSetups != 1 || st.SessionsByState["up"] != 1 || st.TunnelsByState["established"] != 1 || st.DataPlane != "userspace" || st.RxBytes == 0 || st.LogLevel != "debug" {
		t.Errorf("show stats: %+v", st)
	}
	ctlOK(t, sock, "show", "stats")
	pools := ctlJSON[[]mgmt.Pool](t, sock, "show", "pools")
	if len(pools) != 1 || pools[0].Name != "default" || pools[0].Used != 1 || pools[0].Size < 250 {
		t.Errorf("show pools: %+v", pools)
	}
	ctlOK(t, sock, "show", "pools")
	peers := ctlJSON[[]mgmt.Peer](t, sock, "show", "peers")
	if len(peers) != 2 || peers[0].Name != "lac1" || peers[0].Tunnels != 1 || peers[0].Sessions != 1 || peers[1].Name != "lac2" || peers[1].Tunnels != 0 {
		t.Errorf("show peers: %+v", peers)
	}
	ctlOK(t, sock, "show", "peers")

	// log level and trace.
	if out := ctlOK(t, sock, "log", "level", "info"); !strings.Contains(out, "debug") || !strings.Contains(out, "info") {
		t.Errorf("log level info: %q", out)
	}
	if out := ctlOK(t, sock, "log", "level"); !strings.Contains(out, "info") {
		t.Errorf("log level: %q", out)
	}
	lns.Wait(t, 5*time.Second, `log level changed by the operator`)
	if out := ctlOK(t, sock, "log", "trace", "user", "alice"); !strings.Contains(out, "alice") {
		t.Errorf("log trace user alice: %q", out)
	}
	if got := ctlJSON[[]mgmt.Session](t, sock, "show", "sessions", "--user", "alice"); len(got) != 1 || !got[0].Tracing {
		t.Errorf("the session of a traced user is not marked: %+v", got)
	}
	if out := ctlOK(t, sock, "log", "trace", "user", "alice", "--off"); strings.Contains(out, "alice") {
		t.Errorf("trace off still lists alice: %q", out)
	}

	// Reload while traffic flows: pings before, during and after every
	// reload must all be answered.
	var pings, lost atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			if err := lnsNS.Ping(ctx, s0.Address); err != nil {
				lost.Add(1)
			}
			cancel()
			pings.Add(1)
		}
	}()
	waitPings := func(n int64) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for pings.Load() < n {
			if time.Now().After(deadline) {
				t.Fatalf("only %d pings in 20s", pings.Load())
			}
			time.Sleep(20 * time.Millisecond) // polling a counter, bounded
		}
	}
	waitPings(3)
	// A valid reload adds a subscriber.
	dave := "\n[[subscriber]]\nname = \"dave\"\npassword = \"dave-pw\"\n"
	valid := mgmtLNSConfig(sock, metricsAddr, dave)
	if err := os.WriteFile(lns.Config, []byte(valid), 0o600); err != nil {
		t.Fatal(err)
	}
	out := ctlOK(t, sock, "reload")
	if !strings.Contains(out, "subscribers: 2 -> 3") {
		t.Errorf("reload output lacks the change: %q", out)
	}
	waitPings(pings.Load() + 3)
	// An invalid file is refused with its error; the old config stays.
	if err := os.WriteFile(lns.Config, []byte("bogus_key = 1\n"+valid), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errs, code := ctl(t, sock, "reload")
	if code == 0 || !strings.Contains(out+errs, "bogus_key") {
		t.Errorf("invalid reload: exit %d, %q %q", code, out, errs)
	}
	from := lns.Log.Len()
	if err := lns.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	ctxH := ctxTimeout(t, 10*time.Second)
	if _, err := lns.WaitForFrom(ctxH, from, `reload on SIGHUP refused`); err != nil {
		t.Fatalf("SIGHUP with an invalid file: %v", err)
	}
	waitPings(pings.Load() + 3)
	if err := os.WriteFile(lns.Config, []byte(valid), 0o600); err != nil {
		t.Fatal(err)
	}
	from = lns.Log.Len()
	if err := lns.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if _, err := lns.WaitForFrom(ctxH, from, `reloaded on SIGHUP`); err != nil {
		t.Fatalf("SIGHUP with a valid file: %v", err)
	}
	waitPings(pings.Load() + 3)
	close(stop)
	wg.Wait()
	if lost.Load() != 0 {
		t.Fatalf("%d of %d pings lost across the reloads", lost.Load(), pings.Load())
	}
	if st := ctlJSON[mgmt.Stats](t, sock, "show", "stats"); st.Reloaded.IsZero() || st.SessionSetups != 1 || st.SessionsByState["up"] != 1 {
		t.Errorf("after reloads: %+v", st)
	}

	// Drain: a second LAC is refused while the first keeps its session.
	if out := ctlOK(t, sock, "drain"); !strings.Contains(strings.ToLower(out), "drain") {
		t.Errorf("drain output %q", out)
	}
	lac2 := StartDaemon(t, lac2NS, "lac2", mgmtLACConfig("core2", 1))
	lns.Wait(t, 20*time.Second, `refused tunnel.*draining`)
	if err := lnsNS.Ping(ctxTimeout(t, 10*time.Second), s0.Address); err != nil {
		t.Fatalf("established session while draining: %v", err)
	}
	if got := ctlJSON[[]mgmt.Tunnel](t, sock, "show", "tunnels"); len(got) != 1 {
		t.Errorf("tunnels while draining: %+v", got)
	}
	page := scrape(t, lnsNS, metricsAddr)
	for series, want := range map[string]float64{
		`l2tpd_draining`:                               1,
		`l2tpd_sessions{state="up"}`:                   1,
		`l2tpd_tunnels{state="established"}`:           1,
		`l2tpd_pool_addresses_used{pool="default"}`:    1,
		`l2tpd_session_setups_total`:                   1,
		`l2tpd_tunnel_setups_total`:                    1,
		`l2tpd_config_reloads_total{result="ok"}`:      2,
		`l2tpd_config_reloads_total{result="refused"}`: 2,
		`l2tpd_accounting_spool_depth`:                 0,
	} {
		if got := metric(page, series); got != want {
			t.Errorf("metric %s = %v, want %v", series, got, want)
		}
	}
	if got := metric(page, `l2tpd_tunnel_failures_total{cause="draining"}`); got < 1 {
		t.Errorf("tunnel failures for draining = %v, want >= 1", got)
	}
	for _, name := range []string{"l2tpd_control_retransmissions_total", `l2tpd_pool_addresses{pool="default"}`, "go_goroutines", "process_resident_memory_bytes"} {
		if metric(page, name) < 0 {
			t.Errorf("metric %s missing", name)
		}
	}
	ctlOK(t, sock, "undrain")
	lac2.Wait(t, 30*time.Second, `subscriber up.*"user": "alice"`)
	tuns = waitCtl(t, 10*time.Second, "two tunnels with a session each", sock, func(v []mgmt.Tunnel) bool {
		return len(v) == 2 && v[0].Sessions == 1 && v[1].Sessions == 1
	}, "show", "tunnels")
	if got := ctlJSON[[]mgmt.Session](t, sock, "show", "sessions", "--peer", "lac2"); len(got) != 1 || got[0].PeerAddr.Addr().String() != lac2Addr {
		t.Errorf("show sessions --peer lac2: %+v", got)
	}

	// terminate: refusals first, then one session (its LAC sees the CDN),
	// then the second LAC's tunnel.
	if _, errs, code := ctl(t, sock, "terminate", "user", "nobody"); code == 0 || !strings.Contains(errs, "no session") {
		t.Errorf("terminate user nobody: exit %d, %q", code, errs)
	}
	if _, _, code := ctl(t, sock, "terminate", "matching"); code == 0 {
		t.Errorf("terminate matching without a filter succeeded")
	}
	from = lns.Log.Len()
	lacFrom := lac1.Log.Len()
	ctlOK(t, sock, "terminate", "session", s0.ID)
	ctxT := ctxTimeout(t, 15*time.Second)
	if _, err := lns.WaitForFrom(ctxT, from, `subscriber down.*"why": "admin-reset"`); err != nil {
		t.Fatalf("terminated session not down: %v", err)
	}
	// Soft: the LNS's LCP Terminate-Request reaches the LAC, which ends
	// PPP and the call.
	if _, err := lac1.WaitForFrom(ctxTimeout(t, 15*time.Second), lacFrom, `subscriber down.*"why": "peer-terminated"`); err != nil {
		t.Errorf("LAC did not see its session terminated: %v", err)
	}
	if _, err := lac1.WaitForFrom(ctxTimeout(t, 15*time.Second), lacFrom, `session closed.*"result": 3`); err != nil {
		t.Errorf("LAC's call not cleared: %v", err)
	}
	var lac2Tunnel uint32
	for _, tu := range tuns {
		if tu.Peer == "lac2" {
			lac2Tunnel = tu.ID
		}
	}
	lac2From := lac2.Log.Len()
	ctlOK(t, sock, "terminate", "tunnel", fmt.Sprint(lac2Tunnel))
	if _, err := lac2.WaitForFrom(ctxTimeout(t, 15*time.Second), lac2From, `tunnel closed.*terminated by the operator.*"by_peer": true`); err != nil {
		t.Errorf("second LAC did not see its tunnel end: %v", err)
	}
	if _, err := lac2.WaitForFrom(ctxTimeout(t, 15*time.Second), lac2From, `subscriber down`); err != nil {
		t.Errorf("second LAC did not see its session end: %v", err)
	}

	// shutdown --soft, cancelled by undrain; then again for good: drain,
	// end every session, the daemon exits.
	ctlOK(t, sock, "shutdown", "--soft")
	ctlOK(t, sock, "undrain")
	if st := ctlJSON[mgmt.Stats](t, sock, "show", "stats"); st.ShuttingDown || st.Draining {
		t.Errorf("after undrain of a soft shutdown: %+v", st)
	}
	lns.Wait(t, 5*time.Second, `soft shutdown cancelled`)
	if out := ctlOK(t, sock, "shutdown", "--soft"); out == "" {
		t.Errorf("shutdown --soft printed nothing")
	}
	if st := ctlJSON[mgmt.Stats](t, sock, "show", "stats"); !st.ShuttingDown || !st.Draining {
		t.Errorf("after shutdown --soft: %+v", st)
	}
	select {
	case <-lns.Done():
		t.Fatalf("the daemon exited while sessions might be up")
	default:
	}
	ctlOK(t, sock, "terminate", "all")
	lns.Wait(t, 20*time.Second, `the last session has gone`)
	ctxE := ctxTimeout(t, 20*time.Second)
	if err := lns.Proc.Wait(ctxE); err != nil && ctxE.Err() != nil {
		t.Fatalf("daemon did not exit after shutdown --soft: %v", err)
	}
	if !regexp.MustCompile(`l2tpd stopped`).MatchString(lns.Log.String()) {
		t.Errorf("no clean stop in the log")
	}
}

// l2tpctl shutdown (not soft): the daemon ends every session, sends
// StopCCN and exits at once.
func TestMgmtShutdownNow(t *testing.T) {
	lnsNS, lacNS := twoHosts(t)
	dir, err := os.MkdirTemp("", "l2tpd-mgmt-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "l2tpd.sock")
	lns := StartDaemon(t, lnsNS, "lns", mgmtLNSConfig(sock, lnsAddr+":9641", ""))
	lns.Wait(t, 10*time.Second, `management API listening`)
	lac := StartDaemon(t, lacNS, "lac", mgmtLACConfig("core", 1))
	lns.Wait(t, 30*time.Second, `subscriber up.*"user": "alice"`)
	from := lac.Log.Len()
	ctlOK(t, sock, "shutdown")
	ctx := ctxTimeout(t, 20*time.Second)
	if err := lns.Proc.Wait(ctx); err != nil && ctx.Err() != nil {
		t.Fatalf("daemon did not exit after shutdown: %v", err)
	}
	if !strings.Contains(lns.Log.String(), `l2tpctl shutdown`) || !strings.Contains(lns.Log.String(), "l2tpd stopped") {
		t.Errorf("no orderly stop for l2tpctl shutdown in the log")
	}
	if _, err := lac.WaitForFrom(ctxTimeout(t, 10*time.Second), from, `subscriber down`); err != nil {
		t.Errorf("LAC did not see its session end: %v", err)
	}
	if _, _, code := ctl(t, sock, "show", "stats"); code == 0 {
		t.Errorf("the management socket still answers after the daemon exited")
	}
}
