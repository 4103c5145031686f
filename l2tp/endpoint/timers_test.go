package endpoint

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/l2tpd/l2tpd/l2tp"
	"github.com/l2tpd/l2tpd/l2tp/tunnel"
)

// fakeDriver has a settable deadline and counts ticks.
type fakeDriver struct {
	deadline time.Time
	ticks    int
	onTick   func(now time.Time)
	ticked   chan time.Time
}

func (d *fakeDriver) Frame(time.Time, []byte) {}
func (d *fakeDriver) Tick(now time.Time) {
	d.ticks++
	if d.onTick != nil {
		d.onTick(now)
	}
	if d.ticked != nil {
		select {
		case d.ticked <- now:
		default:
		}
	}
}
func (d *fakeDriver) Deadline() time.Time     { return d.deadline }
func (d *fakeDriver) Close(time.Time, string) {}

func timerTunnel(n int, base time.Time) (*Tunnel, []*fakeDriver) {
	t := &Tunnel{sessions: make(map[uint32]*Session)}
	var ds []*fakeDriver
	for i := range n {
		d := &fakeDriver{deadline: base.Add(time.Duration(n-i) * time.Second)}
		s := &Session{T: t, ID: uint32(i + 1), driver: d}
		t.sessions[s.ID] = s
		t.schedule(s)
		ds = append(ds, d)
	}
	return t, ds
}

// scheduled is how many sessions wait in the tunnel's heap and slots.
func scheduled(tun *Tunnel) int {
	n := len(tun.timers)
	for _, sl := range tun.slots {
		n += len(sl.sessions)
	}
	return n
}

// earliest is the session of the earliest deadline in the heap and slots.
func earliest(tun *Tunnel) *Session {
	var s *Session
	if len(tun.timers) > 0 {
		s = tun.timers[0].s
	}
	if len(tun.slots) > 0 && (s == nil || tun.slots[0].due.Before(s.due)) {
		s = tun.slots[0].sessions[0]
	}
	return s
}

// checkTimers checks the heap's and the slots' invariants: every heap
// entry's deadline is its session's, every session knows its place, no
// child is earlier than its parent; every slot is a whole second, holds
// sessions due then, is found by its key and knows its place; no session
// is in both.
func checkTimers(t *testing.T, tun *Tunnel, step int) {
	t.Helper()
	h := tun.timers
	for i, e := range h {
		if int(e.s.hidx) != i+1 {
			t.Fatalf("step %d: heap slot %d holds session %d whose index is %d", step, i, e.s.ID, e.s.hidx)
		}
		if !e.due.Equal(e.s.due) {
			t.Fatalf("step %d: heap slot %d has deadline %v, its session %v", step, i, e.due, e.s.due)
		}
		if i > 0 && e.due.Before(h[(i-1)/2].due) {
			t.Fatalf("step %d: heap slot %d is earlier than its parent", step, i)
		}
		if e.s.slot != nil {
			t.Fatalf("step %d: session %d is in the heap and a slot", step, e.s.ID)
		}
	}
	if len(tun.slotOf) != len(tun.slots) {
		t.Fatalf("step %d: %d slots, %d keys", step, len(tun.slots), len(tun.slotOf))
	}
	for i, sl := range tun.slots {
		if sl.hidx != i || tun.slotOf[sl.key] != sl || len(sl.sessions) == 0 {
			t.Fatalf("step %d: slot %d (key %d, %d sessions) has index %d or is not found by its key", step, i, sl.key, len(sl.sessions), sl.hidx)
		}
		if k, ok := slotKey(sl.due); !ok || k != sl.key {
			t.Fatalf("step %d: slot %d due %v has key %d", step, i, sl.due, sl.key)
		}
		if i > 0 && sl.due.Before(tun.slots[(i-1)/2].due) {
			t.Fatalf("step %d: slot %d is earlier than its parent", step, i)
		}
		for j, s := range sl.sessions {
			if s.slot != sl || int(s.spos) != j || !s.due.Equal(sl.due) || s.hidx != 0 {
				t.Fatalf("step %d: session %d at %d of slot %d: slot %p spos %d due %v hidx %d", step, s.ID, j, i, s.slot, s.spos, s.due, s.hidx)
			}
		}
	}
}

// Drivers are ticked in deadline order, each once per pass, only when due;
// a driver that moves its deadline is rescheduled; one that clears it
// leaves the heap. Deadlines on whole seconds (the slots) and off them
// (the heap) alike.
func TestDriverTimers(t *testing.T) {
	for _, off := range []time.Duration{0, time.Millisecond} {
		t.Run(fmt.Sprint("offset=", off), func(t *testing.T) { testDriverTimers(t, off) })
	}
}

func testDriverTimers(t *testing.T, off time.Duration) {
	base := time.Unix(1_700_000_000, 0).Add(off)
	tun, ds := timerTunnel(5, base) // deadlines base+5s (session 1) .. base+1s (session 5)
	if got := earliest(tun).ID; got != 5 {
		t.Fatalf("earliest session %d, want 5", got)
	}
	tun.tickDrivers(base.Add(500 * time.Millisecond))
	for i, d := range ds {
		if d.ticks != 0 {
			t.Fatalf("driver %d ticked before its deadline", i+1)
		}
	}
	// Session 5's driver, once ticked, wants to be ticked again at once:
	// it must still be ticked only once per pass.
	ds[4].onTick = func(now time.Time) { ds[4].deadline = now }
	tun.tickDrivers(base.Add(2 * time.Second))
	if ds[4].ticks != 1 || ds[3].ticks != 1 || ds[2].ticks != 0 {
		t.Fatalf("ticks %d %d %d, want sessions 5 and 4 once, 3 not yet", ds[4].ticks, ds[3].ticks, ds[2].ticks)
	}
	// Session 4 clears its deadline, session 1 moves its one earlier.
	ds[3].deadline = time.Time{}
	tun.schedule(tun.sessions[4])
	ds[0].deadline = base.Add(1500 * time.Millisecond)
	tun.schedule(tun.sessions[1])
	if n := scheduled(tun); n != 4 {
		t.Fatalf("heap and slots hold %d sessions, want 4", n)
	}
	ds[4].onTick = nil
	ds[4].deadline = base.Add(time.Hour)
	tun.tickDrivers(base.Add(2 * time.Second))
	if ds[0].ticks != 1 || ds[4].ticks != 2 || ds[3].ticks != 1 {
		t.Fatalf("ticks s1=%d s5=%d s4=%d, want 1 2 1", ds[0].ticks, ds[4].ticks, ds[3].ticks)
	}
	// A session taken out is never ticked again.
	tun.unschedule(tun.sessions[3])
	delete(tun.sessions, 3)
	tun.tickDrivers(base.Add(time.Minute))
	if ds[2].ticks != 0 {
		t.Fatal("removed session ticked")
	}
	checkTimers(t, tun, -1)
}

// Through a running endpoint: a driver's deadline fires with no other
// event, Post moves it, and a closed session is not ticked again.
func TestEndpointDriverDeadline(t *testing.T) {
	d := &fakeDriver{ticked: make(chan time.Time, 1)}
	s, lnsRec := driverSession(t, d)
	start := time.Now()
	if !s.Post(func(now time.Time) { d.deadline = now.Add(50 * time.Millisecond) }) {
		t.Fatal("Post on a live session failed")
	}
	at := waitFor(t, d.ticked, "driver tick")
	if el := at.Sub(start); el < 50*time.Millisecond {
		t.Fatalf("ticked after %v, before its deadline", el)
	}
	s.Post(func(now time.Time) { d.deadline = time.Time{} })
	s.T.Hangup(s.ID, l2tp.ResultCode{Result: l2tp.ResultCDNAdmin}, "test")
	waitFor(t, lnsRec.sessDown, "LNS session down")
	n := make(chan int, 1)
	s.T.do(func(time.Time) { n <- scheduled(s.T) })
	if got := <-n; got != 0 {
		t.Fatalf("%d sessions left in the timer heap and slots", got)
	}
}

// driverSession sets up an LNS and a LAC, places a call, and returns the
// LNS's session, whose driver is d, and the LNS's recorder.
func driverSession(t *testing.T, d *fakeDriver) (*Session, *recorder) {
	t.Helper()
	lnsRec, lacRec := newRecorder(), newRecorder()
	drivers := &driverRecorder{recorder: lnsRec, d: d}
	lns, lac, _ := newPairCfg(t, lnsRec, lacRec, func(c *Config) { c.Handler = drivers })
	tun := dialLNS(t, lns, lac, lacRec)
	waitFor(t, lacRec.tunnelsUp, "tunnel up")
	if _, err := tun.PlaceCall(tunnel.Incoming, tunnel.CallInfo{}); err != nil {
		t.Fatal(err)
	}
	return waitFor(t, lnsRec.sessUp, "LNS session up"), lnsRec
}

// A session that has ended is not live, and what is posted to it
// afterwards does not run.
func TestEndedSessionGetsNoCalls(t *testing.T) {
	s, lnsRec := driverSession(t, &fakeDriver{})
	ran := make(chan bool, 2)
	s.Post(func(time.Time) { ran <- true })
	if !<-ran {
		t.Fatal("a call posted to a live session did not run")
	}
	s.T.Hangup(s.ID, l2tp.ResultCode{Result: l2tp.ResultCDNAdmin}, "test")
	waitFor(t, lnsRec.sessDown, "LNS session down")
	s.Post(func(time.Time) { ran <- true })
	// Commands run in order: once this one has run, the post before it
	// has been handled.
	s.T.do(func(time.Time) { ran <- false })
	if <-ran {
		t.Fatal("a call posted to an ended session ran")
	}
	live := make(chan bool, 1)
	s.T.do(func(time.Time) { live <- s.T.live(s) })
	if <-live {
		t.Fatal("an ended session is still live")
	}
}

// driverRecorder is a recorder whose sessions run d.
type driverRecorder struct {
	*recorder
	d *fakeDriver
}

func (r *driverRecorder) SessionUp(s *Session) Driver { r.recorder.SessionUp(s); return r.d }

// scanDeadlines is the per-event work before the heap: every driver's
// deadline read twice (due check, next deadline).
func scanDeadlines(t *Tunnel, now time.Time) time.Time {
	for _, s := range t.sessions {
		if s.driver != nil {
			if d := s.driver.Deadline(); !d.IsZero() && !now.Before(d) {
				s.driver.Tick(now)
			}
		}
	}
	var next time.Time
	for _, s := range t.sessions {
		if s.driver != nil {
			if d := s.driver.Deadline(); !d.IsZero() && (next.IsZero() || d.Before(next)) {
				next = d
			}
		}
	}
	return next
}

// BenchmarkDriverDeadlines: the timer work of one event (a frame for one
// session, which moves its deadline) on a tunnel with N sessions.
func BenchmarkDriverDeadlines(b *testing.B) {
	base := time.Unix(1_700_000_000, 0)
	for _, n := range []int{10, 1000} {
		b.Run(fmt.Sprintf("heap/%d", n), func(b *testing.B) {
			b.ReportAllocs()
			tun, ds := timerTunnel(n, base.Add(time.Hour))
			s := tun.sessions[1]
			b.ResetTimer()
			for i := range b.N {
				ds[0].deadline = base.Add(time.Duration(i%1000) * time.Second)
				tun.schedule(s)
				tun.tickDrivers(base)
				if len(tun.timers) > 0 {
					_ = tun.timers[0].due
				}
			}
		})
		b.Run(fmt.Sprintf("scan/%d", n), func(b *testing.B) {
			b.ReportAllocs()
			tun, ds := timerTunnel(n, base.Add(time.Hour))
			b.ResetTimer()
			for i := range b.N {
				ds[0].deadline = base.Add(time.Duration(i%1000) * time.Second)
				scanDeadlines(tun, base)
			}
		})
	}
}

// The hand-written heap against its invariants under random moves, adds
// and removals (checkTimers), and removing the root repeatedly gives the
// deadlines in order. The deadlines are off whole seconds: all in the heap.
func TestSessionHeapRandom(t *testing.T) {
	base := time.Unix(1_700_000_000, 0).Add(time.Microsecond)
	rng := rand.New(rand.NewPCG(1, 2))
	tun, ds := timerTunnel(200, base)
	for step := range 5000 {
		i := rng.IntN(len(ds))
		s := tun.sessions[uint32(i+1)]
		switch rng.IntN(4) {
		case 0: // cleared: out of the heap
			ds[i].deadline = time.Time{}
		default: // moved anywhere (often later, as a restart timer)
			ds[i].deadline = base.Add(time.Duration(rng.IntN(100_000)) * time.Millisecond)
		}
		tun.schedule(s)
		checkTimers(t, tun, step)
	}
	if len(tun.slots) != 0 {
		t.Fatalf("%d slots for deadlines off whole seconds", len(tun.slots))
	}
	var prev time.Time
	for len(tun.timers) > 0 {
		s := tun.timers.remove(0)
		if s.due.Before(prev) || s.hidx != 0 {
			t.Fatalf("removed out of order (%v after %v) or still indexed (%d)", s.due, prev, s.hidx)
		}
		prev = s.due
		checkTimers(t, tun, -1)
	}
}

// Heap and slots together under random moves between whole seconds, off
// them and none, and sessions ending (checkTimers after each); then time
// runs on in random steps: every tick comes at or after its driver's
// deadline, and after each pass no session is left due.
func TestTimerSlotsRandom(t *testing.T) {
	base := time.Unix(1_700_000_000, 0)
	rng := rand.New(rand.NewPCG(3, 4))
	tun, ds := timerTunnel(300, base)
	deadline := func() time.Time {
		switch rng.IntN(5) {
		case 0:
			return time.Time{}
		case 1, 2: // an echo: a whole second, often one others share
			return base.Add(time.Duration(rng.IntN(40)) * time.Second)
		default: // a restart timer
			return base.Add(time.Duration(rng.IntN(40_000_000)) * time.Microsecond)
		}
	}
	for step := range 20000 {
		i := rng.IntN(len(ds))
		s := tun.sessions[uint32(i+1)]
		if s == nil {
			continue
		}
		if rng.IntN(50) == 0 { // the session ends
			tun.dropSession(s.ID)
		} else {
			ds[i].deadline = deadline()
			tun.schedule(s)
		}
		checkTimers(t, tun, step)
	}
	for i, d := range ds {
		d.ticks = 0
		d.onTick = func(now time.Time) {
			if d.deadline.IsZero() || now.Before(d.deadline) {
				t.Fatalf("session %d ticked at %v, deadline %v", i+1, now, d.deadline)
			}
			if rng.IntN(3) == 0 {
				d.deadline = now.Add(time.Duration(1+rng.IntN(5)) * time.Second).Truncate(time.Second)
			} else {
				d.deadline = time.Time{}
			}
		}
	}
	now := base
	for range 400 {
		now = now.Add(time.Duration(rng.IntN(300)) * time.Millisecond)
		tun.tickDrivers(now)
		checkTimers(t, tun, -1)
		for id, s := range tun.sessions {
			if s.hidx == 0 && s.slot == nil {
				continue
			}
			if !now.Before(s.due) {
				t.Fatalf("session %d due %v still waits at %v", id, s.due, now)
			}
		}
	}
}

// BenchmarkEchoRound: the timer work of LCP echoes held over many
// sessions, as in the 100,000-session run of docs/benchmarks.md: 100
// tunnels of 1,000 sessions whose deadlines fall on whole seconds over a
// 30 s interval; each op is one second, every tunnel ticking its due
// drivers, each of which moves its deadline 30 s on. It measures the
// timer pass's own work: its sessions are small and fit a large cache
// (this machine's L3 holds 480 MiB), where a server holding 100,000
// sessions misses the cache on most of them (docs/benchmarks.md).
func BenchmarkEchoRound(b *testing.B) {
	const tunnels, perTunnel, interval = 100, 1000, 30
	base := time.Unix(1_700_000_000, 0)
	var tuns []*Tunnel
	var all []*fakeDriver
	for range tunnels {
		tun, ds := timerTunnel(perTunnel, base)
		all = append(all, ds...)
		for i, d := range ds {
			d.deadline = base.Add(time.Duration(1+(i*7)%interval) * time.Second)
			d.onTick = func(now time.Time) { d.deadline = now.Add(interval * time.Second) }
			tun.schedule(tun.sessions[uint32(i+1)])
		}
		tuns = append(tuns, tun)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		now := base.Add(time.Duration(i+1) * time.Second)
		for _, tun := range tuns {
			n := scheduled(tun)
			tun.tickDrivers(now)
			if scheduled(tun) != n {
				b.Fatal("a session left the timers")
			}
		}
	}
	ticks := 0
	for _, d := range all {
		ticks += d.ticks
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(ticks), "ns/tick")
}
