package radius

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"go.uber.org/zap"
	"layeh.com/radius"

	"github.com/l2tpd/l2tpd/config"
)

// Match selects sessions in a Disconnect-Request or CoA-Request (RFC 5176
// 3): every non-zero field must match.
type Match struct {
	AcctSessionID    string
	UserName         string
	FramedIP         netip.Addr
	CallingStationID string
}

// Change is what a CoA-Request changes; nil: unchanged.
type Change struct {
	SessionTimeout  *time.Duration
	IdleTimeout     *time.Duration
	InterimInterval *time.Duration
}

// DAEHandler is implemented by the daemon: it finds and acts on sessions.
// Both methods return how many sessions matched (0: Error-Cause 503
// Session-Context-Not-Found). They are called from the DAE goroutine and
// should not block for long.
type DAEHandler interface {
	Disconnect(m Match) (int, error)
	CoA(m Match, c Change) (int, error)
}

// DAE is an RFC 5176 Dynamic Authorization server.
type DAE struct {
	conn    *net.UDPConn
	h       DAEHandler
	log     *zap.Logger
	nas     NAS
	clients map[netip.Addr][]byte
	window  time.Duration
	now     func() time.Time

	mu    sync.Mutex
	cache map[replayKey]cached // replay protection / duplicate answers
	order []orderEntry         // cache's keys, oldest first (at most maxReplayCache)
	done  chan struct{}
}

// maxReplayCache bounds the answers kept for replay protection (about
// 100 bytes each). A client sending more than maxReplayCache requests
// within EventWindow (55 a second) has its oldest answers forgotten
// early; Event-Timestamp still bounds how old a replay may be.
const maxReplayCache = 16384

type orderEntry struct {
	key replayKey
	at  time.Time
}

type replayKey struct {
	src  netip.AddrPort
	id   byte
	auth [16]byte
}

type cached struct {
	resp []byte
	at   time.Time
}

// EventWindow is how far Event-Timestamp may be from our clock (RFC 5176
// 3.3 suggests 300 s).
const EventWindow = 300 * time.Second

// NewDAE listens on cfg.DAEListen and serves requests from
// cfg.DAEClients until Close. log may be nil.
func NewDAE(cfg config.RADIUS, h DAEHandler, log *zap.Logger) (*DAE, error) {
	if log == nil {
		log = zap.NewNop()
	}
	conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(cfg.DAEListen))
	if err != nil {
		return nil, fmt.Errorf("radius DAE: listening on %s: %w", cfg.DAEListen, err)
	}
	d := &DAE{conn: conn, h: h, log: log, clients: map[netip.Addr][]byte{}, window: EventWindow, now: time.Now,
		nas:   NAS{Identifier: cfg.NASIdentifier, IPv4: cfg.NASIPAddress, IPv6: cfg.NASIPv6Address},
		cache: map[replayKey]cached{}, done: make(chan struct{})}
	for _, c := range cfg.DAEClients {
		d.clients[c.Address.Unmap()] = c.Secret
	}
	go d.serve()
	return d, nil
}

// Addr is the listening address.
func (d *DAE) Addr() netip.AddrPort { return d.conn.LocalAddr().(*net.UDPAddr).AddrPort() }

// Close stops the server.
func (d *DAE) Close() error {
	err := d.conn.Close()
	<-d.done
	return err
}

func (d *DAE) serve() {
	defer close(d.done)
	buf := make([]byte, radius.MaxPacketLength)
	for {
		n, src, err := d.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		if resp := d.handle(buf[:n], src); resp != nil {
			d.conn.WriteToUDPAddrPort(resp, src)
		}
	}
}

// handle returns the response to send, or nil to drop the request.
func (d *DAE) handle(b []byte, src netip.AddrPort) []byte {
	secret, ok := d.clients[src.Addr().Unmap()]
	if !ok {
		d.log.Warn("radius DAE request from an unknown client dropped", zap.Stringer("from", src))
		return nil
	}
	if len(b) < 20 {
		return nil
	}
	code := radius.Code(b[0])
	if code != radius.CodeDisconnectRequest && code != radius.CodeCoARequest {
		return nil
	}
	p, err := verifyRequest(b, secret, false)
	if err != nil {
		d.log.Warn("radius DAE request dropped", zap.Stringer("from", src), zap.Error(err))
		return nil
	}
	now := d.now()
	key := replayKey{src: src, id: p.Identifier, auth: p.Authenticator}
	d.mu.Lock()
	d.expire(now)
	if c, ok := d.cache[key]; ok {
		d.mu.Unlock()
		return c.resp // a retransmission: the same answer again
	}
	d.mu.Unlock()
	if v, ok := p.Lookup(attrEventTimestamp); ok {
		ts, err := integer("Event-Timestamp", v)
		if err != nil {
			return nil
		}
		if dt := now.Sub(time.Unix(int64(ts), 0)); dt > d.window || dt < -d.window {
			d.log.Warn("radius DAE request outside the Event-Timestamp window dropped (replay?)", zap.Stringer("from", src), zap.Duration("age", dt))
			return nil
		}
	}
	resp := d.answer(p, code)
	out, err := encodeResponse(resp, p.Authenticator, true)
	if err != nil {
		return nil
	}
	d.mu.Lock()
	d.cache[key] = cached{resp: out, at: now}
	d.order = append(d.order, orderEntry{key, now})
	d.expire(now)
	d.mu.Unlock()
	return out
}

// expire forgets the answers older than the window and the oldest beyond
// maxReplayCache: from the front of d.order, so a request costs no scan
// of the whole cache. d.mu is held.
func (d *DAE) expire(now time.Time) {
	for len(d.order) > 0 {
		e := d.order[0]
		if now.Sub(e.at) <= d.window && len(d.order) <= maxReplayCache {
			return
		}
		// Two identical requests handled at once both add their key:
		// only the entry that added the cached answer removes it.
		if c, ok := d.cache[e.key]; ok && c.at.Equal(e.at) {
			delete(d.cache, e.key)
		}
		d.order = d.order[1:]
	}
}

func (d *DAE) answer(p *radius.Packet, code radius.Code) *radius.Packet {
	ack, nak := radius.CodeDisconnectACK, radius.CodeDisconnectNAK
	if code == radius.CodeCoARequest {
		ack, nak = radius.CodeCoAACK, radius.CodeCoANAK
	}
	fail := func(c ErrorCause) *radius.Packet {
		r := p.Response(nak)
		addInt(r, attrErrorCause, uint32(c))
		d.log.Info("radius DAE request refused", zap.Stringer("code", code), zap.Stringer("error_cause", c))
		return r
	}
	var m Match
	var ch Change
	changes := 0
	for _, a := range p.Attributes {
		v := []byte(a.Attribute)
		switch a.Type {
		case attrAcctSessionID:
			m.AcctSessionID = string(v)
		case attrUserName:
			m.UserName = string(v)
		case attrCallingStationID:
			m.CallingStationID = string(v)
		case attrFramedIPAddress:
			ip, err := ipv4("Framed-IP-Address", v)
			if err != nil {
				return fail(CauseInvalidAttributeValue)
			}
			m.FramedIP = ip
		case attrNASIdentifier:
			if string(v) != d.nas.Identifier {
				return fail(CauseNASIdentMismatch)
			}
		case attrNASIPAddress:
			if ip, err := ipv4("NAS-IP-Address", v); err != nil || ip != d.nas.IPv4 {
				return fail(CauseNASIdentMismatch)
			}
		case attrNASIPv6Address:
			if len(v) != 16 || netip.AddrFrom16([16]byte(v)) != d.nas.IPv6 {
				return fail(CauseNASIdentMismatch)
			}
		case attrSessionTimeout, attrIdleTimeout, attrAcctInterimInterval:
			if code != radius.CodeCoARequest {
				return fail(CauseUnsupportedAttribute)
			}
			s, err := seconds("timer", v)
			if err != nil {
				return fail(CauseInvalidAttributeValue)
			}
			switch a.Type {
			case attrSessionTimeout:
				ch.SessionTimeout = &s
			case attrIdleTimeout:
				ch.IdleTimeout = &s
			default:
				ch.InterimInterval = &s
			}
			changes++
		case attrServiceType:
			// RFC 5176 3.2: Service-Type Authorize-Only (17) asks us to
			// re-authorize, which we do not support.
			if n, err := integer("Service-Type", v); err != nil || n == 17 {
				return fail(CauseUnsupportedService)
			}
		case attrMessageAuthenticator, attrEventTimestamp, attrState, attrClass, attrVendorSpecific,
			attrNASPort, attrNASPortID, attrCalledStationID, attrReplyMessage:
			// Accepted and not needed for matching.
		default:
			return fail(CauseUnsupportedAttribute)
		}
	}
	if m == (Match{}) {
		return fail(CauseMissingAttribute)
	}
	var n int
	var err error
	if code == radius.CodeDisconnectRequest {
		n, err = d.h.Disconnect(m)
	} else {
		if changes == 0 {
			return fail(CauseMissingAttribute)
		}
		n, err = d.h.CoA(m, ch)
	}
	switch {
	case err != nil:
		d.log.Warn("radius DAE handler failed", zap.Stringer("code", code), zap.Error(err))
		return fail(CauseResourcesUnavailable)
	case n == 0:
		return fail(CauseSessionNotFound)
	}
	d.log.Info("radius DAE request done", zap.Stringer("code", code), zap.Int("sessions", n),
		zap.String("acct_session_id", m.AcctSessionID), zap.String("user", m.UserName))
	return p.Response(ack)
}
