package ppp

import (
	"bytes"
	"encoding/hex"
	"net/netip"
	"strings"
	"testing"

	"github.com/l2tpd/l2tpd/auth"
)

func h(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

func TestSplitFrame(t *testing.T) {
	tests := []struct {
		in    string
		proto Protocol
		rest  string
		err   bool
	}{
		{"c021 0101 0004", ProtoLCP, "01010004", false},
		{"ff03 c021 0101 0004", ProtoLCP, "01010004", false},
		{"21 4500", ProtoIPv4, "4500", false}, // PFC
		{"ff03 21 45", ProtoIPv4, "45", false},
		{"c0", 0, "", true},      // even low byte... and short
		{"c020 00", 0, "", true}, // even protocol
		{"", 0, "", true},
		{"ff03", 0, "", true},
	}
	for _, tt := range tests {
		p, rest, err := SplitFrame(h(tt.in))
		if (err != nil) != tt.err || !tt.err && (p != tt.proto || hex.EncodeToString(rest) != tt.rest) {
			t.Errorf("SplitFrame(%s) = %v %x %v", tt.in, p, rest, err)
		}
	}
}

// Golden LCP Configure-Request of an authenticator offering CHAP-MD5 with
// MRU 1400: RFC 1661 6.1 (MRU), 6.2 (Auth 0xc223 algorithm 5), 6.4 (Magic).
func TestGoldenLCPConfReq(t *testing.T) {
	l := NewLink(Config{MRU: 1400, AuthMethods: []auth.Method{auth.MethodCHAPMD5}, Rand: bytes.NewReader(h("11223344"))}, testNow)
	l.Open(testNow)
	acts := l.Actions(nil)
	want := h("c021 01 01 0013 01 04 0578 03 05 c223 05 05 06 11223344")
	if len(acts) != 1 || !bytes.Equal(acts[0].(SendFrame).Frame, want) {
		t.Fatalf("got %v\nwant %x", acts, want)
	}
}

// The peer's request with an unknown option (Quality-Protocol) and a bad
// MRU length: Configure-Reject echoes exactly those options.
func TestGoldenLCPReject(t *testing.T) {
	l := NewLink(Config{Rand: newRand(1)}, testNow)
	l.Open(testNow)
	l.Actions(nil)
	l.Input(testNow, h("c021 01 07 0013 04 08 c025 00000bb8 01 03 05 07 02 08 02"))
	acts := l.Actions(nil)
	want := h("c021 04 07 000f 04 08 c025 00000bb8 01 03 05")
	if len(acts) != 1 || !bytes.Equal(acts[0].(SendFrame).Frame, want) {
		t.Fatalf("got %v\nwant %x", acts, want)
	}
}

// Magic-Number equal to ours: Nak with another (loop detection).
func TestLCPMagicLoop(t *testing.T) {
	l := NewLink(Config{Rand: bytes.NewReader(h("11223344 0102030405060708 55667788 99aabbcc"))}, testNow)
	l.Open(testNow)
	l.Actions(nil)
	l.Input(testNow, h("c021 01 09 000a 05 06 11223344"))
	acts := l.Actions(nil)
	want := h("c021 03 09 000a 05 06 99aabbcc")
	if len(acts) != 1 || !bytes.Equal(acts[0].(SendFrame).Frame, want) || l.lcp.magic != 0x55667788 {
		t.Fatalf("got %v (magic %x)\nwant %x", acts, l.lcp.magic, want)
	}
}

func TestGoldenPAPAndCHAP(t *testing.T) {
	pr, err := ParsePAPRequest(h("05 616c696365 03 707764"))
	if err != nil || string(pr.PeerID) != "alice" || string(pr.Password) != "pwd" {
		t.Errorf("PAP = %q %q %v", pr.PeerID, pr.Password, err)
	}
	for _, bad := range []string{"", "05 6162", "01 61", "01 61 02 62"} {
		if _, err := ParsePAPRequest(h(bad)); err == nil {
			t.Errorf("ParsePAPRequest(%s) accepted", bad)
		}
	}
	v, err := ParseCHAPValue(h("04 01020304 6e616d65"))
	if err != nil || !bytes.Equal(v.Value, h("01020304")) || string(v.Name) != "name" {
		t.Errorf("CHAP = %x %q %v", v.Value, v.Name, err)
	}
	for _, bad := range []string{"", "00", "05 01020304"} {
		if _, err := ParseCHAPValue(h(bad)); err == nil {
			t.Errorf("ParseCHAPValue(%s) accepted", bad)
		}
	}
}

// An authenticator with MS-CHAPv2: golden Challenge, then a Failure in the
// "E=691 R=0 C=... V=3 M=..." form after a reject.
func TestGoldenMSCHAPv2Failure(t *testing.T) {
	// magic, IPv6CP interface identifier, challenge
	rnd := h("01020304" + "1112131415161718" + "000102030405060708090a0b0c0d0e0f")
	l := NewLink(Config{AuthMethods: []auth.Method{auth.MethodMSCHAPv2}, Hostname: "lns", Rand: bytes.NewReader(rnd)}, testNow)
	l.Open(testNow)
	l.Actions(nil)
	l.Input(testNow, h("c021 01 01 0004"))                              // peer: empty request
	l.Input(testNow, h("c021 02 01 000f 03 05 c223 81 05 06 01020304")) // peer acks ours
	acts := l.Actions(nil)
	wantChal := h("c223 01 01 0018 10 000102030405060708090a0b0c0d0e0f 6c6e73")
	if len(acts) != 2 || !bytes.Equal(acts[1].(SendFrame).Frame, wantChal) {
		t.Fatalf("got %v\nwant challenge %x", acts, wantChal)
	}
	resp := append(h("c223 02 01 0039 31"), make([]byte, 49)...)
	resp = append(resp, "bob"...)
	l.Input(testNow, resp)
	acts = l.Actions(nil)
	na, ok := acts[0].(NeedAuth)
	if len(acts) != 1 || !ok || na.Req.Username != "bob" || na.Req.Method != auth.MethodMSCHAPv2 || len(na.Req.Response) != 49 {
		t.Fatalf("got %v", acts)
	}
	l.AuthDone(testNow, &auth.Result{}, nil)
	acts = l.Actions(nil)
	msg := "E=691 R=0 C=000102030405060708090A0B0C0D0E0F V=3 M=Authentication failed"
	want := append(h("c223 04 01 004c"), msg...)
	if len(acts) < 2 || !bytes.Equal(acts[0].(SendFrame).Frame, want) {
		t.Fatalf("got %v\nwant %x", acts, want)
	}
	if p, _ := ParsePacket(acts[1].(SendFrame).Frame[2:]); p.Code != CodeTermReq {
		t.Fatalf("no Terminate-Request after failure: %v", acts)
	}
}

// An IPCP request that arrives before authentication is done is kept and
// answered once addresses are set.
func TestEarlyIPCPKept(t *testing.T) {
	l := NewLink(Config{AuthMethods: []auth.Method{auth.MethodPAP}, IPv6: PolicyDisable, Rand: newRand(1)}, testNow)
	l.Input(testNow, h("c021 01 01 0004")) // before Open: starts LCP
	acts := l.Actions(nil)
	if len(acts) != 2 {
		t.Fatalf("got %v", acts)
	}
	req := acts[0].(SendFrame).Frame
	p, _ := ParsePacket(req[2:])
	l.Input(testNow, p.AppendFrame([]byte{}, ProtoLCP)[:0:0]) // nothing
	ack := append([]byte{0xc0, 0x21, byte(CodeConfAck)}, req[3:]...)
	l.Input(testNow, ack)
	l.Input(testNow, h("8021 01 01 000a 03 06 00000000")) // early IPCP
	l.Input(testNow, h("c023 01 05 000b 05 616c696365 00"))
	acts = l.Actions(nil)
	if len(acts) != 1 {
		t.Fatalf("got %v", acts)
	}
	l.AuthDone(testNow, &auth.Result{Accept: true}, nil)
	l.SetAddresses(testNow, netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.9"), [2]netip.Addr{}, [2]netip.Addr{})
	acts = l.Actions(nil)
	wantNak := h("8021 03 01 000a 03 06 0a000009")
	found := false
	for _, a := range acts {
		if f, ok := a.(SendFrame); ok && bytes.Equal(f.Frame, wantNak) {
			found = true
		}
	}
	if !found {
		t.Fatalf("early IPCP request not answered with %x: %v", wantNak, acts)
	}
}

func FuzzLCP(f *testing.F) {
	f.Add(h("c021 01 01 0013 01 04 0578 03 05 c223 05 05 06 11223344"))
	f.Add(h("c021 01 07 0012 04 08 c025 00000bb8 01 03 05 07 02 08 02"))
	f.Add(h("c021 09 01 0008 00000000"))
	f.Add(h("8021 01 01 000a 03 06 00000000"))
	f.Add(h("8057 01 01 000e 01 0a 0102030405060708"))
	f.Add(h("c023 01 05 000b 05 616c696365 00"))
	f.Add(h("c223 02 01 0009 04 01020304"))
	f.Fuzz(func(t *testing.T, frame []byte) {
		for _, role := range []Role{RoleAuthenticator, RolePeer} {
			l := NewLink(Config{Role: role, AuthMethods: []auth.Method{auth.MethodPAP}, Rand: newRand(1)}, testNow)
			l.Open(testNow)
			l.Input(testNow, frame)
			for _, a := range l.Actions(nil) {
				if sf, ok := a.(SendFrame); ok && len(sf.Frame) > protoLen+defaultMRU {
					t.Fatalf("reply of %d bytes", len(sf.Frame))
				}
			}
		}
		// Codec round trip.
		proto, payload, err := SplitFrame(frame)
		if err != nil {
			return
		}
		p, err := ParsePacket(payload)
		if err != nil {
			return
		}
		enc := p.AppendFrame(nil, proto)
		p2, err := ParsePacket(enc[2:])
		if err != nil || p2.Code != p.Code || p2.ID != p.ID || !bytes.Equal(p2.Data, p.Data) {
			t.Fatalf("round trip: %v %v", p2, err)
		}
		opts, err := ParseOptions(nil, p.Data)
		if err == nil {
			if enc := AppendOptions(nil, opts); !bytes.Equal(enc, p.Data) {
				t.Fatalf("options round trip %x != %x", enc, p.Data)
			}
		}
		ParsePAPRequest(p.Data)
		ParseCHAPValue(p.Data)
	})
}
