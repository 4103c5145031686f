package l2tp

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Errors returned (wrapped) by the parsers. Test with errors.Is.
var (
	// ErrTruncated: a length field points past the bytes present, or a
	// fixed part is shorter than required.
	ErrTruncated = errors.New("truncated")
	// ErrBadLength: a length field is smaller than the structure it covers.
	ErrBadLength = errors.New("bad length")
	// ErrBadVersion: the header version is neither 2 nor 3.
	ErrBadVersion = errors.New("unsupported version")
	// ErrBadFlags: a control header without L and S, or with O or P set.
	ErrBadFlags = errors.New("invalid header flags")
)

// Header is the L2TP header shared by control and data messages.
//
// Version 2 (RFC 2661 3.1): every field applies.
// Version 3 over UDP (RFC 3931 3.2.1, 4.1.2.2): a control header carries
// TunnelID (the 32-bit Control Connection ID), Ns and Nr; a data header
// carries only SessionID (32 bits); the cookie and L2-specific sublayer that
// follow it are session configuration and stay in the payload.
type Header struct {
	Control    bool   // T bit
	HasLength  bool   // L (always set on control messages)
	HasSeq     bool   // S (Ns/Nr present)
	HasOffset  bool   // O
	Priority   bool   // P (data only)
	Version    uint8  // 2 or 3
	TunnelID   uint32 // v2: 16 bits; v3: control connection ID
	SessionID  uint32 // v2: 16 bits; v3: data messages only
	Ns, Nr     uint16
	OffsetSize uint16
}

// Len returns the number of bytes AppendHeader writes for h, including any
// offset padding.
func (h Header) Len() int {
	if h.Version == Version3 {
		if h.Control {
			return 12
		}
		return 8
	}
	if h.Control {
		return 12
	}
	n := 6
	if h.HasLength {
		n += 2
	}
	if h.HasSeq {
		n += 4
	}
	if h.HasOffset {
		n += 2 + int(h.OffsetSize)
	}
	return n
}

// ParseHeader checks the header against the bytes present (Length field <=
// len(b), trailing bytes beyond Length ignored; offset padding within bounds;
// control messages must have L and S set and no O/P; version 2 or 3) and
// returns the payload after the header (and offset padding), limited to
// Length. The payload aliases b. ParseHeader does not allocate on success.
//
// Reserved bits are ignored (RFC 2661 3.1). A tunnel or session ID of zero is
// decoded as such: whether it is acceptable is the tunnel layer's decision.
func ParseHeader(b []byte) (Header, []byte, error) {
	var h Header
	if len(b) < 2 {
		return h, nil, fmt.Errorf("l2tp header: %d bytes, need at least 2: %w", len(b), ErrTruncated)
	}
	flags := binary.BigEndian.Uint16(b)
	h.Version = uint8(flags & versionMask)
	h.Control = flags&flagT != 0
	switch h.Version {
	case Version2:
		return parseV2(b, flags, h)
	case Version3:
		return parseV3(b, flags, h)
	}
	return h, nil, fmt.Errorf("l2tp header: version %d: %w", h.Version, ErrBadVersion)
}

func parseV2(b []byte, flags uint16, h Header) (Header, []byte, error) {
	h.HasLength = flags&flagL != 0
	h.HasSeq = flags&flagS != 0
	h.HasOffset = flags&flagO != 0
	h.Priority = flags&flagP != 0
	if h.Control && (!h.HasLength || !h.HasSeq || h.HasOffset || h.Priority) {
		return h, nil, fmt.Errorf("l2tp header: control message flags %#04x: %w", flags, ErrBadFlags)
	}
	end := len(b)
	off := 2
	if h.HasLength {
		if len(b) < 4 {
			return h, nil, fmt.Errorf("l2tp header: %d bytes, no room for Length: %w", len(b), ErrTruncated)
		}
		l := int(binary.BigEndian.Uint16(b[2:]))
		if l > len(b) {
			return h, nil, fmt.Errorf("l2tp header: Length %d exceeds the %d bytes present: %w", l, len(b), ErrTruncated)
		}
		end = l
		off = 4
	}
	fixed := off + 4
	if h.HasSeq {
		fixed += 4
	}
	if h.HasOffset {
		fixed += 2
	}
	if fixed > end {
		if h.HasLength {
			return h, nil, fmt.Errorf("l2tp header: Length %d shorter than the %d-byte header: %w", end, fixed, ErrBadLength)
		}
		return h, nil, fmt.Errorf("l2tp header: %d bytes, header needs %d: %w", end, fixed, ErrTruncated)
	}
	h.TunnelID = uint32(binary.BigEndian.Uint16(b[off:]))
	h.SessionID = uint32(binary.BigEndian.Uint16(b[off+2:]))
	off += 4
	if h.HasSeq {
		h.Ns = binary.BigEndian.Uint16(b[off:])
		h.Nr = binary.BigEndian.Uint16(b[off+2:])
		off += 4
	}
	if h.HasOffset {
		h.OffsetSize = binary.BigEndian.Uint16(b[off:])
		off += 2
		if int(h.OffsetSize) > end-off {
			return h, nil, fmt.Errorf("l2tp header: Offset Size %d exceeds the %d bytes left: %w", h.OffsetSize, end-off, ErrTruncated)
		}
		off += int(h.OffsetSize)
	}
	return h, b[off:end:end], nil
}

func parseV3(b []byte, flags uint16, h Header) (Header, []byte, error) {
	if !h.Control {
		// RFC 3931 4.1.2.2: flags+version, 16 reserved bits, Session ID.
		if len(b) < 8 {
			return h, nil, fmt.Errorf("l2tpv3 data header: %d bytes, need 8: %w", len(b), ErrTruncated)
		}
		h.SessionID = binary.BigEndian.Uint32(b[4:])
		return h, b[8:len(b):len(b)], nil
	}
	h.HasLength = flags&flagL != 0
	h.HasSeq = flags&flagS != 0
	if !h.HasLength || !h.HasSeq {
		return h, nil, fmt.Errorf("l2tpv3 header: control message flags %#04x: %w", flags, ErrBadFlags)
	}
	if len(b) < 12 {
		return h, nil, fmt.Errorf("l2tpv3 header: %d bytes, need 12: %w", len(b), ErrTruncated)
	}
	l := int(binary.BigEndian.Uint16(b[2:]))
	if l > len(b) {
		return h, nil, fmt.Errorf("l2tpv3 header: Length %d exceeds the %d bytes present: %w", l, len(b), ErrTruncated)
	}
	if l < 12 {
		return h, nil, fmt.Errorf("l2tpv3 header: Length %d shorter than the 12-byte header: %w", l, ErrBadLength)
	}
	h.TunnelID = binary.BigEndian.Uint32(b[4:])
	h.Ns = binary.BigEndian.Uint16(b[8:])
	h.Nr = binary.BigEndian.Uint16(b[10:])
	return h, b[12:l:l], nil
}

// AppendHeader appends h for a payload of payloadLen bytes that the caller
// appends next; it fills in Length when HasLength. A control header always
// gets L and S and never O or P. Version 0 means 2. Offset padding is zeros.
// It does not allocate when b has room.
//
// It panics if the header plus payloadLen exceeds 65535 bytes: the Length
// field cannot express it and writing a wrong one would corrupt the stream.
func AppendHeader(b []byte, h Header, payloadLen int) []byte {
	if h.Version == 0 {
		h.Version = Version2
	}
	if h.Control {
		h.HasLength, h.HasSeq, h.HasOffset, h.Priority = true, true, false, false
	}
	total := h.Len() + payloadLen
	if payloadLen < 0 || total > 0xffff {
		panic(fmt.Sprintf("l2tp: AppendHeader: message length %d out of range", total))
	}
	if h.Version == Version3 {
		if !h.Control {
			b = binary.BigEndian.AppendUint16(b, Version3)
			b = binary.BigEndian.AppendUint16(b, 0)
			return binary.BigEndian.AppendUint32(b, h.SessionID)
		}
		b = binary.BigEndian.AppendUint16(b, flagT|flagL|flagS|Version3)
		b = binary.BigEndian.AppendUint16(b, uint16(total))
		b = binary.BigEndian.AppendUint32(b, h.TunnelID)
		b = binary.BigEndian.AppendUint16(b, h.Ns)
		return binary.BigEndian.AppendUint16(b, h.Nr)
	}
	flags := uint16(h.Version) & versionMask
	if h.Control {
		flags |= flagT
	}
	if h.HasLength {
		flags |= flagL
	}
	if h.HasSeq {
		flags |= flagS
	}
	if h.HasOffset {
		flags |= flagO
	}
	if h.Priority {
		flags |= flagP
	}
	b = binary.BigEndian.AppendUint16(b, flags)
	if h.HasLength {
		b = binary.BigEndian.AppendUint16(b, uint16(total))
	}
	b = binary.BigEndian.AppendUint16(b, uint16(h.TunnelID))
	b = binary.BigEndian.AppendUint16(b, uint16(h.SessionID))
	if h.HasSeq {
		b = binary.BigEndian.AppendUint16(b, h.Ns)
		b = binary.BigEndian.AppendUint16(b, h.Nr)
	}
	if h.HasOffset {
		b = binary.BigEndian.AppendUint16(b, h.OffsetSize)
		for range h.OffsetSize {
			b = append(b, 0)
		}
	}
	return b
}
