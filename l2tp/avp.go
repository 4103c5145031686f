package l2tp

import (
	"encoding/binary"
	"fmt"
)

// ResultCode is the Result Code AVP value (RFC 2661 4.4.2): a result code,
// an optional error code and an optional error message.
type ResultCode struct {
	Result, Error uint16
	Message       string
}

// ParseResultCode decodes a Result Code AVP value. Error is 0 when absent.
func ParseResultCode(v []byte) (ResultCode, error) {
	switch {
	case len(v) < 2:
		return ResultCode{}, fmt.Errorf("l2tp: Result Code AVP value is %d bytes, need at least 2: %w", len(v), ErrAVPValue)
	case len(v) == 3:
		return ResultCode{}, fmt.Errorf("l2tp: Result Code AVP value is 3 bytes, a partial Error Code: %w", ErrAVPValue)
	}
	r := ResultCode{Result: binary.BigEndian.Uint16(v)}
	if len(v) >= 4 {
		r.Error = binary.BigEndian.Uint16(v[2:])
		r.Message = string(v[4:])
	}
	return r, nil
}

// Append appends the encoded value. The Error Code is always written (it is
// optional on the wire, but some peers expect it).
func (r ResultCode) Append(b []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, r.Result)
	b = binary.BigEndian.AppendUint16(b, r.Error)
	return append(b, r.Message...)
}

func (r ResultCode) String() string {
	if r.Message != "" {
		return fmt.Sprintf("result %d error %d %q", r.Result, r.Error, r.Message)
	}
	return fmt.Sprintf("result %d error %d", r.Result, r.Error)
}

// ResultCode returns the message's Result Code AVP, whether it is present and
// whether it is well formed.
func (m *Message) ResultCode() (ResultCode, bool, error) {
	v, ok := m.Bytes(AVPResultCode)
	if !ok {
		return ResultCode{}, false, nil
	}
	r, err := ParseResultCode(v)
	return r, true, err
}

// AddResultCode appends a mandatory Result Code AVP.
func (m *Message) AddResultCode(r ResultCode) {
	b := m.addValue(4 + len(r.Message))
	r.Append(b[:0])
	m.AddBytes(AVPResultCode, true, b)
}

// ProtocolVersion is the Protocol Version AVP value (RFC 2661 4.4.3).
type ProtocolVersion struct {
	Version, Revision uint8
}

// ParseProtocolVersion decodes a Protocol Version AVP value (2 bytes).
func ParseProtocolVersion(v []byte) (ProtocolVersion, error) {
	if len(v) != 2 {
		return ProtocolVersion{}, fmt.Errorf("l2tp: Protocol Version AVP value is %d bytes, want 2: %w", len(v), ErrAVPValue)
	}
	return ProtocolVersion{Version: v[0], Revision: v[1]}, nil
}

// Append appends the encoded value.
func (p ProtocolVersion) Append(b []byte) []byte { return append(b, p.Version, p.Revision) }

// Q931Cause is the Q.931 Cause Code AVP value (RFC 2661 4.4.2).
type Q931Cause struct {
	Cause    uint16
	Msg      uint8
	Advisory string
}

// ParseQ931Cause decodes a Q.931 Cause Code AVP value (at least 3 bytes).
func ParseQ931Cause(v []byte) (Q931Cause, error) {
	if len(v) < 3 {
		return Q931Cause{}, fmt.Errorf("l2tp: Q.931 Cause Code AVP value is %d bytes, need at least 3: %w", len(v), ErrAVPValue)
	}
	return Q931Cause{Cause: binary.BigEndian.Uint16(v), Msg: v[2], Advisory: string(v[3:])}, nil
}

// Append appends the encoded value.
func (q Q931Cause) Append(b []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, q.Cause)
	b = append(b, q.Msg)
	return append(b, q.Advisory...)
}

// CallErrors is the Call Errors AVP value carried by WEN (RFC 2661 4.4.9).
type CallErrors struct {
	CRC, Framing, HardwareOverruns, BufferOverruns, Timeout, Alignment uint32
}

const callErrorsLen = 26

// ParseCallErrors decodes a Call Errors AVP value (2 reserved bytes and six
// 32-bit counters).
func ParseCallErrors(v []byte) (CallErrors, error) {
	if len(v) != callErrorsLen {
		return CallErrors{}, fmt.Errorf("l2tp: Call Errors AVP value is %d bytes, want %d: %w", len(v), callErrorsLen, ErrAVPValue)
	}
	u := func(i int) uint32 { return binary.BigEndian.Uint32(v[2+4*i:]) }
	return CallErrors{CRC: u(0), Framing: u(1), HardwareOverruns: u(2), BufferOverruns: u(3), Timeout: u(4), Alignment: u(5)}, nil
}

// Append appends the encoded value.
func (c CallErrors) Append(b []byte) []byte {
	b = append(b, 0, 0)
	for _, x := range [...]uint32{c.CRC, c.Framing, c.HardwareOverruns, c.BufferOverruns, c.Timeout, c.Alignment} {
		b = binary.BigEndian.AppendUint32(b, x)
	}
	return b
}

// ACCM is the ACCM AVP value carried by SLI (RFC 2661 4.4.10).
type ACCM struct {
	Send, Recv uint32
}

const accmLen = 10

// ParseACCM decodes an ACCM AVP value (2 reserved bytes, Send, Receive).
func ParseACCM(v []byte) (ACCM, error) {
	if len(v) != accmLen {
		return ACCM{}, fmt.Errorf("l2tp: ACCM AVP value is %d bytes, want %d: %w", len(v), accmLen, ErrAVPValue)
	}
	return ACCM{Send: binary.BigEndian.Uint32(v[2:]), Recv: binary.BigEndian.Uint32(v[6:])}, nil
}

// Append appends the encoded value.
func (a ACCM) Append(b []byte) []byte {
	b = append(b, 0, 0)
	b = binary.BigEndian.AppendUint32(b, a.Send)
	return binary.BigEndian.AppendUint32(b, a.Recv)
}

// ProxyAuth gathers the proxy authentication AVPs of an ICCN (RFC 2661
// 4.4.5). Fields alias the message.
type ProxyAuth struct {
	Type      ProxyAuthenType
	Name      string
	Challenge []byte
	ID        uint8
	Response  []byte
}

// ProxyAuth returns the proxy authentication AVPs of m: present is false when
// there is no Proxy Authen Type AVP. Challenge, ID and Response are optional
// on the wire (their need depends on Type, which the caller checks); a
// present AVP of the wrong size is an error.
func (m *Message) ProxyAuth() (p ProxyAuth, present bool, err error) {
	t, ok, err := m.Uint16(AVPProxyAuthenType)
	if !ok || err != nil {
		return p, ok, err
	}
	p.Type = ProxyAuthenType(t)
	p.Name, _ = m.String(AVPProxyAuthenName)
	p.Challenge, _ = m.Bytes(AVPProxyAuthenChallenge)
	p.Response, _ = m.Bytes(AVPProxyAuthenResponse)
	id, _, err := m.Uint16(AVPProxyAuthenID)
	if err != nil {
		return p, true, err
	}
	p.ID = uint8(id) // high byte reserved
	return p, true, nil
}

// AddProxyAuth appends the proxy authentication AVPs of p (empty fields
// omitted; ID written when Challenge or Response is set).
func (m *Message) AddProxyAuth(p ProxyAuth) {
	m.AddUint16(AVPProxyAuthenType, false, uint16(p.Type))
	if p.Name != "" {
		m.AddString(AVPProxyAuthenName, false, p.Name)
	}
	if len(p.Challenge) > 0 {
		m.AddBytes(AVPProxyAuthenChallenge, false, p.Challenge)
	}
	if len(p.Challenge) > 0 || len(p.Response) > 0 {
		m.AddUint16(AVPProxyAuthenID, false, uint16(p.ID))
	}
	if len(p.Response) > 0 {
		m.AddBytes(AVPProxyAuthenResponse, false, p.Response)
	}
}

// ParseCookie checks an Assigned Cookie AVP value (RFC 3931 5.4.4): 4 or 8 bytes.
func ParseCookie(v []byte) ([]byte, error) {
	if len(v) != 4 && len(v) != 8 {
		return nil, fmt.Errorf("l2tp: Assigned Cookie AVP value is %d bytes, want 4 or 8: %w", len(v), ErrAVPValue)
	}
	return v, nil
}

// ParsePseudowireCapabilities decodes a Pseudowire Capabilities List AVP
// value (RFC 3931 5.4.3): a list of 16-bit pseudowire types.
func ParsePseudowireCapabilities(v []byte) ([]uint16, error) {
	if len(v)%2 != 0 {
		return nil, fmt.Errorf("l2tp: Pseudowire Capabilities List AVP value is %d bytes, not a multiple of 2: %w", len(v), ErrAVPValue)
	}
	out := make([]uint16, len(v)/2)
	for i := range out {
		out[i] = binary.BigEndian.Uint16(v[2*i:])
	}
	return out, nil
}

// AppendPseudowireCapabilities appends the encoded list.
func AppendPseudowireCapabilities(b []byte, types []uint16) []byte {
	for _, t := range types {
		b = binary.BigEndian.AppendUint16(b, t)
	}
	return b
}

// Circuit Status bits (RFC 3931 5.4.5).
const (
	CircuitActive uint16 = 0x1 // A: the circuit is up
	CircuitNew    uint16 = 0x2 // N: a new circuit
)

// Pseudowire types the LNS cares about (RFC 3931 IANA, RFC 4591...).
const (
	PseudowirePPP      uint16 = 0x0007
	PseudowireEthernet uint16 = 0x0005
)

// MessageDigest is the Message Digest AVP value (RFC 3931 5.4.1).
type MessageDigest struct {
	DigestType uint8 // 0: HMAC-MD5 (16 bytes), 1: HMAC-SHA-1 (20 bytes)
	Digest     []byte
}

// ParseMessageDigest decodes a Message Digest AVP value.
func ParseMessageDigest(v []byte) (MessageDigest, error) {
	if len(v) != 17 && len(v) != 21 {
		return MessageDigest{}, fmt.Errorf("l2tp: Message Digest AVP value is %d bytes, want 17 or 21: %w", len(v), ErrAVPValue)
	}
	return MessageDigest{DigestType: v[0], Digest: v[1:]}, nil
}

// Append appends the encoded value.
func (d MessageDigest) Append(b []byte) []byte {
	return append(append(b, d.DigestType), d.Digest...)
}
