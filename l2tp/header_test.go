package l2tp

import (
	"bytes"
	"errors"
	"testing"
)

func TestParseHeaderGolden(t *testing.T) {
	tests := []struct {
		name    string
		in      []byte
		want    Header
		payload []byte
	}{
		{
			// RFC 2661 3.1: T, L, S set, version 2, Length 12 (a ZLB).
			name: "v2 control ZLB",
			in:   []byte{0xc8, 0x02, 0x00, 0x0c, 0x12, 0x34, 0x00, 0x00, 0x00, 0x05, 0x00, 0x07},
			want: Header{Control: true, HasLength: true, HasSeq: true, Version: 2,
				TunnelID: 0x1234, Ns: 5, Nr: 7},
			payload: []byte{},
		},
		{
			name: "v2 control with body and trailing garbage beyond Length",
			in: []byte{0xc8, 0x02, 0x00, 0x0e, 0x00, 0x01, 0x00, 0x02, 0xff, 0xff, 0x00, 0x00,
				0xaa, 0xbb, 0xcc, 0xdd},
			want: Header{Control: true, HasLength: true, HasSeq: true, Version: 2,
				TunnelID: 1, SessionID: 2, Ns: 0xffff},
			payload: []byte{0xaa, 0xbb},
		},
		{
			// Minimal data header: no L, S, O: flags, tunnel, session.
			name:    "v2 data minimal",
			in:      []byte{0x00, 0x02, 0xab, 0xcd, 0x00, 0x09, 0xff, 0x03, 0xc0, 0x21},
			want:    Header{Version: 2, TunnelID: 0xabcd, SessionID: 9},
			payload: []byte{0xff, 0x03, 0xc0, 0x21},
		},
		{
			// Data with L, S, O and P: Length 18 (16 header+pad, 2 payload),
			// Ns 1, Nr 0, Offset Size 2 (pad 2 bytes); 0x99 lies beyond Length.
			name: "v2 data all options",
			in: []byte{0x4b, 0x02, 0x00, 0x12, 0x00, 0x01, 0x00, 0x02, 0x00, 0x01, 0x00, 0x00,
				0x00, 0x02, 0xee, 0xee, 0x21, 0x45, 0x99},
			want: Header{HasLength: true, HasSeq: true, HasOffset: true, Priority: true, Version: 2,
				TunnelID: 1, SessionID: 2, Ns: 1, OffsetSize: 2},
			payload: []byte{0x21, 0x45},
		},
		{
			name:    "v2 data offset zero",
			in:      []byte{0x02, 0x02, 0x00, 0x01, 0x00, 0x02, 0x00, 0x00, 0x21},
			want:    Header{HasOffset: true, Version: 2, TunnelID: 1, SessionID: 2},
			payload: []byte{0x21},
		},
		{
			// RFC 3931 3.2.1: control over UDP, Control Connection ID 32 bits.
			name: "v3 control",
			in: []byte{0xc8, 0x03, 0x00, 0x0e, 0xde, 0xad, 0xbe, 0xef, 0x00, 0x01, 0x00, 0x02,
				0x80, 0x08},
			want: Header{Control: true, HasLength: true, HasSeq: true, Version: 3,
				TunnelID: 0xdeadbeef, Ns: 1, Nr: 2},
			payload: []byte{0x80, 0x08},
		},
		{
			// RFC 3931 4.1.2.2: data over UDP, 16 reserved bits, Session ID.
			name:    "v3 data",
			in:      []byte{0x00, 0x03, 0x00, 0x00, 0x01, 0x02, 0x03, 0x04, 0xc0, 0x21},
			want:    Header{Version: 3, SessionID: 0x01020304},
			payload: []byte{0xc0, 0x21},
		},
		{
			// Tunnel ID 0 is decoded; rejecting it is the tunnel layer's policy.
			name:    "tunnel id zero decodes",
			in:      []byte{0x00, 0x02, 0x00, 0x00, 0x00, 0x00},
			want:    Header{Version: 2},
			payload: []byte{},
		},
		{
			name:    "reserved bits ignored",
			in:      []byte{0x34, 0x72, 0x00, 0x01, 0x00, 0x01},
			want:    Header{Version: 2, TunnelID: 1, SessionID: 1},
			payload: []byte{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, p, err := ParseHeader(tt.in)
			if err != nil {
				t.Fatalf("ParseHeader: %v", err)
			}
			if h != tt.want {
				t.Errorf("header = %+v, want %+v", h, tt.want)
			}
			if !bytes.Equal(p, tt.payload) {
				t.Errorf("payload = %x, want %x", p, tt.payload)
			}
			if cap(p) != len(p) {
				t.Errorf("payload cap %d > len %d: appending would overwrite trailing bytes", cap(p), len(p))
			}
		})
	}
}

func TestParseHeaderMalformed(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrTruncated},
		{"one byte", []byte{0xc8}, ErrTruncated},
		{"v2 control no room for length", []byte{0xc8, 0x02, 0x00}, ErrTruncated},
		{"v2 control length past end", []byte{0xc8, 0x02, 0x00, 0x0d, 0, 1, 0, 0, 0, 0, 0, 0}, ErrTruncated},
		{"v2 control length below header", []byte{0xc8, 0x02, 0x00, 0x0b, 0, 1, 0, 0, 0, 0, 0, 0}, ErrBadLength},
		{"v2 control length zero", []byte{0xc8, 0x02, 0x00, 0x00, 0, 1, 0, 0, 0, 0, 0, 0}, ErrBadLength},
		{"v2 control without L", []byte{0x88, 0x02, 0, 1, 0, 0, 0, 0, 0, 0}, ErrBadFlags},
		{"v2 control without S", []byte{0xc0, 0x02, 0x00, 0x08, 0, 1, 0, 0}, ErrBadFlags},
		{"v2 control with O", []byte{0xca, 0x02, 0x00, 0x0e, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0}, ErrBadFlags},
		{"v2 control with P", []byte{0xc9, 0x02, 0x00, 0x0c, 0, 1, 0, 0, 0, 0, 0, 0}, ErrBadFlags},
		{"v2 data short ids", []byte{0x00, 0x02, 0x00, 0x01, 0x00}, ErrTruncated},
		{"v2 data S short", []byte{0x08, 0x02, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00}, ErrTruncated},
		{"v2 data offset size field missing", []byte{0x02, 0x02, 0, 1, 0, 1, 0}, ErrTruncated},
		{"v2 data offset pad past end", []byte{0x02, 0x02, 0, 1, 0, 1, 0, 3, 0, 0}, ErrTruncated},
		{"v2 data offset pad past Length", []byte{0x42, 0x02, 0, 10, 0, 1, 0, 1, 0, 1, 0, 0}, ErrTruncated},
		{"v1 (L2F)", []byte{0xc8, 0x01, 0x00, 0x0c, 0, 1, 0, 0, 0, 0, 0, 0}, ErrBadVersion},
		{"v0", []byte{0x00, 0x00, 0, 1, 0, 1}, ErrBadVersion},
		{"v3 data short", []byte{0x00, 0x03, 0, 0, 0, 0, 1}, ErrTruncated},
		{"v3 control short", []byte{0xc8, 0x03, 0x00, 0x0c, 0, 0, 0, 1, 0, 0, 0}, ErrTruncated},
		{"v3 control length past end", []byte{0xc8, 0x03, 0x00, 0x0d, 0, 0, 0, 1, 0, 0, 0, 0}, ErrTruncated},
		{"v3 control length below header", []byte{0xc8, 0x03, 0x00, 0x08, 0, 0, 0, 1, 0, 0, 0, 0}, ErrBadLength},
		{"v3 control without S", []byte{0xc0, 0x03, 0x00, 0x0c, 0, 0, 0, 1, 0, 0, 0, 0}, ErrBadFlags},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := ParseHeader(tt.in)
			if !errors.Is(err, tt.want) {
				t.Fatalf("ParseHeader(%x) error = %v, want %v", tt.in, err, tt.want)
			}
		})
	}
}

func TestAppendHeaderGolden(t *testing.T) {
	tests := []struct {
		name       string
		h          Header
		payloadLen int
		want       []byte
	}{
		{
			name:       "v2 control forces L and S",
			h:          Header{Control: true, HasOffset: true, Priority: true, TunnelID: 0x1234, SessionID: 1, Ns: 5, Nr: 7},
			payloadLen: 8,
			want:       []byte{0xc8, 0x02, 0x00, 0x14, 0x12, 0x34, 0x00, 0x01, 0x00, 0x05, 0x00, 0x07},
		},
		{
			name: "v2 data minimal",
			h:    Header{Version: 2, TunnelID: 0xabcd, SessionID: 9},
			want: []byte{0x00, 0x02, 0xab, 0xcd, 0x00, 0x09},
		},
		{
			name: "v2 data all options",
			h: Header{HasLength: true, HasSeq: true, HasOffset: true, Priority: true, Version: 2,
				TunnelID: 1, SessionID: 2, Ns: 1, OffsetSize: 2},
			payloadLen: 2,
			want: []byte{0x4b, 0x02, 0x00, 0x12, 0x00, 0x01, 0x00, 0x02, 0x00, 0x01, 0x00, 0x00,
				0x00, 0x02, 0x00, 0x00},
		},
		{
			name:       "v3 control",
			h:          Header{Control: true, Version: 3, TunnelID: 0xdeadbeef, Ns: 1, Nr: 2},
			payloadLen: 2,
			want:       []byte{0xc8, 0x03, 0x00, 0x0e, 0xde, 0xad, 0xbe, 0xef, 0x00, 0x01, 0x00, 0x02},
		},
		{
			name: "v3 data",
			h:    Header{Version: 3, SessionID: 0x01020304},
			want: []byte{0x00, 0x03, 0x00, 0x00, 0x01, 0x02, 0x03, 0x04},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := AppendHeader([]byte{0xfe}, tt.h, tt.payloadLen)
			if !bytes.Equal(got[1:], tt.want) || got[0] != 0xfe {
				t.Fatalf("AppendHeader = %x, want fe%x", got, tt.want)
			}
			if n := tt.h.Len(); tt.h.Control == false && n != len(tt.want) {
				t.Errorf("Len() = %d, want %d", n, len(tt.want))
			}
			// Round trip with a payload of the declared size.
			pkt := append(got[1:], make([]byte, tt.payloadLen)...)
			h, p, err := ParseHeader(pkt)
			if err != nil {
				t.Fatalf("ParseHeader(AppendHeader) = %v", err)
			}
			if len(p) != tt.payloadLen {
				t.Errorf("payload len %d, want %d", len(p), tt.payloadLen)
			}
			want := tt.h
			if want.Version == 0 {
				want.Version = 2
			}
			if want.Control {
				want.HasLength, want.HasSeq, want.HasOffset, want.Priority = true, true, false, false
				if want.Version == 3 {
					want.SessionID = 0
				}
			}
			if h != want {
				t.Errorf("round trip header = %+v, want %+v", h, want)
			}
		})
	}
}

func TestAppendHeaderTooLongPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("AppendHeader with a 65530-byte payload did not panic")
		}
	}()
	AppendHeader(nil, Header{Control: true}, 65530)
}

func TestHeaderDataPathAllocs(t *testing.T) {
	pkt := []byte{0x40, 0x02, 0x00, 0x0c, 0x00, 0x01, 0x00, 0x02, 0xff, 0x03, 0x00, 0x21}
	buf := make([]byte, 0, 64)
	h := Header{HasLength: true, Version: 2, TunnelID: 1, SessionID: 2}
	n := testing.AllocsPerRun(100, func() {
		if _, _, err := ParseHeader(pkt); err != nil {
			t.Fatal(err)
		}
		buf = AppendHeader(buf[:0], h, 4)
	})
	if n != 0 {
		t.Fatalf("data path allocates %v times per packet, want 0", n)
	}
}
