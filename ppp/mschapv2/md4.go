package mschapv2

import (
	"encoding/binary"
	"math/bits"
)

// md4Sum returns the MD4 digest (RFC 1320) of data. MD4 is broken as a
// general-purpose hash; it is here only because MS-CHAPv2 (RFC 2759)
// requires it for the NT password hash.
func md4Sum(data []byte) [16]byte {
	s := [4]uint32{0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476}

	n := len(data)
	// Padding: 0x80, zeros to 56 mod 64, then the bit length (64 bits LE).
	padLen := 64 - (n+9)%64
	if padLen == 64 {
		padLen = 0
	}
	var tail [128]byte
	rem := n % 64
	full := n - rem
	copy(tail[:], data[full:])
	tail[rem] = 0x80
	tailLen := rem + 1 + padLen + 8
	binary.LittleEndian.PutUint64(tail[tailLen-8:], uint64(n)<<3)

	for i := 0; i < full; i += 64 {
		md4Block(&s, data[i:i+64])
	}
	for i := 0; i < tailLen; i += 64 {
		md4Block(&s, tail[i:i+64])
	}
	var out [16]byte
	for i, v := range s {
		binary.LittleEndian.PutUint32(out[4*i:], v)
	}
	return out
}

var (
	md4Shift1 = [4]int{3, 7, 11, 19}
	md4Shift2 = [4]int{3, 5, 9, 13}
	md4Shift3 = [4]int{3, 9, 11, 15}
	md4Order3 = [16]int{0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15}
)

func md4Block(s *[4]uint32, p []byte) {
	var x [16]uint32
	for i := range x {
		x[i] = binary.LittleEndian.Uint32(p[4*i:])
	}
	a, b, c, d := s[0], s[1], s[2], s[3]

	// Round 1: F(x,y,z) = xy | ~xz.
	for i := 0; i < 16; i++ {
		f := (b & c) | (^b & d)
		a = bits.RotateLeft32(a+f+x[i], md4Shift1[i%4])
		a, b, c, d = d, a, b, c
	}
	// Round 2: G(x,y,z) = xy | xz | yz, constant sqrt(2).
	for i := 0; i < 16; i++ {
		k := (i%4)*4 + i/4
		g := (b & c) | (b & d) | (c & d)
		a = bits.RotateLeft32(a+g+x[k]+0x5a827999, md4Shift2[i%4])
		a, b, c, d = d, a, b, c
	}
	// Round 3: H(x,y,z) = x^y^z, constant sqrt(3).
	for i := 0; i < 16; i++ {
		h := b ^ c ^ d
		a = bits.RotateLeft32(a+h+x[md4Order3[i]]+0x6ed9eba1, md4Shift3[i%4])
		a, b, c, d = d, a, b, c
	}
	s[0] += a
	s[1] += b
	s[2] += c
	s[3] += d
}
