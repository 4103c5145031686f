// Package bench is the engine of l2tpbench, a LAC-and-subscriber emulator
// that loads an LNS: it opens tunnels and places calls with the project's
// own endpoint (l2tp/endpoint) and runs PPP as the subscriber with the LAC
// driver of pppsession, over WirePlane (PPP in L2TP data messages on the
// tunnel's socket, no interfaces). It measures tunnel and session setup
// latency (ICRQ sent to IPCP up), failures by cause, control channel
// retransmissions, its own CPU and, given a pid, the target's CPU and RSS.
//
// Memory: per session the emulator holds the endpoint's session, the PPP
// link and two timestamps; no goroutine. One goroutine per tunnel (the
// endpoint's) and one call placer per tunnel.
package bench

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/l2tpd/l2tpd/auth"
	"github.com/l2tpd/l2tpd/config"
	"github.com/l2tpd/l2tpd/internal/tunnelcfg"
	"github.com/l2tpd/l2tpd/l2tp"
	"github.com/l2tpd/l2tpd/l2tp/endpoint"
	"github.com/l2tpd/l2tpd/l2tp/tunnel"
	"github.com/l2tpd/l2tpd/pppsession"
)

// Options configure one run.
type Options struct {
	Target   netip.AddrPort // the LNS
	Local    netip.Addr     // our source address (zero: the kernel's choice)
	Tunnels  int            // T (default 1)
	Sessions int            // S, spread round-robin over the tunnels
	// Rate is the target session setup rate per second (0: as fast as
	// InFlight allows).
	Rate float64
	// InFlight bounds session setups placed and not yet up or failed
	// (default 100).
	InFlight int
	// Auth is the PPP authentication method we agree to (default CHAP).
	Auth auth.Method
	// UserFormat makes the user name of session i from i mod UserCount
	// (default "user%d"; UserCount 0: Sessions).
	UserFormat string
	UserCount  int
	Password   string
	HostName   string // our Host Name AVP (default "l2tpbench")
	Secret     string // tunnel secret (empty: none)
	// HelloInterval and LCPEchoInterval are our own keepalives (0: none;
	// the target's are always answered).
	HelloInterval   time.Duration
	LCPEchoInterval time.Duration
	// SetupTimeout fails a session not up this long after its ICRQ
	// (default 60s).
	SetupTimeout time.Duration
	// Hold keeps every session up this long after the last setup.
	Hold time.Duration
	// DataPackets ICMP Echo Requests of DataSize bytes are sent through
	// each session to the LNS's address once all are up (0: none).
	DataPackets int
	DataSize    int
	// TargetPID: a local target process to measure (0: none).
	TargetPID int
	// Interval between samples (default 1s); Progress, when set, is
	// called with each.
	Interval time.Duration
	Progress func(Sample)
	Log      *zap.Logger
}

func (o *Options) defaults() error {
	if !o.Target.IsValid() {
		return errors.New("bench: no target address")
	}
	if o.Sessions < 0 || o.Tunnels < 0 || o.InFlight < 0 || o.Rate < 0 {
		return errors.New("bench: negative tunnels, sessions, rate or in-flight")
	}
	if o.Tunnels == 0 {
		o.Tunnels = 1
	}
	if o.Tunnels > 65535 {
		return fmt.Errorf("bench: %d tunnels: at most 65535", o.Tunnels)
	}
	if o.Sessions > o.Tunnels*65535 {
		return fmt.Errorf("bench: %d sessions over %d tunnels: at most 65535 per tunnel", o.Sessions, o.Tunnels)
	}
	if o.InFlight == 0 {
		o.InFlight = 100
	}
	if o.Auth == 0 {
		o.Auth = auth.MethodCHAPMD5
	}
	if o.UserFormat == "" {
		o.UserFormat = "user%d"
	}
	if strings.Count(o.UserFormat, "%d") != 1 {
		return fmt.Errorf("bench: user format %q needs exactly one %%d", o.UserFormat)
	}
	if o.UserCount <= 0 {
		o.UserCount = max(o.Sessions, 1)
	}
	if o.HostName == "" {
		o.HostName = "l2tpbench"
	}
	if o.SetupTimeout <= 0 {
		o.SetupTimeout = 60 * time.Second
	}
	if o.Interval <= 0 {
		o.Interval = time.Second
	}
	if o.DataSize <= 0 {
		o.DataSize = 56
	}
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	return nil
}

// loadConfig resolves the LAC side's settings through the project's own
// configuration defaults.
func loadConfig(o *Options) (*config.Config, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "host_name = %q\n[l2tp]\nlisten = []\nhello_interval = %q\n", o.HostName, o.HelloInterval.String())
	if o.Secret != "" {
		fmt.Fprintf(&b, "secret = %q\n", o.Secret)
	}
	fmt.Fprintf(&b, "[ppp]\nipv6 = \"deny\"\nlcp_echo_interval = %q\n", o.LCPEchoInterval.String())
	fmt.Fprintf(&b, "[[lac]]\nname = \"bench\"\nlns = %q\nsessions = 1\nusername = \"x\"\npassword = \"x\"\nauth = [%q]\n",
		o.Target.String(), authName(o.Auth))
	return config.Parse([]byte(b.String()), "l2tpbench.toml")
}

func authName(m auth.Method) string {
	switch m {
	case auth.MethodPAP:
		return "pap"
	case auth.MethodMSCHAPv2:
		return "mschapv2"
	}
	return "chap"
}

// ParseAuth parses "pap", "chap" or "mschapv2".
func ParseAuth(s string) (auth.Method, error) {
	switch strings.ToLower(s) {
	case "pap":
		return auth.MethodPAP, nil
	case "chap", "chap-md5":
		return auth.MethodCHAPMD5, nil
	case "mschapv2", "ms-chapv2", "mschap-v2":
		return auth.MethodMSCHAPv2, nil
	}
	return 0, fmt.Errorf("unknown authentication method %q (pap, chap, mschapv2)", s)
}

// Session outcome states.
const (
	stPending uint32 = iota
	stPlaced
	stUp
	stFailed
)

// runner is one run's shared state.
type runner struct {
	o       Options
	start   time.Time
	ep      *endpoint.Endpoint
	plane   *WirePlane
	env     *pppsession.Env
	prof    *config.PPP
	methods []auth.Method

	state    []atomic.Uint32
	placedAt []atomic.Int64 // ns since start
	upAt     []atomic.Int64
	wires    []atomic.Pointer[wireSession]
	inflight chan struct{}

	placed, up, failed, dropped atomic.Int64
	resolved                    chan struct{} // signalled when a setup resolves

	mu         sync.Mutex
	failures   map[string]int
	tunnelLat  []time.Duration
	tunnels    []*benchTunnel
	lastUpNano atomic.Int64
	closing    atomic.Bool
}

// benchTunnel is the emulator's view of one tunnel.
type benchTunnel struct {
	r      *runner
	ep     *endpoint.Tunnel
	dialAt time.Time
	done   chan struct{} // closed when it came up or went down
	once   sync.Once
	ok     atomic.Bool
	calls  chan int32

	mu     sync.Mutex
	sids   map[uint32]int32
	orphan map[uint32]string // down before its ID was registered

	retx, sent atomic.Uint64
	dups       atomic.Uint64 // control messages received again: the target's retransmissions
}

func (r *runner) since(t time.Time) int64 { return int64(t.Sub(r.start)) }

func (r *runner) fail(cause string) {
	r.mu.Lock()
	r.failures[cause]++
	r.mu.Unlock()
}

// resolve moves session i from placed to up or failed (once).
func (r *runner) resolve(i int32, to uint32, now time.Time, cause string) bool {
	if !r.state[i].CompareAndSwap(stPlaced, to) {
		return false
	}
	if to == stUp {
		ns := r.since(now)
		r.upAt[i].Store(ns)
		r.up.Add(1)
		for {
			last := r.lastUpNano.Load()
			if ns <= last || r.lastUpNano.CompareAndSwap(last, ns) {
				break
			}
		}
	} else {
		r.failed.Add(1)
		r.fail(cause)
	}
	<-r.inflight
	select {
	case r.resolved <- struct{}{}:
	default:
	}
	return true
}

// Run runs the benchmark until every session is up or failed, holds them,
// hangs up and returns the result. ctx cancels the run (the result so far
// is returned with ctx's error).
func Run(ctx context.Context, o Options) (*Result, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	cfg, err := loadConfig(&o)
	if err != nil {
		return nil, fmt.Errorf("bench: resolving settings: %w", err)
	}
	r := &runner{
		o:        o,
		plane:    NewWirePlane(),
		prof:     &cfg.PPP,
		methods:  cfg.LACs[0].Auth,
		state:    make([]atomic.Uint32, o.Sessions),
		placedAt: make([]atomic.Int64, o.Sessions),
		upAt:     make([]atomic.Int64, o.Sessions),
		wires:    make([]atomic.Pointer[wireSession], o.Sessions),
		inflight: make(chan struct{}, o.InFlight),
		resolved: make(chan struct{}, 1),
		failures: map[string]int{},
	}
	r.env = pppsession.NewEnv(pppsession.Config{Log: o.Log})
	r.ep, err = endpoint.New(endpoint.Config{Plane: r.plane, Handler: r, Logger: o.Log})
	if err != nil {
		return nil, fmt.Errorf("bench: endpoint: %w", err)
	}
	res := &Result{Options: summarizeOptions(&o)}
	meter := newMeter(o.TargetPID)
	r.start = time.Now()
	res.Start = r.start
	base := meter.sample()

	sctx, stopSampler := context.WithCancel(context.Background())
	samplerDone := make(chan struct{})
	go func() {
		defer close(samplerDone)
		r.sampleLoop(sctx, meter, base, res)
	}()

	settings := tunnelcfg.Settings(&cfg.LACs[0].L2TP, "bench")
	runErr := r.openTunnels(ctx, settings, cfg.LACs[0].Local)
	if runErr == nil {
		runErr = r.placeCalls(ctx)
	}
	setupEnd := time.Now()
	afterSetup := meter.sample()
	res.Setup = Phase{Wall: setupEnd.Sub(r.start), Self: afterSetup.self.CPU - base.self.CPU, Target: afterSetup.target.CPU - base.target.CPU,
		TargetSwitches:    afterSetup.target.Switches - base.target.Switches,
		TargetPreemptions: afterSetup.target.Preemptions - base.target.Preemptions,
		TargetFaults:      afterSetup.target.Faults - base.target.Faults}

	if runErr == nil && o.DataPackets > 0 {
		res.Data = r.probeData(ctx)
	}
	if runErr == nil && o.Hold > 0 {
		h0 := meter.sample()
		t0 := time.Now()
		select {
		case <-ctx.Done():
			runErr = ctx.Err()
		case <-time.After(o.Hold):
		}
		h1 := meter.sample()
		res.Hold = Phase{Wall: time.Since(t0), Self: h1.self.CPU - h0.self.CPU, Target: h1.target.CPU - h0.target.CPU}
		res.TargetRSSHeld = h1.target.RSS
	}
	res.SessionsAtEnd = int(r.up.Load() - r.dropped.Load())

	// Hang up: StopCCN on every tunnel, acknowledged or 30 s (1 s when
	// no tunnel came up: nobody will acknowledge).
	r.closing.Store(true)
	t0 := time.Now()
	wait := 30 * time.Second
	if r.tunnelsUp() == 0 {
		wait = time.Second
	}
	sdctx, cancel := context.WithTimeout(context.Background(), wait)
	r.ep.Shutdown(sdctx)
	cancel()
	res.Teardown = time.Since(t0)
	end := meter.sample()
	stopSampler()
	<-samplerDone

	r.finish(res, base, end)
	return res, runErr
}

func (r *runner) tunnelsUp() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, bt := range r.tunnels {
		if bt.ok.Load() {
			n++
		}
	}
	return n
}

// openTunnels dials every tunnel, at most min(InFlight, 32) in setup at a
// time (an LNS bounds the tunnels one address may have in setup).
func (r *runner) openTunnels(ctx context.Context, settings endpoint.TunnelSettings, local netip.Addr) error {
	var la netip.AddrPort
	if r.o.Local.IsValid() {
		local = r.o.Local
	}
	if local.IsValid() {
		la = netip.AddrPortFrom(local, 0)
	}
	sem := make(chan struct{}, min(r.o.InFlight, 32))
	var wg sync.WaitGroup
	for i := 0; i < r.o.Tunnels; i++ {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return ctx.Err()
		}
		bt := &benchTunnel{r: r, done: make(chan struct{}), calls: make(chan int32, 64), sids: map[uint32]int32{}, orphan: map[uint32]string{}}
		s := settings
		s.Handler = r
		s.Opaque = bt
		s.Tunnel.Control.HelloInterval = tunnelcfg.Jitter(r.o.HelloInterval)
		bt.dialAt = time.Now()
		t, err := r.ep.Dial(r.o.Target, la, s)
		if err != nil {
			<-sem
			r.fail("tunnel: dial: " + err.Error())
			continue
		}
		bt.ep = t
		r.mu.Lock()
		r.tunnels = append(r.tunnels, bt)
		r.mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-bt.done:
			case <-time.After(r.o.SetupTimeout):
				r.fail("tunnel: setup timeout")
				t.Close(l2tp.ResultCode{Result: l2tp.ResultStopGeneral}, "setup timeout")
			case <-ctx.Done():
			}
			<-sem
		}()
	}
	wg.Wait()
	return ctx.Err()
}

// placeCalls places every call at the configured rate and in-flight bound
// and waits until each is up or failed.
func (r *runner) placeCalls(ctx context.Context) error {
	var upT []*benchTunnel
	for _, bt := range r.tunnels {
		if bt.ok.Load() {
			upT = append(upT, bt)
		}
	}
	if len(upT) == 0 {
		if r.o.Sessions > 0 {
			r.mu.Lock()
			r.failures["session: no tunnel up"] += r.o.Sessions
			r.mu.Unlock()
			r.failed.Add(int64(r.o.Sessions))
		}
		return nil
	}
	var wg sync.WaitGroup
	for _, bt := range upT {
		wg.Add(1)
		go func() {
			defer wg.Done()
			bt.placer()
		}()
	}
	callStart := time.Now()
	var err error
dispatch:
	for i := 0; i < r.o.Sessions; i++ {
		if r.o.Rate > 0 {
			due := callStart.Add(time.Duration(float64(i) / r.o.Rate * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				select {
				case <-time.After(d):
				case <-ctx.Done():
					err = ctx.Err()
					break dispatch
				}
			}
		}
		select {
		case r.inflight <- struct{}{}:
		case <-ctx.Done():
			err = ctx.Err()
			break dispatch
		}
		r.placedAt[i].Store(r.since(time.Now()))
		r.state[i].Store(stPlaced)
		r.placed.Add(1)
		upT[i%len(upT)].calls <- int32(i)
	}
	for _, bt := range upT {
		close(bt.calls)
	}
	wg.Wait()
	// Wait for every placed call to resolve; once a second, fail those
	// that timed out.
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for err == nil && r.up.Load()+r.failed.Load() < r.placed.Load() {
		select {
		case <-r.resolved:
		case now := <-tick.C:
			for i := range r.state {
				if r.state[i].Load() == stPlaced && now.Sub(r.start.Add(time.Duration(r.placedAt[i].Load()))) >= r.o.SetupTimeout {
					r.resolve(int32(i), stFailed, now, "session: setup timeout")
				}
			}
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	return err
}

// placer places the calls given to one tunnel.
func (bt *benchTunnel) placer() {
	r := bt.r
	for i := range bt.calls {
		r.placedAt[i].Store(r.since(time.Now()))
		info := tunnel.CallInfo{SerialNumber: uint32(i) + 1, CallingNumber: fmt.Sprint(i)}
		sid, err := bt.ep.PlaceCall(tunnel.Incoming, info)
		if err != nil {
			r.resolve(i, stFailed, time.Now(), "session: place call: "+errorClass(err))
			continue
		}
		bt.mu.Lock()
		if cause, gone := bt.orphan[sid]; gone {
			delete(bt.orphan, sid)
			bt.mu.Unlock()
			r.resolve(i, stFailed, time.Now(), cause)
			continue
		}
		bt.sids[sid] = i
		bt.mu.Unlock()
	}
}

// errorClass strips the tunnel/session numbers from an error for the
// failure table.
func errorClass(err error) string {
	switch {
	case errors.Is(err, tunnel.ErrNotEstablished):
		return "tunnel not established"
	}
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		return s[i+2:]
	}
	return s
}

func (bt *benchTunnel) updateStats() {
	if c := bt.ep.Core(); c != nil {
		st := c.ChannelStats()
		bt.retx.Store(st.Retransmitted)
		bt.sent.Store(st.Sent)
		bt.dups.Store(st.Duplicates)
	}
}

// endpoint.Handler (tunnel goroutines).

func (r *runner) AcceptTunnel(netip.AddrPort, string) (endpoint.TunnelSettings, *l2tp.ResultCode) {
	return endpoint.TunnelSettings{}, &l2tp.ResultCode{Result: l2tp.ResultStopNotAuthorized}
}

func (r *runner) PeerSecret(netip.AddrPort, string) []byte { return nil }

func (r *runner) AdmitCall(*endpoint.Tunnel, tunnel.Direction, *tunnel.CallInfo) *l2tp.ResultCode {
	return &l2tp.ResultCode{Result: l2tp.ResultCDNAdmin, Message: "l2tpbench places its own calls"}
}

func tunnelOf(t *endpoint.Tunnel) *benchTunnel {
	bt, _ := t.Settings().Opaque.(*benchTunnel)
	return bt
}

func (r *runner) TunnelUp(t *endpoint.Tunnel) {
	bt := tunnelOf(t)
	if bt == nil {
		return
	}
	lat := time.Since(bt.dialAt)
	r.mu.Lock()
	r.tunnelLat = append(r.tunnelLat, lat)
	r.mu.Unlock()
	bt.ok.Store(true)
	bt.once.Do(func() { close(bt.done) })
}

func (r *runner) TunnelDown(t *endpoint.Tunnel, ev tunnel.TunnelDown) {
	bt := tunnelOf(t)
	if bt == nil {
		return
	}
	bt.updateStats()
	if !r.closing.Load() {
		if bt.ok.Load() {
			r.fail("tunnel: down: " + ev.Reason)
		} else {
			r.fail(fmt.Sprintf("tunnel: refused: result %d error %d", ev.Result.Result, ev.Result.Error))
		}
	}
	bt.once.Do(func() { close(bt.done) })
}

func (r *runner) SessionUp(s *endpoint.Session) endpoint.Driver {
	bt := tunnelOf(s.T)
	i := int32(s.Info.SerialNumber) - 1
	if bt == nil || s.DP == nil || i < 0 || int(i) >= len(r.state) {
		return nil
	}
	user := fmt.Sprintf(r.o.UserFormat, int(i)%r.o.UserCount)
	now := time.Now()
	lac := r.env.NewLAC(now, pppsession.EndpointCall{S: s}, s.DP, pppsession.LACParams{
		Profile:  r.prof,
		Username: user,
		Password: r.o.Password,
		Auth:     r.methods,
		Info:     pppsession.SessionInfo(s),
		Log:      r.o.Log,
	})
	if ws, ok := s.DP.(*wireSession); ok {
		r.wires[i].Store(ws)
	}
	return &sessionDriver{LAC: lac, r: r, bt: bt, i: i}
}

func (r *runner) SessionDown(s *endpoint.Session, ev tunnel.SessionDown) {
	bt := tunnelOf(s.T)
	if bt == nil {
		return
	}
	bt.updateStats()
	bt.mu.Lock()
	i, ok := bt.sids[s.ID]
	delete(bt.sids, s.ID)
	cause := ""
	if ev.ByPeer {
		cause = fmt.Sprintf("session: CDN result %d error %d", ev.Result.Result, ev.Result.Error)
	} else {
		cause = "session: " + ev.Reason
	}
	if !ok {
		bt.orphan[s.ID] = cause
		bt.mu.Unlock()
		return
	}
	bt.mu.Unlock()
	r.wires[i].Store(nil)
	if !r.resolve(i, stFailed, time.Now(), cause) && r.state[i].Load() == stUp && !r.closing.Load() {
		r.dropped.Add(1)
		r.fail("dropped after up: " + cause)
	}
}

// sessionDriver wraps the LAC driver to see IPCP come up.
type sessionDriver struct {
	*pppsession.LAC
	r  *runner
	bt *benchTunnel
	i  int32
	up bool
}

func (d *sessionDriver) Frame(now time.Time, frame []byte) {
	d.LAC.Frame(now, frame)
	d.check(now)
}

func (d *sessionDriver) Tick(now time.Time) {
	d.LAC.Tick(now)
	d.check(now)
}

func (d *sessionDriver) check(now time.Time) {
	if !d.up && d.LAC.Address().IsValid() {
		d.up = true
		d.r.resolve(d.i, stUp, now, "")
		d.bt.updateStats()
	}
}

func (d *sessionDriver) Close(now time.Time, reason string) {
	d.LAC.Close(now, reason)
	if !d.up {
		d.r.resolve(d.i, stFailed, now, "ppp: "+d.LAC.Ended().String())
	}
}

// probeData sends DataPackets echo requests through every session that is
// up, paced at 20,000 packets per second, and counts the replies that come
// back within 3 s of the last.
func (r *runner) probeData(ctx context.Context) DataResult {
	var dr DataResult
	var ws []*wireSession
	for i := range r.wires {
		if w := r.wires[i].Load(); w != nil {
			ws = append(ws, w)
		}
	}
	before := uint64(0)
	for _, w := range ws {
		before += w.EchoReplies()
	}
	const pace = 20000
	t0 := time.Now()
	for k := 0; k < r.o.DataPackets; k++ {
		for _, w := range ws {
			if err := w.SendEcho(r.o.DataSize); err != nil {
				dr.SendErrors++
				continue
			}
			dr.Sent++
			if dr.Sent%1000 == 0 {
				if d := time.Until(t0.Add(time.Duration(dr.Sent) * time.Second / pace)); d > 0 {
					time.Sleep(d)
				}
			}
		}
	}
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		got := uint64(0)
		for _, w := range ws {
			got += w.EchoReplies()
		}
		dr.Received = got - before
		if dr.Received >= dr.Sent {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	dr.Wall = time.Since(t0)
	return dr
}

func (r *runner) sampleLoop(ctx context.Context, m *meter, base meterSample, res *Result) {
	tick := time.NewTicker(r.o.Interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		s := m.sample()
		var retx uint64
		r.mu.Lock()
		for _, bt := range r.tunnels {
			retx += bt.retx.Load()
		}
		r.mu.Unlock()
		smp := Sample{
			T:           time.Since(r.start),
			Placed:      r.placed.Load(),
			Up:          r.up.Load(),
			Failed:      r.failed.Load(),
			Dropped:     r.dropped.Load(),
			InFlight:    len(r.inflight),
			Retransmits: retx,
			SelfCPU:     s.self.CPU - base.self.CPU,
			TargetCPU:   s.target.CPU - base.target.CPU,
			TargetRSS:   s.target.RSS,
		}
		res.Series = append(res.Series, smp)
		if r.o.Progress != nil {
			r.o.Progress(smp)
		}
	}
}

// finish fills the result from the run's state.
func (r *runner) finish(res *Result, base, end meterSample) {
	res.Placed = int(r.placed.Load())
	res.Up = int(r.up.Load())
	res.Failed = int(r.failed.Load())
	res.Dropped = int(r.dropped.Load())
	r.mu.Lock()
	res.Failures = r.failures
	res.TunnelSetup = Summarize(r.tunnelLat)
	for _, bt := range r.tunnels {
		if bt.ok.Load() {
			res.TunnelsUp++
		}
		// Once more now that every tunnel goroutine has ended (Shutdown
		// waited for them): the StopCCN is counted after TunnelDown.
		bt.updateStats()
		res.Retransmits += bt.retx.Load()
		res.ControlSent += bt.sent.Load()
		res.Duplicates += bt.dups.Load()
	}
	r.mu.Unlock()
	res.Malformed = r.plane.Malformed()

	// Setup latencies in the order the calls were placed.
	type lat struct {
		placed int64
		d      time.Duration
	}
	var ls []lat
	firstPlaced := int64(-1)
	for i := range r.state {
		if r.state[i].Load() != stUp {
			continue
		}
		p := r.placedAt[i].Load()
		if firstPlaced < 0 || p < firstPlaced {
			firstPlaced = p
		}
		ls = append(ls, lat{p, time.Duration(r.upAt[i].Load() - p)})
	}
	sort.Slice(ls, func(a, b int) bool { return ls[a].placed < ls[b].placed })
	all := make([]time.Duration, len(ls))
	for k, l := range ls {
		all[k] = l.d
	}
	res.SessionSetup = Summarize(all)
	if n := min(1000, len(all)); n > 0 {
		res.FirstThousand = Summarize(all[:n])
		res.LastThousand = Summarize(all[len(all)-n:])
	}
	if res.Up > 0 && firstPlaced >= 0 {
		res.SetupSpan = time.Duration(r.lastUpNano.Load() - firstPlaced)
		if res.SetupSpan > 0 {
			res.SetupRate = float64(res.Up) / res.SetupSpan.Seconds()
		}
		ups := make([]int64, 0, len(ls))
		for i := range r.state {
			if r.state[i].Load() == stUp {
				ups = append(ups, r.upAt[i].Load())
			}
		}
		sort.Slice(ups, func(a, b int) bool { return ups[a] < ups[b] })
		k := max((len(ups)*99+99)/100, 1) // ceil(99%)
		if span := time.Duration(ups[k-1] - firstPlaced); span > 0 {
			res.SetupRate99 = float64(k) / span.Seconds()
		}
		res.SelfCPUPerSetup = res.Setup.Self / time.Duration(res.Up)
		if r.o.TargetPID > 0 {
			res.TargetCPUPerSetup = res.Setup.Target / time.Duration(res.Up)
			res.TargetSwitchesPerSetup = float64(res.Setup.TargetSwitches) / float64(res.Up)
			res.TargetPreemptionsPerSetup = float64(res.Setup.TargetPreemptions) / float64(res.Up)
			res.TargetFaultsPerSetup = float64(res.Setup.TargetFaults) / float64(res.Up)
		}
	}
	res.SelfCPU = end.self.CPU - base.self.CPU
	res.SelfRSS = end.self.RSS
	if r.o.TargetPID > 0 {
		res.TargetCPU = end.target.CPU - base.target.CPU
		res.TargetRSSBefore = base.target.RSS
		res.TargetRSSAfter = end.target.RSS
		for _, s := range res.Series {
			res.TargetRSSPeak = max(res.TargetRSSPeak, s.TargetRSS)
		}
		if res.TargetRSSHeld > 0 && res.SessionsAtEnd > 0 {
			res.TargetBytesPerSession = (res.TargetRSSHeld - base.target.RSS) / int64(res.SessionsAtEnd)
		}
		if res.Hold.Wall > 0 {
			res.TargetHoldCPUPercent = 100 * res.Hold.Target.Seconds() / res.Hold.Wall.Seconds()
		}
	}
}
