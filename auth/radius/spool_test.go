package radius

import (
	"bytes"
	"crypto/hmac"
	"crypto/md5"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// goldenLog is a segment holding one Stop record (seq 1, event
// 2023-11-14T22:13:20Z, Acct-Session-Id "s1", User-Name "u", attributes
// Acct-Status-Type = Stop) and its ack. CRC-32C values computed by hand
// with the bitwise algorithm (poly 0x82F63B78).
var goldenLog = []byte{
	'L', '2', 'S', 'P', 'O', 'O', 'L', '1',
	// record: kind 1, length 28
	0x01, 0x00, 0x1c,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, // seq 1
	0x17, 0x97, 0x9c, 0xfe, 0x36, 0x2a, 0x00, 0x00, // 1700000000e9 ns
	0x02,             // Stop
	0x02, 0x73, 0x31, // "s1"
	0x01, 0x75, // "u"
	0x28, 0x06, 0x00, 0x00, 0x00, 0x02, // Acct-Status-Type = 2
	0x52, 0xa4, 0xbe, 0x13, // CRC-32C
	// ack: kind 2, length 8, seq 1
	0x02, 0x00, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
	0xcb, 0xc6, 0x5e, 0x1f,
}

func goldenRecord() *record {
	return &record{Seq: 1, Event: time.Unix(1700000000, 0), Status: AcctStop, ID: "s1", User: "u",
		attrs: []byte{40, 6, 0, 0, 0, 2}}
}

var recCmp = cmp.Comparer(func(a, b *record) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Seq == b.Seq && a.Event.Equal(b.Event) && a.Status == b.Status && a.ID == b.ID && a.User == b.User &&
		bytes.Equal(a.attrs, b.attrs)
})

func TestSpoolGolden(t *testing.T) {
	ents, dmg, err := parseSegment(goldenLog)
	if err != nil || len(dmg) != 0 {
		t.Fatalf("parseSegment: %v, damage %v", err, dmg)
	}
	want := []logEntry{{kind: entryRecord, seq: 1, rec: goldenRecord()}, {kind: entryAck, seq: 1}}
	if d := cmp.Diff(want, ents, cmp.AllowUnexported(logEntry{}), recCmp); d != "" {
		t.Errorf("entries (-want +got):\n%s", d)
	}
	enc := appendAck(appendRecord([]byte(segmentMagic), goldenRecord()), 1)
	if !bytes.Equal(enc, goldenLog) {
		t.Errorf("encoded\n%x\nwant\n%x", enc, goldenLog)
	}
}

func TestSpoolParseDamage(t *testing.T) {
	rec := len(segmentMagic) + 3 + 28 + 4 // end of the record entry
	tests := []struct {
		name string
		b    []byte
		ents int
		dmg  []logDamage
	}{
		{"torn ack", goldenLog[:len(goldenLog)-3], 1, []logDamage{{Offset: rec, Length: 12, Tail: true}}},
		{"torn record", goldenLog[:rec-1], 0, []logDamage{{Offset: 8, Length: rec - 9, Tail: true}}},
		{"bad crc in record", flip(goldenLog, rec-1), 1, []logDamage{{Offset: 8, Length: rec - 8}}},
		{"bad kind", flip(goldenLog, 8), 1, []logDamage{{Offset: 8, Length: rec - 8}}},
		{"header only", goldenLog[:8], 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ents, dmg, err := parseSegment(tt.b)
			if err != nil {
				t.Fatal(err)
			}
			if len(ents) != tt.ents {
				t.Errorf("%d entries, want %d", len(ents), tt.ents)
			}
			if d := cmp.Diff(tt.dmg, dmg); d != "" {
				t.Errorf("damage (-want +got):\n%s", d)
			}
		})
	}
	if _, _, err := parseSegment([]byte("L2SPOOL2")); err == nil {
		t.Error("wrong header accepted")
	}
}

func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 0xff
	return c
}

// FuzzSpoolReplay: any bytes parse without panicking; the valid entries
// encode back to bytes that parse, without damage, to the same entries.
func FuzzSpoolReplay(f *testing.F) {
	f.Add(goldenLog)
	f.Add(goldenLog[:len(goldenLog)-2])
	f.Add(append(bytes.Clone(goldenLog), goldenLog[8:]...))
	f.Add([]byte(segmentMagic + "\x01\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ents, dmg, err := parseSegment(b)
		if err != nil {
			return
		}
		for _, d := range dmg {
			if d.Offset < 8 || d.Length <= 0 || d.Offset+d.Length > len(b) {
				t.Fatalf("damage %+v outside %d bytes", d, len(b))
			}
		}
		enc := []byte(segmentMagic)
		for _, e := range ents {
			if e.rec != nil {
				enc = appendRecord(enc, e.rec)
			} else {
				enc = appendAck(enc, e.seq)
			}
		}
		again, dmg2, err := parseSegment(enc)
		if err != nil || len(dmg2) != 0 {
			t.Fatalf("re-encoded entries: %v, damage %v", err, dmg2)
		}
		if d := cmp.Diff(ents, again, cmp.AllowUnexported(logEntry{}), recCmp); d != "" {
			t.Fatalf("round trip (-first +second):\n%s", d)
		}
	})
}

// spoolLive replays the segments of dir read-only and returns the seqs of
// the live records.
func spoolLive(t *testing.T, dir string) []uint64 {
	t.Helper()
	names, _ := filepath.Glob(filepath.Join(dir, "*"+segmentExt))
	slices.Sort(names)
	live := map[uint64]bool{}
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		ents, _, err := parseSegment(b)
		if err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		for _, e := range ents {
			if e.rec != nil {
				live[e.seq] = true
			} else {
				delete(live, e.seq)
			}
		}
	}
	var seqs []uint64
	for s := range live {
		seqs = append(seqs, s)
	}
	slices.Sort(seqs)
	return seqs
}

func segFiles(t *testing.T, dir string) int {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "*"+segmentExt))
	if err != nil {
		t.Fatal(err)
	}
	return len(names)
}

func mustOpen(t *testing.T, dir string, log *zap.Logger) (*spool, []*record) {
	t.Helper()
	if log == nil {
		log = zap.NewNop()
	}
	sp, recs, err := openSpool(dir, log)
	if err != nil {
		t.Fatal(err)
	}
	return sp, recs
}

func putN(t *testing.T, sp *spool, n int) []*record {
	t.Helper()
	var rs []*record
	for i := range n {
		r := &record{Status: AcctStart, ID: "s" + string(rune('a'+i%26)), User: "u", Event: time.Unix(int64(i), 0),
			attrs: []byte{40, 6, 0, 0, 0, 1}}
		if err := sp.put(r); err != nil {
			t.Fatal(err)
		}
		rs = append(rs, r)
	}
	return rs
}

func seqsOf(rs []*record) []uint64 {
	var s []uint64
	for _, r := range rs {
		s = append(s, r.Seq)
	}
	return s
}

// Restart after partial acks: the unacknowledged records come back, in
// order, once each, however many times the spool is reopened.
func TestSpoolRestartAfterPartialAcks(t *testing.T) {
	dir := t.TempDir()
	sp, _ := mustOpen(t, dir, nil)
	rs := putN(t, sp, 10)
	var want []uint64
	for i, r := range rs {
		if i%2 == 1 {
			sp.ack(r)
		} else {
			want = append(want, r.Seq)
		}
	}
	sp.close()
	for range 2 {
		sp, recs := mustOpen(t, dir, nil)
		if got := seqsOf(recs); !slices.Equal(got, want) {
			t.Fatalf("replayed %v, want %v", got, want)
		}
		if !cmp.Equal(recs[0], rs[0], recCmp) {
			t.Errorf("replayed record %+v, want %+v", recs[0], rs[0])
		}
		sp.close()
		if n := segFiles(t, dir); n != 1 {
			t.Errorf("%d segments after replay, want 1", n)
		}
	}
	sp, recs := mustOpen(t, dir, nil)
	for _, r := range recs {
		sp.ack(r)
	}
	if r := (&record{}); sp.put(r) != nil || r.Seq != 11 {
		t.Errorf("next seq %d, want 11", r.Seq)
	}
	sp.close()
	if got := spoolLive(t, dir); len(got) != 1 || got[0] != 11 {
		t.Errorf("live %v, want [11]", got)
	}
}

// A crash in the middle of an append leaves a torn tail: the records
// before it are replayed, the tail ignored with a warning.
func TestSpoolTornTail(t *testing.T) {
	dir := t.TempDir()
	sp, _ := mustOpen(t, dir, nil)
	putN(t, sp, 3)
	name := sp.f.Name()
	sp.close()
	fi, _ := os.Stat(name)
	os.Truncate(name, fi.Size()-5)
	core, logs := observer.New(zap.WarnLevel)
	sp, recs := mustOpen(t, dir, zap.New(core))
	defer sp.close()
	if got := seqsOf(recs); !slices.Equal(got, []uint64{1, 2}) {
		t.Errorf("replayed %v, want [1 2]", got)
	}
	if n := logs.FilterMessageSnippet("torn").Len(); n != 1 {
		t.Errorf("%d torn-tail log lines, want 1", n)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "*.bad")); len(m) != 0 {
		t.Errorf("a torn tail set the segment aside: %v", m)
	}
	if r := (&record{}); sp.put(r) != nil || r.Seq != 3 {
		t.Errorf("next seq %d, want 3 (the torn record was never acknowledged to anyone)", r.Seq)
	}
}

// Corruption in the middle of a segment (a flipped byte in record 2 of 3):
// record 2 is lost, logged as an error; the records after it are still
// replayed (the reader resynchronises on the next entry whose CRC holds);
// the damaged segment is kept as .bad for the operator.
func TestSpoolCorruptMiddle(t *testing.T) {
	dir := t.TempDir()
	sp, _ := mustOpen(t, dir, nil)
	rs := putN(t, sp, 3)
	name := sp.f.Name()
	sp.close()
	b, _ := os.ReadFile(name)
	e1 := len(appendRecord(nil, rs[0]))
	b[8+e1+20] ^= 0x55 // inside record 2's body
	os.WriteFile(name, b, 0o600)
	core, logs := observer.New(zap.WarnLevel)
	sp, recs := mustOpen(t, dir, zap.New(core))
	defer sp.close()
	if got := seqsOf(recs); !slices.Equal(got, []uint64{1, 3}) {
		t.Errorf("replayed %v, want [1 3]", got)
	}
	if n := logs.FilterMessageSnippet("corrupt").FilterLevelExact(zap.ErrorLevel).Len(); n != 1 {
		t.Errorf("%d corruption log lines, want 1", n)
	}
	if _, err := os.Stat(name + ".bad"); err != nil {
		t.Errorf("damaged segment not kept: %v", err)
	}
}

// Segments rotate at segmentSize and are deleted once every record in
// them is acknowledged.
func TestSpoolRotationAndCleanup(t *testing.T) {
	dir := t.TempDir()
	sp, _ := mustOpen(t, dir, nil)
	sp.segmentSize = 1024
	rs := putN(t, sp, 200)
	sp.sync()
	if n := segFiles(t, dir); n < 5 {
		t.Fatalf("%d segments for 200 records of 1 KiB segments, want rotation", n)
	}
	for _, r := range rs[:100] {
		sp.ack(r)
	}
	sp.sync()
	if got := spoolLive(t, dir); !slices.Equal(got, seqsOf(rs[100:])) {
		t.Errorf("live after half acked: %d records", len(got))
	}
	for _, r := range rs[100:] {
		sp.ack(r)
	}
	sp.sync()
	if n := segFiles(t, dir); n != 1 {
		t.Errorf("%d segments after every record acked, want 1", n)
	}
	sp.close()
	if got := spoolLive(t, dir); len(got) != 0 {
		t.Errorf("live %v after every ack", got)
	}
}

// 10,000 records acknowledged with a lag, and one stuck record that is
// never acknowledged: compaction moves it forward, so the number of
// segment files stays bounded; it is the only record replayed.
func TestSpoolManyRecordsBoundedFiles(t *testing.T) {
	dir := t.TempDir()
	sp, _ := mustOpen(t, dir, nil)
	sp.segmentSize = 16 << 10
	var pending []*record
	stuck := putN(t, sp, 1)[0]
	pending = append(pending, stuck)
	maxFiles := 0
	for i := range 10000 {
		pending = append(pending, putN(t, sp, 1)...)
		if i%50 == 49 {
			for _, r := range pending[1:] {
				sp.ack(r)
			}
			pending = pending[:1]
			sp.compact(pending)
			if err := sp.sync(); err != nil {
				t.Fatal(err)
			}
			maxFiles = max(maxFiles, segFiles(t, dir))
		}
	}
	if maxFiles > 4 {
		t.Errorf("up to %d segment files, want at most 4", maxFiles)
	}
	sp.close()
	sp, recs := mustOpen(t, dir, nil)
	defer sp.close()
	if got := seqsOf(recs); !slices.Equal(got, []uint64{stuck.Seq}) {
		t.Errorf("replayed %v, want only the stuck record %d", got, stuck.Seq)
	}
}

func TestSpoolFilesAreOurs(t *testing.T) {
	dir := t.TempDir()
	sp, _ := mustOpen(t, dir, nil)
	putN(t, sp, 1)
	sp.close()
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), segmentExt) {
			t.Errorf("unexpected file %s", e.Name())
		}
		if fi, _ := e.Info(); fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", e.Name(), fi.Mode().Perm())
		}
	}
}

// The pooled HMAC-MD5 of appendRequest against crypto/hmac, for keys
// shorter and longer than the MD5 block.
func TestHMACMD5(t *testing.T) {
	for _, key := range [][]byte{[]byte(secret), bytes.Repeat([]byte("k"), 64), bytes.Repeat([]byte("long"), 40)} {
		msg := []byte("the quick brown fox")
		m := hmac.New(md5.New, key)
		m.Write(msg)
		want := m.Sum(nil)
		got := make([]byte, 16)
		(&md5State{h: md5.New()}).hmac(got, key, msg)
		if !bytes.Equal(got, want) {
			t.Errorf("key of %d bytes: %x, want %x", len(key), got, want)
		}
	}
}

// fileSize is how many bytes of the current segment are in the file.
func fileSize(t *testing.T, sp *spool) int64 {
	t.Helper()
	fi, err := os.Stat(sp.f.Name())
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// Acks wait in memory and reach the file together (one write for many):
// at the accounter's sync, at ackFlushAt bytes, or at close; a crash
// before that only replays records that were acknowledged (at least
// once), never loses one that was not.
func TestSpoolAcksWrittenTogether(t *testing.T) {
	dir := t.TempDir()
	sp, _ := mustOpen(t, dir, nil)
	rs := putN(t, sp, 20)
	if err := sp.flushRecords(); err != nil {
		t.Fatal(err)
	}
	size := fileSize(t, sp)
	for _, r := range rs[:10] {
		if err := sp.ack(r); err != nil {
			t.Fatal(err)
		}
	}
	if got := fileSize(t, sp); got != size {
		t.Fatalf("file grew by %d bytes at the acks, want the acks kept in memory", got-size)
	}
	// Acks alone do not make the accounter's pass write.
	if err := sp.flushRecords(); err != nil || fileSize(t, sp) != size {
		t.Fatalf("flushRecords with only acks waiting: %v, file grew by %d bytes", err, fileSize(t, sp)-size)
	}
	// A crash now (no close): every record is replayed, the acked ones
	// included, and none is lost.
	if got := spoolLive(t, dir); len(got) != 20 {
		t.Fatalf("live on disk before the acks are written: %v, want all 20", got)
	}
	if _, _, ok := sp.syncBegin(); !ok {
		t.Fatal("syncBegin found nothing to sync")
	}
	if fileSize(t, sp) == size {
		t.Fatal("syncBegin did not write the waiting acks")
	}
	if got := spoolLive(t, dir); len(got) != 10 || got[0] != rs[10].Seq {
		t.Fatalf("live after the acks were written: %v, want the last 10", got)
	}
	// Enough acks to pass ackFlushAt are written without a sync.
	more := putN(t, sp, 2*ackFlushAt/len(appendAck(nil, 1<<40)))
	if err := sp.flushRecords(); err != nil {
		t.Fatal(err)
	}
	size = fileSize(t, sp)
	for _, r := range more {
		if err := sp.ack(r); err != nil {
			t.Fatal(err)
		}
	}
	if fileSize(t, sp) == size {
		t.Fatalf("%d acks never written before a sync", len(more))
	}
	if err := sp.close(); err != nil {
		t.Fatal(err)
	}
	if got := spoolLive(t, dir); len(got) != 10 {
		t.Fatalf("live after close: %v, want the 10 never acked", got)
	}
}

// Records put wait in memory until flushRecords writes them all with
// one write(2) (the accounter's pass, before it sends), and the segment's
// size counts them from put on, so rotation does not wait for a write.
func TestSpoolRecordsWrittenTogether(t *testing.T) {
	dir := t.TempDir()
	sp, _ := mustOpen(t, dir, nil)
	defer sp.close()
	size := fileSize(t, sp)
	rs := putN(t, sp, 5)
	if got := fileSize(t, sp); got != size {
		t.Fatalf("file grew by %d bytes at put, want the records kept for the pass's write", got-size)
	}
	if got := spoolLive(t, dir); len(got) != 0 {
		t.Fatalf("live on disk before the write: %v", got)
	}
	want := size
	for _, r := range rs {
		want += int64(len(appendRecord(nil, r)))
	}
	if sp.cur().size != want {
		t.Errorf("segment size %d before the write, want %d (records counted at put)", sp.cur().size, want)
	}
	if err := sp.flushRecords(); err != nil {
		t.Fatal(err)
	}
	if got := fileSize(t, sp); got != want {
		t.Errorf("file is %d bytes after the write, want %d", got, want)
	}
	if got := spoolLive(t, dir); !slices.Equal(got, seqsOf(rs)) {
		t.Errorf("live on disk after the write: %v, want %v", got, seqsOf(rs))
	}
}

// A write that fails keeps the entries for the next flush, and the
// oldest segment is not deleted while entries wait: records compaction
// moved out of it would otherwise be on disk nowhere.
func TestSpoolWriteFailureKeepsEntries(t *testing.T) {
	dir := t.TempDir()
	sp, _ := mustOpen(t, dir, nil)
	sp.segmentSize = 256
	stuck := putN(t, sp, 1)[0]
	var rest []*record
	for len(sp.segs) < 4 {
		rest = append(rest, putN(t, sp, 1)...)
	}
	for _, r := range rest {
		sp.ack(r)
	}
	if err := sp.sync(); err != nil {
		t.Fatal(err)
	}
	if !sp.compact([]*record{stuck}) {
		t.Fatal("compaction did not move the stuck record")
	}
	oldest := sp.path(sp.segs[0].num)
	// The file refuses writes: closed under the spool.
	good := sp.f
	bad, err := os.Open(good.Name())
	if err != nil {
		t.Fatal(err)
	}
	sp.f = bad
	if err := sp.flushRecords(); err == nil {
		t.Fatal("flush to a read-only file succeeded")
	}
	if len(sp.pend) == 0 {
		t.Fatal("the entries were dropped at the failed write")
	}
	if err := sp.trim(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(oldest); err != nil {
		t.Fatalf("oldest segment deleted while the moved record was not written: %v", err)
	}
	bad.Close()
	sp.f = good
	if err := sp.sync(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(oldest); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("oldest segment still there after the write and sync: %v", err)
	}
	if got := spoolLive(t, dir); !slices.Equal(got, []uint64{stuck.Seq}) {
		t.Fatalf("live on disk: %v, want the stuck record %d", got, stuck.Seq)
	}
	sp.close()
}
