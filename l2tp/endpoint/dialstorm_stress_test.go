package endpoint

import (
	"net/netip"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/l2tpd/l2tpd/dataplane/fake"
	"github.com/l2tpd/l2tpd/l2tp"
	"github.com/l2tpd/l2tpd/l2tp/control"
	"github.com/l2tpd/l2tpd/l2tp/tunnel"
)

// stormHandler counts tunnels that came up, and when (relative to start).
type stormHandler struct {
	start time.Time
	mu    sync.Mutex
	upAt  map[*Tunnel]time.Duration
	up    atomic.Int32
	all   chan struct{} // closed when want tunnels are up
	want  int32
}

func (h *stormHandler) PeerSecret(netip.AddrPort, string) []byte { return nil }
func (h *stormHandler) AcceptTunnel(netip.AddrPort, string) (TunnelSettings, *l2tp.ResultCode) {
	return stormSettings(), nil
}
func (h *stormHandler) AdmitCall(*Tunnel, tunnel.Direction, *tunnel.CallInfo) *l2tp.ResultCode {
	return nil
}
func (h *stormHandler) TunnelUp(t *Tunnel) {
	h.mu.Lock()
	h.upAt[t] = time.Since(h.start)
	h.mu.Unlock()
	if h.up.Add(1) == h.want {
		close(h.all)
	}
}
func (h *stormHandler) TunnelDown(*Tunnel, tunnel.TunnelDown)    {}
func (h *stormHandler) SessionUp(*Session) Driver                { return nil }
func (h *stormHandler) SessionDown(*Session, tunnel.SessionDown) {}

func stormSettings() TunnelSettings {
	return TunnelSettings{Tunnel: tunnel.Config{HostName: "storm", Control: control.Config{HelloInterval: time.Minute}}}
}

// stormRound dials n tunnels at once from one LAC endpoint to one LNS
// endpoint over loopback and reports how many were not up within wait, and
// how many came up only after a retransmission (later than 900 ms: the
// first retransmission is due after 1 s).
func stormRound(t *testing.T, n int, wait time.Duration) (missing, late, sharedPorts int) {
	t.Helper()
	lnsH := &stormHandler{upAt: map[*Tunnel]time.Duration{}, all: make(chan struct{}), want: int32(n)}
	lacH := &stormHandler{upAt: map[*Tunnel]time.Duration{}, all: make(chan struct{}), want: int32(n)}
	core, logs := observer.New(zap.InfoLevel)
	lg := zap.New(core)
	lns, err := New(Config{Listen: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:0")}, Plane: fake.New(),
		Handler: lnsH, Logger: lg.Named("lns"), MaxSetupPerPeer: 4 * n})
	if err != nil {
		t.Fatal(err)
	}
	lac, err := New(Config{Plane: fake.New(), Logger: lg.Named("lac")})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		// Shutdown waits for StopCCN acknowledgements; a broken tunnel
		// would hold it for its whole retransmission cycle.
		lac.cancelAll()
		lns.cancelAll()
	}()
	target := lns.ListenAddrs()[0]
	lacH.start, lnsH.start = time.Now(), time.Now()
	var wg sync.WaitGroup
	var pmu sync.Mutex
	ports := map[uint16]int{}
	for range n {
		wg.Go(func() {
			s := stormSettings()
			s.Handler = lacH
			tun, err := lac.Dial(target, netip.AddrPort{}, s)
			if err != nil {
				t.Error(err)
				return
			}
			pmu.Lock()
			ports[tun.Local().Port()]++
			pmu.Unlock()
		})
	}
	wg.Wait()
	for _, c := range ports {
		if c > 1 {
			sharedPorts += c
		}
	}
	select {
	case <-lacH.all:
	case <-time.After(wait):
	}
	lacH.mu.Lock()
	defer lacH.mu.Unlock()
	if len(lacH.upAt) < n && os.Getenv("L2TPD_STRESS_LOG") != "" {
		for _, tun := range lac.Tunnels() {
			if _, ok := lacH.upAt[tun]; !ok {
				t.Logf("LAC tunnel %d local %v peer %v not up", tun.ID(), tun.Local(), tun.Peer())
			}
		}
		t.Logf("LNS: %d tunnels up, %d held", lnsH.up.Load(), len(lns.Tunnels()))
		for _, e := range logs.FilterLevelExact(zap.WarnLevel).All() {
			t.Logf("%s %s %v", e.LoggerName, e.Message, e.ContextMap())
		}
	}
	for _, d := range lacH.upAt {
		if d > 900*time.Millisecond {
			late++
		}
	}
	return n - len(lacH.upAt), late, sharedPorts
}

// cancelAll ends every tunnel goroutine and socket at once, without the
// StopCCN exchange of Shutdown (a stress round's teardown).
func (e *Endpoint) cancelAll() {
	e.mu.Lock()
	e.closed = true
	ts := make([]*Tunnel, 0, len(e.tunnels))
	for _, t := range e.tunnels {
		ts = append(ts, t)
	}
	e.mu.Unlock()
	e.cancel()
	e.closeListeners()
	for _, t := range ts {
		if t.conn != nil {
			t.conn.Close()
		}
	}
	e.wg.Wait()
}

// TestDialStormStress: many rounds of many tunnels dialled at once, every
// one must come up. Slow: run with L2TPD_STRESS=rounds (tunnels per round
// from L2TPD_STRESS_TUNNELS, default 100), e.g.
//
//	L2TPD_STRESS=30 go test -run TestDialStormStress -v ./l2tp/endpoint/
func TestDialStormStress(t *testing.T) {
	rounds, _ := strconv.Atoi(os.Getenv("L2TPD_STRESS"))
	if rounds <= 0 {
		t.Skip("set L2TPD_STRESS=rounds to run")
	}
	n := 100
	if v, err := strconv.Atoi(os.Getenv("L2TPD_STRESS_TUNNELS")); err == nil && v > 0 {
		n = v
	}
	failedRounds, missingAll, lateAll := 0, 0, 0
	for r := range rounds {
		missing, late, shared := stormRound(t, n, 5*time.Second)
		if missing > 0 || late > 0 || shared > 0 {
			t.Logf("round %d: %d of %d tunnels never came up, %d late, %d LAC sockets sharing a local port", r, missing, n, late, shared)
		}
		if missing > 0 {
			failedRounds++
		}
		missingAll += missing
		lateAll += late
	}
	t.Logf("%d rounds of %d tunnels: %d rounds with a tunnel missing, %d tunnels missing, %d up only after a retransmission",
		rounds, n, failedRounds, missingAll, lateAll)
	if missingAll > 0 {
		t.Errorf("%d tunnels never came up in %d rounds", missingAll, rounds)
	}
}
