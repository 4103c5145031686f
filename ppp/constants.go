// Package ppp is the in-process PPP engine (RFC 1661 and friends) as a pure
// core: LCP, PAP, CHAP-MD5, MS-CHAPv2, IPCP and IPv6CP composed into one
// Link per session. A Link takes frames, events and the current time and
// produces actions (frames to send, credentials to check, network up, link
// down) and the next deadline. It owns no goroutines, sockets or clocks.
//
// Frames start with the PPP protocol field; an HDLC address/control prefix
// (FF 03) is accepted and stripped, and compressed (1-byte) protocol fields
// are accepted.
package ppp

import (
	"fmt"
	"time"
)

// Protocol is a PPP protocol number.
type Protocol uint16

// PPP protocol numbers (RFC 1661, 1332, 5072, 1334, 1994).
const (
	ProtoIPv4   Protocol = 0x0021
	ProtoIPv6   Protocol = 0x0057
	ProtoIPCP   Protocol = 0x8021
	ProtoIPv6CP Protocol = 0x8057
	ProtoLCP    Protocol = 0xc021
	ProtoPAP    Protocol = 0xc023
	ProtoCHAP   Protocol = 0xc223
)

func (p Protocol) String() string {
	switch p {
	case ProtoIPv4:
		return "IPv4"
	case ProtoIPv6:
		return "IPv6"
	case ProtoIPCP:
		return "IPCP"
	case ProtoIPv6CP:
		return "IPv6CP"
	case ProtoLCP:
		return "LCP"
	case ProtoPAP:
		return "PAP"
	case ProtoCHAP:
		return "CHAP"
	}
	return fmt.Sprintf("proto-0x%04x", uint16(p))
}

// Code is a control protocol packet code (RFC 1661 section 5).
type Code uint8

// LCP/NCP codes.
const (
	CodeConfReq           Code = 1
	CodeConfAck           Code = 2
	CodeConfNak           Code = 3
	CodeConfRej           Code = 4
	CodeTermReq           Code = 5
	CodeTermAck           Code = 6
	CodeCodeRej           Code = 7
	CodeProtoRej          Code = 8  // LCP only
	CodeEchoReq           Code = 9  // LCP only
	CodeEchoReply         Code = 10 // LCP only
	CodeDiscardReq        Code = 11 // LCP only
	maxCommonCode              = CodeCodeRej
	maxLCPCode                 = CodeDiscardReq
	headerLen                  = 4 // code, identifier, length
	protoLen                   = 2
	minMRU                     = 128
	defaultMRU                 = 1500
	maxConfigureDefault        = 10
	maxFailureDefault          = 5
	maxTerminateDefault        = 2
	restartTimerDefault        = 3 * time.Second
	echoIntervalDefault        = 30 * time.Second
	echoFailuresDefault        = 4
	authTimeoutDefault         = 30 * time.Second
	maxFrameLen                = 4096 // larger control frames are dropped
	challengeLen               = 16
	defaultHostname            = "l2tpd"
	magicLoopNakThreshold      = 5
)

func (c Code) String() string {
	switch c {
	case CodeConfReq:
		return "Configure-Request"
	case CodeConfAck:
		return "Configure-Ack"
	case CodeConfNak:
		return "Configure-Nak"
	case CodeConfRej:
		return "Configure-Reject"
	case CodeTermReq:
		return "Terminate-Request"
	case CodeTermAck:
		return "Terminate-Ack"
	case CodeCodeRej:
		return "Code-Reject"
	case CodeProtoRej:
		return "Protocol-Reject"
	case CodeEchoReq:
		return "Echo-Request"
	case CodeEchoReply:
		return "Echo-Reply"
	case CodeDiscardReq:
		return "Discard-Request"
	}
	return fmt.Sprintf("code-%d", uint8(c))
}

// LCP configuration options (RFC 1661 section 6, RFC 1662).
const (
	lcpOptMRU      = 1
	lcpOptACCM     = 2
	lcpOptAuth     = 3
	lcpOptQuality  = 4
	lcpOptMagic    = 5
	lcpOptPFC      = 7
	lcpOptACFC     = 8
	ipcpOptComp    = 2
	ipcpOptAddr    = 3
	ipcpOptDNS1    = 129
	ipcpOptNBNS1   = 130
	ipcpOptDNS2    = 131
	ipcpOptNBNS2   = 132
	ipv6cpOptIfID  = 1
	ipv6cpOptComp  = 2
	chapAlgMD5     = 5
	chapAlgMSCHAP2 = 0x81
)

// PAP codes (RFC 1334) and CHAP codes (RFC 1994, RFC 2759).
const (
	papAuthReq  = 1
	papAuthAck  = 2
	papAuthNak  = 3
	chapChall   = 1
	chapResp    = 2
	chapSuccess = 3
	chapFailure = 4
)
