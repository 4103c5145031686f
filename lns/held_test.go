package lns

import (
	"math/rand/v2"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/l2tpd/l2tpd/config"
	"github.com/l2tpd/l2tpd/l2tp/tunnel"
)

// fakeClock is the LNS's clock in tests, moved by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newHeldLNS(t testing.TB) (*LNS, *fakeClock) {
	t.Helper()
	cfg, err := config.Parse([]byte("[l2tp]\nmax_starting = 1\n"), "test.toml")
	if err != nil {
		t.Fatal(err)
	}
	l := New(cfg, zap.NewNop(), nil)
	c := &fakeClock{t: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
	l.now = c.now
	return l, c
}

// step is one observation of a tunnel, as the endpoint makes them.
type step struct {
	advance time.Duration
	tunnel  int
	what    string // "call" (AdmitCall), "sync" (RetryDeferred's done), "abandon" (CallAbandoned), "down" (TunnelDown)
	n       int    // the core's held calls at the observation (for "abandon": besides the abandoned one)
	outcome string // for "call": "admit", "defer", "refuse"
	cause   tunnel.AbandonCause
}

const wait = 30 * time.Second

func TestHeldCalls(t *testing.T) {
	for _, tc := range []struct {
		name  string
		steps []step
		want  HeldStats
	}{{
		name: "no call held: nothing counted",
		steps: []step{
			{what: "call", outcome: "admit"},
			{what: "call", outcome: "refuse"},
			{what: "down"},
		},
	}, {
		name: "held, then admitted",
		steps: []step{
			{what: "call", outcome: "defer"},
			{advance: 2 * time.Second, what: "call", n: 1, outcome: "admit"},
			{what: "sync", n: 0},
		},
		want: HeldStats{Total: 1, Admitted: 1, MaxWait: 2 * time.Second},
	}, {
		name: "held, retried without a slot, still held",
		steps: []step{
			{what: "call", outcome: "defer"},
			{advance: time.Second, what: "call", n: 1, outcome: "defer"},
			{advance: time.Second, what: "sync", n: 1},
		},
		want: HeldStats{Held: 1, Total: 1, OldestWait: 2 * time.Second},
	}, {
		name: "calls held behind the first are counted when seen",
		steps: []step{
			{what: "call", outcome: "defer"},
			{advance: time.Second, what: "call", n: 3, outcome: "admit"},
			{advance: time.Second, what: "sync", n: 2},
		},
		want: HeldStats{Held: 2, Total: 3, Admitted: 1, MaxWait: time.Second, OldestWait: time.Second},
	}, {
		name: "max_starting_wait runs out: expired, oldest first",
		steps: []step{
			{what: "call", outcome: "defer"},
			{advance: 10 * time.Second, what: "sync", n: 2},
			{advance: 20 * time.Second, what: "abandon", n: 1, cause: tunnel.AbandonExpired}, // the first one's 30 s are over
			{advance: 10 * time.Second, what: "abandon", n: 0, cause: tunnel.AbandonExpired},
		},
		want: HeldStats{Total: 2, Expired: 2},
	}, {
		name: "two expire in one batch, one not seen held before",
		steps: []step{
			{what: "call", outcome: "defer"},
			{advance: wait, what: "abandon", n: 0, cause: tunnel.AbandonExpired},
			{what: "abandon", n: 0, cause: tunnel.AbandonExpired},
		},
		want: HeldStats{Total: 2, Expired: 2},
	}, {
		name: "a count below the LNS's is not an end: the events say how they ended",
		steps: []step{
			{what: "call", outcome: "defer"},
			{what: "sync", n: 2},
			{advance: time.Second, what: "sync", n: 0},
			{what: "abandon", n: 0, cause: tunnel.AbandonPeerCleared},
			{what: "abandon", n: 0, cause: tunnel.AbandonExpired},
		},
		want: HeldStats{Total: 2, Expired: 1, Ended: 1},
	}, {
		name: "a new call after every held one expired",
		steps: []step{
			{what: "call", outcome: "defer"},
			{advance: wait, what: "abandon", n: 0, cause: tunnel.AbandonExpired},
			{what: "call", n: 0, outcome: "admit"},
		},
		want: HeldStats{Total: 1, Expired: 1},
	}, {
		name: "cleared by the LAC before its wait ran out",
		steps: []step{
			{what: "call", outcome: "defer"},
			{advance: time.Second, what: "abandon", n: 0, cause: tunnel.AbandonPeerCleared},
		},
		want: HeldStats{Total: 1, Ended: 1},
	}, {
		name: "refused when retried (draining)",
		steps: []step{
			{what: "call", outcome: "defer"},
			{advance: time.Second, what: "call", n: 1, outcome: "refuse"},
			{what: "abandon", n: 0, cause: tunnel.AbandonRefused}, // counted once
		},
		want: HeldStats{Total: 1, Ended: 1},
	}, {
		name: "tunnel down with calls held",
		steps: []step{
			{what: "call", outcome: "defer"},
			{what: "sync", n: 2},
			{advance: time.Second, what: "down"},
		},
		want: HeldStats{Total: 2, Ended: 2},
	}, {
		name: "two tunnels: the oldest wait across them",
		steps: []step{
			{tunnel: 0, what: "call", outcome: "defer"},
			{advance: 5 * time.Second, tunnel: 1, what: "call", outcome: "defer"},
			{advance: 5 * time.Second, tunnel: 0, what: "call", n: 1, outcome: "admit"},
			{advance: time.Second, tunnel: 1, what: "sync", n: 1},
		},
		want: HeldStats{Held: 1, Total: 2, Admitted: 1, MaxWait: 10 * time.Second, OldestWait: 6 * time.Second},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			l, c := newHeldLNS(t)
			sts := []*tunnelState{{}, {}}
			for i, s := range tc.steps {
				c.advance(s.advance)
				st := sts[s.tunnel]
				switch s.what {
				case "call":
					l.noteCall(st, wait, s.n, s.outcome == "admit", s.outcome == "defer")
				case "sync":
					l.mu.Lock()
					l.held.sync(&st.held, s.n, c.now())
					l.mu.Unlock()
				case "abandon":
					l.noteAbandoned(st, s.n, s.cause)
				case "down":
					l.mu.Lock()
					l.held.drop(&st.held)
					l.mu.Unlock()
				default:
					t.Fatalf("step %d: unknown %q", i, s.what)
				}
			}
			if got := l.HeldCalls(); got != tc.want {
				t.Errorf("HeldCalls() =\n%+v, want\n%+v", got, tc.want)
			}
		})
	}
}

// Whatever the order of observations, every call counted held is held,
// admitted, expired or ended, and a tunnel with nothing held is not kept.
func TestHeldCallsBalance(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	l, c := newHeldLNS(t)
	sts := make([]*tunnelState, 4)
	for i := range sts {
		sts[i] = &tunnelState{}
	}
	for range 10_000 {
		c.advance(time.Duration(r.IntN(5000)) * time.Millisecond)
		st := sts[r.IntN(len(sts))]
		n := r.IntN(4)
		if r.IntN(2) == 0 {
			o := r.IntN(3)
			l.noteCall(st, wait, n, o == 0, o == 1)
		} else if r.IntN(2) == 0 {
			l.mu.Lock()
			l.held.sync(&st.held, n, c.now())
			l.mu.Unlock()
		} else {
			l.mu.Lock()
			l.held.abandoned(&st.held, tunnel.AbandonCause(1+r.IntN(5)))
			l.mu.Unlock()
		}
		s := l.HeldCalls()
		if s.Total != uint64(s.Held)+s.Admitted+s.Expired+s.Ended {
			t.Fatalf("unbalanced: %+v", s)
		}
		known := 0
		for _, st := range sts {
			known += len(st.held.since)
		}
		if known != s.Held || len(l.held.busy) > len(sts) {
			t.Fatalf("held %d, queues hold %d, %d busy", s.Held, known, len(l.held.busy))
		}
	}
	for _, st := range sts {
		l.held.drop(&st.held)
	}
	if s := l.HeldCalls(); s.Held != 0 || s.OldestWait != 0 || len(l.held.busy) != 0 {
		t.Fatalf("after every tunnel emptied: %+v, %d busy", s, len(l.held.busy))
	}
}

func BenchmarkNoteCallNothingHeld(b *testing.B) {
	b.ReportAllocs()
	l, _ := newHeldLNS(b)
	st := &tunnelState{}
	for b.Loop() {
		l.noteCall(st, wait, 0, true, false)
	}
}
