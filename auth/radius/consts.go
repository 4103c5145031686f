package radius

import "layeh.com/radius"

// RADIUS attribute types (RFC 2865, 2866, 2868, 2869, 3162, 4818, 5176),
// all in one place.
const (
	attrUserName             radius.Type = 1
	attrUserPassword         radius.Type = 2
	attrCHAPPassword         radius.Type = 3
	attrNASIPAddress         radius.Type = 4
	attrNASPort              radius.Type = 5
	attrServiceType          radius.Type = 6
	attrFramedProtocol       radius.Type = 7
	attrFramedIPAddress      radius.Type = 8
	attrFramedIPNetmask      radius.Type = 9
	attrFramedMTU            radius.Type = 12
	attrReplyMessage         radius.Type = 18
	attrFramedRoute          radius.Type = 22
	attrState                radius.Type = 24
	attrClass                radius.Type = 25
	attrVendorSpecific       radius.Type = 26
	attrSessionTimeout       radius.Type = 27
	attrIdleTimeout          radius.Type = 28
	attrCalledStationID      radius.Type = 30
	attrCallingStationID     radius.Type = 31
	attrNASIdentifier        radius.Type = 32
	attrAcctStatusType       radius.Type = 40
	attrAcctDelayTime        radius.Type = 41
	attrAcctInputOctets      radius.Type = 42
	attrAcctOutputOctets     radius.Type = 43
	attrAcctSessionID        radius.Type = 44
	attrAcctAuthentic        radius.Type = 45
	attrAcctSessionTime      radius.Type = 46
	attrAcctInputPackets     radius.Type = 47
	attrAcctOutputPackets    radius.Type = 48
	attrAcctTerminateCause   radius.Type = 49
	attrAcctInputGigawords   radius.Type = 52
	attrAcctOutputGigawords  radius.Type = 53
	attrEventTimestamp       radius.Type = 55
	attrCHAPChallenge        radius.Type = 60
	attrNASPortType          radius.Type = 61
	attrTunnelType           radius.Type = 64
	attrTunnelMediumType     radius.Type = 65
	attrTunnelClientEndpoint radius.Type = 66
	attrTunnelServerEndpoint radius.Type = 67
	attrConnectInfo          radius.Type = 77
	attrMessageAuthenticator radius.Type = 80
	attrAcctInterimInterval  radius.Type = 85
	attrNASPortID            radius.Type = 87
	attrFramedPool           radius.Type = 88
	attrTunnelClientAuthID   radius.Type = 90
	attrNASIPv6Address       radius.Type = 95
	attrFramedInterfaceID    radius.Type = 96
	attrFramedIPv6Prefix     radius.Type = 97
	attrErrorCause           radius.Type = 101
	attrDelegatedIPv6Prefix  radius.Type = 123
)

// Attribute values.
const (
	serviceTypeFramed   = 2 // Service-Type
	framedProtocolPPP   = 1 // Framed-Protocol
	nasPortTypeVirtual  = 5 // NAS-Port-Type
	tunnelTypeL2TP      = 3 // Tunnel-Type (RFC 2868)
	tunnelMediumIPv4    = 1 // Tunnel-Medium-Type (address family numbers)
	tunnelMediumIPv6    = 2
	acctAuthenticRADIUS = 1 // Acct-Authentic
)

// AcctStatus is RFC 2866 Acct-Status-Type.
type AcctStatus uint32

const (
	AcctStart   AcctStatus = 1
	AcctStop    AcctStatus = 2
	AcctInterim AcctStatus = 3
	AcctOn      AcctStatus = 7
	AcctOff     AcctStatus = 8
)

func (s AcctStatus) String() string {
	switch s {
	case AcctStart:
		return "Start"
	case AcctStop:
		return "Stop"
	case AcctInterim:
		return "Interim-Update"
	case AcctOn:
		return "Accounting-On"
	case AcctOff:
		return "Accounting-Off"
	}
	return "unknown"
}

// Microsoft vendor-specific attributes (RFC 2548), vendor 311.
const (
	vendorMicrosoft       = 311
	msCHAPError           = 2
	msCHAPChallenge       = 11
	msCHAP2Response       = 25
	msCHAP2Success        = 26
	msPrimaryDNSServer    = 28
	msSecondaryDNSServer  = 29
	msPrimaryNBNSServer   = 30
	msSecondaryNBNSServer = 31
)

// FramedIPFromPool is Framed-IP-Address 255.255.255.254: "take an address
// from the NAS's pool" (RFC 2865 5.8).
var framedIPFromPool = [4]byte{255, 255, 255, 254}

// ErrorCause is RFC 5176 Error-Cause.
type ErrorCause uint32

const (
	CauseResidualContextRemoved ErrorCause = 201
	CauseUnsupportedAttribute   ErrorCause = 401
	CauseMissingAttribute       ErrorCause = 402
	CauseNASIdentMismatch       ErrorCause = 403
	CauseInvalidRequest         ErrorCause = 404
	CauseUnsupportedService     ErrorCause = 405
	CauseInvalidAttributeValue  ErrorCause = 407
	CauseAdminProhibited        ErrorCause = 501
	CauseSessionNotFound        ErrorCause = 503
	CauseSessionNotRemovable    ErrorCause = 504
	CauseResourcesUnavailable   ErrorCause = 506
)

func (c ErrorCause) String() string {
	switch c {
	case CauseResidualContextRemoved:
		return "Residual-Session-Context-Removed"
	case CauseUnsupportedAttribute:
		return "Unsupported-Attribute"
	case CauseMissingAttribute:
		return "Missing-Attribute"
	case CauseNASIdentMismatch:
		return "NAS-Identification-Mismatch"
	case CauseInvalidRequest:
		return "Invalid-Request"
	case CauseUnsupportedService:
		return "Unsupported-Service"
	case CauseInvalidAttributeValue:
		return "Invalid-Attribute-Value"
	case CauseAdminProhibited:
		return "Administratively-Prohibited"
	case CauseSessionNotFound:
		return "Session-Context-Not-Found"
	case CauseSessionNotRemovable:
		return "Session-Context-Not-Removable"
	case CauseResourcesUnavailable:
		return "Resources-Unavailable"
	}
	return "unknown"
}
