package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/l2tpd/l2tpd/auth"
	"github.com/l2tpd/l2tpd/auth/radius"
	"github.com/l2tpd/l2tpd/config"
	"github.com/l2tpd/l2tpd/metrics"
	"github.com/l2tpd/l2tpd/pppsession"
)

// radiusRoles says what the [[radius.server]] entries are used for.
func radiusRoles(rc *config.RADIUS) (authn, acct bool) {
	for _, s := range rc.Servers {
		authn = authn || s.AuthPort != 0
		acct = acct || s.AcctPort != 0
	}
	return authn, acct
}

// daeHandler answers RADIUS Disconnect and CoA requests from the session
// registry: a Disconnect ends the matching sessions softly (LCP
// Terminate, CDN result 3, Stop with Acct-Terminate-Cause Admin-Reset).
type daeHandler struct{ reg *pppsession.Registry }

func daeSelector(m radius.Match) pppsession.Selector {
	return pppsession.Selector{AcctSessionID: m.AcctSessionID, User: m.UserName, Address: m.FramedIP, CallingNumber: m.CallingStationID}
}

// Disconnect implements radius.DAEHandler.
func (h daeHandler) Disconnect(m radius.Match) (int, error) {
	sel := daeSelector(m)
	if sel == (pppsession.Selector{}) {
		return 0, nil // never "every session"
	}
	return h.reg.Terminate(sel, pppsession.Termination{Kind: pppsession.EndAdminReset, Message: "RADIUS Disconnect-Request"}), nil
}

// CoA implements radius.DAEHandler.
func (h daeHandler) CoA(m radius.Match, c radius.Change) (int, error) {
	sel := daeSelector(m)
	if sel == (pppsession.Selector{}) {
		return 0, nil
	}
	return h.reg.Change(sel, pppsession.Change{SessionTimeout: c.SessionTimeout, IdleTimeout: c.IdleTimeout, InterimInterval: c.InterimInterval}), nil
}

// radiusService is the daemon's RADIUS side: the client (authenticator
// and accounter) and the DAE server, each possibly absent.
type radiusService struct {
	client *radius.Client // nil: no [[radius.server]]
	acct   bool           // the client does accounting
	dae    *radius.DAE
	log    *zap.Logger
}

// newRADIUS opens the RADIUS client when servers are configured.
func newRADIUS(cfg *config.Config, log *zap.Logger) (*radiusService, error) {
	s := &radiusService{log: log}
	if len(cfg.RADIUS.Servers) == 0 {
		return s, nil
	}
	c, err := radius.New(cfg.RADIUS, log)
	if err != nil {
		return nil, err
	}
	s.client = c
	authn, acct := radiusRoles(&cfg.RADIUS)
	s.acct = acct
	log.Info("radius client", zap.Int("servers", len(cfg.RADIUS.Servers)), zap.Bool("authentication", authn), zap.Bool("accounting", acct),
		zap.String("spool", cfg.RADIUS.SpoolDir), zap.Int("spooled", c.Pending()))
	return s, nil
}

// accountingOn sends Accounting-On in the background (a RADIUS outage
// must not hold the daemon's start).
func (s *radiusService) accountingOn() {
	if s.client == nil || !s.acct {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.client.AccountingOn(ctx); err != nil {
			s.log.Warn("radius Accounting-On not acknowledged", zap.Error(err))
			return
		}
		s.log.Info("radius Accounting-On acknowledged")
	}()
}

// startDAE listens for Disconnect/CoA requests when dae_listen is set.
func (s *radiusService) startDAE(cfg *config.Config, reg *pppsession.Registry) error {
	if !cfg.RADIUS.DAEListen.IsValid() {
		return nil
	}
	d, err := radius.NewDAE(cfg.RADIUS, daeHandler{reg}, s.log)
	if err != nil {
		return fmt.Errorf("radius dynamic authorization: %w", err)
	}
	s.dae = d
	s.log.Info("radius dynamic authorization listening", zap.Stringer("addr", d.Addr()), zap.Int("clients", len(cfg.RADIUS.DAEClients)))
	return nil
}

// stopDAE stops answering Disconnect/CoA (before the sessions end).
func (s *radiusService) stopDAE() {
	if s.dae != nil {
		s.dae.Close()
		s.dae = nil
	}
}

// close runs after every session's Stop was handed to the accounter:
// it gives the spool a bounded time to drain, sends Accounting-Off and
// closes the client. Records still unacknowledged stay in the spool for
// the next start.
func (s *radiusService) close(ctx context.Context) {
	s.stopDAE()
	if s.client == nil {
		return
	}
	defer s.client.Close()
	if !s.acct {
		return
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for s.client.Pending() > 0 {
		select {
		case <-ctx.Done():
			s.log.Warn("radius accounting records left in the spool for the next start", zap.Int("records", s.client.Pending()))
			return
		case <-tick.C:
		}
	}
	if err := s.client.AccountingOff(ctx); err != nil {
		s.log.Warn("radius Accounting-Off not acknowledged", zap.Error(err))
		return
	}
	s.log.Info("radius Accounting-Off acknowledged")
}

// AuthenticateAsync implements auth.AsyncAuthenticator (the RADIUS client
// answers without a goroutine per request); the request is timed and
// counted like Authenticate's.
func (r *radiusAuth) AuthenticateAsync(req *auth.Request, done func(*auth.Result, error)) (cancel func()) {
	start := time.Now()
	return auth.Async(r.Authenticator, req, func(res *auth.Result, err error) {
		r.observe(radiusOutcome(res, err), time.Since(start))
		done(res, err)
	})
}

// radiusOutcome classifies an authentication answer for the metrics: no
// server answered, or the caller gave up, is a timeout.
func radiusOutcome(res *auth.Result, err error) metrics.RADIUSOutcome {
	switch {
	case err != nil && (errors.Is(err, radius.ErrNoServer) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)):
		return metrics.RADIUSTimeout
	case err != nil:
		return metrics.RADIUSError
	case res == nil || !res.Accept:
		return metrics.RADIUSReject
	}
	return metrics.RADIUSAccept
}

// observe counts one answered request of outcome o that took d.
func (r *radiusAuth) observe(o metrics.RADIUSOutcome, d time.Duration) {
	if r.m != nil {
		r.m.RADIUS(r.server, "auth", o, d)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests++
	switch o {
	case metrics.RADIUSAccept:
		r.accepts++
	case metrics.RADIUSReject:
		r.rejects++
	case metrics.RADIUSTimeout:
		r.timeouts++
	}
	if o == metrics.RADIUSAccept || o == metrics.RADIUSReject {
		r.lat[r.nlat%len(r.lat)] = d
		r.nlat++
	}
}
