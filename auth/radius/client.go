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
// hands replies to the waiting request by Identifier; at most 256
// requests (max_in_flight) are outstanding per socket.
package radius

import (
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
	"time"

	"go.uber.org/zap"
	"layeh.com/radius"

	"github.com/l2tpd/l2tpd/auth"
	"github.com/l2tpd/l2tpd/config"
)

// ErrNoServer: no server answered.
var ErrNoServer = errors.New("no RADIUS server answered")

// Client talks to the configured RADIUS servers. It implements
// auth.Authenticator and auth.Accounter. Close it to stop.
type Client struct {
	nas       NAS
	log       *zap.Logger
	auth      []*server
	acct      []*server
	deadAfter int
	deadTime  time.Duration
	now       func() time.Time

	accounter *accounter
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
	conn      *net.UDPConn
	slots     chan struct{}

	mu        sync.Mutex
	waiters   [256]chan []byte
	nextID    uint8
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
	}
	inflight := cfg.MaxInFlight
	if inflight <= 0 || inflight > 256 {
		inflight = 256
	}
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
			srv := &server{name: ap.String(), addr: ap, secret: s.Secret, priority: s.Priority, weight: max(s.Weight, 1),
				timeout: s.Timeout, retries: s.Retries, requireMA: s.RequireMessageAuthenticator,
				conn: conn, slots: make(chan struct{}, inflight)}
			*p.list = append(*p.list, srv)
			go srv.read()
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
// the spool for the next run) and closes the sockets.
func (c *Client) Close() error {
	if c.accounter != nil {
		c.accounter.close()
	}
	for _, s := range slices.Concat(c.auth, c.acct) {
		s.conn.Close()
	}
	return nil
}

func (s *server) read() {
	buf := make([]byte, radius.MaxPacketLength)
	for {
		n, err := s.conn.Read(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue // ICMP errors (ECONNREFUSED): the request times out
		}
		if n < 20 {
			continue
		}
		s.mu.Lock()
		ch := s.waiters[buf[1]]
		s.mu.Unlock()
		if ch != nil {
			select {
			case ch <- append([]byte(nil), buf[:n]...):
			default:
			}
		}
	}
}

// order returns the servers to try: live ones (and dead ones due for a
// probe) by priority, shuffled by weight within a priority; dead ones last.
func (c *Client) order(list []*server) []*server {
	now := c.now()
	var live, dead []*server
	for _, s := range list {
		s.mu.Lock()
		d := s.fails >= c.deadAfter && now.Before(s.deadUntil)
		s.mu.Unlock()
		if d {
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

func (c *Client) result(s *server, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
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
// order until one answers.
func (c *Client) exchange(ctx context.Context, list []*server, enc encodeFunc) (*radius.Packet, *server, error) {
	if len(list) == 0 {
		return nil, nil, fmt.Errorf("%w: no server configured", ErrNoServer)
	}
	var errs []error
	for _, s := range c.order(list) {
		p, err := s.exchange(ctx, enc)
		if err == nil {
			c.result(s, true)
			return p, s, nil
		}
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		var be buildError
		if errors.As(err, &be) {
			return nil, nil, err
		}
		c.result(s, false)
		errs = append(errs, fmt.Errorf("server %s: %w", s.name, err))
	}
	return nil, nil, fmt.Errorf("%w: %w", ErrNoServer, errors.Join(errs...))
}

// Buffers for encoded requests and attribute lists, reused across
// requests (a request's bytes are only needed until its exchange ends).
var (
	reqBufs  = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}
	attrBufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}
)

type buildError struct{ error }

func (e buildError) Unwrap() error { return e.error }

func (s *server) exchange(ctx context.Context, enc encodeFunc) (*radius.Packet, error) {
	select {
	case s.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-s.slots }()

	ch := make(chan []byte, 4)
	s.mu.Lock()
	id, found := s.nextID, false
	for range 256 {
		if s.waiters[id] == nil {
			found = true
			break
		}
		id++
	}
	if !found { // cannot happen: slots <= 256
		s.mu.Unlock()
		return nil, errors.New("no free RADIUS Identifier")
	}
	s.waiters[id] = ch
	s.nextID = id + 1
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.waiters[id] = nil
		s.mu.Unlock()
	}()

	bp := reqBufs.Get().(*[]byte)
	defer reqBufs.Put(bp)
	req, err := enc((*bp)[:0], s, id)
	if err != nil {
		return nil, buildError{err}
	}
	*bp = req
	timer := time.NewTimer(s.timeout)
	defer timer.Stop()
	var lastErr error = errors.New("timed out")
	for try := 0; try <= s.retries; try++ {
		if _, err := s.conn.Write(req); err != nil {
			lastErr = fmt.Errorf("send: %w", err)
		}
		timer.Reset(s.timeout)
	wait:
		for {
			select {
			case resp := <-ch:
				rp, err := verifyResponse(resp, req, s.secret, s.requireMA)
				if err != nil {
					// A forged or corrupted reply is dropped; keep
					// waiting for the real one.
					lastErr = err
					continue
				}
				return rp, nil
			case <-timer.C:
				break wait
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
	}
	return nil, fmt.Errorf("no valid reply after %d tries of %s: %w", s.retries+1, s.timeout, lastErr)
}

// Authenticate implements auth.Authenticator.
func (c *Client) Authenticate(ctx context.Context, req *auth.Request) (*auth.Result, error) {
	p, s, err := c.exchange(ctx, c.auth, func(b []byte, s *server, id uint8) ([]byte, error) {
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
	})
	if err != nil {
		return nil, fmt.Errorf("radius: authenticating %q (session %s): %w", req.Username, req.Session.AcctSessionID, err)
	}
	switch p.Code {
	case radius.CodeAccessAccept, radius.CodeAccessReject:
	case radius.CodeAccessChallenge:
		return &auth.Result{Message: "Access-Challenge is not supported"}, nil
	default:
		return nil, fmt.Errorf("radius: authenticating %q: server %s answered with %v", req.Username, s.name, p.Code)
	}
	r, err := parseReply(p)
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
