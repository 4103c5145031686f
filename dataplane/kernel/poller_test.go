package kernel

import (
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// seqpacketPair stands in for a /dev/ppp fd: it keeps datagram boundaries.
// It returns (our end, the peer's end).
func seqpacketPair(t testing.TB) (int, int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fds[0]); unix.Close(fds[1]) })
	return fds[0], fds[1]
}

type got struct {
	who   int
	frame string
}

func newTestPoller(t *testing.T) *Poller {
	p, err := NewPoller()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func TestPollerRoutesFramesToTheirHandler(t *testing.T) {
	p := newTestPoller(t)
	out := make(chan got, 16)
	var peers [3]int
	for i := range peers {
		ours, theirs := seqpacketPair(t)
		peers[i] = theirs
		who := i
		if err := p.Register(ours, func(f []byte) { out <- got{who, string(f)} }); err != nil {
			t.Fatal(err)
		}
	}
	frames := map[int][]string{0: {"\xc0\x21\x01\x01\x00\x04"}, 1: {"\xc0\x23a", "\xc0\x23bb"}, 2: {"\x80\x21x"}}
	for who, fs := range frames {
		for _, f := range fs {
			if _, err := unix.Write(peers[who], []byte(f)); err != nil {
				t.Fatal(err)
			}
		}
	}
	seen := map[int][]string{}
	for range 4 {
		g := <-out
		seen[g.who] = append(seen[g.who], g.frame)
	}
	for who, fs := range frames {
		if len(seen[who]) != len(fs) {
			t.Fatalf("handler %d got %q, want %q", who, seen[who], fs)
		}
		for i := range fs { // one fd's frames stay in order
			if seen[who][i] != fs[i] {
				t.Errorf("handler %d frame %d = %q, want %q", who, i, seen[who][i], fs[i])
			}
		}
	}
}

func TestPollerUnregisterStopsDelivery(t *testing.T) {
	p := newTestPoller(t)
	out := make(chan got, 16)
	a, peerA := seqpacketPair(t)
	b, peerB := seqpacketPair(t)
	p.Register(a, func(f []byte) { out <- got{0, string(f)} })
	p.Register(b, func(f []byte) { out <- got{1, string(f)} })
	p.Unregister(a)
	if p.Len() != 1 {
		t.Fatalf("Len = %d after Unregister, want 1", p.Len())
	}
	unix.Write(peerA, []byte("to a"))
	unix.Write(peerB, []byte("to b"))
	// a became readable before b; had it still been registered, its frame
	// would be handled first by the single poller goroutine.
	if g := <-out; g.who != 1 {
		t.Fatalf("got %+v after unregistering a", g)
	}
	// The frame for a is still queued in the socket, unread.
	buf := make([]byte, 16)
	if n, err := unix.Read(a, buf); err != nil || string(buf[:n]) != "to a" {
		t.Errorf("read a = %q, %v: the poller consumed a frame after Unregister", buf[:n], err)
	}
}

func TestPollerHandlerMayUnregisterItself(t *testing.T) {
	p := newTestPoller(t)
	out := make(chan got, 4)
	a, peerA := seqpacketPair(t)
	p.Register(a, func(f []byte) { p.Unregister(a); out <- got{0, string(f)} })
	unix.Write(peerA, []byte("bye"))
	if g := <-out; g.frame != "bye" {
		t.Fatalf("got %+v", g)
	}
	if p.Len() != 0 {
		t.Errorf("Len = %d", p.Len())
	}
}

func TestPollerEOFStopsPollingButOthersContinue(t *testing.T) {
	p := newTestPoller(t)
	out := make(chan got, 4)
	a, peerA := seqpacketPair(t)
	b, peerB := seqpacketPair(t)
	p.Register(a, func(f []byte) { out <- got{0, string(f)} })
	p.Register(b, func(f []byte) { out <- got{1, string(f)} })
	unix.Close(peerA) // EOF on a
	unix.Write(peerB, []byte("still here"))
	if g := <-out; g != (got{1, "still here"}) {
		t.Fatalf("got %+v", g)
	}
	p.Unregister(a)
	if p.Len() != 1 {
		t.Errorf("Len = %d", p.Len())
	}
}

func TestPollerRejectsDuplicate(t *testing.T) {
	p := newTestPoller(t)
	a, _ := seqpacketPair(t)
	if err := p.Register(a, func([]byte) {}); err != nil {
		t.Fatal(err)
	}
	if err := p.Register(a, func([]byte) {}); err == nil {
		t.Error("second Register of the same fd succeeded")
	}
	if err := p.Register(-1, func([]byte) {}); err == nil {
		t.Error("Register(-1) succeeded")
	}
	if p.Len() != 1 {
		t.Errorf("Len = %d", p.Len())
	}
}

// BenchmarkPollerRegister measures the poller's memory per registered fd
// (a session registers two). The fds are dups of one eventfd: a fake fd
// source costing no kernel objects beyond the fd table slot.
func BenchmarkPollerRegister(b *testing.B) {
	b.ReportAllocs()
	const perRound = 2000
	src, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		b.Fatal(err)
	}
	defer unix.Close(src)
	fds := make([]int, perRound)
	for i := range fds {
		if fds[i], err = unix.Dup(src); err != nil {
			b.Fatal(err)
		}
	}
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	var before, after runtime.MemStats
	var bytesPerFD float64
	h := func([]byte) {}
	for b.Loop() {
		p, err := NewPoller()
		if err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		runtime.ReadMemStats(&before)
		for _, fd := range fds {
			if err := p.Register(fd, h); err != nil {
				b.Fatal(err)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		bytesPerFD = float64(after.HeapAlloc-before.HeapAlloc) / perRound
		for _, fd := range fds {
			p.Unregister(fd)
		}
		p.Close()
	}
	b.ReportMetric(bytesPerFD, "heapB/fd")
	b.ReportMetric(2*bytesPerFD, "heapB/session")
}
