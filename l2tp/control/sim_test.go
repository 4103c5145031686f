package control

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
	"time"
)

// link is a lossy, reordering, in-memory datagram link between two
// Channels, driven by a seeded generator and a simulated clock.
type link struct {
	rng      *rand.Rand
	loss     float64
	minDelay time.Duration
	jitter   time.Duration
	inFlight []packet
	lost     int
}

type packet struct {
	arrive time.Time
	to     int
	f      Frame
}

func (l *link) transmit(now time.Time, to int, frames []Frame) {
	for _, f := range frames {
		if l.rng.Float64() < l.loss {
			l.lost++
			continue
		}
		d := l.minDelay + time.Duration(l.rng.Int64N(int64(l.jitter)))
		l.inFlight = append(l.inFlight, packet{now.Add(d), to, f})
	}
}

// simulate runs two Channels, each sending n messages at random times,
// over a link losing `loss` of the frames in both directions, and checks
// that each side delivers exactly the other's messages, once each and in
// order.
func simulate(t *testing.T, seed uint64, n int, loss float64) (Stats, Stats, int) {
	t.Helper()
	cfg := Config{RecvWindow: 8, PeerWindow: 8, MaxRetransmits: 30, AckDelay: 50 * time.Millisecond}
	return simulateConfig(t, seed, n, loss, cfg)
}

func simulateConfig(t *testing.T, seed uint64, n int, loss float64, cfg Config) (Stats, Stats, int) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 0x6c327470))
	now := t0
	ch := [2]*Channel{New(cfg, now), New(cfg, now)}
	ln := &link{rng: rng, loss: loss, minDelay: 5 * time.Millisecond, jitter: 60 * time.Millisecond}

	// When each side sends each message: bursts with pauses.
	var sendAt [2][]time.Time
	for side := range 2 {
		t := now
		for range n {
			if rng.IntN(4) == 0 {
				t = t.Add(time.Duration(rng.IntN(3000)) * time.Millisecond)
			}
			sendAt[side] = append(sendAt[side], t)
		}
	}
	var sent, got [2]int // messages sent by side; delivered to side
	var out []Frame

	for step := 0; ; step++ {
		if step > 1_000_000 {
			t.Fatalf("seed %d: no progress after %d steps: sent %v delivered %v", seed, step, sent, got)
		}
		// Deliver the arrivals due now (in arrival order).
		for i := 0; i < len(ln.inFlight); {
			p := ln.inFlight[i]
			if p.arrive.After(now) {
				i++
				continue
			}
			ln.inFlight = append(ln.inFlight[:i], ln.inFlight[i+1:]...)
			deliver, err := ch[p.to].Receive(now, p.f.Ns, p.f.Nr, p.f.Body)
			if err != nil {
				t.Fatalf("seed %d: side %d: %v", seed, p.to, err)
			}
			for _, b := range deliver {
				from, k := int(b[0]), int(binary.BigEndian.Uint32(b[1:]))
				if from != 1-p.to || k != got[p.to] {
					t.Fatalf("seed %d: side %d got message %d from side %d, want %d from side %d",
						seed, p.to, k, from, got[p.to], 1-p.to)
				}
				got[p.to]++
			}
		}
		for side := range 2 {
			for sent[side] < n && !sendAt[side][sent[side]].After(now) {
				body := make([]byte, 5)
				body[0] = byte(side)
				binary.BigEndian.PutUint32(body[1:], uint32(sent[side]))
				ch[side].Send(now, body)
				sent[side]++
			}
			out = ch[side].Output(now, out[:0])
			if ch[side].Failed() {
				t.Fatalf("seed %d: side %d failed", seed, side)
			}
			if fl := ch[side].InFlight(); fl > int(cfg.PeerWindow) {
				t.Fatalf("seed %d: side %d has %d in flight, window %d", seed, side, fl, cfg.PeerWindow)
			}
			ln.transmit(now, 1-side, out)
		}
		if got == [2]int{n, n} && ch[0].Outstanding() == 0 && ch[1].Outstanding() == 0 {
			break
		}
		// Advance the clock to the next event.
		var next time.Time
		consider := func(t time.Time) {
			if !t.IsZero() && (next.IsZero() || t.Before(next)) {
				next = t
			}
		}
		for side := range 2 {
			consider(ch[side].Deadline())
			if sent[side] < n {
				consider(sendAt[side][sent[side]])
			}
		}
		for _, p := range ln.inFlight {
			consider(p.arrive)
		}
		if next.IsZero() {
			t.Fatalf("seed %d: stalled: sent %v delivered %v outstanding %d/%d",
				seed, sent, got, ch[0].Outstanding(), ch[1].Outstanding())
		}
		if next.After(now) {
			now = next
		}
	}
	return ch[0].Stats(), ch[1].Stats(), ln.lost
}

// TestLossyLink: 20% loss both ways, reordering by jitter: every message
// is delivered exactly once and in order (checked inside simulate).
func TestLossyLink(t *testing.T) {
	for seed := uint64(1); seed <= 8; seed++ {
		a, b, lost := simulate(t, seed, 300, 0.2)
		if lost == 0 || a.Retransmitted+b.Retransmitted == 0 {
			t.Errorf("seed %d: lost %d, retransmitted %d: the link did not exercise recovery", seed, lost, a.Retransmitted+b.Retransmitted)
		}
		if a.Delivered != 300 || b.Delivered != 300 {
			t.Errorf("seed %d: delivered %d and %d, want 300", seed, a.Delivered, b.Delivered)
		}
		t.Logf("seed %d: lost %d; A %+v; B %+v", seed, lost, a, b)
	}
}

// TestLossyLinkExercisesReordering makes sure the simulation actually
// reaches the hold-and-release and duplicate paths, so TestLossyLink proves
// something about them.
func TestLossyLinkExercisesReordering(t *testing.T) {
	var ooo, dup uint64
	for seed := uint64(1); seed <= 4; seed++ {
		a, b, _ := simulate(t, seed, 300, 0.2)
		ooo += a.OutOfOrder + b.OutOfOrder
		dup += a.Duplicates + b.Duplicates
	}
	if ooo == 0 || dup == 0 {
		t.Errorf("out of order %d, duplicates %d: want both > 0", ooo, dup)
	}
}

func TestLosslessLinkNoRetransmit(t *testing.T) {
	a, b, _ := simulate(t, 42, 200, 0)
	if a.Retransmitted != 0 || b.Retransmitted != 0 {
		t.Errorf("retransmissions on a lossless link with 65 ms max delay: %d %d", a.Retransmitted, b.Retransmitted)
	}
}

// TestLossyLinkPeerOverrunsWindow: a peer that sends beyond our receive
// window (it believes the window is 8, we hold only 3) loses those messages
// to the window check, recovers by retransmission, and still everything
// arrives once and in order.
func TestLossyLinkPeerOverrunsWindow(t *testing.T) {
	cfg := Config{RecvWindow: 3, PeerWindow: 8, MaxRetransmits: 30, AckDelay: 50 * time.Millisecond}
	var dropped uint64
	for seed := uint64(1); seed <= 4; seed++ {
		a, b, _ := simulateConfig(t, seed, 200, 0.2, cfg)
		dropped += a.Dropped + b.Dropped
	}
	if dropped == 0 {
		t.Error("no message fell beyond the receive window")
	}
}
