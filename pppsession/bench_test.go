package pppsession

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/l2tpd/l2tpd/auth"
	"github.com/l2tpd/l2tpd/auth/local"
	"github.com/l2tpd/l2tpd/config"
	"github.com/l2tpd/l2tpd/dataplane"
	"github.com/l2tpd/l2tpd/l2tp"
	"github.com/l2tpd/l2tpd/pool"
	"github.com/l2tpd/l2tpd/ppp/chap"
)

// The benchmarks drive the LNS driver the way l2tp/endpoint does (Frame,
// process, SendFrame to the data plane) against a scripted peer that
// answers LCP, CHAP-MD5 and IPCP (asking for an address and two DNS
// servers) with as little work and allocation of its own as possible, so
// the figures are the driver's and the PPP engine's.

// benchRand is a deterministic, allocation-free io.Reader.
type benchRand struct{ r *rand.ChaCha8 }

func (s *benchRand) Read(b []byte) (int, error) { return s.r.Read(b) }

// benchCall is the L2TP session: it counts hangups.
type benchCall struct{ hangups int }

func (c *benchCall) Hangup(time.Time, l2tp.ResultCode, string) { c.hangups++ }
func (c *benchCall) Post(f func(time.Time)) bool               { f(time.Time{}); return true }
func (c *benchCall) Established()                              {}

// benchPeer is the subscriber's side: a dataplane.Session whose SendFrame
// is the LNS's frame arriving at the peer. Its answers are queued in out
// (one buffer, reused) and delivered by pump.
type benchPeer struct {
	user, pass []byte
	out        []byte // queued frames: 2-byte length, frame
	up         bool
	nid        uint8
	in         [256]byte // the frame being delivered
	addr, dns1 [4]byte
	dns2       [4]byte
}

func (p *benchPeer) reset() {
	p.out, p.up, p.nid = p.out[:0], false, 0
	p.addr, p.dns1, p.dns2 = [4]byte{}, [4]byte{}, [4]byte{}
}

func (p *benchPeer) frame(proto uint16, code, id uint8, parts ...[]byte) {
	n := 6
	for _, x := range parts {
		n += len(x)
	}
	p.out = binary.BigEndian.AppendUint16(p.out, uint16(n))
	p.out = binary.BigEndian.AppendUint16(p.out, proto)
	p.out = append(p.out, code, id, byte((n-2)>>8), byte(n-2))
	for _, x := range parts {
		p.out = append(p.out, x...)
	}
}

var (
	benchLCPReq = []byte{5, 6, 0x12, 0x34, 0x56, 0x78} // Magic-Number
	benchIPCPOp = [...]byte{3, 129, 131}               // Address, DNS1, DNS2
)

func (p *benchPeer) ipcpRequest() {
	var d [18]byte
	for i, v := range [...][4]byte{p.addr, p.dns1, p.dns2} {
		d[i*6], d[i*6+1] = benchIPCPOp[i], 6
		copy(d[i*6+2:], v[:])
	}
	p.nid++
	p.frame(0x8021, 1, p.nid, d[:])
}

func (p *benchPeer) SendFrame(f []byte) error {
	proto, code, id, data := binary.BigEndian.Uint16(f), f[2], f[3], f[6:]
	switch {
	case proto == 0xc021 && code == 1: // LCP Configure-Request: Ack, and ours
		p.frame(0xc021, 2, id, data)
		p.frame(0xc021, 1, 1, benchLCPReq)
	case proto == 0xc223 && code == 1: // CHAP Challenge
		h := chap.CHAPMD5(id, p.pass, data[1:1+data[0]])
		p.frame(0xc223, 2, id, []byte{16}, h[:], p.user)
	case proto == 0xc223 && code == 3: // CHAP Success
		p.ipcpRequest()
	case proto == 0x8021 && code == 1: // IPCP Configure-Request: Ack
		p.frame(0x8021, 2, id, data)
	case proto == 0x8021 && code == 3: // IPCP Configure-Nak: take what is offered
		for len(data) >= 6 {
			switch data[0] {
			case 3:
				p.addr = [4]byte(data[2:6])
			case 129:
				p.dns1 = [4]byte(data[2:6])
			case 131:
				p.dns2 = [4]byte(data[2:6])
			}
			data = data[data[1]:]
		}
		p.ipcpRequest()
	}
	return nil
}

func (p *benchPeer) Up(dataplane.NetConfig) error    { p.up = true; return nil }
func (p *benchPeer) Stats() (dataplane.Stats, error) { return dataplane.Stats{}, nil }
func (p *benchPeer) Close() error                    { return nil }

// pump delivers the peer's queued frames to d until there are none.
func (p *benchPeer) pump(now time.Time, d *LNS) {
	for len(p.out) > 0 {
		n := int(binary.BigEndian.Uint16(p.out))
		copy(p.in[:], p.out[2:2+n])
		p.out = p.out[:copy(p.out, p.out[2+n:])]
		d.Frame(now, p.in[:n])
	}
}

type benchLNS struct {
	env   *Env
	prof  *config.PPP
	rnd   *benchRand
	now   time.Time
	users int
}

func newBenchLNS(tb testing.TB, users, poolSize int) *benchLNS {
	subs := make([]local.Subscriber, users)
	for i := range subs {
		subs[i] = local.Subscriber{Name: fmt.Sprintf("user%d", i), Password: fmt.Sprintf("pw%d", i)}
	}
	la, err := local.New(subs)
	if err != nil {
		tb.Fatal(err)
	}
	first := netip.MustParseAddr("10.0.0.2")
	last := first
	for range poolSize - 1 {
		last = last.Next()
	}
	pools, err := pool.NewSet([]pool.Config{{Name: "p", Ranges: []pool.Range{{First: first, Last: last}}, Gateway: netip.MustParseAddr("10.0.0.1")}})
	if err != nil {
		tb.Fatal(err)
	}
	prof := defaultProfile()
	prof.Auth = []auth.Method{auth.MethodCHAPMD5}
	now := time.Unix(1_700_000_000, 0)
	rnd := &benchRand{rand.NewChaCha8([32]byte{1})}
	env := NewEnv(Config{Auth: la, Pools: pools, IDs: NewIDs(now), Rand: rnd})
	return &benchLNS{env: env, prof: prof, rnd: rnd, now: now, users: users}
}

// setup brings one session up: it returns the driver with the network up.
func (bl *benchLNS) setup(tb testing.TB, i int, call *benchCall, peer *benchPeer) *LNS {
	u := i % bl.users
	peer.user = fmt.Appendf(peer.user[:0], "user%d", u)
	peer.pass = fmt.Appendf(peer.pass[:0], "pw%d", u)
	d := bl.env.NewLNS(bl.now, call, peer, LNSParams{Profile: bl.prof, Info: auth.SessionInfo{TunnelID: 1, SessionID: uint32(i)}})
	peer.pump(bl.now, d)
	if !peer.up || call.hangups != 0 {
		tb.Fatalf("session %d: network up %v, hangups %d", i, peer.up, call.hangups)
	}
	return d
}

// BenchmarkLNSSetup is one complete LNS-side setup (LCP, CHAP-MD5 with a
// local subscriber, IPCP with an address and two DNS servers) and the
// session's end (Close: address released, accounting stopped).
func BenchmarkLNSSetup(b *testing.B) {
	bl := newBenchLNS(b, 20000, 1000)
	var call benchCall
	var peer benchPeer
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		peer.reset()
		d := bl.setup(b, i, &call, &peer)
		d.Close(bl.now, "bench")
		i++
	}
}

// BenchmarkLNSRetained reports the heap an established session keeps
// (driver, PPP link, registry entry, address), per session.
func BenchmarkLNSRetained(b *testing.B) {
	const n = 2000
	b.ReportAllocs()
	for b.Loop() {
		bl := newBenchLNS(b, 20000, n)
		calls := make([]benchCall, n)
		peers := make([]benchPeer, n)
		for i := range peers {
			peers[i].out = make([]byte, 0, 256)
			peers[i].user = make([]byte, 0, 16)
			peers[i].pass = make([]byte, 0, 16)
		}
		ds := make([]*LNS, n)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for i := range ds {
			ds[i] = bl.setup(b, i, &calls[i], &peers[i])
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "B/session")
		b.ReportMetric(float64(after.HeapObjects-before.HeapObjects)/n, "objects/session")
		runtime.KeepAlive(ds)
		runtime.KeepAlive(peers)
	}
}
