package radius

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"layeh.com/radius"

	"github.com/l2tpd/l2tpd/auth"
	"github.com/l2tpd/l2tpd/internal/fault"
)

var papReq = &auth.Request{Method: auth.MethodPAP, Username: "a", Password: []byte("x")}

// doneRecorder collects the answers of AuthenticateAsync calls and fails
// the test when one is delivered twice.
type doneRecorder struct {
	t     *testing.T
	mu    sync.Mutex
	calls map[int]int
	errs  map[int]error
	ch    chan int
}

func newDoneRecorder(t *testing.T) *doneRecorder {
	return &doneRecorder{t: t, calls: map[int]int{}, errs: map[int]error{}, ch: make(chan int, 1024)}
}

func (d *doneRecorder) done(i int) func(*auth.Result, error) {
	return func(r *auth.Result, err error) {
		d.mu.Lock()
		d.calls[i]++
		if d.calls[i] > 1 {
			d.t.Errorf("request %d: done called %d times", i, d.calls[i])
		}
		d.errs[i] = err
		d.mu.Unlock()
		d.ch <- i
	}
}

func (d *doneRecorder) wait(t *testing.T) int {
	t.Helper()
	select {
	case i := <-d.ch:
		return i
	case <-time.After(5 * time.Second):
		t.Fatal("no answer delivered")
		return -1
	}
}

func (d *doneRecorder) err(i int) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.errs[i]
}

func recvReq(t *testing.T, s *fakeServer) *radius.Packet {
	t.Helper()
	select {
	case p := <-s.got:
		return p
	case <-time.After(5 * time.Second):
		t.Fatal("no request arrived")
		return nil
	}
}

// A reply for an Identifier nobody waits for is dropped and counted; a
// forged one for a waiting request is counted as invalid and the request
// still takes the real reply after it.
func TestUnexpectedReplyDroppedAndCounted(t *testing.T) {
	// The handler runs after the fake server signals recvReq: the test
	// waits for the bytes from the handler itself.
	held := make(chan []byte, 1)
	srv := newFakeServer(t, secret, func(raw []byte, p *radius.Packet) []byte {
		held <- append([]byte(nil), raw...)
		return nil
	})
	cfg := testConfig(t, secret, srv.port())
	cfg.Servers[0].Timeout = 10 * time.Second
	c, err := New(cfg, nil)
	c = mustClient(t, c, err)
	rec := newDoneRecorder(t)
	c.AuthenticateAsync(papReq, rec.done(0))
	recvReq(t, srv)
	raw := <-held
	good := reply(t, raw, []byte(secret), radius.CodeAccessAccept, true)

	// Sent from the server's address, so the connected socket takes it.
	stray := append([]byte(nil), good...)
	stray[1]++ // an Identifier nobody waits for
	forged := append([]byte(nil), good...)
	forged[len(forged)-1] ^= 1
	for _, b := range [][]byte{stray, forged} {
		if _, err := srv.conn.WriteToUDPAddrPort(b, clientAddr(t, c)); err != nil {
			t.Fatal(err)
		}
	}
	// The real reply comes last; the answer proves the two before it were read.
	if _, err := srv.conn.WriteToUDPAddrPort(good, clientAddr(t, c)); err != nil {
		t.Fatal(err)
	}
	rec.wait(t)
	if err := rec.err(0); err != nil {
		t.Fatalf("answer: %v", err)
	}
	if st := c.Stats(); st.Unexpected != 1 || st.Invalid != 1 {
		t.Errorf("reply stats %+v, want 1 unexpected, 1 invalid", st)
	}
	// The same reply again: its request was answered, nobody waits.
	srv.conn.WriteToUDPAddrPort(good, clientAddr(t, c))
	deadline := time.Now().Add(5 * time.Second)
	for c.Stats().Unexpected != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("a duplicate reply was not counted: %+v", c.Stats())
		}
		time.Sleep(time.Millisecond) // polling a counter, not standing in for an event
	}
}

// clientAddr is the local address of the client's socket to its only
// authentication server.
func clientAddr(t *testing.T, c *Client) netip.AddrPort {
	t.Helper()
	return c.auth[0].sock.LocalAddr().(*net.UDPAddr).AddrPort()
}

// cancel stops retransmission: after the deadline only the request still
// wanted goes out again; the cancelled one's done ran once, with
// context.Canceled, before cancel returned.
func TestCancelStopsRetransmission(t *testing.T) {
	srv := newFakeServer(t, secret, func([]byte, *radius.Packet) []byte { return nil })
	cfg := testConfig(t, secret, srv.port())
	cfg.Servers[0].Timeout = time.Hour // the real timer never fires: tick is driven by hand
	cfg.Servers[0].Retries = 3
	c, err := New(cfg, nil)
	c = mustClient(t, c, err)
	rec := newDoneRecorder(t)
	c.AuthenticateAsync(papReq, rec.done(0))
	idKeep := recvReq(t, srv).Identifier
	cancel := c.AuthenticateAsync(papReq, rec.done(1))
	idGone := recvReq(t, srv).Identifier
	cancel()
	select {
	case i := <-rec.ch:
		if i != 1 || !errors.Is(rec.err(1), context.Canceled) {
			t.Fatalf("answer of %d: %v; want 1, context.Canceled", i, rec.err(i))
		}
	default:
		t.Fatal("done had not run when cancel returned")
	}
	cancel() // idempotent: no second done

	c.tick(c.clock().Add(2 * time.Hour))
	if p := recvReq(t, srv); p.Identifier != idKeep {
		t.Fatalf("retransmitted Identifier %d, want %d (the cancelled one was %d)", p.Identifier, idKeep, idGone)
	}
	// A marker sent after the tick: everything the tick wrote arrived before it.
	c.AuthenticateAsync(&auth.Request{Method: auth.MethodPAP, Username: "marker", Password: []byte("x")}, rec.done(2))
	if p := recvReq(t, srv); string(p.Get(attrUserName)) != "marker" {
		t.Fatalf("after the retransmission: request %d for %q, want the marker", p.Identifier, p.Get(attrUserName))
	}
	c.mu.Lock()
	inUse := c.auth[0].inUse
	c.mu.Unlock()
	if inUse != 2 {
		t.Errorf("%d Identifiers in use, want 2 (the cancelled one freed)", inUse)
	}
}

// 256 requests in flight take every Identifier of the socket; more wait in
// line and go out, first come first served, with the Identifier of each
// request that ends; Close answers every one that is left, once.
func TestIdentifierExhaustion(t *testing.T) {
	srv := newFakeServer(t, secret, func([]byte, *radius.Packet) []byte { return nil })
	cfg := testConfig(t, secret, srv.port())
	cfg.MaxInFlight = 256
	cfg.Servers[0].Timeout = time.Hour
	c, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	rec := newDoneRecorder(t)
	const n = 300
	cancels := make([]func(), n)
	for i := range n {
		cancels[i] = c.AuthenticateAsync(&auth.Request{Method: auth.MethodPAP, Username: string(rune('A' + i%26)), Password: []byte("x")}, rec.done(i))
	}
	seen := map[uint8]bool{}
	for range 256 {
		p := recvReq(t, srv)
		if seen[p.Identifier] {
			t.Fatalf("Identifier %d used twice", p.Identifier)
		}
		seen[p.Identifier] = true
	}
	c.mu.Lock()
	inUse, queued := c.auth[0].inUse, len(c.auth[0].queue)
	c.mu.Unlock()
	if inUse != 256 || queued != n-256 {
		t.Fatalf("in use %d, queued %d; want 256, %d", inUse, queued, n-256)
	}
	// The first request ends: the first in line takes its Identifier.
	c.mu.Lock()
	freed := c.auth[0].calls[0]
	c.mu.Unlock()
	if freed == nil {
		t.Fatal("Identifier 0 not in use")
	}
	cancels[0]()
	if p := recvReq(t, srv); p.Identifier != 0 {
		t.Fatalf("the queued request went out with Identifier %d, want the freed 0", p.Identifier)
	}
	// A queued request given up leaves the line without being sent.
	cancels[n-1]()
	c.Close()
	got := map[int]bool{}
	for range n {
		i := rec.wait(t)
		got[i] = true
		err := rec.err(i)
		switch {
		case i == 0 || i == n-1:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("request %d: %v, want context.Canceled", i, err)
			}
		case !errors.Is(err, ErrClosed):
			t.Errorf("request %d: %v, want ErrClosed", i, err)
		}
	}
	if len(got) != n {
		t.Errorf("%d requests answered, want %d", len(got), n)
	}
	if k := srv.count(); k != 257 {
		t.Errorf("server got %d requests, want 257", k)
	}
}

// Retries, then failover, then ErrNoServer, all from the client's one
// timer: ticks driven by hand.
func TestTickRetransmitsThenFailsOver(t *testing.T) {
	a := newFakeServer(t, secret, func([]byte, *radius.Packet) []byte { return nil })
	b := newFakeServer(t, secret, func([]byte, *radius.Packet) []byte { return nil })
	cfg := testConfig(t, secret, a.port(), b.port())
	for i := range cfg.Servers {
		cfg.Servers[i].Timeout = time.Hour
		cfg.Servers[i].Retries = 1
	}
	c, err := New(cfg, nil)
	c = mustClient(t, c, err)
	rec := newDoneRecorder(t)
	c.AuthenticateAsync(papReq, rec.done(0))
	recvReq(t, a)
	t0 := c.clock()
	c.tick(t0.Add(time.Hour - time.Second)) // not due
	c.tick(t0.Add(time.Hour + time.Second)) // retry on a
	recvReq(t, a)
	if n := c.Stats().Retransmitted; n != 1 {
		t.Errorf("after the retry on a: %d retransmissions counted, want 1", n)
	}
	c.tick(t0.Add(2*time.Hour + 2*time.Second)) // a gave up: b
	recvReq(t, b)
	if n := c.Stats().Retransmitted; n != 1 {
		t.Errorf("after failing over to b: %d retransmissions counted, want 1 (a first request to b is not one)", n)
	}
	select {
	case <-rec.ch:
		t.Fatal("answered before the last server timed out")
	default:
	}
	c.tick(t0.Add(3*time.Hour + 3*time.Second)) // retry on b
	recvReq(t, b)
	c.tick(t0.Add(4*time.Hour + 4*time.Second)) // b gave up
	rec.wait(t)
	if err := rec.err(0); !errors.Is(err, ErrNoServer) {
		t.Fatalf("answer: %v, want ErrNoServer", err)
	}
	if n, m := a.count(), b.count(); n != 2 || m != 2 {
		t.Errorf("requests %d to a and %d to b, want 2 each", n, m)
	}
	if n := c.Stats().Retransmitted; n != 2 {
		t.Errorf("%d retransmissions counted, want 2 (one per server)", n)
	}
}

// Close is idempotent: a second call neither logs an error (the spool
// closed twice) nor fails.
func TestCloseTwice(t *testing.T) {
	core, logs := observer.New(zap.WarnLevel)
	cfg := acctConfig(t, t.TempDir(), 9) // nothing is sent
	c, err := New(cfg, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	for _, e := range logs.All() {
		t.Errorf("logged at %v: %s %v", e.Level, e.Message, e.ContextMap())
	}
	rec := newDoneRecorder(t)
	c.AuthenticateAsync(papReq, rec.done(0))
	rec.wait(t)
	if err := rec.err(0); !errors.Is(err, ErrClosed) && !errors.Is(err, ErrNoServer) {
		t.Errorf("request after Close: %v, want ErrClosed or ErrNoServer", err)
	}
}

// A request waiting in line for an Identifier has a deadline of its own,
// counted from when it asked: timeout times (retries+1) after that it is
// answered with the timeout error (ErrNoServer, errNoIdentifier) without
// having been sent, while the request holding the Identifier goes on.
func TestQueuedRequestTimesOut(t *testing.T) {
	srv := newFakeServer(t, secret, func([]byte, *radius.Packet) []byte { return nil })
	cfg := testConfig(t, secret, srv.port())
	cfg.MaxInFlight = 1
	cfg.Servers[0].Timeout = time.Hour // the real timer never fires: tick is driven by hand
	cfg.Servers[0].Retries = 1
	c, err := New(cfg, nil)
	c = mustClient(t, c, err)
	rec := newDoneRecorder(t)
	c.AuthenticateAsync(papReq, rec.done(0))
	recvReq(t, srv)
	c.AuthenticateAsync(papReq, rec.done(1)) // waits in line
	t1 := c.clock()
	c.tick(t1.Add(time.Hour + time.Second)) // retry of 0; 1 still has time
	recvReq(t, srv)
	select {
	case i := <-rec.ch:
		t.Fatalf("request %d answered early: %v", i, rec.err(i))
	default:
	}
	c.tick(t1.Add(2*time.Hour + time.Second/2)) // 1's two hours are up, 0's last try is not
	if i := rec.wait(t); i != 1 {
		t.Fatalf("request %d answered, want 1", i)
	}
	if err := rec.err(1); !errors.Is(err, ErrNoServer) || !errors.Is(err, errNoIdentifier) {
		t.Fatalf("queued request: %v, want ErrNoServer and errNoIdentifier", err)
	}
	c.mu.Lock()
	inUse, queued, timers := c.auth[0].inUse, len(c.auth[0].queue), len(c.timers)
	c.mu.Unlock()
	if inUse != 1 || queued != 0 || timers != 1 {
		t.Errorf("in use %d, queued %d, deadlines %d; want 1, 0, 1", inUse, queued, timers)
	}
	if n := srv.count(); n != 2 {
		t.Errorf("server got %d requests, want 2 (request 0 twice)", n)
	}
}

// A request that waited in line keeps the deadline counted from when it
// asked: sent late, it gets only what is left of it.
func TestDequeuedRequestKeepsItsDeadline(t *testing.T) {
	srv := newFakeServer(t, secret, func([]byte, *radius.Packet) []byte { return nil })
	cfg := testConfig(t, secret, srv.port())
	cfg.MaxInFlight = 1
	cfg.Servers[0].Timeout = time.Hour
	cfg.Servers[0].Retries = 0
	c, err := New(cfg, nil)
	c = mustClient(t, c, err)
	var clockMu sync.Mutex
	t0 := time.Now()
	now := t0
	c.mu.Lock()
	c.clock = func() time.Time { clockMu.Lock(); defer clockMu.Unlock(); return now }
	c.mu.Unlock()
	setNow := func(d time.Duration) { clockMu.Lock(); now = t0.Add(d); clockMu.Unlock() }

	rec := newDoneRecorder(t)
	cancel0 := c.AuthenticateAsync(papReq, rec.done(0))
	recvReq(t, srv)
	c.AuthenticateAsync(papReq, rec.done(1)) // in line from t0
	setNow(50 * time.Minute)
	cancel0() // 1 goes out now, with ten minutes of its hour left
	if i := rec.wait(t); i != 0 {
		t.Fatalf("request %d answered, want 0", i)
	}
	recvReq(t, srv)
	c.mu.Lock()
	dl := c.auth[0].calls[c.auth[0].nextID-1].deadline
	c.mu.Unlock()
	if want := t0.Add(time.Hour); !dl.Equal(want) {
		t.Errorf("deadline of the dequeued request t0+%v, want t0+1h", dl.Sub(t0))
	}
	c.tick(t0.Add(time.Hour))
	rec.wait(t)
	if err := rec.err(1); !errors.Is(err, ErrNoServer) || errors.Is(err, errNoIdentifier) {
		t.Fatalf("dequeued request: %v, want ErrNoServer from a timeout after its send", err)
	}
	if n := srv.count(); n != 2 {
		t.Errorf("server got %d requests, want 2", n)
	}
}

// Requests from many goroutines at once, more than the Identifiers
// allowed in flight: written outside the client's lock, every one is
// answered once, with its own reply (none fails verification or goes
// unclaimed, as a stale write under a reused Identifier would make one).
// Run with -race.
func TestConcurrentSendsOutsideLock(t *testing.T) {
	srv := newFakeServer(t, secret, func(raw []byte, p *radius.Packet) []byte {
		return reply(t, raw, []byte(secret), radius.CodeAccessAccept, true, avp(attrReplyMessage, p.Get(attrUserName)))
	})
	cfg := testConfig(t, secret, srv.port())
	cfg.MaxInFlight = 8
	cfg.Servers[0].Timeout = time.Minute
	c, err := New(cfg, nil)
	c = mustClient(t, c, err)
	const workers, each = 8, 50
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				user := string(rune('a'+w)) + "-" + string(rune('A'+i%26))
				r, err := c.Authenticate(context.Background(), &auth.Request{Method: auth.MethodPAP, Username: user, Password: []byte("x")})
				switch {
				case err != nil:
					errs <- err
				case !r.Accept || r.Message != user:
					errs <- errors.New("request " + user + " got the answer for " + r.Message)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if st := c.Stats(); st != (Stats{}) {
		t.Errorf("replies dropped: %+v", st)
	}
	if n := srv.count(); n != workers*each {
		t.Errorf("server got %d requests, want %d (no retransmission)", n, workers*each)
	}
}

// A write queued for a request that let go of its Identifier before the
// write ran is dropped: the Identifier may already be another request's.
func TestStaleWriteDropped(t *testing.T) {
	srv := newFakeServer(t, secret, func([]byte, *radius.Packet) []byte { return nil })
	cfg := testConfig(t, secret, srv.port())
	cfg.Servers[0].Timeout = time.Hour
	c, err := New(cfg, nil)
	c = mustClient(t, c, err)
	rec := newDoneRecorder(t)
	cancel := c.AuthenticateAsync(papReq, rec.done(0))
	p := recvReq(t, srv)
	c.mu.Lock()
	cl := c.auth[0].calls[p.Identifier]
	w := pendingWrite{cl: cl, s: c.auth[0], req: cl.req, gen: cl.gen.Load()}
	c.mu.Unlock()
	cancel()
	c.write(w) // stale: nothing goes out
	c.AuthenticateAsync(&auth.Request{Method: auth.MethodPAP, Username: "marker", Password: []byte("x")}, rec.done(1))
	if p := recvReq(t, srv); string(p.Get(attrUserName)) != "marker" {
		t.Fatalf("request %d for %q arrived, want the marker (the stale write went out)", p.Identifier, p.Get(attrUserName))
	}
}

// A panic while a reply is handled (here in the caller's done) drops that
// datagram, is logged with its stack and counted as invalid; the reader
// goes on and answers the next request.
func TestReplyPanicKeepsReader(t *testing.T) {
	srv := newFakeServer(t, secret, func(raw []byte, p *radius.Packet) []byte {
		return reply(t, raw, []byte(secret), radius.CodeAccessAccept, true)
	})
	before := fault.Total()
	core, logs := observer.New(zap.ErrorLevel)
	c, err := New(testConfig(t, secret, srv.port()), zap.New(core))
	c = mustClient(t, c, err)
	panicked := make(chan struct{})
	c.AuthenticateAsync(papReq, func(*auth.Result, error) {
		close(panicked)
		panic("test: a bug in the caller's done")
	})
	select {
	case <-panicked:
	case <-time.After(5 * time.Second):
		t.Fatal("the first request was never answered")
	}
	rec := newDoneRecorder(t)
	c.AuthenticateAsync(papReq, rec.done(1))
	if i := rec.wait(t); i != 1 || rec.err(1) != nil {
		t.Fatalf("second request: %d, %v", i, rec.err(1))
	}
	if n := logs.FilterMessageSnippet("internal error handling a reply").Len(); n != 1 {
		t.Fatalf("%d error lines for the panic, want 1", n)
	}
	if n := fault.Total() - before; n != 1 {
		t.Fatalf("%d panics counted, want 1", n)
	}
}

// beginMany on a closed client, or with no server, ends every call it
// was given with the error, each exactly once.
func TestBeginManyEndsEveryCall(t *testing.T) {
	cfg := acctConfig(t, t.TempDir(), 9) // nothing is sent
	c, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		list []*server
		want error
	}{{"no server", nil, ErrNoServer}, {"closed", c.acct, ErrClosed}} {
		if tc.want == ErrClosed {
			c.Close()
		}
		got := make([][]error, 3)
		cls := make([]*call, len(got))
		for i := range cls {
			cls[i] = &call{kind: callFunc, done: func(_ []byte, _ *server, err error) { got[i] = append(got[i], err) }}
		}
		c.beginMany(tc.list, cls)
		for i, errs := range got {
			if len(errs) != 1 || !errors.Is(errs[0], tc.want) || !cls[i].finished {
				t.Errorf("%s: call %d ended with %v (finished %v), want %v once", tc.name, i, errs, cls[i].finished, tc.want)
			}
		}
	}
}
