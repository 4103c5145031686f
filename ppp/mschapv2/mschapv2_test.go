package mschapv2

import (
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func arr16(t testing.TB, s string) (a [16]byte) {
	t.Helper()
	if n := copy(a[:], unhex(t, s)); n != 16 {
		t.Fatalf("%q: %d bytes", s, n)
	}
	return a
}

// RFC 2759 section 9.2 test vectors.
const (
	vUser      = "User"
	vPassword  = "clientPass"
	vAuthChal  = "5B 5D 7C 7D 7B 3F 2F 3E 3C 2C 60 21 32 26 26 28"
	vPeerChal  = "21 40 23 24 25 5E 26 2A 28 29 5F 2B 3A 33 7C 7E"
	vChallenge = "D0 2E 43 86 BC E9 12 26"
	vNTResp    = "82 30 9E CD 8D 70 8B 5E A0 8F AA 39 81 CD 83 54 42 33 11 4A 3D 85 D6 DF"
	vPwHash    = "44 EB BA 8D 53 12 B8 D6 11 47 44 11 F5 69 89 AE"
	vPwHashHsh = "41 C0 0C 58 4B D2 D9 1C 40 17 A2 A1 2F A5 9F 3F"
	vAuthResp  = "S=407A5589115FD0D6209F510FE9C04566932CDA56"
)

func TestRFC2759Vectors(t *testing.T) {
	ac, pc := arr16(t, vAuthChal), arr16(t, vPeerChal)

	ph := NTPasswordHash(vPassword)
	if got, want := ph[:], unhex(t, vPwHash); string(got) != string(want) {
		t.Errorf("NTPasswordHash = %X, want %X", got, want)
	}
	phh := md4Sum(ph[:])
	if got, want := phh[:], unhex(t, vPwHashHsh); string(got) != string(want) {
		t.Errorf("PasswordHashHash = %X, want %X", got, want)
	}
	ch := ChallengeHash(pc, ac, vUser)
	if got, want := ch[:], unhex(t, vChallenge); string(got) != string(want) {
		t.Errorf("ChallengeHash = %X, want %X", got, want)
	}
	nt := GenerateNTResponse(ac, pc, vUser, vPassword)
	if got, want := nt[:], unhex(t, vNTResp); string(got) != string(want) {
		t.Errorf("GenerateNTResponse = %X, want %X", got, want)
	}
	if got := GenerateAuthenticatorResponse(vPassword, nt, pc, ac, vUser); got != vAuthResp {
		t.Errorf("GenerateAuthenticatorResponse = %q, want %q", got, vAuthResp)
	}
}

func TestChallengeHashStripsDomain(t *testing.T) {
	ac, pc := arr16(t, vAuthChal), arr16(t, vPeerChal)
	if ChallengeHash(pc, ac, `CORP\User`) != ChallengeHash(pc, ac, "User") {
		t.Error("domain prefix not stripped")
	}
	if ChallengeHash(pc, ac, "user") == ChallengeHash(pc, ac, "User") {
		t.Error("user name case must matter")
	}
}

func TestVerify(t *testing.T) {
	ac, pc := arr16(t, vAuthChal), arr16(t, vPeerChal)
	resp := BuildResponse(ac, pc, vUser, vPassword)
	if got, want := resp[:16], pc[:]; string(got) != string(want) {
		t.Fatalf("peer challenge not at offset 0")
	}
	if got, want := resp[24:48], unhex(t, vNTResp); string(got) != string(want) {
		t.Fatalf("NT-Response not at offset 24")
	}

	ok, ar, err := Verify(ac, resp[:], vUser, vPassword)
	if err != nil || !ok || ar != vAuthResp {
		t.Errorf("Verify(good) = %v, %q, %v; want true, %q, nil", ok, ar, err, vAuthResp)
	}
	ok, ar, err = Verify(ac, resp[:], vUser, "wrong")
	if err != nil || ok || ar != "" {
		t.Errorf("Verify(wrong password) = %v, %q, %v; want false, \"\", nil", ok, ar, err)
	}
	ok, _, err = Verify(ac, resp[:], "Other", vPassword)
	if err != nil || ok {
		t.Errorf("Verify(wrong user) = %v, %v; want false, nil", ok, err)
	}
	other := ac
	other[0] ^= 1
	if ok, _, _ := Verify(other, resp[:], vUser, vPassword); ok {
		t.Error("Verify accepted a response to another challenge")
	}

	_, _, err = Verify(ac, resp[:48], vUser, vPassword)
	if !errors.Is(err, ErrResponseLength) {
		t.Errorf("Verify(48 bytes) err = %v, want ErrResponseLength", err)
	}
	bad := resp
	bad[48] = 1
	if ok, _, err := Verify(ac, bad[:], vUser, vPassword); err == nil || ok {
		t.Errorf("Verify(flags=1) = %v, %v; want false, error", ok, err)
	}
}

func TestCheckAuthenticatorResponse(t *testing.T) {
	ac, pc := arr16(t, vAuthChal), arr16(t, vPeerChal)
	var nt [24]byte
	copy(nt[:], unhex(t, vNTResp))
	if !CheckAuthenticatorResponse(vAuthResp, vPassword, nt, pc, ac, vUser) {
		t.Error("rejected the RFC vector")
	}
	if !CheckAuthenticatorResponse(strings.ToLower(vAuthResp[:2])+strings.ToLower(vAuthResp[2:]), vPassword, nt, pc, ac, vUser) {
		t.Error("rejected lowercase hex")
	}
	if CheckAuthenticatorResponse(vAuthResp[:41], vPassword, nt, pc, ac, vUser) {
		t.Error("accepted a truncated response")
	}
	if CheckAuthenticatorResponse(vAuthResp, "x", nt, pc, ac, vUser) {
		t.Error("accepted the response for another password")
	}
}

func TestNTPasswordHashUnicode(t *testing.T) {
	// U+1F600 is a surrogate pair in UTF-16: 4 bytes.
	a, b := NTPasswordHash("\U0001F600"), md4Sum([]byte{0x3d, 0xd8, 0x00, 0xde})
	if a != b {
		t.Errorf("surrogate pair hashed as %X, want %X", a, b)
	}
}

func FuzzVerify(f *testing.F) {
	f.Add([]byte(vUser), []byte(vPassword), make([]byte, 49))
	f.Add([]byte(""), []byte(""), []byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, user, pass, resp []byte) {
		var ac [16]byte
		ok, ar, err := Verify(ac, resp, string(user), string(pass))
		if err != nil && ok {
			t.Fatal("ok with error")
		}
		if ok && len(ar) != AuthResponseLen {
			t.Fatalf("auth response %q", ar)
		}
		var pc [16]byte
		copy(pc[:], resp)
		good := BuildResponse(ac, pc, string(user), string(pass))
		if ok, _, err := Verify(ac, good[:], string(user), string(pass)); !ok || err != nil {
			t.Fatalf("own response rejected: %v", err)
		}
	})
}

func BenchmarkVerify(b *testing.B) {
	var ac, pc [16]byte
	resp := BuildResponse(ac, pc, vUser, vPassword)
	b.ReportAllocs()
	for b.Loop() {
		Verify(ac, resp[:], vUser, vPassword)
	}
}
