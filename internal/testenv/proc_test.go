package testenv

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestLogWaitFor(t *testing.T) {
	l := NewLog()
	l.Add(`{"level":"info","msg":"tunnel up","tunnel":7}`)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	// A line already present matches; submatches come back.
	m, err := l.WaitFor(ctx, `"msg":"tunnel up","tunnel":(\d+)`)
	if err != nil || m.Index != 0 || m.Groups[1] != "7" {
		t.Fatalf("WaitFor = %+v, %v", m, err)
	}
	// A line added later wakes the waiter.
	done := make(chan Match)
	go func() {
		m, err := l.WaitForFrom(ctx, m.Index+1, `session (\d+) up`)
		if err != nil {
			t.Error(err)
		}
		done <- m
	}()
	l.Add("2026-01-01T00:00:00Z\tINFO\tsomething else")
	l.Add("2026-01-01T00:00:00Z\tINFO\tsession 42 up")
	if m := <-done; m.Index != 2 || m.Groups[1] != "42" {
		t.Errorf("late match = %+v", m)
	}
	// WaitForFrom skips earlier lines; an expired context ends the wait.
	if _, err := l.WaitForFrom(expired(), 1, `tunnel up`); !errors.Is(err, context.Canceled) {
		t.Errorf("expired: err = %v, want context.Canceled", err)
	}
	// A closed log ends the wait with its cause.
	cause := errors.New("exited: signal: killed")
	l.Close(cause)
	if _, err := l.WaitFor(ctx, `never`); !errors.Is(err, cause) {
		t.Errorf("closed: err = %v, want the close cause", err)
	}
	if _, err := l.WaitFor(ctx, `(`); err == nil {
		t.Error("bad pattern: no error")
	}
}

func TestLogReadFromSplitsLines(t *testing.T) {
	l := NewLog()
	l.ReadFrom(strings.NewReader("a\r\nb\rPackets: 1 \rPackets: 3 \n\nlast"))
	want := []string{"a", "b", "Packets: 1 ", "Packets: 3 ", "", "last"}
	if got := l.Lines(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("lines = %q, want %q", got, want)
	}
	if l.Len() != len(want) {
		t.Errorf("Len = %d", l.Len())
	}
}

// TestStartProcInNetns runs a shell in a namespace as a stand-in for our
// daemon: output is collected line by line, WaitFor sees it, and the exit
// ends waits with the exit status.
func TestStartProcInNetns(t *testing.T) {
	Require(t, "ip", "sh")
	t.Parallel()
	ns := NewNetns(t, "proc")
	p := StartProc(t, ns, "sh", "-c", `echo '{"level":"info","msg":"listening"}'; ip -o link show lo; echo oops >&2; read x; exit 3`)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, pat := range []string{`"msg":"listening"`, `^1: lo:`, `^oops$`} {
		if _, err := p.WaitFor(ctx, pat); err != nil {
			t.Fatal(err)
		}
	}
	// stdin is /dev/null: read fails and the shell exits 3.
	if err := p.Wait(ctx); err == nil || !strings.Contains(err.Error(), "exit status 3") {
		t.Errorf("Wait = %v, want exit status 3", err)
	}
	if _, err := p.WaitFor(ctx, `never`); err == nil || !strings.Contains(err.Error(), "exit status 3") {
		t.Errorf("WaitFor after exit = %v, want the exit status", err)
	}

	// Stop: SIGTERM ends a process that does not exit by itself.
	q := StartProc(t, ns, "sleep", "600")
	if err := q.Stop(5 * time.Second); err != nil {
		t.Error(err)
	}
	select {
	case <-q.Done():
	default:
		t.Error("process still running after Stop")
	}
}

func TestRequireMissingTool(t *testing.T) {
	if r := missing([]string{"definitely-not-a-tool-l2tpd"}); !strings.Contains(r, "definitely-not-a-tool-l2tpd") {
		t.Errorf("missing() = %q, want the tool named", r)
	}
	if _, err := toolPath("sh"); err != nil {
		t.Errorf("toolPath(sh): %v", err)
	}
}
