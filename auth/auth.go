// Package auth defines how the PPP engine asks whether a subscriber may
// connect, independent of where the answer comes from: local subscribers
// from the config (auth/local) or RADIUS (auth/radius).
package auth

import (
	"context"
	"fmt"
	"net/netip"
	"runtime/debug"
	"sync"
	"time"

	"github.com/l2tpd/l2tpd/internal/fault"
)

// Method is the PPP authentication protocol a subscriber used.
type Method uint8

const (
	MethodPAP Method = iota + 1
	MethodCHAPMD5
	MethodMSCHAPv2
)

func (m Method) String() string {
	switch m {
	case MethodPAP:
		return "pap"
	case MethodCHAPMD5:
		return "chap"
	case MethodMSCHAPv2:
		return "mschapv2"
	}
	return "unknown"
}

// SessionInfo describes the L2TP session a request comes from, for the
// authenticator's policy and for RADIUS attributes.
type SessionInfo struct {
	AcctSessionID  string
	TunnelID       uint32 // ours
	SessionID      uint32 // ours
	PeerTunnelID   uint32
	PeerSessionID  uint32
	LACHostName    string
	LACAddr        netip.AddrPort
	LocalAddr      netip.AddrPort
	CallingNumber  string
	CalledNumber   string
	TxConnectSpeed uint32
	RxConnectSpeed uint32
	NASPort        uint32
}

// Request is one authentication attempt.
type Request struct {
	Method   Method
	Username string
	// PAP: the password as sent.
	Password []byte
	// CHAP-MD5: Identifier, our challenge, the peer's 16-byte response.
	// MS-CHAPv2: Identifier, our 16-byte authenticator challenge, and the
	// peer's 49-byte response (peer challenge 16, reserved 8, NT response
	// 24, flags 1).
	ID        uint8
	Challenge []byte
	Response  []byte
	Session   SessionInfo
}

// Result is the authenticator's answer.
type Result struct {
	Accept bool
	// Message is shown to the subscriber (PAP/CHAP failure or success
	// message; RADIUS Reply-Message).
	Message string
	// MSCHAPv2AuthResponse is the 42-byte "S=<40 hex>" authenticator
	// response that proves to an MS-CHAPv2 client we know its password.
	MSCHAPv2AuthResponse string
	// MSCHAPError is the "E=... R=... C=... V=..." failure string for
	// MS-CHAPv2 (empty: the PPP engine builds a default one).
	MSCHAPError string

	// Authorization (zero values: not given).
	FramedIP        netip.Addr // 255.255.255.254 means "take from the pool"
	FramedNetmask   netip.Addr
	Pool            string
	FramedRoutes    []netip.Prefix
	FramedIPv6      netip.Prefix
	DelegatedIPv6   netip.Prefix
	InterfaceID     [8]byte
	HasInterfaceID  bool
	MTU             int
	DNS             [2]netip.Addr
	NBNS            [2]netip.Addr
	SessionTimeout  time.Duration
	IdleTimeout     time.Duration
	InterimInterval time.Duration
	Class           [][]byte
	// RateLimit: later (RADIUS rate limits), bits per second, 0 = none.
	RateLimitUp   uint64
	RateLimitDown uint64
}

// Authenticator decides whether a subscriber may connect. Implementations
// must be safe for concurrent use and honour ctx (cancelled when the session
// goes away before the answer arrives).
type Authenticator interface {
	Authenticate(ctx context.Context, req *Request) (*Result, error)
}

// AsyncAuthenticator is an Authenticator that can also answer without a
// goroutine per request (auth/radius). The contract:
//
//   - done is called exactly once per AuthenticateAsync call, with the
//     same (*Result, error) Authenticate would have returned.
//   - done may be called on any goroutine: before AuthenticateAsync
//     returns (on the caller's goroutine, e.g. no server configured), on
//     the implementation's own goroutines (a reply or a timeout), or from
//     inside cancel. It must not block; the usual done posts the result to
//     the caller's own goroutine (a queue) and returns.
//   - cancel gives up the request (stops retransmission, frees what it
//     holds). If done has not been started yet, cancel calls it itself,
//     synchronously, with an error wrapping context.Canceled. So once
//     cancel has returned, done has been started exactly once and will
//     never start again (it may still be running on another goroutine
//     when a reply won the race: the caller's post must tolerate that).
//   - cancel is idempotent, safe to call after done, and from inside done.
//   - req and everything it points to must stay unmodified until done.
type AsyncAuthenticator interface {
	Authenticator
	AuthenticateAsync(req *Request, done func(*Result, error)) (cancel func())
}

// Async starts req on a: with a's AuthenticateAsync when it has one, else
// with Authenticate on a goroutine of its own. done and the returned
// cancel follow AsyncAuthenticator's contract either way.
func Async(a Authenticator, req *Request, done func(*Result, error)) (cancel func()) {
	if aa, ok := a.(AsyncAuthenticator); ok {
		return aa.AuthenticateAsync(req, done)
	}
	ctx, stop := context.WithCancel(context.Background())
	var once sync.Once
	deliver := func(r *Result, err error) { once.Do(func() { done(r, err) }) }
	go func() {
		defer func() {
			// A bug in the authenticator fails this request only (its
			// stack is in the error, which the caller logs).
			if r := recover(); r != nil {
				fault.Recovered(nil, "", r)
				deliver(nil, fmt.Errorf("authentication of %q: internal error in the authenticator (please report it): %v\n%s", req.Username, r, debug.Stack()))
			}
		}()
		deliver(a.Authenticate(ctx, req))
	}()
	return func() {
		// Canceled first: once the context is done, the goroutine's late
		// answer could otherwise win the race to deliver.
		deliver(nil, fmt.Errorf("authentication of %q given up: %w", req.Username, context.Canceled))
		stop()
	}
}
