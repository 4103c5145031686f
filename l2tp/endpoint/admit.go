package endpoint

import "time"

// RetryDeferred asks the tunnel's core, on the tunnel goroutine, to admit
// the calls the role deferred (tunnel.DeferCall) again, oldest first; done,
// when not nil, is then called there with how many are still held. It
// returns false when the tunnel is gone (done is not called). It may wait
// for the tunnel goroutine: call it from a goroutine of its own, never
// from another tunnel's.
func (t *Tunnel) RetryDeferred(done func(left int)) bool {
	return t.do(func(now time.Time) {
		left := t.core.RetryDeferred(now)
		if done != nil {
			done(left)
		}
	})
}
