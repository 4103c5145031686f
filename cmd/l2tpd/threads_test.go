package main

import (
	"runtime"
	"testing"

	"github.com/l2tpd/l2tpd/config"
)

func TestThreadsFor(t *testing.T) {
	noEnv := func(string) string { return "" }
	env := func(k string) string {
		if k == "GOMAXPROCS" {
			return "3"
		}
		return ""
	}
	tests := []struct {
		name    string
		threads int
		getenv  func(string) string
		want    int
		set     bool
	}{
		{"default: every CPU", 0, noEnv, 8, true},
		{"configured", 1, noEnv, 1, true},
		{"configured above the CPUs", 16, noEnv, 16, true},
		{"environment wins", 4, env, 8, false},
		{"environment wins over the default", 0, env, 8, false},
	}
	for _, tt := range tests {
		n, set, why := threadsFor(tt.threads, 8, tt.getenv)
		if n != tt.want || set != tt.set || why == "" {
			t.Errorf("%s: threadsFor(%d, 8) = %d, %v, %q; want %d, %v and a reason", tt.name, tt.threads, n, set, why, tt.want, tt.set)
		}
	}
}

// applyThreads changes GOMAXPROCS, and a reload back to 0 gives the
// runtime's default back.
func TestApplyThreads(t *testing.T) {
	orig := runtime.GOMAXPROCS(0)
	t.Cleanup(func() { runtime.GOMAXPROCS(orig) })
	noEnv := func(string) string { return "" }
	const def = 7 // stands for the runtime's default, unlike any value set below
	if n, _ := applyThreads(&config.Config{Threads: 1}, def, noEnv); n != 1 || runtime.GOMAXPROCS(0) != 1 {
		t.Errorf("threads = 1: %d threads, GOMAXPROCS %d; want 1", n, runtime.GOMAXPROCS(0))
	}
	if n, _ := applyThreads(&config.Config{Threads: 3}, def, noEnv); n != 3 || runtime.GOMAXPROCS(0) != 3 {
		t.Errorf("threads = 3: %d threads, GOMAXPROCS %d; want 3", n, runtime.GOMAXPROCS(0))
	}
	if n, _ := applyThreads(&config.Config{Threads: 0}, def, noEnv); n != def || runtime.GOMAXPROCS(0) != def {
		t.Errorf("threads = 0: %d threads, GOMAXPROCS %d; want the default %d", n, runtime.GOMAXPROCS(0), def)
	}
}
