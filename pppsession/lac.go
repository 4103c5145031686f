package pppsession

import (
	"net/netip"
	"time"

	"go.uber.org/zap"

	"github.com/l2tpd/l2tpd/auth"
	"github.com/l2tpd/l2tpd/config"
	"github.com/l2tpd/l2tpd/dataplane"
	"github.com/l2tpd/l2tpd/ppp"
)

// LACParams describes one session we dialled as LAC.
type LACParams struct {
	Profile  *config.PPP // MRU, echo, timers, NCP policies (required)
	MaxMTU   int         // the tunnel's ppp_max_mtu (0: no cap)
	Username string
	Password string
	// Auth are the methods we agree to authenticate with (empty: all).
	Auth []auth.Method
	Info auth.SessionInfo
	Log  *zap.Logger
}

// LAC is the LAC-side driver of one session: PPP as the authenticated
// peer. It implements endpoint.Driver.
type LAC struct {
	call     Call
	dp       dataplane.Session
	link     *ppp.Link
	log      *zap.Logger
	prof     *config.PPP
	maxMTU   int
	acts     []ppp.Action
	username string

	openAt time.Time // start LCP then if the LNS has not spoken first
	up     bool
	local  netip.Addr
	hungUp bool
	end    EndKind
}

// NewLAC starts PPP as the peer on a session we placed.
func (e *Env) NewLAC(now time.Time, call Call, dp dataplane.Session, p LACParams) *LAC {
	log := p.Log
	if log == nil {
		log = e.cfg.Log
	}
	log = log.WithLazy(zap.Uint32("session", p.Info.SessionID))
	c := linkConfig(ppp.RolePeer, p.Profile, p.MaxMTU, e.cfg.Rand, p.Info)
	c.AuthMethods = p.Auth
	c.Username, c.Password = p.Username, p.Password
	c.RequestDNS = true
	d := &LAC{call: call, dp: dp, log: log, prof: p.Profile, maxMTU: p.MaxMTU, username: p.Username}
	d.link = ppp.NewLink(c, now)
	d.openAt = now.Add(LACOpenDelay)
	return d
}

// LACOpenDelay is how long the LAC waits for the LNS's first LCP frame
// before it starts LCP itself. Our ICCN and a first Configure-Request sent
// at once race: when the data message arrives before the LNS has processed
// the ICCN it is dropped, and LCP only recovers after the 3 s Restart
// timer. The LNS (ours, and most) sends its Configure-Request as soon as
// the session is up, and its arrival starts our LCP at once.
const LACOpenDelay = time.Second

// Frame implements endpoint.Driver.
func (d *LAC) Frame(now time.Time, frame []byte) {
	d.openAt = time.Time{} // Input opens the link
	d.link.Input(now, frame)
	d.process(now)
}

// Tick implements endpoint.Driver.
func (d *LAC) Tick(now time.Time) {
	if due(d.openAt, now) {
		d.openAt = time.Time{}
		d.link.Open(now)
	}
	d.link.Tick(now)
	d.process(now)
}

// Deadline implements endpoint.Driver.
func (d *LAC) Deadline() time.Time {
	if !d.openAt.IsZero() {
		return d.openAt
	}
	return d.link.Deadline()
}

// Close implements endpoint.Driver.
func (d *LAC) Close(now time.Time, reason string) {
	d.hungUp = true
	if d.end == EndUnknown {
		d.end = classifyClose(reason)
		if d.up {
			d.log.Info("subscriber down", zap.String("user", d.username), zap.Stringer("address", d.local), zap.String("reason", reason))
		}
	}
}

// Address is the address the LNS gave us (invalid until the network is up).
func (d *LAC) Address() netip.Addr { return d.local }

// Ended reports why the session ended (EndUnknown while it runs).
func (d *LAC) Ended() EndKind { return d.end }

func (d *LAC) process(now time.Time) {
	for {
		d.acts = d.link.Actions(d.acts[:0])
		if len(d.acts) == 0 {
			return
		}
		for _, a := range d.acts {
			switch a := a.(type) {
			case ppp.SendFrame:
				if d.hungUp {
					continue
				}
				if err := d.dp.SendFrame(a.Frame); err != nil {
					d.log.Debug("sending PPP frame", zap.Error(err))
				}
			case ppp.NetworkUp:
				d.networkUp(now, a)
			case ppp.LinkDown:
				d.linkDown(now, a.Reason)
			}
		}
		clear(d.acts)
	}
}

func (d *LAC) networkUp(now time.Time, up ppp.NetworkUp) {
	if d.hungUp {
		return
	}
	nc := dataplane.NetConfig{
		MTU:       min(up.MTU, capMTU(d.prof.MTU, d.maxMTU)),
		MRU:       up.MRU,
		LocalIfID: up.LocalIfID,
		PeerIfID:  up.PeerIfID,
	}
	if nc.MTU <= 0 {
		nc.MTU = up.MTU
	}
	if up.IPv4 {
		nc.Local, nc.Peer = up.Local, up.Peer
	}
	if err := d.dp.Up(nc); err != nil {
		d.log.Error("data path refused our network: hanging up", zap.Error(err))
		d.end = EndDataPlane
		d.link.Close(now, "data path error")
		return
	}
	first := !d.up
	d.up, d.local = true, nc.Local
	if first {
		d.log.Info("subscriber up", zap.String("user", d.username), zap.Stringer("address", nc.Local),
			zap.Stringer("lns_address", nc.Peer), zap.Stringer("dns1", up.DNS[0]), zap.Stringer("dns2", up.DNS[1]),
			zap.Bool("ipv6", up.IPv6), zap.Int("mtu", nc.MTU))
	}
}

func (d *LAC) linkDown(now time.Time, reason string) {
	k := d.end
	if k == EndUnknown {
		k = classifyLinkDown(reason)
		d.end = k
	}
	switch {
	case k == EndPeerAuthFailed:
		d.log.Warn("the LNS refused our PPP authentication", zap.String("user", d.username), zap.String("reason", reason))
	case d.up:
		d.log.Info("subscriber down", zap.String("user", d.username), zap.Stringer("address", d.local), zap.Stringer("why", k), zap.String("reason", reason))
	default:
		d.log.Warn("PPP ended before the network came up", zap.String("user", d.username), zap.Stringer("why", k), zap.String("reason", reason))
	}
	if !d.hungUp {
		d.hungUp = true
		d.call.Hangup(now, k.CDN(truncateMsg(reason)), "PPP: "+reason)
	}
}
