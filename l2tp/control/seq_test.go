package control

import "testing"

func TestSeqLess(t *testing.T) {
	tests := []struct {
		a, b uint16
		less bool
	}{
		{0, 0, false},
		{0, 1, true},
		{1, 0, false},
		{65535, 0, true}, // the wrap
		{0, 65535, false},
		{65534, 1, true},
		{65535, 65535, false},
		{100, 100 + 32767, true},  // farthest "after"
		{100 + 32767, 100, false}, // and its reverse
		{100, 100 + 32768, false}, // exactly half apart: unordered
		{100 + 32768, 100, false},
		{40000, 7000, true}, // 40000 + 32767 wraps past 7000
		{7000, 40000, false},
	}
	for _, tt := range tests {
		if got := SeqLess(tt.a, tt.b); got != tt.less {
			t.Errorf("SeqLess(%d, %d) = %v, want %v", tt.a, tt.b, got, tt.less)
		}
		wantLE := tt.less || tt.a == tt.b
		if got := SeqLessEq(tt.a, tt.b); got != wantLE {
			t.Errorf("SeqLessEq(%d, %d) = %v, want %v", tt.a, tt.b, got, wantLE)
		}
	}
}

// TestSeqLessAntisymmetric checks, around the wrap, that no two numbers are
// each less than the other.
func TestSeqLessAntisymmetric(t *testing.T) {
	for _, a := range []uint16{0, 1, 32767, 32768, 65534, 65535} {
		for d := 0; d < 1<<16; d += 257 {
			b := a + uint16(d)
			if SeqLess(a, b) && SeqLess(b, a) {
				t.Fatalf("SeqLess(%d, %d) and SeqLess(%d, %d) both true", a, b, b, a)
			}
		}
	}
}
