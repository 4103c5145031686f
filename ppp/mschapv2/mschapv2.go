// Package mschapv2 implements the cryptography of MS-CHAPv2 (RFC 2759) as
// pure functions: the NT password hash, the challenge hash, the peer's
// NT-Response and the authenticator's "S=" response.
package mschapv2

import (
	"crypto/des"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"unicode/utf16"
)

// Sizes of the MS-CHAPv2 Response value (RFC 2759 section 4).
const (
	ChallengeLen  = 16
	NTResponseLen = 24
	ResponseLen   = 49 // peer challenge 16, reserved 8, NT response 24, flags 1
	// AuthResponseLen is len("S=") + 40 hex digits.
	AuthResponseLen = 42
)

// Offsets inside the 49-byte Response value.
const (
	offPeerChallenge = 0
	offReserved      = 16
	offNTResponse    = 24
	offFlags         = 48
)

// ErrResponseLength is returned by Verify for a Response value that is not
// 49 bytes long.
var ErrResponseLength = errors.New("mschapv2: response value is not 49 bytes")

var (
	magic1 = []byte("Magic server to client signing constant")
	magic2 = []byte("Pad to make it do more than one iteration")
)

// NTPasswordHash is MD4 of the password in UTF-16 little endian
// (RFC 2759 section 8.3).
func NTPasswordHash(password string) [16]byte {
	u := utf16.Encode([]rune(password))
	b := make([]byte, 2*len(u))
	for i, c := range u {
		b[2*i] = byte(c)
		b[2*i+1] = byte(c >> 8)
	}
	return md4Sum(b)
}

// stripDomain removes a "DOMAIN\" prefix: RFC 2759 section 8.2 hashes the
// user name without any domain the peer prepended.
func stripDomain(username string) string {
	if i := strings.LastIndexByte(username, '\\'); i >= 0 {
		return username[i+1:]
	}
	return username
}

// ChallengeHash is the first 8 bytes of SHA-1(peer challenge, authenticator
// challenge, user name) (RFC 2759 section 8.2). A "DOMAIN\" prefix of the
// user name is ignored.
func ChallengeHash(peerChallenge, authChallenge [16]byte, username string) [8]byte {
	h := sha1.New()
	h.Write(peerChallenge[:])
	h.Write(authChallenge[:])
	h.Write([]byte(stripDomain(username)))
	var sum [sha1.Size]byte
	h.Sum(sum[:0])
	var out [8]byte
	copy(out[:], sum[:8])
	return out
}

// desKey expands 7 key bytes into the 8-byte DES key (the parity bits are
// ignored by DES).
func desKey(k []byte) []byte {
	return []byte{
		k[0] & 0xfe,
		(k[0]<<7 | k[1]>>1) & 0xfe,
		(k[1]<<6 | k[2]>>2) & 0xfe,
		(k[2]<<5 | k[3]>>3) & 0xfe,
		(k[3]<<4 | k[4]>>4) & 0xfe,
		(k[4]<<3 | k[5]>>5) & 0xfe,
		(k[5]<<2 | k[6]>>6) & 0xfe,
		k[6] << 1,
	}
}

// challengeResponse is RFC 2759 section 8.5: three DES encryptions of the
// challenge under the zero-padded 21-byte password hash.
func challengeResponse(challenge [8]byte, pwHash [16]byte) [24]byte {
	var z [21]byte
	copy(z[:], pwHash[:])
	var out [24]byte
	for i := 0; i < 3; i++ {
		c, err := des.NewCipher(desKey(z[7*i : 7*i+7]))
		if err != nil {
			panic("mschapv2: des key: " + err.Error()) // 8-byte key: cannot fail
		}
		c.Encrypt(out[8*i:8*i+8], challenge[:])
	}
	return out
}

// GenerateNTResponse computes the peer's 24-byte NT-Response (RFC 2759
// section 8.1).
func GenerateNTResponse(authChallenge, peerChallenge [16]byte, username, password string) [24]byte {
	ch := ChallengeHash(peerChallenge, authChallenge, username)
	return challengeResponse(ch, NTPasswordHash(password))
}

// GenerateAuthenticatorResponse computes the authenticator's response
// "S=" followed by 40 uppercase hex digits (RFC 2759 section 8.7).
func GenerateAuthenticatorResponse(password string, ntResponse [24]byte, peerChallenge, authChallenge [16]byte, username string) string {
	pwHash := NTPasswordHash(password)
	pwHashHash := md4Sum(pwHash[:])
	return authenticatorResponse(pwHashHash, ntResponse, peerChallenge, authChallenge, username)
}

func authenticatorResponse(pwHashHash [16]byte, ntResponse [24]byte, peerChallenge, authChallenge [16]byte, username string) string {
	h := sha1.New()
	h.Write(pwHashHash[:])
	h.Write(ntResponse[:])
	h.Write(magic1)
	var digest [sha1.Size]byte
	h.Sum(digest[:0])

	ch := ChallengeHash(peerChallenge, authChallenge, username)
	h.Reset()
	h.Write(digest[:])
	h.Write(ch[:])
	h.Write(magic2)
	h.Sum(digest[:0])
	return "S=" + strings.ToUpper(hex.EncodeToString(digest[:]))
}

// Verify checks the peer's 49-byte MS-CHAPv2 Response value against our
// authenticator challenge and the subscriber's password. On success it also
// returns the authenticator response for the Success packet. An error means
// the response is malformed (wrong length, non-zero flags); a well-formed
// response with the wrong password gives ok=false and no error.
func Verify(authChallenge [16]byte, response []byte, username, password string) (ok bool, authResponse string, err error) {
	if len(response) != ResponseLen {
		return false, "", fmt.Errorf("%w: got %d", ErrResponseLength, len(response))
	}
	if response[offFlags] != 0 {
		return false, "", fmt.Errorf("mschapv2: response flags are 0x%02x, want 0", response[offFlags])
	}
	var peerChallenge [16]byte
	copy(peerChallenge[:], response[offPeerChallenge:offReserved])
	var ntResp [24]byte
	copy(ntResp[:], response[offNTResponse:offFlags])

	want := GenerateNTResponse(authChallenge, peerChallenge, username, password)
	if subtle.ConstantTimeCompare(want[:], ntResp[:]) != 1 {
		return false, "", nil
	}
	return true, GenerateAuthenticatorResponse(password, ntResp, peerChallenge, authChallenge, username), nil
}

// BuildResponse assembles the 49-byte Response value a peer sends (peer
// role): peer challenge, 8 zero bytes, NT-Response, flags 0.
func BuildResponse(authChallenge, peerChallenge [16]byte, username, password string) [ResponseLen]byte {
	var out [ResponseLen]byte
	copy(out[offPeerChallenge:], peerChallenge[:])
	nt := GenerateNTResponse(authChallenge, peerChallenge, username, password)
	copy(out[offNTResponse:], nt[:])
	return out
}

// CheckAuthenticatorResponse reports whether the authenticator's "S="
// string (peer role, from the Success message) proves knowledge of the
// password. Comparison is case-insensitive for the hex digits.
func CheckAuthenticatorResponse(got, password string, ntResponse [24]byte, peerChallenge, authChallenge [16]byte, username string) bool {
	want := GenerateAuthenticatorResponse(password, ntResponse, peerChallenge, authChallenge, username)
	if len(got) != len(want) {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(strings.ToUpper(got)), []byte(want)) == 1
}
