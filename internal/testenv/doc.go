// Package testenv holds helpers for the project's integration tests on the
// host: network namespaces joined by veth pairs, random inbound packet loss
// with nftables, packet captures with dumpcap/tshark, a harness for a real
// xl2tpd peer, and a process runner whose log lines can be waited on.
//
// Everything here needs root and some Debian tools (iproute2, nftables,
// tshark, xl2tpd, ppp). Call Require first: it skips the test when the
// environment lacks something, or fails it when L2TPD_REQUIRE_INTEGRATION=1
// (as CI sets it), so a missing tool never hides as a silent skip there.
//
// Every resource is tied to a *testing.T and released in t.Cleanup:
// namespaces are deleted, processes get SIGTERM (then SIGKILL), nftables
// tables are removed, captures are decoded into the log when the test failed
// and deleted when it passed. Names are unique per process and per call, so
// parallel tests and parallel test binaries do not collide.
//
// The host kernel has no L2TP and no PPP: xl2tpd completes the control
// connection and the call, then its pppd exits (no /dev/ppp) and the call is
// cleared with a CDN. The XL2TPD* log patterns in this package describe
// exactly those steps.
package testenv
