// Package gctune sets a program's garbage collector target unless the
// environment does (GOGC).
package gctune

import "runtime/debug"

// Apply sets the collector's target to percent unless getenv("GOGC") is
// set (the runtime applied it at start, and it decides), and reports the
// target in effect.
func Apply(percent int, getenv func(string) string) int {
	if v := getenv("GOGC"); v != "" {
		p := debug.SetGCPercent(100)
		debug.SetGCPercent(p) // read back what the runtime took from GOGC
		return p
	}
	debug.SetGCPercent(percent)
	return percent
}
