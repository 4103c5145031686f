package l2tp

import (
	"bytes"
	"errors"
	"testing"
)

// TestDecodeReusesMessage: Decode into a message that held a longer one
// gives exactly what ParseMessage gives, and keeps the AVP array.
func TestDecodeReusesMessage(t *testing.T) {
	var m Message
	if err := m.Decode(icrqBody, nil); err != nil {
		t.Fatal(err)
	}
	arr := &m.AVPs[:1][0]
	icrp := []byte{0x80, 8, 0, 0, 0, 0, 0, 11, 0x80, 8, 0, 0, 0, 14, 0x12, 0x34}
	if err := m.Decode(icrp, nil); err != nil {
		t.Fatal(err)
	}
	want, err := ParseMessage(icrp, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := equalMessages(want, &m); err != nil {
		t.Fatal(err)
	}
	if &m.AVPs[:1][0] != arr {
		t.Error("Decode allocated a new AVP array for a shorter message")
	}
	if sid, ok, err := m.Uint16(AVPAssignedSessionID); !ok || err != nil || sid != 0x1234 {
		t.Errorf("Assigned Session ID %#x %v %v, want 0x1234", sid, ok, err)
	}
	// An unknown mandatory AVP: the parsed message and the error.
	unk := append(append([]byte(nil), icrp...), 0x80, 6, 0, 0, 0x7f, 0x00)
	var u *UnknownAVPError
	if err := m.Decode(unk, nil); !errors.As(err, &u) || u.Type != 0x7f00 || len(m.AVPs) != 2 {
		t.Errorf("Decode with unknown mandatory AVP: %v, %d AVPs", err, len(m.AVPs))
	}
	if err := m.Decode(nil, nil); !errors.Is(err, ErrNoMessageType) {
		t.Errorf("Decode of an empty body: %v, want ErrNoMessageType", err)
	}
}

// TestResetValues: values added after Reset are encoded right (golden
// bytes), and values added before are not changed by later Adds.
func TestResetValues(t *testing.T) {
	var m Message
	m.Reset(MsgCDN)
	m.AddResultCode(ResultCode{Result: ResultCDNAdmin, Error: 0, Message: "bye"})
	m.AddUint16(AVPAssignedSessionID, true, 0x0102)
	rc := m.AVPs[0].Value
	for i := range 100 { // grow the value array past its first size
		m.AddUint32(AVPPhysicalChannelID, false, uint32(i))
	}
	if !bytes.Equal(rc, []byte{0, 3, 0, 0, 'b', 'y', 'e'}) {
		t.Fatalf("Result Code value changed to % x", rc)
	}
	m.Reset(MsgCDN)
	m.AddResultCode(ResultCode{Result: ResultCDNAdmin, Message: "bye"})
	m.AddUint16(AVPAssignedSessionID, true, 0x0102)
	m.AddString(AVPCalledNumber, true, "12")
	m.AddUint64(AVPTieBreaker, false, 0x0102030405060708)
	got, err := AppendMessage(nil, &m, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{
		0x80, 8, 0, 0, 0, 0, 0, 14, // Message Type CDN
		0x80, 13, 0, 0, 0, 1, 0, 3, 0, 0, 'b', 'y', 'e', // Result Code 3, error 0, "bye"
		0x80, 8, 0, 0, 0, 14, 1, 2, // Assigned Session ID
		0x80, 8, 0, 0, 0, 21, '1', '2', // Called Number
		0, 14, 0, 0, 0, 5, 1, 2, 3, 4, 5, 6, 7, 8, // Tie Breaker
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("encoded\n% x\nwant\n% x", got, want)
	}
	if m.TypeMandatory || len(m.AVPs) != 4 {
		t.Fatalf("after Reset: %+v", m)
	}
}

var iccnBody = func() []byte {
	m := &Message{Type: MsgICCN}
	m.AddUint32(AVPTxConnectSpeed, true, 100000000)
	m.AddUint32(AVPFramingType, true, 1)
	m.AddUint32(AVPRxConnectSpeed, false, 100000000)
	b, err := AppendMessage(nil, m, nil, nil)
	if err != nil {
		panic(err)
	}
	return b
}()

// BenchmarkDecodeICRQ: the tunnel's receive path, one Message reused.
func BenchmarkDecodeICRQ(b *testing.B) {
	var m Message
	b.ReportAllocs()
	b.SetBytes(int64(len(icrqBody)))
	for b.Loop() {
		if err := m.Decode(icrqBody, nil); err != nil || len(m.AVPs) != 6 {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseMessageICCN(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		m, err := ParseMessage(iccnBody, nil)
		if err != nil || len(m.AVPs) != 3 {
			b.Fatal(err)
		}
	}
}

// BenchmarkBuildICRP: building and encoding an ICRP and a CDN as the
// tunnel does, into a reused Message and buffer.
func BenchmarkBuildICRPAndCDN(b *testing.B) {
	var m Message
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		m.Reset(MsgICRP)
		m.AddUint16(AVPAssignedSessionID, true, 0x1234)
		var err error
		if buf, err = AppendMessage(buf[:0], &m, nil, nil); err != nil {
			b.Fatal(err)
		}
		m.Reset(MsgCDN)
		m.AddResultCode(ResultCode{Result: ResultCDNAdmin, Message: "session ended"})
		m.AddUint16(AVPAssignedSessionID, true, 0x1234)
		if buf, err = AppendMessage(buf[:0], &m, nil, nil); err != nil {
			b.Fatal(err)
		}
	}
}
