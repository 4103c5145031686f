package endpoint

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/l2tpd/l2tpd/l2tp/tunnel"
)

// Inspect reads state, control counters and per-session data counters on
// the tunnel goroutine (run with -race), and reports a gone tunnel.
func TestInspect(t *testing.T) {
	lnsRec, lacRec := newRecorder(), newRecorder()
	lns, lac, _ := newPair(t, lnsRec, lacRec)
	st := lacRec.settings
	st.Handler = lacRec
	st.Profile = "core"
	tun, err := lac.Dial(lns.ListenAddrs()[0], netip.AddrPort{}, st)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, lacRec.tunnelsUp, "LAC tunnel up")
	waitFor(t, lnsRec.tunnelsUp, "LNS tunnel up")
	for range 3 {
		if _, err := tun.PlaceCall(tunnel.Incoming, tunnel.CallInfo{CallingNumber: "555"}); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		waitFor(t, lnsRec.sessUp, "LNS session up")
		waitFor(t, lacRec.sessUp, "LAC session up")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()

	got, err := lac.Inspect(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Fatalf("LAC Inspect: %d tunnels, want 1", len(got))
	}
	ti := got[0]
	if ti.ID != tun.ID() || !ti.Initiator || ti.State != tunnel.StateEstablished || ti.Sessions != 3 ||
		ti.Settings.Profile != "core" || ti.Peer != lns.ListenAddrs()[0] || ti.PeerID == 0 {
		t.Errorf("LAC tunnel info %+v", ti)
	}
	if ti.Control.Sent < 4 { // SCCRQ, SCCCN, 3 ICRQ, 3 ICCN
		t.Errorf("control counters %+v: want at least SCCRQ, SCCCN and the calls sent", ti.Control)
	}
	if len(ti.SessionInfo) != 3 {
		t.Fatalf("LAC sessions %+v, want 3", ti.SessionInfo)
	}
	for i, s := range ti.SessionInfo {
		if s.StatsErr != nil || s.Info.CallingNumber != "555" || (i > 0 && s.ID <= ti.SessionInfo[i-1].ID) {
			t.Errorf("session %d: %+v", i, s)
		}
	}

	ls, err := lns.Inspect(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(ls) != 1 || ls[0].Initiator || ls[0].HostName != "test" || ls[0].Sessions != 3 || ls[0].SessionInfo != nil {
		t.Errorf("LNS tunnel info %+v", ls)
	}
	if lns.Tunnel(ls[0].ID) == nil || lns.Tunnel(ls[0].ID+1000) != nil {
		t.Errorf("Endpoint.Tunnel lookup wrong")
	}

	lac.Shutdown(ctx)
	<-tun.Done()
	if _, err := tun.Inspect(ctx, false); !errors.Is(err, ErrTunnelGone) {
		t.Errorf("Inspect of an ended tunnel: %v, want ErrTunnelGone", err)
	}
	// A cancelled context is an error, not a hang.
	cctx, ccancel := context.WithCancel(t.Context())
	ccancel()
	if l := lns.Tunnels(); len(l) > 0 {
		if _, err := l[0].Inspect(cctx, false); err == nil {
			// The tunnel may take the command before the context is seen;
			// only a hang would be wrong here.
			t.Log("inspect with a cancelled context answered")
		}
	}
}
