package endpoint

import (
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/l2tpd/l2tpd/dataplane/fake"
	"github.com/l2tpd/l2tpd/l2tp"
	"github.com/l2tpd/l2tpd/l2tp/control"
	"github.com/l2tpd/l2tpd/l2tp/tunnel"
)

// recorder is a Handler that accepts everything and reports events.
type recorder struct {
	settings    TunnelSettings
	refuse      *l2tp.ResultCode
	mu          sync.Mutex
	tunnelsUp   chan *Tunnel
	tunnelsDown chan tunnel.TunnelDown
	sessUp      chan *Session
	sessDown    chan tunnel.SessionDown
}

func newRecorder() *recorder {
	return &recorder{
		settings:  TunnelSettings{Tunnel: tunnel.Config{HostName: "test", Control: control.Config{HelloInterval: time.Minute}}},
		tunnelsUp: make(chan *Tunnel, 100), tunnelsDown: make(chan tunnel.TunnelDown, 100),
		sessUp: make(chan *Session, 2000), sessDown: make(chan tunnel.SessionDown, 2000),
	}
}

func (r *recorder) PeerSecret(netip.AddrPort, string) []byte { return r.settings.Tunnel.Secret }
func (r *recorder) AcceptTunnel(netip.AddrPort, string) (TunnelSettings, *l2tp.ResultCode) {
	return r.settings, r.refuse
}
func (r *recorder) AdmitCall(*Tunnel, tunnel.Direction, *tunnel.CallInfo) *l2tp.ResultCode {
	return nil
}
func (r *recorder) TunnelUp(t *Tunnel)                            { r.tunnelsUp <- t }
func (r *recorder) TunnelDown(t *Tunnel, ev tunnel.TunnelDown)    { r.tunnelsDown <- ev }
func (r *recorder) SessionUp(s *Session) Driver                   { r.sessUp <- s; return nil }
func (r *recorder) SessionDown(s *Session, ev tunnel.SessionDown) { r.sessDown <- ev }

func waitFor[T any](t *testing.T, c chan T, what string) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(20 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
	var zero T
	return zero
}

func newPair(t *testing.T, lnsRec, lacRec *recorder) (lns, lac *Endpoint, log *observer.ObservedLogs) {
	t.Helper()
	return newPairCfg(t, lnsRec, lacRec, nil)
}

// newPairCfg is newPair with a hook to adjust the LNS endpoint's Config.
func newPairCfg(t *testing.T, lnsRec, lacRec *recorder, adjust func(*Config)) (lns, lac *Endpoint, log *observer.ObservedLogs) {
	t.Helper()
	core, logs := observer.New(zap.DebugLevel)
	lg := zap.New(core)
	var err error
	lcfg := Config{Listen: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:0")}, Plane: fake.New(), Handler: lnsRec, Logger: lg.Named("lns")}
	if adjust != nil {
		adjust(&lcfg)
	}
	lns, err = New(lcfg)
	if err != nil {
		t.Fatal(err)
	}
	lac, err = New(Config{Plane: fake.New(), Logger: lg.Named("lac")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		lac.Shutdown(t.Context())
		lns.Shutdown(t.Context())
	})
	return lns, lac, logs
}

// dialLNS dials lns from lac with lacRec's settings, lacRec handling the
// tunnel.
func dialLNS(t *testing.T, lns, lac *Endpoint, lacRec *recorder) *Tunnel {
	t.Helper()
	st := lacRec.settings
	st.Handler = lacRec
	tun, err := lac.Dial(lns.ListenAddrs()[0], netip.AddrPort{}, st)
	if err != nil {
		t.Fatal(err)
	}
	return tun
}

func TestEndpointTunnelAndSessions(t *testing.T) {
	lnsRec, lacRec := newRecorder(), newRecorder()
	lnsRec.settings.Tunnel.Secret = []byte("s")
	lnsRec.settings.Tunnel.Challenge = true
	lnsRec.settings.Tunnel.HideAVPs = true
	lns, lac, _ := newPair(t, lnsRec, lacRec)
	st := lacRec.settings
	st.Tunnel.Secret = []byte("s")
	st.Tunnel.HideAVPs = true
	st.Handler = lacRec
	tun, err := lac.Dial(lns.ListenAddrs()[0], netip.AddrPort{}, st)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, lacRec.tunnelsUp, "LAC tunnel up")
	waitFor(t, lnsRec.tunnelsUp, "LNS tunnel up")
	for range 20 {
		if _, err := tun.PlaceCall(tunnel.Incoming, tunnel.CallInfo{CallingNumber: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	for range 20 {
		waitFor(t, lnsRec.sessUp, "LNS session up")
		waitFor(t, lacRec.sessUp, "LAC session up")
	}
	tun.Close(l2tp.ResultCode{Result: l2tp.ResultStopGeneral}, "test over")
	if ev := waitFor(t, lnsRec.tunnelsDown, "LNS tunnel down"); !ev.ByPeer {
		t.Fatalf("LNS TunnelDown %+v, want by peer", ev)
	}
	for range 20 {
		waitFor(t, lnsRec.sessDown, "LNS session down")
	}
}

// A LAC dialling an LNS that never answers retransmits its SCCRQ on the
// RFC schedule and gives up (TunnelDown) after the retry limit.
func TestDialSilentPeerRetransmitsAndGivesUp(t *testing.T) {
	silent, err := listen(netip.MustParseAddrPort("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	lacRec := newRecorder()
	lac, err := New(Config{Plane: fake.New()})
	if err != nil {
		t.Fatal(err)
	}
	defer lac.Shutdown(t.Context())
	st := lacRec.settings
	st.Handler = lacRec
	st.Tunnel.Control.RetransmitInitial = 50 * time.Millisecond
	st.Tunnel.Control.MaxRetransmits = 2
	if _, err := lac.Dial(silent.LocalAddr().(*net.UDPAddr).AddrPort(), netip.AddrPort{}, st); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2048)
	for i := range 3 { // the SCCRQ and its two retransmissions
		silent.SetReadDeadline(time.Now().Add(20 * time.Second))
		if _, _, err := silent.ReadFromUDPAddrPort(buf); err != nil {
			t.Fatalf("SCCRQ transmission %d never came: %v", i+1, err)
		}
	}
	waitFor(t, lacRec.tunnelsDown, "TunnelDown after the retry limit")
}

// Every session is logged when it is established and when it closes, with
// the fields operators search by (the runner checks the level first, so
// the fields are built only when the line is written).
func TestSessionLogLines(t *testing.T) {
	lnsRec, lacRec := newRecorder(), newRecorder()
	lns, lac, logs := newPair(t, lnsRec, lacRec)
	tun := dialLNS(t, lns, lac, lacRec)
	waitFor(t, lacRec.tunnelsUp, "LAC tunnel up")
	if _, err := tun.PlaceCall(tunnel.Incoming, tunnel.CallInfo{CallingNumber: "caller-7", CalledNumber: "called-9"}); err != nil {
		t.Fatal(err)
	}
	up := waitFor(t, lnsRec.sessUp, "LNS session up")
	s := waitFor(t, lacRec.sessUp, "LAC session up")
	tun.Hangup(s.ID, l2tp.ResultCode{Result: l2tp.ResultCDNAdmin}, "test over")
	waitFor(t, lnsRec.sessDown, "LNS session down")

	lnsLogs := logs.FilterLoggerName("lns")
	est := lnsLogs.FilterMessage("session established").All()
	if len(est) != 1 {
		t.Fatalf("%d \"session established\" lines from the LNS, want 1", len(est))
	}
	f := est[0].ContextMap()
	if f["session"] != uint32(up.ID) || f["peer_session"] != uint32(s.ID) || f["calling"] != "caller-7" || f["called"] != "called-9" {
		t.Errorf("session established: fields %v, want session %d, peer_session %d, calling caller-7, called called-9", f, up.ID, s.ID)
	}
	closed := lnsLogs.FilterMessage("session closed").All()
	if len(closed) != 1 {
		t.Fatalf("%d \"session closed\" lines from the LNS, want 1", len(closed))
	}
	f = closed[0].ContextMap()
	if f["session"] != uint32(up.ID) || f["by_peer"] != true || f["result"] != uint16(l2tp.ResultCDNAdmin) {
		t.Errorf("session closed: fields %v, want session %d, by_peer true, result %d", f, up.ID, l2tp.ResultCDNAdmin)
	}
}
