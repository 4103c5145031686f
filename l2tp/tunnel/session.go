package tunnel

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/l2tpd/l2tpd/l2tp"
)

// ErrNotEstablished is returned when a call is placed on a tunnel that is
// not (yet or any more) established.
var ErrNotEstablished = errors.New("tunnel not established")

// ErrTooManySessions: the tunnel has no free session ID or hit MaxSessions.
var ErrTooManySessions = errors.New("tunnel: session limit reached")

func (t *Tunnel) allocSessionID() (uint32, error) {
	if len(t.sessions) >= t.cfg.MaxSessions {
		return 0, ErrTooManySessions
	}
	var b [2]byte
	for range 64 {
		if _, err := io.ReadFull(t.cfg.Rand, b[:]); err != nil {
			return 0, fmt.Errorf("tunnel %d: session ID: %w", t.cfg.LocalID, err)
		}
		id := uint32(binary.BigEndian.Uint16(b[:]))
		if id != 0 && t.freeSessionID(id) {
			return id, nil
		}
	}
	for id := uint32(1); id <= 0xffff; id++ { // nearly full: scan
		if t.freeSessionID(id) {
			return id, nil
		}
	}
	return 0, ErrTooManySessions
}

func (t *Tunnel) freeSessionID(id uint32) bool {
	if t.sessions[id] != nil {
		return false
	}
	return !t.SessionIDReserved(id)
}

// ReserveSessionID keeps a session ID that no call uses any more from
// being given to a new call until ReleaseSessionID: the runner still
// holds something under it (a data plane session being created for a
// call that ended meanwhile), which a new call with the same ID would
// collide with.
func (t *Tunnel) ReserveSessionID(id uint32) {
	if t.reserved == nil {
		t.reserved = make(map[uint32]struct{})
	}
	t.reserved[id] = struct{}{}
}

// ReleaseSessionID undoes ReserveSessionID.
func (t *Tunnel) ReleaseSessionID(id uint32) { delete(t.reserved, id) }

// SessionIDReserved reports whether id is reserved (ReserveSessionID).
func (t *Tunnel) SessionIDReserved(id uint32) bool {
	_, ok := t.reserved[id]
	return ok
}

// PlaceCall starts a call: as LAC an incoming call (ICRQ), as LNS an
// outgoing call (OCRQ). It returns our session ID; SessionUp or SessionDown
// follows.
func (t *Tunnel) PlaceCall(now time.Time, dir Direction, info CallInfo) (uint32, error) {
	if t.state != StateEstablished {
		return 0, fmt.Errorf("tunnel %d: placing a call: %w (state %v)", t.cfg.LocalID, ErrNotEstablished, t.state)
	}
	id, err := t.allocSessionID()
	if err != nil {
		return 0, err
	}
	t.nextSerial++
	if info.SerialNumber == 0 {
		info.SerialNumber = t.nextSerial
	}
	s := &Session{ID: id, Dir: dir, WeAreLAC: dir == Incoming, Info: info, State: SessionWaitReply}
	t.addSession(s)
	var m *l2tp.Message
	if dir == Incoming {
		m = t.newMsg(l2tp.MsgICRQ)
		m.AddUint16(l2tp.AVPAssignedSessionID, true, uint16(id))
		m.AddUint32(l2tp.AVPCallSerialNumber, true, info.SerialNumber)
		if info.BearerType != 0 {
			m.AddUint32(l2tp.AVPBearerType, true, info.BearerType)
		}
		if info.PhysicalChannelID != 0 {
			m.AddUint32(l2tp.AVPPhysicalChannelID, false, info.PhysicalChannelID)
		}
		addCallNumbers(m, &info)
	} else {
		m = t.newMsg(l2tp.MsgOCRQ)
		m.AddUint16(l2tp.AVPAssignedSessionID, true, uint16(id))
		m.AddUint32(l2tp.AVPCallSerialNumber, true, info.SerialNumber)
		m.AddUint32(l2tp.AVPMinimumBPS, true, info.MinBPS)
		m.AddUint32(l2tp.AVPMaximumBPS, true, info.MaxBPS)
		m.AddUint32(l2tp.AVPBearerType, true, info.BearerType)
		m.AddUint32(l2tp.AVPFramingType, true, framingOr(info.FramingType))
		m.AddString(l2tp.AVPCalledNumber, true, info.CalledNumber)
		if info.SubAddress != "" {
			m.AddString(l2tp.AVPSubAddress, true, info.SubAddress)
		}
	}
	t.send(now, 0, m)
	return id, nil
}

func framingOr(f uint32) uint32 {
	if f == 0 {
		return FramingSync
	}
	return f
}

func addCallNumbers(m *l2tp.Message, info *CallInfo) {
	if info.CallingNumber != "" {
		m.AddString(l2tp.AVPCallingNumber, true, info.CallingNumber)
	}
	if info.CalledNumber != "" {
		m.AddString(l2tp.AVPCalledNumber, true, info.CalledNumber)
	}
	if info.SubAddress != "" {
		m.AddString(l2tp.AVPSubAddress, true, info.SubAddress)
	}
}

// Hangup ends a session with a CDN.
func (t *Tunnel) Hangup(now time.Time, id uint32, rc l2tp.ResultCode, reason string) error {
	s := t.sessions[id]
	if s == nil {
		return fmt.Errorf("tunnel %d: no session %d", t.cfg.LocalID, id)
	}
	t.hangup(now, s, rc, reason)
	return nil
}

func (t *Tunnel) hangup(now time.Time, s *Session, rc l2tp.ResultCode, reason string) {
	m := t.newMsg(l2tp.MsgCDN)
	m.AddResultCode(rc)
	m.AddUint16(l2tp.AVPAssignedSessionID, true, uint16(s.ID))
	t.send(now, s.PeerID, m)
	t.removeSession(s)
	t.endSession(s, rc, false, reason, AbandonHungUp)
}

// endSession emits the end of s: SessionDown, or CallAbandoned with cause
// if s was a held call.
func (t *Tunnel) endSession(s *Session, rc l2tp.ResultCode, byPeer bool, reason string, cause AbandonCause) {
	if s.State == SessionWaitAdmit {
		s.State = SessionClosed
		t.dropDeferred(s, reason, cause)
		return
	}
	s.State = SessionClosed
	t.events = append(t.events, SessionDown{ID: s.ID, PeerID: s.PeerID, Result: rc, ByPeer: byPeer, Reason: reason, WasUp: s.up})
}

// SendSLI sends a Set-Link-Info with the ACCMs (LNS to LAC).
func (t *Tunnel) SendSLI(now time.Time, id uint32, accm l2tp.ACCM) error {
	s := t.sessions[id]
	if s == nil || s.State != SessionEstablished {
		return fmt.Errorf("tunnel %d: SLI: no established session %d", t.cfg.LocalID, id)
	}
	m := t.newMsg(l2tp.MsgSLI)
	m.AddBytes(l2tp.AVPACCM, true, accm.Append(nil))
	t.send(now, s.PeerID, m)
	return nil
}

func (t *Tunnel) up(s *Session) {
	s.State = SessionEstablished
	s.up = true
	t.events = append(t.events, SessionUp{ID: s.ID, PeerID: s.PeerID, Info: s.Info})
}

func readCallInfo(m *l2tp.Message) CallInfo {
	var ci CallInfo
	ci.SerialNumber, _, _ = m.Uint32(l2tp.AVPCallSerialNumber)
	ci.BearerType, _, _ = m.Uint32(l2tp.AVPBearerType)
	ci.FramingType, _, _ = m.Uint32(l2tp.AVPFramingType)
	ci.PhysicalChannelID, _, _ = m.Uint32(l2tp.AVPPhysicalChannelID)
	// The numbers are kept for the session's life: one string holds them
	// all, each field a part of it.
	calling, _ := m.Bytes(l2tp.AVPCallingNumber)
	called, _ := m.Bytes(l2tp.AVPCalledNumber)
	sub, _ := m.Bytes(l2tp.AVPSubAddress)
	var sb strings.Builder
	sb.Grow(len(calling) + len(called) + len(sub))
	sb.Write(calling)
	sb.Write(called)
	sb.Write(sub)
	all := sb.String()
	ci.CallingNumber = all[:len(calling)]
	ci.CalledNumber = all[len(calling) : len(calling)+len(called)]
	ci.SubAddress = all[len(calling)+len(called):]
	ci.MinBPS, _, _ = m.Uint32(l2tp.AVPMinimumBPS)
	ci.MaxBPS, _, _ = m.Uint32(l2tp.AVPMaximumBPS)
	return ci
}

func readConnectInfo(m *l2tp.Message, ci *CallInfo) {
	if v, ok, err := m.Uint32(l2tp.AVPTxConnectSpeed); ok && err == nil {
		ci.TxConnectSpeed = v
	}
	if v, ok, err := m.Uint32(l2tp.AVPRxConnectSpeed); ok && err == nil {
		ci.RxConnectSpeed = v
	}
	if v, ok, err := m.Uint32(l2tp.AVPFramingType); ok && err == nil {
		ci.FramingType = v
	}
	if v, ok := m.String(l2tp.AVPPrivateGroupID); ok {
		ci.PrivateGroupID = v
	}
	if _, ok := m.Find(l2tp.AVPSequencingRequired); ok {
		ci.SequencingRequired = true
	}
	// The proxy AVPs are kept for the session's life: copied into one
	// array of AVPs and one of values.
	n, size := 0, 0
	for _, a := range m.AVPs {
		if isProxyAVP(a) {
			n++
			size += len(a.Value)
		}
	}
	if n == 0 {
		return
	}
	ci.Proxy = slices.Grow(ci.Proxy, n)
	vals := make([]byte, 0, size)
	for _, a := range m.AVPs {
		if isProxyAVP(a) {
			start := len(vals)
			vals = append(vals, a.Value...)
			ci.Proxy = append(ci.Proxy, l2tp.AVP{Mandatory: a.Mandatory, Type: a.Type, Value: vals[start:len(vals):len(vals)]})
		}
	}
}

func isProxyAVP(a l2tp.AVP) bool {
	return a.Vendor == 0 && a.Type >= l2tp.AVPInitialReceivedLCPConfReq && a.Type <= l2tp.AVPProxyAuthenResponse
}

// refuse answers a call request we do not admit: CDN to the peer's session
// ID, no session kept.
func (t *Tunnel) refuse(now time.Time, peerSID uint32, rc l2tp.ResultCode) {
	m := t.newMsg(l2tp.MsgCDN)
	m.AddResultCode(rc)
	m.AddUint16(l2tp.AVPAssignedSessionID, true, 0)
	t.send(now, peerSID, m)
}

func (t *Tunnel) sessionFor(sid uint32, m *l2tp.Message) *Session {
	if s := t.sessions[sid]; s != nil {
		return s
	}
	if sid != 0 {
		return nil
	}
	// A CDN for a call the peer never learned our ID for carries only its
	// own Assigned Session ID.
	if p, ok, err := m.Uint16(l2tp.AVPAssignedSessionID); ok && err == nil && p != 0 {
		for _, s := range t.sessions {
			if s.PeerID == uint32(p) {
				return s
			}
		}
	}
	return nil
}

func (t *Tunnel) dispatchSession(now time.Time, sid uint32, m *l2tp.Message) {
	switch m.Type {
	case l2tp.MsgICRQ, l2tp.MsgOCRQ:
		t.handleCallRequest(now, m)
		return
	}
	s := t.sessionFor(sid, m)
	if s == nil {
		// A message for a session that is gone (e.g. a CDN crossing ours):
		// already acknowledged, nothing else to do.
		return
	}
	switch m.Type {
	case l2tp.MsgICRP:
		if s.State != SessionWaitReply || s.Dir != Incoming || !s.WeAreLAC {
			t.hangup(now, s, l2tp.ResultCode{Result: l2tp.ResultCDNGeneralError, Error: l2tp.ErrCodeVendor, Message: "unexpected ICRP"}, "unexpected ICRP from peer")
			return
		}
		p, ok, err := m.Uint16(l2tp.AVPAssignedSessionID)
		if !ok || err != nil || p == 0 {
			t.hangup(now, s, l2tp.ResultCode{Result: l2tp.ResultCDNGeneralError, Error: l2tp.ErrCodeOutOfRange, Message: "ICRP without Assigned Session ID"}, "ICRP without a valid Assigned Session ID")
			return
		}
		t.setPeerID(s, uint32(p))
		c := t.newMsg(l2tp.MsgICCN)
		c.AddUint32(l2tp.AVPTxConnectSpeed, true, connectSpeed(s.Info.TxConnectSpeed))
		c.AddUint32(l2tp.AVPFramingType, true, framingOr(s.Info.FramingType))
		if s.Info.RxConnectSpeed != 0 {
			c.AddUint32(l2tp.AVPRxConnectSpeed, false, s.Info.RxConnectSpeed)
		}
		if s.Info.SequencingRequired {
			c.AddBytes(l2tp.AVPSequencingRequired, true, nil)
		}
		t.send(now, s.PeerID, c)
		t.up(s)
	case l2tp.MsgICCN:
		if s.State != SessionWaitConnect || s.Dir != Incoming || s.WeAreLAC {
			t.hangup(now, s, l2tp.ResultCode{Result: l2tp.ResultCDNGeneralError, Error: l2tp.ErrCodeVendor, Message: "unexpected ICCN"}, "unexpected ICCN from peer")
			return
		}
		readConnectInfo(m, &s.Info)
		t.up(s)
	case l2tp.MsgOCRP:
		if s.State != SessionWaitReply || s.Dir != Outgoing || s.WeAreLAC {
			t.hangup(now, s, l2tp.ResultCode{Result: l2tp.ResultCDNGeneralError, Error: l2tp.ErrCodeVendor, Message: "unexpected OCRP"}, "unexpected OCRP from peer")
			return
		}
		p, ok, err := m.Uint16(l2tp.AVPAssignedSessionID)
		if !ok || err != nil || p == 0 {
			t.hangup(now, s, l2tp.ResultCode{Result: l2tp.ResultCDNGeneralError, Error: l2tp.ErrCodeOutOfRange, Message: "OCRP without Assigned Session ID"}, "OCRP without a valid Assigned Session ID")
			return
		}
		t.setPeerID(s, uint32(p))
		s.State = SessionWaitConnect
	case l2tp.MsgOCCN:
		if s.State != SessionWaitConnect || s.Dir != Outgoing || s.WeAreLAC {
			t.hangup(now, s, l2tp.ResultCode{Result: l2tp.ResultCDNGeneralError, Error: l2tp.ErrCodeVendor, Message: "unexpected OCCN"}, "unexpected OCCN from peer")
			return
		}
		readConnectInfo(m, &s.Info)
		t.up(s)
	case l2tp.MsgCDN:
		rc := l2tp.ResultCode{Result: l2tp.ResultCDNGeneralError}
		if v, ok := m.Bytes(l2tp.AVPResultCode); ok {
			if r, err := l2tp.ParseResultCode(v); err == nil {
				rc = r
			}
		}
		t.removeSession(s)
		t.endSession(s, rc, true, describeResult("peer sent CDN: ", rc), AbandonPeerCleared)
	case l2tp.MsgWEN:
		if v, ok := m.Bytes(l2tp.AVPCallErrors); ok {
			if ce, err := l2tp.ParseCallErrors(v); err == nil {
				t.events = append(t.events, CallErrors{ID: s.ID, Errors: ce})
			}
		}
	case l2tp.MsgSLI:
		if v, ok := m.Bytes(l2tp.AVPACCM); ok {
			if a, err := l2tp.ParseACCM(v); err == nil {
				t.events = append(t.events, LinkInfo{ID: s.ID, ACCM: a})
			}
		}
	}
}

func connectSpeed(v uint32) uint32 {
	if v == 0 {
		return 100000000 // a virtual line: report 100 Mbit/s
	}
	return v
}

// handleCallRequest handles ICRQ (we are the LNS) and OCRQ (we are the LAC).
func (t *Tunnel) handleCallRequest(now time.Time, m *l2tp.Message) {
	p, ok, err := m.Uint16(l2tp.AVPAssignedSessionID)
	if !ok || err != nil || p == 0 {
		t.events = append(t.events, Malformed{Err: fmt.Errorf("tunnel %d: %v without a valid Assigned Session ID: ignored", t.cfg.LocalID, m.Type)})
		return
	}
	if _, dup := t.byPeer[peerKey{id: uint32(p), weAreLAC: m.Type != l2tp.MsgICRQ}]; dup {
		return // the peer reused its ID for a call we still hold: ignore the duplicate
	}
	dir := Incoming
	if m.Type == l2tp.MsgOCRQ {
		dir = Outgoing
	}
	info := readCallInfo(m)
	id, err := t.allocSessionID()
	if err != nil {
		t.refuse(now, uint32(p), l2tp.ResultCode{Result: l2tp.ResultCDNTempResources, Error: l2tp.ErrCodeNoResources, Message: "session limit reached on this tunnel"})
		return
	}
	s := &Session{ID: id, PeerID: uint32(p), Dir: dir, WeAreLAC: dir == Outgoing, Info: info}
	if dir == Incoming && len(t.deferred) > 0 {
		// Behind the calls already held: first come, first admitted.
		t.deferCall(now, s)
		return
	}
	// The policy is asked last: once it admits, a SessionDown (or
	// SessionUp) is guaranteed, so it may count the call.
	if t.cfg.Policy != nil {
		if rc := t.cfg.Policy.AdmitCall(t, dir, &s.Info); rc != nil {
			if rc == DeferCall && dir == Incoming && t.cfg.CallAdmitWait > 0 {
				t.deferCall(now, s)
				return
			}
			t.refuse(now, uint32(p), *rc)
			return
		}
	}
	t.addSession(s)
	if dir == Incoming {
		t.answerICRQ(now, s)
		return
	}
	// OCRQ at the LAC: our "bearer" is virtual and answers at once.
	r := t.newMsg(l2tp.MsgOCRP)
	r.AddUint16(l2tp.AVPAssignedSessionID, true, uint16(id))
	t.send(now, s.PeerID, r)
	c := t.newMsg(l2tp.MsgOCCN)
	c.AddUint32(l2tp.AVPTxConnectSpeed, true, connectSpeed(info.TxConnectSpeed))
	c.AddUint32(l2tp.AVPFramingType, true, framingOr(info.FramingType))
	t.send(now, s.PeerID, c)
	t.up(s)
}

func (t *Tunnel) answerICRQ(now time.Time, s *Session) {
	r := t.newMsg(l2tp.MsgICRP)
	r.AddUint16(l2tp.AVPAssignedSessionID, true, uint16(s.ID))
	s.State = SessionWaitConnect
	t.send(now, s.PeerID, r)
}

// deferCall holds an incoming call the policy deferred.
func (t *Tunnel) deferCall(now time.Time, s *Session) {
	s.State = SessionWaitAdmit
	t.addSession(s)
	t.deferred = append(t.deferred, heldCall{s: s, admitBy: now.Add(t.cfg.CallAdmitWait)})
}

// Deferred is how many calls are held waiting for admission.
func (t *Tunnel) Deferred() int { return len(t.deferred) }

// RetryDeferred asks the policy again about the held calls, oldest first,
// until it defers one again: admitted calls are answered (ICRP), refused
// ones get a CDN. It returns how many are still held.
func (t *Tunnel) RetryDeferred(now time.Time) int {
	for len(t.deferred) > 0 && t.state == StateEstablished {
		s := t.deferred[0].s
		var rc *l2tp.ResultCode
		if t.cfg.Policy != nil {
			rc = t.cfg.Policy.AdmitCall(t, s.Dir, &s.Info)
		}
		if rc == DeferCall {
			break
		}
		t.deferred[0] = heldCall{}
		t.deferred = t.deferred[1:]
		if rc != nil {
			t.removeSession(s)
			t.refuse(now, s.PeerID, *rc)
			t.events = append(t.events, CallAbandoned{ID: s.ID, PeerID: s.PeerID, Cause: AbandonRefused, Reason: "refused: " + rc.Message})
			continue
		}
		t.answerICRQ(now, s)
	}
	return len(t.deferred)
}

// expireDeferred refuses the held calls whose wait ran out.
func (t *Tunnel) expireDeferred(now time.Time) {
	for len(t.deferred) > 0 && !now.Before(t.deferred[0].admitBy) {
		s := t.deferred[0].s
		t.deferred[0] = heldCall{}
		t.deferred = t.deferred[1:]
		t.removeSession(s)
		t.refuse(now, s.PeerID, *DeferCall)
		t.events = append(t.events, CallAbandoned{ID: s.ID, PeerID: s.PeerID, Cause: AbandonExpired,
			Reason: fmt.Sprintf("not admitted within %v (session setups in flight at the limit)", t.cfg.CallAdmitWait)})
	}
}

// dropDeferred forgets a held call that ended otherwise (the peer's CDN,
// tunnel down): it was never admitted.
func (t *Tunnel) dropDeferred(s *Session, reason string, cause AbandonCause) {
	for i, d := range t.deferred {
		if d.s == s {
			n := copy(t.deferred[i:], t.deferred[i+1:])
			t.deferred[i+n] = heldCall{}
			t.deferred = t.deferred[:i+n]
			break
		}
	}
	t.events = append(t.events, CallAbandoned{ID: s.ID, PeerID: s.PeerID, Cause: cause, Reason: reason})
}

// peerKey indexes sessions by the peer's session ID and our role in the
// call (handleCallRequest's duplicate check, without a scan of every
// session of the tunnel per call request).
type peerKey struct {
	id       uint32
	weAreLAC bool
}

// addSession enters s in the tunnel's tables.
func (t *Tunnel) addSession(s *Session) {
	t.sessions[s.ID] = s
	if s.PeerID != 0 {
		t.byPeer[peerKey{id: s.PeerID, weAreLAC: s.WeAreLAC}] = s
	}
}

// setPeerID records the session ID the peer assigned (ICRP, OCRP).
func (t *Tunnel) setPeerID(s *Session, id uint32) {
	if s.PeerID != 0 {
		t.unindexPeer(s)
	}
	s.PeerID = id
	t.byPeer[peerKey{id: id, weAreLAC: s.WeAreLAC}] = s
}

// removeSession removes s from the tunnel's tables.
func (t *Tunnel) removeSession(s *Session) {
	delete(t.sessions, s.ID)
	t.unindexPeer(s)
}

func (t *Tunnel) unindexPeer(s *Session) {
	k := peerKey{id: s.PeerID, weAreLAC: s.WeAreLAC}
	if t.byPeer[k] == s {
		delete(t.byPeer, k)
	}
}
