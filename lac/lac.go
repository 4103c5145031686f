// Package lac is the LAC role: it dials the configured LNSes ([[lac]]),
// keeps the configured number of calls up on each tunnel, and redials with
// jittered exponential backoff when a tunnel drops.
package lac

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/l2tpd/l2tpd/config"
	"github.com/l2tpd/l2tpd/internal/tunnelcfg"
	"github.com/l2tpd/l2tpd/l2tp"
	"github.com/l2tpd/l2tpd/l2tp/endpoint"
	"github.com/l2tpd/l2tpd/l2tp/tunnel"
)

// DriverFactory creates what runs over an established call (PPP as the
// authenticated peer).
type DriverFactory func(s *endpoint.Session, lac *config.LAC) endpoint.Driver

// Dialer keeps one configured LAC tunnel (and its calls) up.
type Dialer struct {
	ep      *endpoint.Endpoint
	cfg     *config.LAC
	log     *zap.Logger
	drivers DriverFactory

	// signals from tunnel goroutines (never block them)
	up       chan struct{}
	down     chan struct{}
	callGone chan struct{}
	active   atomic.Int32 // calls placed and not yet ended
	// failed counts the calls that ended without staying up for
	// StableUptime since the dialer last looked (callGone).
	failed atomic.Int32

	// now and after are the clock and the timer of call replacement
	// (tests replace them).
	now   func() time.Time
	after func(time.Duration) <-chan time.Time

	mu      sync.Mutex
	current *endpoint.Tunnel
	upAt    map[uint32]time.Time // established calls by session ID: when
}

// Start launches the dialer; it stops when ctx is done.
func Start(ctx context.Context, ep *endpoint.Endpoint, cfg *config.LAC, log *zap.Logger, drivers DriverFactory) *Dialer {
	d := newDialer(ep, cfg, log, drivers)
	go d.run(ctx)
	return d
}

func newDialer(ep *endpoint.Endpoint, cfg *config.LAC, log *zap.Logger, drivers DriverFactory) *Dialer {
	return &Dialer{
		ep: ep, cfg: cfg, drivers: drivers,
		log:      log.With(zap.String("lac", cfg.Name), zap.String("lns", cfg.LNS)),
		up:       make(chan struct{}, 1),
		down:     make(chan struct{}, 1),
		callGone: make(chan struct{}, 1),
		now:      time.Now,
		after:    time.After,
		upAt:     make(map[uint32]time.Time),
	}
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// Tunnel is the current tunnel (nil between attempts).
func (d *Dialer) Tunnel() *endpoint.Tunnel {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.current
}

func (d *Dialer) resolve() (netip.AddrPort, error) {
	ua, err := net.ResolveUDPAddr("udp", d.cfg.LNS)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("lac %q: resolving lns %q: %w", d.cfg.Name, d.cfg.LNS, err)
	}
	ap := ua.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}

func (d *Dialer) run(ctx context.Context) {
	backoff := time.Duration(0)
	for {
		upFor, err := d.attempt(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			d.log.Warn("dialling the LNS failed", zap.Error(err))
		}
		if !d.cfg.Redial {
			d.log.Info("not redialling (redial = false)")
			return
		}
		backoff = nextBackoff(backoff, d.cfg.RedialMin, d.cfg.RedialMax, upFor)
		wait := backoff/2 + time.Duration(rand.Int64N(int64(backoff)/2+1))
		d.log.Info("redialling", zap.Duration("in", wait))
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		}
	}
}

// StableUptime is how long a tunnel must stay up before a drop restarts the
// redial backoff from redial_min: an LNS that accepts and then drops the
// tunnel at once must not be redialled at the minimum interval forever.
const StableUptime = 30 * time.Second

// nextBackoff is the redial delay after an attempt whose tunnel stayed up
// for upFor (0: never up): doubled from the last one, between lo and hi,
// back to lo after a stable tunnel.
func nextBackoff(last, lo, hi, upFor time.Duration) time.Duration {
	lo = max(lo, 100*time.Millisecond)
	hi = max(hi, lo)
	if upFor >= StableUptime || last == 0 {
		return lo
	}
	return min(max(last*2, lo), hi)
}

// attempt dials once and keeps the calls up until the tunnel goes down.
func (d *Dialer) attempt(ctx context.Context) (upFor time.Duration, err error) {
	peer, err := d.resolve()
	if err != nil {
		return 0, err
	}
	var local netip.AddrPort
	if d.cfg.Local.IsValid() {
		local = netip.AddrPortFrom(d.cfg.Local, 0)
	}
	settings := tunnelcfg.Settings(&d.cfg.L2TP, d.cfg.Name)
	settings.Handler = d
	// drain stale signals from a previous attempt
	for _, c := range []chan struct{}{d.up, d.down, d.callGone} {
		select {
		case <-c:
		default:
		}
	}
	d.active.Store(0)
	t, err := d.ep.Dial(peer, local, settings)
	if err != nil {
		return 0, err
	}
	d.mu.Lock()
	d.current = t
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		d.current = nil
		d.mu.Unlock()
	}()
	select {
	case <-d.up:
	case <-d.down:
		return 0, nil
	case <-ctx.Done():
		return 0, nil
	}
	upSince := time.Now()
	failures := 0
	for {
		for int(d.active.Load()) < d.cfg.Sessions {
			if _, err := t.PlaceCall(tunnel.Incoming, tunnel.CallInfo{CallingNumber: d.cfg.Name}); err != nil {
				d.log.Warn("placing a call", zap.Error(err))
				break
			}
			d.active.Add(1)
		}
		select {
		case <-d.down:
			return time.Since(upSince), nil
		case <-ctx.Done():
			return time.Since(upSince), nil
		case <-d.callGone:
			// A call ended: replace it. Calls that fail (refused, or
			// ended before StableUptime) slow the replacements down
			// after the third in a row; one that stayed up ends the run.
			n := int(d.failed.Swap(0))
			if n == 0 {
				failures = 0
				continue
			}
			failures += n
			if failures > 3 {
				select {
				case <-d.down:
					return time.Since(upSince), nil
				case <-ctx.Done():
					return time.Since(upSince), nil
				case <-d.after(min(time.Duration(failures)*time.Second, d.cfg.RedialMax)):
				}
			}
		}
	}
}

// PeerSecret implements endpoint.Handler (never asked for dialled tunnels).
func (d *Dialer) PeerSecret(netip.AddrPort, string) []byte { return nil }

// AcceptTunnel implements endpoint.Handler (never asked for dialled tunnels).
func (d *Dialer) AcceptTunnel(netip.AddrPort, string) (endpoint.TunnelSettings, *l2tp.ResultCode) {
	return endpoint.TunnelSettings{}, &l2tp.ResultCode{Result: l2tp.ResultStopNotAuthorized}
}

// AdmitCall implements endpoint.Handler: an OCRQ from the LNS is answered
// (our bearer is virtual).
func (d *Dialer) AdmitCall(*endpoint.Tunnel, tunnel.Direction, *tunnel.CallInfo) *l2tp.ResultCode {
	d.active.Add(1)
	return nil
}

// TunnelUp implements endpoint.Handler.
func (d *Dialer) TunnelUp(*endpoint.Tunnel) { signal(d.up) }

// TunnelDown implements endpoint.Handler.
func (d *Dialer) TunnelDown(*endpoint.Tunnel, tunnel.TunnelDown) { signal(d.down) }

// SessionUp implements endpoint.Handler.
func (d *Dialer) SessionUp(s *endpoint.Session) endpoint.Driver {
	d.mu.Lock()
	d.upAt[s.ID] = d.now()
	d.mu.Unlock()
	if d.drivers == nil {
		return nil
	}
	return d.drivers(s, d.cfg)
}

// SessionDown implements endpoint.Handler.
func (d *Dialer) SessionDown(s *endpoint.Session, ev tunnel.SessionDown) {
	d.mu.Lock()
	at, ok := d.upAt[s.ID]
	delete(d.upAt, s.ID)
	d.mu.Unlock()
	if !ev.WasUp || !ok || d.now().Sub(at) < StableUptime {
		d.failed.Add(1)
	}
	d.active.Add(-1)
	signal(d.callGone)
}
