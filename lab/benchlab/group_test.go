package benchlab

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/l2tpd/l2tpd/bench"
)

// A /proc/PID/stat line of a pppd (proc(5)): fields 14-17 are utime 7,
// stime 12, cutime 3, cstime 5.
const pppdStat = "4242 (pppd) S 4200 4242 4242 0 -1 4194560 612 0 0 0 7 12 3 5 20 0 1 0 10731 6418432 871 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0\n"

func TestParseStatTimes(t *testing.T) {
	for _, tc := range []struct {
		name, in, comm string
		want           StatTimes
		err            bool
	}{
		{name: "pppd", in: pppdStat, comm: "pppd", want: StatTimes{7, 12, 3, 5}},
		// A command name with spaces and a ')' inside: the last ')' ends it.
		{name: "odd comm", in: "7 (a) b (c) R 1 7 7 0 -1 0 0 0 0 0 100 200 300 400 20 0 1 0\n", comm: "a) b (c", want: StatTimes{100, 200, 300, 400}},
		{name: "no parens", in: "7 pppd S 1 2 3", err: true},
		{name: "short", in: "7 (pppd) S 1 2 3 4 5 6 7 8 9 10 11 12", err: true},
		{name: "not a number", in: "7 (x) S 1 7 7 0 -1 0 0 0 0 0 1 x 3 4 20", err: true},
		{name: "negative cutime", in: "7 (x) S 1 7 7 0 -1 0 0 0 0 0 1 2 -3 4 20", err: true},
		{name: "close before open", in: ") 7 (x S 1 7 7 0 -1 0 0 0 0 0 1 2 3 4 20", err: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			comm, got, err := ParseStatTimes([]byte(tc.in))
			if tc.err {
				if !errors.Is(err, ErrStatFormat) {
					t.Fatalf("err = %v, want ErrStatFormat", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if comm != tc.comm || got != tc.want {
				t.Errorf("got %q %+v, want %q %+v", comm, got, tc.comm, tc.want)
			}
			if got.Total() != tc.want.UTime+tc.want.STime+tc.want.CUTime+tc.want.CSTime {
				t.Errorf("Total %d", got.Total())
			}
		})
	}
}

func FuzzParseStatTimes(f *testing.F) {
	f.Add([]byte(pppdStat))
	f.Add([]byte("1 (a)) S"))
	f.Add([]byte("("))
	f.Fuzz(func(t *testing.T, b []byte) {
		comm, st, err := ParseStatTimes(b)
		if err != nil {
			if !errors.Is(err, ErrStatFormat) {
				t.Fatalf("error not ErrStatFormat: %v", err)
			}
			return
		}
		if st.UTime < 0 || st.STime < 0 || st.CUTime < 0 || st.CSTime < 0 {
			t.Fatalf("negative times %+v", st)
		}
		if !bytes.Contains(b, []byte("("+comm+")")) {
			t.Fatalf("command %q not in the input", comm)
		}
	})
}

// writeProc builds a fake /proc with the given stat and status files.
func writeProc(t *testing.T, procs map[string][2]string) string {
	t.Helper()
	root := t.TempDir()
	for pid, f := range procs {
		d := filepath.Join(root, pid)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "stat"), []byte(f[0]), 0o644); err != nil {
			t.Fatal(err)
		}
		if f[1] != "" {
			if err := os.WriteFile(filepath.Join(d, "status"), []byte(f[1]), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Entries that are not processes are ignored.
	if err := os.WriteFile(filepath.Join(root, "meminfo"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

func stat(pid, comm string, ut, st, cut, cst string) string {
	return pid + " (" + comm + ") S 1 1 1 0 -1 0 0 0 0 0 " + ut + " " + st + " " + cut + " " + cst + " 20 0 1 0\n"
}

func TestSampleGroup(t *testing.T) {
	root := writeProc(t, map[string][2]string{
		"10": {stat("10", "xl2tpd", "50", "30", "200", "100"), "Name:\txl2tpd\nVmRSS:\t    2048 kB\n"},
		"11": {stat("11", "pppd", "10", "20", "1", "2"), "Name:\tpppd\nVmRSS:\t    3500 kB\n"},
		"12": {stat("12", "pppd", "5", "5", "0", "0"), "Name:\tpppd\nState:\tZ (zombie)\n"}, // zombie: no VmRSS
		"13": {stat("13", "l2tpbench", "999", "999", "0", "0"), "VmRSS:\t 9999 kB\n"},
		"14": {stat("14", "pppd-not", "999", "999", "0", "0"), "VmRSS:\t 9999 kB\n"},
	})
	now := time.Unix(1700000000, 0)
	s, err := SampleGroup(root, []string{"xl2tpd", "pppd"}, 100, now)
	if err != nil {
		t.Fatal(err)
	}
	// Ticks: 380 + 33 + 10 = 423 at 100 Hz.
	want := GroupSample{T: now, CPU: 4230 * time.Millisecond, RSS: (2048 + 3500) * 1024, Procs: 3}
	if s != want {
		t.Errorf("got %+v, want %+v", s, want)
	}
	bad := writeProc(t, map[string][2]string{"20": {"20 pppd S", ""}})
	if _, err := SampleGroup(bad, []string{"pppd"}, 100, now); !errors.Is(err, ErrStatFormat) {
		t.Errorf("malformed stat: err = %v", err)
	}
	if _, err := SampleGroup(filepath.Join(root, "missing"), []string{"pppd"}, 100, now); err == nil {
		t.Errorf("missing proc root: no error")
	}
}

func TestSampleLineRoundTrip(t *testing.T) {
	s := GroupSample{T: time.Unix(1700000000, 123456789), CPU: 4230 * time.Millisecond, RSS: 5678 * 1024, Procs: 201}
	line := string(AppendSampleLine(nil, s))
	if line != "1700000000123456789,4230000000,5814272,201\n" {
		t.Fatalf("line %q", line)
	}
	got, err := ParseSampleLine(strings.TrimSuffix(line, "\n"))
	if err != nil || !got.T.Equal(s.T) || got.CPU != s.CPU || got.RSS != s.RSS || got.Procs != s.Procs {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	for _, bad := range []string{"", "1,2,3", "1,2,3,4,5", "1,x,3,4", "1,-2,3,4"} {
		if _, err := ParseSampleLine(bad); !errors.Is(err, ErrSeriesFormat) {
			t.Errorf("%q: err = %v", bad, err)
		}
	}
}

func FuzzParseSampleLine(f *testing.F) {
	f.Add("1700000000123456789,4230000000,5814272,201")
	f.Add("0,0,0,0")
	f.Fuzz(func(t *testing.T, line string) {
		s, err := ParseSampleLine(line)
		if err != nil {
			if !errors.Is(err, ErrSeriesFormat) {
				t.Fatalf("error not ErrSeriesFormat: %v", err)
			}
			return
		}
		again, err := ParseSampleLine(strings.TrimSuffix(string(AppendSampleLine(nil, s)), "\n"))
		if err != nil || !again.T.Equal(s.T) || again.CPU != s.CPU || again.RSS != s.RSS || again.Procs != s.Procs {
			t.Fatalf("round trip of %q: %+v vs %+v, %v", line, again, s, err)
		}
	})
}

func TestReadSeries(t *testing.T) {
	in := "1000,0,10,1\n2000,5,20,2\n3000,9,3" // partial last line: dropped
	s, err := ReadSeries(strings.NewReader(in))
	if err != nil || len(s) != 2 || s[1].CPU != 5 {
		t.Fatalf("got %+v, %v", s, err)
	}
	if _, err := ReadSeries(strings.NewReader("2000,0,0,0\n1000,0,0,0\n")); !errors.Is(err, ErrSeriesFormat) {
		t.Errorf("backwards: err = %v", err)
	}
	if _, err := ReadSeries(strings.NewReader("1000,0,0,0\nbad\n")); !errors.Is(err, ErrSeriesFormat) {
		t.Errorf("bad line: err = %v", err)
	}
}

func TestApplyGroup(t *testing.T) {
	t0 := time.Unix(1700000000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	// One sample a second: CPU climbs 1 s per second during the setup
	// (0-4 s), 0.1 s/s during the hold (4-6 s), RSS from 2 MiB up to 12.
	series := []GroupSample{
		{T: at(-1000), CPU: 10 * time.Second, RSS: 2 << 20, Procs: 1},
		{T: at(0), CPU: 10 * time.Second, RSS: 2 << 20, Procs: 1},
		{T: at(1000), CPU: 11 * time.Second, RSS: 5 << 20, Procs: 4},
		{T: at(2000), CPU: 12 * time.Second, RSS: 8 << 20, Procs: 7},
		{T: at(3000), CPU: 13 * time.Second, RSS: 10 << 20, Procs: 9},
		{T: at(4000), CPU: 14 * time.Second, RSS: 12 << 20, Procs: 11},
		{T: at(5000), CPU: 14100 * time.Millisecond, RSS: 12 << 20, Procs: 11},
		{T: at(6000), CPU: 14200 * time.Millisecond, RSS: 12 << 20, Procs: 11},
		{T: at(7000), CPU: 14500 * time.Millisecond, RSS: 2 << 20, Procs: 1},
	}
	res := &bench.Result{Start: at(0), Up: 10, SessionsAtEnd: 10,
		Setup: bench.Phase{Wall: 3500 * time.Millisecond}, Hold: bench.Phase{Wall: 2 * time.Second}}
	if err := ApplyGroup(res, series); err != nil {
		t.Fatal(err)
	}
	// Setup ends at 3.5 s: CPU interpolated to 13.5 s, 3.5 s since start.
	checks := []struct {
		name      string
		got, want int64
	}{
		{"setup target", int64(res.Setup.Target), int64(3500 * time.Millisecond)},
		{"cpu per setup", int64(res.TargetCPUPerSetup), int64(350 * time.Millisecond)},
		{"cpu in all", int64(res.TargetCPU), int64(4500 * time.Millisecond)},
		// Hold 3.5-5.5 s: 13.5 -> 14.15.
		{"hold target", int64(res.Hold.Target), int64(650 * time.Millisecond)},
		{"rss before", res.TargetRSSBefore, 2 << 20},
		{"rss held", res.TargetRSSHeld, 12 << 20},
		{"rss peak", res.TargetRSSPeak, 12 << 20},
		{"rss after", res.TargetRSSAfter, 2 << 20},
		{"bytes per session", res.TargetBytesPerSession, (10 << 20) / 10},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.name, c.got, c.want)
		}
	}
	if res.TargetHoldCPUPercent < 32.4 || res.TargetHoldCPUPercent > 32.6 {
		t.Errorf("hold CPU %.2f%%, want 32.5%%", res.TargetHoldCPUPercent)
	}
	if err := ApplyGroup(&bench.Result{}, nil); !errors.Is(err, ErrNoSamples) {
		t.Errorf("empty series: err = %v", err)
	}
}

func TestCPUAtOutside(t *testing.T) {
	t0 := time.Unix(100, 0)
	s := []GroupSample{{T: t0, CPU: 5}, {T: t0.Add(time.Second), CPU: 7}}
	for _, c := range []struct {
		at   time.Time
		want time.Duration
	}{{t0.Add(-time.Hour), 5}, {t0, 5}, {t0.Add(500 * time.Millisecond), 6}, {t0.Add(time.Second), 7}, {t0.Add(time.Hour), 7}} {
		if got := cpuAt(s, c.at); got != c.want {
			t.Errorf("cpuAt(%v) = %d, want %d", c.at.Sub(t0), got, c.want)
		}
	}
}
