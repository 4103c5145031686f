package endpoint

import (
	"net/netip"
	"runtime"
	"testing"
	"testing/synctest"

	"go.uber.org/zap"
)

func item(sid uint32) inbound { return inbound{sid: sid, frame: true} }

// notified reports whether a wake-up is pending, and consumes it.
func notified(m *mailbox) bool {
	select {
	case <-m.notify:
		return true
	default:
		return false
	}
}

func sids(items []inbound) []uint32 {
	var out []uint32
	for _, it := range items {
		out = append(out, it.sid)
	}
	return out
}

// The tunnel goroutine is woken once per burst (when the box goes from
// empty to non-empty), not once per item, and takes the burst whole, in
// order.
func TestMailboxNotifyOncePerBurst(t *testing.T) {
	m := newMailbox()
	for i := range 5 {
		if !m.post(item(uint32(i))) {
			t.Fatalf("post %d refused", i)
		}
	}
	if !notified(&m) {
		t.Fatal("no wake-up after the first post")
	}
	if notified(&m) {
		t.Fatal("a second wake-up for the same burst")
	}
	got := m.take()
	if want := []uint32{0, 1, 2, 3, 4}; !equalU32(sids(got), want) {
		t.Fatalf("took %v, want %v", sids(got), want)
	}
	if m.take() != nil {
		t.Fatal("second take returned items")
	}
	m.post(item(9))
	if !notified(&m) {
		t.Fatal("no wake-up for a new burst after the take")
	}
}

// While the reader holds the box (one read's datagrams), the tunnel
// goroutine takes nothing and is not woken; release wakes it once, and it
// then takes the whole batch, items other goroutines posted meanwhile
// included.
func TestMailboxHeldBatch(t *testing.T) {
	m := newMailbox()
	m.hold()
	done := make(chan struct{})
	m.addWait(item(1), done)
	m.post(item(2)) // the data plane's frame handler during HandleData
	m.addWait(item(3), done)
	if notified(&m) {
		t.Fatal("woken while the batch is held")
	}
	if got := m.take(); got != nil {
		t.Fatalf("took %v while held", sids(got))
	}
	m.release()
	if !notified(&m) {
		t.Fatal("release did not wake the tunnel goroutine")
	}
	if got := sids(m.take()); !equalU32(got, []uint32{1, 2, 3}) {
		t.Fatalf("took %v, want [1 2 3]", got)
	}
	m.hold()
	m.release()
	if notified(&m) {
		t.Fatal("an empty batch woke the tunnel goroutine")
	}
}

// Beyond maxQueued, posts (listener, data plane) are dropped, while the
// tunnel's own reader waits until the tunnel goroutine has taken the
// queue (backpressure), then goes on; a tunnel that ends releases it.
func TestMailboxBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newMailbox()
		for i := range maxQueued {
			if !m.post(item(uint32(i))) {
				t.Fatalf("post %d refused below the bound", i)
			}
		}
		if m.post(item(maxQueued)) {
			t.Fatal("post beyond the bound accepted")
		}
		done := make(chan struct{})
		added := make(chan bool, 1)
		m.hold()
		go func() { added <- m.addWait(item(7777), done) }()
		synctest.Wait()
		select {
		case <-added:
			t.Fatal("the reader did not wait for room")
		default:
		}
		// The waiting reader released its hold: the tunnel goroutine can
		// take the full queue.
		if got := m.take(); len(got) != maxQueued {
			t.Fatalf("took %d, want %d", len(got), maxQueued)
		}
		synctest.Wait()
		if ok := <-added; !ok {
			t.Fatal("addWait failed after room was made")
		}
		m.release()
		if got := sids(m.take()); !equalU32(got, []uint32{7777}) {
			t.Fatalf("took %v after the wait, want [7777]", got)
		}

		// Full again; the tunnel ends while its reader waits.
		for i := range maxQueued {
			m.post(item(uint32(i)))
		}
		m.hold()
		go func() { added <- m.addWait(item(1), done) }()
		synctest.Wait()
		close(done)
		synctest.Wait()
		if ok := <-added; ok {
			t.Fatal("addWait reported success on a tunnel that ended")
		}
	})
}

// A burst's buffer is not kept by an idle tunnel.
func TestMailboxShrinks(t *testing.T) {
	m := newMailbox()
	for i := range maxQueued {
		m.post(item(uint32(i)))
	}
	m.take()
	m.post(item(1))
	m.take() // the big slice is spare now; the next one starts small
	m.post(item(2))
	if c := cap(m.items); c > 4*32 {
		t.Fatalf("queue capacity %d after small batches, want it shrunk", c)
	}
}

func equalU32(a, b []uint32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// BenchmarkMailboxBatch: one read's worth of items (8) added under hold,
// released, and taken by the tunnel goroutine.
func BenchmarkMailboxBatch(b *testing.B) {
	b.ReportAllocs()
	m := newMailbox()
	done := make(chan struct{})
	for b.Loop() {
		m.hold()
		for i := range 8 {
			m.addWait(item(uint32(i)), done)
		}
		m.release()
		<-m.notify
		if len(m.take()) != 8 {
			b.Fatal("lost items")
		}
	}
}

// A tunnel holds no queue memory until something is queued: thousands of
// remote-access tunnels with one session each must stay small (a 1024-slot
// channel per tunnel cost about 60 KB each).
func TestNewTunnelQueueSmall(t *testing.T) {
	e := &Endpoint{log: zap.NewNop()}
	var before, after runtime.MemStats
	const n = 100
	ts := make([]*Tunnel, 0, n)
	runtime.ReadMemStats(&before)
	for i := range n {
		ts = append(ts, e.newTunnel(uint32(i+1), TunnelSettings{}, netip.AddrPort{}, netip.AddrPort{}, nil, nil))
	}
	runtime.ReadMemStats(&after)
	if per := (after.TotalAlloc - before.TotalAlloc) / n; per > 4096 {
		t.Errorf("a new tunnel allocates %d bytes, want at most 4096", per)
	}
	runtime.KeepAlive(ts)
}
