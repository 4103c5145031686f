package ppp

import (
	"net/netip"
	"testing"

	"github.com/l2tpd/l2tpd/auth"
)

// FuzzOptions feeds option lists to every layer's request, Nak and Reject
// handlers in both roles: they must never panic, and every reply must
// itself parse as options.
func FuzzOptions(f *testing.F) {
	f.Add(h("03 06 00000000 81 06 00000000 83 06 00000000 02 06 002d0f01"))
	f.Add(h("01 0a 0102030405060708"))
	f.Add(h("01 04 0578 03 05 c223 81 05 06 11223344 07 02 08 02"))
	f.Fuzz(func(t *testing.T, data []byte) {
		opts, err := ParseOptions(nil, data)
		if err != nil {
			return
		}
		for _, role := range []Role{RoleAuthenticator, RolePeer} {
			l := NewLink(Config{Role: role, AuthMethods: []auth.Method{auth.MethodCHAPMD5, auth.MethodPAP}, Rand: newRand(1)}, testNow)
			l.SetAddresses(testNow, netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2"), [2]netip.Addr{netip.MustParseAddr("1.1.1.1")}, [2]netip.Addr{})
			for _, ly := range []layer{&l.lcp, &l.ipcp, &l.ipv6cp} {
				for _, ro := range []bool{false, true} {
					code, reply := ly.checkRequest(opts, nil, ro)
					if code != 0 {
						if _, err := ParseOptions(nil, reply); err != nil || len(reply) == 0 {
							t.Fatalf("reply %x: %v", reply, err)
						}
						if ro && code == CodeConfNak {
							t.Fatal("Nak with rejectOnly")
						}
					}
				}
				ly.gotNak(opts)
				ly.gotRej(opts)
				ly.appendRequest(nil)
			}
		}
	})
}
