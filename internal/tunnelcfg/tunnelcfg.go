// Package tunnelcfg turns resolved configuration into the settings of one
// tunnel, for both roles (lns, lac).
package tunnelcfg

import (
	"math/rand/v2"
	"time"

	"github.com/l2tpd/l2tpd/config"
	"github.com/l2tpd/l2tpd/l2tp/control"
	"github.com/l2tpd/l2tpd/l2tp/endpoint"
	"github.com/l2tpd/l2tpd/l2tp/tunnel"
)

// Jitter spreads d uniformly over [0.75d, 1.25d] so that timers of many
// tunnels (Hello) or sessions (LCP echo) do not fire together.
func Jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return d
	}
	return d*3/4 + time.Duration(rand.Int64N(int64(d)/2+1))
}

// Settings builds the endpoint settings of a tunnel from its resolved
// [l2tp] section.
func Settings(l *config.L2TP, profile string) endpoint.TunnelSettings {
	challenge := false
	switch l.Challenge {
	case config.ChallengeRequire:
		challenge = true
	case config.ChallengeOptional:
		challenge = len(l.Secret) > 0
	}
	return endpoint.TunnelSettings{
		Tunnel: tunnel.Config{
			HostName:    l.HostName,
			VendorName:  "l2tpd",
			Secret:      l.Secret,
			Challenge:   challenge,
			HideAVPs:    l.HideAVPs,
			MaxSessions: l.MaxSessionsPerTunnel,
			// Only the LNS role defers calls (max_starting).
			CallAdmitWait: l.MaxStartingWait,
			Control: control.Config{
				RecvWindow:        uint16(min(max(l.RecvWindow, 1), int(control.MaxWindow))),
				RetransmitInitial: l.RTimeout,
				RetransmitCap:     l.RTimeoutCap,
				MaxRetransmits:    l.Retransmit,
				HelloInterval:     Jitter(l.HelloInterval),
			},
		},
		Profile:        profile,
		DataSeq:        l.DataSeq >= config.PolicyPrefer,
		ReorderTimeout: l.ReorderTimeout,
	}
}
