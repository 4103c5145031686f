package main

import (
	"testing"

	"github.com/l2tpd/l2tpd/l2tp"
	"github.com/l2tpd/l2tpd/l2tp/endpoint"
	"github.com/l2tpd/l2tpd/l2tp/tunnel"
	"github.com/l2tpd/l2tpd/metrics"
)

// fakeRole answers every call with rc and records CallAbandoned.
type fakeRole struct {
	endpoint.Handler
	rc        *l2tp.ResultCode
	abandoned []tunnel.CallAbandoned
}

func (f *fakeRole) AdmitCall(*endpoint.Tunnel, tunnel.Direction, *tunnel.CallInfo) *l2tp.ResultCode {
	return f.rc
}

func (f *fakeRole) CallAbandoned(_ *endpoint.Tunnel, ev tunnel.CallAbandoned) {
	f.abandoned = append(f.abandoned, ev)
}

// A held call is not a failed setup; a refused one is. CallAbandoned
// reaches the role through the wrapper.
func TestHandlerHeldCalls(t *testing.T) {
	role := &fakeRole{rc: tunnel.DeferCall}
	o := newObserver(metrics.New())
	h := handler{Handler: role, o: o}
	for range 3 {
		if rc := h.AdmitCall(nil, tunnel.Incoming, &tunnel.CallInfo{}); rc != tunnel.DeferCall {
			t.Fatalf("AdmitCall = %+v, want DeferCall passed on", rc)
		}
	}
	if _, sessions, _ := o.failures(); len(sessions) != 0 {
		t.Errorf("held calls counted as failed setups: %v", sessions)
	}
	role.rc = &l2tp.ResultCode{Result: l2tp.ResultCDNTempResources, Error: l2tp.ErrCodeNoResources, Message: "session limit"}
	h.AdmitCall(nil, tunnel.Incoming, &tunnel.CallInfo{})
	if _, sessions, _ := o.failures(); sessions["limit"] != 1 || len(sessions) != 1 {
		t.Errorf("refused call: failures %v, want limit 1", sessions)
	}
	h.CallAbandoned(nil, tunnel.CallAbandoned{ID: 7})
	if len(role.abandoned) != 1 || role.abandoned[0].ID != 7 {
		t.Errorf("CallAbandoned reached the role as %+v", role.abandoned)
	}
}
