package endpoint

import "time"

// The drivers' deadlines live in a min-heap per tunnel, so that an event
// costs O(log sessions) instead of a scan over every session (a tunnel may
// carry thousands). The heap is owned by the tunnel goroutine. A session's
// cached deadline is re-read from its driver after every call into it
// (Frame, Tick, Post, Kick, SessionUp); a driver whose deadline changes
// otherwise must call Kick, as the Driver contract says.

// sessionHeap orders sessions by their driver's cached deadline. Each
// entry carries the deadline itself, so that sifting compares entries of
// one array instead of reaching into every session it passes (a tunnel's
// sessions lie all over the heap; the deadline moves with almost every
// frame during setup). Hand-written rather than container/heap, whose
// Less and Swap are calls through an interface.
type sessionHeap []timerEntry

type timerEntry struct {
	due time.Time
	s   *Session
}

func (h sessionHeap) Len() int { return len(h) }

// set puts e at slot i and records the slot in its session.
func (h sessionHeap) set(i int, e timerEntry) {
	h[i] = e
	e.s.hidx = i + 1
}

// up moves the entry at i towards the root while it is earlier than its
// parent.
func (h sessionHeap) up(i int) {
	e := h[i]
	for i > 0 {
		p := (i - 1) / 2
		if !e.due.Before(h[p].due) {
			break
		}
		h.set(i, h[p])
		i = p
	}
	h.set(i, e)
}

// down moves the entry at i towards the leaves while a child is earlier;
// it reports whether the entry moved.
func (h sessionHeap) down(i int) bool {
	e, i0, n := h[i], i, len(h)
	for {
		c := 2*i + 1
		if c >= n {
			break
		}
		if r := c + 1; r < n && h[r].due.Before(h[c].due) {
			c = r
		}
		if !h[c].due.Before(e.due) {
			break
		}
		h.set(i, h[c])
		i = c
	}
	h.set(i, e)
	return i > i0
}

// fix restores the order after the entry at i changed its deadline.
func (h sessionHeap) fix(i int) {
	if !h.down(i) {
		h.up(i)
	}
}

func (h *sessionHeap) push(s *Session) {
	*h = append(*h, timerEntry{due: s.due, s: s})
	h.up(len(*h) - 1)
}

// remove takes the entry at i out and returns its session.
func (h *sessionHeap) remove(i int) *Session {
	old := *h
	s := old[i].s
	last := len(old) - 1
	if i != last {
		old.set(i, old[last])
	}
	old[last] = timerEntry{}
	*h = old[:last]
	if i != last {
		h.fix(i)
	}
	s.hidx = 0
	return s
}

// schedule re-reads s's driver deadline and places s in the heap (or takes
// it out when it has none).
func (t *Tunnel) schedule(s *Session) {
	var d time.Time
	if s.driver != nil && !s.failed {
		d = s.driver.Deadline()
	}
	switch {
	case d.IsZero():
		t.unschedule(s)
	case s.hidx > 0:
		if !d.Equal(s.due) {
			s.due = d
			t.timers[s.hidx-1].due = d
			t.timers.fix(s.hidx - 1)
		}
	default:
		s.due = d
		t.timers.push(s)
	}
}

// unschedule takes s out of the heap.
func (t *Tunnel) unschedule(s *Session) {
	if s.hidx > 0 {
		t.timers.remove(s.hidx - 1)
	}
}

// tickDrivers ticks every driver whose deadline has come, each once.
func (t *Tunnel) tickDrivers(now time.Time) {
	due := t.dueBuf[:0]
	for len(t.timers) > 0 && !now.Before(t.timers[0].due) {
		due = append(due, t.timers.remove(0))
	}
	for _, s := range due {
		if !t.live(s) || s.driver == nil {
			continue // gone (or failed) while an earlier one ticked
		}
		t.inSession(now, s, func() { s.driver.Tick(now) })
		if t.live(s) {
			t.schedule(s)
		}
	}
	clear(due)
	t.dueBuf = due[:0]
}

// nextDeadline is the earliest of the core's and the drivers' deadlines
// (zero: none).
func (t *Tunnel) nextDeadline() time.Time {
	next := t.core.Deadline()
	if len(t.timers) > 0 {
		if d := t.timers[0].due; next.IsZero() || d.Before(next) {
			next = d
		}
	}
	return next
}
