package pppsession

import (
	"context"
	"math/rand/v2"
	"net/netip"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/l2tpd/l2tpd/auth"
	"github.com/l2tpd/l2tpd/auth/local"
	"github.com/l2tpd/l2tpd/config"
	"github.com/l2tpd/l2tpd/dataplane"
	"github.com/l2tpd/l2tpd/dataplane/fake"
	"github.com/l2tpd/l2tpd/l2tp"
	"github.com/l2tpd/l2tpd/pool"
)

// seeded is a deterministic io.Reader.
type seeded struct{ r *rand.ChaCha8 }

func (s *seeded) Read(b []byte) (int, error) { return s.r.Read(b) }

func newSeeded(b byte) *seeded { var k [32]byte; k[0] = b; return &seeded{rand.NewChaCha8(k)} }

// fakeCall records hangups and queues posted functions.
type fakeCall struct {
	h           *harness
	hangup      []l2tp.ResultCode
	reason      []string
	established int // Established calls
}

func (c *fakeCall) Established() { c.established++ }

func (c *fakeCall) Hangup(now time.Time, rc l2tp.ResultCode, reason string) {
	c.hangup = append(c.hangup, rc)
	c.reason = append(c.reason, reason)
}

func (c *fakeCall) Post(f func(now time.Time)) bool {
	c.h.mu.Lock()
	defer c.h.mu.Unlock()
	c.h.posts = append(c.h.posts, f)
	select {
	case c.h.posted <- struct{}{}:
	default:
	}
	return true
}

// takePost removes the oldest posted function (nil if none).
func (h *harness) takePost() func(time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.posts) == 0 {
		return nil
	}
	p := h.posts[0]
	h.posts = h.posts[1:]
	return p
}

// waitPost waits until a posted function is queued (one posted from
// another goroutine: a worker's Up outcome).
func (h *harness) waitPost() {
	h.t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		h.mu.Lock()
		n := len(h.posts)
		h.mu.Unlock()
		if n > 0 {
			return
		}
		select {
		case <-h.posted:
		case <-timeout:
			h.t.Fatal("nothing posted within 10s")
		}
	}
}

// asyncAuth wraps the local authenticator without its Decide method, so
// the driver takes the asynchronous path, and adds attributes.
type asyncAuth struct {
	a     *local.Authenticator
	extra func(*auth.Result)
	calls int
	ctxs  []context.Context
}

func (a *asyncAuth) Authenticate(ctx context.Context, req *auth.Request) (*auth.Result, error) {
	a.calls++
	a.ctxs = append(a.ctxs, ctx)
	res, err := a.a.Authenticate(ctx, req)
	if err == nil && res.Accept && a.extra != nil {
		a.extra(res)
	}
	return res, err
}

// recAcct records accounting calls.
type recAcct struct {
	starts   []*auth.AcctSession
	stops    []auth.TerminateCause
	counts   []auth.AcctCounters
	interims []auth.AcctCounters
}

func (r *recAcct) Start(s *auth.AcctSession) { r.starts = append(r.starts, s) }
func (r *recAcct) Interim(_ *auth.AcctSession, c auth.AcctCounters) {
	r.interims = append(r.interims, c)
}
func (r *recAcct) Stop(s *auth.AcctSession, c auth.AcctCounters, cause auth.TerminateCause) {
	r.stops = append(r.stops, cause)
	r.counts = append(r.counts, c)
}

type frameQ struct {
	to    *sideT
	frame []byte
}

type sideT struct {
	call *fakeCall
	dp   *fake.Session
	drv  interface {
		Frame(time.Time, []byte)
		Tick(time.Time)
		Deadline() time.Time
	}
	closed bool
}

// harness runs one LNS and one LAC driver back to back over fake data
// plane sessions, with a fake clock.
type harness struct {
	t     *testing.T
	now   time.Time
	env   *Env
	lacE  *Env
	plane *fake.Plane
	pools *pool.Set
	acct  *recAcct
	authn *asyncAuth
	logs  *observer.ObservedLogs
	prof  *config.PPP

	mu       sync.Mutex
	posts    []func(time.Time)
	posted   chan struct{} // a signal per Post (buffer 1)
	tryPosts int
	q        []frameQ
	// drop: frames to the LNS are lost (the LAC stops answering).
	dropToLNS bool
	// calling is the Calling Number of the next dial.
	calling string
}

func defaultProfile() *config.PPP {
	return &config.PPP{
		MRU: 1400, MTU: 1400,
		Auth:            []auth.Method{auth.MethodMSCHAPv2, auth.MethodCHAPMD5, auth.MethodPAP},
		LCPEchoInterval: 30 * time.Second, LCPEchoFailure: 3,
		RestartTimer: 3 * time.Second, MaxConfigure: 10, MaxFailure: 5, MaxTerminate: 2,
		IPv4: config.PolicyRequire, IPv6: config.PolicyDeny,
		DNS:    [2]netip.Addr{netip.MustParseAddr("192.0.2.53"), netip.MustParseAddr("192.0.2.54")},
		IPPool: "p", IfName: "ppp%d",
	}
}

func newHarness(t *testing.T, poolRange string, subs ...local.Subscriber) *harness {
	t.Helper()
	if len(subs) == 0 {
		subs = []local.Subscriber{{Name: "alice", Password: "pw"}}
	}
	la, err := local.New(subs)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := pool.ParseRanges(poolRange)
	if err != nil {
		t.Fatal(err)
	}
	pools, err := pool.NewSet([]pool.Config{{Name: "p", Ranges: rs, Gateway: netip.MustParseAddr("10.0.0.1")}})
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.DebugLevel)
	h := &harness{t: t, now: time.Unix(1_700_000_000, 0), plane: fake.New(), pools: pools,
		acct: &recAcct{}, authn: &asyncAuth{a: la}, logs: logs, prof: defaultProfile(),
		posted: make(chan struct{}, 1)}
	h.env = NewEnv(Config{
		Auth: h.authn, Acct: h.acct, Pools: pools, Log: zap.New(core),
		IDs: NewIDs(h.now), Rand: newSeeded(1), Async: func(f func()) { f() },
	})
	h.lacE = NewEnv(Config{Log: zap.New(core), Rand: newSeeded(2)})
	return h
}

// useDecider makes the LNS ask the local authenticator inline.
func (h *harness) useDecider() { h.env.cfg.Auth = h.authn.a }

// dial creates a session pair and starts both drivers.
func (h *harness) dial(id uint32, user, password string, methods ...auth.Method) (*sideT, *LNS, *sideT, *LAC) {
	h.t.Helper()
	tl, err := h.plane.AddTunnel(dataplane.TunnelConfig{Version: 2, LocalID: id, PeerID: id + 1000})
	if err != nil {
		h.t.Fatal(err)
	}
	ns := &sideT{call: &fakeCall{h: h}}
	cs := &sideT{call: &fakeCall{h: h}}
	a, err := tl.AddSession(dataplane.SessionConfig{LocalID: 1, PeerID: 2, LNSMode: true}, func(f []byte) {
		h.q = append(h.q, frameQ{ns, append([]byte(nil), f...)})
	})
	if err != nil {
		h.t.Fatal(err)
	}
	b, err := tl.AddSession(dataplane.SessionConfig{LocalID: 2, PeerID: 1}, func(f []byte) {
		h.q = append(h.q, frameQ{cs, append([]byte(nil), f...)})
	})
	if err != nil {
		h.t.Fatal(err)
	}
	ns.dp, cs.dp = a.(*fake.Session), b.(*fake.Session)
	ns.dp.SetSink(func(_ *fake.Session, f []byte) { cs.dp.Inject(f) })
	cs.dp.SetSink(func(_ *fake.Session, f []byte) {
		if !h.dropToLNS {
			ns.dp.Inject(f)
		}
	})
	lnsD := h.env.NewLNS(h.now, ns.call, ns.dp, LNSParams{Profile: h.prof, Pool: "p", Info: auth.SessionInfo{TunnelID: id, SessionID: 1, CallingNumber: h.calling}})
	ns.drv = lnsD
	lacProf := *h.prof
	lacD := h.lacE.NewLAC(h.now, cs.call, cs.dp, LACParams{Profile: &lacProf, Username: user, Password: password, Auth: methods, Info: auth.SessionInfo{TunnelID: id + 1000, SessionID: 2}})
	cs.drv = lacD
	return ns, lnsD, cs, lacD
}

// settle delivers frames and posted functions until nothing moves, then
// advances the clock to the next deadline, until limit has passed.
func (h *harness) run(limit time.Duration, sides ...*sideT) {
	h.t.Helper()
	end := h.now.Add(limit)
	for steps := 0; ; steps++ {
		if steps > 100000 {
			h.t.Fatal("harness: no progress")
		}
		if len(h.q) > 0 {
			f := h.q[0]
			h.q = h.q[1:]
			if !f.to.closed && len(f.to.call.hangup) == 0 {
				f.to.drv.Frame(h.now, f.frame)
			}
			continue
		}
		if p := h.takePost(); p != nil {
			p(h.now)
			continue
		}
		var next time.Time
		for _, s := range sides {
			if s.closed {
				continue
			}
			if d := s.drv.Deadline(); !d.IsZero() && (next.IsZero() || d.Before(next)) {
				next = d
			}
		}
		if next.IsZero() || next.After(end) {
			h.now = end
			return
		}
		if next.After(h.now) {
			h.now = next
		}
		for _, s := range sides {
			if !s.closed {
				if d := s.drv.Deadline(); !d.IsZero() && !h.now.Before(d) {
					s.drv.Tick(h.now)
				}
			}
		}
	}
}

func (h *harness) logged(msg string) []observer.LoggedEntry {
	return h.logs.FilterMessage(msg).All()
}

// TryPost queues like Post and counts (the endpoint's non-blocking post).
func (c *fakeCall) TryPost(f func(now time.Time)) bool {
	c.h.mu.Lock()
	defer c.h.mu.Unlock()
	c.h.tryPosts++
	c.h.posts = append(c.h.posts, f)
	return true
}
