package main

import (
	"context"
	"maps"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/l2tpd/l2tpd/auth"
	"github.com/l2tpd/l2tpd/l2tp"
	"github.com/l2tpd/l2tpd/l2tp/endpoint"
	"github.com/l2tpd/l2tpd/l2tp/tunnel"
	"github.com/l2tpd/l2tpd/lns"
	"github.com/l2tpd/l2tpd/metrics"
	"github.com/l2tpd/l2tpd/mgmt"
	"github.com/l2tpd/l2tpd/pppsession"
)

// observer counts setups and failures for `l2tpctl show stats` and feeds
// the Prometheus registry. Its methods are called from tunnel goroutines
// and must stay cheap.
type observer struct {
	m *metrics.Registry

	tunnelSetups, sessionSetups atomic.Uint64
	// retransDead: retransmissions of tunnels that have ended;
	// retransReported: what the metrics counter has been given.
	retransDead atomic.Uint64

	mu              sync.Mutex
	tunnelFailures  map[string]uint64
	sessionFailures map[string]uint64
	pppFailures     map[string]uint64
	retransReported uint64
	upTunnels       map[*endpoint.Tunnel]struct{}
}

func newObserver(m *metrics.Registry) *observer {
	return &observer{m: m, tunnelFailures: map[string]uint64{}, sessionFailures: map[string]uint64{},
		pppFailures: map[string]uint64{}, upTunnels: map[*endpoint.Tunnel]struct{}{}}
}

func (o *observer) tunnelFailed(cause string) {
	o.mu.Lock()
	o.tunnelFailures[cause]++
	o.mu.Unlock()
	o.m.TunnelFailed(cause)
}

func (o *observer) sessionFailed(cause string) {
	o.mu.Lock()
	o.sessionFailures[cause]++
	o.mu.Unlock()
	o.m.SessionFailed(cause)
}

func (o *observer) pppFailed(proto string) {
	o.mu.Lock()
	o.pppFailures[proto]++
	o.mu.Unlock()
	o.m.PPPFailed(proto)
}

// stopCause names a StopCCN / refusal result with a fixed short word.
func stopCause(rc l2tp.ResultCode, byPeer bool, reason string) string {
	if byPeer {
		return "peer-stopccn"
	}
	switch rc.Result {
	case l2tp.ResultStopNotAuthorized:
		return "not-authorized"
	case l2tp.ResultStopShuttingDown:
		return "draining"
	case l2tp.ResultStopBadVersion:
		return "bad-version"
	case l2tp.ResultStopAlreadyExists:
		return "already-exists"
	case l2tp.ResultStopFSMError:
		return "fsm-error"
	case l2tp.ResultStopGeneralError:
		if rc.Error == l2tp.ErrCodeNoResources {
			return "limit"
		}
	}
	if strings.Contains(strings.ToLower(reason), "retransmi") || strings.Contains(strings.ToLower(reason), "timeout") {
		return "timeout"
	}
	return "error"
}

// cdnCause names a refused call with a fixed short word.
func cdnCause(rc *l2tp.ResultCode) string {
	switch {
	case rc.Error == l2tp.ErrCodeTryAnother:
		return "draining"
	case rc.Error == l2tp.ErrCodeNoResources:
		return "limit"
	}
	return "refused"
}

// handler wraps the LNS role to count tunnel and call setups.
type handler struct {
	endpoint.Handler
	o *observer
}

func (h handler) AcceptTunnel(from netip.AddrPort, host string) (endpoint.TunnelSettings, *l2tp.ResultCode) {
	s, rc := h.Handler.AcceptTunnel(from, host)
	if rc != nil {
		h.o.tunnelFailed(stopCause(*rc, false, rc.Message))
	}
	return s, rc
}

func (h handler) AdmitCall(t *endpoint.Tunnel, dir tunnel.Direction, info *tunnel.CallInfo) *l2tp.ResultCode {
	rc := h.Handler.AdmitCall(t, dir, info)
	// A held call (DeferCall) has not failed: it is asked about again
	// when a slot frees; if it never gets one it is counted as expired
	// among the held calls (lns.HeldStats).
	if rc != nil && rc != tunnel.DeferCall {
		h.o.sessionFailed(cdnCause(rc))
	}
	return rc
}

// abandonHandler is the LNS's hook for held calls that ended before
// admission (lns.LNS.CallAbandoned).
type abandonHandler interface {
	CallAbandoned(t *endpoint.Tunnel, ev tunnel.CallAbandoned)
}

// CallAbandoned passes the event on to the role: the embedded interface
// does not carry the LNS's optional methods.
func (h handler) CallAbandoned(t *endpoint.Tunnel, ev tunnel.CallAbandoned) {
	if a, ok := h.Handler.(abandonHandler); ok {
		a.CallAbandoned(t, ev)
	}
}

// SessionEstablished passes the event on to the role (the LNS counts a
// setup in flight until then: max_starting).
func (h handler) SessionEstablished(s *endpoint.Session) {
	if e, ok := h.Handler.(endpoint.SessionEstablishedHandler); ok {
		e.SessionEstablished(s)
	}
}

// heldCounts converts the LNS's counts of held calls for the metrics (and,
// with the same fields, the management API).
func heldCounts(h lns.HeldStats) metrics.HeldCalls {
	return metrics.HeldCalls{Total: h.Total, Admitted: h.Admitted, Expired: h.Expired, Ended: h.Ended,
		MaxWait: h.MaxWait, OldestWait: h.OldestWait}
}

func (h handler) TunnelUp(t *endpoint.Tunnel) {
	h.o.tunnelSetups.Add(1)
	h.o.m.TunnelUp()
	h.o.mu.Lock()
	h.o.upTunnels[t] = struct{}{}
	h.o.mu.Unlock()
	h.Handler.TunnelUp(t)
}

func (h handler) TunnelDown(t *endpoint.Tunnel, ev tunnel.TunnelDown) {
	h.o.retransDead.Add(t.Core().ChannelStats().Retransmitted)
	h.o.mu.Lock()
	_, up := h.o.upTunnels[t]
	delete(h.o.upTunnels, t)
	h.o.mu.Unlock()
	if !up {
		h.o.tunnelFailed(stopCause(ev.Result, ev.ByPeer, ev.Reason))
	}
	h.Handler.TunnelDown(t, ev)
}

func (h handler) SessionDown(s *endpoint.Session, ev tunnel.SessionDown) {
	if !ev.WasUp {
		h.o.sessionFailed("l2tp-setup")
	}
	h.Handler.SessionDown(s, ev)
}

// SessionUp implements pppsession.Events: PPP reached the network phase.
func (o *observer) SessionUp() {
	o.sessionSetups.Add(1)
	o.m.SessionUp()
}

// SessionEnded implements pppsession.Events.
func (o *observer) SessionEnded(k pppsession.EndKind, wasUp bool, m auth.Method) {
	if wasUp {
		return
	}
	o.sessionFailed(k.String())
	switch k {
	case pppsession.EndAuthFailed:
		if m == 0 {
			o.pppFailed("auth")
		} else {
			o.pppFailed(m.String())
		}
	case pppsession.EndNegotiation:
		o.pppFailed("negotiation")
	case pppsession.EndEchoTimeout:
		o.pppFailed("lcp")
	}
}

// retransmits returns every retransmission so far (ended tunnels plus
// the live ones in tis) and brings the metrics counter up to it.
func (o *observer) retransmits(tis []endpoint.TunnelInfo) uint64 {
	total := o.retransDead.Load()
	for i := range tis {
		total += tis[i].Control.Retransmitted
	}
	o.mu.Lock()
	if total > o.retransReported {
		o.m.Retransmitted(int(total - o.retransReported))
		o.retransReported = total
	}
	o.mu.Unlock()
	return total
}

func (o *observer) failures() (tunnels, sessions, ppp map[string]uint64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return maps.Clone(o.tunnelFailures), maps.Clone(o.sessionFailures), maps.Clone(o.pppFailures)
}

// radiusAuth wraps the RADIUS authenticator to time its requests: the
// client hides which server answered, so the label is the configured
// server list (see the report: a per-server hook belongs in auth/radius).
type radiusAuth struct {
	auth.Authenticator
	server string
	m      *metrics.Registry

	mu       sync.Mutex
	requests uint64
	accepts  uint64
	rejects  uint64
	timeouts uint64
	lat      [1024]time.Duration // ring of recent answered latencies
	nlat     int
}

func (r *radiusAuth) Authenticate(ctx context.Context, req *auth.Request) (*auth.Result, error) {
	start := time.Now()
	res, err := r.Authenticator.Authenticate(ctx, req)
	o := radiusOutcome(res, err)
	if err != nil && ctx.Err() != nil {
		o = metrics.RADIUSTimeout // the caller gave up
	}
	r.observe(o, time.Since(start))
	return res, err
}

func (r *radiusAuth) stats() mgmt.RADIUSServer {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := mgmt.RADIUSServer{Server: r.server, Kind: "auth", Requests: r.requests, Accepts: r.accepts, Rejects: r.rejects, Timeouts: r.timeouts}
	n := min(r.nlat, len(r.lat))
	if n == 0 {
		return s
	}
	l := make([]time.Duration, n)
	copy(l, r.lat[:n])
	var sum time.Duration
	for _, d := range l {
		sum += d
	}
	sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
	s.LatencyAvg = sum / time.Duration(n)
	s.LatencyP99 = l[(n*99)/100]
	return s
}

var _ abandonHandler = (*lns.LNS)(nil)
