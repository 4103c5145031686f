package radius

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"time"

	"go.uber.org/zap"
	"layeh.com/radius"

	"github.com/l2tpd/l2tpd/auth"
	"github.com/l2tpd/l2tpd/config"
)

// CountersFunc returns a session's current counters (from the data path).
type CountersFunc func() auth.AcctCounters

// accounter spools every record, then sends it to the accounting servers
// until one acknowledges it. Records of one session are sent in order, one
// at a time; records of different sessions go out concurrently (bounded).
// After a record fails on every server, sending pauses for retry and
// resumes from the oldest record; the retried record keeps its
// Acct-Session-Id and gets an updated Acct-Delay-Time.
type accounter struct {
	c        *Client
	retry    time.Duration
	interim  time.Duration // default interval (config), 0: none
	parallel int

	mu       sync.Mutex
	sp       *spool
	pending  []*record // by Seq
	inflight int
	pauseTil time.Time
	tracked  map[string]*tracked
	closed   bool

	wake chan struct{}
	done chan struct{}
	wg   sync.WaitGroup
}

type tracked struct {
	s        *auth.AcctSession
	interval time.Duration
	counters CountersFunc
	timer    *time.Timer
}

func newAccounter(c *Client, cfg config.RADIUS) (*accounter, error) {
	sp, recs, err := openSpool(cfg.SpoolDir)
	if err != nil {
		return nil, err
	}
	a := &accounter{
		c: c, sp: sp, pending: recs,
		retry:    cfg.DeadTime,
		interim:  cfg.InterimInterval,
		parallel: max(cfg.MaxInFlight/2, 1),
		tracked:  map[string]*tracked{},
		wake:     make(chan struct{}, 1),
		done:     make(chan struct{}),
	}
	if a.retry <= 0 {
		a.retry = 30 * time.Second
	}
	if len(recs) > 0 {
		c.log.Info("radius accounting spool: resending records from an earlier run", zap.Int("records", len(recs)), zap.String("dir", cfg.SpoolDir))
	}
	a.wg.Add(1)
	go a.run()
	return a, nil
}

func (a *accounter) close() {
	a.mu.Lock()
	a.closed = true
	for _, t := range a.tracked {
		t.timer.Stop()
	}
	a.mu.Unlock()
	close(a.done)
	a.wg.Wait()
	a.mu.Lock()
	a.sp.sync()
	a.mu.Unlock()
}

func (a *accounter) add(r *record) {
	a.mu.Lock()
	if err := a.sp.put(r); err != nil {
		// Keep it in memory at least; it is sent if we live long enough.
		a.c.log.Error("radius accounting spool write failed", zap.String("acct_session_id", r.Session.ID), zap.Error(err))
	}
	a.pending = append(a.pending, r)
	a.mu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

func (a *accounter) run() {
	defer a.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	results := make(chan sendResult, 64)
	for {
		a.mu.Lock()
		if err := a.sp.sync(); err != nil {
			a.c.log.Error("radius accounting spool fsync failed", zap.Error(err))
		}
		now := a.c.now()
		var launch []*record
		if !now.Before(a.pauseTil) {
			blocked := map[string]bool{}
			for _, r := range a.pending {
				id := r.Session.ID
				if r.inFlight || blocked[id] {
					blocked[id] = true
					continue
				}
				blocked[id] = true // its later records wait for it
				if a.inflight >= a.parallel {
					break
				}
				r.inFlight = true
				a.inflight++
				launch = append(launch, r)
			}
		}
		wait := time.Hour
		if a.pauseTil.After(now) {
			wait = a.pauseTil.Sub(now)
		}
		a.mu.Unlock()
		for _, r := range launch {
			go func(r *record) { results <- sendResult{r, a.send(ctx, r)} }(r)
		}
		timer.Reset(wait)
		select {
		case <-a.done:
			cancel()
			for a.inflight > 0 {
				res := <-results
				a.finish(res)
			}
			return
		case res := <-results:
			a.finish(res)
		case <-a.wake:
		case <-timer.C:
		}
	}
}

type sendResult struct {
	r   *record
	err error
}

func (a *accounter) finish(res sendResult) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.inflight--
	res.r.inFlight = false
	if res.err != nil {
		if !a.closed {
			a.c.log.Warn("radius accounting not acknowledged; kept in the spool", zap.String("status", res.r.Status.String()),
				zap.String("acct_session_id", res.r.Session.ID), zap.Duration("retry_in", a.retry), zap.Error(res.err))
			a.pauseTil = a.c.now().Add(a.retry)
		}
		return
	}
	if err := a.sp.remove(res.r.Seq); err != nil {
		a.c.log.Error("radius accounting spool remove failed", zap.Error(err))
	}
	for i, r := range a.pending {
		if r == res.r {
			a.pending = append(a.pending[:i], a.pending[i+1:]...)
			break
		}
	}
}

func (a *accounter) send(ctx context.Context, r *record) error {
	return a.c.acctExchange(ctx, r)
}

// acctExchange sends the Accounting-Request for r. Only an
// Accounting-Response acknowledges it (RFC 2866 4.2): any other reply
// leaves the record unacknowledged.
func (c *Client) acctExchange(ctx context.Context, r *record) error {
	p, s, err := c.exchange(ctx, c.acct, radius.CodeAccountingRequest, true, func(p *radius.Packet) error {
		buildAcct(p, &c.nas, r, c.now())
		return nil
	})
	if err != nil {
		return err
	}
	if p.Code != radius.CodeAccountingResponse {
		return fmt.Errorf("server %s answered an Accounting-Request with %v", s.name, p.Code)
	}
	return nil
}

// buildAcct fills an Accounting-Request for r sent at now.
func buildAcct(p *radius.Packet, nas *NAS, r *record, now time.Time) {
	addInt(p, attrAcctStatusType, uint32(r.Status))
	addNAS(p, nas)
	if r.Status == AcctOn || r.Status == AcctOff {
		addString(p, attrAcctSessionID, r.Session.ID)
	} else {
		s := &r.Session
		addString(p, attrAcctSessionID, s.ID)
		addString(p, attrUserName, s.Username)
		addSession(p, &s.Info)
		addInt(p, attrAcctAuthentic, acctAuthenticRADIUS)
		if s.FramedIP.Is4() {
			a := s.FramedIP.As4()
			p.Add(attrFramedIPAddress, a[:])
		}
		if s.FramedIPv6.IsValid() {
			p.Add(attrFramedIPv6Prefix, encodeIPv6Prefix(s.FramedIPv6))
		}
		if s.Delegated.IsValid() {
			p.Add(attrDelegatedIPv6Prefix, encodeIPv6Prefix(s.Delegated))
		}
		for _, c := range s.Class {
			addBytes(p, attrClass, c)
		}
		if r.Status != AcctStart {
			c := r.Counters
			addInt(p, attrAcctSessionTime, uint32(c.SessionTime/time.Second))
			addInt(p, attrAcctInputOctets, uint32(c.InOctets))
			addInt(p, attrAcctInputGigawords, uint32(c.InOctets>>32))
			addInt(p, attrAcctOutputOctets, uint32(c.OutOctets))
			addInt(p, attrAcctOutputGigawords, uint32(c.OutOctets>>32))
			addInt(p, attrAcctInputPackets, uint32(c.InPackets))
			addInt(p, attrAcctOutputPackets, uint32(c.OutPackets))
		}
		if r.Status == AcctStop {
			addInt(p, attrAcctTerminateCause, uint32(r.Cause))
		}
	}
	addInt(p, attrEventTimestamp, uint32(r.Event.Unix()))
	delay := now.Sub(r.Event)
	addInt(p, attrAcctDelayTime, uint32(max(delay, 0)/time.Second))
}

func encodeIPv6Prefix(p netip.Prefix) []byte {
	a := p.Masked().Addr().As16()
	n := (p.Bits() + 7) / 8
	return append([]byte{0, byte(p.Bits())}, a[:n]...)
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
	a.add(&record{Status: AcctStart, Session: *s, Event: c.now()})
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
	a.add(&record{Status: AcctInterim, Session: *t.s, Counters: t.counters(), Event: a.c.now()})
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
		c.accounter.add(&record{Status: AcctInterim, Session: *s, Counters: ctr, Event: c.now()})
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
	a.add(&record{Status: AcctStop, Session: *s, Counters: ctr, Cause: cause, Event: c.now()})
}

// AccountingOn sends Accounting-On (the NAS has started; RFC 2866 5.1)
// and waits for the answer; call it at daemon start.
func (c *Client) AccountingOn(ctx context.Context) error { return c.onOff(ctx, AcctOn) }

// AccountingOff sends Accounting-Off; call it at orderly shutdown, after
// the sessions' Stops.
func (c *Client) AccountingOff(ctx context.Context) error { return c.onOff(ctx, AcctOff) }

func (c *Client) onOff(ctx context.Context, st AcctStatus) error {
	r := &record{Status: st, Session: auth.AcctSession{ID: fmt.Sprintf("%s-%d", st, c.now().Unix())}, Event: c.now()}
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
	return len(c.accounter.pending)
}
