package gctune

import (
	"runtime/debug"
	"testing"
)

func TestApply(t *testing.T) {
	prev := debug.SetGCPercent(100)
	defer debug.SetGCPercent(prev)

	if got := Apply(300, func(string) string { return "" }); got != 300 {
		t.Fatalf("Apply(300) without GOGC = %d, want 300", got)
	}
	if got := debug.SetGCPercent(100); got != 300 {
		t.Fatalf("GC percent in effect = %d, want 300", got)
	}
	// GOGC set: the runtime already applied it at start; Apply keeps it.
	debug.SetGCPercent(150)
	env := func(k string) string {
		if k == "GOGC" {
			return "150"
		}
		return ""
	}
	if got := Apply(300, env); got != 150 {
		t.Fatalf("Apply(300) with GOGC=150 = %d, want 150", got)
	}
	if got := debug.SetGCPercent(100); got != 150 {
		t.Fatalf("GC percent in effect = %d, want the environment's 150", got)
	}
}
