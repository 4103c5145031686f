package ppp

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/l2tpd/l2tpd/auth"
	"github.com/l2tpd/l2tpd/ppp/chap"
	"github.com/l2tpd/l2tpd/ppp/mschapv2"
)

// seededRand is a deterministic io.Reader for magic numbers and challenges.
type seededRand struct{ r *rand.ChaCha8 }

func newRand(seed byte) *seededRand {
	var s [32]byte
	s[0] = seed
	return &seededRand{rand.NewChaCha8(s)}
}
func (s *seededRand) Read(b []byte) (int, error) { return s.r.Read(b) }

// testAuthenticator is a tiny in-test authenticator with one subscriber.
func testAuthenticator(user, pass string, req *auth.Request) *auth.Result {
	if req.Username != user {
		return &auth.Result{Message: "unknown user"}
	}
	switch req.Method {
	case auth.MethodPAP:
		if string(req.Password) == pass {
			return &auth.Result{Accept: true}
		}
	case auth.MethodCHAPMD5:
		if chap.VerifyMD5(req.ID, []byte(pass), req.Challenge, req.Response) {
			return &auth.Result{Accept: true}
		}
	case auth.MethodMSCHAPv2:
		ok, ar, err := mschapv2.Verify([16]byte(req.Challenge), req.Response, req.Username, pass)
		if err == nil && ok {
			return &auth.Result{Accept: true, MSCHAPv2AuthResponse: ar}
		}
	}
	return &auth.Result{Message: "bad password"}
}

type side struct {
	l     *Link
	ups   []NetworkUp
	down  *LinkDown
	needs int
}

type pair struct {
	t        testing.TB
	now      time.Time
	lns, lac side
	loss     *rand.Rand
	lossPct  int
	// drop, if set, may discard a frame from side from.
	drop   func(from *side, frame []byte) bool
	frames int
	user   string
	pass   string
}

func newPair(t testing.TB, lnsCfg, lacCfg Config) *pair {
	p := &pair{t: t, now: time.Unix(1_000_000, 0), user: "alice", pass: "s3cret"}
	if lnsCfg.Rand == nil {
		lnsCfg.Rand = newRand(1)
	}
	if lacCfg.Rand == nil {
		lacCfg.Rand = newRand(2)
	}
	lacCfg.Role = RolePeer
	p.lns.l = NewLink(lnsCfg, p.now)
	p.lac.l = NewLink(lacCfg, p.now)
	return p
}

// pump moves actions between the links until both are quiet, then
// advances the fake clock to the next deadline; it stops at limit.
func (p *pair) run(limit time.Duration) {
	end := p.now.Add(limit)
	var acts []Action
	for p.now.Before(end) {
		moved := false
		for _, s := range []*side{&p.lns, &p.lac} {
			other := &p.lac
			if s == &p.lac {
				other = &p.lns
			}
			acts = s.l.Actions(acts[:0])
			for _, a := range acts {
				moved = true
				switch a := a.(type) {
				case SendFrame:
					p.frames++
					if p.loss != nil && p.loss.IntN(100) < p.lossPct {
						continue
					}
					if p.drop != nil && p.drop(s, a.Frame) {
						continue
					}
					other.l.Input(p.now, a.Frame)
				case NeedAuth:
					s.needs++
					s.l.AuthDone(p.now, testAuthenticator(p.user, p.pass, a.Req), nil)
				case NeedAddress:
					s.l.SetAddresses(p.now, netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2"),
						[2]netip.Addr{netip.MustParseAddr("8.8.8.8"), netip.MustParseAddr("8.8.4.4")}, [2]netip.Addr{})
				case NetworkUp:
					s.ups = append(s.ups, a)
				case LinkDown:
					if s.down != nil {
						p.t.Fatalf("second LinkDown: %v", a)
					}
					s.down = &a
				}
			}
		}
		if moved {
			continue
		}
		if p.lns.down != nil && p.lac.down != nil {
			return
		}
		if p.lns.l.lcp.f.state == StateOpened && p.lac.l.lcp.f.state == StateOpened &&
			len(p.lns.ups) > 0 && len(p.lac.ups) > 0 && p.lns.ups[len(p.lns.ups)-1].IPv6 && p.lac.ups[len(p.lac.ups)-1].IPv6 {
			return
		}
		d := p.lns.l.Deadline()
		if d2 := p.lac.l.Deadline(); !d2.IsZero() && (d.IsZero() || d2.Before(d)) {
			d = d2
		}
		if d.IsZero() {
			return
		}
		if d.After(p.now) {
			p.now = d
		}
		p.lns.l.Tick(p.now)
		p.lac.l.Tick(p.now)
	}
}

func methods(m ...auth.Method) []auth.Method { return m }

func TestEndToEnd(t *testing.T) {
	for _, m := range []auth.Method{auth.MethodPAP, auth.MethodCHAPMD5, auth.MethodMSCHAPv2} {
		t.Run(m.String(), func(t *testing.T) {
			p := newPair(t, Config{AuthMethods: methods(m)}, Config{Username: "alice", Password: "s3cret", RequestDNS: true})
			start := p.now
			p.lns.l.Open(p.now)
			p.lac.l.Open(p.now)
			p.run(time.Minute)
			if p.lns.down != nil || p.lac.down != nil {
				t.Fatalf("link down: lns %v lac %v", p.lns.down, p.lac.down)
			}
			if len(p.lns.ups) == 0 || len(p.lac.ups) == 0 {
				t.Fatalf("no NetworkUp: lns %v lac %v", p.lns.ups, p.lac.ups)
			}
			if p.now != start {
				t.Errorf("negotiation waited for a timer: took %v", p.now.Sub(start))
			}
			lu, cu := p.lns.ups[len(p.lns.ups)-1], p.lac.ups[len(p.lac.ups)-1]
			if !lu.IPv4 || lu.Local != netip.MustParseAddr("10.0.0.1") || lu.Peer != netip.MustParseAddr("10.0.0.2") {
				t.Errorf("lns up = %+v", lu)
			}
			if !cu.IPv4 || cu.Local != netip.MustParseAddr("10.0.0.2") || cu.Peer != netip.MustParseAddr("10.0.0.1") ||
				cu.DNS != [2]netip.Addr{netip.MustParseAddr("8.8.8.8"), netip.MustParseAddr("8.8.4.4")} {
				t.Errorf("lac up = %+v", cu)
			}
			if !lu.IPv6 || lu.LocalIfID != cu.PeerIfID || lu.PeerIfID != cu.LocalIfID || lu.LocalIfID == lu.PeerIfID {
				t.Errorf("interface ids: lns %+v lac %+v", lu, cu)
			}
			if p.lns.needs != 1 {
				t.Errorf("NeedAuth %d times", p.lns.needs)
			}
		})
	}
}

func TestEndToEndWrongPassword(t *testing.T) {
	for _, m := range []auth.Method{auth.MethodPAP, auth.MethodCHAPMD5, auth.MethodMSCHAPv2} {
		t.Run(m.String(), func(t *testing.T) {
			p := newPair(t, Config{AuthMethods: methods(m)}, Config{Username: "alice", Password: "wrong"})
			p.lns.l.Open(p.now)
			p.lac.l.Open(p.now)
			p.run(time.Minute)
			if p.lns.down == nil || p.lac.down == nil {
				t.Fatalf("LinkDown missing: lns %v lac %v", p.lns.down, p.lac.down)
			}
			if !strings.Contains(p.lns.down.Reason, "authentication failed") || !strings.Contains(p.lns.down.Reason, "alice") {
				t.Errorf("lns reason %q", p.lns.down.Reason)
			}
			if !strings.Contains(p.lac.down.Reason, "rejected by the peer") {
				t.Errorf("lac reason %q", p.lac.down.Reason)
			}
			if len(p.lns.ups)+len(p.lac.ups) != 0 {
				t.Error("network came up")
			}
		})
	}
}

func TestEndToEndLoss(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		for _, m := range []auth.Method{auth.MethodPAP, auth.MethodCHAPMD5, auth.MethodMSCHAPv2} {
			t.Run(fmt.Sprintf("%v/seed%d", m, seed), func(t *testing.T) {
				p := newPair(t, Config{AuthMethods: methods(m)}, Config{Username: "alice", Password: "s3cret"})
				p.loss, p.lossPct = rand.New(rand.NewPCG(seed, 7)), 20
				p.lns.l.Open(p.now)
				p.lac.l.Open(p.now)
				p.run(5 * time.Minute)
				if p.lns.down != nil || p.lac.down != nil {
					t.Fatalf("link down: lns %v lac %v", p.lns.down, p.lac.down)
				}
				if len(p.lns.ups) == 0 || len(p.lac.ups) == 0 {
					t.Fatalf("no NetworkUp (lcp %v/%v ipcp %v/%v, auth %v/%v)", p.lns.l.LCPState(), p.lac.l.LCPState(),
						p.lns.l.IPCPState(), p.lac.l.IPCPState(), p.lns.l.au.step, p.lac.l.au.step)
				}
			})
		}
	}
}

func BenchmarkNegotiation(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		p := newPair(b, Config{AuthMethods: methods(auth.MethodCHAPMD5), EchoInterval: -1}, Config{Username: "alice", Password: "s3cret", EchoInterval: -1})
		p.lns.l.Open(p.now)
		p.lac.l.Open(p.now)
		p.run(time.Minute)
		if len(p.lns.ups) == 0 {
			b.Fatal("no NetworkUp")
		}
	}
}

// A lost CHAP Success must not strand a peer that, like pppd, never
// resends its Response: the authenticator repeats the Success with its NCP
// retransmissions until the peer sends an NCP packet.
func TestLostCHAPSuccessRecovered(t *testing.T) {
	for _, m := range []auth.Method{auth.MethodCHAPMD5, auth.MethodMSCHAPv2} {
		t.Run(m.String(), func(t *testing.T) {
			p := newPair(t, Config{AuthMethods: methods(m)}, Config{Username: "alice", Password: "s3cret", RequestDNS: true})
			successes, responses := 0, 0
			p.drop = func(from *side, frame []byte) bool {
				proto, payload, err := SplitFrame(frame)
				if err != nil || proto != ProtoCHAP || len(payload) == 0 {
					return false
				}
				switch {
				case from == &p.lns && payload[0] == chapSuccess:
					successes++
					return successes == 1 // the first Success is lost
				case from == &p.lac && payload[0] == chapResp:
					responses++
					return responses > 1 // the peer never gets a resent Response through
				}
				return false
			}
			p.lns.l.Open(p.now)
			p.lac.l.Open(p.now)
			p.run(time.Minute)
			if len(p.lac.ups) == 0 || p.lac.down != nil {
				t.Fatalf("peer never reached the network phase after a lost Success: ups %v down %v", p.lac.ups, p.lac.down)
			}
			if successes < 2 {
				t.Fatalf("Success sent %d times, want it repeated", successes)
			}
		})
	}
}
