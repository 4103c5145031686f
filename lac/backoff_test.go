package lac

import (
	"testing"
	"time"
)

func TestNextBackoff(t *testing.T) {
	const lo, hi = time.Second, time.Minute
	cases := []struct {
		name        string
		last, upFor time.Duration
		want        time.Duration
	}{
		{"first attempt", 0, 0, lo},
		{"never up doubles", 4 * time.Second, 0, 8 * time.Second},
		{"capped", 40 * time.Second, 0, hi},
		{"up an instant still doubles", 8 * time.Second, 2 * time.Second, 16 * time.Second},
		{"stable tunnel resets", 32 * time.Second, StableUptime, lo},
	}
	for _, c := range cases {
		if got := nextBackoff(c.last, lo, hi, c.upFor); got != c.want {
			t.Errorf("%s: nextBackoff(%v, up %v) = %v, want %v", c.name, c.last, c.upFor, got, c.want)
		}
	}
	if got := nextBackoff(0, 0, 0, 0); got != 100*time.Millisecond {
		t.Errorf("zero config: %v, want the 100ms floor", got)
	}
}
