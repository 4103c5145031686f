package l2tp

import (
	"bytes"
	"errors"
	"testing"
)

func FuzzParseHeader(f *testing.F) {
	f.Add([]byte{0xc8, 0x02, 0x00, 0x0c, 0x12, 0x34, 0x00, 0x00, 0x00, 0x05, 0x00, 0x07})
	f.Add([]byte{0x4b, 0x02, 0x00, 0x12, 0x00, 0x01, 0x00, 0x02, 0x00, 0x01, 0x00, 0x00, 0x00, 0x02, 0xee, 0xee, 0x21, 0x45})
	f.Add([]byte{0x00, 0x02, 0xab, 0xcd, 0x00, 0x09, 0xff, 0x03})
	f.Add([]byte{0xc8, 0x03, 0x00, 0x0c, 0xde, 0xad, 0xbe, 0xef, 0x00, 0x01, 0x00, 0x02})
	f.Add([]byte{0x00, 0x03, 0x00, 0x00, 0x01, 0x02, 0x03, 0x04, 0xc0})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, p, err := ParseHeader(b)
		if err != nil {
			return
		}
		if len(p) > len(b) {
			t.Fatalf("payload %d bytes from %d input", len(p), len(b))
		}
		// Re-encode: the header is reproduced (reserved bits and offset
		// padding bytes aside) and parses to the same fields and payload.
		out := AppendHeader(nil, h, len(p))
		if len(out) != h.Len() {
			t.Fatalf("AppendHeader wrote %d bytes, Len() = %d", len(out), h.Len())
		}
		out = append(out, p...)
		h2, p2, err := ParseHeader(out)
		if err != nil {
			t.Fatalf("re-parse of %x: %v (header %+v)", out, err, h)
		}
		if h2 != h || !bytes.Equal(p, p2) {
			t.Fatalf("round trip: %+v %x vs %+v %x", h, p, h2, p2)
		}
	})
}

func FuzzParseMessage(f *testing.F) {
	f.Add(sccrqBody, []byte(nil))
	f.Add(icrqBody, []byte("secret"))
	hidden := []byte{0x80, 0x08, 0, 0, 0, 0, 0, 12}
	hidden = append(hidden, rvAVP(rv0to15)...)
	hidden = append(hidden, 0x40, 28, 0, 0, 0, 30)
	hidden = append(hidden, []byte{0xb0, 0x33, 0x97, 0x2b, 0x37, 0x82, 0xdb, 0xd5, 0x2f, 0x61, 0xff, 0xc8, 0x14, 0x24, 0xce, 0x9d, 0x97, 0x66, 0x01, 0x5d, 0xcc, 0xec}...)
	f.Add(hidden, []byte("secret"))
	f.Add([]byte{0x80, 0x08, 0, 0, 0, 0, 0, 10, 0x80, 0x07, 0x00, 0x09, 0, 1, 0xbb}, []byte(nil))
	f.Fuzz(func(t *testing.T, body, secret []byte) {
		m, err := ParseMessage(body, secret)
		var u *UnknownAVPError
		if err != nil && !errors.As(err, &u) {
			if m != nil {
				t.Fatalf("message returned with hard error %v", err)
			}
			return
		}
		if m == nil {
			if len(body) != 0 {
				t.Fatalf("nil message for %d-byte body", len(body))
			}
			return
		}
		out, aerr := AppendMessage(nil, m, secret, bytes.NewReader(bytes.Repeat([]byte{0x5a}, 1<<16)))
		if aerr != nil {
			t.Fatalf("AppendMessage of a parsed message: %v", aerr)
		}
		m2, err2 := ParseMessage(out, secret)
		// Re-encoding cannot add an unknown AVP (it may drop one with
		// reserved bits set, which ParseMessage reports but does not keep).
		if err2 != nil && err == nil {
			t.Fatalf("re-parse error %v for a message that parsed cleanly", err2)
		}
		if err := equalMessages(m, m2); err != nil {
			t.Fatalf("round trip: %v", err)
		}
		// Decode into a message that held another one gives the same.
		var r Message
		if err := r.Decode(icrqBody, nil); err != nil {
			t.Fatal(err)
		}
		if derr := r.Decode(body, secret); (derr == nil) != (err == nil) {
			t.Fatalf("Decode error %v, ParseMessage error %v", derr, err)
		}
		if err := equalMessages(m, &r); err != nil {
			t.Fatalf("Decode into a used message: %v", err)
		}
	})
}

func FuzzHidden(f *testing.F) {
	f.Add(uint16(30), []byte("secret"), rv0to15, []byte("0123456789abcdefghij"))
	f.Add(uint16(33), []byte{}, []byte{1}, []byte{})
	f.Fuzz(func(t *testing.T, typ uint16, secret, rv, value []byte) {
		if len(value) > MaxAVPLen-AVPHeaderLen-2 || len(rv) == 0 || len(rv) > MaxAVPLen-AVPHeaderLen {
			return
		}
		at := AVPType(typ)
		// Reveal never panics on arbitrary ciphertext.
		_, _ = reveal(at, value, secret, rv)
		sub := append([]byte{byte(len(value) >> 8), byte(len(value))}, value...)
		hide(at, sub, secret, rv)
		got, err := reveal(at, sub, secret, rv)
		if err != nil || !bytes.Equal(got, value) {
			t.Fatalf("reveal(hide(%x)) = %x, %v", value, got, err)
		}
		// Through the message codec with an explicit Random Vector.
		if at == AVPRandomVector || at == AVPMessageType {
			return
		}
		m := &Message{Type: MsgICCN, AVPs: []AVP{
			{Mandatory: true, Type: AVPRandomVector, Value: rv},
			{Hidden: true, Type: at, Value: value},
		}}
		out, err := AppendMessage(nil, m, secret, bytes.NewReader(make([]byte, 32)))
		if err != nil {
			t.Fatal(err)
		}
		m2, err := ParseMessage(out, secret)
		var u *UnknownAVPError
		if err != nil && !errors.As(err, &u) {
			t.Fatal(err)
		}
		if len(m2.AVPs) != 1 || !bytes.Equal(m2.AVPs[0].Value, value) || !m2.AVPs[0].Hidden {
			t.Fatalf("message round trip: %+v", m2.AVPs)
		}
	})
}
