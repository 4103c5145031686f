package lab

import (
	"os"
	"strings"
	"testing"
)

// A real SIGQUIT dump (Go 1.26, GOTRACEBACK for SIGQUIT: gp= m= fields,
// register dump after): the three goroutines waiting in one place are one
// line, runtime frames are left out, the log line before is ignored.
func TestGoroutineSummaryGolden(t *testing.T) {
	b, err := os.ReadFile("testdata/sigquit.log")
	if err != nil {
		t.Fatal(err)
	}
	got := GoroutineSummary(b, 3)
	want := `3 x [chan receive] main.(*T).wait (gq/main.go:7) < main.main.gowrap1 (gq/main.go:11) < created by main.main (gq/main.go:11)
1 x [idle] (runtime only)
1 x [sync.WaitGroup.Wait] sync.(*WaitGroup).Wait (sync/waitgroup.go:206) < main.main (gq/main.go:15)
1 x [force gc (idle)] (runtime only)
1 x [GC sweep wait] (runtime only)
1 x [GC scavenge wait] (runtime only)
1 x [sleep] time.Sleep (runtime/time.go:363) < main.main.func1 (gq/main.go:13) < created by main.main (gq/main.go:13)
`
	if got != want {
		t.Errorf("summary:\n%s\nwant:\n%s", got, want)
	}
	// maxFrames bounds every line.
	if got := GoroutineSummary(b, 1); !strings.HasPrefix(got, "3 x [chan receive] main.(*T).wait (gq/main.go:7)\n") {
		t.Errorf("one frame:\n%s", got)
	}
}

// Only the last dump of a log counts (a daemon's log holds every run).
func TestGoroutineSummaryLastDump(t *testing.T) {
	first := "panic: boom\n\ngoroutine 1 [running]:\nmain.old()\n\t/x/old.go:1 +0x1\n\n"
	second := "==== start\nSIGQUIT: quit\nPC=0x1 m=0\n\ngoroutine 9 [select, 3 minutes]:\nmain.new(0x1)\n\t/x/new.go:2 +0x2\n"
	got := GoroutineSummary([]byte(first+second), 4)
	if got != "1 x [select] main.new (x/new.go:2)\n" {
		t.Errorf("summary %q", got)
	}
	if got := GoroutineSummary([]byte("no dump here\n"), 4); got != "" {
		t.Errorf("no dump: %q", got)
	}
}

func FuzzGoroutineSummary(f *testing.F) {
	if b, err := os.ReadFile("testdata/sigquit.log"); err == nil {
		f.Add(b)
	}
	f.Add([]byte("goroutine 1 [x]:\n\t\n("))
	f.Add([]byte("\ngoroutine \ngoroutine 2 gp=1 [a, b]:\nf()\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s := GoroutineSummary(b, 3)
		for _, line := range strings.Split(strings.TrimSuffix(s, "\n"), "\n") {
			if s != "" && !strings.Contains(line, " x [") {
				t.Fatalf("line %q lacks a count and state", line)
			}
		}
	})
}
