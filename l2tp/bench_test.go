package l2tp

import (
	"io"
	"testing"
)

// icrqBody is a typical ICRQ from a LAC: Assigned Session ID, Call Serial
// Number, Bearer Type, Calling and Called Number, Physical Channel ID.
var icrqBody = func() []byte {
	m := &Message{Type: MsgICRQ}
	m.AddUint16(AVPAssignedSessionID, true, 0x1234)
	m.AddUint32(AVPCallSerialNumber, true, 42)
	m.AddUint32(AVPBearerType, true, BearerAnalog)
	m.AddString(AVPCallingNumber, true, "0123456789")
	m.AddString(AVPCalledNumber, true, "isp.example")
	m.AddUint32(AVPPhysicalChannelID, false, 7)
	b, err := AppendMessage(nil, m, nil, nil)
	if err != nil {
		panic(err)
	}
	return b
}()

func BenchmarkParseMessageICRQ(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(icrqBody)))
	for b.Loop() {
		m, err := ParseMessage(icrqBody, nil)
		if err != nil || len(m.AVPs) != 6 {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendMessageICRQ(b *testing.B) {
	m, err := ParseMessage(icrqBody, nil)
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf, err = AppendMessage(buf[:0], m, nil, nil)
		if err != nil {
			b.Fatal(err)
		}
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }

var _ io.Reader = zeroReader{}

func BenchmarkAppendMessageHidden(b *testing.B) {
	m := &Message{Type: MsgICCN}
	m.Add(AVP{Hidden: true, Type: AVPProxyAuthenName, Value: []byte("user@realm")})
	m.Add(AVP{Hidden: true, Type: AVPProxyAuthenResponse, Value: make([]byte, 16)})
	buf := make([]byte, 0, 512)
	secret := []byte("secret")
	b.ReportAllocs()
	for b.Loop() {
		var err error
		buf, err = AppendMessage(buf[:0], m, secret, zeroReader{})
		if err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseHeaderData(b *testing.B) {
	pkt := make([]byte, 1400)
	AppendHeader(pkt[:0], Header{HasLength: true, HasSeq: true, Version: 2, TunnelID: 1, SessionID: 2}, 1400-12)
	b.ReportAllocs()
	b.SetBytes(int64(len(pkt)))
	for b.Loop() {
		h, p, err := ParseHeader(pkt)
		if err != nil || h.SessionID != 2 || len(p) != 1388 {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendHeaderData(b *testing.B) {
	buf := make([]byte, 0, 64)
	h := Header{Version: 2, TunnelID: 1, SessionID: 2}
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendHeader(buf[:0], h, 1400)
	}
}
