package chap

import (
	"encoding/hex"
	"testing"
)

func TestCHAPMD5Golden(t *testing.T) {
	// printf '\x01secret\x00\x01...\x0f' | md5sum
	ch := []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}
	got := CHAPMD5(1, []byte("secret"), ch)
	if hex.EncodeToString(got[:]) != "740e86463bda3a4d7017d6e0fba0699d" {
		t.Errorf("CHAPMD5 = %x", got)
	}
	if !VerifyMD5(1, []byte("secret"), ch, got[:]) {
		t.Error("VerifyMD5 rejected the right response")
	}
	if VerifyMD5(2, []byte("secret"), ch, got[:]) {
		t.Error("VerifyMD5 accepted a response for another identifier")
	}
	if VerifyMD5(1, []byte("secreT"), ch, got[:]) {
		t.Error("VerifyMD5 accepted a response for another secret")
	}
	if VerifyMD5(1, []byte("secret"), ch, got[:15]) {
		t.Error("VerifyMD5 accepted a short response")
	}
}
