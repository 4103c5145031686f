package radius

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
)

// record is one accounting request waiting for an Accounting-Response.
type record struct {
	Seq    uint64
	Status AcctStatus
	ID     string    // Acct-Session-Id: records of one session go out in order
	User   string    // for logs
	Event  time.Time // when it happened (Event-Timestamp, Acct-Delay-Time)
	attrs  []byte    // the request's attributes but Message-Authenticator and Acct-Delay-Time

	seg      *segment // where its entry is (spool.mu: the accounter's lock)
	inFlight bool     // a request is outstanding (accounter.mu)
	acked    bool     // acknowledged or dropped (accounter.mu)
}

// spool is the durable accounting log (format in spoollog.go). put and
// ack append their entries to a buffer in memory; flush writes the buffer
// with one write(2). The accounter flushes before it sends anything (and
// sync flushes before its fsync), so a record is in the file before it
// is first sent, and the records of a burst of session starts cost one
// write(2) instead of one each, made by the accounter rather than by the
// tunnel that started the session (a write(2) on a tunnel's goroutine was
// the one system call of a session setup that woke the runtime's monitor
// thread; see internal/udpbatch). A crash of the process loses only
// records not yet flushed, which were never sent and are at most one
// sync interval old. sync flushes, then
// fsyncs everything appended since the last sync in one call (a crash of
// the machine loses nothing synced); an ack entry becomes durable with
// the next sync (a machine crash before it can make a record be sent
// twice, never lost).
//
// Segments rotate at segmentSize; the oldest segment is deleted once it
// has no live record, after a sync (acks only point backwards, so deleting
// oldest first never revives a record). An old segment holding few live
// records is compacted: they are appended again (same seq) to the current
// segment and it is deleted after the next sync.
//
// At open every segment is replayed: the live records are written to a
// fresh segment, synced, and the old segments deleted. Damage in a
// segment is logged and skipped (entries after it are still read); a
// segment with damage other than a torn tail is kept renamed to
// "<name>.bad" for the operator. Not safe for concurrent use.
type spool struct {
	dir         string
	log         *zap.Logger
	segmentSize int64

	seq      uint64
	nextSeg  uint64
	segs     []*segment // oldest first; the last is current
	f        *os.File   // the current segment, open for append
	pend     []byte     // entries (records, acks) appended but not yet written, in order
	acksPend int        // bytes of ack entries in pend (see ack)
	failing  bool       // the last flush failed (logged once until one succeeds)
	unsynced bool       // records appended since the last fsync
	ackDirty bool       // acks appended since the last fsync (made durable by the next one, or close)
	synced   uint64     // every record up to this seq is durable
	dirSync  bool       // a segment was created or deleted since the last directory fsync
	fsyncs   int        // fsyncs of segments made by sync (tests)
}

type segment struct {
	num   uint64
	size  int64
	total int // records appended to it
	live  int // of which not yet acknowledged nor moved
}

const defaultSegmentSize = 4 << 20

func (s *spool) path(num uint64) string {
	return filepath.Join(s.dir, fmt.Sprintf("%016x%s", num, segmentExt))
}

// openSpool replays the segments in dir and returns the live records by seq.
func openSpool(dir string, log *zap.Logger) (*spool, []*record, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("radius spool: %w", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("radius spool: %w", err)
	}
	if log == nil {
		log = zap.NewNop()
	}
	s := &spool{dir: dir, log: log, segmentSize: defaultSegmentSize}
	live := map[uint64]*record{}
	var old []string // replayed segments to delete once the live records are rewritten
	var bad []string // segments to keep, renamed, for the operator
	for _, e := range ents {
		name := e.Name()
		num, err := strconv.ParseUint(strings.TrimSuffix(name, segmentExt), 16, 64)
		if !strings.HasSuffix(name, segmentExt) || err != nil {
			continue
		}
		s.nextSeg = max(s.nextSeg, num+1)
		p := filepath.Join(dir, name)
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, nil, fmt.Errorf("radius spool: reading %s: %w", p, err)
		}
		les, dmg, err := parseSegment(data)
		if err != nil {
			log.Error("radius accounting spool: segment unreadable, set aside as .bad; its records are not sent",
				zap.String("file", p), zap.Error(err))
			bad = append(bad, p)
			continue
		}
		for _, le := range les {
			s.seq = max(s.seq, le.seq)
			if le.rec != nil {
				live[le.seq] = le.rec
			} else {
				delete(live, le.seq)
			}
		}
		keep := false
		for _, d := range dmg {
			if d.Tail {
				log.Warn("radius accounting spool: torn write at the end of a segment ignored (an interrupted append)",
					zap.String("file", p), zap.Stringer("damage", d))
				continue
			}
			keep = true
			log.Error("radius accounting spool: corrupt entry skipped; a record there is lost, or an acknowledged one is sent again",
				zap.String("file", p), zap.Stringer("damage", d))
		}
		if keep {
			bad = append(bad, p)
		} else {
			old = append(old, p)
		}
	}
	recs := make([]*record, 0, len(live))
	for _, r := range live {
		recs = append(recs, r)
	}
	slices.SortFunc(recs, func(a, b *record) int { return cmp.Compare(a.Seq, b.Seq) })
	if err := s.rotate(); err != nil {
		return nil, nil, err
	}
	for _, r := range recs {
		s.appendRec(r)
	}
	if n := len(recs); s.seq > 0 && (n == 0 || recs[n-1].Seq != s.seq) {
		// Keep the highest seq seen: an ack of it (there is no such
		// record any more) is the high-water mark for the next open.
		n := len(s.pend)
		s.pend = appendAck(s.pend, s.seq)
		s.appended(n)
		s.unsynced = true
	}
	if err := s.sync(); err != nil {
		s.f.Close()
		return nil, nil, err
	}
	for _, p := range old {
		if err := os.Remove(p); err != nil {
			log.Error("radius accounting spool: removing a replayed segment", zap.Error(err))
		}
	}
	for _, p := range bad {
		if err := os.Rename(p, p+".bad"); err != nil {
			log.Error("radius accounting spool: setting a damaged segment aside", zap.Error(err))
		}
	}
	s.dirSync = len(old)+len(bad) > 0
	return s, recs, nil
}

// rotate starts a new current segment (the old one must be synced).
func (s *spool) rotate() error {
	num := s.nextSeg
	p := s.path(num)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("radius spool: creating segment: %w", err)
	}
	if _, err := f.WriteString(segmentMagic); err != nil {
		f.Close()
		return fmt.Errorf("radius spool: writing %s: %w", p, err)
	}
	carry := 0
	if s.f != nil {
		if s.flush() != nil {
			// Logged by flush. What waits (acks: put synced the
			// records before rotating) goes to the new segment.
			carry = len(s.pend)
			s.cur().size -= int64(carry)
		}
		s.f.Close()
	}
	s.f = f
	s.nextSeg++
	s.segs = append(s.segs, &segment{num: num, size: int64(len(segmentMagic) + carry)})
	s.dirSync = true
	return nil
}

func (s *spool) cur() *segment { return s.segs[len(s.segs)-1] }

// appended counts the entry appended to pend from byte n on in the
// current segment's size at once (rotation needs no write to know it).
func (s *spool) appended(n int) {
	s.cur().size += int64(len(s.pend) - n)
}

// flush writes pend with one write(2). On an error the bytes not written
// stay in pend and the next flush tries again (a record stays in memory
// and is sent meanwhile; segments are not deleted while entries wait,
// see trim).
func (s *spool) flush() error {
	if len(s.pend) == 0 {
		return nil
	}
	n, err := s.f.Write(s.pend)
	if err != nil {
		s.pend = s.pend[:copy(s.pend, s.pend[n:])]
		s.acksPend = 0 // what is left may hold records: flushRecords must retry
		if !s.failing {
			s.failing = true
			s.log.Error("radius accounting spool: writing failed; the records are kept in memory, sent, and written when the file takes them again "+
				"(check the disk holding the spool directory)", zap.String("file", s.f.Name()), zap.Error(err))
		}
		return fmt.Errorf("radius spool: appending to %s: %w", s.f.Name(), err)
	}
	if s.failing {
		s.failing = false
		s.log.Info("radius accounting spool: writing works again", zap.String("file", s.f.Name()))
	}
	s.pend, s.acksPend = s.pend[:0], 0
	if cap(s.pend) > 1<<20 {
		s.pend = nil // after a large burst or a long failure: let it go (smaller ones are reused)
	}
	return nil
}

// appendRec appends r's entry (written by the next flush) in the
// current segment.
func (s *spool) appendRec(r *record) {
	n := len(s.pend)
	s.pend = appendRecord(s.pend, r)
	s.appended(n)
	seg := s.cur()
	seg.total++
	seg.live++
	r.seg = seg
	s.unsynced = true
}

// put assigns r its sequence number and appends it (written by the next
// flush). It fails only when the full segment cannot be synced and
// replaced.
func (s *spool) put(r *record) error {
	if s.cur().size >= s.segmentSize {
		if err := s.sync(); err != nil {
			return err
		}
		if err := s.rotate(); err != nil {
			return err
		}
	}
	s.seq++
	r.Seq = s.seq
	s.appendRec(r)
	return nil
}

// ackFlushAt is how many bytes of ack entries wait in memory before they
// are written.
const ackFlushAt = 4096

// ack records that r was acknowledged. The entry waits in memory with
// others and is written with them (flush: at ackFlushAt bytes of acks,
// before the accounter's next send of records, at its sync,
// before a rotation and at close), one write(2) for hundreds of acks
// instead of one each. An ack lost in a crash only makes its record be
// sent again at the next start, which the spool already does for a
// record whose answer came just before a crash: delivery is at least
// once either way.
func (s *spool) ack(r *record) error {
	if r.seg != nil {
		r.seg.live--
		r.seg = nil
	}
	n := len(s.pend)
	s.pend = appendAck(s.pend, r.Seq)
	s.appended(n)
	s.acksPend += len(s.pend) - n
	s.ackDirty = true
	if s.acksPend >= ackFlushAt {
		return s.flush()
	}
	return nil
}

// flushRecords writes pend if it holds a record entry (not only acks,
// which wait for company): the accounter calls it before sending.
func (s *spool) flushRecords() error {
	if len(s.pend) == s.acksPend {
		return nil
	}
	return s.flush()
}

// syncBegin starts an fsync made outside the caller's lock: when records
// were appended since the last one it returns the file to fsync and the
// seq it covers; then call syncEnd with the result.
func (s *spool) syncBegin() (*os.File, uint64, bool) {
	if err := s.flush(); err != nil {
		return nil, 0, false // logged by flush; unsynced stays set, the next pass tries again
	}
	if !s.unsynced {
		return nil, 0, false
	}
	s.unsynced, s.ackDirty = false, false
	return s.f, s.seq, true
}

// syncEnd records the result of the fsync of syncBegin. A file closed
// meanwhile was rotated, which synced it first.
func (s *spool) syncEnd(upto uint64, err error) {
	if err != nil && !errors.Is(err, os.ErrClosed) {
		s.unsynced = true
		return
	}
	s.synced = max(s.synced, upto)
}

// sync makes every record appended so far durable (one fsync of the
// current segment, and of the directory if segments came or went), then
// deletes the oldest segments that hold no live record.
func (s *spool) sync() error {
	if err := s.flush(); err != nil {
		return err
	}
	if s.unsynced || s.ackDirty {
		s.fsyncs++
		if err := s.f.Sync(); err != nil {
			return fmt.Errorf("radius spool: fsync %s: %w", s.f.Name(), err)
		}
		s.unsynced, s.ackDirty = false, false
		s.synced = s.seq
	}
	return s.trim()
}

// trim deletes the oldest segments that hold no live record (and fsyncs
// the directory when segments came or went). The accounter calls it
// after its fsync. Nothing is deleted while entries wait to be written:
// records compaction moved out of the oldest segment are only in pend.
func (s *spool) trim() error {
	var errs []error
	for len(s.segs) > 1 && s.segs[0].live == 0 && len(s.pend) == 0 {
		if err := os.Remove(s.path(s.segs[0].num)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("radius spool: removing segment: %w", err))
			break
		}
		s.segs = s.segs[1:]
		s.dirSync = true
	}
	if s.dirSync {
		if err := syncDir(s.dir); err != nil {
			errs = append(errs, err)
		} else {
			s.dirSync = false
		}
	}
	return errors.Join(errs...)
}

// compact moves the live records of the oldest segment to the current
// one when it is not the current one and at most an eighth of its records
// are live (a few records stuck behind many acknowledged ones). pending
// is every live record. It reports whether it moved any. The moved
// entries are written by the next flush; the old segment goes at a trim
// after that.
func (s *spool) compact(pending []*record) bool {
	if len(s.segs) < 3 {
		return false
	}
	old := s.segs[0]
	if old.live == 0 || old.live*8 > old.total {
		return false
	}
	for _, r := range pending {
		if r.seg != old {
			continue
		}
		s.appendRec(r)
		old.live--
	}
	return true
}

func (s *spool) close() error {
	err := s.sync()
	if cerr := s.f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("radius spool: %w", cerr)
	}
	return err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("radius spool: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("radius spool: fsync %s: %w", dir, err)
	}
	return nil
}
