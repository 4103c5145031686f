package pppsession

import (
	"context"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/l2tpd/l2tpd/auth"
)

// State is where an LNS session is in its life, as the registry shows it.
type State uint8

// Session states.
const (
	StateStarting State = iota // LCP and authentication
	StateUp                    // the network layer is up (accounting started)
	StateStopping              // a termination was requested
)

var stateNames = [...]string{StateStarting: "starting", StateUp: "up", StateStopping: "stopping"}

func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "unknown"
}

// Snapshot describes one LNS session at the time it was taken.
type Snapshot struct {
	AcctSessionID string
	TunnelID      uint32 // ours
	SessionID     uint32 // ours
	PeerAddr      netip.AddrPort
	LACHostName   string
	CallingNumber string
	CalledNumber  string
	User          string // empty until the subscriber has authenticated
	Method        auth.Method
	Address       netip.Addr // invalid until the network is up
	Interface     string
	State         State
	Created       time.Time
	Started       time.Time // network up (accounting Start); zero before
}

// Selector picks sessions: every non-zero field must match. The zero
// Selector matches every session.
type Selector struct {
	AcctSessionID string
	User          string
	Address       netip.Addr
	CallingNumber string
	TunnelID      uint32
}

func (s Selector) matches(v *Snapshot) bool {
	return (s.AcctSessionID == "" || s.AcctSessionID == v.AcctSessionID) &&
		(s.User == "" || s.User == v.User) &&
		(!s.Address.IsValid() || s.Address == v.Address) &&
		(s.CallingNumber == "" || s.CallingNumber == v.CallingNumber) &&
		(s.TunnelID == 0 || s.TunnelID == v.TunnelID)
}

// Termination says how Registry.Terminate ends sessions.
type Termination struct {
	// Kind picks the CDN result and the Acct-Terminate-Cause
	// (EndAdminReset for an operator or a RADIUS Disconnect-Request,
	// EndShutdown when the daemon stops).
	Kind    EndKind
	Message string // for the LCP Terminate-Request, the CDN and the log
	// Hard skips LCP Terminate: the session is released and the CDN sent
	// at once. The accounting Stop is sent either way.
	Hard bool
}

// Change is a live change of a session's limits (RADIUS CoA-Request);
// nil fields are left alone. Session-Timeout counts from the change; a
// zero duration removes a limit (or, for the interval, stops Interim
// updates).
type Change struct {
	SessionTimeout  *time.Duration
	IdleTimeout     *time.Duration
	InterimInterval *time.Duration
}

// Registry indexes an Env's live LNS sessions by Acct-Session-Id, user
// name, address and calling number, for RADIUS Disconnect/CoA and the
// management API. It is safe for concurrent use. Actions on sessions run
// on their tunnel goroutines (through Call.Post) and return before they
// complete.
type Registry struct {
	mu        sync.Mutex
	byID      map[string]*regEntry
	byUser    map[string][]*regEntry
	byAddr    map[netip.Addr]*regEntry
	byCalling map[string][]*regEntry
	empty     []chan struct{} // closed when byID becomes empty
}

type regEntry struct {
	snap Snapshot // guarded by Registry.mu
	d    *LNS     // only d.call is used off the tunnel goroutine
	// userAt, callingAt: the entry's index in its byUser and byCalling
	// lists (guarded by Registry.mu), so that removal is O(1) however
	// many sessions share a user name or calling number.
	userAt, callingAt int
	// live: in the registry, from add to remove (guarded by
	// Registry.mu): a late update of a removed entry changes nothing,
	// without a look-up of its Acct-Session-Id.
	live bool
}

func newRegistry() *Registry {
	return &Registry{
		byID:      map[string]*regEntry{},
		byUser:    map[string][]*regEntry{},
		byAddr:    map[netip.Addr]*regEntry{},
		byCalling: map[string][]*regEntry{},
	}
}

// addEntry appends e to m[k] and records its index in *at.
func addEntry(m map[string][]*regEntry, k string, e *regEntry, at func(*regEntry) *int) {
	l := m[k]
	*at(e) = len(l)
	m[k] = append(l, e)
}

// removeEntry takes e out of m[k] by moving the list's last entry into
// its place (the lists have no order).
func removeEntry(m map[string][]*regEntry, k string, e *regEntry, at func(*regEntry) *int) {
	l := m[k]
	i := *at(e)
	if i < 0 || i >= len(l) || l[i] != e {
		return
	}
	last := len(l) - 1
	l[i] = l[last]
	*at(l[i]) = i
	l[last] = nil
	l = l[:last]
	*at(e) = -1
	if len(l) == 0 {
		delete(m, k)
	} else {
		m[k] = l
	}
}

func userAt(e *regEntry) *int    { return &e.userAt }
func callingAt(e *regEntry) *int { return &e.callingAt }

func (r *Registry) add(d *LNS, now time.Time) *regEntry {
	info := &d.rec.Info
	e := &regEntry{d: d, userAt: -1, callingAt: -1, live: true, snap: Snapshot{
		AcctSessionID: d.rec.ID, TunnelID: info.TunnelID, SessionID: info.SessionID,
		PeerAddr: info.LACAddr, LACHostName: info.LACHostName,
		CallingNumber: info.CallingNumber, CalledNumber: info.CalledNumber, Created: now,
	}}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.byID[e.snap.AcctSessionID] = e
	if e.snap.CallingNumber != "" {
		addEntry(r.byCalling, e.snap.CallingNumber, e, callingAt)
	}
	return e
}

// authenticated records the user name.
func (r *Registry) authenticated(e *regEntry, user string, m auth.Method) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !e.live {
		return
	}
	if e.snap.User != "" {
		removeEntry(r.byUser, e.snap.User, e, userAt)
	}
	e.snap.User, e.snap.Method = user, m
	if user != "" {
		addEntry(r.byUser, user, e, userAt)
	}
}

// up records the address once the network is up.
func (r *Registry) up(e *regEntry, addr netip.Addr, ifName string, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !e.live {
		return
	}
	if e.snap.Address.IsValid() && r.byAddr[e.snap.Address] == e {
		delete(r.byAddr, e.snap.Address)
	}
	e.snap.Address, e.snap.Interface, e.snap.Started = addr, ifName, now
	if e.snap.State == StateStarting {
		e.snap.State = StateUp
	}
	if addr.IsValid() {
		r.byAddr[addr] = e
	}
}

func (r *Registry) setState(e *regEntry, s State) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e.snap.State = s
}

func (r *Registry) remove(e *regEntry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !e.live {
		return
	}
	e.live = false
	if r.byID[e.snap.AcctSessionID] == e {
		delete(r.byID, e.snap.AcctSessionID)
	}
	if e.snap.User != "" {
		removeEntry(r.byUser, e.snap.User, e, userAt)
	}
	if e.snap.CallingNumber != "" {
		removeEntry(r.byCalling, e.snap.CallingNumber, e, callingAt)
	}
	if e.snap.Address.IsValid() && r.byAddr[e.snap.Address] == e {
		delete(r.byAddr, e.snap.Address)
	}
	if len(r.byID) == 0 {
		for _, ch := range r.empty {
			close(ch)
		}
		r.empty = nil
	}
}

// candidates returns the entries sel may match, from its most selective
// index (every entry for the zero Selector). Called with mu held.
func (r *Registry) candidates(sel Selector) []*regEntry {
	switch {
	case sel.AcctSessionID != "":
		if e := r.byID[sel.AcctSessionID]; e != nil {
			return []*regEntry{e}
		}
		return nil
	case sel.Address.IsValid():
		if e := r.byAddr[sel.Address]; e != nil {
			return []*regEntry{e}
		}
		return nil
	case sel.CallingNumber != "":
		return r.byCalling[sel.CallingNumber]
	case sel.User != "":
		return r.byUser[sel.User]
	}
	out := make([]*regEntry, 0, len(r.byID))
	for _, e := range r.byID {
		out = append(out, e)
	}
	return out
}

func (r *Registry) match(sel Selector) []*regEntry {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*regEntry
	for _, e := range r.candidates(sel) {
		if sel.matches(&e.snap) {
			out = append(out, e)
		}
	}
	return out
}

// Len is the number of sessions registered.
func (r *Registry) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.byID)
}

// List returns the sessions sel matches, sorted by tunnel and session ID.
func (r *Registry) List(sel Selector) []Snapshot {
	r.mu.Lock()
	var out []Snapshot
	for _, e := range r.candidates(sel) {
		if sel.matches(&e.snap) {
			out = append(out, e.snap)
		}
	}
	r.mu.Unlock()
	slices.SortFunc(out, func(a, b Snapshot) int {
		if a.TunnelID != b.TunnelID {
			return int(int64(a.TunnelID) - int64(b.TunnelID))
		}
		return int(int64(a.SessionID) - int64(b.SessionID))
	})
	return out
}

// Find returns the session with this Acct-Session-Id.
func (r *Registry) Find(acctSessionID string) (Snapshot, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e := r.byID[acctSessionID]; e != nil {
		return e.snap, true
	}
	return Snapshot{}, false
}

// Terminate ends the sessions sel matches (the zero Selector: every
// session) and returns how many it asked to end. Soft (the default): LCP
// Terminate-Request, then the accounting Stop and the CDN once LCP is
// down (or its retries run out). Each session ends once: asking again
// does nothing more.
func (r *Registry) Terminate(sel Selector, t Termination) int {
	if t.Kind == EndUnknown {
		t.Kind = EndAdminReset
	}
	if t.Message == "" {
		t.Message = "administratively terminated"
	}
	n := 0
	for _, e := range r.match(sel) {
		r.setState(e, StateStopping)
		d := e.d
		if d.call.Post(func(now time.Time) { d.terminate(now, t) }) {
			n++
		}
	}
	return n
}

// Change applies c to the sessions sel matches and returns how many.
func (r *Registry) Change(sel Selector, c Change) int {
	n := 0
	for _, e := range r.match(sel) {
		d := e.d
		if d.call.Post(func(now time.Time) { d.change(now, c) }) {
			n++
		}
	}
	return n
}

// WaitEmpty waits until no session is registered or ctx ends.
func (r *Registry) WaitEmpty(ctx context.Context) error {
	r.mu.Lock()
	if len(r.byID) == 0 {
		r.mu.Unlock()
		return nil
	}
	ch := make(chan struct{})
	r.empty = append(r.empty, ch)
	r.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
