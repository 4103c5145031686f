package l2tp

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sccrqBody is an SCCRQ body built by hand from RFC 2661 4.1 (AVP layout),
// 4.4.1 (Message Type) and 4.4.3 (control connection AVPs).
var sccrqBody = []byte{
	0x80, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, // M, len 8, Message Type = SCCRQ
	0x80, 0x08, 0x00, 0x00, 0x00, 0x02, 0x01, 0x00, // Protocol Version 1.0
	0x80, 0x0a, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x03, // Framing Capabilities A|S
	0x80, 0x09, 0x00, 0x00, 0x00, 0x07, 'l', 'n', 's', // Host Name "lns"
	0x80, 0x08, 0x00, 0x00, 0x00, 0x09, 0x00, 0x01, // Assigned Tunnel ID 1
	0x80, 0x08, 0x00, 0x00, 0x00, 0x0a, 0x00, 0x04, // Receive Window Size 4
	0x00, 0x0e, 0x00, 0x00, 0x00, 0x05, 1, 2, 3, 4, 5, 6, 7, 8, // Tie Breaker (optional)
}

func TestParseMessageSCCRQGolden(t *testing.T) {
	pkt := append([]byte{0xc8, 0x02, 0x00, byte(12 + len(sccrqBody)), 0, 0, 0, 0, 0, 0, 0, 0}, sccrqBody...)
	h, body, err := ParseHeader(pkt)
	if err != nil {
		t.Fatal(err)
	}
	if !h.Control || h.TunnelID != 0 {
		t.Fatalf("header %+v", h)
	}
	m, err := ParseMessage(body, nil)
	if err != nil {
		t.Fatalf("ParseMessage: %v", err)
	}
	if m.Type != MsgSCCRQ || len(m.AVPs) != 6 {
		t.Fatalf("got %v with %d AVPs, want SCCRQ with 6", m.Type, len(m.AVPs))
	}
	pv, _ := m.Bytes(AVPProtocolVersion)
	if v, err := ParseProtocolVersion(pv); err != nil || v != (ProtocolVersion{1, 0}) {
		t.Errorf("protocol version %v, %v", v, err)
	}
	if f, ok, err := m.Uint32(AVPFramingCapabilities); !ok || err != nil || f != FramingSync|FramingAsync {
		t.Errorf("framing caps %#x %v %v", f, ok, err)
	}
	if s, ok := m.String(AVPHostName); !ok || s != "lns" {
		t.Errorf("host name %q %v", s, ok)
	}
	if id, ok, err := m.Uint16(AVPAssignedTunnelID); !ok || err != nil || id != 1 {
		t.Errorf("assigned tunnel id %d %v %v", id, ok, err)
	}
	if w, ok, err := m.Uint16(AVPReceiveWindowSize); !ok || err != nil || w != 4 {
		t.Errorf("window %d %v %v", w, ok, err)
	}
	if tb, ok, err := m.Uint64(AVPTieBreaker); !ok || err != nil || tb != 0x0102030405060708 {
		t.Errorf("tie breaker %#x %v %v", tb, ok, err)
	}
	if a, _ := m.Find(AVPTieBreaker); a.Mandatory {
		t.Error("tie breaker decoded with M set")
	}
	if _, ok := m.Find(AVPChallenge); ok {
		t.Error("found an absent Challenge AVP")
	}

	// Encoding the same AVPs must give the same bytes.
	out, err := AppendMessage(nil, m, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, sccrqBody) {
		t.Errorf("AppendMessage =\n%x\nwant\n%x", out, sccrqBody)
	}
}

func TestBuildSCCRQ(t *testing.T) {
	m := &Message{Type: MsgSCCRQ}
	m.AddBytes(AVPProtocolVersion, true, ProtocolVersion{1, 0}.Append(nil))
	m.AddUint32(AVPFramingCapabilities, true, FramingSync|FramingAsync)
	m.AddString(AVPHostName, true, "lns")
	m.AddUint16(AVPAssignedTunnelID, true, 1)
	m.AddUint16(AVPReceiveWindowSize, true, 4)
	m.AddUint64(AVPTieBreaker, false, 0x0102030405060708)
	out, err := AppendMessage([]byte{0xaa}, m, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if out[0] != 0xaa || !bytes.Equal(out[1:], sccrqBody) {
		t.Errorf("AppendMessage =\n%x\nwant aa\n%x", out, sccrqBody)
	}
}

func TestZLB(t *testing.T) {
	m, err := ParseMessage(nil, nil)
	if m != nil || err != nil {
		t.Errorf("ParseMessage(empty) = %v, %v; want nil, nil", m, err)
	}
	out, err := AppendMessage([]byte{1}, nil, nil, nil)
	if err != nil || !bytes.Equal(out, []byte{1}) {
		t.Errorf("AppendMessage(nil) = %x, %v", out, err)
	}
}

const (
	// Reference values computed independently (Python hashlib) following
	// RFC 2661 4.3: secret "secret", Random Vector 00..0f, AVP type 30,
	// value "0123456789abcdefghij" (20 bytes), Original Length 0x0014.
	hiddenNoPad = "b033972b3782dbd52f61ffc81424ce9d9766015dccec"
	// Same with padding a0..a9 (subformat 32 bytes).
	hiddenPad = "b033972b3782dbd52f61ffc81424ce9d9766015dccec10a13c20b69695245053"
)

var rv0to15 = []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}

func rvAVP(v []byte) []byte {
	return append([]byte{0x80, byte(6 + len(v)), 0, 0, 0, 36}, v...)
}

func TestHiddenGoldenReveal(t *testing.T) {
	for _, c := range []string{hiddenNoPad, hiddenPad} {
		ct := unhex(t, c)
		body := []byte{0x80, 0x08, 0, 0, 0, 0, 0, 12} // ICCN
		body = append(body, rvAVP(rv0to15)...)
		body = append(body, 0x40, byte(6+len(ct)), 0, 0, 0, 30)
		body = append(body, ct...)
		m, err := ParseMessage(body, []byte("secret"))
		if err != nil {
			t.Fatalf("ParseMessage: %v", err)
		}
		if len(m.AVPs) != 1 {
			t.Fatalf("AVPs = %+v, want the Proxy Authen Name only", m.AVPs)
		}
		a := m.AVPs[0]
		if !a.Hidden || a.Mandatory || a.Type != AVPProxyAuthenName || string(a.Value) != "0123456789abcdefghij" {
			t.Errorf("AVP = %+v", a)
		}
		// The wire bytes must not have been deciphered in place.
		if !bytes.Equal(body[len(body)-len(ct):], ct) {
			t.Error("ParseMessage modified its input")
		}
	}
}

// seqReader yields a fixed byte sequence, standing in for crypto/rand.
type seqReader struct{ b []byte }

func (r *seqReader) Read(p []byte) (int, error) {
	n := copy(p, r.b)
	r.b = r.b[n:]
	if n == 0 && len(p) > 0 {
		return 0, errors.New("seqReader exhausted")
	}
	return n, nil
}

func TestHiddenGoldenAppend(t *testing.T) {
	m := &Message{Type: MsgICCN}
	m.Add(AVP{Hidden: true, Type: AVPProxyAuthenName, Value: []byte("0123456789abcdefghij")})
	rnd := &seqReader{append(append([]byte{}, rv0to15...), 0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9)}
	out, err := AppendMessage(nil, m, []byte("secret"), rnd)
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{0x80, 0x08, 0, 0, 0, 0, 0, 12}
	want = append(want, rvAVP(rv0to15)...)
	want = append(want, 0x40, 0x26, 0, 0, 0, 30)
	want = append(want, unhex(t, hiddenPad)...)
	if !bytes.Equal(out, want) {
		t.Errorf("AppendMessage =\n%x\nwant\n%x", out, want)
	}
	if len(rnd.b) != 0 {
		t.Errorf("%d random bytes unused", len(rnd.b))
	}
}

func TestHiddenRoundTripFreshVectors(t *testing.T) {
	secret := []byte("s3cr3t")
	m := &Message{Type: MsgICCN}
	m.AddUint16(AVPProxyAuthenType, false, uint16(ProxyAuthenPAP))
	m.Add(AVP{Hidden: true, Type: AVPProxyAuthenName, Value: []byte("alice")})
	m.Add(AVP{Hidden: true, Type: AVPProxyAuthenResponse, Value: []byte("password")})
	m.Add(AVP{Hidden: true, Mandatory: true, Type: AVPProxyAuthenResponse, Value: []byte{}})
	m.Add(AVP{Hidden: true, Vendor: 0, Type: AVPCallingNumber, Value: bytes.Repeat([]byte{'9'}, 1015)})
	out, err := AppendMessage(nil, m, secret, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseMessage(out, secret)
	if err != nil {
		t.Fatal(err)
	}
	if err := equalMessages(m, got); err != nil {
		t.Fatal(err)
	}
	// Two Random Vectors: the second Proxy Authen Response must not reuse
	// the key stream of the first.
	if n := bytes.Count(out, []byte{0x80, 0x16, 0, 0, 0, 36}); n != 2 {
		t.Errorf("%d Random Vector AVPs, want 2", n)
	}
	if _, err := ParseMessage(out, []byte("other")); !errors.Is(err, ErrHidden) {
		t.Errorf("ParseMessage with the wrong secret: %v, want ErrHidden", err)
	}
}

func TestHiddenUsesNearestRandomVector(t *testing.T) {
	// Two Random Vectors: the hidden AVP after the second is keyed by it.
	ct := unhex(t, hiddenNoPad)
	body := []byte{0x80, 0x08, 0, 0, 0, 0, 0, 12}
	body = append(body, rvAVP([]byte{9, 9, 9})...)
	body = append(body, rvAVP(rv0to15)...)
	body = append(body, 0x40, byte(6+len(ct)), 0, 0, 0, 30)
	body = append(body, ct...)
	m, err := ParseMessage(body, []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := m.String(AVPProxyAuthenName); v != "0123456789abcdefghij" {
		t.Errorf("revealed %q", v)
	}
}

func TestParseMessageMalformed(t *testing.T) {
	mt := []byte{0x80, 0x08, 0, 0, 0, 0, 0, 10} // ICRQ
	cat := func(parts ...[]byte) []byte {
		var b []byte
		for _, p := range parts {
			b = append(b, p...)
		}
		return b
	}
	ct := unhex(t, hiddenNoPad)
	hiddenName := cat([]byte{0x40, byte(6 + len(ct)), 0, 0, 0, 30}, ct)
	// Original Length 100 in a 10-byte subformat, hidden with the real key.
	long := []byte{0, 100, 1, 2, 3, 4, 5, 6, 7, 8}
	hide(AVPProxyAuthenName, long, []byte("secret"), rv0to15)
	tests := []struct {
		name   string
		body   []byte
		secret string
		want   error
	}{
		{"first AVP header short", []byte{0x80, 0x08, 0, 0, 0}, "", ErrTruncated},
		{"first AVP length past end", []byte{0x80, 0x09, 0, 0, 0, 0, 0, 1}, "", ErrTruncated},
		{"AVP length 0", cat(mt, []byte{0x80, 0x00, 0, 0, 0, 14}), "", ErrBadLength},
		{"AVP length 1", cat(mt, []byte{0x80, 0x01, 0, 0, 0, 14}), "", ErrBadLength},
		{"AVP length 2", cat(mt, []byte{0x80, 0x02, 0, 0, 0, 14}), "", ErrBadLength},
		{"AVP length 3", cat(mt, []byte{0x80, 0x03, 0, 0, 0, 14}), "", ErrBadLength},
		{"AVP length 4", cat(mt, []byte{0x80, 0x04, 0, 0, 0, 14}), "", ErrBadLength},
		{"AVP length 5", cat(mt, []byte{0x80, 0x05, 0, 0, 0, 14}), "", ErrBadLength},
		{"AVP length past end", cat(mt, []byte{0x80, 0x09, 0, 0, 0, 14, 0, 1}), "", ErrTruncated},
		{"AVP header cut short", cat(mt, []byte{0x80, 0x08, 0, 0}), "", ErrTruncated},
		{"trailing byte", cat(mt, []byte{0}), "", ErrTruncated},
		{"message type not first", cat([]byte{0x80, 0x08, 0, 0, 0, 14, 0, 1}, mt), "", ErrNoMessageType},
		{"message type vendor", []byte{0x80, 0x08, 0, 9, 0, 0, 0, 1}, "", ErrNoMessageType},
		{"message type 3 bytes", []byte{0x80, 0x09, 0, 0, 0, 0, 0, 0, 1}, "", ErrNoMessageType},
		{"message type hidden", []byte{0xc0, 0x08, 0, 0, 0, 0, 0, 1}, "secret", ErrNoMessageType},
		{"second message type", cat(mt, mt), "", ErrNoMessageType},
		{"hidden without secret", cat(mt, rvAVP(rv0to15), hiddenName), "", ErrHidden},
		{"hidden without random vector", cat(mt, hiddenName), "secret", ErrHidden},
		{"hidden before random vector", cat(mt, hiddenName, rvAVP(rv0to15)), "secret", ErrHidden},
		{"hidden wrong secret", cat(mt, rvAVP(rv0to15), hiddenName), "Secret", ErrHidden},
		{"hidden deciphered length beyond AVP", cat(mt, rvAVP(rv0to15), []byte{0x40, 16, 0, 0, 0, 30}, long), "secret", ErrHidden},
		{"hidden 1 byte", cat(mt, rvAVP(rv0to15), []byte{0x40, 7, 0, 0, 0, 30, 0}), "secret", ErrHidden},
		{"hidden random vector", cat(mt, []byte{0xc0, 0x08, 0, 0, 0, 36, 1, 2}), "secret", ErrHidden},
		{"empty random vector", cat(mt, rvAVP(nil)), "secret", ErrAVPValue},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var secret []byte
			if tt.secret != "" {
				secret = []byte(tt.secret)
			}
			m, err := ParseMessage(tt.body, secret)
			if !errors.Is(err, tt.want) {
				t.Fatalf("ParseMessage(%x) = %v, want %v", tt.body, err, tt.want)
			}
			if m != nil {
				t.Errorf("returned a message with a hard error: %+v", m)
			}
		})
	}
}

func TestUnknownAVPs(t *testing.T) {
	body := []byte{
		0x80, 0x08, 0, 0, 0, 0, 0, 10, // ICRQ
		0x00, 0x07, 0, 0, 0, 20, 0xaa, // unknown optional IETF type 20: kept
		0x80, 0x08, 0, 0, 0, 14, 0, 7, // Assigned Session ID 7
		0x80, 0x07, 0x00, 0x09, 0, 1, 0xbb, // mandatory vendor 9 type 1: unknown
		0x80, 0x06, 0, 0, 0x01, 0x00, // mandatory IETF type 256: unknown, second
		0x00, 0x08, 0, 0, 0, 15, 0, 1, // Call Serial Number after them: still parsed
	}
	m, err := ParseMessage(body, nil)
	var u *UnknownAVPError
	if !errors.As(err, &u) {
		t.Fatalf("error = %v, want *UnknownAVPError", err)
	}
	if *u != (UnknownAVPError{Vendor: 9, Type: 1, Mandatory: true}) {
		t.Errorf("UnknownAVPError = %+v, want the first unknown mandatory AVP", *u)
	}
	if m == nil || m.Type != MsgICRQ || len(m.AVPs) != 5 {
		t.Fatalf("message = %+v, want ICRQ with 5 AVPs", m)
	}
	if m.AVPs[0].Known() || !m.AVPs[1].Known() || m.AVPs[2].Known() {
		t.Errorf("Known() wrong: %+v", m.AVPs)
	}
	if v, _ := m.Bytes(20); !bytes.Equal(v, []byte{0xaa}) {
		t.Errorf("unknown optional AVP value %x", v)
	}
	if a, ok := m.FindVendor(9, 1); !ok || !bytes.Equal(a.Value, []byte{0xbb}) {
		t.Errorf("vendor AVP %+v %v", a, ok)
	}
	if s, ok, err := m.Uint32(AVPCallSerialNumber); s != 0 || !ok || err == nil {
		// 2-byte value for a 4-byte AVP: present but malformed.
		t.Errorf("Uint32 of 2-byte value = %d, %v, %v; want error", s, ok, err)
	}
}

func TestReservedAVPBits(t *testing.T) {
	body := []byte{
		0x80, 0x08, 0, 0, 0, 0, 0, 10,
		0x04, 0x08, 0, 0, 0, 14, 0, 7, // optional, reserved bit: dropped
		0x80, 0x08, 0, 0, 0, 15, 0, 0, // kept
	}
	m, err := ParseMessage(body, nil)
	if err != nil || len(m.AVPs) != 1 || m.AVPs[0].Type != AVPCallSerialNumber {
		t.Fatalf("ParseMessage = %+v, %v", m, err)
	}
	body[8] = 0x88 // mandatory with a reserved bit
	m, err = ParseMessage(body, nil)
	var u *UnknownAVPError
	if !errors.As(err, &u) || u.Type != 14 || m == nil || len(m.AVPs) != 1 {
		t.Fatalf("ParseMessage = %+v, %v; want *UnknownAVPError for type 14", m, err)
	}
}

func TestAppendMessageErrors(t *testing.T) {
	tests := []struct {
		name   string
		avp    AVP
		secret []byte
		rnd    *seqReader
		want   error
	}{
		{"value too long", AVP{Type: AVPCalledNumber, Value: make([]byte, 1018)}, nil, nil, ErrBadLength},
		{"hidden value too long", AVP{Hidden: true, Type: AVPCalledNumber, Value: make([]byte, 1016)}, []byte("s"), nil, ErrBadLength},
		{"hidden without secret", AVP{Hidden: true, Type: AVPCalledNumber, Value: []byte("1")}, nil, nil, ErrHidden},
		{"hidden random vector", AVP{Hidden: true, Type: AVPRandomVector, Value: []byte("1")}, []byte("s"), nil, ErrHidden},
		{"random source fails", AVP{Hidden: true, Type: AVPCalledNumber, Value: []byte("1")}, []byte("s"), &seqReader{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &Message{Type: MsgICRQ, AVPs: []AVP{tt.avp}}
			var err error
			if tt.rnd != nil {
				_, err = AppendMessage(nil, m, tt.secret, tt.rnd)
			} else {
				_, err = AppendMessage(nil, m, tt.secret, nil)
			}
			if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Fatalf("AppendMessage error = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestExplicitRandomVectorIsUsed(t *testing.T) {
	m := &Message{Type: MsgICCN}
	m.Add(AVP{Mandatory: true, Type: AVPRandomVector, Value: rv0to15})
	m.Add(AVP{Hidden: true, Type: AVPProxyAuthenName, Value: []byte("0123456789abcdefghij")})
	rnd := &seqReader{[]byte{0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9}}
	out, err := AppendMessage(nil, m, []byte("secret"), rnd)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasSuffix(out, unhex(t, hiddenPad)) || bytes.Count(out, []byte{0, 0, 0, 36}) != 1 {
		t.Errorf("AppendMessage = %x: want the given vector used, no new one", out)
	}
}

func TestChallengeResponseGolden(t *testing.T) {
	// MD5(0x02 || "secret" || 00..0f) and MD5(0x03 || "secret" || deadbeef),
	// computed independently.
	got := ChallengeResponse(MsgSCCRP, []byte("secret"), rv0to15)
	if hex.EncodeToString(got[:]) != "dd4186e2196f00124a9d588f02701259" {
		t.Errorf("SCCRP response %x", got)
	}
	got = ChallengeResponse(MsgSCCCN, []byte("secret"), []byte{0xde, 0xad, 0xbe, 0xef})
	if hex.EncodeToString(got[:]) != "0cf35bd9433f8d829987830943f71a4c" {
		t.Errorf("SCCCN response %x", got)
	}
}

func TestStrings(t *testing.T) {
	for _, tt := range []struct{ got, want string }{
		{MsgSCCRQ.String(), "SCCRQ"},
		{MsgStopCCN.String(), "StopCCN"},
		{MsgACK.String(), "ACK"},
		{MessageType(5).String(), "MessageType(5)"},
		{MessageType(999).String(), "MessageType(999)"},
		{AVPHostName.String(), "Host Name"},
		{AVPType(20).String(), "AVPType(20)"},
		{AVPRemoteSessionID.String(), "Remote Session ID"},
		{ProxyAuthenCHAP.String(), "CHAP"},
		{ProxyAuthenType(9).String(), "ProxyAuthenType(9)"},
		{(&UnknownAVPError{Vendor: 9, Type: 3, Mandatory: true}).Error(), "l2tp: unknown mandatory AVP vendor 9 type 3"},
	} {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

func TestCheckRequired(t *testing.T) {
	m, err := ParseMessage(sccrqBody, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.CheckRequired(); err != nil {
		t.Errorf("complete SCCRQ: %v", err)
	}
	if !m.TypeMandatory {
		t.Error("Message Type M bit not reported")
	}
	m.AVPs = m.AVPs[1:] // drop Protocol Version
	if err := m.CheckRequired(); !errors.Is(err, ErrMissingAVP) {
		t.Errorf("SCCRQ without Protocol Version: %v", err)
	}
	cdn := &Message{Type: MsgCDN}
	cdn.AddUint16(AVPAssignedSessionID, true, 1)
	if err := cdn.CheckRequired(); !errors.Is(err, ErrMissingAVP) {
		t.Errorf("CDN without Result Code: %v", err)
	}
	cdn.AddResultCode(ResultCode{Result: ResultCDNAdmin})
	if err := cdn.CheckRequired(); err != nil {
		t.Errorf("complete CDN: %v", err)
	}
	if err := (&Message{Type: MsgHello}).CheckRequired(); err != nil {
		t.Errorf("HELLO: %v", err)
	}
}

func TestUnknownMessageTypeOptional(t *testing.T) {
	// Message Type 99 with the M bit clear: decoded, not an error; the
	// tunnel layer may ignore it (RFC 2661 4.4.1).
	m, err := ParseMessage([]byte{0x00, 0x08, 0, 0, 0, 0, 0, 99}, nil)
	if err != nil || m.Type != 99 || m.Type.Known() || m.TypeMandatory {
		t.Fatalf("ParseMessage = %+v, %v", m, err)
	}
}
