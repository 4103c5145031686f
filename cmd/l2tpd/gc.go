package main

// defaultGCPercent is the garbage collector's target when GOGC is not set
// (internal/gctune): the heap may grow to three times what is live
// between collections, instead of Go's default of twice. An LNS's live
// heap is mostly its sessions, which the collector scans at every cycle
// while subscribers come and go; collecting half as often cuts that work
// (see docs/benchmarks.md for the measured effect) for about half the
// live heap again in memory, well inside the 16 KiB per session budget.
// GOGC (and GOMEMLIMIT) in the environment still decide when set.
const defaultGCPercent = 200
