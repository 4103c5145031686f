package lns

// retrier is a tunnel whose deferred calls can be retried
// (*endpoint.Tunnel).
type retrier interface {
	RetryDeferred(done func(left int)) bool
}

// admission is the LNS-wide queue of tunnels holding calls deferred at
// max_starting: first come, first served across tunnels. One tunnel at a
// time is woken to admit its held calls into the free slots; while a
// tunnel waits or is being woken, new calls of other tunnels queue behind
// it instead of taking the slot it is owed. Guarded by LNS.mu.
type admission struct {
	queue  []retrier
	queued map[retrier]bool
	waking retrier
}

// mayAdmit reports whether a call of t may take a free slot now: nobody
// is owed one before it.
func (a *admission) mayAdmit(t retrier) bool {
	if a.waking != nil {
		return a.waking == t
	}
	return len(a.queue) == 0
}

// enqueue puts t at the back of the queue, unless it is queued or being
// woken (then its held calls are retried anyway).
func (a *admission) enqueue(t retrier) {
	if a.queued[t] || a.waking == t {
		return
	}
	if a.queued == nil {
		a.queued = make(map[retrier]bool)
	}
	a.queued[t] = true
	a.queue = append(a.queue, t)
}

// next starts waking the first queued tunnel when a slot is free and no
// other wake is under way; nil when there is nothing to do.
func (a *admission) next(free int) retrier {
	if a.waking != nil || free <= 0 || len(a.queue) == 0 {
		return nil
	}
	t := a.queue[0]
	a.queue[0] = nil
	a.queue = a.queue[1:]
	delete(a.queued, t)
	a.waking = t
	return t
}

// woken ends the wake of t: with calls still held it goes back to the
// front (it was first and is still owed the next slot).
func (a *admission) woken(t retrier, left int) {
	if a.waking == t {
		a.waking = nil
	}
	if left > 0 && !a.queued[t] {
		if a.queued == nil {
			a.queued = make(map[retrier]bool)
		}
		a.queued[t] = true
		a.queue = append([]retrier{t}, a.queue...)
	}
}

// remove forgets t (its tunnel is down).
func (a *admission) remove(t retrier) {
	if a.waking == t {
		a.waking = nil
	}
	if !a.queued[t] {
		return
	}
	delete(a.queued, t)
	for i, q := range a.queue {
		if q == t {
			a.queue = append(a.queue[:i], a.queue[i+1:]...)
			break
		}
	}
}
