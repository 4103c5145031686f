// Package scenarios holds the tests that boot the real-kernel lab (package
// lab) and run the project's binaries in it: the kernel data plane's own
// integration tests, and the daemon (cmd/l2tpd with dataplane = "kernel")
// against itself and against xl2tpd+pppd, each in network namespaces inside
// the VM. They skip when the lab is unavailable (or with -short) unless
// L2TPD_REQUIRE_INTEGRATION=1.
package scenarios
