package ppp

import (
	"bytes"
	"testing"
	"time"

	"github.com/l2tpd/l2tpd/auth"
)

// Frames handed out by Actions stay as they were while the Link sends
// more (they are carved from a shared chunk during negotiation), and
// appending to one does not reach the next.
func TestSentFramesNotRewritten(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	p := newPair(t, Config{AuthMethods: methods(auth.MethodCHAPMD5), EchoInterval: -1}, Config{Username: "alice", Password: "s3cret", EchoInterval: -1})
	type kept struct{ frame, copy []byte }
	var all []kept
	p.lns.l.Open(now)
	for i := 0; i < 3; i++ {
		for _, a := range p.lns.l.Actions(nil) {
			if f, ok := a.(SendFrame); ok {
				all = append(all, kept{f.Frame, bytes.Clone(f.Frame)})
			}
		}
		// A Configure-Request from the peer: the LNS answers with a
		// Configure-Ack, and a Configure-Request again on timeouts.
		p.lns.l.Input(now, []byte{0xc0, 0x21, 1, byte(i + 1), 0, 10, 5, 6, 1, 2, 3, byte(i)})
		now = now.Add(4 * time.Second)
		p.lns.l.Tick(now)
	}
	if len(all) < 4 {
		t.Fatalf("only %d frames sent", len(all))
	}
	for _, k := range all {
		_ = append(k.frame, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee)
	}
	for i, k := range all {
		if !bytes.Equal(k.frame, k.copy) {
			t.Errorf("frame %d changed after it was handed out: % x, was % x", i, k.frame, k.copy)
		}
	}
}
