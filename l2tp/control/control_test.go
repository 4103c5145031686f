package control

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

// msg is a recognisable body for message number i.
func msg(i int) []byte { return []byte(fmt.Sprintf("m%d", i)) }

func names(bodies [][]byte) []string {
	var s []string
	for _, b := range bodies {
		s = append(s, string(b))
	}
	return s
}

func mustReceive(t *testing.T, c *Channel, now time.Time, ns, nr uint16, body []byte) []string {
	t.Helper()
	d, err := c.Receive(now, ns, nr, body)
	if err != nil {
		t.Fatalf("Receive(ns=%d, nr=%d): %v", ns, nr, err)
	}
	return names(d)
}

func TestConfigDefaults(t *testing.T) {
	got := Config{}.WithDefaults()
	want := Config{
		RecvWindow:        16,
		PeerWindow:        4,
		RetransmitInitial: time.Second,
		RetransmitCap:     16 * time.Second,
		MaxRetransmits:    5,
		AckDelay:          0, // the end of the pass
		HelloInterval:     0, // zero disables Hello; not defaulted
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("WithDefaults (-want +got):\n%s", diff)
	}
	set := Config{RecvWindow: 8, PeerWindow: 10, RetransmitInitial: 2 * time.Second,
		RetransmitCap: 20 * time.Second, MaxRetransmits: 7, AckDelay: time.Millisecond, HelloInterval: time.Minute}
	if diff := cmp.Diff(set, set.WithDefaults()); diff != "" {
		t.Errorf("WithDefaults changed set fields (-want +got):\n%s", diff)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"zero", Config{}, ""},
		{"cap 8s", Config{RetransmitCap: 8 * time.Second}, ""},
		{"cap below 8s", Config{RetransmitCap: 7 * time.Second}, "below the 8s"},
		{"cap below initial", Config{RetransmitInitial: 10 * time.Second, RetransmitCap: 9 * time.Second}, "below the initial"},
		{"recv window too big", Config{RecvWindow: 40000}, "receive window"},
		{"peer window too big", Config{PeerWindow: 40000}, "peer window"},
		{"negative retries", Config{MaxRetransmits: -1}, "retransmission limit"},
		{"negative ack delay", Config{AckDelay: -1}, "ack delay"},
		{"negative hello", Config{HelloInterval: -1}, "hello"},
		{"negative initial", Config{RetransmitInitial: -1}, "initial retransmission"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate = %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
}

// TestNewClampsCap: New raises a cap below 8 s instead of failing.
func TestNewClampsCap(t *testing.T) {
	c := New(Config{RetransmitCap: 2 * time.Second, RecvWindow: 65535}, t0)
	if got := c.Config().RetransmitCap; got != MinRetransmitCap {
		t.Errorf("cap = %v, want %v", got, MinRetransmitCap)
	}
	if got := c.Config().RecvWindow; got != MaxWindow {
		t.Errorf("recv window = %d, want %d", got, MaxWindow)
	}
}

func TestOrderedDelivery(t *testing.T) {
	c := New(Config{}, t0)
	for i := range 5 {
		got := mustReceive(t, c, t0, uint16(i), 0, msg(i))
		if want := []string{string(msg(i))}; !slices.Equal(got, want) {
			t.Fatalf("message %d: delivered %q, want %q", i, got, want)
		}
	}
	if c.Nr() != 5 {
		t.Errorf("Nr = %d, want 5", c.Nr())
	}
	if s := c.Stats(); s.Received != 5 || s.Delivered != 5 {
		t.Errorf("stats %+v, want 5 received and delivered", s)
	}
}

// TestReceiveTable: (receive state, incoming Ns) -> (delivered, Nr, held,
// which counter moved, whether an immediate ZLB is due with an ack delay).
func TestReceiveTable(t *testing.T) {
	type counters struct{ Dup, OOO, Drop uint64 }
	tests := []struct {
		name       string
		window     uint16
		before     []uint16 // Ns received first, in this order
		ns         uint16
		want       []string
		wantNr     uint16
		wantCount  counters
		wantZLBNow bool
	}{
		{"in order", 4, []uint16{0, 1}, 2, []string{"m2"}, 3, counters{}, false},
		{"duplicate", 4, []uint16{0, 1}, 1, nil, 2, counters{Dup: 1}, true},
		{"old duplicate", 4, []uint16{0, 1, 2, 3}, 0, nil, 4, counters{Dup: 1}, true},
		{"held", 4, []uint16{0}, 2, nil, 1, counters{OOO: 1}, false},
		{"held twice", 4, []uint16{0, 2}, 2, nil, 1, counters{OOO: 1, Dup: 1}, false},
		{"last in window", 4, []uint16{0}, 4, nil, 1, counters{OOO: 1}, false},
		{"beyond window", 4, []uint16{0}, 5, nil, 1, counters{Drop: 1}, false},
		{"far ahead", 4, nil, 30000, nil, 0, counters{Drop: 1}, false},
		{"fills gap", 4, []uint16{0, 2, 3}, 1, []string{"m1", "m2", "m3"}, 4, counters{OOO: 2}, false},
		{"fills first gap only", 8, []uint16{2, 4}, 0, []string{"m0"}, 1, counters{OOO: 2}, false},
		{"window 1 holds nothing", 1, nil, 1, nil, 0, counters{Drop: 1}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := New(Config{RecvWindow: tt.window, AckDelay: 100 * time.Millisecond}, t0)
			for _, ns := range tt.before {
				mustReceive(t, c, t0, ns, 0, msg(int(ns)))
			}
			c.Output(at(time.Hour), nil) // flush acks of the setup
			got := mustReceive(t, c, at(time.Hour), tt.ns, 0, msg(int(tt.ns)))
			if !slices.Equal(got, tt.want) {
				t.Errorf("delivered %q, want %q", got, tt.want)
			}
			if c.Nr() != tt.wantNr {
				t.Errorf("Nr = %d, want %d", c.Nr(), tt.wantNr)
			}
			s := c.Stats()
			if diff := cmp.Diff(tt.wantCount, counters{s.Duplicates, s.OutOfOrder, s.Dropped}); diff != "" {
				t.Errorf("counters (-want +got):\n%s", diff)
			}
			out := c.Output(at(time.Hour), nil)
			gotZLB := len(out) == 1 && out[0].IsZLB()
			if gotZLB != tt.wantZLBNow || (!tt.wantZLBNow && len(out) != 0) {
				t.Errorf("immediate output %+v, want ZLB now: %v", out, tt.wantZLBNow)
			}
		})
	}
}

func TestDuplicateAckedNotDelivered(t *testing.T) {
	c := New(Config{AckDelay: 100 * time.Millisecond}, t0)
	mustReceive(t, c, t0, 0, 0, msg(0))
	if out := c.Output(t0, nil); len(out) != 0 {
		t.Fatalf("ack sent before the delay: %+v", out)
	}
	// The peer retransmits (our ack was "lost"): not delivered again, and
	// acknowledged at once rather than after the delay.
	if got := mustReceive(t, c, at(10*time.Millisecond), 0, 0, msg(0)); got != nil {
		t.Fatalf("duplicate delivered: %q", got)
	}
	if d := c.Deadline(); !d.Equal(at(10 * time.Millisecond)) {
		t.Errorf("Deadline = %v, want the duplicate's arrival", d)
	}
	out := c.Output(at(10*time.Millisecond), nil)
	want := []Frame{{Ns: 0, Nr: 1}}
	if diff := cmp.Diff(want, out); diff != "" {
		t.Errorf("Output (-want +got):\n%s", diff)
	}
	if s := c.Stats(); s.Duplicates != 1 || s.ZLBsSent != 1 || s.Delivered != 1 {
		t.Errorf("stats %+v", s)
	}
}

func TestOutOfOrderHeldThenReleased(t *testing.T) {
	c := New(Config{}, t0)
	buf := make([]byte, 8) // the caller reuses its receive buffer
	recv := func(ns uint16) []string {
		n := copy(buf, msg(int(ns)))
		return mustReceive(t, c, t0, ns, 0, buf[:n])
	}
	if got := recv(2); got != nil {
		t.Fatalf("Ns 2 delivered early: %q", got)
	}
	if got := recv(1); got != nil {
		t.Fatalf("Ns 1 delivered early: %q", got)
	}
	got := recv(0)
	if want := []string{"m0", "m1", "m2"}; !slices.Equal(got, want) {
		t.Fatalf("delivered %q, want %q (held bodies must be copies)", got, want)
	}
	if c.Nr() != 3 {
		t.Errorf("Nr = %d, want 3", c.Nr())
	}
	if got := recv(3); !slices.Equal(got, []string{"m3"}) {
		t.Errorf("after release: delivered %q", got)
	}
}

func TestBeyondWindowDropped(t *testing.T) {
	c := New(Config{RecvWindow: 4}, t0)
	if got := mustReceive(t, c, t0, 4, 0, msg(4)); got != nil {
		t.Fatalf("delivered %q", got)
	}
	mustReceive(t, c, t0, 3, 0, msg(3)) // held: last Ns inside the window
	mustReceive(t, c, t0, 0, 0, msg(0))
	mustReceive(t, c, t0, 1, 0, msg(1))
	got := mustReceive(t, c, t0, 2, 0, msg(2))
	if want := []string{"m2", "m3"}; !slices.Equal(got, want) {
		t.Fatalf("delivered %q, want %q", got, want)
	}
	if c.Nr() != 4 {
		t.Fatalf("Nr = %d, want 4: the dropped Ns 4 must be retransmitted", c.Nr())
	}
	if got := mustReceive(t, c, t0, 4, 0, msg(4)); !slices.Equal(got, []string{"m4"}) {
		t.Errorf("retransmitted Ns 4: delivered %q", got)
	}
	if s := c.Stats(); s.Dropped != 1 || s.OutOfOrder != 1 {
		t.Errorf("stats %+v, want 1 dropped and 1 out of order", s)
	}
}

// TestWrapReceive receives across 65535 -> 0 with a window that does not
// divide 2^16, holding messages on both sides of the wrap.
func TestWrapReceive(t *testing.T) {
	c := New(Config{RecvWindow: 10}, t0)
	body := []byte("x")
	for i := range 65530 {
		if _, err := c.Receive(t0, uint16(i), 0, body); err != nil {
			t.Fatal(err)
		}
	}
	if c.Nr() != 65530 {
		t.Fatalf("Nr = %d", c.Nr())
	}
	order := []uint16{65535, 3, 0, 65531, 65533, 2, 65534, 1, 65532}
	for _, ns := range order {
		if got := mustReceive(t, c, t0, ns, 0, msg(int(ns))); got != nil {
			t.Fatalf("Ns %d delivered early: %q", ns, got)
		}
	}
	if got := mustReceive(t, c, t0, 4, 0, msg(4)); got != nil {
		t.Fatalf("Ns 4 (beyond window 65530+10) delivered %q", got)
	}
	got := mustReceive(t, c, t0, 65530, 0, msg(65530))
	want := []string{"m65530", "m65531", "m65532", "m65533", "m65534", "m65535", "m0", "m1", "m2", "m3"}
	if !slices.Equal(got, want) {
		t.Fatalf("delivered %q, want %q", got, want)
	}
	if c.Nr() != 4 {
		t.Errorf("Nr = %d, want 4", c.Nr())
	}
	// Across the wrap, 65535 is now a duplicate, not a far-future message.
	mustReceive(t, c, t0, 65535, 0, msg(65535))
	if s := c.Stats(); s.Duplicates != 1 || s.Dropped != 1 {
		t.Errorf("stats %+v: want 1 duplicate (65535), 1 dropped (Ns 4 early)", s)
	}
}

// TestWrapSend sends across 65535 -> 0 and acknowledges with an Nr that
// has wrapped.
func TestWrapSend(t *testing.T) {
	c := New(Config{PeerWindow: 4}, t0)
	var out []Frame
	for i := range 65534 {
		c.Send(t0, []byte("x"))
		out = c.Output(t0, out[:0])
		if len(out) != 1 || out[0].Ns != uint16(i) {
			t.Fatalf("message %d: output %+v", i, out)
		}
		if _, err := c.Receive(t0, 0, uint16(i+1), nil); err != nil {
			t.Fatal(err)
		}
	}
	// Grow the congestion window to the peer's 4 so all four go at once.
	for c.cwnd < 4 {
		c.onAck()
	}
	var ns []uint16
	for i := range 4 {
		ns = append(ns, c.Send(t0, msg(i)))
	}
	if want := []uint16{65534, 65535, 0, 1}; !slices.Equal(ns, want) {
		t.Fatalf("assigned Ns %v, want %v", ns, want)
	}
	out = c.Output(t0, out[:0])
	if len(out) != 4 {
		t.Fatalf("sent %d, want 4", len(out))
	}
	if _, err := c.Receive(t0, 0, 3, nil); !errors.Is(err, ErrBadNr) {
		t.Fatalf("Nr 3 (never sent) after wrap: err = %v, want ErrBadNr", err)
	}
	if _, err := c.Receive(t0, 0, 0, nil); err != nil {
		t.Fatal(err)
	}
	if c.Outstanding() != 2 {
		t.Fatalf("after Nr 0: outstanding %d, want 2", c.Outstanding())
	}
	if _, err := c.Receive(t0, 0, 65534, nil); err != nil {
		t.Fatalf("stale Nr: %v", err)
	}
	if _, err := c.Receive(t0, 0, 2, nil); err != nil {
		t.Fatal(err)
	}
	if c.Outstanding() != 0 || c.NextNs() != 2 {
		t.Errorf("outstanding %d, next Ns %d; want 0, 2", c.Outstanding(), c.NextNs())
	}
}

func TestBadNr(t *testing.T) {
	c := New(Config{}, t0)
	_, err := c.Receive(t0, 0, 1, msg(0))
	if !errors.Is(err, ErrBadNr) {
		t.Fatalf("Nr 1 with nothing sent: err = %v, want ErrBadNr", err)
	}
	if c.Nr() != 0 || c.Stats().Received != 0 || c.Stats().BadNr != 1 {
		t.Errorf("message with bad Nr was used: Nr %d, stats %+v", c.Nr(), c.Stats())
	}
	// Queued but not yet sent (cwnd 1) does not count as sent.
	c.Send(t0, msg(0))
	c.Send(t0, msg(1))
	if _, err := c.Receive(t0, 0, 1, nil); !errors.Is(err, ErrBadNr) {
		t.Fatalf("Nr 1 with nothing transmitted: err = %v", err)
	}
	if out := c.Output(t0, nil); len(out) != 1 {
		t.Fatalf("sent %d, want 1 (cwnd 1)", len(out))
	}
	if _, err := c.Receive(t0, 0, 2, nil); !errors.Is(err, ErrBadNr) {
		t.Fatalf("Nr 2 with only Ns 0 transmitted: err = %v", err)
	}
	if c.Outstanding() != 2 {
		t.Fatalf("bad ack was applied: outstanding %d", c.Outstanding())
	}
	if _, err := c.Receive(t0, 0, 1, nil); err != nil {
		t.Fatalf("good Nr: %v", err)
	}
	if c.Outstanding() != 1 {
		t.Errorf("outstanding %d, want 1", c.Outstanding())
	}
}

// TestRetransmitCapNotPowerOfTwo: the doubling stops at the cap even when
// the cap is not initial*2^k.
func TestRetransmitCapNotPowerOfTwo(t *testing.T) {
	c := New(Config{RetransmitCap: 10 * time.Second, MaxRetransmits: 6}, t0)
	c.Send(t0, msg(0))
	c.Output(t0, nil)
	var gaps []time.Duration
	for now := t0; !c.Failed(); {
		next := c.Deadline()
		if next.IsZero() {
			t.Fatal("no deadline with a message outstanding")
		}
		gaps = append(gaps, next.Sub(now))
		now = next
		c.Output(now, nil)
	}
	want := []time.Duration{1, 2, 4, 8, 10, 10, 10} // six retransmissions, then failure
	for i := range want {
		want[i] *= time.Second
	}
	if !slices.Equal(gaps, want) {
		t.Errorf("gaps %v, want %v", gaps, want)
	}
}

func TestRetransmitSchedule(t *testing.T) {
	c := New(Config{MaxRetransmits: 6}, t0)
	c.Send(t0, msg(0))
	if out := c.Output(t0, nil); len(out) != 1 || out[0].Retransmit {
		t.Fatalf("first send: %+v", out)
	}
	now := t0
	for i, gap := range []time.Duration{1, 2, 4, 8, 16, 16} {
		want := now.Add(gap * time.Second)
		if d := c.Deadline(); !d.Equal(want) {
			t.Fatalf("retransmission %d: Deadline %v, want +%v", i+1, d.Sub(t0), want.Sub(t0))
		}
		if out := c.Output(want.Add(-time.Millisecond), nil); len(out) != 0 {
			t.Fatalf("retransmission %d early: %+v", i+1, out)
		}
		// A message arrives meanwhile: the retransmission carries its ack.
		mustReceive(t, c, want.Add(-time.Millisecond), uint16(i), 0, msg(i))
		out := c.Output(want, nil)
		wantOut := []Frame{{Ns: 0, Nr: uint16(i + 1), Body: msg(0), Retransmit: true}}
		if diff := cmp.Diff(wantOut, out); diff != "" {
			t.Fatalf("retransmission %d (-want +got):\n%s", i+1, diff)
		}
		if c.Failed() {
			t.Fatalf("failed after %d retransmissions", i+1)
		}
		now = want
	}
	// The sixth retransmission also goes unanswered for the capped 16 s.
	if d := c.Deadline(); !d.Equal(now.Add(16 * time.Second)) {
		t.Fatalf("final Deadline +%v", d.Sub(t0))
	}
	if out := c.Output(now.Add(16*time.Second), nil); len(out) != 0 || !c.Failed() {
		t.Fatalf("after the limit: output %+v, failed %v", out, c.Failed())
	}
	if !c.Deadline().IsZero() {
		t.Errorf("failed channel has a deadline")
	}
	if s := c.Stats(); s.Retransmitted != 6 || s.Sent != 1 {
		t.Errorf("stats %+v", s)
	}
}

// TestFailedDefault: with the defaults (1 s, cap 16 s, 5 retransmissions)
// the tunnel is dead 1+2+4+8+16+16 = 47 s after the first send.
func TestFailedDefault(t *testing.T) {
	c := New(Config{}, t0)
	c.Send(t0, msg(0))
	var retx []time.Duration
	for now := t0; !c.Failed(); now = c.Deadline() {
		if now.Sub(t0) > time.Hour {
			t.Fatal("never failed")
		}
		for _, f := range c.Output(now, nil) {
			if f.Retransmit {
				retx = append(retx, now.Sub(t0))
			}
		}
		if c.Failed() {
			if now.Sub(t0) != 47*time.Second {
				t.Errorf("failed at +%v, want +47s", now.Sub(t0))
			}
		}
	}
	want := []time.Duration{1 * time.Second, 3 * time.Second, 7 * time.Second, 15 * time.Second, 31 * time.Second}
	if !slices.Equal(retx, want) {
		t.Errorf("retransmitted at %v, want %v", retx, want)
	}
}

func TestAckClearsRetransmission(t *testing.T) {
	c := New(Config{}, t0)
	c.Send(t0, msg(0))
	c.Output(t0, nil)
	c.Output(at(time.Second), nil) // one retransmission
	if _, err := c.Receive(at(1500*time.Millisecond), 0, 1, nil); err != nil {
		t.Fatal(err)
	}
	if c.Outstanding() != 0 || !c.Deadline().IsZero() {
		t.Fatalf("outstanding %d, deadline %v after ack", c.Outstanding(), c.Deadline())
	}
	if out := c.Output(at(time.Minute), nil); len(out) != 0 {
		t.Fatalf("output after ack: %+v", out)
	}
	// The next message starts from the initial timeout again.
	c.Send(at(time.Minute), msg(1))
	c.Output(at(time.Minute), nil)
	if d := c.Deadline(); !d.Equal(at(time.Minute + time.Second)) {
		t.Errorf("next message's timer +%v, want +1m1s", d.Sub(t0))
	}
}

func TestDelayedZLB(t *testing.T) {
	t.Run("no reply", func(t *testing.T) {
		c := New(Config{AckDelay: 200 * time.Millisecond}, t0)
		mustReceive(t, c, t0, 0, 0, msg(0))
		if d := c.Deadline(); !d.Equal(at(200 * time.Millisecond)) {
			t.Fatalf("Deadline +%v, want +200ms", d.Sub(t0))
		}
		if out := c.Output(at(199*time.Millisecond), nil); len(out) != 0 {
			t.Fatalf("early: %+v", out)
		}
		out := c.Output(at(200*time.Millisecond), nil)
		if diff := cmp.Diff([]Frame{{Ns: 0, Nr: 1}}, out); diff != "" {
			t.Fatalf("ZLB (-want +got):\n%s", diff)
		}
		if out := c.Output(at(time.Second), nil); len(out) != 0 {
			t.Fatalf("second ZLB: %+v", out)
		}
	})
	t.Run("reply carries ack", func(t *testing.T) {
		c := New(Config{AckDelay: 200 * time.Millisecond}, t0)
		mustReceive(t, c, t0, 0, 0, msg(0))
		c.Send(at(50*time.Millisecond), []byte("reply"))
		out := c.Output(at(50*time.Millisecond), nil)
		want := []Frame{{Ns: 0, Nr: 1, Body: []byte("reply")}}
		if diff := cmp.Diff(want, out); diff != "" {
			t.Fatalf("reply (-want +got):\n%s", diff)
		}
		if out := c.Output(at(200*time.Millisecond), nil); len(out) != 0 {
			t.Fatalf("ZLB although the reply carried the ack: %+v", out)
		}
		if c.Stats().ZLBsSent != 0 {
			t.Errorf("ZLBs sent: %d", c.Stats().ZLBsSent)
		}
	})
	t.Run("ZLB Ns is next unsent", func(t *testing.T) {
		c := New(Config{}, t0)
		c.Send(t0, msg(0))
		c.Send(t0, msg(1)) // waits behind cwnd 1
		c.Output(t0, nil)
		mustReceive(t, c, t0, 0, 0, msg(0))
		out := c.Output(at(DefaultAckDelay), nil)
		if diff := cmp.Diff([]Frame{{Ns: 1, Nr: 1}}, out); diff != "" {
			t.Fatalf("ZLB (-want +got):\n%s", diff)
		}
	})
	t.Run("ZLB received is not acked", func(t *testing.T) {
		c := New(Config{}, t0)
		mustReceive(t, c, t0, 0, 0, nil)
		if out := c.Output(at(time.Second), nil); len(out) != 0 || !c.Deadline().IsZero() {
			t.Fatalf("output %+v deadline %v", out, c.Deadline())
		}
		if c.Stats().ZLBsReceived != 1 || c.Nr() != 0 {
			t.Errorf("stats %+v Nr %d", c.Stats(), c.Nr())
		}
	})
}

// ackOne acknowledges the oldest message in flight.
func ackOne(t *testing.T, c *Channel, now time.Time) {
	t.Helper()
	if _, err := c.Receive(now, 0, c.sendUna+1, nil); err != nil {
		t.Fatal(err)
	}
}

func TestPeerWindow(t *testing.T) {
	c := New(Config{}, t0) // no Receive Window Size AVP: 4
	if c.Config().PeerWindow != 4 {
		t.Fatalf("peer window %d", c.Config().PeerWindow)
	}
	// Open the congestion window well past 4 (ssthresh = 4, then
	// congestion avoidance): the peer's window still limits.
	for i := range 40 {
		c.Send(t0, msg(i))
		c.Output(t0, nil)
		ackOne(t, c, t0)
	}
	for i := range 5 {
		c.Send(t0, msg(100+i))
	}
	out := c.Output(t0, nil)
	if len(out) != 4 || c.InFlight() != 4 || c.Outstanding() != 5 {
		t.Fatalf("sent %d, in flight %d, outstanding %d; want 4, 4, 5", len(out), c.InFlight(), c.Outstanding())
	}
	if out := c.Output(at(500*time.Millisecond), nil); len(out) != 0 {
		t.Fatalf("5th message sent before an ack: %+v", out)
	}
	if d := c.Deadline(); !d.Equal(at(time.Second)) {
		t.Fatalf("window full: Deadline +%v, want the first retransmission at +1s", d.Sub(t0))
	}
	ackOne(t, c, at(600*time.Millisecond))
	if d := c.Deadline(); d.After(at(600 * time.Millisecond)) {
		t.Fatalf("window opened at +600ms but Deadline is +%v", d.Sub(t0))
	}
	out = c.Output(at(600*time.Millisecond), nil)
	if len(out) != 1 || string(out[0].Body) != "m104" {
		t.Fatalf("after ack: %+v, want the 5th message", out)
	}

	c.SetPeerWindow(0)
	if c.Config().PeerWindow != 4 {
		t.Errorf("SetPeerWindow(0): %d, want 4", c.Config().PeerWindow)
	}
	c.SetPeerWindow(8)
	if cw, ss := c.CWND(); c.Config().PeerWindow != 8 || ss != 8 || cw > 8 {
		t.Errorf("SetPeerWindow(8): window %d cwnd %d ssthresh %d", c.Config().PeerWindow, cw, ss)
	}
}

// TestSlowStart follows CWND through slow start, the peer-window cap, a
// timeout and congestion avoidance, checking it against how many messages
// Output actually releases.
func TestSlowStart(t *testing.T) {
	c := New(Config{PeerWindow: 8}, t0)
	now := t0
	for range 100 {
		c.Send(now, []byte("x"))
	}
	// Each round: Output sends cwnd messages; ack them one by one.
	var sentPerRound []int
	round := func() {
		out := c.Output(now, nil)
		sentPerRound = append(sentPerRound, len(out))
		for range out {
			ackOne(t, c, now)
		}
		now = now.Add(100 * time.Millisecond)
	}
	round() // 1 -> 2
	round() // 2 -> 4
	round() // 4 -> 8 (ssthresh 8)
	round() // 8: capped by the peer window
	if want := []int{1, 2, 4, 8}; !slices.Equal(sentPerRound, want) {
		t.Fatalf("slow start sent %v per round, want %v", sentPerRound, want)
	}
	if cw, ss := c.CWND(); cw != 8 || ss != 8 {
		t.Fatalf("cwnd %d ssthresh %d, want 8 8", cw, ss)
	}
	// Send 8, lose them all: one timeout halves the threshold.
	out := c.Output(now, nil)
	if len(out) != 8 {
		t.Fatalf("sent %d, want 8", len(out))
	}
	now = now.Add(time.Second)
	out = c.Output(now, nil)
	if len(out) != 8 || !out[0].Retransmit {
		t.Fatalf("retransmitted %d", len(out))
	}
	if cw, ss := c.CWND(); cw != 1 || ss != 4 {
		t.Fatalf("after timeout cwnd %d ssthresh %d, want 1 4", cw, ss)
	}
	for range 8 {
		ackOne(t, c, now)
	}
	// 8 acks: slow start 1->4 (3 acks), then congestion avoidance: 4 acks
	// -> 5, one more ack counts toward 6.
	if cw, _ := c.CWND(); cw != 5 {
		t.Fatalf("cwnd %d, want 5", cw)
	}
	sentPerRound = nil
	round() // 5 sent; their acks take cwnd to 6 with one ack toward 7
	round() // 6 sent
	if want := []int{5, 6}; !slices.Equal(sentPerRound, want) {
		t.Fatalf("congestion avoidance sent %v, want %v", sentPerRound, want)
	}
}

func TestHelloDue(t *testing.T) {
	c := New(Config{HelloInterval: 60 * time.Second}, t0)
	if c.HelloDue(at(59 * time.Second)) {
		t.Fatal("due at 59s")
	}
	if d := c.Deadline(); !d.Equal(at(60 * time.Second)) {
		t.Fatalf("Deadline +%v, want +60s", d.Sub(t0))
	}
	// Anything from the peer (here a ZLB) restarts the idle time.
	mustReceive(t, c, at(30*time.Second), 5, 0, nil)
	if c.HelloDue(at(60 * time.Second)) {
		t.Fatal("due 30s after hearing from the peer")
	}
	if !c.HelloDue(at(90 * time.Second)) {
		t.Fatal("not due 60s after hearing from the peer")
	}
	// The caller sends the Hello: no longer due while it is outstanding.
	c.Send(at(90*time.Second), []byte("hello"))
	if c.HelloDue(at(200 * time.Second)) {
		t.Fatal("due with a message outstanding")
	}
	c.Output(at(90*time.Second), nil)
	if _, err := c.Receive(at(91*time.Second), 0, 1, nil); err != nil {
		t.Fatal(err)
	}
	if c.HelloDue(at(150*time.Second)) || !c.HelloDue(at(151*time.Second)) {
		t.Error("next Hello not due 60s after the ack")
	}
	if New(Config{}, t0).HelloDue(at(time.Hour)) {
		t.Error("Hello due with HelloInterval 0")
	}
}

func TestDeadlineQueued(t *testing.T) {
	c := New(Config{}, t0)
	if !c.Deadline().IsZero() {
		t.Fatalf("idle channel (no Hello) has deadline %v", c.Deadline())
	}
	c.Send(at(time.Second), msg(0))
	if d := c.Deadline(); !d.Equal(at(time.Second)) {
		t.Fatalf("queued message: Deadline +%v, want +1s (send now)", d.Sub(t0))
	}
	c.Output(at(time.Second), nil)
	if d := c.Deadline(); !d.Equal(at(2 * time.Second)) {
		t.Fatalf("sent message: Deadline +%v, want +2s (retransmission)", d.Sub(t0))
	}
}

// With the default (no ack delay) a message is acknowledged by the Output
// that ends its pass: on the reply when the pass produced one, else in a
// ZLB. A peer whose window is full of messages that get no reply (ICCNs)
// is never left waiting for a timer.
func TestDefaultAckEndsThePass(t *testing.T) {
	c := New(Config{PeerWindow: 4}, t0)
	// ICRQ in, ICRP out in the same pass: the ICRP carries the ack.
	mustReceive(t, c, t0, 0, 0, msg(0))
	c.Send(t0, msg(100))
	out := c.Output(t0, nil)
	if len(out) != 1 || out[0].IsZLB() || out[0].Nr != 1 {
		t.Fatalf("reply pass: %+v, want the reply alone with Nr 1", out)
	}
	// ICCN in (acknowledging the ICRP), nothing to answer: a ZLB at once.
	mustReceive(t, c, t0, 1, 1, msg(1))
	out = c.Output(t0, nil)
	if len(out) != 1 || !out[0].IsZLB() || out[0].Nr != 2 {
		t.Fatalf("no-reply pass: %+v, want one ZLB with Nr 2 now", out)
	}
	if s := c.Stats(); s.ZLBsSent != 1 {
		t.Fatalf("%d ZLBs sent, want 1", s.ZLBsSent)
	}
	// Several in one pass: one ZLB for all of them.
	for ns := uint16(2); ns < 5; ns++ {
		mustReceive(t, c, t0, ns, 1, msg(int(ns)))
	}
	out = c.Output(t0, nil)
	if len(out) != 1 || !out[0].IsZLB() || out[0].Nr != 5 {
		t.Fatalf("three messages in one pass: %+v, want one ZLB with Nr 5", out)
	}
	if d := c.Deadline(); !d.IsZero() {
		t.Fatalf("deadline %v after everything was acknowledged, want none", d)
	}
}
