package kernel

import (
	"errors"
	"net/netip"

	"github.com/google/go-cmp/cmp"
)

func mustAP(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

var cmpAddrPort = cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })

func errorsIs(err, target error) bool { return errors.Is(err, target) }
