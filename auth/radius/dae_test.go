package radius

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"layeh.com/radius"

	"github.com/l2tpd/l2tpd/config"
)

type fakeSessions struct {
	mu          sync.Mutex
	disconnects []Match
	coas        []Change
}

func (f *fakeSessions) Disconnect(m Match) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if m.AcctSessionID != "sess-1" && m.UserName != "alice" && m.FramedIP != netip.MustParseAddr("10.0.0.5") {
		return 0, nil
	}
	f.disconnects = append(f.disconnects, m)
	return 1, nil
}

func (f *fakeSessions) CoA(m Match, c Change) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if m.AcctSessionID != "sess-1" {
		return 0, nil
	}
	f.coas = append(f.coas, c)
	return 1, nil
}

func TestDAE(t *testing.T) {
	cfg := config.DefaultRADIUS()
	cfg.NASIdentifier = "lns-test"
	cfg.DAEListen = netip.MustParseAddrPort("127.0.0.1:0")
	cfg.DAEClients = []config.RADIUSClient{{Address: netip.MustParseAddr("127.0.0.1"), Secret: []byte("dae")}}
	h := &fakeSessions{}
	d, err := NewDAE(cfg, h, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(d.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var nextID byte
	build := func(code radius.Code, sec string, attrs ...*radius.AVP) []byte {
		p := radius.New(code, []byte(sec))
		nextID++
		p.Identifier = nextID
		p.Attributes = attrs
		b, err := encodeRequest(p, true)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	exchange := func(req []byte) *radius.Packet {
		t.Helper()
		conn.Write(req)
		conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		buf := make([]byte, 4096)
		n, err := conn.Read(buf)
		if err != nil {
			return nil // dropped
		}
		p, err := verifyResponse(buf[:n], req, []byte("dae"), true)
		if err != nil {
			t.Fatalf("DAE response: %v", err)
		}
		return p
	}
	cause := func(p *radius.Packet) ErrorCause {
		v, _ := radius.Integer(p.Get(attrErrorCause))
		return ErrorCause(v)
	}
	now := uint32(time.Now().Unix())

	tests := []struct {
		name  string
		req   []byte
		code  radius.Code // 0: dropped
		cause ErrorCause
	}{
		{"disconnect by session id", build(radius.CodeDisconnectRequest, "dae", avp(attrAcctSessionID, []byte("sess-1")), avp(attrEventTimestamp, u32(now))), radius.CodeDisconnectACK, 0},
		{"disconnect by user", build(radius.CodeDisconnectRequest, "dae", avp(attrUserName, []byte("alice"))), radius.CodeDisconnectACK, 0},
		{"disconnect by address", build(radius.CodeDisconnectRequest, "dae", avp(attrFramedIPAddress, []byte{10, 0, 0, 5})), radius.CodeDisconnectACK, 0},
		{"no such session", build(radius.CodeDisconnectRequest, "dae", avp(attrUserName, []byte("nobody"))), radius.CodeDisconnectNAK, CauseSessionNotFound},
		{"nothing to match", build(radius.CodeDisconnectRequest, "dae"), radius.CodeDisconnectNAK, CauseMissingAttribute},
		{"other NAS", build(radius.CodeDisconnectRequest, "dae", avp(attrNASIdentifier, []byte("lns-other")), avp(attrUserName, []byte("alice"))), radius.CodeDisconnectNAK, CauseNASIdentMismatch},
		{"unsupported attribute", build(radius.CodeDisconnectRequest, "dae", avp(attrUserName, []byte("alice")), avp(attrFramedPool, []byte("p"))), radius.CodeDisconnectNAK, CauseUnsupportedAttribute},
		{"wrong secret", build(radius.CodeDisconnectRequest, "nope", avp(attrUserName, []byte("alice"))), 0, 0},
		{"stale Event-Timestamp", build(radius.CodeDisconnectRequest, "dae", avp(attrUserName, []byte("alice")), avp(attrEventTimestamp, u32(now-3600))), 0, 0},
		{"coa", build(radius.CodeCoARequest, "dae", avp(attrAcctSessionID, []byte("sess-1")), avp(attrSessionTimeout, u32(60)), avp(attrAcctInterimInterval, u32(120))), radius.CodeCoAACK, 0},
		{"coa no session", build(radius.CodeCoARequest, "dae", avp(attrAcctSessionID, []byte("x")), avp(attrIdleTimeout, u32(60))), radius.CodeCoANAK, CauseSessionNotFound},
		{"access-request ignored", func() []byte { p := radius.New(radius.CodeAccessRequest, []byte("dae")); b, _ := p.Encode(); return b }(), 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := exchange(tt.req)
			if tt.code == 0 {
				if p != nil {
					t.Fatalf("answered %v, want dropped", p.Code)
				}
				return
			}
			if p == nil || p.Code != tt.code || cause(p) != tt.cause {
				t.Fatalf("got %v, want %v (cause %v)", p, tt.code, tt.cause)
			}
		})
	}
	h.mu.Lock()
	if len(h.disconnects) != 3 || len(h.coas) != 1 || *h.coas[0].SessionTimeout != time.Minute ||
		*h.coas[0].InterimInterval != 2*time.Minute || h.coas[0].IdleTimeout != nil {
		t.Errorf("handler saw %+v / %+v", h.disconnects, h.coas)
	}
	h.mu.Unlock()

	// A replayed request gets the same answer and is not acted on twice.
	req := build(radius.CodeDisconnectRequest, "dae", avp(attrUserName, []byte("alice")))
	a := exchange(req)
	b := exchange(req)
	if a == nil || b == nil || a.Code != b.Code || !bytes.Equal(a.Authenticator[:], b.Authenticator[:]) {
		t.Fatalf("replay: %v / %v", a, b)
	}
	h.mu.Lock()
	if len(h.disconnects) != 4 {
		t.Errorf("replayed Disconnect acted on: %d disconnects, want 4", len(h.disconnects))
	}
	h.mu.Unlock()
}

func TestDAEUnknownClient(t *testing.T) {
	cfg := config.DefaultRADIUS()
	cfg.DAEListen = netip.MustParseAddrPort("127.0.0.1:0")
	cfg.DAEClients = []config.RADIUSClient{{Address: netip.MustParseAddr("127.0.0.9"), Secret: []byte("dae")}}
	d, err := NewDAE(cfg, &fakeSessions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	p := radius.New(radius.CodeDisconnectRequest, []byte("dae"))
	p.Add(attrUserName, []byte("alice"))
	req, _ := encodeRequest(p, true)
	if resp := d.handle(req, netip.MustParseAddrPort("127.0.0.1:5000")); resp != nil {
		t.Error("request from an unconfigured client answered")
	}
	if resp := d.handle(req, netip.MustParseAddrPort("127.0.0.9:5000")); resp == nil {
		t.Error("request from the configured client dropped")
	}
}

// The answers kept for replay protection are bounded: at most
// maxReplayCache, the oldest forgotten first, and all of them once the
// window has passed. A retransmission of a recent request still gets the
// cached answer.
func TestDAEReplayCacheBounded(t *testing.T) {
	cfg := config.DefaultRADIUS()
	cfg.DAEListen = netip.MustParseAddrPort("127.0.0.1:0")
	cfg.DAEClients = []config.RADIUSClient{{Address: netip.MustParseAddr("127.0.0.1"), Secret: []byte("dae")}}
	h := &countingSessions{}
	d, err := NewDAE(cfg, h, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	clock := time.Unix(1_800_000_000, 0)
	d.now = func() time.Time { return clock }
	src := netip.MustParseAddrPort("127.0.0.1:3799")
	req := func(i int) []byte {
		p := radius.New(radius.CodeDisconnectRequest, []byte("dae"))
		p.Identifier = byte(i)
		p.Attributes = []*radius.AVP{avp(attrAcctSessionID, []byte(fmt.Sprintf("s%d", i)))}
		b, err := encodeRequest(p, true)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	const n = maxReplayCache + 100
	var last []byte
	for i := range n {
		last = req(i)
		if d.handle(last, src) == nil {
			t.Fatalf("request %d not answered", i)
		}
		clock = clock.Add(time.Millisecond)
	}
	d.mu.Lock()
	size, order := len(d.cache), len(d.order)
	d.mu.Unlock()
	if size != maxReplayCache || order != maxReplayCache {
		t.Fatalf("after %d requests: %d answers cached (%d in order), want %d", n, size, order, maxReplayCache)
	}
	before := h.calls
	first, again := d.handle(req(0), src), d.handle(last, src)
	if first == nil || again == nil {
		t.Fatal("a request was not answered")
	}
	if h.calls != before+1 {
		t.Errorf("the oldest (forgotten) and the newest (cached) request again: handler called %d times, want once", h.calls-before)
	}
	d.mu.Lock()
	size = len(d.cache)
	d.mu.Unlock()
	if size != maxReplayCache {
		t.Errorf("after the oldest request again (answered anew) and the newest (from the cache): %d cached, want %d", size, maxReplayCache)
	}
	clock = clock.Add(EventWindow + time.Second)
	d.handle(req(1), src)
	d.mu.Lock()
	size, order = len(d.cache), len(d.order)
	d.mu.Unlock()
	if size != 1 || order != 1 {
		t.Errorf("after the window: %d answers cached (%d in order), want only the newest", size, order)
	}
}

// countingSessions answers every request "not found" and counts them.
type countingSessions struct{ calls int }

func (c *countingSessions) Disconnect(Match) (int, error)  { c.calls++; return 0, nil }
func (c *countingSessions) CoA(Match, Change) (int, error) { c.calls++; return 0, nil }
