package ppp

import (
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/l2tpd/l2tpd/auth"
	"github.com/l2tpd/l2tpd/ppp/chap"
	"github.com/l2tpd/l2tpd/ppp/mschapv2"
)

// authStep is where authentication stands.
type authStep uint8

const (
	authIdle    authStep = iota
	authWaiting          // authenticator: waiting for the peer; peer: request sent / waiting for a challenge
	authPending          // authenticator: NeedAuth emitted, waiting for AuthDone
	authDone
	authFailed
)

func (s authStep) String() string {
	return [...]string{"idle", "waiting", "pending", "done", "failed"}[s]
}

// authState is PAP / CHAP / MS-CHAPv2 for both roles.
type authState struct {
	method   auth.Method
	step     authStep
	id       uint8
	retries  int
	timer    tstamp // retransmission of our Challenge / PAP request
	deadline tstamp // whole phase
	// Authenticator: our challenge. Peer (MS-CHAPv2): the authenticator's.
	challenge [challengeLen]byte
	// Peer role, MS-CHAPv2: our peer challenge and NT-Response.
	peerChallenge [16]byte
	ntResponse    [24]byte
	// Authenticator: repeated for a retransmitted response.
	successMsg string
	username   string
	// Peer role, CHAP: the last Response, retransmitted until Success.
	lastResp []byte
}

func protocolOf(m auth.Method) Protocol {
	switch m {
	case auth.MethodPAP:
		return ProtoPAP
	case auth.MethodCHAPMD5, auth.MethodMSCHAPv2:
		return ProtoCHAP
	}
	return 0
}

func (a *authState) stopTimers() { a.timer, a.deadline = 0, 0 }

func (l *Link) startAuth(now time.Time) {
	a := &l.au
	if l.cfg.Role == RoleAuthenticator {
		a.method = l.lcp.ourAuth()
	} else {
		a.method = l.lcp.peerAuth
	}
	if a.method == 0 {
		a.step = authDone
		l.enterNetwork(now)
		return
	}
	l.phase = PhaseAuthenticate
	a.step = authWaiting
	a.deadline = l.after(now, l.cfg.AuthTimeout)
	a.retries = l.cfg.MaxConfigure
	switch {
	case l.cfg.Role == RoleAuthenticator && a.method != auth.MethodPAP:
		l.random(a.challenge[:])
		l.sendChallenge(now)
	case l.cfg.Role == RolePeer && a.method == auth.MethodPAP:
		l.sendPAPRequest(now)
	}
	if len(l.earlyAuth) > 0 {
		fr := l.earlyAuth
		l.earlyAuth = nil
		l.Input(now, fr)
	}
}

func (l *Link) authTick(now time.Time) {
	a := &l.au
	if l.due(a.deadline, now) {
		a.stopTimers()
		a.step = authFailed
		l.fail(now, fmt.Sprintf("%s authentication timed out", a.method))
		return
	}
	if !l.due(a.timer, now) {
		return
	}
	a.timer = 0
	if a.retries <= 0 {
		a.stopTimers()
		a.step = authFailed
		l.fail(now, fmt.Sprintf("%s authentication: peer not responding", a.method))
		return
	}
	switch {
	case l.cfg.Role == RoleAuthenticator:
		l.sendChallenge(now)
	case a.lastResp != nil:
		// RFC 1994 4.2: a lost Success is recovered by the authenticator
		// answering a repeated Response.
		a.retries--
		a.timer = l.after(now, l.cfg.RestartTimer)
		l.actions = append(l.actions, SendFrame{Frame: append([]byte(nil), a.lastResp...)})
	default:
		l.sendPAPRequest(now)
	}
}

func (l *Link) sendChallenge(now time.Time) {
	a := &l.au
	a.id++
	a.retries--
	a.timer = l.after(now, l.cfg.RestartTimer)
	d := make([]byte, 0, 1+challengeLen+len(l.cfg.Hostname))
	d = append(d, challengeLen)
	d = append(d, a.challenge[:]...)
	d = append(d, l.cfg.Hostname...)
	l.sendPacket(ProtoCHAP, Packet{Code: chapChall, ID: a.id, Data: d})
}

func (l *Link) sendPAPRequest(now time.Time) {
	a := &l.au
	a.id++
	a.retries--
	a.timer = l.after(now, l.cfg.RestartTimer)
	u, p := truncate255(l.cfg.Username), truncate255(l.cfg.Password)
	d := make([]byte, 0, 2+len(u)+len(p))
	d = append(d, byte(len(u)))
	d = append(d, u...)
	d = append(d, byte(len(p)))
	d = append(d, p...)
	l.sendPacket(ProtoPAP, Packet{Code: papAuthReq, ID: a.id, Data: d})
}

func truncate255(s string) string {
	if len(s) > 255 {
		return s[:255]
	}
	return s
}

// PAPRequest is a parsed PAP Authenticate-Request (RFC 1334 2.2.1).
type PAPRequest struct {
	PeerID, Password []byte
}

// ParsePAPRequest parses the data of a PAP Authenticate-Request.
func ParsePAPRequest(d []byte) (PAPRequest, error) {
	// The length bytes are widened to int before any sum: 1+d[0] in byte
	// arithmetic is 0 for a length of 255.
	if len(d) < 1 || int(d[0])+1 > len(d) {
		return PAPRequest{}, fmt.Errorf("%w: PAP peer-id", ErrBadLength)
	}
	n := int(d[0])
	id := d[1 : 1+n]
	d = d[1+n:]
	if len(d) < 1 || int(d[0])+1 > len(d) {
		return PAPRequest{}, fmt.Errorf("%w: PAP password", ErrBadLength)
	}
	n = int(d[0])
	return PAPRequest{PeerID: id, Password: d[1 : 1+n]}, nil
}

// CHAPValue is a parsed CHAP Challenge or Response (RFC 1994 4.1).
type CHAPValue struct {
	Value, Name []byte
}

// ParseCHAPValue parses the data of a CHAP Challenge or Response.
func ParseCHAPValue(d []byte) (CHAPValue, error) {
	if len(d) < 1 || d[0] == 0 || int(d[0])+1 > len(d) {
		return CHAPValue{}, fmt.Errorf("%w: CHAP value size", ErrBadLength)
	}
	n := int(d[0])
	return CHAPValue{Value: d[1 : 1+n], Name: d[1+n:]}, nil
}

func (l *Link) authInput(now time.Time, proto Protocol, p Packet) {
	if l.cfg.Role == RoleAuthenticator {
		l.authenticatorInput(now, proto, p)
	} else {
		l.peerAuthInput(now, proto, p)
	}
}

func (l *Link) authenticatorInput(now time.Time, proto Protocol, p Packet) {
	a := &l.au
	var req *auth.Request
	switch {
	case proto == ProtoPAP && p.Code == papAuthReq:
		pr, err := ParsePAPRequest(p.Data)
		if err != nil {
			return
		}
		if a.step == authDone { // our Ack was lost: the peer retransmits
			l.sendPacket(ProtoPAP, Packet{Code: papAuthAck, ID: p.ID, Data: msgData(a.successMsg)})
			return
		}
		if a.step != authWaiting {
			return
		}
		a.id = p.ID
		req = &auth.Request{Method: a.method, Username: string(pr.PeerID), Password: append([]byte(nil), pr.Password...)}
	case proto == ProtoCHAP && p.Code == chapResp:
		if p.ID != a.id {
			return
		}
		v, err := ParseCHAPValue(p.Data)
		if err != nil {
			return
		}
		if a.step == authDone {
			l.sendCHAPSuccess(a.successMsg)
			return
		}
		if a.step != authWaiting {
			return
		}
		want := 16
		if a.method == auth.MethodMSCHAPv2 {
			want = mschapv2.ResponseLen
		}
		if len(v.Value) != want {
			return
		}
		// One allocation for the request and its two byte fields.
		rb := &chapRequest{chal: a.challenge}
		n := copy(rb.resp[:], v.Value)
		rb.req = auth.Request{Method: a.method, Username: string(v.Name), ID: p.ID,
			Challenge: rb.chal[:], Response: rb.resp[:n:n]}
		req = &rb.req
	default:
		return
	}
	a.step = authPending
	a.timer = 0
	a.username = req.Username
	if l.session != nil {
		req.Session = *l.session
	}
	l.actions = append(l.actions, NeedAuth{Req: req})
}

// chapRequest holds a CHAP or MS-CHAPv2 auth.Request with the bytes its
// Challenge and Response refer to.
type chapRequest struct {
	req  auth.Request
	chal [challengeLen]byte
	resp [mschapv2.ResponseLen]byte
}

func msgData(s string) []byte {
	if s == "" {
		return []byte{0}
	}
	s = truncate255(s)
	return append([]byte{byte(len(s))}, s...)
}

func (l *Link) sendCHAPSuccess(msg string) {
	l.sendPacket(ProtoCHAP, Packet{Code: chapSuccess, ID: l.au.id, Data: []byte(msg)})
}

// AuthDone delivers the authenticator's answer to a NeedAuth. err (a
// failed lookup) counts as a reject.
func (l *Link) AuthDone(now time.Time, res *auth.Result, err error) {
	a := &l.au
	if a.step != authPending {
		return
	}
	accept := err == nil && res != nil && res.Accept
	msg := ""
	if res != nil {
		msg = res.Message
	}
	if accept && a.method == auth.MethodMSCHAPv2 && len(res.MSCHAPv2AuthResponse) != mschapv2.AuthResponseLen {
		accept = false
		err = fmt.Errorf("no MS-CHAPv2 authenticator response from the authenticator")
	}
	if !accept {
		a.step = authFailed
		a.stopTimers()
		switch a.method {
		case auth.MethodPAP:
			l.sendPacket(ProtoPAP, Packet{Code: papAuthNak, ID: a.id, Data: msgData(orDefault(msg, "Authentication failed"))})
		case auth.MethodCHAPMD5:
			l.sendPacket(ProtoCHAP, Packet{Code: chapFailure, ID: a.id, Data: []byte(orDefault(msg, "Authentication failed"))})
		case auth.MethodMSCHAPv2:
			e := ""
			if res != nil {
				e = res.MSCHAPError
			}
			if e == "" {
				e = fmt.Sprintf("E=691 R=0 C=%s V=3 M=%s", strings.ToUpper(hex.EncodeToString(a.challenge[:])), orDefault(msg, "Authentication failed"))
			}
			l.sendPacket(ProtoCHAP, Packet{Code: chapFailure, ID: a.id, Data: []byte(e)})
		}
		reason := fmt.Sprintf("%s authentication failed for %q", a.method, a.username)
		if err != nil {
			reason += ": " + err.Error()
		} else if msg != "" {
			reason += ": " + msg
		}
		l.fail(now, reason)
		return
	}
	a.step = authDone
	a.stopTimers()
	switch a.method {
	case auth.MethodPAP:
		a.successMsg = msg
		l.sendPacket(ProtoPAP, Packet{Code: papAuthAck, ID: a.id, Data: msgData(msg)})
	case auth.MethodCHAPMD5:
		a.successMsg = orDefault(msg, "Access granted")
		l.sendCHAPSuccess(a.successMsg)
	case auth.MethodMSCHAPv2:
		a.successMsg = res.MSCHAPv2AuthResponse + " M=" + orDefault(msg, "Access granted")
		l.sendCHAPSuccess(a.successMsg)
	}
	if !l.addrSet {
		l.result = res // for NeedAddress; dropped by SetAddresses
	}
	if res.SessionTimeout > 0 {
		l.sessionEnd = l.after(now, res.SessionTimeout)
	}
	l.idle = res.IdleTimeout
	l.enterNetwork(now)
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func (l *Link) peerAuthInput(now time.Time, proto Protocol, p Packet) {
	a := &l.au
	if a.step == authDone || a.step == authFailed {
		if proto == ProtoCHAP && p.Code == chapChall && a.step == authDone {
			// A rechallenge (RFC 1994 allows them): answer it.
		} else {
			return
		}
	}
	switch {
	case proto == ProtoPAP && (p.Code == papAuthAck || p.Code == papAuthNak):
		if p.ID != a.id {
			return
		}
		if p.Code == papAuthAck {
			l.peerAuthOK(now)
			return
		}
		l.peerAuthFailed(now, papMessage(p.Data))
	case proto == ProtoCHAP && p.Code == chapChall:
		v, err := ParseCHAPValue(p.Data)
		if err != nil || len(v.Value) != challengeLen && a.method == auth.MethodMSCHAPv2 {
			return
		}
		var resp []byte
		if a.method == auth.MethodMSCHAPv2 {
			if p.ID != a.id || [16]byte(v.Value) != a.challenge || a.peerChallenge == ([16]byte{}) {
				l.random(a.peerChallenge[:])
			}
			copy(a.challenge[:], v.Value)
			r := mschapv2.BuildResponse(a.challenge, a.peerChallenge, l.cfg.Username, l.cfg.Password)
			copy(a.ntResponse[:], r[24:48])
			resp = r[:]
		} else {
			h := chap.CHAPMD5(p.ID, []byte(l.cfg.Password), v.Value)
			resp = h[:]
		}
		a.id = p.ID
		d := make([]byte, 0, 1+len(resp)+len(l.cfg.Username))
		d = append(d, byte(len(resp)))
		d = append(d, resp...)
		d = append(d, l.cfg.Username...)
		a.lastResp = Packet{Code: chapResp, ID: p.ID, Data: d}.AppendFrame(a.lastResp[:0], ProtoCHAP)
		l.actions = append(l.actions, SendFrame{Frame: append([]byte(nil), a.lastResp...)})
		if a.step != authDone {
			a.retries = l.cfg.MaxConfigure
			a.timer = l.after(now, l.cfg.RestartTimer)
		}
	case proto == ProtoCHAP && p.Code == chapSuccess:
		if p.ID != a.id || a.step == authDone {
			return
		}
		if a.method == auth.MethodMSCHAPv2 {
			s := string(p.Data)
			if len(s) < mschapv2.AuthResponseLen || !mschapv2.CheckAuthenticatorResponse(s[:mschapv2.AuthResponseLen], l.cfg.Password, a.ntResponse, a.peerChallenge, a.challenge, l.cfg.Username) {
				a.step = authFailed
				l.fail(now, "MS-CHAPv2: the authenticator's response does not prove it knows our password")
				return
			}
		}
		l.peerAuthOK(now)
	case proto == ProtoCHAP && p.Code == chapFailure:
		if p.ID != a.id {
			return
		}
		l.peerAuthFailed(now, printable(p.Data))
	}
}

func papMessage(d []byte) string {
	if len(d) >= 1 && int(d[0])+1 <= len(d) {
		return printable(d[1 : 1+int(d[0])])
	}
	return ""
}

func (l *Link) peerAuthOK(now time.Time) {
	l.au.step = authDone
	l.au.lastResp = nil
	l.au.stopTimers()
	l.enterNetwork(now)
}

func (l *Link) peerAuthFailed(now time.Time, msg string) {
	l.au.step = authFailed
	l.au.stopTimers()
	r := fmt.Sprintf("%s authentication rejected by the peer", l.au.method)
	if msg != "" {
		r += ": " + msg
	}
	l.fail(now, r)
}
