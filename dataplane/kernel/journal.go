package kernel

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"
)

// journal records which kernel tunnels this daemon created, so that a
// restarted daemon deletes only its own leftovers (Cleanup) and never a
// tunnel of another L2TP daemon on the host. It is an append-only file of
// lines "+<id>" and "-<id>", compacted by Cleanup, and locked with flock so
// that two daemons cannot share one state directory.
type journal struct {
	mu sync.Mutex
	f  *os.File
}

func openJournal(dir string) (*journal, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("kernel: state dir: %w", err)
	}
	path := filepath.Join(dir, stateFileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return nil, fmt.Errorf("kernel: state file: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("kernel: state file %s is locked: another l2tpd uses this state directory", path)
		}
		return nil, fmt.Errorf("kernel: lock state file %s: %w", path, err)
	}
	return &journal{f: f}, nil
}

func (j *journal) write(op byte, id uint32) error {
	b := strconv.AppendUint(append(make([]byte, 0, 12), op), uint64(id), 10)
	b = append(b, '\n')
	j.mu.Lock()
	defer j.mu.Unlock()
	if _, err := j.f.Write(b); err != nil {
		return fmt.Errorf("kernel: state file: record tunnel %d: %w", id, err)
	}
	return nil
}

func (j *journal) add(id uint32) error    { return j.write('+', id) }
func (j *journal) remove(id uint32) error { return j.write('-', id) }

// owned replays the journal: the tunnels created and not deleted.
func (j *journal) owned() (map[uint32]bool, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if _, err := j.f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	return parseJournal(j.f)
}

func parseJournal(r io.Reader) (map[uint32]bool, error) {
	ids := make(map[uint32]bool)
	sc := bufio.NewScanner(r)
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		if len(b) < 2 || (b[0] != '+' && b[0] != '-') {
			return nil, fmt.Errorf("state file line %d: %q", line, b)
		}
		id, err := strconv.ParseUint(string(b[1:]), 10, 32)
		if err != nil {
			return nil, fmt.Errorf("state file line %d: %w", line, err)
		}
		if b[0] == '+' {
			ids[uint32(id)] = true
		} else {
			delete(ids, uint32(id))
		}
	}
	return ids, sc.Err()
}

// reset empties the journal and records ids.
func (j *journal) reset(ids map[uint32]bool) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.f.Truncate(0); err != nil {
		return err
	}
	var b []byte
	for id := range ids {
		b = append(strconv.AppendUint(append(b, '+'), uint64(id), 10), '\n')
	}
	_, err := j.f.Write(b)
	return err
}

func (j *journal) close() error { return j.f.Close() }

// Cleanup deletes the kernel tunnels a previous run of this daemon created
// and left behind (their IDs are in the state journal and the TUNNEL_GET
// dump still lists them). Call it once at start, before AddTunnel.
//
// Tunnels made with L2TP_ATTR_FD normally die with their UDP socket when a
// daemon exits, so Cleanup usually finds nothing; it matters when a socket
// outlived the daemon (an fd inherited by a child, a kernel that keeps the
// tunnel). Tunnels of other daemons are never touched: their IDs are not in
// our journal. It returns the IDs it deleted.
func (p *Plane) Cleanup() ([]uint32, error) {
	if p.journal == nil {
		return nil, nil
	}
	owned, err := p.journal.owned()
	if err != nil {
		return nil, fmt.Errorf("kernel: cleanup: %w", err)
	}
	if len(owned) == 0 {
		return nil, nil
	}
	live, err := p.nl.Tunnels()
	if err != nil {
		return nil, fmt.Errorf("kernel: cleanup: %w", err)
	}
	p.mu.Lock()
	mine := p.tunnels
	var stale []uint32
	for _, t := range live {
		if owned[t.ID] && mine[t.ID] == nil {
			stale = append(stale, t.ID)
		}
	}
	keep := make(map[uint32]bool, len(mine))
	for id := range mine {
		keep[id] = true
	}
	p.mu.Unlock()
	var errs []error
	var deleted []uint32
	for _, id := range stale {
		if err := p.nl.DeleteTunnel(id); err != nil && !errors.Is(err, ErrNotFound) {
			errs = append(errs, err)
			keep[id] = true
			continue
		}
		deleted = append(deleted, id)
	}
	if err := p.journal.reset(keep); err != nil {
		errs = append(errs, fmt.Errorf("kernel: cleanup: rewrite state file: %w", err))
	}
	return deleted, errors.Join(errs...)
}
