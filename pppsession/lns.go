package pppsession

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"runtime/debug"
	"sync"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/l2tpd/l2tpd/auth"
	"github.com/l2tpd/l2tpd/config"
	"github.com/l2tpd/l2tpd/dataplane"
	"github.com/l2tpd/l2tpd/internal/fault"
	"github.com/l2tpd/l2tpd/internal/tunnelcfg"
	"github.com/l2tpd/l2tpd/pool"
	"github.com/l2tpd/l2tpd/ppp"
)

// poolAddress is RADIUS Framed-IP-Address 255.255.255.254: "the NAS
// should select an address for the user" (RFC 2865 5.8).
var poolAddress = netip.AddrFrom4([4]byte{255, 255, 255, 254})

// LNSParams describes one LNS session.
type LNSParams struct {
	// Profile is the PPP profile (required).
	Profile *config.PPP
	// MaxMTU caps MRU and MTU (the peer's ppp_max_mtu; 0: no cap).
	MaxMTU int
	// Pool is the peer's pool ("" = Profile.IPPool).
	Pool string
	// Info describes the L2TP session (AcctSessionID is filled in).
	Info auth.SessionInfo
	// Log carries the tunnel's fields (nil: the Env's logger).
	Log *zap.Logger
}

// LNS is the LNS-side driver of one session. It implements
// endpoint.Driver.
type LNS struct {
	env  *Env
	call Call
	dp   dataplane.Session
	// link is the PPP engine, a field rather than a pointer: allocated
	// with the driver, both of which every frame and tick of the session
	// reaches, and which a server holding 100,000 sessions finds cold
	// (docs/benchmarks.md); and one allocation fewer per session.
	link ppp.Link
	// log is the tunnel's (or the Env's) logger, shared: the fields that
	// name the session are added only to lines actually written (logAt).
	log  *zap.Logger
	prof *config.PPP
	// processing: process is running (an action's handler may lead back
	// to it: the outer loop then carries out the new actions in order).
	processing bool

	owner    uint64
	maxMTU   int
	poolName string

	// authentication
	cancel   context.CancelFunc
	username string
	method   auth.Method
	// result is the authenticator's answer until the network is up; what
	// a later NCP change needs of it stays in routes and resMTU.
	result *auth.Result
	routes []netip.Prefix
	resMTU int

	// address
	addr      netip.Addr
	addrPool  *pool.Pool
	addrFixed bool

	// accounting and limits: rec is filled as the session goes; acct
	// points to it once accounting has started.
	rec        auth.AcctSession
	acct       *auth.AcctSession
	sessionEnd time.Time
	idle       time.Duration
	interval   time.Duration // Interim-Update interval, 0: none
	interimAt  time.Time
	idleCheck  time.Time
	lastRx     uint64
	lastTx     uint64
	// PPP control frames we received and sent: the data planes count them
	// with the subscriber's packets, the idle timer must not.
	ctrlIn, ctrlOut uint64

	reg *regEntry

	// up is the data path's Up running on a worker (dataplane.BlockingUp),
	// nil if none; upNext is an NCP change that came meanwhile (upQueued),
	// applied after it.
	up       *upJob
	upNext   ppp.NetworkUp
	upQueued bool

	// ending
	end      EndKind
	endMsg   string
	hungUp   bool
	released bool
}

// NewLNS starts PPP as the authenticator on an established session: LCP
// sends its Configure-Request at once. dp must not be nil.
func (e *Env) NewLNS(now time.Time, call Call, dp dataplane.Session, p LNSParams) *LNS {
	owner, id := e.cfg.IDs.Next()
	p.Info.AcctSessionID = id
	log := p.Log
	if log == nil {
		log = e.cfg.Log
	}
	prof := p.Profile
	poolName := p.Pool
	if poolName == "" {
		poolName = prof.IPPool
	}
	d := &LNS{env: e, call: call, dp: dp, log: log, prof: prof, owner: owner, maxMTU: p.MaxMTU, poolName: poolName}
	d.rec.ID, d.rec.Info = id, p.Info
	e.active.Add(1)
	d.reg = e.reg.add(d, now)
	// No Session in the Link's configuration: authenticate fills it in
	// from d.rec.Info (one copy per session, not two).
	d.link.Init(linkConfig(ppp.RoleAuthenticator, prof, p.MaxMTU, e.cfg.Rand, auth.SessionInfo{}), now)
	d.link.Open(now)
	d.process(now)
	return d
}

// linkConfig maps a PPP profile onto the engine's configuration.
func linkConfig(role ppp.Role, prof *config.PPP, maxMTU int, rnd interface{ Read([]byte) (int, error) }, info auth.SessionInfo) ppp.Config {
	echo := tunnelcfg.Jitter(prof.LCPEchoInterval)
	if prof.LCPEchoInterval <= 0 {
		echo = -1 // "0s" in the config: never
	}
	c := ppp.Config{
		Role:         role,
		MRU:          capMTU(prof.MRU, maxMTU),
		AuthMethods:  prof.Auth,
		EchoInterval: echo,
		EchoFailures: prof.LCPEchoFailure,
		RestartTimer: prof.RestartTimer,
		MaxConfigure: prof.MaxConfigure,
		MaxFailure:   prof.MaxFailure,
		MaxTerminate: prof.MaxTerminate,
		IPv4:         pppPolicy(prof.IPv4),
		IPv6:         pppPolicy(prof.IPv6),
		Session:      info,
	}
	if rnd != nil {
		c.Rand = rnd
	}
	return c
}

func capMTU(v, limit int) int {
	if limit > 0 && (v == 0 || v > limit) {
		return limit
	}
	return v
}

// pppPolicy maps deny|allow|prefer|require onto the engine's policies.
func pppPolicy(p config.Policy) ppp.Policy {
	switch p {
	case config.PolicyDeny:
		return ppp.PolicyDisable
	case config.PolicyRequire:
		return ppp.PolicyRequire
	}
	return ppp.PolicyAllow
}

// Frame implements endpoint.Driver.
func (d *LNS) Frame(now time.Time, frame []byte) {
	d.ctrlIn++
	d.link.Input(now, frame)
	d.process(now)
}

// Deadline implements endpoint.Driver.
func (d *LNS) Deadline() time.Time {
	dl := d.link.Deadline()
	for _, t := range [...]time.Time{d.sessionEnd, d.idleCheck, d.interimAt} {
		if !t.IsZero() && (dl.IsZero() || t.Before(dl)) {
			dl = t
		}
	}
	return dl
}

// Tick implements endpoint.Driver.
func (d *LNS) Tick(now time.Time) {
	if due(d.sessionEnd, now) {
		d.sessionEnd = time.Time{}
		d.stop(now, EndSessionTimeout, "session timeout")
	}
	if due(d.idleCheck, now) {
		d.checkIdle(now)
	}
	if due(d.interimAt, now) {
		d.interim(now)
	}
	d.link.Tick(now)
	d.process(now)
}

// interim sends an Interim-Update and schedules the next.
func (d *LNS) interim(now time.Time) {
	d.interimAt = time.Time{}
	if d.acct == nil || d.released || d.interval <= 0 {
		return
	}
	d.env.cfg.Acct.Interim(d.acct, d.counters(now))
	d.interimAt = now.Add(tunnelcfg.Jitter(d.interval))
}

// counters reads the data path's counters for accounting.
func (d *LNS) counters(now time.Time) auth.AcctCounters {
	var c auth.AcctCounters
	if st, err := d.dp.Stats(); err == nil {
		c = auth.AcctCounters{InOctets: st.RxBytes, OutOctets: st.TxBytes, InPackets: st.RxPackets, OutPackets: st.TxPackets}
	} else {
		if ce := d.logAt(zap.WarnLevel, "reading session counters for accounting"); ce != nil {
			d.write(ce, zap.Error(err))
		}
	}
	c.SessionTime = now.Sub(d.acct.Start)
	return c
}

// terminate ends the session on request (Registry.Terminate).
func (d *LNS) terminate(now time.Time, t Termination) {
	if d.released {
		return
	}
	if ce := d.logAt(zap.InfoLevel, "terminating the session"); ce != nil {
		d.write(ce, zap.String("user", d.username), zap.Stringer("why", t.Kind), zap.String("reason", t.Message), zap.Bool("hard", t.Hard))
	}
	if !t.Hard {
		d.stop(now, t.Kind, t.Message)
		d.process(now)
		return
	}
	if d.end == EndUnknown {
		d.end, d.endMsg = t.Kind, t.Message
	}
	d.release(now, d.end)
	if !d.hungUp {
		d.hungUp = true
		d.call.Hangup(now, d.end.CDN(truncateMsg(d.endMsg)), t.Message)
	}
}

// change applies a live change of limits (Registry.Change, RADIUS CoA).
func (d *LNS) change(now time.Time, c Change) {
	if d.released {
		return
	}
	f := []zap.Field{zap.String("user", d.username)}
	if c.SessionTimeout != nil {
		d.sessionEnd = time.Time{}
		if *c.SessionTimeout > 0 {
			d.sessionEnd = now.Add(*c.SessionTimeout)
		}
		f = append(f, zap.Duration("session_timeout", *c.SessionTimeout))
	}
	if c.IdleTimeout != nil {
		d.idle, d.idleCheck = *c.IdleTimeout, time.Time{}
		if d.idle > 0 && d.acct != nil {
			d.idleCheck = now.Add(d.idle)
			if st, err := d.dp.Stats(); err == nil {
				d.lastRx, d.lastTx = st.RxPackets-d.ctrlIn, st.TxPackets-d.ctrlOut
			}
		}
		f = append(f, zap.Duration("idle_timeout", d.idle))
	}
	if c.InterimInterval != nil {
		d.interval, d.interimAt = *c.InterimInterval, time.Time{}
		if d.interval > 0 && d.acct != nil {
			d.interimAt = now.Add(d.interval)
		}
		f = append(f, zap.Duration("interim_interval", d.interval))
	}
	if ce := d.logAt(zap.InfoLevel, "session limits changed"); ce != nil {
		d.write(ce, f...)
	}
}

func due(t, now time.Time) bool { return !t.IsZero() && !now.Before(t) }

// checkIdle compares the data path's counters with the last look: traffic
// restarts the idle period, none for a whole period ends the session. A
// session is thus closed between one and two Idle-Timeouts after its last
// packet.
func (d *LNS) checkIdle(now time.Time) {
	st, err := d.dp.Stats()
	if err != nil {
		if ce := d.logAt(zap.DebugLevel, "reading session counters for the idle timeout"); ce != nil {
			d.write(ce, zap.Error(err))
		}
		d.idleCheck = now.Add(d.idle)
		return
	}
	rx, tx := st.RxPackets-d.ctrlIn, st.TxPackets-d.ctrlOut
	if rx != d.lastRx || tx != d.lastTx {
		d.lastRx, d.lastTx = rx, tx
		d.idleCheck = now.Add(d.idle)
		return
	}
	d.idleCheck = time.Time{}
	d.stop(now, EndIdleTimeout, "idle timeout")
}

// stop closes PPP (LCP Terminate) for a reason of ours; the CDN follows
// when LCP is down.
func (d *LNS) stop(now time.Time, k EndKind, msg string) {
	if d.end == EndUnknown {
		d.end, d.endMsg = k, msg
	}
	d.link.Close(now, msg)
}

// process carries out the Link's actions until there are none. A handler
// that leads back here (an inline authentication answer, a data plane
// that delivers a reply synchronously) does not re-enter: the actions it
// caused are left with the Link and carried out by this loop, in order,
// after the batch in hand.
func (d *LNS) process(now time.Time) {
	if d.processing {
		return
	}
	d.processing = true
	defer func() { d.processing = false }()
	var buf [8]ppp.Action
	for {
		acts := d.link.Actions(buf[:0])
		if len(acts) == 0 {
			return
		}
		for _, a := range acts {
			d.do(now, a)
		}
		clear(acts)
	}
}

// do carries out one action of the Link.
func (d *LNS) do(now time.Time, a ppp.Action) {
	switch a := a.(type) {
	case ppp.SendFrame:
		if d.released {
			return
		}
		d.ctrlOut++
		if err := d.dp.SendFrame(a.Frame); err != nil {
			if ce := d.logAt(zap.DebugLevel, "sending PPP frame"); ce != nil {
				d.write(ce, zap.Error(err))
			}
		}
	case ppp.NeedAuth:
		d.authenticate(now, a.Req)
	case ppp.NeedAddress:
		d.assign(now, a.Result)
	case ppp.NetworkUp:
		d.networkUp(now, a)
	case ppp.LinkDown:
		d.linkDown(now, a.Reason)
	}
}

// logAt checks whether a line at lvl is written (nil: it is not, and no
// field need be built).
func (d *LNS) logAt(lvl zapcore.Level, msg string) *zapcore.CheckedEntry {
	return d.log.Check(lvl, msg)
}

// write writes a checked line with the fields that name the session
// first, then fields.
func (d *LNS) write(ce *zapcore.CheckedEntry, fields ...zap.Field) {
	fs := make([]zap.Field, 0, 2+len(fields))
	fs = append(fs, zap.Uint32("session", d.rec.Info.SessionID), zap.String("acct_session_id", d.rec.ID))
	ce.Write(append(fs, fields...)...)
}

func (d *LNS) authenticate(now time.Time, req *auth.Request) {
	req.Session = d.rec.Info
	d.username, d.method = req.Username, req.Method
	a, err := d.env.authenticator(d.prof)
	if err != nil {
		d.authDone(now, nil, err, "")
		return
	}
	if dc, ok := a.(intoDecider); ok {
		res := new(auth.Result)
		why := dc.DecideInto(req, res)
		d.authAnswer(now, res, nil, why.String(), true)
		return
	}
	if dc, ok := a.(decider); ok {
		res, why := dc.Decide(req)
		d.authDone(now, res, nil, why.String())
		return
	}
	if aa, ok := a.(auth.AsyncAuthenticator); ok {
		d.authenticateAsync(now, aa, req)
		return
	}
	ctx, cancel := d.env.authContext()
	d.cancel = cancel
	call := d.call
	d.env.cfg.Async(func() {
		res, err := a.Authenticate(ctx, req)
		call.Post(func(now time.Time) { d.authDone(now, res, err, "") })
	})
}

// authCall is one outstanding AuthenticateAsync (auth.AsyncAuthenticator:
// RADIUS answers without a goroutine per request).
type authCall struct {
	mu sync.Mutex
	// inCall: AuthenticateAsync has not returned; an answer given meanwhile
	// is kept in res/err and handled by authenticateAsync itself.
	inCall   bool
	answered bool
	res      *auth.Result
	err      error
	// canceled: the driver gave up (release); an answer is not posted.
	canceled bool
}

// TryPoster is a Call that can post without blocking (endpoint.Session).
type TryPoster interface {
	TryPost(f func(now time.Time)) bool
}

// authenticateAsync asks aa; its answer reaches authDone on the tunnel
// goroutine. The answer callback never blocks the authenticator's
// goroutine: it posts without waiting, or from a goroutine of its own when
// the tunnel's queue is full.
func (d *LNS) authenticateAsync(now time.Time, aa auth.AsyncAuthenticator, req *auth.Request) {
	st := &authCall{inCall: true}
	call := d.call
	cancel := aa.AuthenticateAsync(req, func(res *auth.Result, err error) {
		st.mu.Lock()
		if st.canceled {
			st.mu.Unlock()
			return
		}
		if st.inCall {
			st.answered, st.res, st.err = true, res, err
			st.mu.Unlock()
			return
		}
		st.mu.Unlock()
		f := func(now time.Time) { d.authDone(now, res, err, "") }
		if tp, ok := call.(TryPoster); ok && tp.TryPost(f) {
			return
		}
		go call.Post(f)
	})
	d.cancel = func() {
		st.mu.Lock()
		st.canceled = true
		st.mu.Unlock()
		cancel()
	}
	st.mu.Lock()
	st.inCall = false
	answered, res, err := st.answered, st.res, st.err
	st.mu.Unlock()
	if answered {
		d.authDone(now, res, err, "")
	}
}

// authDone delivers an authentication answer (on the tunnel goroutine).
func (d *LNS) authDone(now time.Time, res *auth.Result, err error, why string) {
	d.authAnswer(now, res, err, why, false)
}

// authAnswer is authDone; owned says that res is the driver's own (made
// for this request alone), kept without a copy.
func (d *LNS) authAnswer(now time.Time, res *auth.Result, err error, why string, owned bool) {
	if d.cancel != nil {
		d.cancel()
		d.cancel = nil
	}
	if d.released {
		return
	}
	accept := err == nil && res != nil && res.Accept
	if !accept {
		if why == "" {
			switch {
			case err != nil:
				why = err.Error()
			case res != nil && res.Message != "":
				why = res.Message
			default:
				why = "refused"
			}
		}
		if ce := d.logAt(zap.WarnLevel, "subscriber authentication failed"); ce != nil {
			d.write(ce, zap.String("user", d.username), zap.Stringer("method", d.method), zap.String("reason", why))
		}
		if d.end == EndUnknown {
			d.end, d.endMsg = EndAuthFailed, "PPP authentication failed: "+why
		}
		d.link.AuthDone(now, res, err)
		d.process(now)
		return
	}
	if ce := d.logAt(zap.DebugLevel, "subscriber authenticated"); ce != nil {
		d.write(ce, zap.String("user", d.username), zap.Stringer("method", d.method))
	}
	r := res
	if !owned {
		r = new(auth.Result)
		*r = *res
	}
	// The driver enforces the time limits itself so that it knows the
	// terminate cause; the Link is given none. The driver and the Link
	// share one copy of the answer, without the limits.
	if r.SessionTimeout > 0 {
		d.sessionEnd = now.Add(r.SessionTimeout)
	}
	if r.IdleTimeout > 0 {
		d.idle = r.IdleTimeout
	}
	r.SessionTimeout, r.IdleTimeout = 0, 0
	d.result, d.routes, d.resMTU = r, r.FramedRoutes, r.MTU
	d.interval = r.InterimInterval
	if d.interval <= 0 {
		d.interval = d.env.cfg.InterimInterval
	}
	d.env.reg.authenticated(d.reg, d.username, d.method)
	d.link.AuthDone(now, r, nil)
	d.process(now)
}

// assign picks the subscriber's address: a fixed Framed-IP from the
// authenticator (reserved in its pool if a pool contains it), else the
// pool the authenticator named, else the peer's pool, else the profile's.
func (d *LNS) assign(now time.Time, res *auth.Result) {
	if d.released || d.addr.IsValid() {
		return
	}
	if res == nil {
		res = &auth.Result{}
	}
	var local netip.Addr
	switch fixed := res.FramedIP; {
	case fixed.IsValid() && fixed.Is4() && fixed != poolAddress && fixed != netip.IPv4Unspecified() && fixed.As4() != [4]byte{255, 255, 255, 255}:
		var p *pool.Pool
		var err error
		if d.env.cfg.Pools != nil {
			p, err = d.env.cfg.Pools.Reserve(fixed, d.owner)
		} else {
			err = pool.ErrNotInPool
		}
		switch {
		case err == nil:
			d.addrPool = p
			local = p.Gateway()
		case errors.Is(err, pool.ErrNotInPool):
			if err := d.env.reserveFixed(fixed, d.owner); err != nil {
				d.addressFailed(now, EndAddressError, err)
				return
			}
			d.addrFixed = true
		default:
			d.addressFailed(now, EndAddressError, err)
			return
		}
		d.addr = fixed
	default:
		name := res.Pool
		if name == "" {
			name = d.poolName
		}
		if name == "" || d.env.cfg.Pools == nil {
			d.addressFailed(now, EndAddressError, errors.New("no address pool configured for this subscriber"))
			return
		}
		p, err := d.env.cfg.Pools.Get(name)
		if err != nil {
			d.addressFailed(now, EndAddressError, err)
			return
		}
		a, err := p.Allocate(d.owner)
		if err != nil {
			k := EndAddressError
			if errors.Is(err, pool.ErrExhausted) {
				k = EndPoolExhausted
			}
			d.addressFailed(now, k, err)
			return
		}
		d.addr, d.addrPool, local = a, p, p.Gateway()
	}
	if !local.IsValid() {
		local = d.gatewayFor()
	}
	dns, nbns := d.prof.DNS, d.prof.NBNS
	if res.DNS[0].IsValid() || res.DNS[1].IsValid() {
		dns = res.DNS
	}
	if res.NBNS[0].IsValid() || res.NBNS[1].IsValid() {
		nbns = res.NBNS
	}
	d.link.SetAddresses(now, local, d.addr, dns, nbns)
}

// gatewayFor is our end of a link whose subscriber has a fixed address
// outside every pool: the gateway of the pool the subscriber would
// otherwise draw from.
func (d *LNS) gatewayFor() netip.Addr {
	if d.env.cfg.Pools == nil || d.poolName == "" {
		return netip.Addr{}
	}
	p, err := d.env.cfg.Pools.Get(d.poolName)
	if err != nil {
		return netip.Addr{}
	}
	return p.Gateway()
}

func (d *LNS) addressFailed(now time.Time, k EndKind, err error) {
	msg := "no address for the subscriber"
	if k == EndPoolExhausted {
		msg = "address pool exhausted"
	}
	if ce := d.logAt(zap.ErrorLevel, msg+": refusing the session"); ce != nil {
		d.write(ce, zap.String("user", d.username), zap.String("pool", d.poolName), zap.Error(err))
	}
	d.stop(now, k, msg)
}

func (d *LNS) networkUp(now time.Time, up ppp.NetworkUp) {
	if d.released {
		return
	}
	if d.up != nil {
		// An NCP changed while the data path is still applying the last
		// change: apply this one after it, the latest only.
		d.upNext, d.upQueued = up, true
		return
	}
	nc := dataplane.NetConfig{
		MTU:       min(up.MTU, capMTU(d.prof.MTU, d.maxMTU)),
		MRU:       up.MRU,
		Local:     up.Local,
		Peer:      up.Peer,
		LocalIfID: up.LocalIfID,
		PeerIfID:  up.PeerIfID,
	}
	if nc.MTU <= 0 {
		nc.MTU = up.MTU
	}
	if !up.IPv4 {
		nc.Local, nc.Peer = netip.Addr{}, netip.Addr{}
	}
	nc.Routes = d.routes
	if d.resMTU > 0 {
		nc.MTU = min(nc.MTU, d.resMTU)
	}
	first := d.acct == nil
	if first {
		nc.IfName = d.env.ifName(d.prof.IfName)
	} else {
		nc.IfName = d.acct.IfName
	}
	if bu, ok := d.dp.(dataplane.BlockingUp); ok && bu.UpBlocks() {
		d.startUp(&upJob{nc: nc, ev: up, first: first})
		return
	}
	d.upDone(now, nc, up, first, d.dp.Up(nc))
}

// upJob is one data path Up run on a worker (dataplane.BlockingUp).
type upJob struct {
	nc    dataplane.NetConfig
	ev    ppp.NetworkUp
	first bool
	// stop is closed by release: the worker does not start Up if it has
	// not yet. done is closed by the worker once Up returned (err set)
	// or was skipped, before it posts the outcome (which upFinished
	// ignores unless the job is still d.up).
	stop chan struct{}
	done chan struct{}
	err  error
}

// startUp runs the data path's Up on a worker, at most Config.UpWorkers
// at a time across the process, and posts the outcome back (upFinished):
// the tunnel's other calls go on meanwhile.
func (d *LNS) startUp(job *upJob) {
	job.stop, job.done = make(chan struct{}), make(chan struct{})
	d.up = job
	dp, call, slots := d.dp, d.call, d.env.upSlots
	go func() {
		// A stopped job is not run: release has already let it go
		// (d.up is no longer job), so its outcome is never looked at.
		select {
		case slots <- struct{}{}:
			select {
			case <-job.stop:
			default:
				job.err = upGuarded(dp, job.nc)
			}
			<-slots
		case <-job.stop:
		}
		close(job.done)
		call.Post(func(now time.Time) { d.upFinished(now, job) })
	}()
}

// upGuarded is the worker's dp.Up: a panic in it (a bug in the data path)
// is that session's error, not the daemon's end.
func upGuarded(dp dataplane.Session, nc dataplane.NetConfig) (err error) {
	defer func() {
		if r := recover(); r != nil {
			fault.Recovered(nil, "", r) // logged by upDone, with the stack in err
			err = fmt.Errorf("internal error in the data path (please report it): %v\n%s", r, debug.Stack())
		}
	}()
	return dp.Up(nc)
}

// upFinished is a worker's Up outcome, on the tunnel goroutine.
func (d *LNS) upFinished(now time.Time, job *upJob) {
	if d.up != job {
		return // release waited for it and moved on
	}
	d.up = nil
	d.upDone(now, job.nc, job.ev, job.first, job.err)
	if d.upQueued && !d.released {
		d.upQueued = false
		d.networkUp(now, d.upNext)
	}
	d.process(now)
}

// waitUp is release's: an Up on a worker either does not start or is
// waited for, so that nothing the session held (its address) is handed
// out again while the data path may still be configuring it.
func (d *LNS) waitUp() {
	job := d.up
	if job == nil {
		return
	}
	d.up, d.upQueued = nil, false
	close(job.stop)
	if h := d.env.onUpWait; h != nil {
		h()
	}
	<-job.done
}

// upDone carries on once the data path applied nc (err == nil): the first
// time, accounting starts and the session counts as up.
func (d *LNS) upDone(now time.Time, nc dataplane.NetConfig, up ppp.NetworkUp, first bool, err error) {
	if d.released {
		return
	}
	if err != nil {
		d.upQueued = false
		if ce := d.logAt(zap.ErrorLevel, "data path refused the subscriber's network: closing the session"); ce != nil {
			d.write(ce, zap.String("user", d.username), zap.Error(err))
		}
		d.stop(now, EndDataPlane, "data path error")
		return
	}
	if !first {
		if ce := d.logAt(zap.DebugLevel, "subscriber network changed"); ce != nil {
			d.write(ce, zap.Bool("ipv4", up.IPv4), zap.Bool("ipv6", up.IPv6))
		}
		return
	}
	d.acct = &d.rec
	d.acct.Username, d.acct.Method = d.username, d.method
	d.acct.FramedIP, d.acct.Start, d.acct.IfName = nc.Peer, now, nc.IfName
	if d.result != nil {
		d.acct.Class = d.result.Class
		d.acct.FramedIPv6 = d.result.FramedIPv6
		d.acct.Delegated = d.result.DelegatedIPv6
		// The rest of the answer is not needed any more (routes and MTU
		// are kept for an NCP change).
		d.result = nil
	}
	if d.idle > 0 {
		d.idleCheck = now.Add(d.idle)
		if st, err := d.dp.Stats(); err == nil {
			d.lastRx, d.lastTx = st.RxPackets-d.ctrlIn, st.TxPackets-d.ctrlOut
		}
	}
	if d.interval > 0 {
		d.interimAt = now.Add(tunnelcfg.Jitter(d.interval))
	}
	d.env.cfg.Acct.Start(d.acct)
	d.env.reg.up(d.reg, nc.Peer, nc.IfName, now)
	d.call.Established()
	if ev := d.env.cfg.Events; ev != nil {
		ev.SessionUp()
	}
	if ce := d.logAt(zap.InfoLevel, "subscriber up"); ce != nil {
		d.write(ce, zap.String("user", d.username), zap.Stringer("method", d.method),
			zap.Stringer("address", nc.Peer), zap.Stringer("gateway", nc.Local), zap.String("interface", nc.IfName),
			zap.Bool("ipv6", up.IPv6), zap.Int("mtu", nc.MTU))
	}
}

func (d *LNS) linkDown(now time.Time, reason string) {
	k := d.end
	if k == EndUnknown {
		k = classifyLinkDown(reason)
		d.end = k
	}
	msg := d.endMsg
	if msg == "" {
		msg = reason
	}
	if d.acct != nil {
		if ce := d.logAt(zap.InfoLevel, "subscriber down"); ce != nil {
			d.write(ce, zap.String("user", d.username), zap.Stringer("address", d.addr), zap.Stringer("why", k), zap.String("reason", reason))
		}
	} else if ce := d.logAt(zap.InfoLevel, "PPP ended before the network came up"); ce != nil {
		d.write(ce, zap.String("user", d.username), zap.Stringer("why", k), zap.String("reason", reason))
	}
	d.release(now, k)
	if !d.hungUp {
		d.hungUp = true
		d.call.Hangup(now, k.CDN(truncateMsg(msg)), "PPP: "+reason)
	}
}

func truncateMsg(s string) string {
	if len(s) > 128 {
		return s[:128]
	}
	return s
}

// Close implements endpoint.Driver: the L2TP session or its tunnel is
// gone. It releases what the session holds if PPP had not already.
func (d *LNS) Close(now time.Time, reason string) {
	d.hungUp = true
	if d.released {
		return
	}
	if d.end == EndUnknown {
		d.end = classifyClose(reason)
		if d.end == EndCallCleared && d.env.stopping.Load() {
			d.end = EndShutdown
		}
	}
	if d.acct != nil {
		if ce := d.logAt(zap.InfoLevel, "subscriber down"); ce != nil {
			d.write(ce, zap.String("user", d.username), zap.Stringer("address", d.addr), zap.Stringer("why", d.end), zap.String("reason", reason))
		}
	}
	d.release(now, d.end)
}

// release gives back the address, stops accounting and cancels an
// outstanding authentication: exactly once.
func (d *LNS) release(now time.Time, k EndKind) {
	if d.released {
		return
	}
	d.released = true
	d.waitUp()
	d.env.active.Add(-1)
	d.env.reg.remove(d.reg)
	if ev := d.env.cfg.Events; ev != nil {
		ev.SessionEnded(k, d.acct != nil, d.method)
	}
	if d.cancel != nil {
		d.cancel()
		d.cancel = nil
	}
	d.sessionEnd, d.idleCheck, d.interimAt = time.Time{}, time.Time{}, time.Time{}
	// The address goes back before the Stop record: whoever acts on the
	// Stop (a RADIUS server reassigning it, an operator) finds it free.
	switch {
	case d.addrFixed:
		d.env.releaseFixed(d.addr, d.owner)
	case d.addrPool != nil:
		if err := d.addrPool.Release(d.addr); err != nil {
			if ce := d.logAt(zap.ErrorLevel, "returning the subscriber's address to the pool"); ce != nil {
				d.write(ce, zap.Error(err))
			}
		}
	}
	d.addrPool, d.addrFixed = nil, false
	if d.acct != nil {
		d.env.cfg.Acct.Stop(d.acct, d.counters(now), k.Cause())
	}
}

// Address returns the subscriber's address (invalid before one is
// assigned and after release).
func (d *LNS) Address() netip.Addr {
	if d.released {
		return netip.Addr{}
	}
	return d.addr
}

// Username is the name the subscriber authenticated with.
func (d *LNS) Username() string { return d.username }

// Ended reports why the session ended (EndUnknown while it runs).
func (d *LNS) Ended() EndKind {
	if !d.released {
		return EndUnknown
	}
	return d.end
}

func (d *LNS) String() string {
	return fmt.Sprintf("session %d user %q", d.rec.Info.SessionID, d.username)
}
