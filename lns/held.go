package lns

import (
	"time"

	"github.com/l2tpd/l2tpd/l2tp/endpoint"
	"github.com/l2tpd/l2tpd/l2tp/tunnel"
)

// HeldStats describes the incoming calls held for a max_starting slot
// (ICRQ acknowledged, ICRP not sent yet; max_starting_wait).
type HeldStats struct {
	Held     int    // held now
	Total    uint64 // calls held since the start
	Admitted uint64 // admitted after being held
	// Expired: refused with CDN result 4 once max_starting_wait ran out
	// (tunnel.AbandonExpired).
	Expired uint64
	// Ended: ended otherwise before admission (cleared by the LAC, tunnel
	// down, refused when retried: draining, session limits).
	Ended uint64
	// MaxWait is the longest a call waited before it was admitted.
	MaxWait time.Duration
	// OldestWait is how long the oldest call held now has waited.
	OldestWait time.Duration
}

// heldQueue mirrors one tunnel's held calls, oldest first: when the LNS
// saw each one held. The core holds them first in, first out (admitted
// and expired from the front), so the front here is the front there.
type heldQueue struct {
	since []time.Time
	wait  time.Duration // the tunnel's max_starting_wait
}

// heldBook counts held calls across tunnels. It learns of them only by
// reading a tunnel's count of held calls (tunnel.Tunnel.Deferred) when it
// is on that tunnel's goroutine, so a change is seen at the next
// observation of the tunnel (a call, an admission attempt, a CallAbandoned,
// the tunnel's end). Pure: the caller passes now. Guarded by LNS.mu.
type heldBook struct {
	st   HeldStats // OldestWait is computed by stats
	busy map[*heldQueue]struct{}
}

// sync counts the calls q's tunnel holds beyond those q knows of (n held
// now), held from now. It never counts a call's end: those are counted
// from the core's events (abandoned, admitted, refused) or at the
// tunnel's end (drop); a count below q's only means their events are
// still on the way.
func (b *heldBook) sync(q *heldQueue, n int, now time.Time) {
	for len(q.since) < n {
		q.since = append(q.since, now)
		b.st.Total++
		b.st.Held++
	}
	b.mark(q)
}

// abandoned: a held call of q ended before admission with cause (the
// core's tunnel.CallAbandoned). The core expires the oldest first; a call
// ended otherwise is taken from the front too (only the wait times of
// OldestWait are approximate then).
func (b *heldBook) abandoned(q *heldQueue, cause tunnel.AbandonCause) {
	if len(q.since) == 0 {
		return
	}
	b.pop(q)
	if cause == tunnel.AbandonExpired {
		b.st.Expired++
	} else {
		b.st.Ended++
	}
	b.mark(q)
}

// drop ends every call q still holds (its tunnel is gone; their
// CallAbandoned events, if the handler got them, came first).
func (b *heldBook) drop(q *heldQueue) {
	for len(q.since) > 0 {
		b.pop(q)
		b.st.Ended++
	}
	b.mark(q)
}

// admitted: the oldest held call of q was admitted.
func (b *heldBook) admitted(q *heldQueue, now time.Time) {
	if len(q.since) == 0 {
		return
	}
	b.st.Admitted++
	b.st.MaxWait = max(b.st.MaxWait, now.Sub(b.pop(q)))
	b.mark(q)
}

// refused: the oldest held call of q was refused when retried.
func (b *heldBook) refused(q *heldQueue) {
	if len(q.since) == 0 {
		return
	}
	b.pop(q)
	b.st.Ended++
	b.mark(q)
}

func (b *heldBook) pop(q *heldQueue) time.Time {
	t := q.since[0]
	q.since = q.since[1:]
	b.st.Held--
	return t
}

// mark keeps busy the set of queues with calls.
func (b *heldBook) mark(q *heldQueue) {
	if len(q.since) > 0 {
		if b.busy == nil {
			b.busy = make(map[*heldQueue]struct{})
		}
		b.busy[q] = struct{}{}
		return
	}
	q.since = nil // release the array
	delete(b.busy, q)
}

func (b *heldBook) stats(now time.Time) HeldStats {
	s := b.st
	for q := range b.busy {
		s.OldestWait = max(s.OldestWait, now.Sub(q.since[0]))
	}
	return s
}

// HeldCalls returns the counts of calls held for a max_starting slot.
func (l *LNS) HeldCalls() HeldStats {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.held.stats(now)
}

// noteCall updates the held calls after AdmitCall answered rc about an
// incoming call of a tunnel (admitted: nil; deferred: DeferCall) whose
// core held n calls while asking, and holds calls for at most wait. With n > 0
// the core was retrying its oldest held call (it holds a new call behind
// held ones without asking). Runs on the tunnel's goroutine.
func (l *LNS) noteCall(st *tunnelState, wait time.Duration, n int, admitted, deferred bool) {
	// st.held is written only on the tunnel's goroutine (under l.mu, for
	// HeldCalls): reading it here without the lock is safe. The common
	// case, no held call before or after, takes no lock.
	if n == 0 && !deferred && len(st.held.since) == 0 {
		return
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	st.held.wait = wait
	l.held.sync(&st.held, n, now)
	switch {
	case n == 0 && deferred:
		l.held.sync(&st.held, 1, now) // newly held
	case n > 0 && admitted:
		l.held.admitted(&st.held, now)
	case n > 0 && !deferred:
		l.held.refused(&st.held)
	}
}

// syncHeld reads how many calls t's core holds. Runs on t's goroutine.
func (l *LNS) syncHeld(t *endpoint.Tunnel, n int) {
	st := stateOf(t)
	if st == nil || (n == 0 && len(st.held.since) == 0) {
		return
	}
	now := l.now()
	l.mu.Lock()
	l.held.sync(&st.held, n, now)
	l.mu.Unlock()
}

// CallAbandoned is told, on t's goroutine, that a held call ended before
// it was admitted (tunnel.CallAbandoned: the LAC cleared it, its
// max_starting_wait ran out, the tunnel went down, or it was refused when
// retried). Without it the LNS sees such an end at the tunnel's next
// admission attempt or at its end.
func (l *LNS) CallAbandoned(t *endpoint.Tunnel, ev tunnel.CallAbandoned) {
	st := stateOf(t)
	if st == nil {
		return
	}
	l.noteAbandoned(st, t.Core().Deferred(), ev.Cause)
}

// noteAbandoned counts a held call of st's tunnel that ended with cause,
// the core holding n others. Runs on the tunnel's goroutine.
func (l *LNS) noteAbandoned(st *tunnelState, n int, cause tunnel.AbandonCause) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if cause != tunnel.AbandonRefused { // counted by noteCall when refused
		// Calls held behind this one that the LNS has not seen yet are
		// counted first (the core held n besides it).
		l.held.sync(&st.held, n+1, now)
		l.held.abandoned(&st.held, cause)
	}
	l.held.sync(&st.held, n, now)
}
