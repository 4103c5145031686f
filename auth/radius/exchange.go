package radius

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/l2tpd/l2tpd/auth"
	"github.com/l2tpd/l2tpd/internal/fault"
	"github.com/l2tpd/l2tpd/internal/udpbatch"
)

// One request (a call) goes to the servers of its list in order until one
// answers. On a server it holds one Identifier of that server's socket (or
// waits in the server's queue for one), is sent, and sits in the client's
// deadline heap; the client's single timer retransmits it (retries) and
// then moves it to the next server. The server's reader goroutine matches
// a reply to it by Identifier and verifies it against the request's bytes
// (Response Authenticator, Message-Authenticator). Every field of a call
// is under Client.mu; done runs outside the lock, exactly once.

// callKind says what a call carries: the hot requests (Access-Request,
// accounting record) keep their parameters in the call itself, so that
// starting one costs no closures.
type callKind uint8

const (
	callFunc   callKind = iota // enc and done
	callAccess                 // areq and adone
	callRecord                 // rec and acct
)

// call is one request in progress.
type call struct {
	kind  callKind
	enc   encodeFunc                   // callFunc
	done  func([]byte, *server, error) // callFunc: the verified reply, valid during the call only
	areq  *auth.Request                // callAccess
	adone func(*auth.Result, error)    // callAccess
	rec   *record                      // callRecord
	acct  *accounter                   // callRecord: gets the answer
	order []*server                    // servers to try, in order
	next  int                          // index in order of the next server to try

	srv      *server // current server (nil: none yet)
	queued   bool    // waiting in srv.queue for an Identifier
	id       uint8   // Identifier on srv while !queued
	req      []byte  // the request as encoded for srv (never reused: a reader may still be verifying against it)
	tries    int     // sends to srv so far
	deadline time.Time
	// giveUp ends the call's time on srv, counted from when it asked for
	// an Identifier: timeout times (retries+1). It bounds a call that
	// waited in line (waited): in line, and after it is sent.
	giveUp time.Time
	waited bool
	hidx   int // index in Client.timers, -1: not in it
	// gen changes whenever the call lets go of its Identifier (written
	// under Client.mu, read by write without it).
	gen      atomic.Uint32
	finished bool
	lastErr  error   // why the last reply from srv was refused, or a send error
	errs     []error // one per server that did not answer

	// buf holds the request as encoded for the first server tried, so
	// that most calls cost one allocation.
	buf [callBuf]byte
}

// callBuf fits a typical Access-Request or Accounting-Request.
const callBuf = 320

// completion is a call's answer, delivered after the lock is released.
// resp is the verified reply, valid until deliver returns (it is the
// reader's buffer).
type completion struct {
	cl   *call
	resp []byte
	s    *server
	err  error
}

// completions collects, under Client.mu, the datagrams to write and the
// answers to deliver after it is released.
type completions struct {
	writes []pendingWrite
	done   []completion
	pkts   [][]byte       // scratch of writeRun: the datagrams of one batch
	sent   []pendingWrite // scratch of writeRun: the writes they belong to
}

// pendingWrite is a request to write once Client.mu is released: only
// while its call still holds the Identifier it was encoded with (gen).
type pendingWrite struct {
	cl  *call
	s   *server
	req []byte
	gen uint32
}

var completionsPool = sync.Pool{New: func() any { return new(completions) }}

func getCompletions() *completions { return completionsPool.Get().(*completions) }

// deliver writes the datagrams of out (each run of writes to one server
// with one system call), then runs the done of every answer in it
// (outside Client.mu), and gives out back to the pool.
func (c *Client) deliver(out *completions) {
	for ws := out.writes; len(ws) > 0; {
		k := 1
		for k < len(ws) && ws[k].s == ws[0].s {
			k++
		}
		if k == 1 {
			c.write(ws[0])
		} else {
			c.writeRun(ws[:k], out)
		}
		ws = ws[k:]
	}
	for _, d := range out.done {
		c.complete(d)
	}
	if cap(out.done) > 64 || cap(out.writes) > 64 {
		return // a burst (Close, a long line): let it go
	}
	clear(out.writes)
	clear(out.done)
	out.writes, out.done = out.writes[:0], out.done[:0]
	completionsPool.Put(out)
}

// write sends w's datagram unless its call has let go of the Identifier
// meanwhile (answered, given up, moved on): another request may hold it
// now, and a stale copy written after that one would make the server
// take it for a conflicting request. s.wmu orders the check and the write
// against the writes of any later holder of the Identifier, which took it
// after the generation changed. UDP writes need no other lock.
func (c *Client) write(w pendingWrite) {
	s := w.s
	s.wmu.Lock()
	var err error
	if w.cl.gen.Load() == w.gen {
		_, err = s.conn.Write(w.req)
	}
	s.wmu.Unlock()
	if err != nil {
		c.sendFailed(err, w)
	}
}

// writeRun is write for several requests to one server (ws[i].s are
// all the same), sent with one sendmmsg(2): the accounting records a
// pass of the accounter launches go out together, so the server's
// socket wakes its reader once for them, not once each.
func (c *Client) writeRun(ws []pendingWrite, scratch *completions) {
	s := ws[0].s
	pkts, sent := scratch.pkts[:0], scratch.sent[:0]
	s.wmu.Lock()
	for _, w := range ws {
		if w.cl.gen.Load() == w.gen {
			pkts = append(pkts, w.req)
			sent = append(sent, w)
		}
	}
	var err error
	if len(pkts) > 0 {
		_, err = s.conn.WriteBatch(pkts)
	}
	s.wmu.Unlock()
	if err != nil {
		// WriteBatch skips a datagram the kernel refuses and sends the
		// rest; which one failed is not known: each keeps the error as
		// its last (it only says why, if the request then times out).
		c.sendFailed(err, sent...)
	}
	clear(pkts)
	clear(sent)
	scratch.pkts, scratch.sent = pkts[:0], sent[:0]
}

// sendFailed keeps a send error as the last error of the writes' calls
// that still hold the Identifier they were sent with.
func (c *Client) sendFailed(err error, ws ...pendingWrite) {
	c.mu.Lock()
	for _, w := range ws {
		if w.cl.gen.Load() == w.gen && !w.cl.finished {
			w.cl.lastErr = fmt.Errorf("send: %w", err)
		}
	}
	c.mu.Unlock()
}

// complete hands one answer to whoever asked.
func (c *Client) complete(d completion) {
	cl := d.cl
	switch cl.kind {
	case callAccess:
		cl.adone(c.authResult(cl.areq, d.resp, d.s, d.err))
	case callRecord:
		cl.acct.sent(cl.rec, acctAnswer(d.resp, d.s, d.err))
	default:
		cl.done(d.resp, d.s, d.err)
	}
}

// encode appends cl's request for server s with Identifier id to b.
func (c *Client) encode(cl *call, b []byte, s *server, id uint8) ([]byte, error) {
	switch cl.kind {
	case callAccess:
		return c.appendAccess(b, s, id, cl.areq)
	case callRecord:
		return appendAcctRequest(b, s.secret, id, cl.rec, c.now())
	}
	return cl.enc(b, s, id)
}

// errCanceled is the answer of a call given up by its caller.
var errCanceled = fmt.Errorf("request given up: %w", context.Canceled)

// start sends the request encoded by enc to the servers of list in order
// until one answers; done gets the verified reply and the server that sent
// it, or the error. It follows auth.AsyncAuthenticator's contract for done
// and the returned cancel.
func (c *Client) start(list []*server, enc encodeFunc, done func([]byte, *server, error)) (cancel func()) {
	cl := &call{kind: callFunc, enc: enc, done: done}
	c.begin(list, cl)
	return func() { c.cancel(cl) }
}

// begin starts cl on the servers of list (start's work, for every kind
// of call).
func (c *Client) begin(list []*server, cl *call) {
	one := [1]*call{cl}
	c.beginMany(list, one[:])
}

// beginMany starts the calls of cls on the servers of list under one
// lock: their first sends to a server go out in one system call (the
// accounter launches a batch of records this way).
func (c *Client) beginMany(list []*server, cls []*call) {
	var err error
	c.mu.Lock()
	switch {
	case len(list) == 0:
		err = fmt.Errorf("%w: no server configured", ErrNoServer)
	case c.closed:
		err = ErrClosed
	}
	if err != nil {
		c.mu.Unlock()
		for _, cl := range cls {
			cl.hidx, cl.finished = -1, true
			c.complete(completion{cl: cl, err: err})
		}
		return
	}
	out := getCompletions()
	now := c.clock()
	for _, cl := range cls {
		cl.hidx = -1
		cl.order = c.order(list)
		c.advance(cl, now, out)
	}
	c.mu.Unlock()
	c.deliver(out)
}

// cancel gives up cl: it leaves the heap, its Identifier or place in line
// is freed, and done is called with errCanceled unless it was already.
func (c *Client) cancel(cl *call) {
	out := getCompletions()
	c.mu.Lock()
	if !cl.finished {
		c.finish(cl, nil, errCanceled, out)
	}
	c.mu.Unlock()
	c.deliver(out)
}

// advance moves cl to the next server of its order (taking an Identifier
// and sending, or queueing for one), or finishes it when none is left.
// c.mu is held.
func (c *Client) advance(cl *call, now time.Time, out *completions) {
	if cl.next >= len(cl.order) {
		c.finish(cl, nil, fmt.Errorf("%w: %w", ErrNoServer, errors.Join(cl.errs...)), out)
		return
	}
	s := cl.order[cl.next]
	cl.next++
	cl.srv, cl.tries, cl.lastErr, cl.waited = s, 0, nil, false
	if s.inUse >= c.inflight {
		cl.queued, cl.waited = true, true
		cl.giveUp = now.Add(s.timeout * time.Duration(s.retries+1))
		s.queue = append(s.queue, cl)
		c.schedule(cl, cl.giveUp, now)
		return
	}
	c.sendFirst(cl, s, now, out)
}

// sendFirst gives cl a free Identifier of s, encodes and sends it, and
// sets its deadline. A request that cannot be encoded is finished with
// the buildError. c.mu is held; s has a free Identifier.
func (c *Client) sendFirst(cl *call, s *server, now time.Time, out *completions) {
	id := s.nextID
	for s.calls[id] != nil {
		id++
	}
	s.nextID = id + 1
	var b []byte
	if cl.next == 1 {
		b = cl.buf[:0] // the first server: no reader can be verifying against it yet
	} else {
		b = make([]byte, 0, callBuf)
	}
	req, err := c.encode(cl, b, s, id)
	if err != nil {
		c.finish(cl, nil, buildError{err}, out)
		return
	}
	s.calls[id] = cl
	s.inUse++
	cl.queued, cl.id, cl.req = false, id, req
	c.send(cl, now, out)
}

// send queues cl's request (again) in out, written once c.mu is released,
// and sets its next deadline. c.mu is held.
func (c *Client) send(cl *call, now time.Time, out *completions) {
	s := cl.srv
	cl.tries++
	out.writes = append(out.writes, pendingWrite{cl: cl, s: s, req: cl.req, gen: cl.gen.Load()})
	at := now.Add(s.timeout)
	if cl.waited && cl.giveUp.Before(at) {
		at = cl.giveUp
	}
	c.schedule(cl, at, now)
}

// schedule sets cl's deadline to at. c.mu is held.
func (c *Client) schedule(cl *call, at, now time.Time) {
	cl.deadline = at
	if cl.hidx >= 0 {
		heap.Fix(&c.timers, cl.hidx)
	} else {
		heap.Push(&c.timers, cl)
	}
	c.rearm(now)
}

// errNoIdentifier: a request waited in line for an Identifier of a server
// (max_in_flight requests outstanding) for as long as it would have waited
// for that server's answer.
var errNoIdentifier = errors.New("timed out waiting for a free Identifier")

// release frees cl's Identifier on its server (or its place in line) and
// sends the requests waiting for an Identifier of that server. c.mu is
// held.
func (c *Client) release(cl *call, now time.Time, out *completions) {
	s := cl.srv
	if s == nil {
		return
	}
	cl.srv = nil
	if cl.queued {
		cl.queued = false
		for i, q := range s.queue {
			if q == cl {
				s.queue = append(s.queue[:i], s.queue[i+1:]...)
				break
			}
		}
		return
	}
	if s.calls[cl.id] == cl {
		s.calls[cl.id] = nil
		s.inUse--
	}
	cl.gen.Add(1) // its pending writes are stale
	for s.inUse < c.inflight && len(s.queue) > 0 && !c.closed {
		q := s.queue[0]
		s.queue[0] = nil
		s.queue = s.queue[1:]
		q.queued = false
		c.sendFirst(q, s, now, out)
	}
	if len(s.queue) == 0 {
		s.queue = nil // let the backing array go
	}
}

// finish ends cl with the answer (p, err) and queues its delivery.
// c.mu is held.
func (c *Client) finish(cl *call, resp []byte, err error, out *completions) {
	if cl.finished {
		return
	}
	s := cl.srv
	cl.finished = true
	if cl.hidx >= 0 {
		heap.Remove(&c.timers, cl.hidx)
	}
	c.release(cl, c.clock(), out)
	out.done = append(out.done, completion{cl: cl, resp: resp, s: s, err: err})
}

// rearm sets the client's timer to the earliest deadline. c.mu is held.
func (c *Client) rearm(now time.Time) {
	if len(c.timers) == 0 || c.closed {
		return // a timer that fires with nothing due just stops
	}
	at := c.timers[0].deadline
	if !c.timerAt.IsZero() && !at.Before(c.timerAt) {
		return // it fires earlier and rearms then
	}
	c.timerAt = at
	c.timer.Reset(max(at.Sub(now), 0))
}

func (c *Client) onTimer() { c.tick(c.clock()) }

// tick retransmits or moves on every call whose deadline is not after
// now, and rearms the timer for the next deadline.
func (c *Client) tick(now time.Time) {
	out := getCompletions()
	c.mu.Lock()
	c.timerAt = time.Time{}
	for len(c.timers) > 0 && !c.timers[0].deadline.After(now) {
		cl := c.timers[0]
		s := cl.srv
		if cl.queued {
			// The server is busy, not dead: its own requests time out
			// and count against it.
			heap.Pop(&c.timers)
			cl.errs = append(cl.errs, fmt.Errorf("server %s: %w (%d in flight) within %s", s.name, errNoIdentifier,
				s.inUse, s.timeout*time.Duration(s.retries+1)))
			c.release(cl, now, out)
			c.advance(cl, now, out)
			continue
		}
		if cl.tries <= s.retries && (!cl.waited || now.Before(cl.giveUp)) {
			c.retransmitted.Add(1)
			c.send(cl, now, out)
			continue
		}
		heap.Pop(&c.timers)
		last := cl.lastErr
		if last == nil {
			last = errors.New("timed out")
		}
		cl.errs = append(cl.errs, fmt.Errorf("server %s: no valid reply after %d tries of %s: %w", s.name, cl.tries, s.timeout, last))
		c.result(s, false)
		c.release(cl, now, out)
		c.advance(cl, now, out)
	}
	c.rearm(now)
	c.mu.Unlock()
	c.deliver(out)
}

// read hands the replies arriving on s's socket to the calls waiting for
// them, until the socket is closed.
// Replies are read with recvmmsg(2), as many as wait per system call:
// the answers to a batch of accounting records come back together. A
// short batch means the socket is empty: the reader then waits for the
// next reply instead of asking again only to be told EAGAIN
// (udpbatch.Reader.Each).
func (c *Client) read(s *server) {
	r, err := udpbatch.NewReader(s.sock, c.replyBufs)
	if err != nil {
		c.log.Error("radius: cannot read replies; requests to this server time out", zap.String("server", s.name), zap.Error(err))
		return
	}
	// Each returns once the socket is closed; an error it reports on the
	// way (ECONNREFUSED after an ICMP port unreachable) leaves the request
	// to time out.
	_ = r.Each(func(n int, err error) bool {
		for i := range n {
			if r.Truncated(i) {
				c.invalid.Add(1) // longer than a RADIUS packet may be
				continue
			}
			b, _ := r.Msg(i)
			c.replyGuarded(s, b)
		}
		return true
	})
}

// replyGuarded is reply; a panic in it (a bug reading a reply, or in a
// caller's done) drops that datagram instead of stopping the daemon: the
// request it answered times out and is retried.
func (c *Client) replyGuarded(s *server, b []byte) {
	defer func() {
		if r := recover(); r != nil {
			c.invalid.Add(1)
			fault.Recovered(c.log, "radius: internal error handling a reply: dropped it; the request it answered is retried", r, zap.String("server", s.name))
		}
	}()
	c.reply(s, b)
}

// reply handles one datagram from s: verified against the request waiting
// on its Identifier (outside the lock), it answers that request; anything
// else is dropped and counted. b is the reader's buffer: the answer is
// delivered before reply returns, and nothing keeps b.
func (c *Client) reply(s *server, b []byte) {
	if len(b) < 20 {
		c.invalid.Add(1)
		return
	}
	id := b[1]
	c.mu.Lock()
	cl := s.calls[id]
	var req []byte
	if cl != nil {
		req = cl.req
	}
	c.mu.Unlock()
	if cl == nil {
		c.unexpected.Add(1)
		return
	}
	resp, err := checkReply(b, req, s.secret, s.requireMA)
	out := getCompletions()
	c.mu.Lock()
	switch {
	case s.calls[id] != cl || cl.finished:
		c.unexpected.Add(1) // answered, timed out or given up meanwhile
	case err != nil:
		// A forged or corrupted reply is dropped; the real one may follow.
		cl.lastErr = err
		c.invalid.Add(1)
	default:
		c.result(s, true)
		c.finish(cl, resp, nil, out)
	}
	c.mu.Unlock()
	c.deliver(out)
}

// callHeap orders calls by deadline (container/heap).
type callHeap []*call

func (h callHeap) Len() int           { return len(h) }
func (h callHeap) Less(i, j int) bool { return h[i].deadline.Before(h[j].deadline) }
func (h callHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].hidx = i
	h[j].hidx = j
}
func (h *callHeap) Push(x any) {
	cl := x.(*call)
	cl.hidx = len(*h)
	*h = append(*h, cl)
}
func (h *callHeap) Pop() any {
	old := *h
	n := len(old) - 1
	cl := old[n]
	old[n] = nil
	cl.hidx = -1
	*h = old[:n]
	return cl
}
