package endpoint

import (
	"container/heap"
	"time"
)

// The drivers' deadlines live in a min-heap per tunnel, so that an event
// costs O(log sessions) instead of a scan over every session (a tunnel may
// carry thousands). The heap is owned by the tunnel goroutine. A session's
// cached deadline is re-read from its driver after every call into it
// (Frame, Tick, Post, Kick, SessionUp); a driver whose deadline changes
// otherwise must call Kick, as the Driver contract says.

// sessionHeap orders sessions by their driver's cached deadline.
type sessionHeap []*Session

func (h sessionHeap) Len() int           { return len(h) }
func (h sessionHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h sessionHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].hidx = i + 1
	h[j].hidx = j + 1
}
func (h *sessionHeap) Push(x any) {
	s := x.(*Session)
	s.hidx = len(*h) + 1
	*h = append(*h, s)
}
func (h *sessionHeap) Pop() any {
	old := *h
	s := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
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
			heap.Fix(&t.timers, s.hidx-1)
		}
	default:
		s.due = d
		heap.Push(&t.timers, s)
	}
}

// unschedule takes s out of the heap.
func (t *Tunnel) unschedule(s *Session) {
	if s.hidx > 0 {
		heap.Remove(&t.timers, s.hidx-1)
	}
}

// tickDrivers ticks every driver whose deadline has come, each once.
func (t *Tunnel) tickDrivers(now time.Time) {
	due := t.dueBuf[:0]
	for len(t.timers) > 0 && !now.Before(t.timers[0].due) {
		due = append(due, heap.Pop(&t.timers).(*Session))
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
