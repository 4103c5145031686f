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
//
// A deadline on a whole second goes into that second's slot instead: a
// list of the sessions due then, in a small heap of slots. That is where
// an established session's LCP echo waits (ppp's echoAt rounds it up to
// the second), so a tunnel of 1,000 held sessions has about one slot per
// second of the echo interval. Taking a session out of the heap's root
// moves about log2(sessions) others and writes the new place of each, a
// cache miss per session at 100,000 held (docs/benchmarks.md); a slot
// gives its sessions up all at once and takes a session in by appending
// it, touching no other session.

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
	e.s.hidx = int32(i + 1)
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

// schedule re-reads s's driver deadline and places s in the heap or its
// slot (or takes it out when it has none).
func (t *Tunnel) schedule(s *Session) {
	var d time.Time
	if s.driver != nil && !s.failed {
		d = s.driver.Deadline()
	}
	if d.IsZero() {
		t.unschedule(s)
		return
	}
	if key, ok := slotKey(d); ok {
		if s.slot != nil && s.slot.key == key && s.slot.due.Equal(d) {
			return
		}
		// A slot holds one instant: the same second by the wall clock
		// read before and after the clock was stepped is another (Equal
		// compares the monotonic readings), and waits in the heap.
		if sl := t.slotOf[key]; sl == nil || sl.due.Equal(d) {
			t.unschedule(s) // s is not in sl (checked above): sl stays
			s.due = d
			t.slotAdd(s, key, sl)
			return
		}
	}
	if s.slot != nil {
		t.slotRemove(s)
	}
	switch {
	case s.hidx > 0:
		if !d.Equal(s.due) {
			s.due = d
			t.timers[s.hidx-1].due = d
			t.timers.fix(int(s.hidx - 1))
		}
	default:
		s.due = d
		t.timers.push(s)
	}
}

// unschedule takes s out of the heap or its slot.
func (t *Tunnel) unschedule(s *Session) {
	if s.hidx > 0 {
		t.timers.remove(int(s.hidx - 1))
	}
	if s.slot != nil {
		t.slotRemove(s)
	}
}

// tickDrivers ticks every driver whose deadline has come, each once.
func (t *Tunnel) tickDrivers(now time.Time) {
	due := t.dueBuf[:0]
	for len(t.timers) > 0 && !now.Before(t.timers[0].due) {
		due = append(due, t.timers.remove(0))
	}
	for len(t.slots) > 0 && !now.Before(t.slots[0].due) {
		sl := heap.Pop(&t.slots).(*timerSlot)
		delete(t.slotOf, sl.key)
		for _, s := range sl.sessions {
			s.slot = nil
			due = append(due, s)
		}
		t.freeSlot(sl)
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
	if len(t.slots) > 0 {
		if d := t.slots[0].due; next.IsZero() || d.Before(next) {
			next = d
		}
	}
	return next
}

// timerSlot holds the sessions due at one whole second.
type timerSlot struct {
	due      time.Time // the deadline of every session in it (schedule checks Equal)
	key      int64     // due in nanoseconds since 1970 (slotKey)
	sessions []*Session
	hidx     int // place in the tunnel's slotHeap
}

// slotKey is the key of d's slot, if d is a whole second.
func slotKey(d time.Time) (int64, bool) {
	k := d.UnixNano()
	return k, k%int64(time.Second) == 0
}

// slotAdd appends s, due at key, to that second's slot sl (nil: there is
// none yet).
func (t *Tunnel) slotAdd(s *Session, key int64, sl *timerSlot) {
	if sl == nil {
		if n := len(t.spareSlots); n > 0 {
			sl = t.spareSlots[n-1]
			t.spareSlots[n-1] = nil
			t.spareSlots = t.spareSlots[:n-1]
		} else {
			sl = &timerSlot{}
		}
		sl.due, sl.key = s.due, key
		if t.slotOf == nil {
			t.slotOf = make(map[int64]*timerSlot)
		}
		t.slotOf[key] = sl
		heap.Push(&t.slots, sl)
	}
	s.slot, s.spos = sl, int32(len(sl.sessions))
	sl.sessions = append(sl.sessions, s)
}

// slotRemove takes s out of its slot: the slot's last session takes its
// place; an empty slot leaves the heap.
func (t *Tunnel) slotRemove(s *Session) {
	sl := s.slot
	last := len(sl.sessions) - 1
	if m := sl.sessions[last]; m != s {
		sl.sessions[s.spos] = m
		m.spos = s.spos
	}
	sl.sessions[last] = nil
	sl.sessions = sl.sessions[:last]
	s.slot, s.spos = nil, 0
	if last == 0 {
		heap.Remove(&t.slots, sl.hidx)
		delete(t.slotOf, sl.key)
		t.freeSlot(sl)
	}
}

// freeSlot keeps a few emptied slots (and their lists) for the next
// seconds: at steady state one slot empties and one fills each second.
func (t *Tunnel) freeSlot(sl *timerSlot) {
	clear(sl.sessions)
	sl.sessions = sl.sessions[:0]
	sl.due = time.Time{}
	if len(t.spareSlots) < 4 && cap(sl.sessions) <= 4096 {
		t.spareSlots = append(t.spareSlots, sl)
	}
}

// slotHeap orders slots by deadline (container/heap: a tunnel has few
// slots, about one per second of its echo interval).
type slotHeap []*timerSlot

func (h slotHeap) Len() int           { return len(h) }
func (h slotHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h slotHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].hidx, h[j].hidx = i, j
}
func (h *slotHeap) Push(x any) {
	sl := x.(*timerSlot)
	sl.hidx = len(*h)
	*h = append(*h, sl)
}
func (h *slotHeap) Pop() any {
	old := *h
	sl := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return sl
}
