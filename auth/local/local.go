// Package local is the embedded authenticator: subscribers listed in the
// configuration, checked with PAP, CHAP-MD5 (RFC 1994) or MS-CHAPv2
// (RFC 2759). It is pure (no I/O) and safe for concurrent use; the list is
// replaced atomically on reload.
//
// The subscriber only ever learns "authentication failed" (unknown user and
// wrong password look the same, and take the same work) or, once the right
// password was given, "account disabled". Why a request was refused is
// available to the caller's log through Decide, which returns a Reason.
package local

import (
	"context"
	"crypto/subtle"
	"fmt"
	"math"
	"net/netip"
	"sync/atomic"

	"github.com/l2tpd/l2tpd/auth"
	"github.com/l2tpd/l2tpd/ppp/chap"
	"github.com/l2tpd/l2tpd/ppp/mschapv2"
)

// Messages shown to the subscriber.
const (
	MsgFailed   = "authentication failed"
	MsgDisabled = "account disabled"
)

// Subscriber is one local account.
type Subscriber struct {
	Name     string
	Password string
	// Address is a fixed IPv4 address for this subscriber (invalid: none,
	// take one from Pool or the default pool).
	Address  netip.Addr
	Pool     string
	Disabled bool
}

// Reason says why a request was accepted or refused; for logs only.
type Reason uint8

const (
	ReasonAccepted    Reason = iota
	ReasonUnknownUser        // no such subscriber
	ReasonBadPassword        // wrong password (or CHAP/MS-CHAPv2 response)
	ReasonDisabled           // right password, account disabled
	ReasonMalformed          // challenge/response of the wrong size
	ReasonBadMethod          // unknown authentication method
)

func (r Reason) String() string {
	switch r {
	case ReasonAccepted:
		return "accepted"
	case ReasonUnknownUser:
		return "unknown user"
	case ReasonBadPassword:
		return "wrong password"
	case ReasonDisabled:
		return "account disabled"
	case ReasonMalformed:
		return "malformed response"
	case ReasonBadMethod:
		return "unsupported method"
	}
	return fmt.Sprintf("Reason(%d)", uint8(r))
}

// Authenticator implements auth.Authenticator over a list of subscribers.
type Authenticator struct {
	subs atomic.Pointer[table]
}

// table is one installed list: the subscribers in one array, and the
// names mapped to their index (no heap object per subscriber beyond the
// configuration's strings, which are shared, not copied).
type table struct {
	byName map[string]int32
	subs   []entry
}

// entry is a Subscriber without its name (the map's key) and with its
// fixed address as 4 bytes (netip.Addr is 24 with a pointer).
type entry struct {
	password, pool string
	addr           [4]byte
	hasAddr        bool
	disabled       bool
}

func (t *table) find(name string) *entry {
	if i, ok := t.byName[name]; ok {
		return &t.subs[i]
	}
	return nil
}

var _ auth.Authenticator = (*Authenticator)(nil)

// New returns an Authenticator for subs (see Replace).
func New(subs []Subscriber) (*Authenticator, error) {
	a := &Authenticator{}
	if err := a.Replace(subs); err != nil {
		return nil, err
	}
	return a, nil
}

// Replace installs a new subscriber list atomically: requests already
// running finish against the old list. Names must be unique and non-empty;
// a fixed Address must be IPv4. On error the old list stays.
func (a *Authenticator) Replace(subs []Subscriber) error {
	if len(subs) > math.MaxInt32 {
		return fmt.Errorf("local auth: %d subscribers, at most %d", len(subs), math.MaxInt32)
	}
	t := &table{byName: make(map[string]int32, len(subs)), subs: make([]entry, len(subs))}
	for i, s := range subs {
		if s.Name == "" {
			return fmt.Errorf("local auth: subscriber %d has no name", i)
		}
		if _, dup := t.byName[s.Name]; dup {
			return fmt.Errorf("local auth: subscriber %q defined twice", s.Name)
		}
		if s.Address.IsValid() && !s.Address.Is4() {
			return fmt.Errorf("local auth: subscriber %q: address %v is not IPv4", s.Name, s.Address)
		}
		t.byName[s.Name] = int32(i)
		t.subs[i] = entry{password: s.Password, pool: s.Pool, disabled: s.Disabled}
		if s.Address.IsValid() {
			t.subs[i].addr, t.subs[i].hasAddr = s.Address.As4(), true
		}
	}
	a.subs.Store(t)
	return nil
}

// Len is the number of subscribers.
func (a *Authenticator) Len() int {
	t := a.subs.Load()
	if t == nil {
		return 0
	}
	return len(t.subs)
}

// Authenticate implements auth.Authenticator. A refusal is a Result with
// Accept false and a nil error; use Decide to learn the Reason.
func (a *Authenticator) Authenticate(ctx context.Context, req *auth.Request) (*auth.Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("local auth: user %q: %w", req.Username, err)
	}
	res, _ := a.Decide(req)
	return res, nil
}

// dummy stands in for an unknown user so that the same computation is done
// as for a known one (no timing difference between the two refusals).
var dummy = &entry{password: "\x00unknown-user\x00"}

// Decide checks req and returns the answer for the subscriber and the
// reason for the log.
func (a *Authenticator) Decide(req *auth.Request) (*auth.Result, Reason) {
	res := new(auth.Result)
	why := a.DecideInto(req, res)
	return res, why
}

// DecideInto is Decide writing the answer into *res (every field of it is
// overwritten), for a caller that already holds a Result to fill.
func (a *Authenticator) DecideInto(req *auth.Request, res *auth.Result) Reason {
	var sub *entry
	if t := a.subs.Load(); t != nil {
		sub = t.find(req.Username)
	}
	known := sub != nil
	if !known {
		sub = dummy
	}

	ok, authResp, reason := verify(req, sub.password)
	switch {
	case reason != ReasonAccepted:
		// Malformed or unknown method: the subscriber's fault whoever it is.
	case !known:
		reason = ReasonUnknownUser
	case !ok:
		reason = ReasonBadPassword
	case sub.disabled:
		*res = auth.Result{Message: MsgDisabled}
		return ReasonDisabled
	default:
		*res = auth.Result{
			Accept:               true,
			MSCHAPv2AuthResponse: authResp,
			Pool:                 sub.pool,
		}
		if sub.hasAddr {
			res.FramedIP = netip.AddrFrom4(sub.addr)
		}
		return ReasonAccepted
	}
	*res = auth.Result{Message: MsgFailed}
	return reason
}

// verify checks the credentials in req against password. reason is
// ReasonAccepted when the request was well formed (ok then says whether the
// password matched).
func verify(req *auth.Request, password string) (ok bool, authResp string, reason Reason) {
	switch req.Method {
	case auth.MethodPAP:
		return subtle.ConstantTimeCompare(req.Password, []byte(password)) == 1, "", ReasonAccepted
	case auth.MethodCHAPMD5:
		if len(req.Response) != 16 || len(req.Challenge) == 0 {
			return false, "", ReasonMalformed
		}
		return chap.VerifyMD5(req.ID, []byte(password), req.Challenge, req.Response), "", ReasonAccepted
	case auth.MethodMSCHAPv2:
		if len(req.Challenge) != mschapv2.ChallengeLen {
			return false, "", ReasonMalformed
		}
		var ac [16]byte
		copy(ac[:], req.Challenge)
		ok, resp, err := mschapv2.Verify(ac, req.Response, req.Username, password)
		if err != nil {
			return false, "", ReasonMalformed
		}
		return ok, resp, ReasonAccepted
	}
	return false, "", ReasonBadMethod
}
