package bench

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"
)

// ProcSample is a process's CPU time, resident memory and context
// switches at one moment.
type ProcSample struct {
	CPU time.Duration // user + system
	RSS int64         // bytes (0 if unknown)
	// Context switches summed over the threads: Switches when a thread
	// blocked (voluntary), Preemptions when another task took its CPU
	// (involuntary). Each costs a switch out and back in; on a machine
	// shared with a RADIUS server, the preemptions show how often its
	// wake-ups took the server's CPU.
	Switches, Preemptions int64
	// Faults are the minor page faults of all threads (/proc/PID/stat
	// minflt): each is a fresh page of memory the kernel backed on first
	// touch, on a virtual machine several microseconds each.
	Faults int64
}

// SelfSample reads this process's CPU time (getrusage) and RSS
// (/proc/self/status).
func SelfSample() (ProcSample, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return ProcSample{}, fmt.Errorf("getrusage: %w", err)
	}
	ps := ProcSample{CPU: time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), Switches: ru.Nvcsw, Preemptions: ru.Nivcsw, Faults: ru.Minflt}
	st, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return ps, nil
	}
	ps.RSS, _ = ParseStatusRSS(st)
	return ps, nil
}

// PIDSample reads process pid's CPU time and RSS (/proc/PID/status). The
// CPU time is the sum over its threads of the nanoseconds each ran
// (/proc/PID/task/*/schedstat, schedstats built in), or else utime +
// stime (/proc/PID/stat, in clock ticks of clkTck per second: 10 ms, too
// coarse for a run of a second). A thread that exited between two
// samples takes its time with it from the sum; the servers measured here
// keep their threads (the Go runtime, l2tpns), and stat's ticks do count
// them, so a sum below stat's by more than a tick per thread falls back to
// stat. The context switches are summed over /proc/PID/task/*/status
// (the process's own status gives its first thread's only); a thread
// that exits takes its switches with it too.
func PIDSample(pid int, clkTck int64) (ProcSample, error) {
	ps, err := pidSampleTicks(pid, clkTck)
	if err != nil {
		return ps, err
	}
	ts, err := taskSum(pid)
	if err != nil {
		return ps, nil
	}
	ps.Switches, ps.Preemptions = ts.switches, ts.preemptions
	if ts.threads > 0 {
		sum := time.Duration(ts.runNs)
		tick := time.Second / time.Duration(clkTck)
		if sum+time.Duration(ts.threads+1)*tick >= ps.CPU {
			ps.CPU = sum
		}
	}
	return ps, nil
}

// taskTotals are a process's threads' figures, summed.
type taskTotals struct {
	runNs                 int64 // /proc/PID/task/*/schedstat: time on the CPU
	threads               int   // whose schedstat was read
	switches, preemptions int64 // /proc/PID/task/*/status
}

// taskSum sums the figures of pid's threads. A thread that exited
// meanwhile is left out; a thread whose status cannot be parsed adds no
// switches.
func taskSum(pid int) (taskTotals, error) {
	var ts taskTotals
	dir := fmt.Sprintf("/proc/%d/task", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return ts, err
	}
	for _, e := range ents {
		b, err := os.ReadFile(dir + "/" + e.Name() + "/schedstat")
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue // the thread exited meanwhile
			}
			return ts, err
		}
		ns, err := ParseSchedstatRun(b)
		if err != nil {
			return ts, err
		}
		ts.runNs += ns
		ts.threads++
		if st, err := os.ReadFile(dir + "/" + e.Name() + "/status"); err == nil {
			if v, inv, err := ParseStatusSwitches(st); err == nil {
				ts.switches += v
				ts.preemptions += inv
			}
		}
	}
	return ts, nil
}

// ParseSchedstatRun returns the first field of a /proc/PID/schedstat line:
// nanoseconds spent on the CPU.
func ParseSchedstatRun(b []byte) (int64, error) {
	f := bytes.Fields(b)
	if len(f) != 3 {
		return 0, fmt.Errorf("schedstat: %d fields: %w", len(f), ErrProcFormat)
	}
	ns, err := strconv.ParseInt(string(f[0]), 10, 64)
	if err != nil || ns < 0 {
		return 0, fmt.Errorf("schedstat: run time %q: %w", f[0], ErrProcFormat)
	}
	return ns, nil
}

func pidSampleTicks(pid int, clkTck int64) (ProcSample, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ProcSample{}, fmt.Errorf("target pid %d: %w", pid, err)
	}
	ticks, err := ParseStatCPUTicks(stat)
	if err != nil {
		return ProcSample{}, fmt.Errorf("target pid %d: %w", pid, err)
	}
	faults, err := ParseStatMinFaults(stat)
	if err != nil {
		return ProcSample{}, fmt.Errorf("target pid %d: %w", pid, err)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return ProcSample{}, fmt.Errorf("target pid %d: %w", pid, err)
	}
	rss, err := ParseStatusRSS(status)
	if err != nil {
		return ProcSample{}, fmt.Errorf("target pid %d: %w", pid, err)
	}
	return ProcSample{CPU: time.Duration(ticks) * time.Second / time.Duration(clkTck), RSS: rss, Faults: faults}, nil
}

// Errors of the /proc parsers.
var (
	ErrProcFormat = errors.New("unexpected /proc format")
	ErrNoRSS      = errors.New("no VmRSS line")
)

// statFields returns the fields of /proc/PID/stat from field 3 (state)
// on, at least want of them. The command name (field 2) is skipped up to
// its last ')', since it may contain spaces and parentheses.
func statFields(stat []byte, want int) ([][]byte, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return nil, fmt.Errorf("stat: no command name: %w", ErrProcFormat)
	}
	fields := bytes.Fields(stat[i+1:])
	if len(fields) < want {
		return nil, fmt.Errorf("stat: %d fields after the command name: %w", len(fields), ErrProcFormat)
	}
	return fields, nil
}

// ParseStatCPUTicks returns utime+stime (fields 14 and 15, proc(5)) from
// the contents of /proc/PID/stat.
func ParseStatCPUTicks(stat []byte) (int64, error) {
	// fields[0] is field 3 (state): utime is field 14, stime field 15.
	fields, err := statFields(stat, 13)
	if err != nil {
		return 0, err
	}
	ut, err1 := strconv.ParseInt(string(fields[11]), 10, 64)
	st, err2 := strconv.ParseInt(string(fields[12]), 10, 64)
	if err := errors.Join(err1, err2); err != nil || ut < 0 || st < 0 {
		return 0, fmt.Errorf("stat: utime %q stime %q: %w", fields[11], fields[12], ErrProcFormat)
	}
	return ut + st, nil
}

// ParseStatMinFaults returns minflt (field 10, proc(5)), the minor page
// faults of all the process's threads, from the contents of
// /proc/PID/stat.
func ParseStatMinFaults(stat []byte) (int64, error) {
	fields, err := statFields(stat, 8)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(string(fields[7]), 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("stat: minflt %q: %w", fields[7], ErrProcFormat)
	}
	return n, nil
}

// ParseStatusRSS returns VmRSS in bytes from the contents of
// /proc/PID/status ("VmRSS:\t  1234 kB").
func ParseStatusRSS(status []byte) (int64, error) {
	for line := range bytes.SplitSeq(status, []byte{'\n'}) {
		rest, ok := bytes.CutPrefix(line, []byte("VmRSS:"))
		if !ok {
			continue
		}
		f := bytes.Fields(rest)
		if len(f) != 2 || string(f[1]) != "kB" {
			return 0, fmt.Errorf("status: VmRSS %q: %w", rest, ErrProcFormat)
		}
		kb, err := strconv.ParseInt(string(f[0]), 10, 64)
		if err != nil || kb < 0 {
			return 0, fmt.Errorf("status: VmRSS %q: %w", f[0], ErrProcFormat)
		}
		return kb * 1024, nil
	}
	return 0, ErrNoRSS
}

// ParseStatusSwitches returns voluntary_ctxt_switches and
// nonvoluntary_ctxt_switches from the contents of /proc/PID/status (or a
// thread's).
func ParseStatusSwitches(status []byte) (voluntary, involuntary int64, err error) {
	found := 0
	for line := range bytes.SplitSeq(status, []byte{'\n'}) {
		name, val, ok := bytes.Cut(line, []byte{':'})
		if !ok {
			continue
		}
		var dst *int64
		switch string(name) {
		case "voluntary_ctxt_switches":
			dst = &voluntary
		case "nonvoluntary_ctxt_switches":
			dst = &involuntary
		default:
			continue
		}
		v, err := strconv.ParseInt(string(bytes.TrimSpace(val)), 10, 64)
		if err != nil || v < 0 {
			return 0, 0, fmt.Errorf("status: %s %q: %w", name, bytes.TrimSpace(val), ErrProcFormat)
		}
		*dst = v
		found++
	}
	if found != 2 {
		return 0, 0, fmt.Errorf("status: %d of the two ctxt_switches lines: %w", found, ErrProcFormat)
	}
	return voluntary, involuntary, nil
}

// atClkTck is the auxiliary vector entry of the clock tick rate.
const atClkTck = 17

// ClockTicks returns the kernel's USER_HZ (the unit of /proc/PID/stat
// times) from /proc/self/auxv, or 100 if it cannot be read.
func ClockTicks() int64 {
	b, err := os.ReadFile("/proc/self/auxv")
	if err != nil {
		return 100
	}
	if v, ok := ParseAuxv(b, atClkTck); ok && v > 0 {
		return int64(v)
	}
	return 100
}

// ParseAuxv finds key in an auxiliary vector of native-endian 64-bit
// (key, value) pairs.
func ParseAuxv(b []byte, key uint64) (uint64, bool) {
	for len(b) >= 16 {
		k, v := binary.NativeEndian.Uint64(b), binary.NativeEndian.Uint64(b[8:])
		if k == 0 {
			return 0, false
		}
		if k == key {
			return v, true
		}
		b = b[16:]
	}
	return 0, false
}
