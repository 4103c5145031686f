// Command l2tpd is the L2TP access server: an LNS that accepts tunnels from
// LACs and a LAC that dials LNSes, with PPP and authentication in-process.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/l2tpd/l2tpd/config"
	"github.com/l2tpd/l2tpd/dataplane"
	"github.com/l2tpd/l2tpd/dataplane/kernel"
	"github.com/l2tpd/l2tpd/dataplane/userspace"
	"github.com/l2tpd/l2tpd/l2tp/endpoint"
	"github.com/l2tpd/l2tpd/lac"
	"github.com/l2tpd/l2tpd/lns"
	"github.com/l2tpd/l2tpd/pppsession"
)

func main() {
	os.Exit(run())
}

func run() int {
	configPath := flag.String("config", "/etc/l2tpd/l2tpd.toml", "configuration file")
	check := flag.Bool("check-config", false, "validate the configuration, print it fully resolved, and exit")
	logLevel := flag.String("log-level", "", "override log_level (debug, info, warn, error)")
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
	log, err := newLogger(cfg, *logLevel)
	if err != nil {
		fmt.Fprintf(os.Stderr, "l2tpd: %v\n", err)
		return 2
	}
	defer log.Sync()

	plane, err := choosePlane(cfg, log)
	if err != nil {
		log.Error("no data path", zap.Error(err))
		return 1
	}
	defer plane.Close()

	rad, err := newRADIUS(cfg, log)
	if err != nil {
		log.Error("cannot start", zap.Error(err))
		return 1
	}
	env, err := newSessionEnv(cfg, log, rad)
	if err != nil {
		rad.close(context.Background())
		log.Error("cannot start", zap.Error(err))
		return 1
	}
	role := lns.New(cfg, log, env.LNSFactory())
	ep, err := endpoint.New(endpoint.Config{
		Listen:  cfg.Listen,
		Plane:   plane,
		Handler: role,
		Logger:  log,
	})
	if err != nil {
		rad.close(context.Background())
		log.Error("cannot start", zap.Error(err))
		return 1
	}
	rad.accountingOn()
	if err := rad.startDAE(cfg, env.Sessions()); err != nil {
		log.Error("cannot start", zap.Error(err))
		ep.Shutdown(context.Background())
		rad.close(context.Background())
		return 1
	}
	for _, a := range ep.ListenAddrs() {
		log.Info("listening for L2TP", zap.Stringer("addr", a))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for i := range cfg.LACs {
		lac.Start(ctx, ep, &cfg.LACs[i], log, env.LACFactory())
	}
	log.Info("l2tpd started", zap.String("config", cfg.File), zap.String("dataplane", plane.Name()))

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	s := <-sig
	shutdown(log, s, cancel, ep, env, rad)
	log.Info("l2tpd stopped")
	return 0
}

// shutdown ends every session so that each gets its accounting Stop
// (Acct-Terminate-Cause Admin-Reboot) before the process exits: LCP
// Terminate and CDN first, for up to 3 s; then StopCCN to every peer,
// which closes what is left; then the accounting spool gets up to 5 s to
// drain before Accounting-Off. Unsent records stay in the spool on disk.
func shutdown(log *zap.Logger, s os.Signal, cancel context.CancelFunc, ep *endpoint.Endpoint, env *pppsession.Env, rad *radiusService) {
	env.ShuttingDown()
	rad.stopDAE()
	cancel() // no more LAC dialling
	n := env.Sessions().Terminate(pppsession.Selector{}, pppsession.Termination{Kind: pppsession.EndShutdown, Message: "daemon shutting down"})
	log.Info("stopping: ending every subscriber session, then telling every peer (StopCCN)", zap.Stringer("signal", s), zap.Int("sessions", n))
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

func newLogger(cfg *config.Config, override string) (*zap.Logger, error) {
	level := zapcore.InfoLevel
	name := cfg.LogLevel.String()
	if override != "" {
		name = override
	}
	if err := level.UnmarshalText([]byte(name)); err != nil {
		return nil, fmt.Errorf("log level %q: %w", name, err)
	}
	var zc zap.Config
	if cfg.LogFormat.String() == "json" {
		zc = zap.NewProductionConfig()
	} else {
		zc = zap.NewDevelopmentConfig()
		zc.DisableStacktrace = true
		zc.EncoderConfig.EncodeLevel = zapcore.CapitalLevelEncoder
	}
	zc.Level = zap.NewAtomicLevelAt(level)
	zc.OutputPaths = []string{"stderr"}
	return zc.Build()
}

// choosePlane picks the data path: kernel when asked or when `auto` finds
// the kernel able, userspace otherwise.
func choosePlane(cfg *config.Config, log *zap.Logger) (dataplane.Plane, error) {
	switch cfg.DataPlane {
	case config.DataPlaneUserspace:
		log.Info("data path: userspace (dataplane = \"userspace\")")
		return userspace.New(userspace.Config{}), nil
	case config.DataPlaneKernel:
		if err := kernel.Probe(); err != nil {
			return nil, fmt.Errorf("dataplane = \"kernel\": %w", err)
		}
		return newKernelPlane(log)
	}
	if err := kernel.Probe(); err != nil {
		log.Info("data path: userspace, because the kernel cannot do L2TP/PPP here", zap.Error(err))
		return userspace.New(userspace.Config{}), nil
	}
	p, err := newKernelPlane(log)
	if err != nil {
		if errors.Is(err, dataplane.ErrUnsupported) {
			log.Info("data path: userspace", zap.Error(err))
			return userspace.New(userspace.Config{}), nil
		}
		return nil, err
	}
	log.Info("data path: kernel (auto: L2TP and PPP modules present)")
	return p, nil
}

func newKernelPlane(log *zap.Logger) (dataplane.Plane, error) {
	p, err := kernel.Dial(kernel.Options{})
	if err != nil {
		return nil, fmt.Errorf("kernel data path: %w", err)
	}
	return p, nil
}
