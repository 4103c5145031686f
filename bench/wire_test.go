package bench

import (
	"bytes"
	"net/netip"
	"slices"
	"sync"
	"testing"

	"github.com/l2tpd/l2tpd/dataplane"
)

// recWriter records each system call a wire tunnel would make.
type recWriter struct {
	mu    sync.Mutex
	calls [][][]byte // one per call; a single Write is a call of one
	batch []bool
}

func (r *recWriter) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, [][]byte{slices.Clone(p)})
	r.batch = append(r.batch, false)
	return len(p), nil
}

func (r *recWriter) WriteBatch(pkts [][]byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var c [][]byte
	for _, p := range pkts {
		c = append(c, slices.Clone(p))
	}
	r.calls = append(r.calls, c)
	r.batch = append(r.batch, true)
	return len(pkts), nil
}

func (r *recWriter) take() ([][][]byte, []bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, b := r.calls, r.batch
	r.calls, r.batch = nil, nil
	return c, b
}

// wireTunnelRec: tunnel 1 (peer 0x65) with sessions 10 and 11 (peers 0x6e,
// 0x6f) sending to a recorder.
func wireTunnelRec(t *testing.T) (*recWriter, *wireTunnel, *wireSession, *wireSession) {
	t.Helper()
	rec := &recWriter{}
	wt := &wireTunnel{plane: NewWirePlane(), cfg: dataplane.TunnelConfig{Version: 2, LocalID: 1, PeerID: 0x65}, w: rec, sessions: map[uint16]*wireSession{}}
	a, err := wt.AddSession(dataplane.SessionConfig{LocalID: 10, PeerID: 0x6e, PWType: dataplane.PWTypePPP}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := wt.AddSession(dataplane.SessionConfig{LocalID: 11, PeerID: 0x6f, PWType: dataplane.PWTypePPP}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return rec, wt, a.(*wireSession), b.(*wireSession)
}

var (
	lcpConfReq = []byte{0xc0, 0x21, 0x01, 0x07, 0x00, 0x04}
	chapResp   = []byte{0xc2, 0x23, 0x02, 0x01, 0x00, 0x06, 0x01, 0xaa}
	lcpTermReq = []byte{0xc0, 0x21, 0x05, 0x03, 0x00, 0x04}
	lcpEchoReq = []byte{0xc0, 0x21, 0x09, 0x03, 0x00, 0x08, 1, 2, 3, 4}
)

func TestWireFramesLeaveInOneBatchAtFlush(t *testing.T) {
	rec, wt, a, b := wireTunnelRec(t)
	for _, f := range []struct {
		s  *wireSession
		fr []byte
	}{{a, lcpConfReq}, {b, chapResp}, {a, lcpEchoReq}} {
		if err := f.s.SendFrame(f.fr); err != nil {
			t.Fatal(err)
		}
	}
	if c, _ := rec.take(); len(c) != 0 {
		t.Fatalf("%d sends before Flush", len(c))
	}
	wt.Flush()
	calls, batch := rec.take()
	want := [][]byte{
		append([]byte{0x00, 0x02, 0x00, 0x65, 0x00, 0x6e, 0xff, 0x03}, lcpConfReq...),
		append([]byte{0x00, 0x02, 0x00, 0x65, 0x00, 0x6f, 0xff, 0x03}, chapResp...),
		append([]byte{0x00, 0x02, 0x00, 0x65, 0x00, 0x6e, 0xff, 0x03}, lcpEchoReq...),
	}
	if len(calls) != 1 || !batch[0] || !slices.EqualFunc(calls[0], want, bytes.Equal) {
		t.Fatalf("sends %x, want one batch %x", calls, want)
	}
	wt.Flush()
	if c, _ := rec.take(); len(c) != 0 {
		t.Fatal("an empty Flush sent")
	}
	if st, _ := a.Stats(); st.TxPackets != 2 || st.TxBytes != uint64(len(lcpConfReq)+len(lcpEchoReq)) {
		t.Errorf("stats %+v", st)
	}
	// Bounded: the frame past maxBatchMsgs sends the batch at once.
	for range maxBatchMsgs + 1 {
		if err := a.SendFrame(lcpConfReq); err != nil {
			t.Fatal(err)
		}
	}
	if c, _ := rec.take(); len(c) != 1 || len(c[0]) != maxBatchMsgs {
		t.Fatalf("after %d frames %d sends, want one of %d", maxBatchMsgs+1, len(c), maxBatchMsgs)
	}
}

func TestWireCloseFlushes(t *testing.T) {
	rec, wt, a, _ := wireTunnelRec(t)
	if err := a.SendFrame(lcpConfReq); err != nil {
		t.Fatal(err)
	}
	// A Terminate-Request leaves at once, with what was held before it.
	if err := a.SendFrame(lcpTermReq); err != nil {
		t.Fatal(err)
	}
	if c, _ := rec.take(); len(c) != 1 || len(c[0]) != 2 || !bytes.Equal(c[0][1][8:], lcpTermReq) {
		t.Fatalf("sent %x, want the held frame and the Terminate-Request", c)
	}
	if err := a.SendFrame(lcpEchoReq); err != nil {
		t.Fatal(err)
	}
	if err := wt.Close(); err != nil {
		t.Fatal(err)
	}
	if c, _ := rec.take(); len(c) != 1 || !bytes.Equal(c[0][0][8:], lcpEchoReq) {
		t.Fatalf("Close sent %x, want the held frame", c)
	}
	if err := a.SendFrame(lcpTermReq); err == nil {
		t.Error("SendFrame after Close succeeded")
	}
}

// SendEcho runs on the prober's goroutine: it writes at once, alongside
// the tunnel goroutine's held frames (run with -race).
func TestWireSendEchoConcurrent(t *testing.T) {
	rec, wt, a, b := wireTunnelRec(t)
	if err := b.Up(dataplane.NetConfig{Local: netip.MustParseAddr("10.0.0.1"), Peer: netip.MustParseAddr("10.0.0.2")}); err != nil {
		t.Fatal(err)
	}
	const n = 300
	var wg sync.WaitGroup
	wg.Go(func() {
		for range n {
			if err := b.SendEcho(32); err != nil {
				t.Error(err)
				return
			}
		}
	})
	for i := range n {
		if err := a.SendFrame(lcpConfReq); err != nil {
			t.Fatal(err)
		}
		if i%4 == 0 {
			wt.Flush()
		}
	}
	wt.Flush()
	wg.Wait()
	calls, batch := rec.take()
	var echoes, frames int
	for i, c := range calls {
		for _, m := range c {
			sid, _, err := ParseDataMessage(m)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case !batch[i] && sid == 0x6f:
				echoes++
			case batch[i] && sid == 0x6e:
				frames++
			default:
				t.Fatalf("session %#x message in a batch=%v send", sid, batch[i])
			}
		}
	}
	if echoes != n || frames != n {
		t.Errorf("%d echoes and %d frames sent, want %d each", echoes, frames, n)
	}
}
