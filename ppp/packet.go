package ppp

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Errors of the frame and packet parsers.
var (
	ErrShortFrame  = errors.New("ppp: frame too short")
	ErrBadLength   = errors.New("ppp: length field does not match the bytes present")
	ErrBadOption   = errors.New("ppp: malformed option")
	ErrBadProtocol = errors.New("ppp: malformed protocol field")
)

// SplitFrame returns the protocol and payload of a PPP frame. An HDLC
// address/control prefix (FF 03) is stripped, and a compressed 1-byte
// protocol field (odd first byte, RFC 1661 section 6.5) is accepted.
func SplitFrame(frame []byte) (Protocol, []byte, error) {
	if len(frame) >= 2 && frame[0] == 0xff && frame[1] == 0x03 {
		frame = frame[2:]
	}
	if len(frame) < 1 {
		return 0, nil, ErrShortFrame
	}
	if frame[0]&1 == 1 {
		return Protocol(frame[0]), frame[1:], nil
	}
	if len(frame) < 2 {
		return 0, nil, ErrShortFrame
	}
	p := Protocol(binary.BigEndian.Uint16(frame))
	if p&1 == 0 {
		return 0, nil, fmt.Errorf("%w: 0x%04x has an even low byte", ErrBadProtocol, uint16(p))
	}
	return p, frame[2:], nil
}

// Packet is a control packet (LCP, NCP, PAP or CHAP): code, identifier and
// data. Data aliases the parsed buffer.
type Packet struct {
	Code Code
	ID   uint8
	Data []byte
}

// ParsePacket parses a control packet (the bytes after the protocol field).
// Bytes beyond the Length field are padding and ignored (RFC 1661 5).
func ParsePacket(b []byte) (Packet, error) {
	if len(b) < headerLen {
		return Packet{}, fmt.Errorf("%w: %d bytes, need %d", ErrShortFrame, len(b), headerLen)
	}
	n := int(binary.BigEndian.Uint16(b[2:]))
	if n < headerLen || n > len(b) {
		return Packet{}, fmt.Errorf("%w: length %d, %d bytes present", ErrBadLength, n, len(b))
	}
	return Packet{Code: Code(b[0]), ID: b[1], Data: b[headerLen:n]}, nil
}

// Append appends the encoded packet to b.
func (p Packet) Append(b []byte) []byte {
	n := headerLen + len(p.Data)
	b = append(b, byte(p.Code), p.ID, byte(n>>8), byte(n))
	return append(b, p.Data...)
}

// AppendFrame appends the full frame (protocol field first) to b.
func (p Packet) AppendFrame(b []byte, proto Protocol) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(proto))
	return p.Append(b)
}

// Option is one configuration option (type, data without the 2-byte
// header). Data aliases the parsed buffer.
type Option struct {
	Type uint8
	Data []byte
}

// ParseOptions appends the options in b to dst. Every length is checked
// against the bytes present.
func ParseOptions(dst []Option, b []byte) ([]Option, error) {
	for len(b) > 0 {
		if len(b) < 2 {
			return dst, fmt.Errorf("%w: %d trailing byte", ErrBadOption, len(b))
		}
		n := int(b[1])
		if n < 2 || n > len(b) {
			return dst, fmt.Errorf("%w: type %d length %d, %d bytes left", ErrBadOption, b[0], n, len(b))
		}
		dst = append(dst, Option{Type: b[0], Data: b[2:n]})
		b = b[n:]
	}
	return dst, nil
}

// AppendOptions encodes opts after b. Options with more than 253 data bytes
// cannot be encoded and are truncated.
func AppendOptions(b []byte, opts []Option) []byte {
	for _, o := range opts {
		b = appendOption(b, o.Type, o.Data)
	}
	return b
}

func appendOption(b []byte, typ uint8, data []byte) []byte {
	if len(data) > 253 {
		data = data[:253]
	}
	b = append(b, typ, byte(2+len(data)))
	return append(b, data...)
}
