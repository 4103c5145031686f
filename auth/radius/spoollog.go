package radius

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"time"
)

// The accounting spool is an append-only log of segment files. Each
// segment starts with an 8-byte header (segmentMagic) followed by entries:
//
//	kind    1 byte   entryRecord or entryAck
//	length  2 bytes  big endian, length of body (at most maxEntryBody)
//	body    length bytes
//	crc     4 bytes  big endian CRC-32C of kind, length and body
//
// A record body is
//
//	seq     8 bytes  big endian, unique, increasing
//	event   8 bytes  big endian Unix nanoseconds (Event-Timestamp, Acct-Delay-Time)
//	status  1 byte   Acct-Status-Type
//	idLen   1 byte, then the Acct-Session-Id
//	userLen 1 byte, then the User-Name (for logs)
//	attrs   the rest: the encoded RADIUS attributes of the
//	        Accounting-Request except Message-Authenticator and
//	        Acct-Delay-Time, which depend on when it is sent
//
// and an ack body is the 8-byte seq of the record an Accounting-Response
// acknowledged. A record is live from its entry until an ack for its seq.

const (
	segmentMagic = "L2SPOOL1"
	segmentExt   = ".log"

	entryRecord byte = 1
	entryAck    byte = 2

	entryOverhead = 1 + 2 + 4
	recordFixed   = 8 + 8 + 1 + 1 + 1
	// maxEntryBody bounds a record: the attributes of one RADIUS packet
	// (at most 4096 bytes with its header) plus the record's own fields.
	maxEntryBody = recordFixed + 2*255 + maxPacket
	// maxPacket is RFC 2865's largest RADIUS packet.
	maxPacket = 4096
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// appendEntry appends one entry of kind with body to b.
func appendEntry(b []byte, kind byte, body func([]byte) []byte) []byte {
	start := len(b)
	b = append(b, kind, 0, 0)
	b = body(b)
	n := len(b) - start - 3
	binary.BigEndian.PutUint16(b[start+1:], uint16(n))
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b[start:], crcTable))
}

// appendRecord appends r's entry to b. r.ID and r.User are cut to 255
// bytes; the caller has checked that r.attrs fits in a packet.
func appendRecord(b []byte, r *record) []byte {
	return appendEntry(b, entryRecord, func(b []byte) []byte {
		b = binary.BigEndian.AppendUint64(b, r.Seq)
		b = binary.BigEndian.AppendUint64(b, uint64(r.Event.UnixNano()))
		b = append(b, byte(r.Status))
		b = appendShort(b, r.ID)
		b = appendShort(b, r.User)
		return append(b, r.attrs...)
	})
}

func appendShort(b []byte, s string) []byte {
	if len(s) > 255 {
		s = s[:255]
	}
	return append(append(b, byte(len(s))), s...)
}

func appendAck(b []byte, seq uint64) []byte {
	return appendEntry(b, entryAck, func(b []byte) []byte { return binary.BigEndian.AppendUint64(b, seq) })
}

// logEntry is one valid entry of a segment: an ack (rec nil) or a record.
type logEntry struct {
	kind byte
	seq  uint64
	rec  *record
}

// logDamage describes bytes of a segment that are not valid entries.
type logDamage struct {
	Offset int  // where the bad bytes start
	Length int  // how many bytes were skipped
	Tail   bool // no valid entry follows: a torn write at the end
}

func (d logDamage) String() string {
	if d.Tail {
		return fmt.Sprintf("torn tail of %d bytes at offset %d", d.Length, d.Offset)
	}
	return fmt.Sprintf("%d corrupt bytes at offset %d", d.Length, d.Offset)
}

var errSegmentHeader = errors.New("not a spool segment (bad header)")

// parseSegment reads the entries of one segment file. Bytes that do not
// form a valid entry (bad kind, length or CRC) are skipped up to the next
// offset where a valid entry starts, and reported as damage; a damaged
// end with no valid entry after it is a torn tail. Only a bad header is
// an error. Entries are bounds-checked against the bytes present.
func parseSegment(b []byte) ([]logEntry, []logDamage, error) {
	if len(b) < len(segmentMagic) || string(b[:len(segmentMagic)]) != segmentMagic {
		return nil, nil, errSegmentHeader
	}
	var ents []logEntry
	var dmg []logDamage
	off := len(segmentMagic)
	for off < len(b) {
		e, n, ok := parseEntry(b[off:])
		if ok {
			ents = append(ents, e)
			off += n
			continue
		}
		// Resynchronise: the next offset holding a valid entry.
		next := off + 1
		for ; next < len(b); next++ {
			if _, _, ok := parseEntry(b[next:]); ok {
				break
			}
		}
		dmg = append(dmg, logDamage{Offset: off, Length: next - off, Tail: next == len(b)})
		off = next
	}
	return ents, dmg, nil
}

// parseEntry parses the entry at the start of b and returns its size.
func parseEntry(b []byte) (logEntry, int, bool) {
	if len(b) < entryOverhead {
		return logEntry{}, 0, false
	}
	kind := b[0]
	n := int(binary.BigEndian.Uint16(b[1:3]))
	if (kind != entryRecord && kind != entryAck) || n > maxEntryBody || 3+n+4 > len(b) {
		return logEntry{}, 0, false
	}
	if crc32.Checksum(b[:3+n], crcTable) != binary.BigEndian.Uint32(b[3+n:]) {
		return logEntry{}, 0, false
	}
	body := b[3 : 3+n]
	size := 3 + n + 4
	if kind == entryAck {
		if n != 8 {
			return logEntry{}, 0, false
		}
		return logEntry{kind: kind, seq: binary.BigEndian.Uint64(body)}, size, true
	}
	if n < recordFixed {
		return logEntry{}, 0, false
	}
	r := &record{
		Seq:    binary.BigEndian.Uint64(body),
		Event:  time.Unix(0, int64(binary.BigEndian.Uint64(body[8:]))),
		Status: AcctStatus(body[16]),
	}
	rest := body[17:]
	var ok bool
	if r.ID, rest, ok = cutShort(rest); !ok {
		return logEntry{}, 0, false
	}
	if r.User, rest, ok = cutShort(rest); !ok {
		return logEntry{}, 0, false
	}
	if len(rest) > maxPacket {
		return logEntry{}, 0, false
	}
	r.attrs = append([]byte(nil), rest...)
	return logEntry{kind: kind, seq: r.Seq, rec: r}, size, true
}

func cutShort(b []byte) (string, []byte, bool) {
	if len(b) < 1 || int(b[0]) > len(b)-1 {
		return "", nil, false
	}
	n := int(b[0])
	return string(b[1 : 1+n]), b[1+n:], true
}
