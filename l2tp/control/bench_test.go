package control

import (
	"testing"
	"time"
)

// BenchmarkReceiveInOrder: the common receive path, an in-order message
// and the ZLB that acknowledges it, with the caller's buffer reused.
func BenchmarkReceiveInOrder(b *testing.B) {
	b.ReportAllocs()
	c := New(Config{}, t0)
	body := make([]byte, 64)
	out := make([]Frame, 0, 8)
	now := t0
	var ns uint16
	for b.Loop() {
		d, err := c.Receive(now, ns, 0, body)
		if err != nil || len(d) != 1 {
			b.Fatalf("delivered %d: %v", len(d), err)
		}
		ns++
		now = now.Add(DefaultAckDelay)
		out = c.Output(now, out[:0])
		if len(out) != 1 || !out[0].IsZLB() {
			b.Fatalf("output %+v", out)
		}
	}
}

// BenchmarkSendAck: Send, Output, and the peer's ZLB acknowledging it.
func BenchmarkSendAck(b *testing.B) {
	b.ReportAllocs()
	c := New(Config{}, t0)
	body := make([]byte, 64)
	out := make([]Frame, 0, 8)
	for b.Loop() {
		ns := c.Send(t0, body)
		out = c.Output(t0, out[:0])
		if len(out) != 1 {
			b.Fatalf("output %+v", out)
		}
		if _, err := c.Receive(t0, 0, ns+1, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReceiveReordered: pairs swapped on the wire, so every other
// message is held and released.
func BenchmarkReceiveReordered(b *testing.B) {
	b.ReportAllocs()
	c := New(Config{}, t0)
	body := make([]byte, 64)
	var ns uint16
	now := t0
	for b.Loop() {
		c.Receive(now, ns+1, 0, body)
		if d, _ := c.Receive(now, ns, 0, body); len(d) != 2 {
			b.Fatalf("delivered %d, want 2", len(d))
		}
		ns += 2
		now = now.Add(time.Millisecond)
	}
}
