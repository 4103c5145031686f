package lab

import (
	"bufio"
	"bytes"
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// goroutineHeader matches the first line of a goroutine in a Go traceback
// ("goroutine 7 [chan receive, 2 minutes]:", or with gp= m= fields when
// GOTRACEBACK is system or crash).
var goroutineHeader = regexp.MustCompile(`^goroutine \d+(?: [^\[]*)?\[([^\]]*)\]:$`)

// GoroutineSummary condenses the last Go traceback in log (what a Go
// program prints on SIGQUIT or a fatal error) into one line per distinct
// stack, most frequent first: "N x [state] f1 (file:line) < f2 (file:line)
// ...", at most maxFrames frames each. It returns "" when log holds no
// traceback. It is for a test's failure output: a daemon that does not
// stop shows where its goroutines wait in a few lines instead of a dump of
// thousands.
func GoroutineSummary(log []byte, maxFrames int) string {
	// The last dump only: a log appended over several runs may hold more.
	start := bytes.LastIndex(log, []byte("\ngoroutine "))
	if start < 0 {
		return ""
	}
	// Back to the start of that dump: the first goroutine header after the
	// last "SIGQUIT"/"fatal error"/"panic" line, else the whole log.
	if i := lastDumpStart(log, start+1); i >= 0 {
		start = i
	} else {
		start = 0
	}
	type group struct {
		key   string
		count int
	}
	counts := map[string]*group{}
	var order []*group
	var state string
	var frames []string
	inG, kept := false, false
	flush := func() {
		if !inG {
			return
		}
		if len(frames) == 0 {
			frames = []string{"(runtime only)"}
		}
		key := "[" + state + "] " + strings.Join(frames, " < ")
		g := counts[key]
		if g == nil {
			g = &group{key: key}
			counts[key] = g
			order = append(order, g)
		}
		g.count++
		inG, frames = false, nil
	}
	sc := bufio.NewScanner(bytes.NewReader(log[start:]))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if m := goroutineHeader.FindStringSubmatch(line); m != nil {
			flush()
			inG, kept, state = true, false, trimState(m[1])
			continue
		}
		if !inG {
			continue
		}
		switch {
		case line == "":
			flush()
		case strings.HasPrefix(line, "\t"):
			// The file:line of the frame above, if that one was kept.
			if kept {
				frames[len(frames)-1] += " (" + fileLine(line) + ")"
				kept = false
			}
		default:
			// Runtime frames (gopark, selectgo, ...) say less than the
			// state; the caller's frames say where it waits.
			f := funcName(line)
			kept = len(frames) < maxFrames && !isRuntime(f)
			if kept {
				frames = append(frames, f)
			}
		}
	}
	flush()
	if len(order) == 0 {
		return ""
	}
	sort.SliceStable(order, func(i, j int) bool { return order[i].count > order[j].count })
	var b strings.Builder
	for _, g := range order {
		fmt.Fprintf(&b, "%d x %s\n", g.count, g.key)
	}
	return b.String()
}

// lastDumpStart is the offset of the first goroutine header after the last
// line before offset end that starts a traceback, or -1.
func lastDumpStart(log []byte, end int) int {
	best := -1
	for _, mark := range []string{"SIGQUIT: quit", "fatal error: ", "panic: "} {
		if i := bytes.LastIndex(log[:end], []byte(mark)); i > best {
			best = i
		}
	}
	if best < 0 {
		return -1
	}
	if j := bytes.Index(log[best:], []byte("\ngoroutine ")); j >= 0 {
		return best + j + 1
	}
	return -1
}

// trimState drops the wait time and "locked to thread" from a state.
func trimState(s string) string {
	if i := strings.IndexByte(s, ','); i >= 0 {
		s = s[:i]
	}
	return s
}

// funcName drops a frame's arguments: "pkg.(*T).m(0x1, ...)" is
// "pkg.(*T).m"; "created by pkg.f in goroutine 1" stays.
func funcName(line string) string {
	if strings.HasPrefix(line, "created by ") {
		if i := strings.Index(line, " in goroutine "); i >= 0 {
			line = line[:i]
		}
		return line
	}
	if strings.HasSuffix(line, ")") {
		if i := strings.LastIndexByte(line, '('); i > 0 {
			return line[:i]
		}
	}
	return line
}

// fileLine is "dir/file.go:123" of a frame's location line, without the
// offsets ("\t/src/x/y.go:123 +0x1f fp=... sp=...").
func fileLine(line string) string {
	s := strings.TrimSpace(line)
	if i := strings.IndexByte(s, ' '); i >= 0 {
		s = s[:i]
	}
	// The last two path elements are enough to find the line.
	if i := strings.LastIndexByte(s, '/'); i > 0 {
		if j := strings.LastIndexByte(s[:i], '/'); j >= 0 {
			s = s[j+1:]
		}
	}
	return s
}

// isRuntime reports whether a frame is the Go runtime's own.
func isRuntime(f string) bool {
	f = strings.TrimPrefix(f, "created by ")
	// sync.runtime_Semacquire and the like are the runtime's too.
	return strings.HasPrefix(f, "runtime.") || strings.HasPrefix(f, "internal/runtime/") || strings.Contains(f, ".runtime_")
}
