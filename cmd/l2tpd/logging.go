package main

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/l2tpd/l2tpd/config"
	"github.com/l2tpd/l2tpd/mgmt"
)

// tracer holds the active per-user and per-peer debug traces (l2tpctl log
// trace). A peer is traced by name (the [[peer]]/[[lac]] name, carried as
// the "profile" or "lac" log field) or by address (the "peer" field).
type tracer struct {
	now func() time.Time

	mu     sync.RWMutex
	users  map[string]time.Time // -> expiry (zero: none)
	peers  map[string]time.Time
	active bool // any trace set (fast path for Enabled)
}

func newTracer(now func() time.Time) *tracer {
	return &tracer{now: now, users: map[string]time.Time{}, peers: map[string]time.Time{}}
}

func live(exp, now time.Time) bool { return exp.IsZero() || now.Before(exp) }

// set applies a trace request and returns the live traces.
func (t *tracer) set(r mgmt.TraceRequest) []mgmt.Trace {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	m, key := t.users, r.User
	if r.Peer != "" {
		m, key = t.peers, normPeer(r.Peer)
	}
	if key != "" {
		if r.Off {
			delete(m, key)
		} else {
			var exp time.Time
			if r.For > 0 {
				exp = now.Add(r.For)
			}
			m[key] = exp
		}
	}
	var out []mgmt.Trace
	for k, exp := range t.users {
		if !live(exp, now) {
			delete(t.users, k)
			continue
		}
		out = append(out, mgmt.Trace{User: k, Expires: exp})
	}
	for k, exp := range t.peers {
		if !live(exp, now) {
			delete(t.peers, k)
			continue
		}
		out = append(out, mgmt.Trace{Peer: k, Expires: exp})
	}
	t.active = len(t.users)+len(t.peers) > 0
	slices.SortFunc(out, func(a, b mgmt.Trace) int {
		return strings.Compare(a.User+"\x00"+a.Peer, b.User+"\x00"+b.Peer)
	})
	return out
}

// normPeer turns an address with a port into the bare address.
func normPeer(p string) string {
	if ap, err := netip.ParseAddrPort(p); err == nil {
		return ap.Addr().Unmap().String()
	}
	if a, err := netip.ParseAddr(p); err == nil {
		return a.Unmap().String()
	}
	return p
}

func (t *tracer) any() bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.active
}

func (t *tracer) traced(user, peer bool, v string) bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	m := t.peers
	if user {
		m = t.users
	}
	exp, ok := m[v]
	return ok && live(exp, t.now())
}

func (t *tracer) user(u string) bool { return u != "" && t.traced(true, false, u) }
func (t *tracer) peer(p string) bool { return p != "" && t.traced(false, true, normPeer(p)) }

// matchFields reports whether any field names a traced user or peer.
func (t *tracer) matchFields(fs []zapcore.Field) bool {
	for i := range fs {
		f := &fs[i]
		switch f.Key {
		case "user":
			if f.Type == zapcore.StringType && t.user(f.String) {
				return true
			}
		case "peer", "profile", "lac", "lns":
			var s string
			switch f.Type {
			case zapcore.StringType:
				s = f.String
			case zapcore.StringerType:
				if st, ok := f.Interface.(fmt.Stringer); ok {
					s = st.String()
				}
			}
			if t.peer(s) {
				return true
			}
		}
	}
	return false
}

// traceCore gates a core that accepts every level: entries at or above
// the atomic level pass; debug entries below it pass only when their
// fields (the logger's context or the entry's own) name a traced user or
// peer.
type traceCore struct {
	inner  zapcore.Core
	level  zap.AtomicLevel
	tr     *tracer
	fields []zapcore.Field // context fields that may name a user or peer
}

func (c *traceCore) Enabled(l zapcore.Level) bool {
	return c.level.Enabled(l) || (l >= zapcore.DebugLevel && c.tr.any())
}

func (c *traceCore) With(fs []zapcore.Field) zapcore.Core {
	keep := c.fields
	for _, f := range fs {
		switch f.Key {
		case "user", "peer", "profile", "lac", "lns":
			keep = append(slices.Clip(keep), f)
		}
	}
	return &traceCore{inner: c.inner.With(fs), level: c.level, tr: c.tr, fields: keep}
}

func (c *traceCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.level.Enabled(e.Level) {
		return c.inner.Check(e, ce)
	}
	if !c.tr.any() {
		return ce
	}
	// Decided in Write, which sees the entry's fields too.
	return ce.AddCore(e, c)
}

func (c *traceCore) Write(e zapcore.Entry, fs []zapcore.Field) error {
	if !c.level.Enabled(e.Level) && !c.tr.matchFields(c.fields) && !c.tr.matchFields(fs) {
		return nil
	}
	return c.inner.Write(e, fs)
}

func (c *traceCore) Sync() error { return c.inner.Sync() }

// newLogger builds the daemon's logger: the level is changeable at run
// time (the returned AtomicLevel) and traces let debug lines of chosen
// users and peers through whatever the level.
func newLogger(cfg *config.Config, override string, tr *tracer) (*zap.Logger, zap.AtomicLevel, error) {
	name := cfg.LogLevel.String()
	if override != "" {
		name = override
	}
	level, err := zap.ParseAtomicLevel(name)
	if err != nil {
		return nil, level, fmt.Errorf("log level %q: %w", name, err)
	}
	var zc zap.Config
	if cfg.LogFormat.String() == "json" {
		zc = zap.NewProductionConfig()
	} else {
		zc = zap.NewDevelopmentConfig()
		zc.DisableStacktrace = true
		zc.EncoderConfig.EncodeLevel = zapcore.CapitalLevelEncoder
	}
	// The inner core takes everything; traceCore decides.
	zc.Level = zap.NewAtomicLevelAt(zapcore.DebugLevel)
	zc.OutputPaths = []string{"stderr"}
	zc.Sampling = nil
	log, err := zc.Build(zap.WrapCore(func(inner zapcore.Core) zapcore.Core {
		return &traceCore{inner: inner, level: level, tr: tr}
	}))
	if err != nil {
		return nil, level, err
	}
	return log, level, nil
}
