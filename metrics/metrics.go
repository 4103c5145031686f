// Package metrics is l2tpd's Prometheus instrumentation: a Registry the
// daemon feeds (events as they happen, gauges pulled at scrape time from
// a snapshot function) and an HTTP handler that serves it. Every metric is
// documented in docs/metrics.md.
//
// Label values are bounded sets: states, causes and PPP protocols are the
// daemon's enum names; RADIUS servers are the configured ones. No label
// ever carries a user name, address or session ID.
package metrics

import (
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Namespace prefixes every metric name.
const Namespace = "l2tpd"

// RADIUSOutcome is how one RADIUS request ended.
type RADIUSOutcome uint8

const (
	RADIUSAccept  RADIUSOutcome = iota // Access-Accept / Accounting-Response
	RADIUSReject                       // Access-Reject
	RADIUSTimeout                      // no answer after every retry
	RADIUSError                        // bad authenticator, malformed, send error
)

func (o RADIUSOutcome) String() string {
	switch o {
	case RADIUSAccept:
		return "accept"
	case RADIUSReject:
		return "reject"
	case RADIUSTimeout:
		return "timeout"
	case RADIUSError:
		return "error"
	}
	return "unknown"
}

// Snapshot is what the daemon reports at scrape time: counts it already
// keeps, read under its own locks. Maps may be nil.
type Snapshot struct {
	TunnelsByState  map[string]int
	SessionsByState map[string]int
	Pools           []PoolUsage
	AcctSpoolDepth  int
	Draining        bool
	// InternalErrors: recovered panics since the start (a session or
	// tunnel ended by a bug in this daemon; see the error log's stack).
	InternalErrors uint64
	// Held: incoming calls held for a max_starting slot. The number held
	// now is SessionsByState["held"].
	Held HeldCalls
	// RADIUS: the RADIUS client's counts (zero without RADIUS).
	RADIUS RADIUSCounts
}

// RADIUSCounts are the RADIUS client's counts since the start, all
// servers together.
type RADIUSCounts struct {
	Retransmissions   uint64 // requests sent again to the same server after its timeout
	RepliesUnexpected uint64 // replies dropped: no request waits for their Identifier (late or duplicate)
	RepliesInvalid    uint64 // replies dropped: failed verification (wrong secret, forged or corrupt)
}

// HeldCalls counts the incoming calls held for a max_starting slot since
// the start (ICRQ acknowledged, answered when a slot frees or refused
// with CDN result 4 after max_starting_wait).
type HeldCalls struct {
	Total    uint64 // ever held
	Admitted uint64 // admitted after being held
	Expired  uint64 // refused once max_starting_wait ran out (CDN result 4)
	Ended    uint64 // ended otherwise before admission (LAC's CDN, tunnel down, refused when retried)
	// MaxWait: the longest wait of a call before its admission;
	// OldestWait: how long the oldest call held now has waited.
	MaxWait, OldestWait time.Duration
}

// PoolUsage is one address pool's occupancy.
type PoolUsage struct {
	Name       string
	Size, Used int
}

// Registry holds l2tpd's metrics. Its methods are safe for concurrent use
// and cheap (no allocation on the hot path once a label set exists).
type Registry struct {
	reg *prometheus.Registry

	tunnelSetups    prometheus.Counter
	tunnelFailures  *prometheus.CounterVec
	sessionSetups   prometheus.Counter
	sessionFailures *prometheus.CounterVec
	retransmits     prometheus.Counter
	pppFailures     *prometheus.CounterVec
	radiusRequests  *prometheus.CounterVec
	radiusLatency   *prometheus.HistogramVec
	reloads         *prometheus.CounterVec

	mu       sync.Mutex
	snapshot func() Snapshot
}

// New returns a registry with every l2tpd metric and the Go runtime and
// process collectors.
func New() *Registry {
	r := &Registry{reg: prometheus.NewRegistry()}
	f := func(name, help string) prometheus.CounterOpts {
		return prometheus.CounterOpts{Namespace: Namespace, Name: name, Help: help}
	}
	r.tunnelSetups = prometheus.NewCounter(f("tunnel_setups_total", "Tunnels that reached the established state."))
	r.tunnelFailures = prometheus.NewCounterVec(f("tunnel_failures_total", "Tunnels that failed to establish or were torn down abnormally, by cause."), []string{"cause"})
	r.sessionSetups = prometheus.NewCounter(f("session_setups_total", "Sessions that completed L2TP and PPP setup (network protocol up)."))
	r.sessionFailures = prometheus.NewCounterVec(f("session_failures_total", "Session setups that failed, by cause."), []string{"cause"})
	r.retransmits = prometheus.NewCounter(f("control_retransmissions_total", "Control messages retransmitted on any tunnel."))
	r.pppFailures = prometheus.NewCounterVec(f("ppp_negotiation_failures_total", "PPP negotiations that failed, by protocol (lcp, pap, chap, mschapv2, ipcp, ipv6cp)."), []string{"protocol"})
	r.radiusRequests = prometheus.NewCounterVec(f("radius_requests_total", "RADIUS requests by server, kind (auth, acct) and outcome (accept, reject, timeout, error)."), []string{"server", "kind", "outcome"})
	r.radiusLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: Namespace, Name: "radius_request_duration_seconds",
		Help:    "Time from sending a RADIUS request to its answer (answered requests only), by server and kind.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	}, []string{"server", "kind"})
	r.reloads = prometheus.NewCounterVec(f("config_reloads_total", "Configuration reloads, by result (ok, refused)."), []string{"result"})
	r.reg.MustRegister(r.tunnelSetups, r.tunnelFailures, r.sessionSetups, r.sessionFailures, r.retransmits,
		r.pppFailures, r.radiusRequests, r.radiusLatency, r.reloads, &snapshotCollector{r},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return r
}

// SetSnapshot sets the function called at every scrape for the gauges.
// It must be quick and safe for concurrent use.
func (r *Registry) SetSnapshot(f func() Snapshot) {
	r.mu.Lock()
	r.snapshot = f
	r.mu.Unlock()
}

// TunnelUp counts an established tunnel.
func (r *Registry) TunnelUp() { r.tunnelSetups.Inc() }

// TunnelFailed counts a failed tunnel; cause is a short enum name
// ("not-authorized", "timeout", "peer-stopccn", "limit", ...).
func (r *Registry) TunnelFailed(cause string) { r.tunnelFailures.WithLabelValues(cause).Inc() }

// SessionUp counts a session whose network protocol came up.
func (r *Registry) SessionUp() { r.sessionSetups.Inc() }

// SessionFailed counts a failed session setup; cause is a short enum name
// ("auth-failed", "pool-exhausted", "limit", "draining", "timeout", ...).
func (r *Registry) SessionFailed(cause string) { r.sessionFailures.WithLabelValues(cause).Inc() }

// Retransmitted counts n control-message retransmissions.
func (r *Registry) Retransmitted(n int) { r.retransmits.Add(float64(n)) }

// PPPFailed counts a PPP negotiation failure in protocol ("lcp", "ipcp"...).
func (r *Registry) PPPFailed(protocol string) { r.pppFailures.WithLabelValues(protocol).Inc() }

// RADIUS records one RADIUS request to server ("host:port") of kind
// ("auth" or "acct"); d is the time to the answer (ignored for timeouts).
func (r *Registry) RADIUS(server, kind string, o RADIUSOutcome, d time.Duration) {
	r.radiusRequests.WithLabelValues(server, kind, o.String()).Inc()
	if o == RADIUSAccept || o == RADIUSReject {
		r.radiusLatency.WithLabelValues(server, kind).Observe(d.Seconds())
	}
}

// Reloaded counts a configuration reload.
func (r *Registry) Reloaded(ok bool) {
	if ok {
		r.reloads.WithLabelValues("ok").Inc()
	} else {
		r.reloads.WithLabelValues("refused").Inc()
	}
}

// Handler serves the metrics in the Prometheus exposition format.
func (r *Registry) Handler() http.Handler {
	return promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{})
}

// Gatherer exposes the underlying registry (for tests and for adding
// collectors).
func (r *Registry) Gatherer() prometheus.Gatherer { return r.reg }

var (
	descTunnels  = prometheus.NewDesc(Namespace+"_tunnels", "Tunnels by state.", []string{"state"}, nil)
	descSessions = prometheus.NewDesc(Namespace+"_sessions", "Sessions by state.", []string{"state"}, nil)
	descPoolSize = prometheus.NewDesc(Namespace+"_pool_addresses", "Addresses in the pool.", []string{"pool"}, nil)
	descPoolUsed = prometheus.NewDesc(Namespace+"_pool_addresses_used", "Addresses of the pool in use.", []string{"pool"}, nil)
	descSpool    = prometheus.NewDesc(Namespace+"_accounting_spool_depth", "Accounting records waiting to be sent to RADIUS.", nil, nil)
	descDraining = prometheus.NewDesc(Namespace+"_draining", "1 while new tunnels and sessions are refused (l2tpctl drain).", nil, nil)
	descInternal = prometheus.NewDesc(Namespace+"_internal_errors_total", "Internal errors (recovered panics) since the start: each ended a session or a tunnel, dropped a datagram or failed a request, and was logged at error level with its stack. Should stay 0; report any.", nil, nil)

	descHeld        = prometheus.NewDesc(Namespace+"_calls_held_total", "Incoming calls held for a max_starting slot (the number held now is l2tpd_sessions{state=\"held\"}).", nil, nil)
	descHeldOutcome = prometheus.NewDesc(Namespace+"_calls_held_outcomes_total", "Held calls by how their hold ended: admitted, expired (max_starting_wait ran out, CDN result 4), ended (cleared by the LAC, tunnel down, refused when retried).", []string{"outcome"}, nil)
	descHeldMax     = prometheus.NewDesc(Namespace+"_calls_held_max_wait_seconds", "The longest a held call waited before it was admitted, since the start.", nil, nil)
	descHeldOldest  = prometheus.NewDesc(Namespace+"_calls_held_oldest_wait_seconds", "How long the oldest call held now has waited (0 when none is held).", nil, nil)

	descRadiusRetx    = prometheus.NewDesc(Namespace+"_radius_retransmissions_total", "RADIUS requests sent again to the same server after its timeout, all servers. Rising with few timeouts: requests or replies lost on the way (often the server's receive buffer; see [radius] max_in_flight).", nil, nil)
	descRadiusDropped = prometheus.NewDesc(Namespace+"_radius_replies_dropped_total", "RADIUS replies dropped: unexpected (no request waits for the Identifier: late or duplicate) or invalid (failed verification: wrong secret, forged or corrupt).", []string{"reason"}, nil)
)

// snapshotCollector turns the daemon's snapshot into gauges at scrape
// time, so that nothing is updated per packet or per state change.
type snapshotCollector struct{ r *Registry }

func (c *snapshotCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descTunnels, descSessions, descPoolSize, descPoolUsed, descSpool, descDraining, descInternal,
		descHeld, descHeldOutcome, descHeldMax, descHeldOldest, descRadiusRetx, descRadiusDropped} {
		ch <- d
	}
}

func (c *snapshotCollector) Collect(ch chan<- prometheus.Metric) {
	c.r.mu.Lock()
	f := c.r.snapshot
	c.r.mu.Unlock()
	if f == nil {
		return
	}
	s := f()
	for st, n := range s.TunnelsByState {
		ch <- prometheus.MustNewConstMetric(descTunnels, prometheus.GaugeValue, float64(n), st)
	}
	for st, n := range s.SessionsByState {
		ch <- prometheus.MustNewConstMetric(descSessions, prometheus.GaugeValue, float64(n), st)
	}
	for _, p := range s.Pools {
		ch <- prometheus.MustNewConstMetric(descPoolSize, prometheus.GaugeValue, float64(p.Size), p.Name)
		ch <- prometheus.MustNewConstMetric(descPoolUsed, prometheus.GaugeValue, float64(p.Used), p.Name)
	}
	ch <- prometheus.MustNewConstMetric(descSpool, prometheus.GaugeValue, float64(s.AcctSpoolDepth))
	d := 0.0
	if s.Draining {
		d = 1
	}
	ch <- prometheus.MustNewConstMetric(descDraining, prometheus.GaugeValue, d)
	ch <- prometheus.MustNewConstMetric(descInternal, prometheus.CounterValue, float64(s.InternalErrors))
	h := &s.Held
	ch <- prometheus.MustNewConstMetric(descHeld, prometheus.CounterValue, float64(h.Total))
	ch <- prometheus.MustNewConstMetric(descHeldOutcome, prometheus.CounterValue, float64(h.Admitted), "admitted")
	ch <- prometheus.MustNewConstMetric(descHeldOutcome, prometheus.CounterValue, float64(h.Expired), "expired")
	ch <- prometheus.MustNewConstMetric(descHeldOutcome, prometheus.CounterValue, float64(h.Ended), "ended")
	ch <- prometheus.MustNewConstMetric(descHeldMax, prometheus.GaugeValue, h.MaxWait.Seconds())
	ch <- prometheus.MustNewConstMetric(descHeldOldest, prometheus.GaugeValue, h.OldestWait.Seconds())
	rc := &s.RADIUS
	ch <- prometheus.MustNewConstMetric(descRadiusRetx, prometheus.CounterValue, float64(rc.Retransmissions))
	ch <- prometheus.MustNewConstMetric(descRadiusDropped, prometheus.CounterValue, float64(rc.RepliesUnexpected), "unexpected")
	ch <- prometheus.MustNewConstMetric(descRadiusDropped, prometheus.CounterValue, float64(rc.RepliesInvalid), "invalid")
}
