package userspace

import (
	"bytes"
	"net"
	"runtime"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/l2tpd/l2tpd/dataplane"
	"github.com/l2tpd/l2tpd/internal/testenv"
	"github.com/l2tpd/l2tpd/internal/udpbatch"
)

// recPlane: a test plane whose tunnels send to rec; tunnel 1 (peer 0x65)
// with session 10 (peer 0x6e, no sequencing) and session 11 (peer 0x6f,
// SendSeq).
func recPlane(t *testing.T) (*testPlane, *recSender, *tunnel, *session, *session) {
	t.Helper()
	tp := newTestPlane(t)
	rec := &recSender{}
	tp.writer = func(dataplane.TunnelConfig) (sender, error) { return rec, nil }
	dt, err := tp.AddTunnel(dataplane.TunnelConfig{Version: 2, LocalID: 1, PeerID: 0x65})
	if err != nil {
		t.Fatal(err)
	}
	a, err := dt.AddSession(dataplane.SessionConfig{LocalID: 10, PeerID: 0x6e}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := dt.AddSession(dataplane.SessionConfig{LocalID: 11, PeerID: 0x6f, SendSeq: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return tp, rec, dt.(*tunnel), a.(*session), b.(*session)
}

var (
	lcpConfReq  = []byte{0xc0, 0x21, 0x01, 0x07, 0x00, 0x04}
	lcpEchoReq  = []byte{0xc0, 0x21, 0x09, 0x02, 0x00, 0x08, 0x11, 0x22, 0x33, 0x44}
	lcpEchoRep  = []byte{0xc0, 0x21, 0x0a, 0x03, 0x00, 0x08, 0x55, 0x66, 0x77, 0x88}
	termReq     = []byte{0xc0, 0x21, 0x05, 0x03, 0x00, 0x04}
	chapFail    = []byte{0xc2, 0x23, 0x04, 0x01, 0x00, 0x04}
	chapSuccess = []byte{0xc2, 0x23, 0x03, 0x01, 0x00, 0x04}
)

func TestFramesLeaveInOneBatchAtFlush(t *testing.T) {
	_, rec, tun, a, b := recPlane(t)
	for _, f := range []struct {
		s  *session
		fr []byte
	}{{a, lcpConfReq}, {b, lcpEchoReq}, {a, chapSuccess}, {b, lcpEchoRep}} {
		if err := f.s.SendFrame(f.fr); err != nil {
			t.Fatal(err)
		}
	}
	if c := rec.take(); len(c) != 0 {
		t.Fatalf("%d sends before Flush", len(c))
	}
	tun.Flush()
	// RFC 2661 3.1: T=0 L=0 S=0 ver 2 (00 02), or S=1 (08 02) with Ns, Nr;
	// then the peer's tunnel and session IDs, FF 03, the PPP frame.
	want := []sendCall{{batch: true, msgs: [][]byte{
		cat([]byte{0x00, 0x02, 0x00, 0x65, 0x00, 0x6e, 0xff, 0x03}, lcpConfReq),
		cat([]byte{0x08, 0x02, 0x00, 0x65, 0x00, 0x6f, 0x00, 0x00, 0x00, 0x00, 0xff, 0x03}, lcpEchoReq),
		cat([]byte{0x00, 0x02, 0x00, 0x65, 0x00, 0x6e, 0xff, 0x03}, chapSuccess),
		cat([]byte{0x08, 0x02, 0x00, 0x65, 0x00, 0x6f, 0x00, 0x01, 0x00, 0x00, 0xff, 0x03}, lcpEchoRep),
	}}}
	if d := cmp.Diff(want, rec.take(), cmp.AllowUnexported(sendCall{})); d != "" {
		t.Fatalf("sends (-want +got):\n%s", d)
	}
	tun.Flush()
	if c := rec.take(); len(c) != 0 {
		t.Fatalf("an empty Flush sent %d times", len(c))
	}
	sa, _ := a.Stats()
	sb, _ := b.Stats()
	if sa.TxPackets != 2 || sa.TxBytes != uint64(len(lcpConfReq)+len(chapSuccess)) || sb.TxPackets != 2 || sa.TxErrors+sb.TxErrors != 0 {
		t.Errorf("stats %+v %+v", sa, sb)
	}
}

func TestBatchBounds(t *testing.T) {
	_, rec, tun, a, _ := recPlane(t)
	for i := range maxBatchFrames + 1 {
		fr := []byte{0xc0, 0x21, 0x09, byte(i), 0x00, 0x04}
		if err := a.SendFrame(fr); err != nil {
			t.Fatal(err)
		}
	}
	calls := rec.take()
	if len(calls) != 1 || len(calls[0].msgs) != maxBatchFrames {
		t.Fatalf("after %d frames: %d sends, want one of %d", maxBatchFrames+1, len(calls), maxBatchFrames)
	}
	for i, m := range calls[0].msgs {
		if m[len(m)-3] != byte(i) {
			t.Fatalf("message %d out of order: % x", i, m)
		}
	}
	tun.Flush()
	if calls := rec.take(); len(calls) != 1 || len(calls[0].msgs) != 1 || calls[0].msgs[0][11] != maxBatchFrames {
		t.Fatalf("Flush sent %+v, want the last frame", calls)
	}

	// Bytes: two frames that together pass the bound leave in two sends.
	big := make([]byte, maxBatchBytes/2+100)
	big[0], big[1] = 0x00, 0x21
	for range 2 {
		if err := a.SendFrame(big); err != nil {
			t.Fatal(err)
		}
	}
	if calls := rec.take(); len(calls) != 1 || len(calls[0].msgs) != 1 || len(calls[0].msgs[0]) != 8+len(big) {
		t.Fatalf("big frames: %d sends before Flush, want the first frame alone", len(calls))
	}
	tun.Flush()
	if calls := rec.take(); len(calls) != 1 || len(calls[0].msgs) != 1 {
		t.Fatal("second big frame not sent at Flush")
	}
	if err := a.SendFrame(make([]byte, maxFrame+1)); err == nil {
		t.Error("a frame too long for a data message was accepted")
	}
}

func TestCloseFlushes(t *testing.T) {
	_, rec, tun, a, b := recPlane(t)
	// A session closed after its last frame: the frame still leaves at
	// the end of the pass.
	if err := a.SendFrame(lcpEchoRep); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	tun.Flush()
	if calls := rec.take(); len(calls) != 1 || !bytes.Equal(calls[0].msgs[0], cat([]byte{0x00, 0x02, 0x00, 0x65, 0x00, 0x6e, 0xff, 0x03}, lcpEchoRep)) {
		t.Fatalf("frame of a closed session: %+v", calls)
	}
	// The tunnel closed with a frame held: Close sends it.
	if err := b.SendFrame(lcpEchoRep); err != nil {
		t.Fatal(err)
	}
	if err := tun.Close(); err != nil {
		t.Fatal(err)
	}
	calls := rec.take()
	if len(calls) != 1 || len(calls[0].msgs) != 1 || !bytes.Equal(calls[0].msgs[0][12:], lcpEchoRep) {
		t.Fatalf("Close sent %+v, want the Terminate-Request", calls)
	}
	if err := b.SendFrame(lcpEchoRep); err == nil {
		t.Error("SendFrame after the tunnel closed succeeded")
	}
	tun.Flush()
	if c := rec.take(); len(c) != 0 {
		t.Errorf("sent after Close: %+v", c)
	}
}

// A frame that ends the link leaves at once, after what was held before
// it: the endpoint may send a CDN later in the same pass.
func TestLinkEndingFramesLeaveAtOnce(t *testing.T) {
	_, rec, tun, a, _ := recPlane(t)
	for _, end := range [][]byte{termReq, {0xc0, 0x21, 0x06, 0x03, 0x00, 0x04}, chapFail, {0xc0, 0x23, 0x03, 0x02, 0x00, 0x05, 0x00}} {
		if err := a.SendFrame(lcpConfReq); err != nil {
			t.Fatal(err)
		}
		if err := a.SendFrame(end); err != nil {
			t.Fatal(err)
		}
		calls := rec.take()
		if len(calls) != 1 || len(calls[0].msgs) != 2 || !bytes.Equal(calls[0].msgs[0][8:], lcpConfReq) || !bytes.Equal(calls[0].msgs[1][8:], end) {
			t.Fatalf("after % x: sends %+v, want the held frame and it", end, calls)
		}
	}
	// Not link-ending: a CHAP Success, an LCP Echo-Request, short frames.
	for _, f := range [][]byte{chapSuccess, lcpEchoReq, {0xc0, 0x21}, {0x80, 0x21, 0x05, 0x01, 0x00, 0x04}} {
		if endsLink(f) {
			t.Errorf("endsLink(% x) = true", f)
		}
	}
	tun.Flush()
}

func TestRefusedSendsCounted(t *testing.T) {
	_, rec, tun, a, _ := recPlane(t)
	rec.refuse = 1
	for range 3 {
		if err := a.SendFrame(lcpEchoReq); err != nil {
			t.Fatal(err)
		}
	}
	tun.Flush()
	if st, _ := a.Stats(); st.TxPackets != 2 || st.TxErrors != 1 {
		t.Errorf("stats %+v, want 2 sent and 1 error", st)
	}
}

// A frame held for Flush takes its Ns when it leaves: a packet from the
// TUN device sent in between does not overtake it in sequence (the peer
// drops older Ns, RFC 2661 5.4).
func TestHeldFrameTakesNsWhenSent(t *testing.T) {
	tp, rec, tun, _, b := recPlane(t)
	if err := b.Up(dataplane.NetConfig{Peer: ap("10.0.0.2:0").Addr()}); err != nil {
		t.Fatal(err)
	}
	if err := b.SendFrame(lcpEchoReq); err != nil {
		t.Fatal(err)
	}
	tp.dev().in <- udp4(ap("198.51.100.1:53"), ap("10.0.0.2:1000"), nil)
	// The reader has sent the packet when the next hand-off is taken.
	tp.dev().in <- udp4(ap("198.51.100.1:53"), ap("10.0.0.99:1000"), nil)
	tun.Flush()
	calls := rec.take()
	if len(calls) != 2 || calls[0].batch || !calls[1].batch {
		t.Fatalf("sends %+v, want the TUN packet then the batch", calls)
	}
	if ns := calls[0].msgs[0][6:8]; !bytes.Equal(ns, []byte{0, 0}) {
		t.Errorf("TUN packet Ns % x, want 00 00", ns)
	}
	if ns := calls[1].msgs[0][6:8]; !bytes.Equal(ns, []byte{0, 1}) {
		t.Errorf("held frame Ns % x, want 00 01", ns)
	}
}

// The TUN reader sends directly while the tunnel goroutine holds and
// flushes frames of the same session: every message leaves once, with
// distinct sequence numbers (run with -race).
func TestConcurrentTUNAndFlush(t *testing.T) {
	tp, rec, tun, _, b := recPlane(t)
	if err := b.Up(dataplane.NetConfig{Peer: ap("10.0.0.2:0").Addr()}); err != nil {
		t.Fatal(err)
	}
	const n = 500
	pkt := udp4(ap("198.51.100.1:53"), ap("10.0.0.2:1000"), []byte("x"))
	dev := tp.dev()
	var wg sync.WaitGroup
	wg.Go(func() {
		for range n {
			dev.in <- pkt
		}
	})
	for i := range n {
		if err := b.SendFrame(lcpEchoReq); err != nil {
			t.Fatal(err)
		}
		if i%3 == 0 {
			tun.Flush()
		}
	}
	tun.Flush()
	wg.Wait()
	// The reader may still be sending the last packet: one more hand-off
	// (to no session) waits for it.
	dev.in <- udp4(ap("198.51.100.1:53"), ap("10.0.0.99:1000"), nil)
	var ns []int
	var frames, ips int
	for _, c := range rec.take() {
		for _, m := range c.msgs {
			ns = append(ns, int(m[6])<<8|int(m[7]))
			if c.batch {
				frames++
			} else {
				ips++
			}
		}
	}
	if frames != n || ips != n {
		t.Fatalf("%d frames and %d IP packets sent, want %d each", frames, ips, n)
	}
	sort.Ints(ns)
	for i, v := range ns {
		if v != i {
			t.Fatalf("sequence numbers not distinct and contiguous: at %d got %d", i, v)
		}
	}
	if st, _ := b.Stats(); st.TxPackets != 2*n {
		t.Errorf("TxPackets %d, want %d", st.TxPackets, 2*n)
	}
}

// The real socket: a batch leaves with sendmmsg as separate datagrams, in
// order.
func TestFlushOnSocket(t *testing.T) {
	peer, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	conn, err := net.DialUDP("udp4", nil, peer.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	p := newPlane(Config{}, openNull)
	defer p.Close()
	dt, err := p.AddTunnel(dataplane.TunnelConfig{Version: 2, LocalID: 1, PeerID: 0x65, Conn: conn})
	if err != nil {
		t.Fatal(err)
	}
	ds, err := dt.AddSession(dataplane.SessionConfig{LocalID: 10, PeerID: 0x6e}, nil)
	if err != nil {
		t.Fatal(err)
	}
	frames := [][]byte{lcpConfReq, lcpEchoReq, chapSuccess}
	for _, f := range frames {
		if err := ds.SendFrame(f); err != nil {
			t.Fatal(err)
		}
	}
	dt.(dataplane.Flusher).Flush()
	buf := make([]byte, 2048)
	peer.SetReadDeadline(time.Now().Add(5 * time.Second)) // a safety net
	for i, f := range frames {
		n, err := peer.Read(buf)
		if err != nil {
			t.Fatalf("datagram %d: %v", i, err)
		}
		if want := cat([]byte{0x00, 0x02, 0x00, 0x65, 0x00, 0x6e, 0xff, 0x03}, f); !bytes.Equal(buf[:n], want) {
			t.Errorf("datagram %d: % x, want % x", i, buf[:n], want)
		}
	}
	if calls := dt.(*tunnel).w.(*udpbatch.Conn).Calls(); calls != 1 {
		t.Errorf("three frames took %d system calls, want 1 (one sendmmsg)", calls)
	}
}

func TestHoldAndFlushDoNotAllocate(t *testing.T) {
	if testenv.RaceEnabled {
		t.Skip("sync.Pool drops items at random under the race detector")
	}
	_, tun, b := benchPlane(t, 2, dataplane.SessionConfig{})
	if n := testing.AllocsPerRun(200, func() {
		for range 8 {
			_ = b.SendFrame(lcpEchoReq)
		}
		tun.Flush()
	}); n >= 1 {
		t.Errorf("8 frames and a Flush: %v allocations", n)
	}
}

func BenchmarkSendFrameFlush8(b *testing.B) {
	_, tun, s := benchPlane(b, 1, dataplane.SessionConfig{})
	b.ReportAllocs()
	for b.Loop() {
		for range 8 {
			_ = s.SendFrame(lcpEchoReq)
		}
		tun.Flush()
	}
}

// FlushWith sends the control plane's messages first and then the held
// frames, in one system call; with nothing held, the messages alone; a
// refused control message is reported, and the frames' counters are
// those of the frames only.
func TestFlushWithSendsControlFirstInOneCall(t *testing.T) {
	_, rec, tun, a, _ := recPlane(t)
	ctrl := [][]byte{{0xc8, 0x02, 0x00, 0x0c, 0x00, 0x65, 0x00, 0x00, 0x00, 0x01, 0x00, 0x02}}
	if err := a.SendFrame(lcpConfReq); err != nil {
		t.Fatal(err)
	}
	if err := tun.FlushWith(ctrl); err != nil {
		t.Fatal(err)
	}
	want := []sendCall{{batch: true, msgs: [][]byte{
		ctrl[0],
		cat([]byte{0x00, 0x02, 0x00, 0x65, 0x00, 0x6e, 0xff, 0x03}, lcpConfReq),
	}}}
	if d := cmp.Diff(want, rec.take(), cmp.AllowUnexported(sendCall{})); d != "" {
		t.Fatalf("sends (-want +got):\n%s", d)
	}
	if st, _ := a.Stats(); st.TxPackets != 1 || st.TxBytes != uint64(len(lcpConfReq)) {
		t.Fatalf("stats %+v, want the frame only", st)
	}
	// Nothing held: the control messages alone, once.
	if err := tun.FlushWith(ctrl); err != nil {
		t.Fatal(err)
	}
	if c := rec.take(); len(c) != 1 || len(c[0].msgs) != 1 || !bytes.Equal(c[0].msgs[0], ctrl[0]) {
		t.Fatalf("sends %+v, want the control message alone", c)
	}
	// Every message refused: the control message's error is reported,
	// the frame counts as an error, not as sent.
	rec.refuse = 2
	if err := a.SendFrame(lcpEchoReq); err != nil {
		t.Fatal(err)
	}
	if err := tun.FlushWith(ctrl); err == nil {
		t.Fatal("a refused control message was not reported")
	}
	if st, _ := a.Stats(); st.TxPackets != 1 || st.TxErrors != 1 {
		t.Fatalf("stats %+v, want 1 sent and 1 error", st)
	}
}

// slowBatch is recSender whose WriteBatch yields before it records: the
// time a sendmmsg of a batch takes, in which the TUN reader may send.
type slowBatch struct{ recSender }

func (r *slowBatch) WriteBatch(pkts [][]byte) (int, error) {
	for range 50 {
		runtime.Gosched()
	}
	return r.recSender.WriteBatch(pkts)
}

// A sequenced session's frames leave in Ns order when the tunnel
// goroutine's batches and the TUN reader's packets are sent at the same
// time: a batch's Ns are taken and it is sent under the lock the TUN
// reader's send takes too.
func TestSequencedSendsLeaveInNsOrder(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	tp := newTestPlane(t)
	rec := &slowBatch{}
	tp.writer = func(dataplane.TunnelConfig) (sender, error) { return rec, nil }
	dt, err := tp.AddTunnel(dataplane.TunnelConfig{Version: 2, LocalID: 1, PeerID: 0x65})
	if err != nil {
		t.Fatal(err)
	}
	ds, err := dt.AddSession(dataplane.SessionConfig{LocalID: 11, PeerID: 0x6f, SendSeq: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tun, s := dt.(*tunnel), ds.(*session)
	const n = 300
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // the tunnel goroutine: a frame per pass
		defer wg.Done()
		for range n {
			if err := s.SendFrame(lcpEchoReq); err != nil {
				t.Error(err)
				return
			}
			tun.Flush()
		}
	}()
	go func() { // the TUN reader
		defer wg.Done()
		buf := make([]byte, txRoom+len(lcpEchoRep))
		for range n {
			copy(buf[txRoom:], lcpEchoRep)
			if err := s.send(buf, txRoom, len(lcpEchoRep)); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	wg.Wait()
	next := uint16(0)
	for _, c := range rec.take() {
		for _, m := range c.msgs {
			// 08 02, tunnel, session, then Ns.
			if ns := uint16(m[6])<<8 | uint16(m[7]); ns != next {
				t.Fatalf("message with Ns %d sent when Ns %d was due", ns, next)
			}
			next++
		}
	}
	if next != 2*n {
		t.Fatalf("%d messages sent, want %d", next, 2*n)
	}
}
