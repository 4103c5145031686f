package radius

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"layeh.com/radius"

	"github.com/l2tpd/l2tpd/auth"
	"github.com/l2tpd/l2tpd/config"
)

// CountersFunc returns a session's current counters (from the data path).
type CountersFunc func() auth.AcctCounters

// accounter spools every record, then sends it to the accounting servers
// until one acknowledges it. A record is written to the spool before it
// is sent: add appends it in memory, and a pass of the run loop that
// sends writes everything added since the last write with one write(2)
// first (so does every fsync); fsyncs are grouped, at most one per syncEvery (0: one
// per pass of the run loop, and a record is sent only once synced). Records of one session are sent in order, one
// at a time; records of different sessions go out concurrently (bounded).
// After a record fails on every server, sending pauses for retry and
// resumes from the oldest record; the retried record keeps its
// Acct-Session-Id and gets an updated Acct-Delay-Time. A record that
// cannot be encoded is dropped (logged, counted), never retried.
type accounter struct {
	c        *Client
	retry    time.Duration
	interim  time.Duration // default interval (config), 0: none
	parallel int
	// syncEvery groups fsyncs: at most one per interval, and one at
	// close; 0: an fsync every pass, before the records are sent.
	syncEvery time.Duration

	mu       sync.Mutex
	nextSync time.Time // the next fsync is due (syncEvery > 0)
	fsyncs   int       // fsyncs made by the run loop
	passes   int       // passes of the run loop (tests)
	sp       *spool
	pending  []*record // by Seq; acknowledged ones removed by the run loop
	live     int       // records in pending not yet acknowledged
	acked    int       // acknowledged records still in pending
	inflight int
	pauseTil time.Time
	tracked  map[string]*tracked
	blocked  map[string]struct{} // scratch for run
	closed   bool
	dropped  atomic.Uint64

	// mono is the clock of acctBatchWindow (time.Now; tests set their
	// own, under mu).
	mono func() time.Time
	// waits, when a test sets it (under mu), gets each pass's wait before
	// the loop blocks, if it has room.
	waits chan<- time.Duration

	wake  chan struct{}
	done  chan struct{}
	loop  sync.WaitGroup // the run loop
	sends sync.WaitGroup // requests in flight
}

type tracked struct {
	s        *auth.AcctSession
	interval time.Duration
	counters CountersFunc
	timer    *time.Timer
}

func newAccounter(c *Client, cfg config.RADIUS) (*accounter, error) {
	sp, recs, err := openSpool(cfg.SpoolDir, c.log)
	if err != nil {
		return nil, err
	}
	a := &accounter{
		c: c, sp: sp, pending: recs, live: len(recs),
		retry:     cfg.DeadTime,
		interim:   cfg.InterimInterval,
		parallel:  max(cfg.MaxInFlight/2, 1),
		syncEvery: cfg.SpoolSyncInterval,
		tracked:   map[string]*tracked{},
		blocked:   map[string]struct{}{},
		mono:      time.Now,
		wake:      make(chan struct{}, 1),
		done:      make(chan struct{}),
	}
	if a.retry <= 0 {
		a.retry = 30 * time.Second
	}
	if len(recs) > 0 {
		c.log.Info("radius accounting spool: resending records from an earlier run", zap.Int("records", len(recs)), zap.String("dir", cfg.SpoolDir))
	}
	a.loop.Add(1)
	go a.run()
	return a, nil
}

// stop ends the run loop: nothing more is sent. Requests in flight end
// when the client closes them.
func (a *accounter) stop() {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return
	}
	a.closed = true
	for _, t := range a.tracked {
		t.timer.Stop()
	}
	a.mu.Unlock()
	close(a.done)
	a.loop.Wait()
}

// close waits for the requests in flight to end (the client has ended
// them), then syncs and closes the spool. Call it after stop.
func (a *accounter) close() {
	a.sends.Wait()
	a.mu.Lock()
	if err := a.sp.close(); err != nil {
		a.c.log.Error("radius accounting spool: closing", zap.Error(err))
	}
	a.mu.Unlock()
}

// newRecord encodes the record of status for s. It fails when the
// request would not fit in a RADIUS packet.
func newRecord(nas *NAS, st AcctStatus, s *auth.AcctSession, ctr *auth.AcctCounters, cause auth.TerminateCause, event time.Time) (*record, error) {
	rb := &recordBuf{}
	r := &rb.r
	r.Status, r.ID, r.User, r.Event = st, s.ID, s.Username, event
	r.attrs = appendAcct(rb.attrs[:0], nas, st, s, ctr, cause, event)
	if n := 20 + 18 + len(r.attrs) + 6; n > maxPacket {
		return r, fmt.Errorf("Accounting-Request %v would be %d bytes (%d of Class), more than the %d of a RADIUS packet: %w",
			st, n, classLen(s.Class), maxPacket, errTooLong)
	}
	return r, nil
}

// recordBuf is a record with room for the attributes of a typical
// request, allocated as one.
type recordBuf struct {
	r     record
	attrs [256]byte
}

func classLen(cls [][]byte) int {
	n := 0
	for _, c := range cls {
		n += 2 + min(len(c), 253)
	}
	return n
}

func (a *accounter) add(st AcctStatus, s *auth.AcctSession, ctr *auth.AcctCounters, cause auth.TerminateCause) {
	r, err := newRecord(&a.c.nas, st, s, ctr, cause, a.c.now())
	if err != nil {
		a.drop(r, err)
		return
	}
	a.mu.Lock()
	if err := a.sp.put(r); err != nil {
		// Keep it in memory at least; it is sent if we live long enough.
		a.c.log.Error("radius accounting spool write failed", zap.String("acct_session_id", r.ID), zap.Error(err))
	}
	a.pending = append(a.pending, r)
	a.live++
	a.mu.Unlock()
	a.poke()
}

// drop counts and logs a record that can never be sent.
func (a *accounter) drop(r *record, err error) {
	a.dropped.Add(1)
	a.c.log.Error("radius accounting record dropped: it can never be sent; the server's accounting misses it "+
		"(check the Class and other attributes the RADIUS server returns for this user)",
		zap.String("status", r.Status.String()), zap.String("acct_session_id", r.ID), zap.String("user", r.User), zap.Error(err))
}

// acctBatchWindow is the least time between two passes of the run loop
// that send records, unless a pass can send a full batch
// (acctBatchMin records, or half the records allowed in flight if that
// is fewer): the records added meanwhile wait for company and go out
// together (one sendmmsg per server), so that a burst of session starts
// costs the server one wake-up per batch instead of one per record. A
// record added after a quiet spell goes out at once, and a full batch
// never waits, so the window limits how small batches get, not how many
// records per second go out. Acct-Delay-Time counts the wait (in whole
// seconds: 0 here).
const (
	acctBatchWindow = 5 * time.Millisecond
	acctBatchMin    = 16
)

func (a *accounter) run() {
	defer a.loop.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var launch []*record
	var calls []*call
	var lastLaunch time.Time // by a.mono, monotonic (c.now may be a test's)
	for {
		a.mu.Lock()
		// Acknowledged records leave pending: the prefix at once (acks
		// come mostly in order), the rest when they are half of it.
		for len(a.pending) > 0 && a.pending[0].acked {
			a.pending[0] = nil
			a.pending = a.pending[1:]
			a.acked--
		}
		if a.acked > 0 && a.acked*2 >= len(a.pending) {
			a.pending = slices.DeleteFunc(a.pending, func(r *record) bool { return r.acked })
			a.acked = 0
		}
		if a.sp.compact(a.pending) {
			a.c.log.Debug("radius accounting spool: compacted the oldest segment")
		}
		// One fsync for everything appended since the last one, without
		// the lock: records added meanwhile wait for the next. With
		// syncEvery 0, every pass and before any of it is sent; else at
		// most one per syncEvery (records go out once written).
		now := a.c.now()
		if a.syncEvery == 0 || !now.Before(a.nextSync) {
			if f, upto, ok := a.sp.syncBegin(); ok {
				a.mu.Unlock()
				err := f.Sync()
				a.mu.Lock()
				a.fsyncs++
				a.sp.syncEnd(upto, err)
				a.nextSync = now.Add(a.syncEvery)
				if err != nil && !errors.Is(err, os.ErrClosed) {
					a.c.log.Error("radius accounting spool fsync failed", zap.Error(err))
				}
			} else if a.sp.failing {
				// The write before the fsync failed (flush logged it):
				// the next try waits for the next interval, no spinning.
				a.nextSync = now.Add(a.syncEvery)
			}
			if err := a.sp.trim(); err != nil {
				a.c.log.Error("radius accounting spool: removing acknowledged segments", zap.Error(err))
			}
		}
		a.passes++
		launch = launch[:0]
		if !now.Before(a.pauseTil) && a.inflight < a.parallel {
			clear(a.blocked)
			for _, r := range a.pending {
				if r.acked {
					continue
				}
				if a.syncEvery == 0 && r.Seq > a.sp.synced {
					break // not durable yet: the next pass syncs it
				}
				if _, b := a.blocked[r.ID]; b || r.inFlight {
					a.blocked[r.ID] = struct{}{}
					continue
				}
				a.blocked[r.ID] = struct{}{} // its later records wait for it
				r.inFlight = true
				a.inflight++
				launch = append(launch, r)
				if a.inflight >= a.parallel {
					break
				}
			}
		}
		mono := a.mono()
		hold := !lastLaunch.IsZero() && mono.Sub(lastLaunch) < acctBatchWindow &&
			len(launch) < min(acctBatchMin, max(a.parallel/2, 1))
		if hold {
			// Too few for a batch yet, and the last went out just now:
			// they wait for company (or for the window's end).
			for _, r := range launch {
				r.inFlight = false
				a.inflight--
			}
			launch = launch[:0]
		}
		wait := time.Hour
		if a.pauseTil.After(now) {
			wait = a.pauseTil.Sub(now)
		}
		if a.sp.unsynced && a.syncEvery > 0 {
			wait = min(wait, max(a.nextSync.Sub(now), 0))
		}
		if a.sp.failing {
			// Writing to the spool fails: try again after the retry
			// pause at the latest, even if nothing else happens.
			wait = min(wait, a.retry)
		}
		if hold && a.live > a.inflight {
			wait = min(wait, lastLaunch.Add(acctBatchWindow).Sub(mono))
		}
		if len(launch) > 0 {
			// The records added since the last write reach the file in
			// one write(2) before any is sent (those still waiting go
			// with it, or with the next fsync). On an error they are
			// sent anyway (flush logs it and keeps them for the next
			// try).
			_ = a.sp.flushRecords()
		}
		waits := a.waits
		a.mu.Unlock()
		if len(launch) > 0 {
			lastLaunch = mono
			calls = calls[:0]
			for _, r := range launch {
				a.sends.Add(1)
				calls = append(calls, &call{kind: callRecord, rec: r, acct: a})
			}
			a.c.beginMany(a.c.acct, calls)
			clear(calls)
		}
		if waits != nil {
			select {
			case waits <- wait:
			default:
			}
		}
		timer.Reset(wait)
		select {
		case <-a.done:
			return
		case <-a.wake:
		case <-timer.C:
		}
	}
}

// finish takes the answer to r's request (on any goroutine) and wakes
// the run loop when a record waits to be sent (for a free slot, behind
// r, or after the pause an error starts); acknowledged records leave
// pending at the loop's next pass.
func (a *accounter) finish(r *record, err error) {
	a.mu.Lock()
	defer func() {
		wake := a.live > a.inflight
		a.mu.Unlock()
		if wake {
			a.poke()
		}
	}()
	a.inflight--
	r.inFlight = false
	if err != nil {
		var be buildError
		if errors.As(err, &be) {
			a.drop(r, err)
		} else {
			if !a.closed {
				a.c.log.Warn("radius accounting not acknowledged; kept in the spool", zap.String("status", r.Status.String()),
					zap.String("acct_session_id", r.ID), zap.Duration("retry_in", a.retry), zap.Error(err))
				a.pauseTil = a.c.now().Add(a.retry)
			}
			return
		}
	}
	if err := a.sp.ack(r); err != nil {
		a.c.log.Error("radius accounting spool: writing an acknowledgement failed (the record may be sent again after a restart)", zap.Error(err))
	}
	if ce := a.c.log.Check(zap.DebugLevel, "radius accounting acknowledged"); ce != nil {
		ce.Write(zap.String("status", r.Status.String()), zap.String("acct_session_id", r.ID))
	}
	r.acked = true
	a.acked++
	a.live--
}

func (a *accounter) poke() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// sent takes the answer to the request the run loop launched for r.
func (a *accounter) sent(r *record, err error) {
	a.finish(r, err)
	a.sends.Done()
}

// acctAnswer turns the answer to an Accounting-Request (the verified
// reply p) into nil when it acknowledges the record.
func acctAnswer(p []byte, s *server, err error) error {
	if err != nil {
		return err
	}
	if code := radius.Code(p[0]); code != radius.CodeAccountingResponse {
		return fmt.Errorf("server %s answered an Accounting-Request with %v", s.name, code)
	}
	return nil
}

// acctExchange sends the Accounting-Request for r. Only an
// Accounting-Response acknowledges it (RFC 2866 4.2): any other reply
// leaves the record unacknowledged.
func (c *Client) acctExchange(ctx context.Context, r *record) error {
	p, s, err := c.exchange(ctx, c.acct, func(b []byte, s *server, id uint8) ([]byte, error) {
		return appendAcctRequest(b, s.secret, id, r, c.now())
	})
	return acctAnswer(p, s, err)
}

// appendAcctRequest appends the Accounting-Request for r sent at now.
func appendAcctRequest(b []byte, secret []byte, id uint8, r *record, now time.Time) ([]byte, error) {
	delay := max(now.Sub(r.Event), 0) / time.Second
	var d [6]byte
	d[0], d[1] = byte(attrAcctDelayTime), 6
	binary.BigEndian.PutUint32(d[2:], uint32(delay))
	return appendRequest(b, radius.CodeAccountingRequest, id, nil, secret, true, r.attrs, d[:])
}

// appendAcct appends the attributes of an Accounting-Request but
// Acct-Delay-Time (which depends on when it is sent).
func appendAcct(a attrs, nas *NAS, st AcctStatus, s *auth.AcctSession, ctr *auth.AcctCounters, cause auth.TerminateCause, event time.Time) attrs {
	a = a.u32(attrAcctStatusType, uint32(st))
	a = a.nas(nas)
	a = a.str(attrAcctSessionID, s.ID)
	if st != AcctOn && st != AcctOff {
		a = a.str(attrUserName, s.Username)
		a = a.session(&s.Info)
		a = a.u32(attrAcctAuthentic, acctAuthenticRADIUS)
		if s.FramedIP.Is4() {
			b := s.FramedIP.As4()
			a = a.add(attrFramedIPAddress, b[:])
		}
		if s.FramedIPv6.IsValid() {
			a = appendIPv6Prefix(a, attrFramedIPv6Prefix, s.FramedIPv6)
		}
		if s.Delegated.IsValid() {
			a = appendIPv6Prefix(a, attrDelegatedIPv6Prefix, s.Delegated)
		}
		for _, c := range s.Class {
			a = a.add(attrClass, c)
		}
		if st != AcctStart && ctr != nil {
			c := ctr
			a = a.u32(attrAcctSessionTime, uint32(c.SessionTime/time.Second))
			a = a.u32(attrAcctInputOctets, uint32(c.InOctets))
			a = a.u32(attrAcctInputGigawords, uint32(c.InOctets>>32))
			a = a.u32(attrAcctOutputOctets, uint32(c.OutOctets))
			a = a.u32(attrAcctOutputGigawords, uint32(c.OutOctets>>32))
			a = a.u32(attrAcctInputPackets, uint32(c.InPackets))
			a = a.u32(attrAcctOutputPackets, uint32(c.OutPackets))
		}
		if st == AcctStop {
			a = a.u32(attrAcctTerminateCause, uint32(cause))
		}
	}
	return a.u32(attrEventTimestamp, uint32(event.Unix()))
}

// appendIPv6Prefix appends an RFC 3162 2.3 prefix attribute: Reserved,
// Prefix-Length, then only the octets the length covers.
func appendIPv6Prefix(a attrs, t radius.Type, p netip.Prefix) attrs {
	b := p.Masked().Addr().As16()
	n := (p.Bits() + 7) / 8
	a = append(a, byte(t), byte(4+n), 0, byte(p.Bits()))
	return append(a, b[:n]...)
}

// Start implements auth.Accounter: Accounting-Request Start, and Interim
// updates at the configured interval if counters are known (use
// StartSession to give them).
func (c *Client) Start(s *auth.AcctSession) { c.StartSession(s, 0, nil) }

// StartSession sends Start for s and, when counters is not nil, schedules
// Interim-Update every interval (0: the configured acct_interim_interval),
// with up to 10% jitter, until Stop. interval is usually the
// Acct-Interim-Interval of the Access-Accept (auth.Result.InterimInterval).
func (c *Client) StartSession(s *auth.AcctSession, interval time.Duration, counters CountersFunc) {
	a := c.accounter
	if a == nil {
		return
	}
	a.add(AcctStart, s, nil, 0)
	if counters == nil {
		return
	}
	if interval <= 0 {
		interval = a.interim
	}
	if interval <= 0 {
		return
	}
	t := &tracked{s: s, interval: interval, counters: counters}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return
	}
	if old := a.tracked[s.ID]; old != nil {
		old.timer.Stop()
	}
	a.tracked[s.ID] = t
	t.timer = time.AfterFunc(jitter(interval), func() { a.interimTick(s.ID, t) })
}

func jitter(d time.Duration) time.Duration {
	return d + rand.N(d/10+1)
}

func (a *accounter) interimTick(id string, t *tracked) {
	a.mu.Lock()
	if a.closed || a.tracked[id] != t {
		a.mu.Unlock()
		return
	}
	t.timer.Reset(jitter(t.interval))
	a.mu.Unlock()
	ctr := t.counters()
	a.add(AcctInterim, t.s, &ctr, 0)
}

// SetInterimInterval changes the Interim-Update interval of a session
// started with StartSession (CoA Acct-Interim-Interval). It reports
// whether the session is tracked.
func (c *Client) SetInterimInterval(acctSessionID string, d time.Duration) bool {
	a := c.accounter
	if a == nil || d <= 0 {
		return false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	t := a.tracked[acctSessionID]
	if t == nil {
		return false
	}
	t.interval = d
	t.timer.Reset(jitter(d))
	return true
}

// Interim implements auth.Accounter.
func (c *Client) Interim(s *auth.AcctSession, ctr auth.AcctCounters) {
	if c.accounter != nil {
		c.accounter.add(AcctInterim, s, &ctr, 0)
	}
}

// Stop implements auth.Accounter. The record is on disk before Stop
// returns (fsynced shortly after, before it is sent).
func (c *Client) Stop(s *auth.AcctSession, ctr auth.AcctCounters, cause auth.TerminateCause) {
	a := c.accounter
	if a == nil {
		return
	}
	a.mu.Lock()
	if t := a.tracked[s.ID]; t != nil {
		t.timer.Stop()
		delete(a.tracked, s.ID)
	}
	a.mu.Unlock()
	a.add(AcctStop, s, &ctr, cause)
}

// AccountingOn sends Accounting-On (the NAS has started; RFC 2866 5.1)
// and waits for the answer; call it at daemon start.
func (c *Client) AccountingOn(ctx context.Context) error { return c.onOff(ctx, AcctOn) }

// AccountingOff sends Accounting-Off; call it at orderly shutdown, after
// the sessions' Stops.
func (c *Client) AccountingOff(ctx context.Context) error { return c.onOff(ctx, AcctOff) }

func (c *Client) onOff(ctx context.Context, st AcctStatus) error {
	now := c.now()
	r, err := newRecord(&c.nas, st, &auth.AcctSession{ID: fmt.Sprintf("%s-%d", st, now.Unix())}, nil, 0, now)
	if err != nil {
		return fmt.Errorf("radius: %v: %w", st, err)
	}
	if err := c.acctExchange(ctx, r); err != nil {
		return fmt.Errorf("radius: %v: %w", st, err)
	}
	return nil
}

// Pending returns the number of accounting records not yet acknowledged.
func (c *Client) Pending() int {
	if c.accounter == nil {
		return 0
	}
	c.accounter.mu.Lock()
	defer c.accounter.mu.Unlock()
	return c.accounter.live
}

// AcctDropped returns the number of accounting records dropped because
// they could never be sent (larger than a RADIUS packet), each logged.
func (c *Client) AcctDropped() uint64 {
	if c.accounter == nil {
		return 0
	}
	return c.accounter.dropped.Load()
}
