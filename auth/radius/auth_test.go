package radius

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"layeh.com/radius"

	"github.com/l2tpd/l2tpd/auth"
	"github.com/l2tpd/l2tpd/ppp/chap"
	"github.com/l2tpd/l2tpd/ppp/mschapv2"
)

const secret = "s3cret"

var session = auth.SessionInfo{
	AcctSessionID: "0000000a-00000001", TunnelID: 10, SessionID: 1, LACHostName: "lac-1",
	LACAddr:       netip.MustParseAddrPort("198.51.100.7:1701"),
	LocalAddr:     netip.MustParseAddrPort("192.0.2.1:1701"),
	CallingNumber: "", CalledNumber: "5551234", TxConnectSpeed: 100000000, RxConnectSpeed: 10000000, NASPort: 42,
}

func mustClient(t *testing.T, c *Client, err error) *Client {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// attrs of the request every method must carry.
func checkCommon(t *testing.T, raw []byte, p *radius.Packet) {
	t.Helper()
	if raw[20] != byte(attrMessageAuthenticator) || raw[21] != 18 {
		t.Errorf("first attribute is %d/%d, want Message-Authenticator", raw[20], raw[21])
	}
	if err := checkMA(raw, raw[4:20], []byte(secret)); err != nil {
		t.Errorf("request Message-Authenticator: %v", err)
	}
	want := map[radius.Type][]byte{
		attrUserName:             []byte("alice"),
		attrNASIdentifier:        []byte("lns-test"),
		attrNASIPAddress:         {192, 0, 2, 1},
		attrNASPort:              u32(42),
		attrNASPortID:            []byte("10/1"),
		attrNASPortType:          u32(nasPortTypeVirtual),
		attrServiceType:          u32(serviceTypeFramed),
		attrFramedProtocol:       u32(framedProtocolPPP),
		attrCallingStationID:     []byte("198.51.100.7"), // falls back to the LAC address
		attrCalledStationID:      []byte("5551234"),
		attrConnectInfo:          []byte("100000000/10000000"),
		attrAcctSessionID:        []byte("0000000a-00000001"),
		attrTunnelType:           {0, 0, 0, 3},
		attrTunnelMediumType:     {0, 0, 0, 1},
		attrTunnelClientEndpoint: []byte("198.51.100.7"),
		attrTunnelServerEndpoint: []byte("192.0.2.1"),
		attrTunnelClientAuthID:   []byte("lac-1"),
	}
	for typ, v := range want {
		if got := p.Get(typ); !bytes.Equal(got, v) {
			t.Errorf("attribute %d = %q, want %q", typ, got, v)
		}
	}
}

func TestPAPAcceptEveryReplyAttribute(t *testing.T) {
	srv := newFakeServer(t, secret, func(raw []byte, p *radius.Packet) []byte {
		checkCommon(t, raw, p)
		pw, err := radius.UserPassword(p.Get(attrUserPassword), []byte(secret), p.Authenticator[:])
		if err != nil || string(pw) != "pa55word" {
			t.Errorf("User-Password = %q, %v", pw, err)
		}
		return reply(t, raw, []byte(secret), radius.CodeAccessAccept, true,
			avp(attrFramedIPAddress, []byte{10, 0, 0, 5}),
			avp(attrFramedIPNetmask, []byte{255, 255, 255, 255}),
			avp(attrFramedPool, []byte("gold")),
			avp(attrFramedRoute, []byte("10.1.0.0/16 0.0.0.0 1")),
			avp(attrFramedRoute, []byte("10.2.0.0 255.255.0.0")),
			avp(attrFramedIPv6Prefix, []byte{0, 64, 0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0}),
			avp(attrDelegatedIPv6Prefix, []byte{0, 56, 0x20, 0x01, 0x0d, 0xb8, 0, 2, 0, 0, 0}),
			avp(attrFramedInterfaceID, []byte{1, 2, 3, 4, 5, 6, 7, 8}),
			avp(attrFramedMTU, u32(1400)),
			avp(attrSessionTimeout, u32(3600)),
			avp(attrIdleTimeout, u32(600)),
			avp(attrAcctInterimInterval, u32(300)),
			avp(attrClass, []byte("class-1")),
			avp(attrClass, []byte("class-2")),
			avp(attrReplyMessage, []byte("welcome")),
			avp(99, []byte("unknown attribute, ignored")),
			vsa(msPrimaryDNSServer, []byte{192, 0, 2, 53}),
			vsa(msSecondaryDNSServer, []byte{192, 0, 2, 54}),
			vsa(msPrimaryNBNSServer, []byte{192, 0, 2, 55}),
			vsa(msSecondaryNBNSServer, []byte{192, 0, 2, 56}),
		)
	})
	cfg := testConfig(t, secret, srv.port())
	c, err := New(cfg, nil)
	c = mustClient(t, c, err)
	res, err := c.Authenticate(context.Background(), &auth.Request{Method: auth.MethodPAP, Username: "alice", Password: []byte("pa55word"), Session: session})
	if err != nil {
		t.Fatal(err)
	}
	want := &auth.Result{
		Accept: true, Message: "welcome",
		FramedIP: netip.MustParseAddr("10.0.0.5"), FramedNetmask: netip.MustParseAddr("255.255.255.255"), Pool: "gold",
		FramedRoutes:  []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16"), netip.MustParsePrefix("10.2.0.0/16")},
		FramedIPv6:    netip.MustParsePrefix("2001:db8:1::/64"),
		DelegatedIPv6: netip.MustParsePrefix("2001:db8:2::/56"),
		InterfaceID:   [8]byte{1, 2, 3, 4, 5, 6, 7, 8}, HasInterfaceID: true, MTU: 1400,
		DNS:            [2]netip.Addr{netip.MustParseAddr("192.0.2.53"), netip.MustParseAddr("192.0.2.54")},
		NBNS:           [2]netip.Addr{netip.MustParseAddr("192.0.2.55"), netip.MustParseAddr("192.0.2.56")},
		SessionTimeout: time.Hour, IdleTimeout: 10 * time.Minute, InterimInterval: 5 * time.Minute,
		Class: [][]byte{[]byte("class-1"), []byte("class-2")},
	}
	if diff := cmp.Diff(want, res, cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
		cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Errorf("result (-want +got):\n%s", diff)
	}
}

func TestPoolAddressAndReject(t *testing.T) {
	srv := newFakeServer(t, secret, func(raw []byte, p *radius.Packet) []byte {
		if string(p.Get(attrUserName)) == "bob" {
			return reply(t, raw, []byte(secret), radius.CodeAccessReject, true, avp(attrReplyMessage, []byte("no credit")))
		}
		return reply(t, raw, []byte(secret), radius.CodeAccessAccept, true, avp(attrFramedIPAddress, framedIPFromPool[:]))
	})
	c, err := New(testConfig(t, secret, srv.port()), nil)
	c = mustClient(t, c, err)
	res, err := c.Authenticate(context.Background(), &auth.Request{Method: auth.MethodPAP, Username: "alice", Password: []byte("x")})
	if err != nil || !res.Accept || res.FramedIP != netip.MustParseAddr("255.255.255.254") {
		t.Errorf("pool accept: %+v, %v", res, err)
	}
	res, err = c.Authenticate(context.Background(), &auth.Request{Method: auth.MethodPAP, Username: "bob", Password: []byte("x")})
	if err != nil || res.Accept || res.Message != "no credit" {
		t.Errorf("reject: %+v, %v", res, err)
	}
}

func TestCHAP(t *testing.T) {
	challenge := []byte("0123456789abcdefXYZ")
	resp := chap.CHAPMD5(7, []byte("pw"), challenge)
	srv := newFakeServer(t, secret, func(raw []byte, p *radius.Packet) []byte {
		checkCommon(t, raw, p)
		cp := p.Get(attrCHAPPassword)
		ok := len(cp) == 17 && chap.VerifyMD5(cp[0], []byte("pw"), p.Get(attrCHAPChallenge), cp[1:])
		code := radius.CodeAccessReject
		if ok {
			code = radius.CodeAccessAccept
		}
		return reply(t, raw, []byte(secret), code, true)
	})
	c, err := New(testConfig(t, secret, srv.port()), nil)
	c = mustClient(t, c, err)
	for _, tt := range []struct {
		resp []byte
		want bool
	}{{resp[:], true}, {make([]byte, 16), false}} {
		res, err := c.Authenticate(context.Background(), &auth.Request{Method: auth.MethodCHAPMD5, Username: "alice", ID: 7,
			Challenge: challenge, Response: tt.resp, Session: session})
		if err != nil || res.Accept != tt.want {
			t.Errorf("CHAP accept = %+v, %v; want %v", res, err, tt.want)
		}
	}
}

func TestMSCHAPv2(t *testing.T) {
	var authChal, peerChal [16]byte
	copy(authChal[:], "authenticator-ch")
	copy(peerChal[:], "peer-challenge-1")
	good := mschapv2.BuildResponse(authChal, peerChal, "alice", "clientPass")
	srv := newFakeServer(t, secret, func(raw []byte, p *radius.Packet) []byte {
		checkCommon(t, raw, p)
		var ch, r []byte
		for _, a := range p.Attributes {
			if a.Type != attrVendorSpecific || binary.BigEndian.Uint32(a.Attribute) != vendorMicrosoft {
				continue
			}
			switch a.Attribute[4] {
			case msCHAPChallenge:
				ch = a.Attribute[6:]
			case msCHAP2Response:
				r = a.Attribute[6:]
			}
		}
		if len(r) != 50 || !bytes.Equal(ch, authChal[:]) {
			t.Fatalf("MS-CHAP-Challenge %x, MS-CHAP2-Response %x", ch, r)
		}
		// Back to the PPP layout: peer challenge, reserved, NT response, flags.
		ppp := append(append([]byte(nil), r[2:]...), r[1])
		ok, authResp, _ := mschapv2.Verify([16]byte(ch), ppp, "alice", "clientPass")
		if !ok {
			return reply(t, raw, []byte(secret), radius.CodeAccessReject, true,
				vsa(msCHAPError, append([]byte{r[0]}, "E=691 R=0 C=00000000000000000000000000000000 V=3"...)))
		}
		return reply(t, raw, []byte(secret), radius.CodeAccessAccept, true, vsa(msCHAP2Success, append([]byte{r[0]}, authResp...)))
	})
	c, err := New(testConfig(t, secret, srv.port()), nil)
	c = mustClient(t, c, err)
	res, err := c.Authenticate(context.Background(), &auth.Request{Method: auth.MethodMSCHAPv2, Username: "alice", ID: 3,
		Challenge: authChal[:], Response: good[:], Session: session})
	if err != nil || !res.Accept {
		t.Fatalf("MS-CHAPv2: %+v, %v", res, err)
	}
	if !mschapv2.CheckAuthenticatorResponse(res.MSCHAPv2AuthResponse, "clientPass", [24]byte(good[24:48]), peerChal, authChal, "alice") {
		t.Errorf("MSCHAPv2AuthResponse %q does not prove the password", res.MSCHAPv2AuthResponse)
	}
	bad := good
	bad[30] ^= 1
	res, err = c.Authenticate(context.Background(), &auth.Request{Method: auth.MethodMSCHAPv2, Username: "alice", ID: 4,
		Challenge: authChal[:], Response: bad[:], Session: session})
	if err != nil || res.Accept || res.MSCHAPError != "E=691 R=0 C=00000000000000000000000000000000 V=3" {
		t.Errorf("MS-CHAPv2 failure: %+v, %v", res, err)
	}
}

// Forged or broken replies are dropped: the request times out (or gets the
// real reply sent after the bad one).
func TestForgedReplies(t *testing.T) {
	sec := []byte(secret)
	tests := []struct {
		name      string
		requireMA bool
		forge     func(raw []byte) []byte
		accepted  bool
	}{
		{"valid", true, func(raw []byte) []byte { return reply(t, raw, sec, radius.CodeAccessAccept, true) }, true},
		{"wrong secret", true, func(raw []byte) []byte { return reply(t, raw, []byte("other"), radius.CodeAccessAccept, true) }, false},
		{"missing Message-Authenticator", true, func(raw []byte) []byte { return reply(t, raw, sec, radius.CodeAccessAccept, false) }, false},
		{"missing Message-Authenticator, not required", false, func(raw []byte) []byte { return reply(t, raw, sec, radius.CodeAccessAccept, false) }, true},
		{"wrong Message-Authenticator", false, func(raw []byte) []byte {
			req, _ := radius.Parse(raw, sec)
			r := req.Response(radius.CodeAccessAccept)
			r.Add(attrMessageAuthenticator, make([]byte, 16)) // zeros, never signed
			b, _ := r.MarshalBinary()
			copy(b[4:20], req.Authenticator[:])
			h := md5sum(b, sec)
			copy(b[4:20], h)
			return b
		}, false},
		{"wrong Identifier", true, func(raw []byte) []byte {
			c := bytes.Clone(raw)
			c[1]++
			return reply(t, c, sec, radius.CodeAccessAccept, true)
		}, false},
		{"truncated attribute", false, func(raw []byte) []byte {
			b := reply(t, raw, sec, radius.CodeAccessAccept, false, avp(attrReplyMessage, []byte("hello")))
			b[21] = 40 // Reply-Message length beyond the packet
			req, _ := radius.Parse(raw, sec)
			copy(b[4:20], req.Authenticator[:])
			copy(b[4:20], md5sum(b, sec))
			return b
		}, false},
		{"short packet", false, func(raw []byte) []byte { return reply(t, raw, sec, radius.CodeAccessAccept, true)[:19] }, false},
		{"length field too long", false, func(raw []byte) []byte {
			b := reply(t, raw, sec, radius.CodeAccessAccept, true)
			binary.BigEndian.PutUint16(b[2:4], uint16(len(b)+10))
			return b
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newFakeServer(t, secret, func(raw []byte, p *radius.Packet) []byte { return tt.forge(raw) })
			cfg := testConfig(t, secret, srv.port())
			cfg.Servers[0].RequireMessageAuthenticator = tt.requireMA
			cfg.Servers[0].Retries = 0
			c, err := New(cfg, nil)
			c = mustClient(t, c, err)
			res, err := c.Authenticate(context.Background(), &auth.Request{Method: auth.MethodPAP, Username: "alice", Password: []byte("x")})
			if tt.accepted {
				if err != nil || !res.Accept {
					t.Errorf("got %+v, %v; want accept", res, err)
				}
				return
			}
			if !errors.Is(err, ErrNoServer) {
				t.Errorf("got %+v, %v; want ErrNoServer (reply dropped)", res, err)
			}
		})
	}
}

// A forged reply arriving first does not hide the real one.
func TestForgedThenReal(t *testing.T) {
	srv := newFakeServer(t, secret, nil)
	srv.setHandle(func(raw []byte, p *radius.Packet) []byte {
		return reply(t, raw, []byte("attacker"), radius.CodeAccessAccept, true)
	})
	cfg := testConfig(t, secret, srv.port())
	c, err := New(cfg, nil)
	c = mustClient(t, c, err)
	if _, err := c.Authenticate(context.Background(), &auth.Request{Method: auth.MethodPAP, Username: "a", Password: []byte("x")}); err == nil {
		t.Fatal("forged reply accepted")
	}
}

// Malformed known attributes in a valid Accept make it a reject.
func TestMalformedAcceptIsReject(t *testing.T) {
	for _, a := range []*radius.AVP{
		avp(attrFramedIPAddress, []byte{10, 0, 0}),
		avp(attrSessionTimeout, []byte{1, 2}),
		avp(attrFramedIPv6Prefix, []byte{0, 129}),
		avp(attrFramedRoute, []byte("not-a-route")),
		avp(attrFramedInterfaceID, []byte{1}),
		vsa(msCHAP2Success, []byte("S=short")),
		avp(attrVendorSpecific, []byte{0, 0, 1, 0x37, 28, 9, 1}),
	} {
		srv := newFakeServer(t, secret, func(raw []byte, p *radius.Packet) []byte {
			return reply(t, raw, []byte(secret), radius.CodeAccessAccept, true, a)
		})
		c, err := New(testConfig(t, secret, srv.port()), nil)
		c = mustClient(t, c, err)
		res, err := c.Authenticate(context.Background(), &auth.Request{Method: auth.MethodPAP, Username: "a", Password: []byte("x")})
		if err != nil || res.Accept {
			t.Errorf("attribute %d %x: got %+v, %v; want a reject", a.Type, a.Attribute, res, err)
		}
	}
}

func TestFailoverAndDeadMarking(t *testing.T) {
	dead := newFakeServer(t, secret, func([]byte, *radius.Packet) []byte { return nil })
	live := newFakeServer(t, secret, func(raw []byte, p *radius.Packet) []byte {
		return reply(t, raw, []byte(secret), radius.CodeAccessAccept, true)
	})
	cfg := testConfig(t, secret, dead.port(), live.port())
	cfg.DeadAfter = 2
	var mu sync.Mutex
	now := time.Unix(1000, 0)
	c, err := newClient(cfg, nil, func() time.Time { mu.Lock(); defer mu.Unlock(); return now })
	c = mustClient(t, c, err)
	login := func() {
		t.Helper()
		res, err := c.Authenticate(context.Background(), &auth.Request{Method: auth.MethodPAP, Username: "a", Password: []byte("x")})
		if err != nil || !res.Accept {
			t.Fatalf("login: %+v, %v", res, err)
		}
	}
	login()
	login()
	if n := dead.count(); n != 4 { // 2 logins x (1 try + 1 retry)
		t.Errorf("primary got %d requests before being marked dead, want 4", n)
	}
	login() // primary is dead: straight to the secondary
	if n := dead.count(); n != 4 {
		t.Errorf("dead primary got %d requests, want still 4", n)
	}
	// After dead_time the primary is probed again; now it answers.
	mu.Lock()
	now = now.Add(cfg.DeadTime + time.Second)
	mu.Unlock()
	dead.setHandle(func(raw []byte, p *radius.Packet) []byte {
		return reply(t, raw, []byte(secret), radius.CodeAccessAccept, true)
	})
	before := live.count()
	login()
	login()
	if n := live.count(); n != before {
		t.Errorf("secondary got %d more requests after the primary came back", n-before)
	}
}

func TestBoundedInFlight(t *testing.T) {
	srv := newFakeServer(t, secret, func([]byte, *radius.Packet) []byte { return nil }) // never answers
	cfg := testConfig(t, secret, srv.port())
	cfg.MaxInFlight = 2
	cfg.Servers[0].Timeout = 10 * time.Second
	c, err := New(cfg, nil)
	c = mustClient(t, c, err)
	first, cancelFirst := context.WithCancel(context.Background())
	last, cancelLast := context.WithCancel(context.Background())
	defer cancelLast()
	req := &auth.Request{Method: auth.MethodPAP, Username: "a", Password: []byte("x")}
	go c.Authenticate(first, req)
	go c.Authenticate(first, req)
	<-srv.got
	<-srv.got
	go c.Authenticate(last, req)
	select {
	case <-srv.got:
		t.Fatal("a third request went out with max_in_flight = 2")
	case <-time.After(200 * time.Millisecond): // checking for the absence of an event
	}
	cancelFirst() // frees both slots
	select {
	case <-srv.got:
	case <-time.After(5 * time.Second):
		t.Fatal("the queued request was not sent when slots freed")
	}
}
