package radius

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/l2tpd/l2tpd/auth"
)

// record is one accounting request waiting for an Accounting-Response.
// Its spool file is named by Seq, so records are replayed in order.
type record struct {
	Seq      uint64
	Status   AcctStatus
	Session  auth.AcctSession
	Counters auth.AcctCounters
	Cause    auth.TerminateCause
	Event    time.Time // when it happened (Event-Timestamp, Acct-Delay-Time)

	inFlight bool // a request is outstanding (accounter.mu)
}

// spool keeps records on disk, one file each ("<seq>.acct", JSON), until
// acknowledged. put writes the file (tmp + rename) before returning, so a
// crash of the process after put loses nothing; sync fsyncs the files and
// the directory so a crash of the machine loses nothing either, and runs
// before a record is first sent.
type spool struct {
	dir      string
	seq      uint64
	unsynced []string
}

const spoolExt = ".acct"

func openSpool(dir string) (*spool, []*record, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("radius spool: %w", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("radius spool: %w", err)
	}
	s := &spool{dir: dir}
	var recs []*record
	for _, e := range ents {
		name := e.Name()
		if strings.HasSuffix(name, ".tmp") {
			os.Remove(filepath.Join(dir, name)) // never renamed: never acknowledged to anyone
			continue
		}
		if !strings.HasSuffix(name, spoolExt) {
			continue
		}
		seq, err := strconv.ParseUint(strings.TrimSuffix(name, spoolExt), 16, 64)
		if err != nil {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, nil, fmt.Errorf("radius spool: %w", err)
		}
		r := new(record)
		if err := json.Unmarshal(data, r); err != nil || r.Seq != seq {
			// Keep a corrupt file for the operator, out of the way.
			os.Rename(filepath.Join(dir, name), filepath.Join(dir, name+".bad"))
			continue
		}
		recs = append(recs, r)
		s.seq = max(s.seq, seq)
	}
	slices.SortFunc(recs, func(a, b *record) int { return cmpU64(a.Seq, b.Seq) })
	return s, recs, nil
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (s *spool) path(seq uint64) string {
	return filepath.Join(s.dir, fmt.Sprintf("%016x%s", seq, spoolExt))
}

// put assigns r its sequence number and writes it. Not safe for
// concurrent use (the accounter holds its lock).
func (s *spool) put(r *record) error {
	s.seq++
	r.Seq = s.seq
	data, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("radius spool: encoding record: %w", err)
	}
	p := s.path(r.Seq)
	if err := os.WriteFile(p+".tmp", data, 0o600); err != nil {
		return fmt.Errorf("radius spool: %w", err)
	}
	if err := os.Rename(p+".tmp", p); err != nil {
		return fmt.Errorf("radius spool: %w", err)
	}
	s.unsynced = append(s.unsynced, p)
	return nil
}

// sync makes every record put so far durable.
func (s *spool) sync() error {
	if len(s.unsynced) == 0 {
		return nil
	}
	for _, p := range s.unsynced {
		f, err := os.Open(p)
		if err != nil {
			if os.IsNotExist(err) {
				continue // already acknowledged and removed
			}
			return fmt.Errorf("radius spool: %w", err)
		}
		err = f.Sync()
		f.Close()
		if err != nil {
			return fmt.Errorf("radius spool: fsync %s: %w", p, err)
		}
	}
	s.unsynced = s.unsynced[:0]
	d, err := os.Open(s.dir)
	if err != nil {
		return fmt.Errorf("radius spool: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("radius spool: fsync %s: %w", s.dir, err)
	}
	return nil
}

func (s *spool) remove(seq uint64) error {
	if err := os.Remove(s.path(seq)); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("radius spool: %w", err)
	}
	return nil
}
