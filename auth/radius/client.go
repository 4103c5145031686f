// Package radius is l2tpd's RADIUS client: authentication (PAP, CHAP-MD5,
// MS-CHAPv2) as an auth.Authenticator, accounting with a durable on-disk
// spool as an auth.Accounter, and an RFC 5176 Dynamic Authorization
// (Disconnect/CoA) server. Packets are layeh.com/radius's; this package
// adds what it lacks: Message-Authenticator on every Access-Request and
// its check on every reply (BlastRADIUS, CVE-2024-3596), server failover
// with priority, weight and dead marking, bounded requests in flight.
//
// Each server port has one connected UDP socket (so replies from any
// other source address are never seen) and one reader goroutine that
// hands replies to the waiting request by Identifier; at most
// max_in_flight requests ([radius] max_in_flight, 64 by default; 256 at
// most, one per Identifier) are outstanding per socket.
package radius

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"layeh.com/radius"

	"github.com/l2tpd/l2tpd/auth"
	"github.com/l2tpd/l2tpd/config"
	"github.com/l2tpd/l2tpd/internal/udpbatch"
)

// ErrNoServer: no server answered.
var ErrNoServer = errors.New("no RADIUS server answered")

// Client talks to the configured RADIUS servers. It implements
// auth.Authenticator, auth.AsyncAuthenticator and auth.Accounter. Close
// it to stop.
//
// Requests cost no goroutine, channel or timer of their own: each server
// socket has one reader goroutine that hands a reply to the request
// waiting on its Identifier (exchange.go), and one timer per client,
// set to the earliest deadline of a heap, drives retransmission,
// failover and timeouts. Every request's state is under mu.
type Client struct {
	nas       NAS
	log       *zap.Logger
	auth      []*server
	acct      []*server
	deadAfter int
	deadTime  time.Duration
	inflight  int                       // Identifiers in use per server at most
	now       func() time.Time          // dead marking, Acct-Delay-Time
	clock     func() time.Time          // deadlines of requests (time.Now)
	afterFunc func(func()) stopResetter // the client's one timer

	mu      sync.Mutex
	timers  callHeap // calls waiting for a reply, by deadline
	timer   stopResetter
	timerAt time.Time // when timer fires; zero: stopped
	closed  bool

	unexpected    atomic.Uint64 // replies for an Identifier nobody waits for
	invalid       atomic.Uint64 // replies that failed verification
	retransmitted atomic.Uint64 // requests sent again to the same server after its timeout

	accounter *accounter
	closeOnce sync.Once
	replyBufs *udpbatch.Buffers // the readers' receive buffers
}

// stopResetter is the part of *time.Timer the client uses.
type stopResetter interface {
	Stop() bool
	Reset(time.Duration) bool
}

type server struct {
	name      string // "addr:port" for logs
	addr      netip.AddrPort
	secret    []byte
	priority  int
	weight    int
	timeout   time.Duration
	retries   int
	requireMA bool
	sock      *net.UDPConn   // reads (Client.read), Close
	conn      *udpbatch.Conn // writes, on sock
	wmu       sync.Mutex     // orders writes against Identifier reuse (Client.write); WriteBatch wants one writer

	// Client.mu:
	calls     [256]*call // by Identifier
	inUse     int        // non-nil entries of calls
	nextID    uint8
	queue     []*call // waiting for an Identifier, first come first served
	fails     int
	deadUntil time.Time
}

// New opens sockets to the servers of cfg and the accounting spool in
// cfg.SpoolDir (records left by an earlier run are sent again), and
// starts the accounting sender. log may be nil.
func New(cfg config.RADIUS, log *zap.Logger) (*Client, error) {
	return newClient(cfg, log, time.Now)
}

func newClient(cfg config.RADIUS, log *zap.Logger, now func() time.Time) (*Client, error) {
	if log == nil {
		log = zap.NewNop()
	}
	c := &Client{
		nas:       NAS{Identifier: cfg.NASIdentifier, IPv4: cfg.NASIPAddress, IPv6: cfg.NASIPv6Address},
		log:       log,
		deadAfter: max(cfg.DeadAfter, 1),
		deadTime:  cfg.DeadTime,
		now:       now,
		clock:     time.Now,
		afterFunc: func(f func()) stopResetter { return time.AfterFunc(time.Hour, f) },
		inflight:  cfg.MaxInFlight,
	}
	if c.inflight <= 0 || c.inflight > 256 {
		c.inflight = 256
	}
	bufs, err := udpbatch.NewBuffers(replyBatch, radius.MaxPacketLength)
	if err != nil {
		return nil, fmt.Errorf("radius: %w", err)
	}
	c.replyBufs = bufs
	c.timer = c.afterFunc(c.onTimer)
	c.timer.Stop()
	for _, s := range cfg.Servers {
		for _, p := range []struct {
			port int
			list *[]*server
		}{{s.AuthPort, &c.auth}, {s.AcctPort, &c.acct}} {
			if p.port == 0 {
				continue
			}
			ap := netip.AddrPortFrom(s.Address, uint16(p.port))
			conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(ap))
			if err != nil {
				c.Close()
				return nil, fmt.Errorf("radius: socket to server %s: %w", ap, err)
			}
			// A burst of answers (a LAC re-dialling thousands of calls)
			// must wait in the socket, not be dropped and resent after
			// the timeout: room for thousands of replies.
			if _, err := udpbatch.SetReceiveBuffer(conn, replyBuffer); err != nil {
				c.log.Warn("radius: cannot enlarge the receive buffer; a burst of replies may be dropped and retransmitted (raise net.core.rmem_max)",
					zap.Stringer("server", ap), zap.Error(err))
			}
			srv := &server{name: ap.String(), addr: ap, secret: s.Secret, priority: s.Priority, weight: max(s.Weight, 1),
				timeout: s.Timeout, retries: s.Retries, requireMA: s.RequireMessageAuthenticator, sock: conn, conn: udpbatch.NewConn(conn)}
			*p.list = append(*p.list, srv)
			go c.read(srv)
		}
	}
	if len(c.acct) > 0 {
		a, err := newAccounter(c, cfg)
		if err != nil {
			c.Close()
			return nil, err
		}
		c.accounter = a
	}
	return c, nil
}

// Close stops the accounting sender (records not yet acknowledged stay in
// the spool for the next run), ends every request still outstanding with
// ErrClosed and closes the sockets. Calls after the first do nothing.
func (c *Client) Close() error {
	c.closeOnce.Do(c.close)
	return nil
}

func (c *Client) close() {
	if c.accounter != nil {
		c.accounter.stop()
	}
	c.mu.Lock()
	c.closed = true
	out := getCompletions()
	for _, s := range slices.Concat(c.auth, c.acct) {
		for _, cl := range s.calls {
			if cl != nil {
				c.finish(cl, nil, ErrClosed, out)
			}
		}
		q := s.queue
		s.queue = nil
		for _, cl := range q {
			c.finish(cl, nil, ErrClosed, out)
		}
	}
	c.timer.Stop()
	c.timerAt = time.Time{}
	c.mu.Unlock()
	c.deliver(out)
	if c.accounter != nil {
		c.accounter.close()
	}
	for _, s := range slices.Concat(c.auth, c.acct) {
		s.sock.Close()
	}
}

// replyBatch is how many replies one read takes at most.
const replyBatch = 16

// replyBuffer is the receive buffer asked for on each server socket.
const replyBuffer = 4 << 20

// ErrClosed: the client was closed before the request was answered.
var ErrClosed = errors.New("radius client closed")

// Stats counts, since New, requests sent again and replies that reached
// no request.
type Stats struct {
	// Retransmitted: requests (authentication and accounting) sent again
	// to the same server because no valid reply came within its timeout.
	// A burst of them with no timeouts means replies or requests were
	// lost on the way (often the server's receive buffer): see
	// max_in_flight.
	Retransmitted uint64
	Unexpected    uint64 // replies for an Identifier no request waits for (late, duplicate or stray)
	Invalid       uint64 // replies that failed verification (authenticators, length, Identifier): forged or corrupt
}

// Stats returns the client's counts since New.
func (c *Client) Stats() Stats {
	return Stats{Retransmitted: c.retransmitted.Load(), Unexpected: c.unexpected.Load(), Invalid: c.invalid.Load()}
}

// order returns the servers to try: live ones (and dead ones due for a
// probe) by priority, shuffled by weight within a priority; dead ones last.
// c.mu is held.
func (c *Client) order(list []*server) []*server {
	if len(list) == 1 {
		return list
	}
	now := c.now()
	var live, dead []*server
	for _, s := range list {
		if s.fails >= c.deadAfter && now.Before(s.deadUntil) {
			dead = append(dead, s)
		} else {
			live = append(live, s)
		}
	}
	keys := make(map[*server]float64, len(list))
	for _, s := range list {
		// Weighted random order (Efraimidis-Spirakis): u^(1/w), descending.
		keys[s] = -math.Pow(rand.Float64(), 1/float64(s.weight))
	}
	cmp := func(a, b *server) int {
		if a.priority != b.priority {
			return a.priority - b.priority
		}
		switch {
		case keys[a] < keys[b]:
			return -1
		case keys[a] > keys[b]:
			return 1
		}
		return 0
	}
	slices.SortFunc(live, cmp)
	slices.SortFunc(dead, cmp)
	return append(live, dead...)
}

// result records whether s answered a request. c.mu is held.
func (c *Client) result(s *server, ok bool) {
	if ok {
		if s.fails >= c.deadAfter {
			c.log.Info("radius server is alive again", zap.String("server", s.name))
		}
		s.fails = 0
		return
	}
	s.fails++
	if s.fails >= c.deadAfter {
		s.deadUntil = c.now().Add(c.deadTime)
		if s.fails == c.deadAfter {
			c.log.Warn("radius server marked dead", zap.String("server", s.name), zap.Int("failures", s.fails), zap.Duration("probe_in", c.deadTime))
		}
	}
}

// encodeFunc appends the encoded request for server s with Identifier id
// to b (called once per server tried: the secret differs).
type encodeFunc func(b []byte, s *server, id uint8) ([]byte, error)

// exchange sends the request encoded by enc to the servers of list in
// order until one answers, or ctx ends: the synchronous form of start. It
// returns a copy of the verified reply.
func (c *Client) exchange(ctx context.Context, list []*server, enc encodeFunc) ([]byte, *server, error) {
	type answer struct {
		p   []byte
		s   *server
		err error
	}
	ch := make(chan answer, 1)
	cancel := c.start(list, enc, func(p []byte, s *server, err error) { ch <- answer{bytes.Clone(p), s, err} })
	select {
	case a := <-ch:
		return a.p, a.s, a.err
	case <-ctx.Done():
		cancel()
		if a := <-ch; a.err == nil {
			return a.p, a.s, nil // the reply won the race
		}
		return nil, nil, ctx.Err()
	}
}

// Buffers for attribute lists, reused across requests.
var attrBufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

type buildError struct{ error }

func (e buildError) Unwrap() error { return e.error }

// Authenticate implements auth.Authenticator: AuthenticateAsync, waited
// for, cancelled when ctx ends.
func (c *Client) Authenticate(ctx context.Context, req *auth.Request) (*auth.Result, error) {
	type answer struct {
		r   *auth.Result
		err error
	}
	ch := make(chan answer, 1)
	cancel := c.AuthenticateAsync(req, func(r *auth.Result, err error) { ch <- answer{r, err} })
	select {
	case a := <-ch:
		return a.r, a.err
	case <-ctx.Done():
		cancel()
		a := <-ch
		if a.err != nil && errors.Is(a.err, context.Canceled) && ctx.Err() != context.Canceled {
			a.err = fmt.Errorf("radius: authenticating %q (session %s): %w", req.Username, req.Session.AcctSessionID, ctx.Err())
		}
		return a.r, a.err
	}
}

// AuthenticateAsync implements auth.AsyncAuthenticator (see its contract):
// the Access-Request goes out before it returns, unless every Identifier
// of the server is in use (max_in_flight), when it waits in line.
func (c *Client) AuthenticateAsync(req *auth.Request, done func(*auth.Result, error)) (cancel func()) {
	cl := &call{kind: callAccess, areq: req, adone: done}
	c.begin(c.auth, cl)
	return func() { c.cancel(cl) }
}

// appendAccess appends the Access-Request for req to server s with
// Identifier id to b, with a fresh random Request Authenticator.
func (c *Client) appendAccess(b []byte, s *server, id uint8, req *auth.Request) ([]byte, error) {
	var reqAuth [16]byte
	crand.Read(reqAuth[:])
	ab := attrBufs.Get().(*[]byte)
	defer attrBufs.Put(ab)
	a, err := appendAccessRequest((*ab)[:0], s.secret, reqAuth[:], &c.nas, req)
	if err != nil {
		return nil, err
	}
	*ab = a
	return appendRequest(b, radius.CodeAccessRequest, id, reqAuth[:], s.secret, true, a)
}

// authResult turns the answer to an Access-Request (the verified reply
// p, valid during the call only) into the result.
func (c *Client) authResult(req *auth.Request, p []byte, s *server, err error) (*auth.Result, error) {
	if err != nil {
		return nil, fmt.Errorf("radius: authenticating %q (session %s): %w", req.Username, req.Session.AcctSessionID, err)
	}
	code := radius.Code(p[0])
	switch code {
	case radius.CodeAccessAccept, radius.CodeAccessReject:
	case radius.CodeAccessChallenge:
		return &auth.Result{Message: "Access-Challenge is not supported"}, nil
	default:
		return nil, fmt.Errorf("radius: authenticating %q: server %s answered with %v", req.Username, s.name, code)
	}
	r, err := parseReply(code, p[20:])
	if err != nil {
		c.log.Warn("radius reply treated as a reject", zap.String("server", s.name), zap.String("user", req.Username), zap.Error(err))
		return &auth.Result{}, nil
	}
	if r.Accept && req.Method == auth.MethodMSCHAPv2 && r.MSCHAPv2AuthResponse == "" {
		c.log.Warn("radius Access-Accept for MS-CHAPv2 without MS-CHAP2-Success: treated as a reject", zap.String("server", s.name), zap.String("user", req.Username))
		return &auth.Result{}, nil
	}
	return r, nil
}
