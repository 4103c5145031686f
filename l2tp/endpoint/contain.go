package endpoint

import (
	"time"

	"go.uber.org/zap"

	"github.com/l2tpd/l2tpd/internal/fault"
	"github.com/l2tpd/l2tpd/l2tp"
	"github.com/l2tpd/l2tpd/l2tp/tunnel"
)

// A bug (a panic) in code a tunnel's goroutines run must not stop the
// daemon: one subscriber or one LAC would otherwise take every other
// subscriber down with it. The blast radius is kept as small as the state
// it may have left inconsistent:
//
//   - a panic in a call into one session's driver (a PPP frame, a timer, a
//     posted result such as an authentication answer, SessionUp) or in the
//     role's SessionDown ends that session only: CDN, then the driver's
//     Close (which releases its address and writes its Stop record) runs
//     as for any other end. Its driver gets no further calls but Close;
//   - a panic anywhere else on the tunnel goroutine (the control protocol,
//     the role's tunnel callbacks) ends that tunnel: StopCCN sent once,
//     best effort, then every session is released as at shutdown;
//   - a panic on the tunnel's reader (the data plane's receive path) drops
//     that batch and closes the tunnel through its goroutine;
//   - a panic handling a datagram on a listener drops that datagram.
//
// Each is logged at error level with its stack and counted
// (internal/fault, the metric l2tpd_internal_errors_total).
// Shared state (the endpoint's maps, the role's counts and registry,
// pools, the accounting spool) is changed under short locks: the ones held
// across a call that parses input or calls the role (the SCCRQ path's
// e.mu, lns's admission lock) are released by a defer, so a recovered
// panic leaves none held.

// ReasonInternalError is the reason Driver.Close and the role's
// SessionDown and TunnelDown carry when a session or tunnel was ended
// because of an internal error (a recovered panic).
const ReasonInternalError = "internal error"

// internalErrorRC is the Result Code of the CDN or StopCCN sent then
// (RFC 2661 4.4.2: general error, Error Code 6, vendor specific).
var internalErrorRC = l2tp.ResultCode{Result: l2tp.ResultCDNGeneralError, Error: l2tp.ErrCodeVendor, Message: ReasonInternalError}

// inSession runs f, a call into s's driver (or the role about s), on the
// tunnel goroutine. A panic in it ends s only.
func (t *Tunnel) inSession(now time.Time, s *Session, f func()) {
	defer func() {
		if r := recover(); r != nil {
			t.sessionPanicked(now, s, r)
		}
	}()
	f()
}

// live reports whether s is still the tunnel's session with its ID and its
// driver may be called.
func (t *Tunnel) live(s *Session) bool {
	return s != nil && !s.failed && !s.gone
}

// sessionPanicked is called from inSession's deferred recover.
func (t *Tunnel) sessionPanicked(now time.Time, s *Session, r any) {
	fault.Recovered(t.log, "internal error in a session: hanging it up; its tunnel and the other sessions go on", r,
		zap.Uint32("session", s.ID), zap.Uint32("peer_session", s.PeerID))
	if s.failed {
		return
	}
	s.failed = true
	t.unschedule(s)
	if !s.gone && !t.crashing {
		// The CDN's SessionDown event closes the driver, as for any end.
		_ = t.core.Hangup(now, s.ID, internalErrorRC, ReasonInternalError)
	}
}

// guarded runs f, a step of a tunnel's teardown after a panic; a panic in
// it is logged and the teardown goes on.
func (t *Tunnel) guarded(step string, f func()) {
	defer func() {
		if r := recover(); r != nil {
			fault.Recovered(t.log, "internal error while "+step+" after an earlier one; going on with the teardown", r)
		}
	}()
	f()
}

// crashed ends the tunnel after a panic on its goroutine (called from
// run's deferred recover): StopCCN sent once (the peer then clears its
// side at once instead of after its retransmissions), then everything
// released as when the daemon stops.
func (t *Tunnel) crashed(r any) {
	fault.Recovered(t.log, "internal error on this tunnel: closing it and its sessions; the daemon and other tunnels go on", r)
	t.crashing = true
	now := t.e.cfg.Now()
	if !t.finished {
		t.guarded("sending StopCCN", func() {
			if t.core.State() == tunnel.StateDead {
				return
			}
			rc := internalErrorRC
			rc.Result = l2tp.ResultStopGeneralError
			t.core.Close(now, rc, ReasonInternalError)
			t.outBuf = t.core.Output(now, t.outBuf[:0])
			t.mu.Lock()
			peer, connected := t.peer, t.connected
			t.mu.Unlock()
			for _, b := range t.outBuf {
				t.writeOne(b, peer, connected)
			}
			clear(t.outBuf)
			// Calls not yet established end with the tunnel: the role
			// hears of them as at any tunnel end, to release what it
			// reserved for them (finish releases the established ones).
			for _, ev := range t.core.Events(nil) {
				switch ev := ev.(type) {
				case tunnel.SessionDown:
					if t.sessions[ev.ID] == nil {
						ev.WasUp, ev.Reason = false, ReasonInternalError
						t.guarded("reporting a call down", func() {
							t.handler().SessionDown(&Session{T: t, ID: ev.ID, PeerID: ev.PeerID}, ev)
						})
					}
				case tunnel.CallAbandoned:
					if a, ok := t.handler().(CallAbandonedHandler); ok {
						t.guarded("reporting a held call abandoned", func() { a.CallAbandoned(t, ev) })
					}
				}
			}
		})
	}
	t.finish(now, ReasonInternalError)
}

// readGuarded runs one batch of the tunnel's reader. A panic in it (the
// data plane's receive path) drops the rest of the batch and closes the
// tunnel through its goroutine.
func (t *Tunnel) readGuarded(f func()) {
	defer func() {
		if r := recover(); r != nil {
			fault.Recovered(t.log, "internal error reading the tunnel's socket: closing the tunnel; the daemon and other tunnels go on", r)
			rc := internalErrorRC
			rc.Result = l2tp.ResultStopGeneralError
			// On a goroutine of its own: Close may wait for room in the
			// command queue, and this reader holds a batch open (t.in).
			go t.Close(rc, ReasonInternalError)
		}
	}()
	f()
}

// listenerGuarded handles one datagram read on a listener; a panic drops
// it.
func (e *Endpoint) listenerGuarded(f func()) {
	defer func() {
		if r := recover(); r != nil {
			fault.Recovered(e.log, "internal error handling a datagram on the listener: dropped it; the daemon goes on", r)
		}
	}()
	f()
}
