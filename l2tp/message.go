package l2tp

import (
	"crypto/md5"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// More parse errors (wrapped; test with errors.Is).
var (
	// ErrNoMessageType: the first AVP is not an unhidden IETF Message Type
	// AVP with a 2-byte value, or a second Message Type AVP follows.
	ErrNoMessageType = errors.New("message type AVP must be first and only once")
	// ErrHidden: a hidden AVP cannot be revealed (no secret, no preceding
	// Random Vector, a deciphered length beyond the AVP, or an AVP that must
	// never be hidden).
	ErrHidden = errors.New("cannot reveal hidden AVP")
	// ErrAVPValue: an AVP value is malformed for its type.
	ErrAVPValue = errors.New("malformed AVP value")
)

// UnknownAVPError reports an AVP this package does not recognise. ParseMessage
// returns it, together with the fully parsed message, for the first unknown
// AVP with the M bit set: RFC 2661 4.1 requires the session (or tunnel) to be
// cleared, with ErrCodeUnknownMandatory.
type UnknownAVPError struct {
	Vendor    uint16
	Type      uint16
	Mandatory bool
}

func (e *UnknownAVPError) Error() string {
	m := ""
	if e.Mandatory {
		m = "mandatory "
	}
	return fmt.Sprintf("l2tp: unknown %sAVP vendor %d type %d", m, e.Vendor, e.Type)
}

// AVP is one attribute-value pair. Values returned by ParseMessage alias the
// parsed buffer, except revealed hidden values which are fresh copies.
type AVP struct {
	Mandatory bool
	Hidden    bool   // on receive: was hidden (Value is already revealed); on send: hide it
	Vendor    uint16 // 0 = IETF
	Type      AVPType
	Value     []byte
}

// Known reports whether a is an AVP this package recognises (dispatched on
// vendor and type). Unknown optional AVPs are kept in Message.AVPs.
func (a AVP) Known() bool { return avpKnown(a.Vendor, a.Type) }

// vendorAVPs lists recognised vendor-specific AVPs, keyed by vendor then type.
// None are recognised yet; adding one here makes the parser accept it with
// the M bit set.
var vendorAVPs = map[uint16]map[AVPType]string{}

func avpKnown(vendor uint16, t AVPType) bool {
	if vendor == 0 {
		return t.Known()
	}
	_, ok := vendorAVPs[vendor][t]
	return ok
}

// Message is a decoded control message.
type Message struct {
	Type MessageType
	AVPs []AVP // in wire order, Message Type and Random Vector AVPs excluded
	// TypeMandatory is the M bit of the received Message Type AVP: an
	// unknown message type with it set must clear the tunnel, without it the
	// message may be ignored (RFC 2661 4.4.1). AppendMessage always sets M.
	TypeMandatory bool
	// vals backs the values AddUint16/32/64, AddString and AddResultCode
	// append (one array for all of them, reused after Reset).
	vals []byte
}

// Reset empties m for building (or decoding) another message of type t,
// keeping its arrays: values added to m before are overwritten by later
// Add calls, so nothing may keep them across a Reset.
func (m *Message) Reset(t MessageType) {
	clear(m.AVPs) // drop references to other buffers
	*m = Message{Type: t, AVPs: m.AVPs[:0], vals: m.vals[:0]}
}

// addValue appends v to m's value array and returns it, capacity-limited
// so that appending to one value cannot overwrite the next.
func (m *Message) addValue(n int) []byte {
	start := len(m.vals)
	if cap(m.vals)-start < n {
		// A new array: values added before keep the old one.
		m.vals = make([]byte, 0, max(2*cap(m.vals), n, 32))
		start = 0
	}
	m.vals = m.vals[:start+n]
	return m.vals[start : start+n : start+n]
}

// Find returns the first IETF AVP of type t.
func (m *Message) Find(t AVPType) (AVP, bool) {
	return m.FindVendor(0, t)
}

// FindVendor returns the first AVP of the given vendor and type.
func (m *Message) FindVendor(vendor uint16, t AVPType) (AVP, bool) {
	if m == nil {
		return AVP{}, false
	}
	for _, a := range m.AVPs {
		if a.Type == t && a.Vendor == vendor {
			return a, true
		}
	}
	return AVP{}, false
}

func (m *Message) fixed(t AVPType, n int) ([]byte, bool, error) {
	a, ok := m.Find(t)
	if !ok {
		return nil, false, nil
	}
	if len(a.Value) != n {
		return nil, true, fmt.Errorf("l2tp: %s AVP value is %d bytes, want %d: %w", t, len(a.Value), n, ErrAVPValue)
	}
	return a.Value, true, nil
}

// Uint16 returns the value of the first IETF AVP of type t, whether it is
// present, and an error if it is present but not exactly 2 bytes.
func (m *Message) Uint16(t AVPType) (uint16, bool, error) {
	v, ok, err := m.fixed(t, 2)
	if !ok || err != nil {
		return 0, ok, err
	}
	return binary.BigEndian.Uint16(v), true, nil
}

// Uint32 is Uint16 for 4-byte values.
func (m *Message) Uint32(t AVPType) (uint32, bool, error) {
	v, ok, err := m.fixed(t, 4)
	if !ok || err != nil {
		return 0, ok, err
	}
	return binary.BigEndian.Uint32(v), true, nil
}

// Uint64 is Uint16 for 8-byte values (Tie Breaker).
func (m *Message) Uint64(t AVPType) (uint64, bool, error) {
	v, ok, err := m.fixed(t, 8)
	if !ok || err != nil {
		return 0, ok, err
	}
	return binary.BigEndian.Uint64(v), true, nil
}

// String returns the value of the first IETF AVP of type t as a string.
func (m *Message) String(t AVPType) (string, bool) {
	a, ok := m.Find(t)
	if !ok {
		return "", false
	}
	return string(a.Value), true
}

// Bytes returns the value of the first IETF AVP of type t (aliased, not copied).
func (m *Message) Bytes(t AVPType) ([]byte, bool) {
	a, ok := m.Find(t)
	return a.Value, ok
}

// Add appends a to the message.
func (m *Message) Add(a AVP) { m.AVPs = append(m.AVPs, a) }

// AddUint16 appends an IETF AVP with a 2-byte value.
func (m *Message) AddUint16(t AVPType, mandatory bool, v uint16) {
	b := m.addValue(2)
	binary.BigEndian.PutUint16(b, v)
	m.Add(AVP{Mandatory: mandatory, Type: t, Value: b})
}

// AddUint32 appends an IETF AVP with a 4-byte value.
func (m *Message) AddUint32(t AVPType, mandatory bool, v uint32) {
	b := m.addValue(4)
	binary.BigEndian.PutUint32(b, v)
	m.Add(AVP{Mandatory: mandatory, Type: t, Value: b})
}

// AddUint64 appends an IETF AVP with an 8-byte value.
func (m *Message) AddUint64(t AVPType, mandatory bool, v uint64) {
	b := m.addValue(8)
	binary.BigEndian.PutUint64(b, v)
	m.Add(AVP{Mandatory: mandatory, Type: t, Value: b})
}

// AddString appends an IETF AVP with a string value.
func (m *Message) AddString(t AVPType, mandatory bool, v string) {
	b := m.addValue(len(v))
	copy(b, v)
	m.Add(AVP{Mandatory: mandatory, Type: t, Value: b})
}

// AddBytes appends an IETF AVP with value v (not copied).
func (m *Message) AddBytes(t AVPType, mandatory bool, v []byte) {
	m.Add(AVP{Mandatory: mandatory, Type: t, Value: v})
}

// ParseMessage decodes a control message body (the bytes after the header;
// empty = ZLB -> returns (nil, nil)). secret is the tunnel secret used to
// reveal hidden AVPs (nil: a hidden AVP is an error). Message Type must be
// the first AVP. An unknown AVP with the M bit set makes it return the
// parsed message together with an *UnknownAVPError (RFC 2661 4.1); unknown
// optional AVPs are kept in AVPs (AVP.Known reports false). An AVP with
// reserved header bits set is treated as unrecognised and dropped (an
// *UnknownAVPError if its M bit is set). Whether the message type itself is known is
// left to the caller (MessageType.Known).
func ParseMessage(body []byte, secret []byte) (*Message, error) {
	if len(body) == 0 {
		return nil, nil
	}
	m := new(Message)
	if err := m.Decode(body, secret); err != nil {
		if _, ok := err.(*UnknownAVPError); ok {
			return m, err
		}
		return nil, err
	}
	return m, nil
}

// Decode is ParseMessage into m, reusing m's arrays (see Reset): for a
// caller that parses one message after another. body must not be empty (a
// ZLB is the caller's to recognise). It returns what ParseMessage returns
// as its error: with an *UnknownAVPError m is the fully parsed message;
// after any other error m's content is unspecified.
func (m *Message) Decode(body []byte, secret []byte) error {
	if len(body) == 0 {
		return fmt.Errorf("l2tp: empty message body (a ZLB): %w", ErrNoMessageType)
	}
	a, n, err := parseAVPHeader(body, 0)
	if err != nil {
		return err
	}
	if a.Vendor != 0 || a.Type != AVPMessageType || a.Hidden || len(a.Value) != 2 {
		return fmt.Errorf("l2tp: first AVP is vendor %d type %s (%d bytes, hidden %v): %w",
			a.Vendor, a.Type, len(a.Value), a.Hidden, ErrNoMessageType)
	}
	m.Reset(MessageType(binary.BigEndian.Uint16(a.Value)))
	m.TypeMandatory = a.Mandatory
	if c := countAVPs(body[n:]); c > cap(m.AVPs) {
		m.AVPs = make([]AVP, 0, c)
	}
	var (
		rv      []byte
		unknown *UnknownAVPError
	)
	for off := n; off < len(body); {
		a, n, err := parseAVPHeader(body, off)
		if err != nil {
			return fmt.Errorf("l2tp: %s: %w", m.Type, err)
		}
		off += n
		if binary.BigEndian.Uint16(body[off-n:])&avpReservedMask != 0 {
			// Reserved bits set: treat as unrecognised and do not keep it,
			// as its meaning cannot be re-encoded.
			if unknown == nil && a.Mandatory {
				unknown = &UnknownAVPError{Vendor: a.Vendor, Type: uint16(a.Type), Mandatory: true}
			}
			continue
		}
		if a.Vendor == 0 {
			switch a.Type {
			case AVPMessageType:
				return fmt.Errorf("l2tp: %s: second Message Type AVP at offset %d: %w", m.Type, off-n, ErrNoMessageType)
			case AVPRandomVector:
				if a.Hidden {
					return fmt.Errorf("l2tp: %s: Random Vector AVP marked hidden: %w", m.Type, ErrHidden)
				}
				if len(a.Value) == 0 {
					return fmt.Errorf("l2tp: %s: empty Random Vector AVP: %w", m.Type, ErrAVPValue)
				}
				rv = a.Value
				continue
			}
		}
		if a.Hidden {
			if secret == nil {
				return fmt.Errorf("l2tp: %s: hidden %s AVP but no tunnel secret: %w", m.Type, a.Type, ErrHidden)
			}
			if rv == nil {
				return fmt.Errorf("l2tp: %s: hidden %s AVP without a preceding Random Vector: %w", m.Type, a.Type, ErrHidden)
			}
			v, err := reveal(a.Type, a.Value, secret, rv)
			if err != nil {
				return fmt.Errorf("l2tp: %s: hidden %s AVP: %w", m.Type, a.Type, err)
			}
			a.Value = v
		}
		if unknown == nil && a.Mandatory && !avpKnown(a.Vendor, a.Type) {
			unknown = &UnknownAVPError{Vendor: a.Vendor, Type: uint16(a.Type), Mandatory: true}
		}
		m.AVPs = append(m.AVPs, a)
	}
	if unknown != nil {
		return unknown
	}
	return nil
}

// parseAVPHeader decodes the AVP at b[off:] and returns it and its length.
func parseAVPHeader(b []byte, off int) (AVP, int, error) {
	rest := len(b) - off
	if rest < AVPHeaderLen {
		return AVP{}, 0, fmt.Errorf("AVP at offset %d: %d bytes left, header needs %d: %w", off, rest, AVPHeaderLen, ErrTruncated)
	}
	fl := binary.BigEndian.Uint16(b[off:])
	l := int(fl & avpLengthMask)
	if l < AVPHeaderLen {
		return AVP{}, 0, fmt.Errorf("AVP at offset %d: length %d below %d: %w", off, l, AVPHeaderLen, ErrBadLength)
	}
	if l > rest {
		return AVP{}, 0, fmt.Errorf("AVP at offset %d: length %d exceeds the %d bytes left: %w", off, l, rest, ErrTruncated)
	}
	return AVP{
		Mandatory: fl&avpFlagM != 0,
		Hidden:    fl&avpFlagH != 0,
		Vendor:    binary.BigEndian.Uint16(b[off+2:]),
		Type:      AVPType(binary.BigEndian.Uint16(b[off+4:])),
		Value:     b[off+AVPHeaderLen : off+l : off+l],
	}, l, nil
}

// countAVPs counts the AVPs in b other than Random Vectors, stopping at the
// first malformed one (the real parse reports it).
func countAVPs(b []byte) int {
	c := 0
	for off := 0; len(b)-off >= AVPHeaderLen; {
		l := int(binary.BigEndian.Uint16(b[off:]) & avpLengthMask)
		if l < AVPHeaderLen || l > len(b)-off {
			break
		}
		if binary.BigEndian.Uint16(b[off+2:]) != 0 || AVPType(binary.BigEndian.Uint16(b[off+4:])) != AVPRandomVector {
			c++
		}
		off += l
	}
	return c
}

// randomVectorLen is the size of the Random Vector AppendMessage generates.
const randomVectorLen = 16

// AppendMessage encodes m's AVPs (Message Type first) appending to b. A nil m
// encodes a ZLB (nothing). AVPs with Hidden set are hidden with secret (RFC
// 2661 4.3): a Random Vector AVP read from rnd (crypto/rand when nil) is
// inserted before the first one, and again before a hidden AVP whose type
// already used the current vector, so no key stream is reused; the hidden
// value is padded with random bytes to a multiple of 16. A Random Vector AVP
// in m.AVPs is written as is and becomes the current vector. Message Type and
// Random Vector are never hidden.
func AppendMessage(b []byte, m *Message, secret []byte, rnd io.Reader) ([]byte, error) {
	if m == nil {
		return b, nil
	}
	b = appendAVPHeader(b, true, false, 0, AVPMessageType, 2)
	b = binary.BigEndian.AppendUint16(b, uint16(m.Type))
	var (
		rv       []byte
		usedArr  [8]AVPType
		usedWith = usedArr[:0] // hidden types already keyed with rv
	)
	if rnd == nil {
		rnd = rand.Reader
	}
	for i, a := range m.AVPs {
		if a.Vendor == 0 && (a.Type == AVPMessageType || a.Type == AVPRandomVector) && a.Hidden {
			return nil, fmt.Errorf("l2tp: %s: AVP %d (%s) must not be hidden: %w", m.Type, i, a.Type, ErrHidden)
		}
		if a.Vendor == 0 && a.Type == AVPRandomVector {
			rv, usedWith = a.Value, usedWith[:0]
		}
		if !a.Hidden {
			if len(a.Value) > MaxAVPLen-AVPHeaderLen {
				return nil, fmt.Errorf("l2tp: %s: AVP %d (%s) value of %d bytes exceeds %d: %w",
					m.Type, i, a.Type, len(a.Value), MaxAVPLen-AVPHeaderLen, ErrBadLength)
			}
			b = appendAVPHeader(b, a.Mandatory, false, a.Vendor, a.Type, len(a.Value))
			b = append(b, a.Value...)
			continue
		}
		if secret == nil {
			return nil, fmt.Errorf("l2tp: %s: AVP %d (%s) to be hidden but no tunnel secret: %w", m.Type, i, a.Type, ErrHidden)
		}
		if len(a.Value)+2 > MaxAVPLen-AVPHeaderLen {
			return nil, fmt.Errorf("l2tp: %s: hidden AVP %d (%s) value of %d bytes exceeds %d: %w",
				m.Type, i, a.Type, len(a.Value), MaxAVPLen-AVPHeaderLen-2, ErrBadLength)
		}
		reuse := rv == nil
		for _, t := range usedWith {
			if t == a.Type {
				reuse = true
				break
			}
		}
		if reuse {
			b = appendAVPHeader(b, true, false, 0, AVPRandomVector, randomVectorLen)
			start := len(b)
			b = append(b, make([]byte, randomVectorLen)...)
			if _, err := io.ReadFull(rnd, b[start:]); err != nil {
				return nil, fmt.Errorf("l2tp: %s: reading Random Vector: %w", m.Type, err)
			}
			rv, usedWith = b[start:], usedWith[:0]
		}
		usedWith = append(usedWith, a.Type)
		n := (2 + len(a.Value) + 15) &^ 15
		n = min(n, MaxAVPLen-AVPHeaderLen)
		b = appendAVPHeader(b, a.Mandatory, true, a.Vendor, a.Type, n)
		start := len(b)
		b = binary.BigEndian.AppendUint16(b, uint16(len(a.Value)))
		b = append(b, a.Value...)
		pad := n - 2 - len(a.Value)
		b = append(b, make([]byte, pad)...)
		if pad > 0 {
			if _, err := io.ReadFull(rnd, b[len(b)-pad:]); err != nil {
				return nil, fmt.Errorf("l2tp: %s: reading hidden AVP padding: %w", m.Type, err)
			}
		}
		hide(a.Type, b[start:], secret, rv)
	}
	return b, nil
}

func appendAVPHeader(b []byte, mandatory, hidden bool, vendor uint16, t AVPType, valueLen int) []byte {
	fl := uint16(AVPHeaderLen + valueLen)
	if mandatory {
		fl |= avpFlagM
	}
	if hidden {
		fl |= avpFlagH
	}
	b = binary.BigEndian.AppendUint16(b, fl)
	b = binary.BigEndian.AppendUint16(b, vendor)
	return binary.BigEndian.AppendUint16(b, uint16(t))
}

// hide enciphers sub (Original Length, value, padding) in place (RFC 2661
// 4.3): b1 = MD5(type || secret || RV), bi = MD5(secret || c(i-1)),
// ci = pi XOR bi; a final partial block uses the leading key bytes.
func hide(t AVPType, sub, secret, rv []byte) {
	h := md5.New()
	var key [md5.Size]byte
	var tb [2]byte
	binary.BigEndian.PutUint16(tb[:], uint16(t))
	h.Write(tb[:])
	h.Write(secret)
	h.Write(rv)
	for i := 0; i < len(sub); i += md5.Size {
		h.Sum(key[:0])
		blk := sub[i:min(i+md5.Size, len(sub))]
		for j := range blk {
			blk[j] ^= key[j]
		}
		h.Reset()
		h.Write(secret)
		h.Write(blk)
	}
}

// reveal deciphers a hidden AVP value into a new slice and returns the
// original value (without Original Length and padding).
func reveal(t AVPType, c, secret, rv []byte) ([]byte, error) {
	if len(c) < 2 {
		return nil, fmt.Errorf("%d bytes, need at least 2: %w", len(c), ErrHidden)
	}
	p := make([]byte, len(c))
	h := md5.New()
	var key [md5.Size]byte
	var tb [2]byte
	binary.BigEndian.PutUint16(tb[:], uint16(t))
	h.Write(tb[:])
	h.Write(secret)
	h.Write(rv)
	for i := 0; i < len(c); i += md5.Size {
		h.Sum(key[:0])
		blk := c[i:min(i+md5.Size, len(c))]
		for j := range blk {
			p[i+j] = blk[j] ^ key[j]
		}
		h.Reset()
		h.Write(secret)
		h.Write(blk)
	}
	n := int(binary.BigEndian.Uint16(p))
	if n > len(p)-2 {
		return nil, fmt.Errorf("deciphered length %d exceeds the %d bytes present (wrong secret?): %w", n, len(p)-2, ErrHidden)
	}
	return p[2 : 2+n : 2+n], nil
}

// ChallengeResponse computes the tunnel authentication response (RFC 2661
// 4.4.3, 5.1.1): MD5(ID || secret || challenge) with ID the message type of
// the message carrying the response (MsgSCCRP=2 or MsgSCCCN=3).
func ChallengeResponse(msgType MessageType, secret, challenge []byte) [16]byte {
	h := md5.New()
	h.Write([]byte{byte(msgType)})
	h.Write(secret)
	h.Write(challenge)
	var out [16]byte
	h.Sum(out[:0])
	return out
}
