package main

import (
	"net/netip"
	"testing"

	"github.com/l2tpd/l2tpd/auth/radius"
	"github.com/l2tpd/l2tpd/config"
	"github.com/l2tpd/l2tpd/pppsession"
)

func TestRadiusRoles(t *testing.T) {
	cases := []struct {
		servers     []config.RADIUSServer
		authn, acct bool
	}{
		{nil, false, false},
		{[]config.RADIUSServer{{AuthPort: 1812}}, true, false},
		{[]config.RADIUSServer{{AcctPort: 1813}}, false, true},
		{[]config.RADIUSServer{{AuthPort: 1812}, {AcctPort: 1813}}, true, true},
	}
	for i, tc := range cases {
		a, b := radiusRoles(&config.RADIUS{Servers: tc.servers})
		if a != tc.authn || b != tc.acct {
			t.Errorf("%d: roles %v %v, want %v %v", i, a, b, tc.authn, tc.acct)
		}
	}
}

// Every DAE match key reaches the selector; an empty match selects
// nothing (never every session).
func TestDAESelector(t *testing.T) {
	m := radius.Match{AcctSessionID: "A", UserName: "u", FramedIP: netip.MustParseAddr("10.0.0.2"), CallingStationID: "c"}
	want := pppsession.Selector{AcctSessionID: "A", User: "u", Address: netip.MustParseAddr("10.0.0.2"), CallingNumber: "c"}
	if got := daeSelector(m); got != want {
		t.Fatalf("selector %+v, want %+v", got, want)
	}
	env := pppsession.NewEnv(pppsession.Config{})
	h := daeHandler{env.Sessions()}
	if n, err := h.Disconnect(radius.Match{}); n != 0 || err != nil {
		t.Fatalf("empty Disconnect: %d, %v", n, err)
	}
	if n, err := h.Disconnect(m); n != 0 || err != nil {
		t.Fatalf("Disconnect with no sessions: %d, %v", n, err)
	}
	if n, err := h.CoA(radius.Match{}, radius.Change{}); n != 0 || err != nil {
		t.Fatalf("empty CoA: %d, %v", n, err)
	}
}
