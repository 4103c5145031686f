package udpbatch

import (
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// countRecvmmsg counts the reader's recvmmsg calls, and those that found
// the queue empty, for the rest of the test.
func countRecvmmsg(t *testing.T) (calls, empty *atomic.Int64) {
	t.Helper()
	calls, empty = new(atomic.Int64), new(atomic.Int64)
	real := recvmmsg
	recvmmsg = func(fd uintptr, hs []unix.Mmsghdr) (int, syscall.Errno) {
		n, e := real(fd, hs)
		calls.Add(1)
		if e == unix.EAGAIN {
			empty.Add(1)
		}
		return n, e
	}
	t.Cleanup(func() { recvmmsg = real })
	return calls, empty
}

// Each delivers every datagram in order, in batches, and stops when fn
// says so.
func TestEachDeliversInOrderAndStops(t *testing.T) {
	rx, tx := pair(t, "udp4", "127.0.0.1")
	w, err := NewWriter(tx)
	if err != nil {
		t.Fatal(err)
	}
	var pkts [][]byte
	for i := range 40 {
		pkts = append(pkts, []byte(fmt.Sprintf("datagram %02d", i)))
	}
	if n, err := w.Write(pkts); n != len(pkts) || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	r, err := NewReader(rx, mustBuffers(t, 16, 64))
	if err != nil {
		t.Fatal(err)
	}
	got, batches := 0, 0
	err = r.Each(func(n int, err error) bool {
		if err != nil {
			t.Errorf("Each reported %v", err)
			return false
		}
		batches++
		for i := range n {
			b, _ := r.Msg(i)
			if string(b) != string(pkts[got]) {
				t.Errorf("datagram %d = %q, want %q", got, b, pkts[got])
			}
			got++
		}
		return got < len(pkts)
	})
	if err != nil {
		t.Fatalf("Each = %v after fn stopped it, want nil", err)
	}
	if got != len(pkts) || batches != 3 {
		t.Fatalf("got %d datagrams in %d batches, want 40 in 3", got, batches)
	}
	if r.cur != nil {
		t.Error("Each returned holding a buffer block")
	}
}

// waitParked returns once a goroutine in Each waits for the poller.
func waitParked(t *testing.T) {
	t.Helper()
	buf := make([]byte, 1<<20)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
			if strings.Contains(g, "[IO wait") && strings.Contains(g, "(*Reader).Each") {
				return
			}
		}
		runtime.Gosched()
	}
	t.Fatal("the reader never waited for the poller")
}

// A datagram that arrives while fn handles a short batch is not lost: the
// wait after the short batch returns at once. And a reader that is told of
// one datagram at a time does not read once more to find the queue empty
// (Read does, after every batch): that is the system call Each saves.
func TestEachNoEmptyReadPerWakeUp(t *testing.T) {
	rx, tx := pair(t, "udp4", "127.0.0.1")
	r, err := NewReader(rx, mustBuffers(t, 8, 64))
	if err != nil {
		t.Fatal(err)
	}
	calls, empty := countRecvmmsg(t)
	const rounds = 200
	seen := make(chan int)
	next := make(chan bool)
	done := make(chan error, 1)
	go func() {
		got := 0
		done <- r.Each(func(n int, err error) bool {
			if err != nil {
				return true
			}
			got += n
			seen <- got
			return <-next
		})
	}()
	if _, err := tx.Write([]byte("0")); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= rounds; i++ {
		if got := <-seen; got != i {
			t.Fatalf("round %d: %d datagrams seen", i, got)
		}
		if i == rounds {
			next <- false
			break
		}
		if i%2 == 0 {
			// Sent while fn runs, after the read that returned the
			// last one: the wait that follows must see it.
			if _, err := tx.Write([]byte("x")); err != nil {
				t.Fatal(err)
			}
			next <- true
			continue
		}
		// Sent once the reader waits for the poller: Read's loop would
		// have read once more before that, and found nothing.
		next <- true
		waitParked(t)
		if _, err := tx.Write([]byte("y")); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("Each = %v", err)
	}
	t.Logf("%d recvmmsg calls, %d found nothing, for %d datagrams", calls.Load(), empty.Load(), rounds)
	// Reading again after every short batch finds nothing in most of the
	// rounds whose datagram comes after fn returned (half of them); Each
	// reads only when told of readiness, which is spurious only rarely.
	if e := empty.Load(); e >= rounds/4 {
		t.Errorf("%d empty reads in %d rounds (%d calls): Each reads again after a short batch", e, rounds, calls.Load())
	}
}

func TestEachAfterCloseIsErrClosed(t *testing.T) {
	rx, tx := pair(t, "udp4", "127.0.0.1")
	r, err := NewReader(rx, mustBuffers(t, 4, 64))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Write([]byte("a")); err != nil {
		t.Fatal(err)
	}
	first := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		n := 0
		done <- r.Each(func(k int, err error) bool {
			n += k
			if n == 1 {
				close(first)
			}
			return true
		})
	}()
	<-first
	rx.Close() // Each is parked (or about to be): it must return
	if err := <-done; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Each after Close = %v, want net.ErrClosed", err)
	}
}

// A socket error (ICMP port unreachable on a connected socket) is given
// to fn, and reading goes on if fn says so.
func TestEachReportsRefused(t *testing.T) {
	rx, tx := pair(t, "udp4", "127.0.0.1")
	rx.Close()
	// tx is connected to rx's closed port; a second socket lets the test
	// deliver a datagram to tx after the refusal.
	r, err := NewReader(tx, mustBuffers(t, 4, 64))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Write([]byte("a")); err != nil {
		t.Fatal(err)
	}
	var errs []error
	err = r.Each(func(n int, err error) bool {
		if err != nil {
			errs = append(errs, err)
			return false
		}
		t.Errorf("Each gave %d datagrams, want the refusal", n)
		return false
	})
	if err != nil {
		t.Fatalf("Each = %v", err)
	}
	if len(errs) != 1 || !errors.Is(errs[0], unix.ECONNREFUSED) {
		t.Fatalf("errors given to fn = %v, want one ECONNREFUSED", errs)
	}
}

func TestSetReceiveBuffer(t *testing.T) {
	rx, _ := pair(t, "udp4", "127.0.0.1")
	got, err := SetReceiveBuffer(rx, 4<<20)
	if err != nil {
		t.Fatal(err)
	}
	// The kernel doubles what it is given; without CAP_NET_ADMIN it is
	// capped by net.core.rmem_max.
	want := 8 << 20
	if os.Geteuid() != 0 {
		want = 0
	}
	if want != 0 && got != want {
		t.Fatalf("receive buffer %d, want %d", got, want)
	}
	if got < 4096 {
		t.Fatalf("receive buffer %d", got)
	}
}
