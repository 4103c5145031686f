package udpbatch

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/l2tpd/l2tpd/internal/testenv"
)

func pair(t *testing.T, network, addr string) (a, b *net.UDPConn) {
	t.Helper()
	la, err := net.ListenUDP(network, &net.UDPAddr{IP: net.ParseIP(addr)})
	if err != nil {
		t.Skipf("no %s loopback: %v", network, err)
	}
	lb, err := net.DialUDP(network, nil, la.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { la.Close(); lb.Close() })
	return la, lb
}

func TestWriteThenReadBatch(t *testing.T) {
	for _, tc := range []struct{ network, addr string }{{"udp4", "127.0.0.1"}, {"udp6", "::1"}} {
		t.Run(tc.network, func(t *testing.T) {
			rx, tx := pair(t, tc.network, tc.addr)
			w, err := NewWriter(tx)
			if err != nil {
				t.Fatal(err)
			}
			var pkts [][]byte
			for i := range 40 {
				pkts = append(pkts, []byte(fmt.Sprintf("datagram %02d", i)))
			}
			if n, err := w.Write(pkts); n != len(pkts) || err != nil {
				t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(pkts))
			}
			r, err := NewReader(rx, mustBuffers(t, 16, 64))
			if err != nil {
				t.Fatal(err)
			}
			want := tx.LocalAddr().(*net.UDPAddr).AddrPort()
			want = netip.AddrPortFrom(want.Addr().Unmap(), want.Port())
			got := 0
			reads := 0
			for got < len(pkts) {
				n, err := r.Read()
				if err != nil {
					t.Fatal(err)
				}
				reads++
				if n < 1 || n > 16 {
					t.Fatalf("Read = %d datagrams, want 1..16", n)
				}
				for i := range n {
					b, from := r.Msg(i)
					if !bytes.Equal(b, pkts[got]) {
						t.Fatalf("datagram %d = %q, want %q", got, b, pkts[got])
					}
					if from != want {
						t.Fatalf("datagram %d from %v, want %v", got, from, want)
					}
					got++
				}
			}
			// Loopback delivers synchronously: 40 datagrams already
			// waiting take ceil(40/16) reads, not 40.
			if reads != 3 {
				t.Errorf("%d reads for 40 waiting datagrams, want 3", reads)
			}
		})
	}
}

func TestReadTruncatesLongDatagram(t *testing.T) {
	rx, tx := pair(t, "udp4", "127.0.0.1")
	if _, err := tx.Write(bytes.Repeat([]byte{7}, 100)); err != nil {
		t.Fatal(err)
	}
	r, err := NewReader(rx, mustBuffers(t, 2, 10))
	if err != nil {
		t.Fatal(err)
	}
	n, err := r.Read()
	if err != nil || n != 1 {
		t.Fatalf("Read = %d, %v", n, err)
	}
	if b, _ := r.Msg(0); len(b) != 10 || !r.Truncated(0) {
		t.Fatalf("got %d bytes (truncated %v) of a 100-byte datagram with 10-byte buffers, want 10, true", len(b), r.Truncated(0))
	}
}

func mustBuffers(t *testing.T, n, size int) *Buffers {
	t.Helper()
	b, err := NewBuffers(n, size)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestNewBuffersRejectsBadSizes(t *testing.T) {
	for _, c := range [][2]int{{0, 10}, {1, 0}, {maxBatch + 1, 10}} {
		if _, err := NewBuffers(c[0], c[1]); err == nil {
			t.Errorf("NewBuffers(%d, %d) accepted", c[0], c[1])
		}
	}
}

// A reader parked in Read holds no buffer; one that has read holds one
// until its next Read or Release.
func TestReaderHoldsBuffersOnlyWithData(t *testing.T) {
	rx, tx := pair(t, "udp4", "127.0.0.1")
	r, err := NewReader(rx, mustBuffers(t, 4, 64))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if n, err := r.Read(); n != 1 || err != nil {
		t.Fatalf("Read = %d, %v", n, err)
	}
	if r.cur == nil {
		t.Fatal("no buffer held while a datagram is handed out")
	}
	r.Release()
	if r.cur != nil {
		t.Fatal("buffer held after Release")
	}
	rx.Close()
	if _, err := r.Read(); err == nil || r.cur != nil {
		t.Fatalf("Read on closed socket = %v, holding %v", err, r.cur != nil)
	}
}

func TestReadAfterCloseIsErrClosed(t *testing.T) {
	rx, _ := pair(t, "udp4", "127.0.0.1")
	r, err := NewReader(rx, mustBuffers(t, 4, 64))
	if err != nil {
		t.Fatal(err)
	}
	rx.Close()
	if _, err := r.Read(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Read after Close = %v, want net.ErrClosed", err)
	}
}

// A refused datagram (ICMP port unreachable on a connected socket) does
// not stop the rest of the batch... and is reported.
func TestWriteSkipsRefused(t *testing.T) {
	rx, tx := pair(t, "udp4", "127.0.0.1")
	rx.Close() // nobody listens: the first send draws ICMP port unreachable
	w, err := NewWriter(tx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([][]byte{[]byte("a")}); err != nil {
		t.Fatalf("first Write = %v (the ICMP error arrives after it)", err)
	}
	n, err := w.Write([][]byte{[]byte("b"), []byte("c"), []byte("d")})
	if !errors.Is(err, unix.ECONNREFUSED) {
		t.Fatalf("Write after port unreachable = %d, %v; want ECONNREFUSED", n, err)
	}
	if n != 2 {
		t.Fatalf("sent %d of 3 after one refusal, want 2", n)
	}
}

func TestWriteEmptyAndLarge(t *testing.T) {
	rx, tx := pair(t, "udp4", "127.0.0.1")
	w, err := NewWriter(tx)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := w.Write(nil); n != 0 || err != nil {
		t.Fatalf("Write(nil) = %d, %v", n, err)
	}
	// More than one sendmmsg's worth, zero-length datagrams included.
	pkts := make([][]byte, maxBatch+5)
	for i := range pkts {
		if i%2 == 0 {
			pkts[i] = []byte{byte(i)}
		}
	}
	rx.SetReadBuffer(4 << 20)
	if n, err := w.Write(pkts); n != len(pkts) || err != nil {
		t.Fatalf("Write = %d, %v; want %d", n, err, len(pkts))
	}
}

func TestSockaddrShortOrUnknown(t *testing.T) {
	var rsa unix.RawSockaddrInet6
	rsa.Family = unix.AF_INET6
	if got := sockaddr(&rsa, 8); got.IsValid() {
		t.Fatalf("short sockaddr_in6 decoded as %v", got)
	}
	rsa.Family = unix.AF_UNIX
	if got := sockaddr(&rsa, uint32(unsafe.Sizeof(rsa))); got.IsValid() {
		t.Fatalf("AF_UNIX decoded as %v", got)
	}
	sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(&rsa))
	sa4.Family = unix.AF_INET
	sa4.Port = ntohs(1701) // the same swap both ways
	sa4.Addr = [4]byte{192, 0, 2, 1}
	if got, want := sockaddr(&rsa, unix.SizeofSockaddrInet4), netip.MustParseAddrPort("192.0.2.1:1701"); got != want {
		t.Fatalf("sockaddr_in = %v, want %v", got, want)
	}
}

func BenchmarkWriteRead32(b *testing.B) {
	la, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Skip(err)
	}
	defer la.Close()
	lb, err := net.DialUDP("udp4", nil, la.LocalAddr().(*net.UDPAddr))
	if err != nil {
		b.Fatal(err)
	}
	defer lb.Close()
	w, _ := NewWriter(lb)
	bufs, _ := NewBuffers(32, 128)
	r, _ := NewReader(la, bufs)
	pkts := make([][]byte, 32)
	for i := range pkts {
		pkts[i] = make([]byte, 60)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := w.Write(pkts); err != nil {
			b.Fatal(err)
		}
		for got := 0; got < len(pkts); {
			n, err := r.Read()
			if err != nil {
				b.Fatal(err)
			}
			got += n
		}
	}
}

func TestConnSingleAndBatch(t *testing.T) {
	rx, tx := pair(t, "udp4", "127.0.0.1")
	c := NewConn(tx)
	// Every send is one system call of this package's (raw, not through
	// net.UDPConn's write(2)): Calls counts only those.
	if n, err := c.WriteBatch([][]byte{[]byte("one")}); n != 1 || err != nil || c.Calls() != 1 {
		t.Fatalf("WriteBatch of one = %d, %v after %d calls; want 1, nil after 1", n, err, c.Calls())
	}
	if n, err := c.WriteBatch([][]byte{[]byte("two"), []byte("three")}); n != 2 || err != nil || c.Calls() != 2 {
		t.Fatalf("WriteBatch of two = %d, %v after %d calls; want 2, nil after 2 (one sendmmsg)", n, err, c.Calls())
	}
	if n, err := c.Write([]byte("four")); n != 4 || err != nil || c.Calls() != 3 {
		t.Fatalf("Write = %d, %v after %d calls; want 4, nil after 3", n, err, c.Calls())
	}
	r, err := NewReader(rx, mustBuffers(t, 8, 64))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for len(got) < 4 {
		n, err := r.Read()
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			b, _ := r.Msg(i)
			got = append(got, string(b))
		}
	}
	if strings.Join(got, ",") != "one,two,three,four" {
		t.Fatalf("received %v", got)
	}
}

// Conn.Write reports a refused datagram with its errno, and net.ErrClosed
// once the socket is closed, as net.UDPConn.Write does.
func TestConnWriteRefusedAndClosed(t *testing.T) {
	rx, tx := pair(t, "udp4", "127.0.0.1")
	rx.Close() // nobody listens: the first send draws ICMP port unreachable
	c := NewConn(tx)
	if _, err := c.Write([]byte("a")); err != nil {
		t.Fatalf("first Write = %v (the ICMP error arrives after it)", err)
	}
	if n, err := c.Write([]byte("b")); !errors.Is(err, unix.ECONNREFUSED) || n != 0 {
		t.Fatalf("Write after port unreachable = %d, %v; want 0, ECONNREFUSED", n, err)
	}
	tx.Close()
	if _, err := c.Write([]byte("c")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Write after Close = %v; want net.ErrClosed", err)
	}
	if _, err := c.WriteBatch([][]byte{[]byte("d"), []byte("e")}); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("WriteBatch after Close = %v; want net.ErrClosed", err)
	}
}

// Conn.Write is safe from many goroutines at once (the TUN reader and the
// tunnel's goroutine share a Conn) and every datagram arrives whole.
func TestConnWriteConcurrent(t *testing.T) {
	rx, tx := pair(t, "udp4", "127.0.0.1")
	// Room for every datagram (SO_RCVBUFFORCE as root, where rmem_max
	// would cap SO_RCVBUF), and a safety net should one be dropped anyway.
	if _, err := SetReceiveBuffer(rx, 4<<20); err != nil {
		t.Fatal(err)
	}
	rx.SetReadDeadline(time.Now().Add(10 * time.Second))
	c := NewConn(tx)
	const writers, each = 4, 100
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if _, err := c.Write([]byte(fmt.Sprintf("w%d-%04d", w, i))); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if got := c.Calls(); got != writers*each {
		t.Fatalf("%d system calls for %d datagrams", got, writers*each)
	}
	r, err := NewReader(rx, mustBuffers(t, 64, 64))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for len(seen) < writers*each {
		n, err := r.Read()
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			b, _ := r.Msg(i)
			if len(b) != len("w0-0000") || seen[string(b)] {
				t.Fatalf("datagram %q: torn or twice", b)
			}
			seen[string(b)] = true
		}
	}
}

func TestConnWriteDoesNotAllocate(t *testing.T) {
	if testenv.RaceEnabled {
		t.Skip("sync.Pool drops items at random under the race detector")
	}
	rx, tx := pair(t, "udp4", "127.0.0.1")
	rx.SetReadBuffer(4 << 20)
	c := NewConn(tx)
	p := []byte("datagram")
	if a := testing.AllocsPerRun(100, func() {
		if _, err := c.Write(p); err != nil {
			t.Fatal(err)
		}
	}); a != 0 {
		t.Fatalf("Conn.Write: %.1f allocations per call, want 0", a)
	}
}
