package main

import (
	"net/netip"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	zapobs "go.uber.org/zap/zaptest/observer"

	"github.com/l2tpd/l2tpd/l2tp"
	"github.com/l2tpd/l2tpd/mgmt"
)

func tracedLogger(t *testing.T) (*zap.Logger, zap.AtomicLevel, *tracer, *time.Time, *zapobs.ObservedLogs) {
	now := time.Unix(1_700_000_000, 0)
	tr := newTracer(func() time.Time { return now })
	inner, logs := zapobs.New(zapcore.DebugLevel)
	level := zap.NewAtomicLevelAt(zapcore.InfoLevel)
	return zap.New(&traceCore{inner: inner, level: level, tr: tr}), level, tr, &now, logs
}

// Debug lines pass only for traced users and peers (by address from the
// tunnel logger's Stringer field, or by profile name), until the trace
// is turned off or expires; the level changes at run time.
func TestTraceCore(t *testing.T) {
	log, level, tr, now, logs := tracedLogger(t)
	peerAddr := netip.MustParseAddrPort("192.0.2.7:1701")
	tunLog := log.With(zap.Uint32("tunnel", 3), zap.Stringer("peer", peerAddr))
	profLog := log.With(zap.String("profile", "lac1"))

	cases := []struct {
		name string
		emit func()
		want bool
	}{
		{"debug untraced", func() { log.Debug("x", zap.String("user", "bob")) }, false},
		{"info passes", func() { log.Info("x") }, true},
	}
	for _, c := range cases {
		before := logs.Len()
		c.emit()
		if got := logs.Len() > before; got != c.want {
			t.Errorf("%s: logged=%v, want %v", c.name, got, c.want)
		}
	}
	got := tr.set(mgmt.TraceRequest{User: "alice"})
	tr.set(mgmt.TraceRequest{Peer: "192.0.2.7", For: time.Minute})
	got = tr.set(mgmt.TraceRequest{Peer: "lac1"})
	if len(got) != 3 || got[2].User != "alice" || got[0].Peer != "192.0.2.7" || got[0].Expires.IsZero() {
		t.Fatalf("traces %+v", got)
	}
	check := func(name string, emit func(), want bool) {
		t.Helper()
		before := logs.Len()
		emit()
		if g := logs.Len() > before; g != want {
			t.Errorf("%s: logged=%v, want %v", name, g, want)
		}
	}
	check("traced user field", func() { log.Debug("x", zap.String("user", "alice")) }, true)
	check("other user", func() { log.Debug("x", zap.String("user", "bob")) }, false)
	check("traced peer in context", func() { tunLog.Debug("x") }, true)
	check("traced profile in context", func() { profLog.Debug("x") }, true)
	check("traced user under untraced context", func() { log.With(zap.String("profile", "other")).Debug("x", zap.String("user", "alice")) }, true)

	*now = now.Add(2 * time.Minute) // the peer trace expires
	check("expired peer trace", func() { tunLog.Debug("x") }, false)
	tr.set(mgmt.TraceRequest{User: "alice", Off: true})
	check("user trace off", func() { log.Debug("x", zap.String("user", "alice")) }, false)
	if got := tr.set(mgmt.TraceRequest{}); len(got) != 1 || got[0].Peer != "lac1" {
		t.Errorf("traces left %+v, want lac1 only", got)
	}
	tr.set(mgmt.TraceRequest{Peer: "lac1", Off: true})
	if tr.any() {
		t.Errorf("traces still active")
	}

	level.SetLevel(zapcore.DebugLevel)
	check("debug at debug level", func() { log.Debug("x") }, true)
	level.SetLevel(zapcore.WarnLevel)
	check("info at warn level", func() { log.Info("x") }, false)
}

func TestStopCause(t *testing.T) {
	cases := []struct {
		rc     l2tp.ResultCode
		byPeer bool
		reason string
		want   string
	}{
		{l2tp.ResultCode{Result: l2tp.ResultStopGeneral}, true, "", "peer-stopccn"},
		{l2tp.ResultCode{Result: l2tp.ResultStopNotAuthorized}, false, "", "not-authorized"},
		{l2tp.ResultCode{Result: l2tp.ResultStopShuttingDown}, false, "", "draining"},
		{l2tp.ResultCode{Result: l2tp.ResultStopGeneralError, Error: l2tp.ErrCodeNoResources}, false, "", "limit"},
		{l2tp.ResultCode{Result: l2tp.ResultStopGeneral}, false, "no acknowledgement after 5 retransmissions", "timeout"},
		{l2tp.ResultCode{Result: l2tp.ResultStopGeneral}, false, "something", "error"},
	}
	for _, c := range cases {
		if got := stopCause(c.rc, c.byPeer, c.reason); got != c.want {
			t.Errorf("stopCause(%+v, %v, %q) = %q, want %q", c.rc, c.byPeer, c.reason, got, c.want)
		}
	}
	if got := cdnCause(&l2tp.ResultCode{Error: l2tp.ErrCodeTryAnother}); got != "draining" {
		t.Errorf("cdnCause(try another) = %q", got)
	}
}
