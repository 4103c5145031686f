package ppp

import (
	"strings"
	"testing"
	"time"

	"github.com/l2tpd/l2tpd/auth"
)

func TestEchoAt(t *testing.T) {
	base := time.Unix(1_000_000, 300_000_000) // .3 s past a second
	for _, tc := range []struct {
		interval time.Duration
		want     time.Time
	}{
		{30 * time.Second, time.Unix(1_000_031, 0)},                      // 30.3 s rounded up
		{25*time.Second + 700*time.Millisecond, time.Unix(1_000_026, 0)}, // exactly on a second: kept
		{2 * time.Second, time.Unix(1_000_003, 0)},
		{1900 * time.Millisecond, base.Add(1900 * time.Millisecond)}, // short: exact
		{500 * time.Millisecond, base.Add(500 * time.Millisecond)},
	} {
		got := echoAt(base, tc.interval)
		if !got.Equal(tc.want) {
			t.Errorf("echoAt(%v, %v) = %v, want %v", base, tc.interval, got, tc.want)
		}
		if d := got.Sub(base); d < tc.interval || d >= tc.interval+time.Second {
			t.Errorf("echoAt(%v) is %v after now: not within [interval, interval+1s)", tc.interval, d)
		}
	}
	// The monotonic reading of now survives (a wall clock step cannot
	// move an echo by more than the rounding).
	if s := echoAt(time.Now(), 30*time.Second).String(); !strings.Contains(s, "m=") {
		t.Errorf("echoAt dropped the monotonic clock reading: %s", s)
	}
}

// Echoes of an opened link fall due on whole seconds, are answered, and
// EchoFailures unanswered ones close the link.
func TestEchoRequestsOnWholeSecondsAndFailures(t *testing.T) {
	p := newPair(t, Config{AuthMethods: methods(auth.MethodCHAPMD5), EchoInterval: 30 * time.Second, EchoFailures: 3},
		Config{Username: "alice", Password: "s3cret", EchoInterval: -1})
	p.now = p.now.Add(250 * time.Millisecond)
	p.lns.l.Open(p.now)
	p.lac.l.Open(p.now)
	p.run(time.Minute)
	if len(p.lns.ups) == 0 {
		t.Fatal("no NetworkUp")
	}
	requests, replies := 0, 0
	answer := true
	p.drop = func(s *side, frame []byte) bool {
		if len(frame) < 3 || frame[0] != 0xc0 || frame[1] != 0x21 {
			return false
		}
		switch frame[2] {
		case 9: // Echo-Request
			if s == &p.lns {
				requests++
			}
		case 10: // Echo-Reply
			if s == &p.lac {
				replies++
				return !answer
			}
		}
		return false
	}
	for i := range 4 {
		d := p.lns.l.Deadline()
		if d.IsZero() || d.Nanosecond() != 0 {
			t.Fatalf("echo %d: deadline %v not on a whole second", i, d)
		}
		if i == 0 && (d.Sub(p.now) < 30*time.Second || d.Sub(p.now) >= 31*time.Second) {
			t.Fatalf("first echo due %v after up, want [30s, 31s)", d.Sub(p.now))
		}
		p.now = d
		p.lns.l.Tick(p.now)
		p.run(time.Second)
		if requests != i+1 || replies != i+1 {
			t.Fatalf("after echo %d: %d requests, %d replies", i, requests, replies)
		}
		if p.lns.down != nil {
			t.Fatalf("link down with echoes answered: %v", p.lns.down)
		}
	}
	answer = false
	for range 4 {
		if p.lns.down != nil {
			break
		}
		p.now = p.lns.l.Deadline()
		p.lns.l.Tick(p.now)
		p.run(time.Second)
	}
	if p.lns.down == nil || !strings.Contains(p.lns.down.Reason, "3 LCP Echo-Requests unanswered") {
		t.Fatalf("unanswered echoes: down = %v", p.lns.down)
	}
}
