package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"testing"

	"github.com/l2tpd/l2tpd/auth"
	"github.com/l2tpd/l2tpd/auth/radius"
	"github.com/l2tpd/l2tpd/config"
	"github.com/l2tpd/l2tpd/metrics"
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

func TestRadiusOutcome(t *testing.T) {
	cases := []struct {
		res  *auth.Result
		err  error
		want metrics.RADIUSOutcome
	}{
		{&auth.Result{Accept: true}, nil, metrics.RADIUSAccept},
		{&auth.Result{}, nil, metrics.RADIUSReject},
		{nil, nil, metrics.RADIUSReject},
		{nil, fmt.Errorf("radius: authenticating: %w", radius.ErrNoServer), metrics.RADIUSTimeout},
		{nil, fmt.Errorf("given up: %w", context.Canceled), metrics.RADIUSTimeout},
		{nil, context.DeadlineExceeded, metrics.RADIUSTimeout},
		{nil, errors.New("server answered with Accounting-Response"), metrics.RADIUSError},
	}
	for i, tc := range cases {
		if got := radiusOutcome(tc.res, tc.err); got != tc.want {
			t.Errorf("%d: %v, want %v", i, got, tc.want)
		}
	}
}

type acceptAll struct{}

func (acceptAll) Authenticate(context.Context, *auth.Request) (*auth.Result, error) {
	return &auth.Result{Accept: true}, nil
}

// The wrapper's asynchronous path answers once and counts the request.
func TestRadiusAuthAsyncCounts(t *testing.T) {
	r := &radiusAuth{Authenticator: acceptAll{}, server: "test"}
	got := make(chan *auth.Result, 2)
	r.AuthenticateAsync(&auth.Request{Username: "a"}, func(res *auth.Result, err error) {
		if err != nil {
			t.Errorf("answer: %v", err)
		}
		got <- res
	})
	if res := <-got; res == nil || !res.Accept {
		t.Fatalf("answer %+v, want an accept", res)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.requests != 1 || r.accepts != 1 || r.nlat != 1 {
		t.Errorf("requests %d, accepts %d, latencies %d; want 1 each", r.requests, r.accepts, r.nlat)
	}
}
