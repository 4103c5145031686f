// Package pppsession runs one subscriber's PPP over an established L2TP
// session: the endpoint.Driver that joins a ppp.Link (the pure engine) to
// the session's data plane session, the authenticator, the address pools and
// the accounter.
//
// Two drivers exist: the LNS driver (ppp.RoleAuthenticator: authenticate the
// subscriber, assign an address, bring the data path up, account) and the
// LAC driver (ppp.RolePeer: dial as a subscriber with a user name and
// password, bring the data path up with the address the LNS gave).
//
// Concurrency: a driver lives on its tunnel's goroutine (Frame, Tick,
// Deadline and Close are called there) and owns no goroutine, except while
// an authentication request to an asynchronous authenticator is
// outstanding, or while a data plane whose Up blocks (dataplane.BlockingUp:
// the kernel's) brings the subscriber's interface up on a worker: the
// answer or outcome comes back through Call.Post. The local authenticator
// (auth/local) is pure and answered inline.
//
// Resources held by an LNS session (the pool address, the accounting
// record) are released exactly once: when PPP goes down (then the driver
// hangs up the L2TP session with a CDN saying why) or when the session or
// tunnel goes away underneath it (Driver.Close).
//
// The Env keeps a Registry of its LNS sessions (Env.Sessions), indexed by
// Acct-Session-Id, user name, address and calling number, for RADIUS
// Disconnect/CoA and the management API: List, Find, Terminate (LCP
// Terminate, accounting Stop, CDN) and Change (Session-Timeout,
// Idle-Timeout, Acct-Interim-Interval applied live). Interim-Updates are
// timed by the driver itself (Deadline/Tick), at the authenticator's
// Acct-Interim-Interval or Config.InterimInterval, with jitter.
package pppsession

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/l2tpd/l2tpd/auth"
	"github.com/l2tpd/l2tpd/auth/local"
	"github.com/l2tpd/l2tpd/config"
	"github.com/l2tpd/l2tpd/l2tp"
	"github.com/l2tpd/l2tpd/pool"
)

// Call is the L2TP session a driver runs over, as far as the driver needs
// it. *endpoint.Session provides it through EndpointCall.
type Call interface {
	// Hangup ends the L2TP session with a CDN carrying rc. It is called
	// from inside Frame, Tick or a posted function (the tunnel goroutine).
	// The runner later calls Driver.Close.
	Hangup(now time.Time, rc l2tp.ResultCode, reason string)
	// Post runs f on the tunnel goroutine if the session still exists
	// then; false if the tunnel is gone. It may block.
	Post(f func(now time.Time)) bool
	// Established says the subscriber's network is up (the first
	// NetworkUp the data path applied): the LNS stops counting the call
	// as a setup in flight (max_starting). Called on the tunnel
	// goroutine, once.
	Established()
}

// Config is what every session of a process shares.
type Config struct {
	// Config returns the current configuration (profiles are looked up in
	// it when a session starts).
	Config func() *config.Config
	// Auth answers the LNS's authentication requests. An authenticator
	// with a Decide method (auth/local) is asked inline, for its reason.
	Auth auth.Authenticator
	// RADIUS answers for PPP profiles with authenticator = "radius" (nil:
	// such sessions are refused).
	RADIUS auth.Authenticator
	// InterimInterval is the Interim-Update interval when the
	// authenticator gives none (0: no Interim-Update).
	InterimInterval time.Duration
	// Acct records sessions (nil: auth.NopAccounter).
	Acct auth.Accounter
	// Pools hands out subscriber addresses (nil: no pools).
	Pools *pool.Set
	// Log is the base logger (nil: none). Drivers made by the factories
	// log with their tunnel's logger instead.
	Log *zap.Logger
	// IDs makes Acct-Session-Ids (nil: NewIDs(time.Now())).
	IDs *IDs
	// Rand for magic numbers and challenges (nil: crypto/rand).
	Rand io.Reader
	// Async runs an asynchronous authentication request (nil: go f()).
	Async func(f func())
	// Now is the clock for the factories (nil: time.Now).
	Now func() time.Time
	// AuthTimeout bounds one asynchronous authentication (default 30s).
	AuthTimeout time.Duration
	// UpWorkers bounds how many data path Ups (dataplane.BlockingUp: the
	// kernel plane) run at once across the process (0: GOMAXPROCS, at
	// least 2). They mostly wait for the kernel's RTNL lock, which
	// serialises them anyway; the bound keeps a burst of setups from
	// tying up an OS thread each.
	UpWorkers int
	// Events, if set, is told when an LNS session's network comes up and
	// when it ends (for metrics). It is called on the tunnel goroutine
	// and must not block.
	Events Events
}

// Events receives LNS session life events (Config.Events).
type Events interface {
	// SessionUp: the network layer is up and accounting started.
	SessionUp()
	// SessionEnded: the session released its resources; wasUp says
	// whether SessionUp had been reported; m is the authentication method
	// negotiated (zero if it never got that far).
	SessionEnded(k EndKind, wasUp bool, m auth.Method)
}

// Env holds what sessions share: the dependencies, the registry of fixed
// addresses outside every pool, and counters.
type Env struct {
	cfg Config

	ifSeq    atomic.Uint64
	active   atomic.Int64 // LNS sessions holding resources
	stopping atomic.Bool  // the daemon is shutting down
	reg      *Registry
	upSlots  chan struct{} // one per data path Up running (Config.UpWorkers)
	onUpWait func()        // tests: a release is about to wait for an Up

	mu    sync.Mutex
	fixed map[netip.Addr]uint64 // fixed addresses in use outside every pool -> owner
}

// decider is an authenticator that also says why it refused (auth/local).
type decider interface {
	Decide(req *auth.Request) (*auth.Result, local.Reason)
}

// intoDecider is a decider that fills a Result the caller provides
// (auth/local: no allocation of its own).
type intoDecider interface {
	DecideInto(req *auth.Request, res *auth.Result) local.Reason
}

// NewEnv returns the shared environment of the drivers.
func NewEnv(cfg Config) *Env {
	if cfg.Acct == nil {
		cfg.Acct = auth.NopAccounter{}
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	if cfg.IDs == nil {
		cfg.IDs = NewIDs(time.Now())
	}
	if cfg.Async == nil {
		cfg.Async = func(f func()) { go f() }
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.AuthTimeout <= 0 {
		cfg.AuthTimeout = 30 * time.Second
	}
	if cfg.UpWorkers <= 0 {
		cfg.UpWorkers = max(2, runtime.GOMAXPROCS(0))
	}
	return &Env{cfg: cfg, fixed: make(map[netip.Addr]uint64), reg: newRegistry(), upSlots: make(chan struct{}, cfg.UpWorkers)}
}

// Sessions is the registry of the Env's live LNS sessions.
func (e *Env) Sessions() *Registry { return e.reg }

// ShuttingDown marks the daemon as stopping: sessions that end from now
// on for want of their L2TP session or tunnel end with EndShutdown
// (Acct-Terminate-Cause Admin-Reboot).
func (e *Env) ShuttingDown() { e.stopping.Store(true) }

// authenticator is the authenticator for a PPP profile.
func (e *Env) authenticator(prof *config.PPP) (auth.Authenticator, error) {
	if prof != nil && prof.Authenticator == config.AuthenticatorRADIUS {
		if e.cfg.RADIUS == nil {
			return nil, errors.New("the PPP profile uses RADIUS but no RADIUS client is configured")
		}
		return e.cfg.RADIUS, nil
	}
	if e.cfg.Auth == nil {
		return nil, errors.New("no authenticator configured")
	}
	return e.cfg.Auth, nil
}

// Active is the number of LNS sessions that hold resources (an address or
// an accounting record) or may still acquire them: created and not yet
// released.
func (e *Env) Active() int { return int(e.active.Load()) }

// ifName expands an interface name pattern with one %d.
func (e *Env) ifName(pattern string) string {
	if pattern == "" {
		return ""
	}
	return fmt.Sprintf(pattern, e.ifSeq.Add(1)-1)
}

// reserveFixed records a fixed address outside every pool.
func (e *Env) reserveFixed(a netip.Addr, owner uint64) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if o, ok := e.fixed[a]; ok {
		return fmt.Errorf("fixed address %v: %w (session %016X)", a, pool.ErrInUse, o)
	}
	e.fixed[a] = owner
	return nil
}

func (e *Env) releaseFixed(a netip.Addr, owner uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.fixed[a] == owner {
		delete(e.fixed, a)
	}
}

func (e *Env) authContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), e.cfg.AuthTimeout)
}

// IDs makes Acct-Session-Ids that are unique across restarts: the process
// start time in nanoseconds plus a counter, so that a later process starts
// above every number an earlier one could have used (unless it made more
// than one session per nanosecond of the time between them, or the clock
// went backwards).
type IDs struct {
	base uint64
	n    atomic.Uint64
}

// NewIDs starts a generator at start.
func NewIDs(start time.Time) *IDs { return &IDs{base: uint64(start.UnixNano())} }

// Next returns the next number and its Acct-Session-Id (16 hex digits).
func (g *IDs) Next() (uint64, string) {
	n := g.base + g.n.Add(1)
	return n, acctSessionID(n)
}

// acctSessionID is n as 16 upper-case hex digits (what "%016X" gives,
// without fmt's work: one per session setup).
func acctSessionID(n uint64) string {
	const digits = "0123456789ABCDEF"
	var b [16]byte
	for i := len(b) - 1; i >= 0; i-- {
		b[i] = digits[n&0xf]
		n >>= 4
	}
	return string(b[:])
}
