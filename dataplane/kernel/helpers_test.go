package kernel

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/l2tpd/l2tpd/dataplane"
)

func mustAP(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

var cmpAddrPort = cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })

func errorsIs(err, target error) bool { return errors.Is(err, target) }

// waitRemoved waits until a closed session's kernel objects are removed
// (Close leaves that to a removal worker).
func waitRemoved(t *testing.T, s dataplane.Session) {
	t.Helper()
	gone := s.(*Session).closing()
	if gone == nil {
		t.Fatal("waitRemoved: the session is not closed")
	}
	select {
	case <-gone:
	case <-time.After(10 * time.Second):
		t.Fatal("the closed session was not removed")
	}
}
