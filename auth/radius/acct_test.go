package radius

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"layeh.com/radius"

	"github.com/l2tpd/l2tpd/auth"
	"github.com/l2tpd/l2tpd/config"
)

func acctConfig(t testing.TB, dir string, port int) config.RADIUS {
	c := testConfig(t, secret)
	c.SpoolDir = dir
	c.DeadTime = 50 * time.Millisecond // retry pause after a full failure
	c.Servers = []config.RADIUSServer{{Address: netip.MustParseAddr("127.0.0.1"), AcctPort: port, Secret: []byte(secret),
		Weight: 1, Timeout: 50 * time.Millisecond, Retries: 0}}
	return c
}

var acctSession = &auth.AcctSession{ID: "sess-1", Username: "alice", Method: auth.MethodPAP, Info: session,
	FramedIP: netip.MustParseAddr("10.0.0.5"), Class: [][]byte{[]byte("cls")}}

func ack(t *testing.T) func(raw []byte, p *radius.Packet) []byte {
	return func(raw []byte, p *radius.Packet) []byte {
		if !radius.IsAuthenticRequest(raw, []byte(secret)) {
			t.Errorf("Accounting-Request authenticator is wrong")
		}
		var zero [16]byte
		if err := checkMA(raw, zero[:], []byte(secret)); err != nil {
			t.Errorf("Accounting-Request Message-Authenticator: %v", err)
		}
		return reply(t, raw, []byte(secret), radius.CodeAccountingResponse, false)
	}
}

func recv(t *testing.T, s *fakeServer) *radius.Packet {
	t.Helper()
	select {
	case p := <-s.got:
		return p
	case <-time.After(5 * time.Second):
		t.Fatal("no accounting request arrived")
		return nil
	}
}

func TestAccountingAttributes(t *testing.T) {
	srv := newFakeServer(t, secret, ack(t))
	c, err := New(acctConfig(t, t.TempDir(), srv.port()), nil)
	c = mustClient(t, c, err)
	c.Start(acctSession)
	p := recv(t, srv)
	if st := p.Get(attrAcctStatusType); !bytes.Equal(st, u32(uint32(AcctStart))) {
		t.Errorf("status %x", st)
	}
	for typ, v := range map[radius.Type][]byte{attrAcctSessionID: []byte("sess-1"), attrUserName: []byte("alice"),
		attrClass: []byte("cls"), attrFramedIPAddress: {10, 0, 0, 5}, attrNASIdentifier: []byte("lns-test"),
		attrTunnelClientAuthID: []byte("lac-1")} {
		if got := p.Get(typ); !bytes.Equal(got, v) {
			t.Errorf("Start attribute %d = %q, want %q", typ, got, v)
		}
	}
	ctr := auth.AcctCounters{InOctets: 5<<32 + 7, OutOctets: 9, InPackets: 3, OutPackets: 4, SessionTime: 61 * time.Second}
	c.Stop(acctSession, ctr, auth.CauseIdleTimeout)
	p = recv(t, srv)
	for typ, v := range map[radius.Type]uint32{attrAcctStatusType: uint32(AcctStop), attrAcctInputOctets: 7, attrAcctInputGigawords: 5,
		attrAcctOutputOctets: 9, attrAcctOutputGigawords: 0, attrAcctInputPackets: 3, attrAcctOutputPackets: 4,
		attrAcctSessionTime: 61, attrAcctTerminateCause: uint32(auth.CauseIdleTimeout), attrAcctDelayTime: 0} {
		if got := p.Get(typ); !bytes.Equal(got, u32(v)) {
			t.Errorf("Stop attribute %d = %x, want %d", typ, got, v)
		}
	}
	waitPending(t, c, 0)
}

func waitPending(t *testing.T, c *Client, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for c.Pending() != n {
		if time.Now().After(deadline) {
			t.Fatalf("pending = %d, want %d", c.Pending(), n)
		}
		time.Sleep(5 * time.Millisecond) // polling a condition, not standing in for one
	}
}

// The server is down: records stay in the spool across a restart of the
// client, and are delivered (in order, once each) when a server answers,
// with the same Acct-Session-Id and a later Acct-Delay-Time.
func TestSpoolSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	down := newFakeServer(t, secret, func([]byte, *radius.Packet) []byte { return nil })
	c, err := New(acctConfig(t, dir, down.port()), nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Start(acctSession)
	c.Interim(acctSession, auth.AcctCounters{InOctets: 1})
	c.Stop(acctSession, auth.AcctCounters{InOctets: 2}, auth.CauseUserRequest)
	recv(t, down) // at least one attempt
	// The files exist before Stop returns; a "crash" is closing without
	// any acknowledgement.
	c.Close()
	if live := spoolLive(t, dir); len(live) != 3 {
		t.Fatalf("spool holds %d live records, want 3", len(live))
	}

	up := newFakeServer(t, secret, ack(t))
	c2, err := newClient(acctConfig(t, dir, up.port()), nil, func() time.Time { return time.Now().Add(10 * time.Second) })
	c2 = mustClient(t, c2, err)
	var order []uint32
	for range 3 {
		p := recv(t, up)
		if string(p.Get(attrAcctSessionID)) != "sess-1" {
			t.Errorf("Acct-Session-Id %q", p.Get(attrAcctSessionID))
		}
		d, _ := radius.Integer(p.Get(attrAcctDelayTime))
		if d < 10 {
			t.Errorf("Acct-Delay-Time %d, want >= 10", d)
		}
		st, _ := radius.Integer(p.Get(attrAcctStatusType))
		order = append(order, st)
	}
	if want := []uint32{1, 3, 2}; !equalU32(order, want) {
		t.Errorf("order %v, want %v", order, want)
	}
	waitPending(t, c2, 0)
	c2.Close()
	if live := spoolLive(t, dir); len(live) != 0 {
		t.Errorf("spool holds %d live records after delivery", len(live))
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("spool holds %d files after delivery, want 1", len(ents))
	}
	select {
	case p := <-up.got:
		t.Errorf("extra request %v", p.Code)
	case <-time.After(100 * time.Millisecond):
	}
}

func equalU32(a, b []uint32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestCorruptSpoolFileSetAside(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(dir+"/0000000000000005.log", []byte("{garbage"), 0o600)
	os.WriteFile(dir+"/0000000000000006.acct", []byte("{}"), 0o600) // not ours: left alone
	sp, recs, err := openSpool(dir, zap.NewNop())
	if err != nil || len(recs) != 0 {
		t.Fatalf("openSpool: %v, %d records", err, len(recs))
	}
	defer sp.close()
	if _, err := os.Stat(dir + "/0000000000000005.log.bad"); err != nil {
		t.Errorf("corrupt segment not set aside: %v", err)
	}
	if _, err := os.Stat(dir + "/0000000000000006.acct"); err != nil {
		t.Errorf("unrelated file touched: %v", err)
	}
	r := &record{Status: AcctStart}
	if err := sp.put(r); err != nil || r.Seq != 1 {
		t.Errorf("put: seq %d, %v", r.Seq, err)
	}
	if sp.cur().num != 6 {
		t.Errorf("new segment %d, want 6 (after the highest seen)", sp.cur().num)
	}
}

// A record whose request can never fit in a RADIUS packet (here Class
// attributes of 20 x 253 bytes) is dropped, counted and logged with the
// session and user; the records after it are still delivered.
func TestOversizedRecordDropped(t *testing.T) {
	srv := newFakeServer(t, secret, ack(t))
	core, logs := observer.New(zap.ErrorLevel)
	c, err := New(acctConfig(t, t.TempDir(), srv.port()), zap.New(core))
	c = mustClient(t, c, err)
	big := *acctSession
	big.ID, big.Username = "sess-big", "bob"
	for range 20 {
		big.Class = append(big.Class, bytes.Repeat([]byte{'c'}, 300))
	}
	c.Start(&big)
	c.Start(acctSession)
	if p := recv(t, srv); string(p.Get(attrAcctSessionID)) != "sess-1" {
		t.Errorf("delivered %q, want sess-1", p.Get(attrAcctSessionID))
	}
	waitPending(t, c, 0)
	if n := c.AcctDropped(); n != 1 {
		t.Errorf("AcctDropped = %d, want 1", n)
	}
	ents := logs.FilterMessageSnippet("dropped").All()
	if len(ents) != 1 {
		t.Fatalf("%d drop log lines, want 1", len(ents))
	}
	f := ents[0].ContextMap()
	if f["acct_session_id"] != "sess-big" || f["user"] != "bob" || !strings.Contains(f["error"].(string), "Class") {
		t.Errorf("drop log fields %v", f)
	}
}

func TestInterimSchedule(t *testing.T) {
	srv := newFakeServer(t, secret, ack(t))
	c, err := New(acctConfig(t, t.TempDir(), srv.port()), nil)
	c = mustClient(t, c, err)
	calls := make(chan struct{}, 10)
	c.StartSession(acctSession, 20*time.Millisecond, func() auth.AcctCounters {
		calls <- struct{}{}
		return auth.AcctCounters{OutOctets: 77}
	})
	if p := recv(t, srv); !bytes.Equal(p.Get(attrAcctStatusType), u32(1)) {
		t.Fatal("first record is not Start")
	}
	p := recv(t, srv)
	if !bytes.Equal(p.Get(attrAcctStatusType), u32(3)) || !bytes.Equal(p.Get(attrAcctOutputOctets), u32(77)) {
		t.Errorf("interim: status %x octets %x", p.Get(attrAcctStatusType), p.Get(attrAcctOutputOctets))
	}
	if !c.SetInterimInterval("sess-1", time.Hour) {
		t.Error("SetInterimInterval: session not tracked")
	}
	c.Stop(acctSession, auth.AcctCounters{}, auth.CauseUserRequest)
	if c.SetInterimInterval("sess-1", time.Minute) {
		t.Error("session still tracked after Stop")
	}
}

func TestAccountingOnOff(t *testing.T) {
	srv := newFakeServer(t, secret, ack(t))
	c, err := New(acctConfig(t, t.TempDir(), srv.port()), nil)
	c = mustClient(t, c, err)
	if err := c.AccountingOn(context.Background()); err != nil {
		t.Fatal(err)
	}
	if p := recv(t, srv); !bytes.Equal(p.Get(attrAcctStatusType), u32(uint32(AcctOn))) {
		t.Errorf("status %x", p.Get(attrAcctStatusType))
	}
	if err := c.AccountingOff(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// A reply that is not an Accounting-Response (here a correctly signed
// Access-Accept) does not acknowledge a record: it stays in the spool.
func TestAccountingWrongReplyCode(t *testing.T) {
	wrong := func(raw []byte, p *radius.Packet) []byte {
		return reply(t, raw, []byte(secret), radius.CodeAccessAccept, true)
	}
	srv := newFakeServer(t, secret, wrong)
	c, err := New(acctConfig(t, t.TempDir(), srv.port()), nil)
	c = mustClient(t, c, err)
	if err := c.AccountingOn(context.Background()); err == nil {
		t.Error("Accounting-On acknowledged by an Access-Accept")
	}
	c.Start(acctSession)
	recv(t, srv) // Accounting-On
	recv(t, srv) // Start
	recv(t, srv) // Start again, after the retry pause: not acknowledged
	if n := c.Pending(); n != 1 {
		t.Fatalf("pending = %d after replies of the wrong code, want 1", n)
	}
	srv.setHandle(ack(t))
	waitPending(t, c, 0)
}

// fsyncCount returns the run loop's fsyncs of the spool.
func fsyncCount(c *Client) int {
	c.accounter.mu.Lock()
	defer c.accounter.mu.Unlock()
	return c.accounter.fsyncs
}

// With spool_sync_interval, records are sent once written and the spool
// is fsynced at most once per interval (a fake clock, frozen, then moved
// on), and once more at close.
func TestSpoolSyncGrouped(t *testing.T) {
	srv := newFakeServer(t, secret, ack(t))
	cfg := acctConfig(t, t.TempDir(), srv.port())
	cfg.SpoolSyncInterval = time.Second
	var mu sync.Mutex
	now := time.Unix(1000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	c, err := newClient(cfg, nil, clock)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		s := *acctSession
		s.ID = fmt.Sprintf("sess-%d", i)
		c.Start(&s)
		waitPending(t, c, 0) // sent and acknowledged one after another
	}
	if n := fsyncCount(c); n != 1 {
		t.Errorf("%d fsyncs for 20 records within one interval, want 1", n)
	}
	mu.Lock()
	now = now.Add(time.Second)
	mu.Unlock()
	c.Start(acctSession)
	waitPending(t, c, 0)
	if n := fsyncCount(c); n != 2 {
		t.Errorf("%d fsyncs after the interval, want 2", n)
	}
	before := c.accounter.sp.fsyncs
	c.Close()
	if n := c.accounter.sp.fsyncs - before; n != 1 {
		t.Errorf("%d fsyncs at close, want 1 (acknowledgements written since the last)", n)
	}
}

// spool_sync_interval = 0: an fsync before each record is sent, as the
// clock never moves.
func TestSpoolSyncEveryPass(t *testing.T) {
	srv := newFakeServer(t, secret, ack(t))
	cfg := acctConfig(t, t.TempDir(), srv.port())
	cfg.SpoolSyncInterval = 0
	now := time.Unix(1000, 0)
	c, err := newClient(cfg, nil, func() time.Time { return now })
	c = mustClient(t, c, err)
	for i := range 5 {
		s := *acctSession
		s.ID = fmt.Sprintf("sess-%d", i)
		c.Start(&s)
		waitPending(t, c, 0)
	}
	if n := fsyncCount(c); n < 5 {
		t.Errorf("%d fsyncs for 5 records sent one after another, want at least 5", n)
	}
}

// windowClient is an accounting client whose batch window runs on a
// frozen clock (advance moves it past the window), with one record sent
// and acknowledged: the window starts at that send.
func windowClient(t *testing.T) (c *Client, srv *fakeServer, advance func()) {
	t.Helper()
	srv = newFakeServer(t, secret, ack(t))
	cfg := acctConfig(t, t.TempDir(), srv.port())
	cfg.SpoolSyncInterval = time.Second
	c, err := newClient(cfg, nil, time.Now)
	c = mustClient(t, c, err)
	var mu sync.Mutex
	mono := time.Now()
	c.accounter.mu.Lock()
	c.accounter.mono = func() time.Time { mu.Lock(); defer mu.Unlock(); return mono }
	c.accounter.mu.Unlock()
	c.Start(acctSession) // after a quiet spell: at once
	waitPending(t, c, 0)
	return c, srv, func() {
		mu.Lock()
		mono = mono.Add(acctBatchWindow)
		mu.Unlock()
	}
}

// startOnePass adds a Start for session id and waits until the
// accounter's run loop has made a pass after it (the record's own
// wake-up), so that records added one after another each meet a pass.
func startOnePass(t *testing.T, c *Client, id string) {
	t.Helper()
	a := c.accounter
	a.mu.Lock()
	passes := a.passes
	a.mu.Unlock()
	s := *acctSession
	s.ID = id
	c.Start(&s)
	for deadline := time.Now().Add(5 * time.Second); ; {
		a.mu.Lock()
		done := a.passes > passes
		a.mu.Unlock()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the run loop made no pass after a record was added")
		}
		time.Sleep(time.Millisecond) // polling a condition, not standing in for one
	}
}

// Records added within acctBatchWindow of the last records sent, fewer
// than a batch, wait for the window to end and then go out together:
// one system call on the accounting socket for all of them. The
// window's clock is the test's: frozen, nothing more is sent; moved on,
// the batch goes.
func TestAccountingBurstOneSend(t *testing.T) {
	c, srv, advance := windowClient(t)
	const burst = acctBatchMin - 1
	calls := c.acct[0].conn.Calls()
	for i := range burst {
		// Without the window, each would go out on its own pass.
		startOnePass(t, c, fmt.Sprintf("burst-%d", i))
	}
	if n := srv.count(); n != 1 {
		t.Fatalf("the server got %d requests within the window, want 1 (the first record)", n)
	}
	advance()
	waitPending(t, c, 0)
	if n := srv.count(); n != 1+burst {
		t.Errorf("the server got %d requests, want %d", n, 1+burst)
	}
	if n := c.acct[0].conn.Calls() - calls; n != 1 {
		t.Errorf("%d records sent with %d system calls, want 1", burst, n)
	}
}

// The window never holds a full batch: with its clock frozen just after
// a send, records added one pass at a time still go out, acctBatchMin
// at a time, each batch in one system call; only the last few, fewer
// than a batch, wait for the window's end.
func TestAccountingFullBatchesDoNotWait(t *testing.T) {
	c, srv, advance := windowClient(t)
	if p := min(acctBatchMin, c.accounter.parallel/2); p != acctBatchMin {
		t.Fatalf("a batch is %d records with %d in flight; the test wants %d", p, c.accounter.parallel, acctBatchMin)
	}
	calls := c.acct[0].conn.Calls()
	const rest = 5
	for i := range 2*acctBatchMin + rest {
		startOnePass(t, c, fmt.Sprintf("full-%d", i))
	}
	waitPending(t, c, rest) // two full batches went out with the window's clock frozen
	if n := c.acct[0].conn.Calls() - calls; n != 2 {
		t.Errorf("two batches of %d records took %d system calls, want 2", acctBatchMin, n)
	}
	advance()
	waitPending(t, c, 0)
	if n := srv.count(); n != 1+2*acctBatchMin+rest {
		t.Errorf("the server got %d requests, want %d", n, 1+2*acctBatchMin+rest)
	}
}

// spoolIDs reads the segments of dir and returns the Acct-Session-Id of
// every record entry in them (for a fake server's handler: no t.Fatal).
func spoolIDs(dir string) (map[string]bool, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*"+segmentExt))
	if err != nil {
		return nil, err
	}
	ids := map[string]bool{}
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			return nil, err
		}
		ents, _, err := parseSegment(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", n, err)
		}
		for _, e := range ents {
			if e.rec != nil {
				ids[e.rec.ID] = true
			}
		}
	}
	return ids, nil
}

// Every record is in the spool's file before its request leaves: add
// only appends it in memory, and the accounter's pass writes it before
// sending. Within one spool_sync_interval no fsync (which writes too)
// comes between, so the records after the first are on disk only
// through the pass's own write.
func TestRecordWrittenBeforeSent(t *testing.T) {
	dir := t.TempDir()
	var mu sync.Mutex
	var missing []string
	srv := newFakeServer(t, secret, func(raw []byte, p *radius.Packet) []byte {
		id := string(p.Get(attrAcctSessionID))
		ids, err := spoolIDs(dir)
		mu.Lock()
		if err != nil || !ids[id] {
			missing = append(missing, fmt.Sprintf("%s (%v)", id, err))
		}
		mu.Unlock()
		return ack(t)(raw, p)
	})
	cfg := acctConfig(t, dir, srv.port())
	cfg.SpoolSyncInterval = time.Minute
	c, err := New(cfg, nil)
	c = mustClient(t, c, err)
	defer c.Close()
	for i := range 5 {
		s := *acctSession
		s.ID = fmt.Sprintf("sess-%d", i)
		c.Start(&s)
		waitPending(t, c, 0)
	}
	if n := fsyncCount(c); n != 1 {
		t.Errorf("%d fsyncs, want 1 (the first pass's): the later records must reach the file without one", n)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(missing) > 0 {
		t.Errorf("requests sent before their record was in the spool's file: %v", missing)
	}
}

// While the spool's file refuses writes, records are still sent, and the
// run loop tries the write again after the retry pause, no later, and
// without spinning: with the clock frozen, a pass that found the fsync
// due again at once (the write before it failed) would wait zero and
// come round again at once, for ever.
func TestSpoolWriteFailureNoSpin(t *testing.T) {
	srv := newFakeServer(t, secret, ack(t))
	cfg := acctConfig(t, t.TempDir(), srv.port())
	cfg.SpoolSyncInterval = time.Second
	cfg.DeadTime = time.Millisecond // the retry pause: passes come quickly
	now := time.Unix(1000, 0)
	c, err := newClient(cfg, nil, func() time.Time { return now })
	c = mustClient(t, c, err)
	defer c.Close()
	a := c.accounter
	waits := make(chan time.Duration, 64)
	a.mu.Lock()
	good := a.sp.f
	ro, err := os.Open(good.Name()) // read-only: every write fails
	if err != nil {
		a.mu.Unlock()
		t.Fatal(err)
	}
	a.sp.f = ro
	a.waits = waits
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		a.sp.f, a.waits = good, nil
		a.mu.Unlock()
		ro.Close()
	}()
	c.Start(acctSession)
	recv(t, srv) // sent although not written
	// The pass that sent it had found the write failing; the waits of the
	// passes before it (the loop's first, at start) are not of interest.
	for len(waits) > 0 {
		<-waits
	}
	for i := range 20 {
		select {
		case w := <-waits:
			if w <= 0 {
				t.Fatalf("pass %d after the write failed waits %v: the loop spins", i, w)
			}
			if w > cfg.DeadTime {
				t.Fatalf("pass %d after the write failed waits %v, longer than the retry pause %v", i, w, cfg.DeadTime)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("the run loop made no pass %d while the write failed (retry pause %v)", i, cfg.DeadTime)
		}
	}
	a.mu.Lock()
	failing := a.sp.failing
	a.mu.Unlock()
	if !failing {
		t.Error("the spool does not know its writes fail")
	}
}
