package pppsession

import (
	"fmt"
	"strings"

	"github.com/l2tpd/l2tpd/auth"
	"github.com/l2tpd/l2tpd/l2tp"
	"github.com/l2tpd/l2tpd/l2tp/endpoint"
)

// EndKind classifies why a PPP session ended; it picks the CDN result and
// the Acct-Terminate-Cause.
type EndKind uint8

// End kinds.
const (
	EndUnknown        EndKind = iota
	EndAuthFailed             // the authenticator refused the subscriber
	EndPoolExhausted          // no address left in the pool
	EndAddressError           // the address could not be assigned otherwise
	EndPeerTerminated         // the subscriber sent LCP Terminate-Request
	EndEchoTimeout            // LCP Echo-Requests unanswered
	EndSessionTimeout         // Session-Timeout reached
	EndIdleTimeout            // Idle-Timeout reached
	EndNegotiation            // LCP/NCP negotiation failed
	EndDataPlane              // the data path refused the session
	EndCallCleared            // the L2TP session or tunnel went away (CDN, StopCCN)
	EndShutdown               // the daemon stopped
	EndPeerAuthFailed         // LAC: the LNS refused our credentials
	EndAdminReset             // an operator or a RADIUS Disconnect-Request ended it
	EndInternalError          // a bug in this daemon (a recovered panic) ended it
)

var endKindNames = [...]string{
	EndUnknown:        "unknown",
	EndAuthFailed:     "auth-failed",
	EndPoolExhausted:  "pool-exhausted",
	EndAddressError:   "address-error",
	EndPeerTerminated: "peer-terminated",
	EndEchoTimeout:    "echo-timeout",
	EndSessionTimeout: "session-timeout",
	EndIdleTimeout:    "idle-timeout",
	EndNegotiation:    "negotiation-failed",
	EndDataPlane:      "dataplane-error",
	EndCallCleared:    "call-cleared",
	EndShutdown:       "shutdown",
	EndPeerAuthFailed: "refused-by-lns",
	EndAdminReset:     "admin-reset",
	EndInternalError:  "internal-error",
}

func (k EndKind) String() string {
	if int(k) < len(endKindNames) {
		return endKindNames[k]
	}
	return fmt.Sprintf("EndKind(%d)", uint8(k))
}

// CDN is the Result Code the driver's CDN carries for an end of this kind
// (RFC 2661 section 4.4.2, CDN result codes):
//
//   - 1 (loss of carrier): the subscriber stopped answering LCP echoes.
//   - 3 (administrative reasons): the LNS ended the call by policy: a
//     refused authentication, a session or idle timeout, the subscriber's
//     own LCP Terminate, an operator's or RADIUS server's Disconnect, the
//     daemon stopping. Result 2 (general error) would need a meaningful
//     Error Code and none of RFC 2661's fits an authentication failure;
//     result 4/5 (lack of facilities) would invite the LAC to try again
//     elsewhere, which does not help a wrong password.
//   - 4 (temporary lack of facilities): no address left in the pool, or the
//     data path could not take the session; another LNS (or later) may.
//   - 2 (general error) with Error Code 6 is not used.
func (k EndKind) CDN(msg string) l2tp.ResultCode {
	rc := l2tp.ResultCode{Result: l2tp.ResultCDNAdmin, Message: msg}
	switch k {
	case EndEchoTimeout:
		rc.Result = l2tp.ResultCDNLostCarrier
	case EndPoolExhausted, EndDataPlane:
		rc.Result = l2tp.ResultCDNTempResources
	}
	return rc
}

// Cause is the RFC 2866 Acct-Terminate-Cause for an end of this kind.
func (k EndKind) Cause() auth.TerminateCause {
	switch k {
	case EndPeerTerminated:
		return auth.CauseUserRequest
	case EndEchoTimeout, EndCallCleared:
		return auth.CauseLostCarrier
	case EndSessionTimeout:
		return auth.CauseSessionTimeout
	case EndIdleTimeout:
		return auth.CauseIdleTimeout
	case EndShutdown:
		// RFC 2866 5.10: Admin-Reboot, "the administrator is ending
		// service on the NAS, for example prior to rebooting" (NAS-Reboot
		// is for a non-administrative end such as a crash).
		return auth.CauseAdminReboot
	case EndAdminReset:
		return auth.CauseAdminReset
	case EndDataPlane, EndPoolExhausted, EndAddressError, EndInternalError:
		return auth.CauseNASError
	case EndAuthFailed, EndPeerAuthFailed:
		return auth.CauseUserError
	}
	return auth.CauseNASError
}

// classifyLinkDown reads a ppp.LinkDown reason that the driver did not
// cause itself. The ppp package reports reasons as text; these prefixes
// are the ones it writes.
func classifyLinkDown(reason string) EndKind {
	switch {
	case strings.HasPrefix(reason, "terminated by peer"):
		return EndPeerTerminated
	case strings.HasPrefix(reason, "peer not responding"):
		return EndEchoTimeout
	case strings.Contains(reason, "authentication rejected by the peer"):
		return EndPeerAuthFailed
	case strings.Contains(reason, "authentication failed"):
		return EndAuthFailed
	}
	return EndNegotiation
}

// classifyClose reads the reason the runner gives Driver.Close.
func classifyClose(reason string) EndKind {
	switch reason {
	case "daemon stopped":
		return EndShutdown
	case endpoint.ReasonInternalError:
		return EndInternalError
	}
	return EndCallCleared
}
