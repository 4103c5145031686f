package config

import (
	"strings"

	"github.com/l2tpd/l2tpd/auth"
)

// Each enum below is written in the file as one of the words in its names
// table; the zero value is the first word.

// LogLevel is the minimum severity logged.
type LogLevel uint8

const (
	LogDebug LogLevel = iota
	LogInfo
	LogWarn
	LogError
)

var logLevelNames = []string{"debug", "info", "warn", "error"}

func (l LogLevel) String() string { return enumString(logLevelNames, l) }

// LogFormat is how log lines are written.
type LogFormat uint8

const (
	LogConsole LogFormat = iota
	LogJSON
)

var logFormatNames = []string{"console", "json"}

func (f LogFormat) String() string { return enumString(logFormatNames, f) }

// DataPlaneMode selects the data path implementation.
type DataPlaneMode uint8

const (
	// DataPlaneAuto uses the kernel data path when the kernel has L2TP and
	// PPP support, the userspace (TUN) one otherwise.
	DataPlaneAuto DataPlaneMode = iota
	DataPlaneKernel
	DataPlaneUserspace
)

var dataPlaneNames = []string{"auto", "kernel", "userspace"}

func (m DataPlaneMode) String() string { return enumString(dataPlaneNames, m) }

// Policy is accel-ppp's deny|allow|prefer|require, used for data message
// sequencing (dataseq) and for the network protocols (ipv4, ipv6). The
// values are ordered: a larger Policy asks for more.
type Policy uint8

const (
	PolicyDeny    Policy = iota // never, refuse if the peer asks
	PolicyAllow                 // if the peer asks
	PolicyPrefer                // ask for it, accept if the peer refuses
	PolicyRequire               // ask for it, fail without it
)

var policyNames = []string{"deny", "allow", "prefer", "require"}

func (p Policy) String() string { return enumString(policyNames, p) }

// ChallengeMode says whether we demand that an L2TP peer authenticate the
// tunnel (RFC 2661 section 4.4.3, Challenge AVP).
type ChallengeMode uint8

const (
	// ChallengeNone: never send a Challenge (we still answer the peer's).
	ChallengeNone ChallengeMode = iota
	// ChallengeOptional: challenge the peer when a secret is configured.
	ChallengeOptional
	// ChallengeRequire: always challenge; a secret must be configured.
	ChallengeRequire
)

var challengeNames = []string{"none", "optional", "require"}

func (c ChallengeMode) String() string { return enumString(challengeNames, c) }

// AuthenticatorKind says who answers PPP authentication requests.
type AuthenticatorKind uint8

const (
	AuthenticatorLocal  AuthenticatorKind = iota // [[subscriber]] entries
	AuthenticatorRADIUS                          // [radius] servers
)

var authenticatorNames = []string{"local", "radius"}

func (a AuthenticatorKind) String() string { return enumString(authenticatorNames, a) }

// SingleSession is accel-ppp's single-session: what to do when a user name
// that already has a session logs in again.
type SingleSession uint8

const (
	SingleSessionOff     SingleSession = iota // allow any number
	SingleSessionDeny                         // refuse the new session
	SingleSessionReplace                      // terminate the old session
)

var singleSessionNames = []string{"off", "deny", "replace"}

func (s SingleSession) String() string { return enumString(singleSessionNames, s) }

// AuthMethod is a PPP authentication protocol; it is the auth package's
// Method, written "pap", "chap" (CHAP-MD5) or "mschapv2".
type AuthMethod = auth.Method

var authMethods = []AuthMethod{auth.MethodMSCHAPv2, auth.MethodCHAPMD5, auth.MethodPAP}

func authMethodNames() []string {
	n := make([]string, len(authMethods))
	for i, m := range authMethods {
		n[i] = m.String()
	}
	return n
}

func parseAuthMethod(s string) (AuthMethod, bool) {
	for _, m := range authMethods {
		if m.String() == s {
			return m, true
		}
	}
	return 0, false
}

func enumString[T ~uint8](names []string, v T) string {
	if int(v) < len(names) {
		return names[v]
	}
	return "unknown"
}

func parseEnum[T ~uint8](names []string, s string) (T, bool) {
	for i, n := range names {
		if n == s {
			return T(i), true
		}
	}
	return 0, false
}

func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = `"` + n + `"`
	}
	return strings.Join(q, ", ")
}
