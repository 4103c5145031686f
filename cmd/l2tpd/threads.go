package main

import (
	"runtime"

	"github.com/l2tpd/l2tpd/config"
)

// threadsFor decides how many threads run l2tpd's Go code at once
// (GOMAXPROCS) from the configuration's threads and the runtime's
// default (every CPU the process may use, as Go decides: CPU affinity
// and cgroup limits). GOMAXPROCS in the environment overrides both and
// is left alone (set false).
//
// threads = 1 suits a machine where the daemon has about one core to
// itself (others busy with other work): the control plane (L2TP, PPP,
// RADIUS) is made of many small hand-offs between goroutines, and with
// a second P idle each hand-off wakes another thread (a futex wake-up
// and a context switch, an inter-processor interrupt in a virtual
// machine) that then finds little to do. In the host benchmark, where
// the load generator keeps the other of two cores busy, one thread did
// the same setups at the same rate with less CPU; with the kernel data
// path in the lab VM, whose system calls for each session's kernel
// objects are slow, two did them faster (docs/benchmarks.md, "Threads").
// So the default stays Go's.
func threadsFor(threads, runtimeDefault int, getenv func(string) string) (n int, set bool, why string) {
	switch {
	case getenv("GOMAXPROCS") != "":
		return runtimeDefault, false, "GOMAXPROCS in the environment"
	case threads > 0:
		return threads, true, "threads"
	default:
		return runtimeDefault, true, "threads = 0: every CPU the process may use"
	}
}

// applyThreads sets GOMAXPROCS from cfg and returns what it set and
// why. defaultProcs is the runtime's GOMAXPROCS before l2tpd changed it
// (captured at start, so that a reload back to 0 restores it).
func applyThreads(cfg *config.Config, defaultProcs int, getenv func(string) string) (int, string) {
	n, set, why := threadsFor(cfg.Threads, defaultProcs, getenv)
	if set && runtime.GOMAXPROCS(0) != n {
		runtime.GOMAXPROCS(n)
	}
	return n, why
}
