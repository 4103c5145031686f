package l2tp

import (
	"errors"
	"fmt"
)

// ErrMissingAVP: a message lacks an AVP RFC 2661 section 6 requires.
var ErrMissingAVP = errors.New("required AVP missing")

// requiredAVPs lists, per RFC 2661 message type, the AVPs (besides Message
// Type) that section 6 marks as required.
var requiredAVPs = map[MessageType][]AVPType{
	MsgSCCRQ:   {AVPProtocolVersion, AVPHostName, AVPFramingCapabilities, AVPAssignedTunnelID},
	MsgSCCRP:   {AVPProtocolVersion, AVPFramingCapabilities, AVPHostName, AVPAssignedTunnelID},
	MsgStopCCN: {AVPAssignedTunnelID, AVPResultCode},
	MsgOCRQ: {AVPAssignedSessionID, AVPCallSerialNumber, AVPMinimumBPS, AVPMaximumBPS,
		AVPBearerType, AVPFramingType, AVPCalledNumber},
	MsgOCRP: {AVPAssignedSessionID},
	MsgOCCN: {AVPTxConnectSpeed, AVPFramingType},
	MsgICRQ: {AVPAssignedSessionID, AVPCallSerialNumber},
	MsgICRP: {AVPAssignedSessionID},
	MsgICCN: {AVPTxConnectSpeed, AVPFramingType},
	MsgCDN:  {AVPResultCode, AVPAssignedSessionID},
	MsgWEN:  {AVPCallErrors},
	MsgSLI:  {AVPACCM},
}

// RequiredAVPs returns the IETF AVPs an RFC 2661 message of type t must
// carry besides Message Type (nil for SCCCN, HELLO and unknown types). The
// slice is shared: do not modify it.
func RequiredAVPs(t MessageType) []AVPType { return requiredAVPs[t] }

// CheckRequired returns an error wrapping ErrMissingAVP naming the first
// RFC 2661 required AVP that m lacks. The tunnel layer answers it with
// ErrCodeBadLength / a general error as its policy dictates.
func (m *Message) CheckRequired() error {
	for _, t := range requiredAVPs[m.Type] {
		if _, ok := m.Find(t); !ok {
			return fmt.Errorf("l2tp: %s without %s AVP: %w", m.Type, t, ErrMissingAVP)
		}
	}
	return nil
}
