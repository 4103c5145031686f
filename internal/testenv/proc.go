package testenv

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// maxLogLines bounds what a Log keeps; older lines are counted, not kept.
const maxLogLines = 200000

// Match is one log line that matched a pattern.
type Match struct {
	Index  int      // position of the line in the log (0 = first line)
	Line   string   // the whole line
	Groups []string // the pattern's submatches; Groups[0] is the matched text
}

// Log collects the lines of a process's output and lets tests wait for a
// line matching a pattern. It is line-oriented and format-agnostic: a zap
// JSON line, a console line and a syslog-style line are all just text. The
// zero value is not usable; use NewLog.
type Log struct {
	mu      sync.Mutex
	lines   []string
	dropped int           // lines discarded from the front (maxLogLines)
	changed chan struct{} // closed and replaced on every append and on Close
	closed  bool
	err     error // why the log ended, if known (set by Close)
}

// NewLog returns an empty, open log.
func NewLog() *Log { return &Log{changed: make(chan struct{})} }

// Add appends one line (without its newline).
func (l *Log) Add(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	if len(l.lines) == maxLogLines {
		l.lines = l.lines[1:]
		l.dropped++
	}
	l.lines = append(l.lines, line)
	close(l.changed)
	l.changed = make(chan struct{})
}

// Close marks the end of the log: waiters for lines that have not appeared
// return at once with err (or a generic error when err is nil).
func (l *Log) Close(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	l.closed, l.err = true, err
	close(l.changed)
}

// ReadFrom adds every line read from r until EOF or error, then returns.
// It does not Close the log.
func (l *Log) ReadFrom(r io.Reader) (int64, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	sc.Split(scanLines)
	var n int64
	for sc.Scan() {
		n += int64(len(sc.Bytes())) + 1
		l.Add(sc.Text())
	}
	return n, sc.Err()
}

// scanLines splits at "\n", "\r\n" and a lone "\r" (progress counters such
// as dumpcap's "Packets: N" redraw a line with "\r"); empty lines are kept.
func scanLines(data []byte, atEOF bool) (advance int, token []byte, err error) {
	for i, b := range data {
		switch b {
		case '\n':
			return i + 1, data[:i], nil
		case '\r':
			if i+1 == len(data) && !atEOF {
				return 0, nil, nil // need to see whether "\n" follows
			}
			if i+1 < len(data) && data[i+1] == '\n' {
				return i + 2, data[:i], nil
			}
			return i + 1, data[:i], nil
		}
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}

// Lines returns a copy of the lines kept so far.
func (l *Log) Lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

// closedNow reports whether the log has ended.
func (l *Log) closedNow() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}

// Len is the index the next line will get.
func (l *Log) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.dropped + len(l.lines)
}

// String returns the log as text, one line per line.
func (l *Log) String() string { return strings.Join(l.Lines(), "\n") }

// WaitFor blocks until a line matching pattern (a regexp) is in the log,
// counting lines that arrived before the call, or until ctx expires or the
// log ends. Use WaitForFrom to look only past an earlier match.
func (l *Log) WaitFor(ctx context.Context, pattern string) (Match, error) {
	return l.WaitForFrom(ctx, 0, pattern)
}

// WaitForFrom is WaitFor looking only at lines with Index >= from
// (typically a previous Match.Index+1, or Len() before triggering an event).
func (l *Log) WaitForFrom(ctx context.Context, from int, pattern string) (Match, error) {
	re, err := regexp.Compile(pattern)
	if err != nil {
		return Match{}, fmt.Errorf("testenv: bad log pattern: %w", err)
	}
	for {
		l.mu.Lock()
		start := from - l.dropped
		if start < 0 {
			start = 0
		}
		for i := start; i < len(l.lines); i++ {
			if g := re.FindStringSubmatch(l.lines[i]); g != nil {
				m := Match{Index: l.dropped + i, Line: l.lines[i], Groups: g}
				l.mu.Unlock()
				return m, nil
			}
		}
		from = l.dropped + len(l.lines)
		changed, closed, cause := l.changed, l.closed, l.err
		l.mu.Unlock()
		if closed {
			if cause == nil {
				cause = errors.New("log ended")
			}
			return Match{}, fmt.Errorf("testenv: no line matching %q: %w", pattern, cause)
		}
		select {
		case <-ctx.Done():
			return Match{}, fmt.Errorf("testenv: no line matching %q: %w", pattern, ctx.Err())
		case <-changed:
		}
	}
}

// Proc is a process started for a test (optionally inside a namespace)
// with stdout and stderr collected line by line into Log.
type Proc struct {
	*Log
	Name string // for messages
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited and output is drained
	err  error         // cmd.Wait's result, valid after done
	stop sync.Once
}

// StartProc starts name with args inside ns (the host's namespace when ns
// is nil). Its output goes to the returned Proc's Log. When the test ends
// the process is stopped (SIGTERM, then SIGKILL after 15s: the daemon's orderly shutdown may take that long) and, if the test
// failed, the last lines of its output are written to the test log.
func StartProc(t testing.TB, ns *Netns, name string, args ...string) *Proc {
	t.Helper()
	var cmd *exec.Cmd
	if ns != nil {
		cmd = ns.Command(name, args...)
	} else {
		cmd = exec.Command(tool(name), args...)
	}
	p, err := StartCmd(cmd, name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Stop(15 * time.Second); err != nil {
			t.Logf("testenv: %s: %v", p.Name, err)
		}
		if t.Failed() {
			lines := p.Lines()
			if len(lines) > 300 {
				lines = lines[len(lines)-300:]
			}
			t.Logf("testenv: output of %s (%s):\n%s", p.Name, p.cmd, strings.Join(lines, "\n"))
		}
	})
	return p
}

// StartCmd starts a prepared command (Stdout and Stderr must be unset) and
// collects its output. The caller must Stop it; StartProc does so itself.
func StartCmd(cmd *exec.Cmd, name string) (*Proc, error) {
	r, w := io.Pipe()
	cmd.Stdout, cmd.Stderr = w, w
	p := &Proc{Log: NewLog(), Name: name, cmd: cmd, done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("testenv: start %s: %w", name, err)
	}
	drained := make(chan struct{})
	go func() {
		p.Log.ReadFrom(r)
		close(drained)
	}()
	go func() {
		err := cmd.Wait() // waits for the copying goroutines that write to w
		w.Close()
		<-drained
		p.err = err
		if err == nil {
			err = errors.New("exited with status 0")
		}
		p.Log.Close(fmt.Errorf("%s %w", name, wrapExit(err)))
		close(p.done)
	}()
	return p, nil
}

// wrapExit turns *exec.ExitError into a message that says "exited: ...".
func wrapExit(err error) error {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return fmt.Errorf("exited: %w", err)
	}
	return err
}

// Pid is the process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited and all its output is in Log.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Wait waits for the process to exit on its own and returns cmd.Wait's error.
func (p *Proc) Wait(ctx context.Context) error {
	select {
	case <-p.done:
		return p.err
	case <-ctx.Done():
		return fmt.Errorf("testenv: %s still running: %w", p.Name, ctx.Err())
	}
}

// Signal sends sig to the process (no-op once it has exited).
func (p *Proc) Signal(sig syscall.Signal) error {
	select {
	case <-p.done:
		return nil
	default:
	}
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("testenv: signal %v to %s: %w", sig, p.Name, err)
	}
	return nil
}

// Stop sends SIGTERM, waits up to grace for the process to exit, then sends
// SIGKILL. It returns an error only when signalling failed or the process
// had to be killed; how it exited is at the end of its Log. Calling it again
// returns nil.
func (p *Proc) Stop(grace time.Duration) error {
	var err error
	p.stop.Do(func() {
		select {
		case <-p.done:
			return // already exited; its status is in the log's end
		default:
		}
		if err = p.Signal(syscall.SIGTERM); err != nil {
			return
		}
		timer := time.NewTimer(grace)
		defer timer.Stop()
		select {
		case <-p.done:
		case <-timer.C:
			p.cmd.Process.Kill()
			<-p.done
			err = fmt.Errorf("testenv: %s ignored SIGTERM for %v; killed", p.Name, grace)
		}
	})
	return err
}
