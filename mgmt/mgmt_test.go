package mgmt_test

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/l2tpd/l2tpd/mgmt"
	"github.com/l2tpd/l2tpd/mgmt/fake"
)

var now = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

var opts = cmp.Options{
	cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
	cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b }),
}

// serve starts a server for b on a socket in a temp dir and returns a
// connected client.
func serve(t *testing.T, b mgmt.Backend) (*mgmt.Client, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "l2tpd.sock")
	ln, err := mgmt.Listen(path, mgmt.ListenOptions{GID: -1})
	if err != nil {
		t.Fatal(err)
	}
	srv := mgmt.NewServer(b)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	c, err := mgmt.Dial(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, path
}

func TestRoundTripEveryMethod(t *testing.T) {
	b := fake.Sample(now)
	c, _ := serve(t, b)
	ctx := context.Background()

	sessions, err := c.Sessions(ctx, mgmt.Filter{Peer: "bras-1"})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(fake.Sample(now).SessionList[:2], sessions, opts); diff != "" {
		t.Errorf("sessions by peer (-want +got):\n%s", diff)
	}
	tunnels, err := c.Tunnels(ctx, mgmt.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(tunnels) != 2 || tunnels[0].Sessions != 2 || tunnels[1].Sessions != 1 {
		t.Errorf("tunnels: %+v", tunnels)
	}
	want := fake.Sample(now).StatsValue
	want.LogLevel = "info"
	st, err := c.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(&want, st, opts); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
	pools, err := c.Pools(ctx)
	if err != nil || len(pools) != 2 || pools[1].Free() != 0 {
		t.Errorf("pools: %+v, %v", pools, err)
	}
	peers, err := c.Peers(ctx)
	if err != nil || len(peers) != 2 || !peers[1].Refuse {
		t.Errorf("peers: %+v, %v", peers, err)
	}
	res, err := c.Terminate(ctx, mgmt.TerminateRequest{Target: mgmt.TargetSessions, Filter: mgmt.Filter{User: "bob@isp"}})
	if err != nil || res != (mgmt.TerminateResult{Sessions: 1}) {
		t.Errorf("terminate bob: %+v, %v", res, err)
	}
	res, err = c.Terminate(ctx, mgmt.TerminateRequest{Target: mgmt.TargetTunnels, Filter: mgmt.Filter{Tunnel: 17}})
	if err != nil || res != (mgmt.TerminateResult{Tunnels: 1, Sessions: 1}) {
		t.Errorf("terminate tunnel 17: %+v, %v", res, err)
	}
	if _, err := c.Reload(ctx); err != nil || b.Reloads != 1 {
		t.Errorf("reload: %v, reloads %d", err, b.Reloads)
	}
	stt, err := c.Drain(ctx, true)
	if err != nil || !stt.Draining || stt.Sessions != 1 {
		t.Errorf("drain: %+v, %v", stt, err)
	}
	if stt, err := c.Drain(ctx, false); err != nil || stt.Draining {
		t.Errorf("undrain: %+v, %v", stt, err)
	}
	if _, err := c.Shutdown(ctx, mgmt.ShutdownRequest{Soft: true}); err != nil || b.ShutDown == nil || !b.ShutDown.Soft {
		t.Errorf("shutdown: %v, %+v", err, b.ShutDown)
	}
	lv, err := c.LogLevel(ctx, mgmt.LogLevelRequest{Level: "debug"})
	if err != nil || lv != (mgmt.LogLevelResult{Previous: "info", Level: "debug"}) {
		t.Errorf("log level: %+v, %v", lv, err)
	}
	tr, err := c.Trace(ctx, mgmt.TraceRequest{User: "alice", For: time.Hour})
	if err != nil || len(tr) != 1 || tr[0].User != "alice" || !tr[0].Expires.Equal(now.Add(time.Hour)) {
		t.Errorf("trace: %+v, %v", tr, err)
	}
	wantCalls := []mgmt.Method{mgmt.MethodShowSessions, mgmt.MethodShowTunnels, mgmt.MethodShowStats, mgmt.MethodShowPools,
		mgmt.MethodShowPeers, mgmt.MethodTerminate, mgmt.MethodTerminate, mgmt.MethodReload, mgmt.MethodDrain,
		mgmt.MethodUndrain, mgmt.MethodShutdown, mgmt.MethodLogLevel, mgmt.MethodTrace}
	if diff := cmp.Diff(wantCalls, b.Calls, opts); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
}

func TestErrorsCarryCodes(t *testing.T) {
	b := fake.Sample(now)
	b.ReloadErr = "l2tpd.toml:3: [l2tp] retransmit: 0 is below 1"
	c, _ := serve(t, b)
	ctx := context.Background()
	_, err := c.Reload(ctx)
	if mgmt.CodeOf(err) != mgmt.CodeInvalidConfig || !strings.Contains(err.Error(), "retransmit") {
		t.Errorf("reload error: %v (code %s)", err, mgmt.CodeOf(err))
	}
	_, err = c.Terminate(ctx, mgmt.TerminateRequest{Target: mgmt.TargetSessions, Filter: mgmt.Filter{User: "nobody"}})
	if mgmt.CodeOf(err) != mgmt.CodeNotFound {
		t.Errorf("terminate nobody: %v", err)
	}
	_, err = c.Terminate(ctx, mgmt.TerminateRequest{Target: mgmt.TargetSessions})
	if mgmt.CodeOf(err) != mgmt.CodeBadRequest || !strings.Contains(err.Error(), "no filter") {
		t.Errorf("terminate without a filter: %v", err)
	}
	if len(b.SessionList) != 3 {
		t.Errorf("a refused terminate ended sessions: %d left", len(b.SessionList))
	}
	_, err = c.LogLevel(ctx, mgmt.LogLevelRequest{Level: "loud"})
	if mgmt.CodeOf(err) != mgmt.CodeBadRequest {
		t.Errorf("bad level: %v", err)
	}
	// The connection survives errors.
	if _, err := c.Pools(ctx); err != nil {
		t.Errorf("after errors: %v", err)
	}
}

func TestDecodeRequest(t *testing.T) {
	addr := netip.MustParseAddr("10.0.0.1")
	tests := []struct {
		line   string
		method mgmt.Method
		params any
		code   mgmt.Code
	}{
		{`{"v":1,"id":1,"method":"show.sessions","params":{"user":"a","address":"10.0.0.1","tunnel":3}}`,
			mgmt.MethodShowSessions, &mgmt.Filter{User: "a", Address: addr, Tunnel: 3}, ""},
		{`{"v":1,"id":2,"method":"show.tunnels"}`, mgmt.MethodShowTunnels, &mgmt.Filter{}, ""},
		{`{"v":1,"id":3,"method":"reload","params":{}}`, mgmt.MethodReload, nil, ""},
		{`{"v":1,"id":3,"method":"reload","params":{"x":1}}`, "", nil, mgmt.CodeBadRequest},
		{`{"v":1,"id":4,"method":"terminate","params":{"target":"sessions","all":true}}`,
			mgmt.MethodTerminate, &mgmt.TerminateRequest{Target: mgmt.TargetSessions, All: true}, ""},
		{`{"v":1,"id":4,"method":"terminate","params":{"target":"sessions","all":true,"filter":{"user":"x"}}}`, "", nil, mgmt.CodeBadRequest},
		{`{"v":1,"id":4,"method":"terminate","params":{"target":"everything","all":true}}`, "", nil, mgmt.CodeBadRequest},
		{`{"v":1,"id":5,"method":"log.trace","params":{"user":"u","peer":"p"}}`, "", nil, mgmt.CodeBadRequest},
		{`{"v":1,"id":5,"method":"log.trace","params":{"peer":"p","for_ns":1000000000}}`,
			mgmt.MethodTrace, &mgmt.TraceRequest{Peer: "p", For: time.Second}, ""},
		{`{"v":1,"id":6,"method":"shutdown","params":{"soft":true}}`, mgmt.MethodShutdown, &mgmt.ShutdownRequest{Soft: true}, ""},
		{`{"v":2,"id":7,"method":"reload"}`, "", nil, mgmt.CodeUnsupportedVersion},
		{`{"v":1,"id":8,"method":"format.disk"}`, "", nil, mgmt.CodeUnknownMethod},
		{`{"v":1,"id":9,"method":"show.sessions","params":{"address":"not-an-ip"}}`, "", nil, mgmt.CodeBadRequest},
		{`{"v":1,"id":9,"method":"show.sessions","params":[1]}`, "", nil, mgmt.CodeBadRequest},
		{`{"v":1,`, "", nil, mgmt.CodeBadRequest},
		{``, "", nil, mgmt.CodeBadRequest},
		{`{"v":1,"id":10,"method":"show.stats","future_field":true}`, mgmt.MethodShowStats, nil, ""},
	}
	for _, tt := range tests {
		req, p, err := mgmt.DecodeRequest([]byte(tt.line))
		if tt.code != "" {
			if mgmt.CodeOf(err) != tt.code {
				t.Errorf("%s: error %v, want code %s", tt.line, err, tt.code)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.line, err)
			continue
		}
		if req.Method != tt.method {
			t.Errorf("%s: method %s", tt.line, req.Method)
		}
		if diff := cmp.Diff(tt.params, p, opts); diff != "" {
			t.Errorf("%s: params (-want +got):\n%s", tt.line, diff)
		}
	}
	if _, _, err := mgmt.DecodeRequest(make([]byte, mgmt.MaxRequestSize+1)); mgmt.CodeOf(err) != mgmt.CodeBadRequest {
		t.Errorf("oversized request: %v", err)
	}
}

func TestFilterMatch(t *testing.T) {
	s := fake.Sample(now)
	alice, carol := &s.SessionList[0], &s.SessionList[2]
	tun := &s.TunnelList[0]
	tests := []struct {
		f                    mgmt.Filter
		alice, carol, tunnel bool
	}{
		{mgmt.Filter{}, true, true, true},
		{mgmt.Filter{User: "alice"}, true, false, false},
		{mgmt.Filter{Address: netip.MustParseAddr("10.64.0.2")}, true, false, false},
		{mgmt.Filter{Address: netip.MustParseAddr("::ffff:10.64.0.2")}, true, false, false},
		{mgmt.Filter{Peer: "bras-1"}, true, false, true},
		{mgmt.Filter{Peer: "198.51.100.7"}, false, true, false},
		{mgmt.Filter{Peer: "192.0.2.10"}, true, false, true},
		{mgmt.Filter{Tunnel: 17}, false, true, false},
		{mgmt.Filter{Tunnel: 3, User: "alice"}, true, false, false},
		{mgmt.Filter{ID: "3/100"}, true, false, false},
		{mgmt.Filter{ID: "3"}, false, false, true},
		{mgmt.Filter{CallingNumber: "0612345678"}, true, false, false},
	}
	for _, tt := range tests {
		if got := tt.f.MatchSession(alice); got != tt.alice {
			t.Errorf("%s matches alice: %v", tt.f, got)
		}
		if got := tt.f.MatchSession(carol); got != tt.carol {
			t.Errorf("%s matches carol: %v", tt.f, got)
		}
		if got := tt.f.MatchTunnel(tun); got != tt.tunnel {
			t.Errorf("%s matches tunnel 3: %v", tt.f, got)
		}
	}
}

func TestDialErrorsSayWhatToDo(t *testing.T) {
	dir := t.TempDir()
	_, err := mgmt.Dial(context.Background(), filepath.Join(dir, "missing.sock"))
	if err == nil || !strings.Contains(err.Error(), "is l2tpd running?") || !strings.Contains(err.Error(), "missing.sock") {
		t.Errorf("missing socket: %v", err)
	}
	// A stale socket: bound, then closed without unlinking.
	stale := filepath.Join(dir, "stale.sock")
	ln, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	_, err = mgmt.Dial(context.Background(), stale)
	if err == nil || !strings.Contains(err.Error(), "not running") {
		t.Errorf("stale socket: %v", err)
	}
	// Listen replaces the stale socket.
	ln, err = mgmt.Listen(stale, mgmt.ListenOptions{GID: -1, Mode: 0o660})
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	defer ln.Close()
	fi, err := os.Stat(stale)
	if err != nil || fi.Mode().Perm() != 0o660 {
		t.Errorf("socket mode: %v, %v", fi.Mode(), err)
	}
	// ...but not a live one.
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Close()
		}
	}()
	if _, err := mgmt.Listen(stale, mgmt.ListenOptions{GID: -1}); err == nil || !strings.Contains(err.Error(), "another l2tpd") {
		t.Errorf("Listen over a live socket: %v", err)
	}
	// A regular file is not removed.
	plain := filepath.Join(dir, "plain")
	os.WriteFile(plain, []byte("x"), 0o600)
	if _, err := mgmt.Listen(plain, mgmt.ListenOptions{GID: -1}); err == nil {
		t.Error("Listen replaced a regular file")
	}
}

func TestDefaultModeIsOwnerOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.sock")
	ln, err := mgmt.Listen(path, mgmt.ListenOptions{GID: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, %v", fi.Mode(), err)
	}
}

func TestRawProtocol(t *testing.T) {
	_, path := serve(t, fake.Sample(now))
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	// Two requests in one write, answered in order; then an oversized one.
	c.Write([]byte(`{"v":1,"id":1,"method":"show.pools"}` + "\n" + `{"v":1,"id":2,"method":"nope"}` + "\n"))
	l1, _ := r.ReadString('\n')
	l2, _ := r.ReadString('\n')
	if !strings.HasPrefix(l1, `{"v":1,"id":1,"result":[{"name":"default"`) {
		t.Errorf("first response: %s", l1)
	}
	if l2 != `{"v":1,"id":2,"error":{"code":"unknown_method","message":"unknown method \"nope\""}}`+"\n" {
		t.Errorf("second response: %s", l2)
	}
	c.Write([]byte(strings.Repeat(" ", mgmt.MaxRequestSize+10) + "\n"))
	l3, _ := r.ReadString('\n')
	if !strings.Contains(l3, `"code":"bad_request"`) {
		t.Errorf("oversized: %s", l3)
	}
	if _, err := r.ReadString('\n'); err == nil {
		t.Error("connection still open after an oversized request")
	}
}

func TestContextCancelUnblocksCall(t *testing.T) {
	// A "daemon" that accepts and never answers.
	path := filepath.Join(t.TempDir(), "mute.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			defer c.Close()
			c.Read(make([]byte, 1024))
			c.Read(make([]byte, 1024)) // until the client goes away
		}
	}()
	c, err := mgmt.Dial(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error)
	go func() { _, err := c.Stats(ctx); errc <- err }()
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled call: %v", err)
	}
}

func FuzzDecodeRequest(f *testing.F) {
	for _, s := range []string{
		`{"v":1,"id":1,"method":"show.sessions","params":{"user":"a","address":"10.0.0.1"}}`,
		`{"v":1,"id":4,"method":"terminate","params":{"target":"tunnels","filter":{"tunnel":3}}}`,
		`{"v":1,"id":5,"method":"log.trace","params":{"peer":"p","for_ns":5}}`,
		`{"v":1,"id":6,"method":"log.level","params":{"level":"debug"}}`,
		`{"v":1,"method":"drain"}`,
	} {
		f.Add([]byte(s))
	}
	srv := mgmt.NewServer(fake.Sample(now))
	f.Fuzz(func(t *testing.T, line []byte) {
		req, p, err := mgmt.DecodeRequest(line)
		if req == nil {
			t.Fatal("nil request")
		}
		if err != nil {
			var e *mgmt.Error
			if !errors.As(err, &e) || e.Code == "" || e.Message == "" {
				t.Fatalf("error without code: %#v", err)
			}
			return
		}
		// Re-encode the decoded parameters: they decode to the same thing.
		enc, err := mgmt.EncodeRequest(req.ID, req.Method, p)
		if err != nil {
			t.Fatal(err)
		}
		req2, p2, err := mgmt.DecodeRequest(enc[:len(enc)-1])
		if err != nil {
			t.Fatalf("re-encoded %s fails: %v", enc, err)
		}
		if req2.Method != req.Method || !cmp.Equal(p, p2, opts) {
			t.Fatalf("round trip: %#v -> %#v", p, p2)
		}
		// And the server answers it without panicking, with a result or an error.
		if req.Method != mgmt.MethodShutdown {
			if r := srv.Handle(line); r.Result == nil && r.Error == nil {
				t.Fatalf("empty response to %s", line)
			}
		}
	})
}
