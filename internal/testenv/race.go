//go:build race

package testenv

// RaceEnabled reports a build with the race detector, which makes
// sync.Pool drop items at random: tests skip their allocation counts.
const RaceEnabled = true
