package pppsession

import (
	"time"

	"go.uber.org/zap"

	"github.com/l2tpd/l2tpd/auth"
	"github.com/l2tpd/l2tpd/config"
	"github.com/l2tpd/l2tpd/l2tp"
	"github.com/l2tpd/l2tpd/l2tp/endpoint"
	"github.com/l2tpd/l2tpd/lac"
	"github.com/l2tpd/l2tpd/lns"
)

// EndpointCall adapts an endpoint session to Call.
type EndpointCall struct{ S *endpoint.Session }

// Hangup implements Call.
func (c EndpointCall) Hangup(now time.Time, rc l2tp.ResultCode, reason string) {
	c.S.HangupFromDriver(now, rc, reason)
}

// Post implements Call.
func (c EndpointCall) Post(f func(now time.Time)) bool { return c.S.Post(f) }

// Established implements Call.
func (c EndpointCall) Established() { c.S.Established() }

// SessionInfo describes an endpoint session for the authenticator and
// accounting (AcctSessionID is left to the driver).
func SessionInfo(s *endpoint.Session) auth.SessionInfo {
	t := s.T
	info := auth.SessionInfo{
		TunnelID:       t.ID(),
		SessionID:      s.ID,
		PeerSessionID:  s.PeerID,
		LACAddr:        t.Peer(),
		LocalAddr:      t.Local(),
		CallingNumber:  s.Info.CallingNumber,
		CalledNumber:   s.Info.CalledNumber,
		TxConnectSpeed: s.Info.TxConnectSpeed,
		RxConnectSpeed: s.Info.RxConnectSpeed,
		NASPort:        t.ID()<<16 | s.ID&0xffff,
	}
	if c := t.Core(); c != nil {
		info.PeerTunnelID = c.PeerID()
		info.LACHostName = c.PeerHostName()
	}
	return info
}

// hangupNow ends a session that cannot run PPP.
func hangupNow(s *endpoint.Session, now time.Time, msg string) endpoint.Driver {
	s.Logger().Error("cannot run PPP on this session: hanging up", zap.String("reason", msg))
	s.HangupFromDriver(now, l2tp.ResultCode{Result: l2tp.ResultCDNTempResources, Message: msg}, msg)
	return nil
}

// LNSFactory returns the lns role's driver factory: PPP as the
// authenticator for every session, with the peer's PPP profile and pool.
func (e *Env) LNSFactory() lns.DriverFactory {
	return func(s *endpoint.Session, peer *config.Peer) endpoint.Driver {
		now := e.cfg.Now()
		if s.DP == nil {
			return hangupNow(s, now, "no data plane session")
		}
		cfg := e.cfg.Config()
		prof := cfg.PPPProfile(peer.PPPProfile)
		if prof == nil {
			return hangupNow(s, now, "unknown PPP profile "+peer.PPPProfile)
		}
		return e.NewLNS(now, EndpointCall{s}, s.DP, LNSParams{
			Profile: prof,
			MaxMTU:  peer.PPPMaxMTU,
			Pool:    peer.IPPool,
			Info:    SessionInfo(s),
			Log:     s.T.Logger(),
		})
	}
}

// LACFactory returns the lac role's driver factory: PPP as the peer with
// the [[lac]]'s user name, password and methods.
func (e *Env) LACFactory() lac.DriverFactory {
	return func(s *endpoint.Session, l *config.LAC) endpoint.Driver {
		now := e.cfg.Now()
		if s.DP == nil {
			return hangupNow(s, now, "no data plane session")
		}
		prof := e.cfg.Config().PPPProfile(l.PPPProfile)
		if prof == nil {
			return hangupNow(s, now, "unknown PPP profile "+l.PPPProfile)
		}
		return e.NewLAC(now, EndpointCall{s}, s.DP, LACParams{
			Profile:  prof,
			MaxMTU:   l.PPPMaxMTU,
			Username: l.Username,
			Password: string(l.Password),
			Auth:     l.Auth,
			Info:     SessionInfo(s),
			Log:      s.T.Logger(),
		})
	}
}
