package bench

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/l2tpd/l2tpd/l2tp"
)

// An LCP Configure-Request in session 0x1234 of tunnel 0x0102: T=0 L=0
// S=0 O=0 P=0 Ver=2 (RFC 2661 3.1), then FF 03 (RFC 1662) and the frame.
func TestAppendDataMessageGolden(t *testing.T) {
	frame := []byte{0xc0, 0x21, 0x01, 0x07, 0x00, 0x04}
	got := AppendDataMessage(nil, 0x0102, 0x1234, frame)
	want := []byte{0x00, 0x02, 0x01, 0x02, 0x12, 0x34, 0xff, 0x03, 0xc0, 0x21, 0x01, 0x07, 0x00, 0x04}
	if !bytes.Equal(got, want) {
		t.Fatalf("got % x\nwant % x", got, want)
	}
	sid, f, err := ParseDataMessage(got)
	if err != nil || sid != 0x1234 || !bytes.Equal(f, frame) {
		t.Fatalf("parse: session %#x frame % x err %v", sid, f, err)
	}
}

func TestParseDataMessage(t *testing.T) {
	cases := []struct {
		name    string
		pkt     []byte
		sid     uint16
		frame   []byte
		wantErr error
	}{
		// L=1 S=1: length 14, Ns 5, Nr 0; no FF 03 (address/control compressed, RFC 1662 3.2).
		{"length-seq-no-acfc", []byte{0x48, 0x02, 0x00, 0x0e, 0x00, 0x01, 0x00, 0x09, 0x00, 0x05, 0x00, 0x00, 0x80, 0x21}, 9, []byte{0x80, 0x21}, nil},
		// Protocol field compressed to one byte (0x21 = IPv4, RFC 1661 6.5).
		{"pfc", []byte{0x00, 0x02, 0x00, 0x01, 0x00, 0x02, 0xff, 0x03, 0x21, 0x45}, 2, []byte{0x00, 0x21, 0x45}, nil},
		// Offset field: O=1, offset size 2, two pad bytes.
		{"offset", []byte{0x02, 0x02, 0x00, 0x01, 0x00, 0x03, 0x00, 0x02, 0xaa, 0xbb, 0xc0, 0x21, 0x09}, 3, []byte{0xc0, 0x21, 0x09}, nil},
		{"control", []byte{0xc8, 0x02, 0x00, 0x0c, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}, 0, nil, ErrNotData},
		{"empty-payload", []byte{0x00, 0x02, 0x00, 0x01, 0x00, 0x02, 0xff, 0x03}, 0, nil, ErrShortFrame},
		{"one-even-byte", []byte{0x00, 0x02, 0x00, 0x01, 0x00, 0x02, 0xc0}, 0, nil, ErrShortFrame},
		{"truncated-header", []byte{0x00, 0x02, 0x00}, 0, nil, l2tp.ErrTruncated},
		{"v3", []byte{0x00, 0x03, 0x00, 0x01, 0x00, 0x02}, 0, nil, l2tp.ErrBadVersion},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sid, f, err := ParseDataMessage(tc.pkt)
			if tc.wantErr != nil {
				if err == nil {
					t.Fatalf("parsed % x as session %d frame % x; want %v", tc.pkt, sid, f, tc.wantErr)
				}
				if !errors.Is(err, tc.wantErr) {
					t.Logf("error %v (wanted one wrapping %v)", err, tc.wantErr)
					if tc.wantErr == ErrNotData || tc.wantErr == ErrShortFrame {
						t.Fail()
					}
				}
				return
			}
			if err != nil || sid != tc.sid || !bytes.Equal(f, tc.frame) {
				t.Fatalf("got session %d frame % x err %v; want %d % x", sid, f, err, tc.sid, tc.frame)
			}
		})
	}
}

// The echo request from 10.0.0.2 to 10.0.0.1, id 1, seq 1, no payload,
// checked by hand against RFC 791/792: header checksum ~0xd920 = 0x26df over
// 45 00 00 1c 00 00 40 00 40 01 0000 0a000002 0a000001, ICMP checksum
// ~0x0802 = 0xf7fd over 08 00 0000 0001 0001.
func TestEchoRequestGolden(t *testing.T) {
	src, dst := netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.1")
	got := AppendEchoRequest(nil, src, dst, 1, 1, 0)
	want := []byte{
		0x45, 0x00, 0x00, 0x1c, 0x00, 0x00, 0x40, 0x00, 0x40, 0x01, 0x26, 0xdf, 10, 0, 0, 2, 10, 0, 0, 1,
		0x08, 0x00, 0xf7, 0xfd, 0x00, 0x01, 0x00, 0x01,
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("got % x\nwant % x", got, want)
	}
	// The reply the LNS's host sends: swap addresses, type 0, fix checksums.
	reply := echoReplyTo(got)
	if !isEchoReply(reply, src, dst) {
		t.Fatalf("reply % x not recognised", reply)
	}
	if isEchoReply(reply, dst, src) {
		t.Fatal("reply to the wrong address recognised")
	}
	if isEchoReply(got, src, dst) {
		t.Fatal("an echo request taken for a reply")
	}
	bad := bytes.Clone(reply)
	bad[len(bad)-1] ^= 1
	if isEchoReply(bad, src, dst) {
		t.Fatal("a reply with a bad ICMP checksum accepted")
	}
	if isEchoReply(reply[:25], src, dst) {
		t.Fatal("a truncated reply accepted")
	}
}

// echoReplyTo builds the echo reply a host would send to req.
func echoReplyTo(req []byte) []byte {
	r := bytes.Clone(req)
	copy(r[12:16], req[16:20])
	copy(r[16:20], req[12:16])
	r[10], r[11] = 0, 0
	binary.BigEndian.PutUint16(r[10:], checksum(r[:20]))
	r[20] = icmpEchoReply
	r[22], r[23] = 0, 0
	binary.BigEndian.PutUint16(r[22:], checksum(r[20:]))
	return r
}

func TestChecksumOddLength(t *testing.T) {
	// RFC 1071: an odd trailing byte is padded with zero.
	if got, want := checksum([]byte{0x01, 0x02, 0x03}), ^uint16(0x0102+0x0300); got != want {
		t.Fatalf("checksum = %#x, want %#x", got, want)
	}
}

// utime + stime (250 + 75), after a command name with spaces and a ')'
// (proc(5): field 2 is in parens).
func TestParseStat(t *testing.T) {
	checkProcParser(t, ParseStatCPUTicks,
		"4242 (l2tpd (x) y) S 1 4242 4242 0 -1 4194560 1200 0 0 0 250 75 0 0 20 0 12 0 5000 123456 789 18446744073709551615\n", 325,
		[]string{"", "4242 l2tpd S 1", "4242 (l2tpd) S 1 2 3", "4242 (x) S 1 1 1 0 -1 0 0 0 0 0 -5 1 0"})
}

// checkProcParser runs a /proc parser on one good input and on inputs it
// must refuse with ErrProcFormat.
func checkProcParser(t *testing.T, parse func([]byte) (int64, error), good string, want int64, bad []string) {
	t.Helper()
	got, err := parse([]byte(good))
	if err != nil || got != want {
		t.Fatalf("%q: got %d, %v; want %d", good, got, err, want)
	}
	for _, b := range bad {
		if v, err := parse([]byte(b)); !errors.Is(err, ErrProcFormat) {
			t.Errorf("%q: got %d, %v; want ErrProcFormat", b, v, err)
		}
	}
}

// minflt (1200), not cminflt (7) or majflt (3).
func TestParseStatMinFaults(t *testing.T) {
	checkProcParser(t, ParseStatMinFaults,
		"4242 (l2tpd (x) y) S 1 4242 4242 0 -1 4194560 1200 7 3 0 250 75 0 0 20 0 12 0 5000 123456 789 18446744073709551615\n", 1200,
		[]string{"", "4242 l2tpd S 1", "4242 (l2tpd) S 1 2 3 4 5 6", "4242 (x) S 1 1 1 0 -1 0 -5 0", "4242 (x) S 1 1 1 0 -1 0 1e3 0"})
}

// TestPIDSampleCountsFaults: writing to fresh pages of memory shows as
// that many faults (at least) in the process's sample.
func TestPIDSampleCountsFaults(t *testing.T) {
	const pages = 1024
	mem, err := syscall.Mmap(-1, 0, pages*4096, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Munmap(mem)
	a, err := PIDSample(os.Getpid(), ClockTicks())
	if err != nil {
		t.Fatal(err)
	}
	self0, _ := SelfSample()
	for i := 0; i < len(mem); i += 4096 {
		mem[i] = 1
	}
	b, err := PIDSample(os.Getpid(), ClockTicks())
	if err != nil {
		t.Fatal(err)
	}
	self1, _ := SelfSample()
	if d := b.Faults - a.Faults; d < pages {
		t.Errorf("PIDSample: %d faults after writing %d fresh pages, want at least %d", d, pages, pages)
	}
	if d := self1.Faults - self0.Faults; d < pages {
		t.Errorf("SelfSample: %d faults after writing %d fresh pages, want at least %d", d, pages, pages)
	}
}

func TestParseSchedstatRun(t *testing.T) {
	checkProcParser(t, ParseSchedstatRun, "123456789 4242 17\n", 123456789, []string{"", "1 2", "1 2 3 4", "-5 1 1", "x 1 1"})
}

// PIDSample of this process counts the CPU it burns, to better than a
// clock tick: 30 ms of work shows as 30 ms, not 20 or 40.
func TestPIDSampleNanoseconds(t *testing.T) {
	if _, err := taskSum(os.Getpid()); err != nil {
		t.Skipf("no schedstat: %v", err)
	}
	// The work is measured on this thread (RUSAGE_THREAD): the goroutine
	// must not move to another thread, whose CPU so far would count.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	tck := ClockTicks()
	a, err := PIDSample(os.Getpid(), tck)
	if err != nil {
		t.Fatal(err)
	}
	var self0 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_THREAD, &self0)
	x := 0
	for {
		for i := range 100000 {
			x += i
		}
		var ru syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_THREAD, &ru)
		if time.Duration(ru.Utime.Nano()+ru.Stime.Nano()-self0.Utime.Nano()-self0.Stime.Nano()) >= 30*time.Millisecond {
			break
		}
	}
	b, err := PIDSample(os.Getpid(), tck)
	if err != nil {
		t.Fatal(err)
	}
	d := b.CPU - a.CPU
	if d < 30*time.Millisecond || d > 200*time.Millisecond || d%(time.Second/time.Duration(tck)) == 0 {
		t.Fatalf("PIDSample saw %v of CPU for 30 ms of work (x=%d)", d, x)
	}
}

func TestParseStatusRSS(t *testing.T) {
	status := []byte("Name:\tl2tpd\nVmPeak:\t  999 kB\nVmRSS:\t   18832 kB\nThreads:\t7\n")
	got, err := ParseStatusRSS(status)
	if err != nil || got != 18832*1024 {
		t.Fatalf("got %d, %v", got, err)
	}
	if _, err := ParseStatusRSS([]byte("Name:\tx\n")); !errors.Is(err, ErrNoRSS) {
		t.Fatalf("no VmRSS: %v", err)
	}
	if _, err := ParseStatusRSS([]byte("VmRSS:\t12 MB\n")); !errors.Is(err, ErrProcFormat) {
		t.Fatalf("MB unit: %v", err)
	}
}

// PIDSample counts the preemptions of every thread: two threads that
// spin on the same CPU for 200 ms take it from each other (the kernel's
// time slices are a few milliseconds).
func TestPIDSampleCountsPreemptions(t *testing.T) {
	if _, err := taskSum(os.Getpid()); err != nil {
		t.Skipf("no /proc/PID/task: %v", err)
	}
	var cpus unix.CPUSet
	if err := unix.SchedGetaffinity(0, &cpus); err != nil {
		t.Skipf("sched_getaffinity: %v", err)
	}
	cpu := -1
	for i := range 1024 {
		if cpus.IsSet(i) {
			cpu = i
			break
		}
	}
	if cpu < 0 {
		t.Skip("no CPU in this thread's affinity mask")
	}
	tck := ClockTicks()
	a, err := PIDSample(os.Getpid(), tck)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(200 * time.Millisecond)
	var spun, done sync.WaitGroup
	release := make(chan struct{})
	errs := make(chan error, 2)
	for range 2 {
		spun.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			// The thread goes back to the runtime afterwards with its
			// affinity as it was: a thread that exits takes its counts
			// (and its CPU time, see PIDSample) with it, and the tests
			// after this one measure this process too.
			runtime.LockOSThread()
			var one unix.CPUSet
			one.Set(cpu)
			err := unix.SchedSetaffinity(0, &one)
			for err == nil && time.Now().Before(deadline) {
			}
			errs <- err
			spun.Done()
			<-release
			if unix.SchedSetaffinity(0, &cpus) == nil {
				runtime.UnlockOSThread()
			} // else the runtime retires the thread with the goroutine
		}()
	}
	spun.Wait()
	b, err := PIDSample(os.Getpid(), tck)
	close(release)
	done.Wait()
	if err != nil {
		t.Fatal(err)
	}
	close(errs)
	for err := range errs {
		if err != nil {
			t.Skipf("sched_setaffinity: %v", err)
		}
	}
	if d := b.Preemptions - a.Preemptions; d < 10 {
		t.Fatalf("%d involuntary context switches counted after two threads shared one CPU for 200 ms, want at least 10 (50-65 here)", d)
	}
}

func TestParseStatusSwitches(t *testing.T) {
	status := []byte("Name:\tl2tpd\nThreads:\t7\nvoluntary_ctxt_switches:\t338\nnonvoluntary_ctxt_switches:\t 1820\n")
	v, inv, err := ParseStatusSwitches(status)
	if err != nil || v != 338 || inv != 1820 {
		t.Fatalf("got %d, %d, %v; want 338, 1820", v, inv, err)
	}
	for _, bad := range []string{
		"",
		"voluntary_ctxt_switches:\t3\n", // one of the two
		"voluntary_ctxt_switches:\t-3\nnonvoluntary_ctxt_switches:\t1\n",
		"voluntary_ctxt_switches:\tx\nnonvoluntary_ctxt_switches:\t1\n",
		"voluntary_ctxt_switches:\t1 2\nnonvoluntary_ctxt_switches:\t1\n",
	} {
		if v, inv, err := ParseStatusSwitches([]byte(bad)); !errors.Is(err, ErrProcFormat) {
			t.Errorf("%q: got %d, %d, %v; want ErrProcFormat", bad, v, inv, err)
		}
	}
}

// PIDSample counts the context switches of every thread, not only the
// first one's (/proc/PID/status): four threads each block 20 times.
func TestPIDSampleCountsEveryThreadsSwitches(t *testing.T) {
	if _, err := taskSum(os.Getpid()); err != nil {
		t.Skipf("no /proc/PID/task: %v", err)
	}
	const threads, blocks = 4, 20
	tck := ClockTicks()
	a, err := PIDSample(os.Getpid(), tck)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range threads {
		var p, ack [2]int
		if err := syscall.Pipe(p[:]); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Pipe(ack[:]); err != nil {
			t.Fatal(err)
		}
		wg.Add(2)
		go func() { // blocks in read(2) on its own thread each time
			defer wg.Done()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			b := make([]byte, 1)
			for range blocks {
				syscall.Read(p[0], b)
				syscall.Write(ack[1], b)
			}
		}()
		go func() { // writes once the reader has taken the last byte
			defer wg.Done()
			b := []byte{1}
			for range blocks {
				syscall.Write(p[1], b)
				syscall.Read(ack[0], b)
			}
		}()
		t.Cleanup(func() {
			for _, fd := range []int{p[0], p[1], ack[0], ack[1]} {
				syscall.Close(fd)
			}
		})
	}
	wg.Wait()
	b, err := PIDSample(os.Getpid(), tck)
	if err != nil {
		t.Fatal(err)
	}
	if d := b.Switches - a.Switches; d < threads*blocks {
		t.Fatalf("%d voluntary context switches counted, want at least %d (%d threads blocking %d times)", d, threads*blocks, threads, blocks)
	}
}

func TestParseAuxv(t *testing.T) {
	var b []byte
	for _, kv := range [][2]uint64{{6, 4096}, {17, 100}, {0, 0}, {17, 250}} {
		b = binary.NativeEndian.AppendUint64(b, kv[0])
		b = binary.NativeEndian.AppendUint64(b, kv[1])
	}
	if v, ok := ParseAuxv(b, 17); !ok || v != 100 {
		t.Fatalf("AT_CLKTCK = %d, %v", v, ok)
	}
	if _, ok := ParseAuxv(b, 33); ok {
		t.Fatal("found a key after AT_NULL")
	}
	if _, ok := ParseAuxv(b[:20], 17); ok {
		t.Fatal("found a key in a truncated vector")
	}
}

func TestSelfAndPIDSample(t *testing.T) {
	s, err := SelfSample()
	if err != nil || s.RSS <= 0 {
		t.Fatalf("self: %+v %v", s, err)
	}
	if _, err := PIDSample(-1, 100); err == nil {
		t.Fatal("pid -1 measured")
	}
}

func TestPercentile(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	ten := ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10)
	cases := []struct {
		p    float64
		want time.Duration
	}{{50, 5 * time.Millisecond}, {90, 9 * time.Millisecond}, {99, 10 * time.Millisecond}, {100, 10 * time.Millisecond}, {1, time.Millisecond}, {10, time.Millisecond}, {11, 2 * time.Millisecond}}
	for _, c := range cases {
		if got := Percentile(ten, c.p); got != c.want {
			t.Errorf("p%v of 1..10 ms = %v, want %v", c.p, got, c.want)
		}
	}
	l := Summarize(ms(30, 10, 20))
	if l != (Latency{N: 3, P50: 20 * time.Millisecond, P90: 30 * time.Millisecond, P99: 30 * time.Millisecond, Max: 30 * time.Millisecond}) {
		t.Fatalf("Summarize = %+v", l)
	}
	if (Summarize(nil) != Latency{}) {
		t.Fatal("empty summary not zero")
	}
}

func FuzzParseDataMessage(f *testing.F) {
	f.Add(AppendDataMessage(nil, 1, 2, []byte{0xc0, 0x21, 1, 1, 0, 4}))
	f.Add([]byte{0x48, 0x02, 0x00, 0x0e, 0x00, 0x01, 0x00, 0x09, 0x00, 0x05, 0x00, 0x00, 0x80, 0x21})
	f.Add([]byte{0x00, 0x02, 0x00, 0x01, 0x00, 0x02, 0xff, 0x03, 0x21, 0x45})
	f.Fuzz(func(t *testing.T, pkt []byte) {
		sid, frame, err := ParseDataMessage(pkt)
		if err != nil {
			return
		}
		if len(frame) < 2 {
			t.Fatalf("frame % x shorter than a protocol field", frame)
		}
		h, _, _ := l2tp.ParseHeader(pkt)
		again := AppendDataMessage(nil, uint16(h.TunnelID), sid, frame)
		sid2, frame2, err := ParseDataMessage(again)
		if err != nil || sid2 != sid || !bytes.Equal(frame2, frame) {
			t.Fatalf("round trip: % x -> session %d % x -> % x -> %d % x %v", pkt, sid, frame, again, sid2, frame2, err)
		}
	})
}

func FuzzParseProc(f *testing.F) {
	f.Add([]byte("1 (a b) S 1 1 1 0 -1 0 0 0 0 0 7 8 0 0"), []byte("VmRSS:\t 12 kB\n"))
	f.Fuzz(func(t *testing.T, stat, status []byte) {
		if v, err := ParseStatCPUTicks(stat); err == nil && v < 0 {
			t.Fatalf("negative ticks %d", v)
		}
		if v, err := ParseStatMinFaults(stat); err == nil && v < 0 {
			t.Fatalf("negative faults %d", v)
		}
		if v, err := ParseSchedstatRun(stat); err == nil && v < 0 {
			t.Fatalf("negative run time %d", v)
		}
		if v, err := ParseStatusRSS(status); err == nil && v < 0 {
			t.Fatalf("negative RSS %d", v)
		}
		if v, inv, err := ParseStatusSwitches(status); err == nil && (v < 0 || inv < 0) {
			t.Fatalf("negative context switches %d, %d", v, inv)
		}
		_, _ = ParseAuxv(stat, 17)
		_ = isEchoReply(stat, netip.AddrFrom4([4]byte{1, 2, 3, 4}), netip.AddrFrom4([4]byte{5, 6, 7, 8}))
	})
}

func TestMarkdownTable(t *testing.T) {
	r := &Result{Options: OptionsSummary{Tunnels: 10, Sessions: 1000, TargetPID: 42}, Up: 998, Failed: 2, SetupRate: 1234.4, SetupRate99: 2000,
		SessionSetup: Latency{P50: 1500 * time.Microsecond, P90: 2 * time.Millisecond, P99: 30 * time.Millisecond, Max: 3 * time.Second},
		Retransmits:  7, TargetCPUPerSetup: 123456 * time.Nanosecond, TargetFaultsPerSetup: 1.526, TargetRSSHeld: 64 << 20, SelfCPUPerSetup: 50 * time.Microsecond}
	// A target measured without its pid (xl2tpd + pppd: a group of
	// processes) has no fault count.
	group := &Result{Options: OptionsSummary{Tunnels: 2, Sessions: 200}, Up: 200, SetupRate: 5,
		TargetCPUPerSetup: 13 * time.Millisecond, TargetRSSPeak: 695 << 20, SelfCPUPerSetup: 50 * time.Microsecond}
	got := MarkdownTable([]string{"ours", "xl2tpd"}, []*Result{r, group})
	want := "| ours | 10 | 1000 | 998 | 2 | 1234 | 2000 | 1.5 ms | 2.0 ms | 30.0 ms | 3000.0 ms | 7 | 0.123 ms | 1.53 | 64.0 MiB | 0.050 ms |\n" +
		"| xl2tpd | 2 | 200 | 200 | 0 | 5 | 0 | 0.0 ms | 0.0 ms | 0.0 ms | 0.0 ms | 0 | 13.000 ms | - | 695.0 MiB | 0.050 ms |\n"
	if !strings.HasSuffix(got, want) || strings.Count(got, "\n") != 4 || !strings.Contains(got, "| target CPU/setup | target faults/setup |") {
		t.Fatalf("got\n%s\nwant last rows\n%s", got, want)
	}
}

func TestMarkdownHoldTable(t *testing.T) {
	held := &Result{Hold: Phase{Wall: 5 * time.Minute},
		FirstThousand: Latency{P99: 20 * time.Millisecond}, LastThousand: Latency{P99: 25 * time.Millisecond},
		TargetBytesPerSession: 2822, TargetHoldCPUPercent: 3.114}
	unmeasured := &Result{Hold: Phase{Wall: time.Second}, FirstThousand: Latency{P99: time.Millisecond}}
	notHeld := &Result{FirstThousand: Latency{P99: time.Millisecond}, LastThousand: Latency{P99: time.Millisecond}}
	if got := MarkdownHoldTable([]string{"setup-only"}, []*Result{notHeld}); got != "" {
		t.Fatalf("no run held its sessions, got a table:\n%s", got)
	}
	got := MarkdownHoldTable([]string{"ours", "setup-only", "peer"}, []*Result{held, notHeld, unmeasured})
	want := "| run | first 1,000 p99 | last 1,000 p99 | last / first | held: bytes per session | held: CPU, % of one core |\n" +
		"|---|---:|---:|---:|---:|---:|\n" +
		"| ours | 20.0 ms | 25.0 ms | 1.25 | 2822 | 3.11% |\n" +
		"| peer | 1.0 ms | 0.0 ms | - | - | - |\n"
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}

func cpuRun(us int, rate float64) *Result {
	return &Result{TargetCPUPerSetup: time.Duration(us) * time.Microsecond, SetupRate: rate}
}

func TestGroupRunsPicksTheMedianRun(t *testing.T) {
	a1, a2, a3 := cpuRun(90, 1), cpuRun(70, 2), cpuRun(110, 3)
	b1, b2 := cpuRun(200, 4), cpuRun(100, 5)
	c := cpuRun(50, 6)
	groups := GroupRuns([]string{"a", "b", "a", "c", "b", "a"}, []*Result{a1, b1, a2, c, b2, a3})
	if len(groups) != 3 {
		t.Fatalf("%d groups, want 3 (a, b, c)", len(groups))
	}
	for i, want := range []struct {
		name   string
		runs   []*Result
		median *Result
	}{
		{"a", []*Result{a1, a2, a3}, a1}, // 70, 90, 110
		{"b", []*Result{b1, b2}, b2},     // even: the lower middle
		{"c", []*Result{c}, c},
	} {
		g := groups[i]
		if g.Name != want.name || !slices.Equal(g.Runs, want.runs) || g.Median != want.median {
			t.Errorf("group %d: %s, %d runs, median CPU %v; want %s, %d runs in the given order, median CPU %v",
				i, g.Name, len(g.Runs), g.Median.TargetCPUPerSetup, want.name, len(want.runs), want.median.TargetCPUPerSetup)
		}
	}
}

func TestMarkdownRepeatsTable(t *testing.T) {
	once := GroupRuns([]string{"x"}, []*Result{cpuRun(50, 1)})
	if got := MarkdownRepeatsTable(once); got != "" {
		t.Fatalf("no repeated run, got a table:\n%s", got)
	}
	groups := GroupRuns([]string{"ours-1000", "once", "ours-1000", "ours-1000"},
		[]*Result{cpuRun(90, 5000), cpuRun(1, 1), cpuRun(75, 6100.4), cpuRun(120, 4000)})
	want := "| run | runs | target CPU/setup of each run | median | highest / lowest | rate/s of each run |\n" +
		"|---|---:|---|---:|---:|---|\n" +
		"| ours-1000 | 3 | 0.090, 0.075, 0.120 ms | 0.090 ms | 1.60 | 5000, 6100, 4000 |\n"
	if got := MarkdownRepeatsTable(groups); got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}

func TestMarkdownRatioTable(t *testing.T) {
	run := func(us int, rate, rate99 float64, p99ms int) *Result {
		r := cpuRun(us, rate)
		r.SetupRate99 = rate99
		r.SessionSetup.P99 = time.Duration(p99ms) * time.Millisecond
		return r
	}
	names := []string{"ours-local-1000", "ours-radius-1000", "peer-1000", "ours-radius-1000", "peer-1000",
		"ours-local-overload-20000", "peer-overload-20000", "ours-local-100000", "peer-x-1000"}
	results := []*Result{
		run(40, 9000, 9000, 10), run(60, 6000, 6000, 20), run(100, 5000, 4000, 25),
		run(80, 5500, 5500, 22), run(140, 4500, 4500, 30),
		run(50, 8000, 0, 4), run(200, 2000, 1000, 2500),
		run(45, 9000, 9000, 12), // no peer-100000: no row
		run(10, 1, 1, 1),        // peer's own run of another load: no row, though "peer-x" ends like one
	}
	if got := MarkdownRatioTable(GroupRuns(names, results), "nobody"); got != "" {
		t.Fatalf("no counterpart, got a table:\n%s", got)
	}
	// ours-radius-1000's median is the 60 us run (60 < 80), peer-1000's
	// the 100 us run (100 < 140).
	want := "| run | against | rate/s | rate/s to 99% | target CPU/setup | setup p99 |\n" +
		"|---|---|---:|---:|---:|---:|\n" +
		"| ours-local-1000 | peer-1000 | 1.80 | 2.25 | 0.40 | 0.40 |\n" +
		"| ours-radius-1000 | peer-1000 | 1.20 | 1.50 | 0.60 | 0.80 |\n" +
		"| ours-local-overload-20000 | peer-overload-20000 | 4.00 | - | 0.25 | 0.0016 |\n"
	if got := MarkdownRatioTable(GroupRuns(names, results), "peer"); got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}
