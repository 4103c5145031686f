package mschapv2

import (
	"encoding/hex"
	"testing"
)

// Test suite from RFC 1320, appendix A.5.
func TestMD4RFC1320(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "31d6cfe0d16ae931b73c59d7e0c089c0"},
		{"a", "bde52cb31de33e46245e05fbdbd6fb24"},
		{"abc", "a448017aaf21d8525fc10ae87aa6729d"},
		{"message digest", "d9130a8164549fe818874806e1c7014b"},
		{"abcdefghijklmnopqrstuvwxyz", "d79e1c308aa5bbcdeea8ed63df412da9"},
		{"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", "043f8582f241db351ce627e153e7f0e4"},
		{"12345678901234567890123456789012345678901234567890123456789012345678901234567890", "e33b4ddc9c38f2199c3e7b164fcc0536"},
	}
	for _, tt := range tests {
		got := md4Sum([]byte(tt.in))
		if hex.EncodeToString(got[:]) != tt.want {
			t.Errorf("md4(%q) = %x, want %s", tt.in, got, tt.want)
		}
	}
}

// Lengths around the 56/64-byte padding boundaries must not panic and
// must differ from each other.
func TestMD4PaddingBoundaries(t *testing.T) {
	seen := map[[16]byte]int{}
	buf := make([]byte, 200)
	for n := 0; n <= len(buf); n++ {
		d := md4Sum(buf[:n])
		if m, ok := seen[d]; ok {
			t.Fatalf("md4 of %d and %d zero bytes collide", m, n)
		}
		seen[d] = n
	}
}
