package tunnel

import (
	"crypto/subtle"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/l2tpd/l2tpd/l2tp"
)

// hideable lists the AVPs we hide when HideAVPs is on: everything that says
// something about the subscriber or the call. Host Name is never hidden
// (peers are matched on it before the secret is known), nor are the AVPs an
// SCCRQ needs to be demultiplexed.
var hideable = map[l2tp.AVPType]bool{
	l2tp.AVPChallengeResponse:    true,
	l2tp.AVPAssignedSessionID:    true,
	l2tp.AVPCallSerialNumber:     true,
	l2tp.AVPBearerType:           true,
	l2tp.AVPFramingType:          true,
	l2tp.AVPCalledNumber:         true,
	l2tp.AVPCallingNumber:        true,
	l2tp.AVPSubAddress:           true,
	l2tp.AVPTxConnectSpeed:       true,
	l2tp.AVPRxConnectSpeed:       true,
	l2tp.AVPPhysicalChannelID:    true,
	l2tp.AVPPrivateGroupID:       true,
	l2tp.AVPProxyAuthenType:      true,
	l2tp.AVPProxyAuthenName:      true,
	l2tp.AVPProxyAuthenChallenge: true,
	l2tp.AVPProxyAuthenID:        true,
	l2tp.AVPProxyAuthenResponse:  true,
}

// newMsg returns an empty message to build and send: the tunnel's own,
// unless one is being built already.
func (t *Tunnel) newMsg(mt l2tp.MessageType) *l2tp.Message {
	if t.txBusy {
		return &l2tp.Message{Type: mt}
	}
	t.txBusy = true
	t.tx.Reset(mt)
	return &t.tx
}

// send encodes m for the peer's session peerSID (0: tunnel message) and
// queues it on the reliable channel. The queued body is the whole datagram;
// Output patches Ns/Nr into it.
func (t *Tunnel) send(now time.Time, peerSID uint32, m *l2tp.Message) {
	if m == &t.tx {
		defer func() { t.txBusy = false }()
	}
	if t.cfg.HideAVPs {
		for i := range m.AVPs {
			if m.AVPs[i].Vendor == 0 && hideable[m.AVPs[i].Type] {
				m.AVPs[i].Hidden = true
			}
		}
	}
	body, err := l2tp.AppendMessage(t.msgBuf[:0], m, t.cfg.Secret, t.cfg.Rand)
	if err != nil {
		// Only a failing random source or an oversized AVP gets here: a
		// programming error or a broken system; close the tunnel hard.
		t.events = append(t.events, Malformed{Err: fmt.Errorf("tunnel %d: encoding %v: %w", t.cfg.LocalID, m.Type, err)})
		return
	}
	t.msgBuf = body
	h := l2tp.Header{Control: true, HasLength: true, HasSeq: true, Version: 2, TunnelID: t.peerID, SessionID: peerSID}
	dgram := l2tp.AppendHeader(make([]byte, 0, 12+len(body)), h, len(body))
	dgram = append(dgram, body...)
	t.ch.Send(now, dgram)
}

func (t *Tunnel) addTunnelAVPs(m *l2tp.Message) {
	m.AddBytes(l2tp.AVPProtocolVersion, true, []byte{1, 0})
	m.AddUint32(l2tp.AVPFramingCapabilities, true, t.cfg.FramingCaps)
	m.AddUint32(l2tp.AVPBearerCapabilities, true, t.cfg.BearerCaps)
	if t.cfg.FirmwareRevision != 0 {
		m.AddUint16(l2tp.AVPFirmwareRevision, false, t.cfg.FirmwareRevision)
	}
	m.AddString(l2tp.AVPHostName, true, t.cfg.HostName)
	if t.cfg.VendorName != "" {
		m.AddString(l2tp.AVPVendorName, false, t.cfg.VendorName)
	}
	m.AddUint16(l2tp.AVPAssignedTunnelID, true, uint16(t.cfg.LocalID))
	m.AddUint16(l2tp.AVPReceiveWindowSize, true, t.cfg.Control.RecvWindow)
}

func (t *Tunnel) addChallenge(m *l2tp.Message) error {
	c := make([]byte, 16)
	if _, err := io.ReadFull(t.cfg.Rand, c); err != nil {
		return fmt.Errorf("tunnel %d: challenge: %w", t.cfg.LocalID, err)
	}
	t.ourChallenge = c
	m.AddBytes(l2tp.AVPChallenge, true, c)
	return nil
}

// answerChallenge adds a Challenge Response if the peer challenged us. It
// returns false (and closes the tunnel) if we cannot answer.
func (t *Tunnel) answerChallenge(now time.Time, in, out *l2tp.Message) bool {
	ch, ok := in.Bytes(l2tp.AVPChallenge)
	if !ok {
		return true
	}
	if len(t.cfg.Secret) == 0 {
		t.fail(now, l2tp.ResultStopNotAuthorized, 0, "peer sent a Challenge but no secret is configured for it; set `secret` for this peer")
		return false
	}
	if len(ch) == 0 {
		t.fail(now, l2tp.ResultStopGeneralError, l2tp.ErrCodeBadLength, "peer sent an empty Challenge")
		return false
	}
	r := l2tp.ChallengeResponse(out.Type, t.cfg.Secret, ch)
	out.AddBytes(l2tp.AVPChallengeResponse, true, r[:])
	return true
}

// checkResponse verifies the peer's answer to our Challenge. It returns
// false (and closes the tunnel) when it is wrong or missing.
func (t *Tunnel) checkResponse(now time.Time, in *l2tp.Message) bool {
	if t.ourChallenge == nil {
		return true
	}
	got, ok := in.Bytes(l2tp.AVPChallengeResponse)
	if !ok {
		t.fail(now, l2tp.ResultStopNotAuthorized, 0, "peer did not answer our Challenge (tunnel authentication is required): configure the same secret on the peer")
		return false
	}
	want := l2tp.ChallengeResponse(in.Type, t.cfg.Secret, t.ourChallenge)
	if len(got) != len(want) || subtle.ConstantTimeCompare(got, want[:]) != 1 {
		t.fail(now, l2tp.ResultStopNotAuthorized, 0, "peer's Challenge Response is wrong: the tunnel secrets differ")
		return false
	}
	return true
}

// fail closes the tunnel with a StopCCN.
func (t *Tunnel) fail(now time.Time, result, code uint16, reason string) {
	t.goDown(now, l2tp.ResultCode{Result: result, Error: code, Message: reason}, false, reason, true)
}

// learnPeer records the tunnel-level AVPs of SCCRQ/SCCRP. It returns false
// (having sent StopCCN) when a required AVP is missing or wrong.
func (t *Tunnel) learnPeer(now time.Time, m *l2tp.Message) bool {
	pv, ok := m.Bytes(l2tp.AVPProtocolVersion)
	if !ok {
		t.fail(now, l2tp.ResultStopGeneralError, l2tp.ErrCodeVendor, fmt.Sprintf("%v without Protocol Version", m.Type))
		return false
	}
	if len(pv) != 2 || pv[0] != 1 || pv[1] != 0 {
		t.goDown(now, l2tp.ResultCode{Result: l2tp.ResultStopBadVersion, Error: 0x0100, Message: "only L2TP version 1.0 (RFC 2661) is supported here"},
			false, fmt.Sprintf("peer speaks protocol version %x, we speak 1.0", pv), true)
		return false
	}
	id, ok, err := m.Uint16(l2tp.AVPAssignedTunnelID)
	if !ok || err != nil || id == 0 {
		t.fail(now, l2tp.ResultStopGeneralError, l2tp.ErrCodeOutOfRange, fmt.Sprintf("%v without a valid Assigned Tunnel ID", m.Type))
		return false
	}
	host, ok := m.String(l2tp.AVPHostName)
	if !ok {
		t.fail(now, l2tp.ResultStopGeneralError, l2tp.ErrCodeVendor, fmt.Sprintf("%v without Host Name", m.Type))
		return false
	}
	fc, ok, err := m.Uint32(l2tp.AVPFramingCapabilities)
	if !ok || err != nil {
		t.fail(now, l2tp.ResultStopGeneralError, l2tp.ErrCodeVendor, fmt.Sprintf("%v without Framing Capabilities", m.Type))
		return false
	}
	t.peerID = uint32(id)
	t.peerHostName = host
	t.peerFraming = fc
	if bc, ok, err := m.Uint32(l2tp.AVPBearerCapabilities); ok && err == nil {
		t.peerBearer = bc
	}
	if v, ok := m.String(l2tp.AVPVendorName); ok {
		t.peerVendor = v
	}
	if w, ok, err := m.Uint16(l2tp.AVPReceiveWindowSize); ok && err == nil && w > 0 {
		t.ch.SetPeerWindow(w)
	}
	return true
}

func (t *Tunnel) handleSCCRQ(now time.Time, m *l2tp.Message) {
	if m.Type != l2tp.MsgSCCRQ {
		t.fail(now, l2tp.ResultStopFSMError, 0, fmt.Sprintf("expected SCCRQ, got %v", m.Type))
		return
	}
	if !t.learnPeer(now, m) {
		return
	}
	reply := t.newMsg(l2tp.MsgSCCRP)
	t.addTunnelAVPs(reply)
	if !t.answerChallenge(now, m, reply) {
		return
	}
	if t.cfg.Challenge {
		if len(t.cfg.Secret) == 0 {
			t.fail(now, l2tp.ResultStopNotAuthorized, 0, "tunnel authentication is required but no secret is configured")
			return
		}
		if err := t.addChallenge(reply); err != nil {
			t.fail(now, l2tp.ResultStopGeneralError, l2tp.ErrCodeNoResources, err.Error())
			return
		}
	}
	t.state = StateWaitCtlConn
	t.send(now, 0, reply)
}

// dispatch handles one in-order control message.
func (t *Tunnel) dispatch(now time.Time, sid uint32, m *l2tp.Message, unknown *l2tp.UnknownAVPError) {
	if t.state == StateClosing || t.state == StateDead {
		return
	}
	if m.Type == l2tp.MsgStopCCN {
		rc := l2tp.ResultCode{Result: l2tp.ResultStopGeneral}
		if v, ok := m.Bytes(l2tp.AVPResultCode); ok {
			if r, err := l2tp.ParseResultCode(v); err == nil {
				rc = r
			}
		}
		t.goDown(now, rc, true, describeResult("peer sent StopCCN: ", rc), false)
		return
	}
	if unknown != nil {
		if isSessionMessage(m.Type) && sid != 0 {
			if s := t.sessions[sid]; s != nil {
				t.hangup(now, s, l2tp.ResultCode{Result: l2tp.ResultCDNGeneralError, Error: l2tp.ErrCodeUnknownMandatory, Message: unknown.Error()}, "unknown mandatory AVP from peer")
			}
			return
		}
		t.fail(now, l2tp.ResultStopGeneralError, l2tp.ErrCodeUnknownMandatory, unknown.Error())
		return
	}
	switch m.Type {
	case l2tp.MsgSCCRP:
		if t.state != StateWaitCtlReply {
			t.fail(now, l2tp.ResultStopFSMError, 0, fmt.Sprintf("unexpected SCCRP in state %v", t.state))
			return
		}
		if !t.learnPeer(now, m) || !t.checkResponse(now, m) {
			return
		}
		reply := t.newMsg(l2tp.MsgSCCCN)
		if !t.answerChallenge(now, m, reply) {
			return
		}
		t.send(now, 0, reply)
		t.establish()
	case l2tp.MsgSCCCN:
		if t.state != StateWaitCtlConn {
			t.fail(now, l2tp.ResultStopFSMError, 0, fmt.Sprintf("unexpected SCCCN in state %v", t.state))
			return
		}
		if !t.checkResponse(now, m) {
			return
		}
		t.establish()
	case l2tp.MsgSCCRQ:
		// A new SCCRQ inside an existing tunnel (with a fresh Ns) is an FSM
		// error; retransmissions never get here (the channel drops them).
		t.fail(now, l2tp.ResultStopFSMError, 0, "SCCRQ on an existing tunnel")
	case l2tp.MsgHello:
		// Nothing to do: the channel acknowledged it.
	default:
		if t.state != StateEstablished {
			t.fail(now, l2tp.ResultStopFSMError, 0, fmt.Sprintf("%v before the tunnel was established", m.Type))
			return
		}
		t.dispatchSession(now, sid, m)
	}
}

func (t *Tunnel) establish() {
	t.state = StateEstablished
	t.events = append(t.events, TunnelUp{PeerID: t.peerID, PeerHostName: t.peerHostName, PeerVendor: t.peerVendor})
}

func isSessionMessage(mt l2tp.MessageType) bool {
	switch mt {
	case l2tp.MsgICRQ, l2tp.MsgICRP, l2tp.MsgICCN, l2tp.MsgOCRQ, l2tp.MsgOCRP, l2tp.MsgOCCN, l2tp.MsgCDN, l2tp.MsgWEN, l2tp.MsgSLI:
		return true
	}
	return false
}

// describeResult returns prefix followed by a description of rc.
func describeResult(prefix string, rc l2tp.ResultCode) string {
	var arr [128]byte
	b := append(arr[:0], prefix...)
	b = append(b, "result "...)
	b = strconv.AppendUint(b, uint64(rc.Result), 10)
	if rc.Error != 0 {
		b = append(b, ", error "...)
		b = strconv.AppendUint(b, uint64(rc.Error), 10)
	}
	if rc.Message != "" {
		b = append(b, " ("...)
		b = strconv.AppendQuote(b, rc.Message)
		b = append(b, ')')
	}
	return string(b)
}
