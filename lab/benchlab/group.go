package benchlab

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/l2tpd/l2tpd/bench"
)

// A peer such as xl2tpd + pppd is not one process: xl2tpd forks one pppd per
// session, and pppd forks its ip-up scripts. l2tpbench's --target-pid sees
// one process, so the lab measures such a target as a group: every process
// whose command name (/proc/PID/comm) is in a set, sampled in a loop by
// cmd/groupmeter inside the VM, and folded into the l2tpbench result on the
// host by ApplyGroup.
//
// CPU of a group sample is the sum over its live processes of utime + stime
// + cutime + cstime (proc(5) fields 14-17): a pppd that has exited and been
// reaped by xl2tpd is then counted in xl2tpd's cutime/cstime, and an ip-up
// script reaped by pppd in pppd's. RSS is the sum of VmRSS, so pages shared
// between the pppd processes (libc, pppd's text) are counted once per
// process, as ps and the reference figures count them.

// GroupSample is one sample of a process group.
type GroupSample struct {
	T     time.Time     // when it was taken (the VM's wall clock)
	CPU   time.Duration // user + system, children reaped included
	RSS   int64         // bytes, summed over the processes
	Procs int           // processes matched
}

// StatTimes are the CPU fields of /proc/PID/stat, in clock ticks.
type StatTimes struct {
	UTime, STime, CUTime, CSTime int64
}

// Total is the sum of the four times.
func (s StatTimes) Total() int64 { return s.UTime + s.STime + s.CUTime + s.CSTime }

// ErrStatFormat is returned for /proc/PID/stat contents that cannot be read.
var ErrStatFormat = errors.New("unexpected /proc/PID/stat format")

// ParseStatTimes reads utime, stime, cutime and cstime (fields 14 to 17 of
// proc(5)) from the contents of /proc/PID/stat, and the command name
// (field 2, between the first '(' and the last ')': it may itself contain
// spaces and parentheses). cutime and cstime are signed in the kernel's
// format; negative values are refused.
func ParseStatTimes(stat []byte) (comm string, t StatTimes, err error) {
	open := bytes.IndexByte(stat, '(')
	closeAt := bytes.LastIndexByte(stat, ')')
	if open < 0 || closeAt < open {
		return "", StatTimes{}, fmt.Errorf("stat: no command name: %w", ErrStatFormat)
	}
	comm = string(stat[open+1 : closeAt])
	fields := bytes.Fields(stat[closeAt+1:])
	// fields[0] is field 3 (state); field N is fields[N-3].
	if len(fields) < 15 {
		return "", StatTimes{}, fmt.Errorf("stat: %d fields after the command name, want at least 15: %w", len(fields), ErrStatFormat)
	}
	var v [4]int64
	for i := range v {
		f := fields[11+i]
		n, perr := strconv.ParseInt(string(f), 10, 64)
		if perr != nil || n < 0 {
			return "", StatTimes{}, fmt.Errorf("stat: field %d = %q: %w", 14+i, f, ErrStatFormat)
		}
		v[i] = n
	}
	return comm, StatTimes{UTime: v[0], STime: v[1], CUTime: v[2], CSTime: v[3]}, nil
}

// SampleGroup reads every process under procRoot (normally "/proc") whose
// command name is in names and returns their summed CPU and RSS. Processes
// that exit while it reads are skipped. clkTck is USER_HZ
// (bench.ClockTicks()).
func SampleGroup(procRoot string, names []string, clkTck int64, now time.Time) (GroupSample, error) {
	ents, err := os.ReadDir(procRoot)
	if err != nil {
		return GroupSample{}, fmt.Errorf("group sample: %w", err)
	}
	s := GroupSample{T: now}
	var ticks int64
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join(procRoot, e.Name(), "stat"))
		if err != nil {
			continue // gone
		}
		comm, t, err := ParseStatTimes(stat)
		if err != nil {
			return GroupSample{}, fmt.Errorf("group sample: pid %s: %w", e.Name(), err)
		}
		if !slices.Contains(names, comm) {
			continue
		}
		ticks += t.Total()
		s.Procs++
		if st, err := os.ReadFile(filepath.Join(procRoot, e.Name(), "status")); err == nil {
			if rss, err := bench.ParseStatusRSS(st); err == nil {
				s.RSS += rss // a zombie has no VmRSS line: it holds none
			}
		}
	}
	s.CPU = time.Duration(ticks) * time.Second / time.Duration(max(clkTck, 1))
	return s, nil
}

// AppendSampleLine appends s as one CSV line: unix_ns,cpu_ns,rss_bytes,procs.
func AppendSampleLine(b []byte, s GroupSample) []byte {
	b = strconv.AppendInt(b, s.T.UnixNano(), 10)
	b = append(b, ',')
	b = strconv.AppendInt(b, int64(s.CPU), 10)
	b = append(b, ',')
	b = strconv.AppendInt(b, s.RSS, 10)
	b = append(b, ',')
	b = strconv.AppendInt(b, int64(s.Procs), 10)
	return append(b, '\n')
}

// ErrSeriesFormat is returned for a group series line that cannot be read.
var ErrSeriesFormat = errors.New("bad group series line")

// ParseSampleLine parses one line written by AppendSampleLine (without
// its newline).
func ParseSampleLine(line string) (GroupSample, error) {
	f := strings.Split(line, ",")
	if len(f) != 4 {
		return GroupSample{}, fmt.Errorf("%q: %d fields, want 4: %w", line, len(f), ErrSeriesFormat)
	}
	var v [4]int64
	for i, x := range f {
		n, err := strconv.ParseInt(x, 10, 64)
		if err != nil || n < 0 {
			return GroupSample{}, fmt.Errorf("%q: field %d: %w", line, i+1, ErrSeriesFormat)
		}
		v[i] = n
	}
	return GroupSample{T: time.Unix(0, v[0]), CPU: time.Duration(v[1]), RSS: v[2], Procs: int(v[3])}, nil
}

// ReadSeries reads a group series (lines of AppendSampleLine). A last line
// without its newline (the meter was killed while writing) is ignored;
// samples must be in time order.
func ReadSeries(r io.Reader) ([]GroupSample, error) {
	br := bufio.NewReader(r)
	var out []GroupSample
	for n := 1; ; n++ {
		line, err := br.ReadString('\n')
		if err == io.EOF {
			return out, nil // a partial last line is dropped
		}
		if err != nil {
			return out, fmt.Errorf("group series: %w", err)
		}
		s, err := ParseSampleLine(strings.TrimSuffix(line, "\n"))
		if err != nil {
			return out, fmt.Errorf("group series line %d: %w", n, err)
		}
		if len(out) > 0 && s.T.Before(out[len(out)-1].T) {
			return out, fmt.Errorf("group series line %d: time goes backwards: %w", n, ErrSeriesFormat)
		}
		out = append(out, s)
	}
}

// cpuAt is the group's CPU at t, interpolated linearly between the samples
// around it (the first or last sample outside the series).
func cpuAt(series []GroupSample, t time.Time) time.Duration {
	i, _ := slices.BinarySearchFunc(series, t, func(s GroupSample, t time.Time) int { return s.T.Compare(t) })
	switch {
	case i == 0:
		return series[0].CPU
	case i == len(series):
		return series[len(series)-1].CPU
	}
	a, b := series[i-1], series[i]
	span := b.T.Sub(a.T)
	if span <= 0 {
		return b.CPU
	}
	frac := float64(t.Sub(a.T)) / float64(span)
	return a.CPU + time.Duration(frac*float64(b.CPU-a.CPU))
}

// rssAt is the RSS of the last sample at or before t (the first sample if
// none).
func rssAt(series []GroupSample, t time.Time) int64 {
	r := series[0].RSS
	for _, s := range series {
		if s.T.After(t) {
			break
		}
		r = s.RSS
	}
	return r
}

// ErrNoSamples is returned by ApplyGroup for an empty series.
var ErrNoSamples = errors.New("no group samples")

// ApplyGroup fills the target fields of an l2tpbench result (run without
// --target-pid) from a group series taken during the same run: CPU of the
// setup phase and per setup, of the hold, of the whole run; RSS before,
// held, peak and after; bytes per session held. Setup runs from res.Start
// for res.Setup.Wall, the hold (when there is one) ends res.Hold.Wall after
// the setup; CPU at those instants is interpolated between samples.
func ApplyGroup(res *bench.Result, series []GroupSample) error {
	if len(series) == 0 {
		return ErrNoSamples
	}
	start := res.Start
	setupEnd := start.Add(res.Setup.Wall)
	base := cpuAt(series, start)
	res.Setup.Target = cpuAt(series, setupEnd) - base
	res.TargetCPU = series[len(series)-1].CPU - base
	res.TargetRSSBefore = rssAt(series, start)
	res.TargetRSSAfter = series[len(series)-1].RSS
	res.TargetRSSPeak = 0
	for _, s := range series {
		if !s.T.Before(start) {
			res.TargetRSSPeak = max(res.TargetRSSPeak, s.RSS)
		}
	}
	res.TargetCPUPerSetup = 0
	if res.Up > 0 {
		res.TargetCPUPerSetup = res.Setup.Target / time.Duration(res.Up)
	}
	if res.Hold.Wall > 0 {
		holdEnd := setupEnd.Add(res.Hold.Wall)
		res.Hold.Target = cpuAt(series, holdEnd) - cpuAt(series, setupEnd)
		res.TargetHoldCPUPercent = 100 * res.Hold.Target.Seconds() / res.Hold.Wall.Seconds()
		res.TargetRSSHeld = rssAt(series, holdEnd)
		if res.SessionsAtEnd > 0 {
			res.TargetBytesPerSession = (res.TargetRSSHeld - res.TargetRSSBefore) / int64(res.SessionsAtEnd)
		}
	}
	return nil
}
