package endpoint

import (
	"errors"
	"testing"

	"github.com/l2tpd/l2tpd/dataplane/fake"
	"github.com/l2tpd/l2tpd/l2tp"
	"github.com/l2tpd/l2tpd/l2tp/tunnel"
)

// A session the data plane refuses is hung up before the role hears
// SessionUp: its SessionDown must say WasUp false, or a role counting
// setups (AdmitCall) against established sessions (SessionUp) releases the
// wrong counter and leaks the setup slot.
func TestSessionRefusedByDataPlaneNotReportedUp(t *testing.T) {
	lnsRec, lacRec := newRecorder(), newRecorder()
	var plane *fake.Plane
	lns, lac, _ := newPairCfg(t, lnsRec, lacRec, func(c *Config) {
		plane = c.Plane.(*fake.Plane)
	})
	plane.SetError(fake.OpAddSession, errors.New("no room"))
	tun := dialLNS(t, lns, lac, lacRec)
	waitFor(t, lnsRec.tunnelsUp, "LNS tunnel up")
	if _, err := tun.PlaceCall(tunnel.Incoming, tunnel.CallInfo{CallingNumber: "x"}); err != nil {
		t.Fatal(err)
	}
	ev := waitFor(t, lnsRec.sessDown, "LNS session down")
	if ev.WasUp {
		t.Fatalf("SessionDown %+v says WasUp, but the role never had SessionUp", ev)
	}
	select {
	case s := <-lnsRec.sessUp:
		t.Fatalf("SessionUp for session %d the data plane refused", s.ID)
	default:
	}
	tun.Close(l2tp.ResultCode{Result: l2tp.ResultStopGeneral}, "test over")
}
