package control

// SeqLess reports whether sequence number a comes before b in the 16-bit
// serial number space of Ns/Nr (RFC 1982 arithmetic with SERIAL_BITS = 16):
// a < b when b is 1..32767 steps after a, counting across the wrap from
// 65535 to 0. Numbers exactly 32768 apart are unordered: neither is less.
func SeqLess(a, b uint16) bool {
	d := b - a
	return d != 0 && d < 1<<15
}

// SeqLessEq reports whether a == b or SeqLess(a, b).
func SeqLessEq(a, b uint16) bool {
	return a == b || SeqLess(a, b)
}
