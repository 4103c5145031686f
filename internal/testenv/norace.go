//go:build !race

package testenv

// RaceEnabled reports a build with the race detector (see race.go).
const RaceEnabled = false
