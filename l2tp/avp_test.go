package l2tp

import (
	"bytes"
	"errors"
	"testing"
)

func TestResultCode(t *testing.T) {
	tests := []struct {
		in   []byte
		want ResultCode
	}{
		{[]byte{0, 1}, ResultCode{Result: ResultStopGeneral}},
		{[]byte{0, 2, 0, 8}, ResultCode{Result: ResultCDNGeneralError, Error: ErrCodeUnknownMandatory}},
		{[]byte{0, 2, 0, 6, 'o', 'o', 'p', 's'}, ResultCode{Result: 2, Error: ErrCodeVendor, Message: "oops"}},
	}
	for _, tt := range tests {
		got, err := ParseResultCode(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseResultCode(%x) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
		again, err := ParseResultCode(got.Append(nil))
		if err != nil || again != tt.want {
			t.Errorf("round trip of %+v = %+v, %v", tt.want, again, err)
		}
	}
	if got := (ResultCode{Result: 3, Error: 0}).Append(nil); !bytes.Equal(got, []byte{0, 3, 0, 0}) {
		t.Errorf("Append = %x", got)
	}
	for _, bad := range [][]byte{nil, {0}, {0, 1, 0}} {
		if _, err := ParseResultCode(bad); !errors.Is(err, ErrAVPValue) {
			t.Errorf("ParseResultCode(%x) error %v", bad, err)
		}
	}
	m := &Message{Type: MsgStopCCN}
	if _, ok, _ := m.ResultCode(); ok {
		t.Error("absent Result Code reported present")
	}
	m.AddResultCode(ResultCode{Result: ResultStopShuttingDown})
	if r, ok, err := m.ResultCode(); !ok || err != nil || r.Result != ResultStopShuttingDown {
		t.Errorf("ResultCode() = %+v %v %v", r, ok, err)
	}
	if a, _ := m.Find(AVPResultCode); !a.Mandatory {
		t.Error("Result Code AVP not mandatory")
	}
}

func TestQ931Cause(t *testing.T) {
	in := []byte{0x00, 0x10, 0x05, 'b', 'y', 'e'}
	q, err := ParseQ931Cause(in)
	if err != nil || q != (Q931Cause{Cause: 16, Msg: 5, Advisory: "bye"}) {
		t.Fatalf("ParseQ931Cause = %+v, %v", q, err)
	}
	if out := q.Append(nil); !bytes.Equal(out, in) {
		t.Errorf("Append = %x", out)
	}
	if _, err := ParseQ931Cause([]byte{0, 1}); !errors.Is(err, ErrAVPValue) {
		t.Errorf("short: %v", err)
	}
}

func TestCallErrors(t *testing.T) {
	// RFC 2661 4.4.9: 2 reserved bytes then six 32-bit counters.
	in := []byte{0, 0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 5, 0, 0, 0, 6}
	c, err := ParseCallErrors(in)
	want := CallErrors{CRC: 1, Framing: 2, HardwareOverruns: 3, BufferOverruns: 4, Timeout: 5, Alignment: 6}
	if err != nil || c != want {
		t.Fatalf("ParseCallErrors = %+v, %v", c, err)
	}
	if out := c.Append(nil); !bytes.Equal(out, in) {
		t.Errorf("Append = %x", out)
	}
	if _, err := ParseCallErrors(in[:25]); !errors.Is(err, ErrAVPValue) {
		t.Errorf("short: %v", err)
	}
}

func TestACCM(t *testing.T) {
	// RFC 2661 4.4.10: 2 reserved bytes, Send ACCM, Receive ACCM.
	in := []byte{0, 0, 0xff, 0xff, 0xff, 0xff, 0x00, 0x0a, 0x00, 0x00}
	a, err := ParseACCM(in)
	if err != nil || a != (ACCM{Send: 0xffffffff, Recv: 0x000a0000}) {
		t.Fatalf("ParseACCM = %+v, %v", a, err)
	}
	if out := a.Append(nil); !bytes.Equal(out, in) {
		t.Errorf("Append = %x", out)
	}
	if _, err := ParseACCM(append(in, 0)); !errors.Is(err, ErrAVPValue) {
		t.Errorf("long: %v", err)
	}
}

func TestProtocolVersion(t *testing.T) {
	if _, err := ParseProtocolVersion([]byte{1}); !errors.Is(err, ErrAVPValue) {
		t.Errorf("short: %v", err)
	}
	if out := (ProtocolVersion{ProtocolVersion1, ProtocolRevision0}).Append(nil); !bytes.Equal(out, []byte{1, 0}) {
		t.Errorf("Append = %x", out)
	}
}

func TestProxyAuth(t *testing.T) {
	p := ProxyAuth{Type: ProxyAuthenCHAP, Name: "bob", Challenge: []byte{1, 2, 3}, ID: 7, Response: bytes.Repeat([]byte{9}, 16)}
	m := &Message{Type: MsgICCN}
	m.AddProxyAuth(p)
	out, err := AppendMessage(nil, m, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Proxy Authen ID (RFC 2661 4.4.5): reserved byte, then the ID.
	if !bytes.Contains(out, []byte{0x00, 0x08, 0, 0, 0, 32, 0x00, 0x07}) {
		t.Errorf("no Proxy Authen ID AVP 0008 0000 0020 0007 in %x", out)
	}
	got, err := ParseMessage(out, nil)
	if err != nil {
		t.Fatal(err)
	}
	q, ok, err := got.ProxyAuth()
	if !ok || err != nil || q.Type != p.Type || q.Name != p.Name || q.ID != p.ID ||
		!bytes.Equal(q.Challenge, p.Challenge) || !bytes.Equal(q.Response, p.Response) {
		t.Errorf("ProxyAuth() = %+v, %v, %v; want %+v", q, ok, err, p)
	}
	if _, ok, _ := (&Message{}).ProxyAuth(); ok {
		t.Error("empty message has proxy auth")
	}
	bad := &Message{}
	bad.AddUint16(AVPProxyAuthenType, false, 2)
	bad.AddBytes(AVPProxyAuthenID, false, []byte{1})
	if _, ok, err := bad.ProxyAuth(); !ok || !errors.Is(err, ErrAVPValue) {
		t.Errorf("1-byte Proxy Authen ID: %v %v", ok, err)
	}
}

func TestV3Helpers(t *testing.T) {
	if _, err := ParseCookie([]byte{1, 2, 3}); !errors.Is(err, ErrAVPValue) {
		t.Errorf("3-byte cookie: %v", err)
	}
	if c, err := ParseCookie([]byte{1, 2, 3, 4, 5, 6, 7, 8}); err != nil || len(c) != 8 {
		t.Errorf("8-byte cookie: %x %v", c, err)
	}
	pw, err := ParsePseudowireCapabilities([]byte{0, 7, 0, 5})
	if err != nil || len(pw) != 2 || pw[0] != PseudowirePPP || pw[1] != PseudowireEthernet {
		t.Errorf("pseudowire caps %v %v", pw, err)
	}
	if out := AppendPseudowireCapabilities(nil, pw); !bytes.Equal(out, []byte{0, 7, 0, 5}) {
		t.Errorf("Append = %x", out)
	}
	if _, err := ParsePseudowireCapabilities([]byte{0}); !errors.Is(err, ErrAVPValue) {
		t.Errorf("odd list: %v", err)
	}
	in := append([]byte{0}, bytes.Repeat([]byte{0xab}, 16)...)
	d, err := ParseMessageDigest(in)
	if err != nil || d.DigestType != 0 || len(d.Digest) != 16 || !bytes.Equal(d.Append(nil), in) {
		t.Errorf("digest %+v %v", d, err)
	}
	if _, err := ParseMessageDigest(in[:10]); !errors.Is(err, ErrAVPValue) {
		t.Errorf("short digest: %v", err)
	}
}
