package radius

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"sync"

	"layeh.com/radius"
)

// Message-Authenticator (RFC 3579 3.2, RFC 5176 3.3) and Response
// Authenticator handling, which layeh.com/radius leaves to its users.

var errNoMessageAuthenticator = errors.New("no Message-Authenticator")

// encodeRequest encodes p with a Message-Authenticator as its first
// attribute (BlastRADIUS, CVE-2024-3596) when withMA, and computes the
// authenticators: for Access-Request and Status-Server p.Authenticator
// must hold a random Request Authenticator; for Accounting, Disconnect and
// CoA requests the Request Authenticator is the MD5 of the packet
// (RFC 2866 3), computed after the Message-Authenticator over a zero
// authenticator field.
func encodeRequest(p *radius.Packet, withMA bool) ([]byte, error) {
	if withMA {
		p.Attributes.Del(attrMessageAuthenticator)
		p.Attributes = append(radius.Attributes{{Type: attrMessageAuthenticator, Attribute: make([]byte, 16)}}, p.Attributes...)
	}
	b, err := p.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("encoding %v: %w", p.Code, err)
	}
	random := p.Code == radius.CodeAccessRequest || p.Code == radius.CodeStatusServer
	if !random {
		clear(b[4:20])
	}
	if withMA {
		signMA(b, p.Secret)
	}
	if !random {
		h := md5.New()
		h.Write(b)
		h.Write(p.Secret)
		h.Sum(b[4:4])
		copy(p.Authenticator[:], b[4:20])
	}
	return b, nil
}

// encodeResponse encodes a response to a request whose authenticator is
// reqAuth, with a Message-Authenticator when withMA.
func encodeResponse(p *radius.Packet, reqAuth [16]byte, withMA bool) ([]byte, error) {
	if withMA {
		p.Attributes.Del(attrMessageAuthenticator)
		p.Attributes = append(radius.Attributes{{Type: attrMessageAuthenticator, Attribute: make([]byte, 16)}}, p.Attributes...)
	}
	b, err := p.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("encoding %v: %w", p.Code, err)
	}
	copy(b[4:20], reqAuth[:])
	if withMA {
		signMA(b, p.Secret)
	}
	h := md5.New()
	h.Write(b)
	h.Write(p.Secret)
	h.Sum(b[4:4])
	return b, nil
}

// signMA fills the Message-Authenticator of the encoded packet b (its
// authenticator field already holding what RFC 3579 says to hash).
func signMA(b, secret []byte) {
	off, ok := findAttr(b, attrMessageAuthenticator)
	if !ok {
		return
	}
	clear(b[off : off+16])
	m := hmac.New(md5.New, secret)
	m.Write(b)
	m.Sum(b[off:off])
}

// findAttr returns the offset of the value of the first attribute t of the
// encoded packet b, checking every length on the way.
func findAttr(b []byte, t radius.Type) (int, bool) {
	if len(b) < 20 {
		return 0, false
	}
	n := int(binary.BigEndian.Uint16(b[2:4]))
	if n > len(b) {
		return 0, false
	}
	for i := 20; i+2 <= n; {
		l := int(b[i+1])
		if l < 2 || i+l > n {
			return 0, false
		}
		if radius.Type(b[i]) == t {
			return i + 2, true
		}
		i += l
	}
	return 0, false
}

// checkMA verifies the Message-Authenticator of b, whose authenticator
// field must be replaced by auth for the computation (the Request
// Authenticator for responses, zeros for accounting/DAE requests, the
// packet's own for Access-Request). Missing: errNoMessageAuthenticator.
func checkMA(b []byte, auth []byte, secret []byte) error {
	off, ok := findAttr(b, attrMessageAuthenticator)
	if !ok {
		return errNoMessageAuthenticator
	}
	if b[off-1] != 18 {
		return errors.New("Message-Authenticator has the wrong length")
	}
	n := int(binary.BigEndian.Uint16(b[2:4]))
	h := md5s.Get().(*md5State)
	defer md5s.Put(h)
	h.hmacBegin(secret)
	h.h.Write(b[:4])
	h.h.Write(auth[:16])
	h.h.Write(b[20:off])
	h.h.Write(zero16[:])
	h.h.Write(b[off+16 : n])
	h.hmacEnd(h.mac[:])
	if !hmac.Equal(h.mac[:], b[off:off+16]) {
		return errors.New("Message-Authenticator is wrong")
	}
	return nil
}

// checkReply checks that resp answers the encoded request req: length,
// Identifier, Response Authenticator, Message-Authenticator (which must
// be valid when present and, if requireMA, present on Access-Accept,
// -Reject and -Challenge) and the framing of the attributes. It returns
// resp cut to its length field; it allocates nothing when resp is valid.
func checkReply(resp, req, secret []byte, requireMA bool) ([]byte, error) {
	if len(resp) < 20 {
		return nil, fmt.Errorf("reply of %d bytes is shorter than a RADIUS header", len(resp))
	}
	n := int(binary.BigEndian.Uint16(resp[2:4]))
	if n < 20 || n > len(resp) || n > radius.MaxPacketLength {
		return nil, fmt.Errorf("reply length field %d does not match the %d bytes received", n, len(resp))
	}
	resp = resp[:n]
	if resp[1] != req[1] {
		return nil, fmt.Errorf("reply Identifier %d does not match the request's %d", resp[1], req[1])
	}
	if !authenticResponse(resp, req, secret) {
		return nil, errors.New("reply has a wrong Response Authenticator (wrong secret or forged)")
	}
	if err := checkMA(resp, req[4:20], secret); err != nil {
		if !errors.Is(err, errNoMessageAuthenticator) {
			return nil, fmt.Errorf("reply: %w", err)
		}
		code := radius.Code(resp[0])
		if requireMA && (code == radius.CodeAccessAccept || code == radius.CodeAccessReject || code == radius.CodeAccessChallenge) {
			return nil, fmt.Errorf("%v without Message-Authenticator (required; BlastRADIUS)", code)
		}
	}
	if err := checkAttrs(resp[20:]); err != nil {
		return nil, fmt.Errorf("malformed reply: %w", err)
	}
	return resp, nil
}

// authenticResponse reports whether the Response Authenticator of resp
// (RFC 2865 3: MD5 of Code, Identifier, Length, the Request
// Authenticator, the attributes and the secret) is right.
func authenticResponse(resp, req, secret []byte) bool {
	if len(resp) < 20 || len(req) < 20 || len(secret) == 0 {
		return false
	}
	h := md5s.Get().(*md5State)
	defer md5s.Put(h)
	h.h.Reset()
	h.h.Write(resp[:4])
	h.h.Write(req[4:20])
	h.h.Write(resp[20:])
	h.h.Write(secret)
	var sum [md5.Size]byte
	h.sum(sum[:])
	return subtle.ConstantTimeCompare(sum[:], resp[4:20]) == 1
}

// checkAttrs checks the framing of an attribute list: every length at
// least 2 and within the bytes present.
func checkAttrs(b []byte) error {
	for len(b) > 0 {
		if len(b) < 2 {
			return errors.New("attribute header cut short")
		}
		l := int(b[1])
		if l < 2 || l > len(b) {
			return fmt.Errorf("attribute %d of length %d with %d bytes left", b[0], l, len(b))
		}
		b = b[l:]
	}
	return nil
}

// verifyResponse is checkReply, then the reply parsed (DAE client tests).
func verifyResponse(resp, req, secret []byte, requireMA bool) (*radius.Packet, error) {
	b, err := checkReply(resp, req, secret, requireMA)
	if err != nil {
		return nil, err
	}
	p, err := radius.Parse(b, secret)
	if err != nil {
		return nil, fmt.Errorf("malformed reply: %w", err)
	}
	return p, nil
}

// verifyRequest checks an Accounting, Disconnect or CoA request: its
// Request Authenticator and, when present (or required), its
// Message-Authenticator.
func verifyRequest(b, secret []byte, requireMA bool) (*radius.Packet, error) {
	if len(b) < 20 {
		return nil, fmt.Errorf("request of %d bytes is shorter than a RADIUS header", len(b))
	}
	n := int(binary.BigEndian.Uint16(b[2:4]))
	if n < 20 || n > len(b) || n > radius.MaxPacketLength {
		return nil, fmt.Errorf("request length field %d does not match the %d bytes received", n, len(b))
	}
	b = b[:n]
	if !radius.IsAuthenticRequest(b, secret) {
		return nil, errors.New("wrong Request Authenticator (wrong secret or forged)")
	}
	var zero [16]byte
	if err := checkMA(b, zero[:], secret); err != nil && (requireMA || !errors.Is(err, errNoMessageAuthenticator)) {
		return nil, err
	}
	return radius.Parse(b, secret)
}

// errTooLong: the request does not fit in a RADIUS packet.
var errTooLong = errors.New("request longer than the 4096 bytes of a RADIUS packet")

// appendRequest appends the encoded request code/id to b: the header, a
// Message-Authenticator as the first attribute when withMA, then the
// attribute lists of parts. reqAuth is the random Request Authenticator
// of an Access-Request or Status-Server; nil for the requests whose
// Request Authenticator is the MD5 of the packet (RFC 2866 3: accounting,
// Disconnect, CoA).
func appendRequest(b []byte, code radius.Code, id uint8, reqAuth []byte, secret []byte, withMA bool, parts ...[]byte) ([]byte, error) {
	n := 20
	if withMA {
		n += 18
	}
	for _, p := range parts {
		n += len(p)
	}
	if n > maxPacket {
		return nil, fmt.Errorf("%v of %d bytes: %w", code, n, errTooLong)
	}
	start := len(b)
	b = append(b, byte(code), id, byte(n>>8), byte(n))
	if reqAuth != nil {
		b = append(b, reqAuth[:16]...)
	} else {
		b = append(b, make([]byte, 16)...)
	}
	if withMA {
		b = append(b, byte(attrMessageAuthenticator), 18)
		b = append(b, make([]byte, 16)...)
	}
	for _, p := range parts {
		b = append(b, p...)
	}
	pkt := b[start:]
	h := md5s.Get().(*md5State)
	defer md5s.Put(h)
	if withMA {
		h.hmac(pkt[22:38], secret, pkt)
	}
	if reqAuth == nil {
		h.h.Reset()
		h.h.Write(pkt)
		h.h.Write(secret)
		h.sum(pkt[4:20])
	}
	return b, nil
}

// md5State is a reusable MD5 for the request hot path (crypto/hmac and
// md5.New allocate on every call).
type md5State struct {
	h   hash.Hash
	out [md5.Size]byte
	pad [64]byte
	key [64]byte // the HMAC key, padded
	mac [md5.Size]byte
}

// zero16 is a zero authenticator or Message-Authenticator (never written).
var zero16 [16]byte

var md5s = sync.Pool{New: func() any { return &md5State{h: md5.New()} }}

// sum writes the digest of what was written to dst (16 bytes).
func (m *md5State) sum(dst []byte) {
	copy(dst, m.h.Sum(m.out[:0]))
}

// hmac writes HMAC-MD5(key, msg) (RFC 2104) to dst (16 bytes).
func (m *md5State) hmac(dst, key, msg []byte) {
	m.hmacBegin(key)
	m.h.Write(msg)
	m.hmacEnd(dst)
}

// hmacBegin starts HMAC-MD5 with key: write the message to m.h, then
// call hmacEnd.
func (m *md5State) hmacBegin(key []byte) {
	if len(key) > len(m.key) {
		m.h.Reset()
		m.h.Write(key)
		key = m.h.Sum(m.out[:0])
	}
	clear(m.key[:])
	copy(m.key[:], key)
	for i := range m.pad {
		m.pad[i] = m.key[i] ^ 0x36
	}
	m.h.Reset()
	m.h.Write(m.pad[:])
}

// hmacEnd writes the HMAC of what was written since hmacBegin to dst.
func (m *md5State) hmacEnd(dst []byte) {
	inner := m.h.Sum(m.out[:0])
	for i := range m.pad {
		m.pad[i] = m.key[i] ^ 0x5c
	}
	m.h.Reset()
	m.h.Write(m.pad[:])
	m.h.Write(inner)
	m.sum(dst)
}
