package endpoint

import (
	"testing"
	"time"
)

func TestWakeAt(t *testing.T) {
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ms := time.Millisecond
	for _, tc := range []struct {
		name      string
		now, next time.Duration // from base
		want      time.Duration
	}{
		{"echo in 30 s: next whole second", 0, 30*time.Second + 250*ms, 31 * time.Second},
		{"on the grid already", 0, 30 * time.Second, 30 * time.Second},
		{"retransmission in 1 s: 100 ms grid", 0, 1000*ms + 30*ms, 1100 * ms},
		{"restart in 500 ms: 10 ms grid", 0, 503 * ms, 510 * ms},
		{"close deadline: exact", 0, 50*ms + 3*time.Microsecond, 50*ms + 3*time.Microsecond},
		{"past deadline: exact", 10 * ms, 3 * ms, 3 * ms},
		{"8 s away: 1 s grid", 500 * ms, 8*time.Second + 600*ms, 9 * time.Second},
		{"7.9 s away: 100 ms grid", 700 * ms, 8*time.Second + 600*ms, 8*time.Second + 600*ms},
	} {
		got := wakeAt(base.Add(tc.next), base.Add(tc.now))
		if want := base.Add(tc.want); !got.Equal(want) {
			t.Errorf("%s: wake at %v, want %v", tc.name, got.Sub(base), tc.want)
		}
		if got.Before(base.Add(tc.next)) {
			t.Errorf("%s: wakes before the deadline", tc.name)
		}
	}
}

// Deadlines within one grid step wake the tunnel once.
func TestWakeAtCoalesces(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	first := wakeAt(now.Add(30*time.Second+10*time.Millisecond), now)
	for d := 10 * time.Millisecond; d < time.Second; d += 97 * time.Millisecond {
		if w := wakeAt(now.Add(30*time.Second+d), now); !w.Equal(first) {
			t.Fatalf("deadline +%v wakes at %v, want %v", d, w.Sub(now), first.Sub(now))
		}
	}
}
