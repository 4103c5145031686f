// Command l2tpd is the L2TP access server: an LNS that accepts tunnels from
// LACs and a LAC that dials LNSes, with PPP and authentication in-process.
//
// Run time control: the management API (l2tpctl) on [api] socket, SIGHUP
// to reload the configuration, SIGTERM/SIGINT to stop, Prometheus metrics
// on [metrics] listen.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"os/user"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/l2tpd/l2tpd/auth/local"
	"github.com/l2tpd/l2tpd/config"
	"github.com/l2tpd/l2tpd/dataplane"
	"github.com/l2tpd/l2tpd/dataplane/kernel"
	"github.com/l2tpd/l2tpd/dataplane/userspace"
	"github.com/l2tpd/l2tpd/internal/gctune"
	"github.com/l2tpd/l2tpd/l2tp/endpoint"
	"github.com/l2tpd/l2tpd/lac"
	"github.com/l2tpd/l2tpd/lns"
	"github.com/l2tpd/l2tpd/metrics"
	"github.com/l2tpd/l2tpd/mgmt"
	"github.com/l2tpd/l2tpd/pool"
	"github.com/l2tpd/l2tpd/pppsession"
)

func main() {
	os.Exit(run())
}

// daemon is the running l2tpd: what the management API, the metrics and
// the signal handlers act on.
type daemon struct {
	path    string
	cfg     atomic.Pointer[config.Config]
	log     *zap.Logger
	level   zap.AtomicLevel
	tr      *tracer
	started time.Time

	plane dataplane.Plane
	ep    *endpoint.Endpoint
	role  *lns.LNS
	env   *pppsession.Env
	authn *local.Authenticator
	pools *pool.Set
	rad   *radiusService
	radA  *radiusAuth // nil without RADIUS authentication
	m     *metrics.Registry
	obs   *observer

	// defaultProcs is the runtime's GOMAXPROCS at start, before
	// threads changed it (what threads = 0 gives back at a reload).
	defaultProcs int
	// reloadMu serialises reloads (l2tpctl and SIGHUP).
	reloadMu sync.Mutex
	reloaded atomic.Pointer[time.Time]

	shuttingDown atomic.Bool
	// softMu guards softCancel: it stops a pending shutdown --soft.
	softMu     sync.Mutex
	softCancel context.CancelFunc
	// exit receives the reason to stop (shutdown requests).
	exit     chan string
	exitOnce sync.Once
}

func run() int {
	configPath := flag.String("config", "/etc/l2tpd/l2tpd.toml", "configuration file")
	check := flag.Bool("check-config", false, "validate the configuration, print it fully resolved, and exit")
	logLevel := flag.String("log-level", "", "override log_level (debug, info, warn, error)")
	debugListen := flag.String("debug-listen", "", "serve Go runtime profiles (/debug/pprof/) on this address, e.g. 127.0.0.1:6060 (off by default)")
	flag.Parse()

	cfg, err := config.Load(*configPath)
	if err != nil {
		fmt.Fprintf(os.Stderr, "l2tpd: %v\n", err)
		return 2
	}
	if *check {
		fmt.Print(cfg.Dump())
		return 0
	}
	d := &daemon{path: *configPath, started: time.Now(), exit: make(chan string, 1), tr: newTracer(time.Now),
		defaultProcs: runtime.GOMAXPROCS(0)}
	d.cfg.Store(cfg)
	d.log, d.level, err = newLogger(cfg, *logLevel, d.tr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "l2tpd: %v\n", err)
		return 2
	}
	log := d.log
	defer log.Sync()
	log.Debug("garbage collector", zap.Int("gc_percent", gctune.Apply(defaultGCPercent, os.Getenv)))
	if *debugListen != "" {
		srv, err := startDebug(*debugListen, log)
		if err != nil {
			log.Error("cannot start", zap.Error(err))
			return 2
		}
		defer srv.Close()
	}

	d.plane, err = choosePlane(cfg, log)
	if err != nil {
		log.Error("no data path", zap.Error(err))
		return 1
	}
	threads, threadsWhy := applyThreads(cfg, d.defaultProcs, os.Getenv)
	log.Info("threads running the daemon's code (GOMAXPROCS)", zap.Int("threads", threads), zap.String("why", threadsWhy))
	defer closePlane(log, d.plane)

	d.m = metrics.New()
	d.obs = newObserver(d.m)
	d.rad, err = newRADIUS(cfg, log)
	if err != nil {
		log.Error("cannot start", zap.Error(err))
		return 1
	}
	if err := d.newSessionEnv(cfg); err != nil {
		d.rad.close(context.Background())
		log.Error("cannot start", zap.Error(err))
		return 1
	}
	d.role = lns.New(cfg, log, d.env.LNSFactory())
	d.ep, err = endpoint.New(endpoint.Config{
		Listen:  cfg.Listen,
		Plane:   d.plane,
		Handler: handler{Handler: d.role, o: d.obs},
		Logger:  log,
	})
	if err != nil {
		d.rad.close(context.Background())
		log.Error("cannot start", zap.Error(err))
		return 1
	}
	d.rad.accountingOn()
	if err := d.rad.startDAE(cfg, d.env.Sessions()); err != nil {
		log.Error("cannot start", zap.Error(err))
		d.ep.Shutdown(context.Background())
		d.rad.close(context.Background())
		return 1
	}
	for _, a := range d.ep.ListenAddrs() {
		log.Info("listening for L2TP", zap.Stringer("addr", a))
	}
	d.m.SetSnapshot(d.snapshot)
	stopHTTP, err := d.serveMetrics(cfg)
	if err != nil {
		log.Error("cannot start", zap.Error(err))
		d.ep.Shutdown(context.Background())
		d.rad.close(context.Background())
		return 1
	}
	defer stopHTTP()
	stopAPI := d.serveAPI(cfg)
	defer stopAPI()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for i := range cfg.LACs {
		lac.Start(ctx, d.ep, &cfg.LACs[i], log, d.env.LACFactory())
	}
	log.Info("l2tpd started", zap.String("config", cfg.File), zap.String("dataplane", d.plane.Name()))

	sig := make(chan os.Signal, 4)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	why := ""
	for why == "" {
		select {
		case s := <-sig:
			if s == syscall.SIGHUP {
				if res, err := d.reload(); err != nil {
					log.Error("reload on SIGHUP refused; the running configuration stays", zap.Error(err))
				} else {
					log.Info("reloaded on SIGHUP", zap.String("config", res.Config), zap.Strings("changes", res.Changes))
				}
				continue
			}
			why = "signal " + s.String()
		case why = <-d.exit:
		}
	}
	d.shuttingDown.Store(true)
	// The API keeps answering (show stats: shutting_down) while sessions
	// end; it closes last.
	shutdown(log, why, cancel, d.role, d.plane, d.ep, d.env, d.rad)
	stopAPI()
	log.Info("l2tpd stopped")
	return 0
}

// requestExit makes the main loop stop the daemon (once).
func (d *daemon) requestExit(why string) {
	d.exitOnce.Do(func() { d.exit <- why })
}

// serveAPI opens the management socket. A socket that cannot be opened
// (another l2tpd answering on it, a bad group) is logged and the daemon
// runs without its API: subscribers matter more than l2tpctl.
func (d *daemon) serveAPI(cfg *config.Config) (stop func()) {
	if cfg.API.Socket == "" {
		d.log.Info("management API off ([api] socket = \"\")")
		return func() {}
	}
	o := mgmt.ListenOptions{Mode: cfg.API.SocketMode, GID: -1}
	if g := cfg.API.SocketGroup; g != "" {
		gr, err := user.LookupGroup(g)
		if err != nil {
			d.log.Warn("management API off: [api] socket_group", zap.String("group", g), zap.Error(err))
			return func() {}
		}
		o.GID, _ = strconv.Atoi(gr.Gid)
	}
	ln, err := mgmt.Listen(cfg.API.Socket, o)
	if err != nil {
		// A warning, not an error: the daemon serves subscribers without
		// it, and several daemons on one host (tests, a LAC next to an
		// LNS) commonly share the default path.
		d.log.Warn("management API off", zap.Error(err))
		return func() {}
	}
	srv := mgmt.NewServer(d)
	srv.ErrorLog = func(err error) { d.log.Warn("management API", zap.Error(err)) }
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil {
			d.log.Error("management API stopped", zap.Error(err))
		}
	}()
	d.log.Info("management API listening", zap.String("socket", cfg.API.Socket), zap.Stringer("mode", cfg.API.SocketMode))
	var once sync.Once
	return func() {
		once.Do(func() {
			srv.Close()
			<-done
		})
	}
}

// serveMetrics starts the Prometheus endpoint when [metrics] listen is set.
func (d *daemon) serveMetrics(cfg *config.Config) (stop func(), err error) {
	if !cfg.Metrics.Listen.IsValid() {
		return func() {}, nil
	}
	ln, err := net.Listen("tcp", cfg.Metrics.Listen.String())
	if err != nil {
		return nil, fmt.Errorf("metrics endpoint [metrics] listen %s: %w", cfg.Metrics.Listen, err)
	}
	mux := http.NewServeMux()
	mux.Handle(cfg.Metrics.Path, d.m.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Error("metrics endpoint stopped", zap.Error(err))
		}
	}()
	d.log.Info("metrics listening", zap.Stringer("addr", ln.Addr()), zap.String("path", cfg.Metrics.Path))
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}, nil
}

// shutdown ends every session so that each gets its accounting Stop
// (Acct-Terminate-Cause Admin-Reboot) before the process exits: LCP
// Terminate and CDN first, for up to 3 s; then StopCCN to every peer,
// which closes what is left; then the accounting spool gets up to 5 s to
// drain before Accounting-Off. Unsent records stay in the spool on disk.
// From the start the LNS refuses new tunnels and calls, as when drained:
// a LAC that re-places the calls the shutdown ends must not get them set
// up in the kernel only to have them torn down again.
//
// The kernel data path keeps the interfaces of the sessions that end until
// it closes, and removes them all in one request then
// (dataplane.RemovalDeferrer): one by one, each waits for the kernel's RCU
// grace periods, which made a large shutdown slow.
func shutdown(log *zap.Logger, why string, cancel context.CancelFunc, role *lns.LNS, plane dataplane.Plane, ep *endpoint.Endpoint, env *pppsession.Env, rad *radiusService) {
	env.ShuttingDown()
	role.SetDraining(true)
	if d, ok := plane.(dataplane.RemovalDeferrer); ok {
		d.DeferRemoval()
	}
	rad.stopDAE()
	cancel() // no more LAC dialling
	n := env.Sessions().Terminate(pppsession.Selector{}, pppsession.Termination{Kind: pppsession.EndShutdown, Message: "daemon shutting down"})
	log.Info("stopping: ending every subscriber session, then telling every peer (StopCCN)", zap.String("why", why), zap.Int("sessions", n))
	tctx, tcancel := context.WithTimeout(context.Background(), 3*time.Second)
	if err := env.Sessions().WaitEmpty(tctx); err != nil {
		log.Info("sessions still ending: closing their tunnels", zap.Int("sessions", env.Sessions().Len()))
	}
	tcancel()
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	ep.Shutdown(sctx)
	scancel()
	actx, acancel := context.WithTimeout(context.Background(), 5*time.Second)
	rad.close(actx)
	acancel()
}

// closePlane closes the data path at exit and logs how the kernel one
// removed the interfaces the shutdown left to it.
func closePlane(log *zap.Logger, plane dataplane.Plane) {
	start := time.Now()
	err := plane.Close()
	if err != nil {
		log.Warn("closing the data path", zap.String("dataplane", plane.Name()), zap.Error(err))
	}
	kp, ok := plane.(*kernel.Plane)
	if !ok {
		return
	}
	switch r := kp.LastRemoval(); {
	case r.Units == 0:
	case r.Err != nil:
		log.Warn("subscriber interfaces removed one by one, not in one request", zap.Int("interfaces", r.Units), zap.Error(r.Err),
			zap.Duration("took", time.Since(start)))
	default:
		log.Info("subscriber interfaces removed in one request", zap.Int("interfaces", r.Grouped), zap.Duration("took", time.Since(start)))
	}
}

// choosePlane picks the data path: kernel when asked or when `auto` finds
// the kernel able, userspace otherwise.
func choosePlane(cfg *config.Config, log *zap.Logger) (dataplane.Plane, error) {
	switch cfg.DataPlane {
	case config.DataPlaneUserspace:
		log.Info("data path: userspace (dataplane = \"userspace\")")
		return userspace.New(userspaceConfig(cfg)), nil
	case config.DataPlaneKernel:
		if err := kernel.Probe(); err != nil {
			return nil, fmt.Errorf("dataplane = \"kernel\": %w", err)
		}
		return newKernelPlane(log, cfg)
	}
	if err := kernel.Probe(); err != nil {
		log.Info("data path: userspace, because the kernel cannot do L2TP/PPP here", zap.Error(err))
		return userspace.New(userspaceConfig(cfg)), nil
	}
	p, err := newKernelPlane(log, cfg)
	if err != nil {
		if errors.Is(err, dataplane.ErrUnsupported) {
			log.Info("data path: userspace", zap.Error(err))
			return userspace.New(userspaceConfig(cfg)), nil
		}
		return nil, err
	}
	log.Info("data path: kernel (auto: L2TP and PPP modules present)")
	return p, nil
}

// userspaceConfig routes every pool's prefixes to the TUN device once (no
// route per subscriber). Pools added by a reload get per-session routes.
func userspaceConfig(cfg *config.Config) userspace.Config {
	var c userspace.Config
	for _, p := range cfg.Pools {
		for _, r := range p.Ranges {
			c.PoolPrefixes = append(c.PoolPrefixes, userspace.RangePrefixes(r.From, r.To)...)
		}
	}
	return c
}

func newKernelPlane(log *zap.Logger, cfg *config.Config) (dataplane.Plane, error) {
	p, err := kernel.Dial(kernel.Options{OnRemoveError: func(session string, err error) {
		// Close returned long before: the removal runs on a worker.
		log.Warn("removing a closed session from the kernel: some of its objects may remain until l2tpd restarts (it removes its stale tunnels at start)",
			zap.String("session", session), zap.Error(err))
	}})
	if err != nil {
		return nil, fmt.Errorf("kernel data path: %w", err)
	}
	// Tunnels a previous run of ours left in the kernel (it recorded their
	// IDs); other daemons' tunnels are never touched.
	if ids, err := p.Cleanup(); err != nil {
		log.Warn("removing stale kernel tunnels of a previous run", zap.Error(err))
	} else if len(ids) > 0 {
		log.Info("removed stale kernel tunnels of a previous run", zap.Uint32s("tunnels", ids))
	}
	if max := cfg.L2TP.MaxSessions; max > 0 {
		if err := kernel.FDBudget(max); err != nil {
			log.Error("file descriptor limit too low for l2tp.max_sessions", zap.Int("max_sessions", max), zap.Error(err))
		}
	}
	return p, nil
}
