// Package chap holds the CHAP-MD5 computation of RFC 1994 as a pure
// function, shared by the PPP engine (both roles) and the local
// authenticator.
package chap

import (
	"crypto/md5"
	"crypto/subtle"
)

// AlgorithmMD5 is the CHAP Algorithm value for MD5 (RFC 1994 section 3).
const AlgorithmMD5 = 5

// CHAPMD5 is MD5(Identifier || secret || challenge) (RFC 1994 section 4.1).
func CHAPMD5(id byte, secret, challenge []byte) [16]byte {
	h := md5.New()
	h.Write([]byte{id})
	h.Write(secret)
	h.Write(challenge)
	var out [16]byte
	h.Sum(out[:0])
	return out
}

// VerifyMD5 reports whether response is the CHAP-MD5 response to challenge
// with identifier id under secret (constant time).
func VerifyMD5(id byte, secret, challenge, response []byte) bool {
	want := CHAPMD5(id, secret, challenge)
	return len(response) == len(want) && subtle.ConstantTimeCompare(want[:], response) == 1
}
