package ppp

import (
	"bytes"
	"testing"
)

// A length byte of 255 is the largest a PAP or CHAP field can say. 1+255
// computed as a byte is 0, so these fields must be sliced with the length
// widened first (the fuzzer found a PAP request that crashed on it).
func TestAuthFieldsOfLength255(t *testing.T) {
	long := bytes.Repeat([]byte{'a'}, 255)
	pw := bytes.Repeat([]byte{'p'}, 255)

	d := append(append(append([]byte{255}, long...), 255), pw...)
	r, err := ParsePAPRequest(d)
	if err != nil || !bytes.Equal(r.PeerID, long) || !bytes.Equal(r.Password, pw) {
		t.Fatalf("PAP request with 255-byte fields: %q %q %v", r.PeerID, r.Password, err)
	}
	if _, err := ParsePAPRequest(append([]byte{255}, long[:254]...)); err == nil {
		t.Fatal("PAP request with a peer-id one byte short: no error")
	}
	if _, err := ParsePAPRequest(append(append(append([]byte{255}, long...), 255), pw[:254]...)); err == nil {
		t.Fatal("PAP request with a password one byte short: no error")
	}

	v, err := ParseCHAPValue(append(append([]byte{255}, long...), "bob"...))
	if err != nil || !bytes.Equal(v.Value, long) || string(v.Name) != "bob" {
		t.Fatalf("CHAP value of 255 bytes: %d bytes, name %q, %v", len(v.Value), v.Name, err)
	}
	if _, err := ParseCHAPValue(append([]byte{255}, long[:254]...)); err == nil {
		t.Fatal("CHAP value one byte short: no error")
	}

	// printable keeps the first 128 bytes of a message.
	if m := papMessage(append([]byte{255}, long...)); m != string(long[:128]) {
		t.Fatalf("PAP message of 255 bytes: %q back", m)
	}
}
