package endpoint

import "time"

// wakeGrid are the steps wakeAt rounds deadlines up to, coarsest first.
var wakeGrid = [...]time.Duration{time.Second, 100 * time.Millisecond, 10 * time.Millisecond}

// wakeAt is when a tunnel goroutine wakes for the deadline next, seen at
// now: next rounded up to a grid whose step is at most an eighth of the
// wait, so that deadlines close together (thousands of sessions' LCP
// echoes, jittered across the interval) are handled in one wake-up
// instead of one each. A 30 s echo is late by at most 1 s, a 1 s
// retransmission by at most 100 ms, a deadline under 80 ms away not at
// all. The grid is absolute, so every session of a tunnel shares it.
func wakeAt(next, now time.Time) time.Time {
	wait := next.Sub(now)
	for _, g := range wakeGrid {
		if g <= wait/8 {
			if r := next.Truncate(g); !r.Equal(next) {
				return r.Add(g)
			}
			return next
		}
	}
	return next
}
