package radius

import (
	"errors"
	"testing"

	"layeh.com/radius"
)

// FuzzReply feeds arbitrary bytes as the reply to a fixed Access-Request:
// verification and attribute parsing never panic, and whatever passes
// verification parses into a result or an ErrMalformed error.
func FuzzReply(f *testing.F) {
	sec := []byte(secret)
	p := radius.New(radius.CodeAccessRequest, sec)
	p.Identifier = 9
	p.Add(attrUserName, []byte("alice"))
	req, err := encodeRequest(p, true)
	if err != nil {
		f.Fatal(err)
	}
	mk := func(withMA bool, attrs ...*radius.AVP) []byte {
		r := p.Response(radius.CodeAccessAccept)
		r.Attributes = attrs
		b, _ := encodeResponse(r, p.Authenticator, withMA)
		return b
	}
	f.Add(mk(true, avp(attrFramedIPAddress, []byte{10, 0, 0, 1}), avp(attrSessionTimeout, u32(5))))
	f.Add(mk(false, vsa(msCHAP2Success, append([]byte{1}, "S=0123456789012345678901234567890123456789"...))))
	f.Add(mk(true, avp(attrFramedIPv6Prefix, []byte{0, 64, 0x20, 1, 0xd, 0xb8, 0, 0, 0, 0}), avp(attrFramedRoute, []byte("10.0.0.0/8"))))
	f.Add([]byte{2, 9, 0, 20})
	f.Fuzz(func(t *testing.T, b []byte) {
		rp, err := checkReply(b, req, sec, false)
		if err != nil {
			return
		}
		if _, err := parseReply(radius.Code(rp[0]), rp[20:]); err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatalf("parseReply error not ErrMalformed: %v", err)
		}
	})
}

// FuzzParseAttributes skips the authenticators: any attribute bytes.
// parseReply fails (ErrMalformed) exactly when checkAttrs or layeh's
// parser rejects the framing, or on a malformed known attribute.
func FuzzParseAttributes(f *testing.F) {
	f.Add([]byte{8, 6, 10, 0, 0, 1})
	f.Add([]byte{26, 12, 0, 0, 1, 0x37, 28, 6, 1, 2, 3, 4})
	f.Add([]byte{25, 5, 'a', 'b', 'c', 25, 2})
	f.Add([]byte{8, 1, 10})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parseReply(radius.CodeAccessAccept, b)
		_, lerr := radius.ParseAttributes(b)
		if cerr := checkAttrs(b); (cerr == nil) != (lerr == nil) {
			t.Fatalf("checkAttrs %v, layeh ParseAttributes %v", cerr, lerr)
		} else if cerr != nil {
			if err == nil {
				t.Fatal("bad framing parsed without error")
			}
			return
		}
		if err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatalf("error not ErrMalformed: %v", err)
		}
		if err == nil && !r.Accept {
			t.Fatal("Accept lost")
		}
	})
}
