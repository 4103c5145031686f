// Package l2tp is the L2TP wire codec: the common header (RFC 2661 3.1,
// RFC 3931 3.2 and 4.1.2.2), control message AVPs (RFC 2661 4), hidden AVPs
// (RFC 2661 4.3), tunnel authentication (RFC 2661 4.4.3, 5.1.1) and result
// codes. It is pure: no sockets, goroutines, logging or clock.
package l2tp

import "strconv"

// Protocol numbers and fixed values.
const (
	// Version2 is the L2TPv2 header version (RFC 2661).
	Version2 = 2
	// Version3 is the L2TPv3 header version (RFC 3931).
	Version3 = 3
	// DefaultPort is the UDP port of L2TP (RFC 2661 8.1).
	DefaultPort = 1701
	// ProtocolVersion1 and ProtocolRevision0 are the values of the Protocol
	// Version AVP sent by RFC 2661 implementations.
	ProtocolVersion1  = 1
	ProtocolRevision0 = 0
	// AVPHeaderLen is the size of the AVP header (flags+length, vendor, type).
	AVPHeaderLen = 6
	// MaxAVPLen is the largest AVP length the 10-bit length field encodes.
	MaxAVPLen = 1023
	// ChallengeResponseLen is the size of the Challenge Response AVP value.
	ChallengeResponseLen = 16
)

// Header flag bits of the first 16-bit word (RFC 2661 3.1, RFC 3931 3.2.1).
const (
	flagT       = 0x8000
	flagL       = 0x4000
	flagS       = 0x0800
	flagO       = 0x0200
	flagP       = 0x0100
	versionMask = 0x000f
)

// AVP header bits (RFC 2661 4.1).
const (
	avpFlagM        = 0x8000
	avpFlagH        = 0x4000
	avpLengthMask   = 0x03ff
	avpReservedMask = 0x3c00
)

// MessageType is the value of the Message Type AVP (RFC 2661 3.2, RFC 3931 3.1).
type MessageType uint16

// Control message types. A ZLB (zero-length body) acknowledgement is not a
// message type: it is a control header with no AVPs.
const (
	MsgSCCRQ   MessageType = 1  // Start-Control-Connection-Request
	MsgSCCRP   MessageType = 2  // Start-Control-Connection-Reply
	MsgSCCCN   MessageType = 3  // Start-Control-Connection-Connected
	MsgStopCCN MessageType = 4  // Stop-Control-Connection-Notification
	MsgHello   MessageType = 6  // Hello
	MsgOCRQ    MessageType = 7  // Outgoing-Call-Request
	MsgOCRP    MessageType = 8  // Outgoing-Call-Reply
	MsgOCCN    MessageType = 9  // Outgoing-Call-Connected
	MsgICRQ    MessageType = 10 // Incoming-Call-Request
	MsgICRP    MessageType = 11 // Incoming-Call-Reply
	MsgICCN    MessageType = 12 // Incoming-Call-Connected
	MsgCDN     MessageType = 14 // Call-Disconnect-Notify
	MsgWEN     MessageType = 15 // WAN-Error-Notify
	MsgSLI     MessageType = 16 // Set-Link-Info
	MsgMSRQ    MessageType = 17 // Modem-Status-Request (RFC 4045)
	MsgMSRP    MessageType = 18 // Modem-Status-Reply (RFC 4045)
	MsgMSE     MessageType = 19 // Modem-Status-Event (RFC 4045)
	MsgACK     MessageType = 20 // Explicit Acknowledgement (RFC 3931)
	MsgFSQ     MessageType = 21 // Failover Session Query (RFC 4951)
	MsgFSR     MessageType = 22 // Failover Session Response (RFC 4951)
)

var messageTypeNames = [...]string{
	MsgSCCRQ: "SCCRQ", MsgSCCRP: "SCCRP", MsgSCCCN: "SCCCN", MsgStopCCN: "StopCCN",
	MsgHello: "HELLO", MsgOCRQ: "OCRQ", MsgOCRP: "OCRP", MsgOCCN: "OCCN",
	MsgICRQ: "ICRQ", MsgICRP: "ICRP", MsgICCN: "ICCN", MsgCDN: "CDN",
	MsgWEN: "WEN", MsgSLI: "SLI", MsgMSRQ: "MSRQ", MsgMSRP: "MSRP", MsgMSE: "MSE",
	MsgACK: "ACK", MsgFSQ: "FSQ", MsgFSR: "FSR",
}

// Known reports whether t is a message type this package has a name for.
func (t MessageType) Known() bool {
	return int(t) < len(messageTypeNames) && messageTypeNames[t] != ""
}

func (t MessageType) String() string {
	if t.Known() {
		return messageTypeNames[t]
	}
	return "MessageType(" + strconv.Itoa(int(t)) + ")"
}

// AVPType is the Attribute Type of an AVP. Unless qualified by a vendor ID,
// it names an IETF AVP (RFC 2661 4.4, RFC 3931 5.4).
type AVPType uint16

// IETF AVP types.
const (
	AVPMessageType               AVPType = 0
	AVPResultCode                AVPType = 1
	AVPProtocolVersion           AVPType = 2
	AVPFramingCapabilities       AVPType = 3
	AVPBearerCapabilities        AVPType = 4
	AVPTieBreaker                AVPType = 5
	AVPFirmwareRevision          AVPType = 6
	AVPHostName                  AVPType = 7
	AVPVendorName                AVPType = 8
	AVPAssignedTunnelID          AVPType = 9
	AVPReceiveWindowSize         AVPType = 10
	AVPChallenge                 AVPType = 11
	AVPQ931Cause                 AVPType = 12
	AVPChallengeResponse         AVPType = 13
	AVPAssignedSessionID         AVPType = 14
	AVPCallSerialNumber          AVPType = 15
	AVPMinimumBPS                AVPType = 16
	AVPMaximumBPS                AVPType = 17
	AVPBearerType                AVPType = 18
	AVPFramingType               AVPType = 19
	AVPCalledNumber              AVPType = 21
	AVPCallingNumber             AVPType = 22
	AVPSubAddress                AVPType = 23
	AVPTxConnectSpeed            AVPType = 24
	AVPPhysicalChannelID         AVPType = 25
	AVPInitialReceivedLCPConfReq AVPType = 26
	AVPLastSentLCPConfReq        AVPType = 27
	AVPLastReceivedLCPConfReq    AVPType = 28
	AVPProxyAuthenType           AVPType = 29
	AVPProxyAuthenName           AVPType = 30
	AVPProxyAuthenChallenge      AVPType = 31
	AVPProxyAuthenID             AVPType = 32
	AVPProxyAuthenResponse       AVPType = 33
	AVPCallErrors                AVPType = 34
	AVPACCM                      AVPType = 35
	AVPRandomVector              AVPType = 36
	AVPPrivateGroupID            AVPType = 37
	AVPRxConnectSpeed            AVPType = 38
	AVPSequencingRequired        AVPType = 39
	AVPPPPDisconnectCause        AVPType = 46 // RFC 3145
	// RFC 3931 (L2TPv3).
	AVPExtendedVendorID        AVPType = 58
	AVPMessageDigest           AVPType = 59
	AVPRouterID                AVPType = 60
	AVPAssignedConnectionID    AVPType = 61
	AVPPseudowireCapabilities  AVPType = 62
	AVPLocalSessionID          AVPType = 63
	AVPRemoteSessionID         AVPType = 64
	AVPAssignedCookie          AVPType = 65
	AVPRemoteEndID             AVPType = 66
	AVPPseudowireType          AVPType = 68
	AVPL2SpecificSublayer      AVPType = 69
	AVPDataSequencing          AVPType = 70
	AVPCircuitStatus           AVPType = 71
	AVPPreferredLanguage       AVPType = 72
	AVPControlMessageAuthNonce AVPType = 73
	AVPTxConnectSpeedV3        AVPType = 74 // 64-bit Tx Connect Speed
	AVPRxConnectSpeedV3        AVPType = 75 // 64-bit Rx Connect Speed
)

var avpTypeNames = [...]string{
	AVPMessageType: "Message Type", AVPResultCode: "Result Code",
	AVPProtocolVersion: "Protocol Version", AVPFramingCapabilities: "Framing Capabilities",
	AVPBearerCapabilities: "Bearer Capabilities", AVPTieBreaker: "Tie Breaker",
	AVPFirmwareRevision: "Firmware Revision", AVPHostName: "Host Name",
	AVPVendorName: "Vendor Name", AVPAssignedTunnelID: "Assigned Tunnel ID",
	AVPReceiveWindowSize: "Receive Window Size", AVPChallenge: "Challenge",
	AVPQ931Cause: "Q.931 Cause Code", AVPChallengeResponse: "Challenge Response",
	AVPAssignedSessionID: "Assigned Session ID", AVPCallSerialNumber: "Call Serial Number",
	AVPMinimumBPS: "Minimum BPS", AVPMaximumBPS: "Maximum BPS",
	AVPBearerType: "Bearer Type", AVPFramingType: "Framing Type",
	AVPCalledNumber: "Called Number", AVPCallingNumber: "Calling Number",
	AVPSubAddress: "Sub-Address", AVPTxConnectSpeed: "Tx Connect Speed",
	AVPPhysicalChannelID:         "Physical Channel ID",
	AVPInitialReceivedLCPConfReq: "Initial Received LCP CONFREQ",
	AVPLastSentLCPConfReq:        "Last Sent LCP CONFREQ",
	AVPLastReceivedLCPConfReq:    "Last Received LCP CONFREQ",
	AVPProxyAuthenType:           "Proxy Authen Type", AVPProxyAuthenName: "Proxy Authen Name",
	AVPProxyAuthenChallenge: "Proxy Authen Challenge", AVPProxyAuthenID: "Proxy Authen ID",
	AVPProxyAuthenResponse: "Proxy Authen Response", AVPCallErrors: "Call Errors",
	AVPACCM: "ACCM", AVPRandomVector: "Random Vector",
	AVPPrivateGroupID: "Private Group ID", AVPRxConnectSpeed: "Rx Connect Speed",
	AVPSequencingRequired: "Sequencing Required",
	AVPPPPDisconnectCause: "PPP Disconnect Cause Code",
	AVPExtendedVendorID:   "Extended Vendor ID", AVPMessageDigest: "Message Digest",
	AVPRouterID: "Router ID", AVPAssignedConnectionID: "Assigned Control Connection ID",
	AVPPseudowireCapabilities: "Pseudowire Capabilities List",
	AVPLocalSessionID:         "Local Session ID", AVPRemoteSessionID: "Remote Session ID",
	AVPAssignedCookie: "Assigned Cookie", AVPRemoteEndID: "Remote End ID",
	AVPPseudowireType: "Pseudowire Type", AVPL2SpecificSublayer: "L2-Specific Sublayer",
	AVPDataSequencing: "Data Sequencing", AVPCircuitStatus: "Circuit Status",
	AVPPreferredLanguage:       "Preferred Language",
	AVPControlMessageAuthNonce: "Control Message Authentication Nonce",
	AVPTxConnectSpeedV3:        "Tx Connect Speed (64-bit)",
	AVPRxConnectSpeedV3:        "Rx Connect Speed (64-bit)",
}

// Known reports whether t is an IETF AVP type this package recognises. With
// the M bit set, an AVP that is not known must clear the session or tunnel
// (RFC 2661 4.1).
func (t AVPType) Known() bool {
	return int(t) < len(avpTypeNames) && avpTypeNames[t] != ""
}

func (t AVPType) String() string {
	if t.Known() {
		return avpTypeNames[t]
	}
	return "AVPType(" + strconv.Itoa(int(t)) + ")"
}

// StopCCN result codes (RFC 2661 4.4.2).
const (
	ResultStopGeneral       uint16 = 1 // general request to clear control connection
	ResultStopGeneralError  uint16 = 2 // general error, Error Code indicates the problem
	ResultStopAlreadyExists uint16 = 3 // control channel already exists
	ResultStopNotAuthorized uint16 = 4 // requester is not authorized to establish a control channel
	ResultStopBadVersion    uint16 = 5 // protocol version of the requester is not supported
	ResultStopShuttingDown  uint16 = 6 // requester is being shut down
	ResultStopFSMError      uint16 = 7 // finite state machine error
)

// CDN result codes (RFC 2661 4.4.2).
const (
	ResultCDNLostCarrier   uint16 = 1  // call disconnected due to loss of carrier
	ResultCDNGeneralError  uint16 = 2  // general error, Error Code indicates the problem
	ResultCDNAdmin         uint16 = 3  // disconnected for administrative reasons
	ResultCDNTempResources uint16 = 4  // lack of appropriate facilities (temporary)
	ResultCDNPermResources uint16 = 5  // lack of appropriate facilities (permanent)
	ResultCDNInvalidDest   uint16 = 6  // invalid destination
	ResultCDNNoCarrier     uint16 = 7  // no carrier detected
	ResultCDNBusy          uint16 = 8  // busy signal
	ResultCDNNoDialTone    uint16 = 9  // no dial tone
	ResultCDNTimeout       uint16 = 10 // not established within the time allotted by the LAC
	ResultCDNBadFraming    uint16 = 11 // no appropriate framing was detected
)

// General error codes carried in the Result Code AVP (RFC 2661 4.4.2).
const (
	ErrCodeNone             uint16 = 0 // no general error
	ErrCodeNoControl        uint16 = 1 // no control connection exists yet for this pair
	ErrCodeBadLength        uint16 = 2 // length is wrong
	ErrCodeOutOfRange       uint16 = 3 // a field was out of range or a reserved field non-zero
	ErrCodeNoResources      uint16 = 4 // insufficient resources to handle this operation now
	ErrCodeBadSessionID     uint16 = 5 // the Session ID is invalid in this context
	ErrCodeVendor           uint16 = 6 // a generic vendor-specific error occurred
	ErrCodeTryAnother       uint16 = 7 // try another LNS
	ErrCodeUnknownMandatory uint16 = 8 // shut down due to an unknown AVP with the M bit set
)

// Framing and bearer bits (RFC 2661 4.4.3, 4.4.5).
const (
	FramingSync   uint32 = 0x1 // S: synchronous framing
	FramingAsync  uint32 = 0x2 // A: asynchronous framing
	BearerDigital uint32 = 0x1 // D: digital access
	BearerAnalog  uint32 = 0x2 // A: analog access
)

// ProxyAuthenType values (RFC 2661 4.4.5).
type ProxyAuthenType uint16

// Proxy authentication types.
const (
	ProxyAuthenReserved ProxyAuthenType = 0
	ProxyAuthenText     ProxyAuthenType = 1 // textual username/password exchange
	ProxyAuthenCHAP     ProxyAuthenType = 2 // PPP CHAP
	ProxyAuthenPAP      ProxyAuthenType = 3 // PPP PAP
	ProxyAuthenNone     ProxyAuthenType = 4 // no authentication
	ProxyAuthenMSCHAPv1 ProxyAuthenType = 5 // Microsoft CHAP version 1
)

func (t ProxyAuthenType) String() string {
	switch t {
	case ProxyAuthenReserved:
		return "Reserved"
	case ProxyAuthenText:
		return "Text"
	case ProxyAuthenCHAP:
		return "CHAP"
	case ProxyAuthenPAP:
		return "PAP"
	case ProxyAuthenNone:
		return "None"
	case ProxyAuthenMSCHAPv1:
		return "MSCHAPv1"
	}
	return "ProxyAuthenType(" + strconv.Itoa(int(t)) + ")"
}
