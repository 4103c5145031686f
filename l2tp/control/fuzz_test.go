package control

import (
	"encoding/binary"
	"errors"
	"testing"
	"time"
)

// FuzzReceive drives a Channel with a random sequence of operations, each
// four bytes: an opcode byte and three argument bytes. The peer's messages
// carry their own Ns as body, so delivery is checked directly: bodies must
// come out as 0, 1, 2, ... (never out of order, never twice), Nr must
// follow, errors must be ErrBadNr, and the windows must hold.
func FuzzReceive(f *testing.F) {
	f.Add([]byte{0x05, 0x10, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0})
	f.Add([]byte{0x03, 0x04, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0x10, 0, 1, 0, 3, 5, 0, 0})
	f.Add([]byte{0x00, 0x00, 0, 0xff, 0xff, 0, 0, 1, 0, 0, 0x40, 0, 1, 0, 2, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 2 {
			return
		}
		cfg := Config{RecvWindow: uint16(data[0]%32) + 1, PeerWindow: uint16(data[1] % 16)}
		c := New(cfg, t0)
		peerWindow := int(c.Config().PeerWindow)
		now := t0
		var want uint16   // next body expected out of Receive
		var nextTx uint16 // next Ns expected as a first transmission
		var out []Frame
		body := make([]byte, 2)
		for ops := data[2:]; len(ops) >= 4; ops = ops[4:] {
			op, a, b, x := ops[0], ops[1], ops[2], ops[3]
			switch op % 5 {
			case 0, 1: // a message (or ZLB) from the peer
				ns := c.Nr() + uint16(int8(a)) // mostly near the edge
				if op&0x80 != 0 {
					ns = uint16(a)<<8 | uint16(b)
				}
				nr := c.NextNs() - uint16(b%8)
				if op&0x40 != 0 {
					nr = uint16(b)<<8 | uint16(x)
				}
				var msg []byte
				if op%5 == 0 {
					binary.BigEndian.PutUint16(body, ns)
					msg = body
				}
				before := c.Outstanding()
				deliver, err := c.Receive(now, ns, nr, msg)
				if err != nil {
					if !errors.Is(err, ErrBadNr) {
						t.Fatalf("Receive(%d, %d): unexpected error %v", ns, nr, err)
					}
					if deliver != nil || c.Outstanding() != before {
						t.Fatalf("bad Nr %d: delivered %d, outstanding %d -> %d", nr, len(deliver), before, c.Outstanding())
					}
				}
				for _, d := range deliver {
					if got := binary.BigEndian.Uint16(d); got != want {
						t.Fatalf("delivered Ns %d, want %d", got, want)
					}
					want++
				}
				if c.Nr() != want {
					t.Fatalf("Nr %d after delivering up to %d", c.Nr(), want)
				}
			case 2:
				c.Send(now, []byte{a, b})
			case 3:
				now = now.Add(time.Duration(a) * 50 * time.Millisecond)
				fallthrough
			case 4:
				out = c.Output(now, out[:0])
				for _, f := range out {
					if f.Nr != c.Nr() {
						t.Fatalf("frame Nr %d, channel Nr %d", f.Nr, c.Nr())
					}
					if f.IsZLB() || f.Retransmit {
						continue
					}
					if f.Ns != nextTx {
						t.Fatalf("first transmission of Ns %d, want %d", f.Ns, nextTx)
					}
					nextTx++
				}
				if c.InFlight() > peerWindow {
					t.Fatalf("%d in flight, peer window %d", c.InFlight(), peerWindow)
				}
			}
			if c.InFlight() > c.Outstanding() {
				t.Fatalf("in flight %d > outstanding %d", c.InFlight(), c.Outstanding())
			}
			if d := c.Deadline(); !d.IsZero() && c.Failed() {
				t.Fatal("failed channel has a deadline")
			}
		}
	})
}
