package kernel

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/l2tpd/l2tpd/dataplane"
)

func TestFDBudget(t *testing.T) {
	tests := []struct {
		cur      uint64
		sessions int
		ok       bool
	}{
		{1024, 0, true},
		{1024, 256, true},  // 768+256 = 1024
		{1024, 257, false}, // 1027 > 1024
		{65536, 50000, false},
		{1 << 20, 100000, true},
	}
	for _, tt := range tests {
		err := fdBudget(tt.cur, tt.cur, tt.sessions)
		if (err == nil) != tt.ok {
			t.Errorf("fdBudget(%d, %d) = %v, want ok=%v", tt.cur, tt.sessions, err, tt.ok)
		}
	}
	err := fdBudget(65536, 1<<20, 50000)
	for _, want := range []string{"65536", "50000 sessions", "150256", "LimitNOFILE=150256", "max-sessions to 21760"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not mention %q", err, want)
		}
	}
	if err := FDBudget(1); err != nil {
		t.Errorf("FDBudget(1) on this host: %v", err)
	}
}

// On a kernel without L2TP/PPP (the build host), Probe must say so with
// ErrUnsupported; where the kernel has them (the lab), it must succeed.
func TestProbe(t *testing.T) {
	err := Probe()
	if os.Getenv("L2TPD_KERNEL_TESTS") == "1" {
		if err != nil {
			t.Fatalf("Probe in the lab: %v", err)
		}
		return
	}
	if err == nil {
		t.Skip("this kernel has L2TP and PPP")
	}
	if !errors.Is(err, dataplane.ErrUnsupported) {
		t.Errorf("Probe() = %v, want it to wrap dataplane.ErrUnsupported", err)
	}
	if !strings.Contains(err.Error(), "modprobe") {
		t.Errorf("Probe() = %v, want a modprobe hint", err)
	}
	t.Logf("Probe: %v", err)
}
