package ppp

import (
	"encoding/binary"
	"slices"
	"time"

	"github.com/l2tpd/l2tpd/auth"
)

// lcpLayer is LCP (RFC 1661 section 6).
type lcpLayer struct {
	f    fsm
	link *Link

	// Ours.
	mru      uint16
	reqMRU   bool
	magic    uint32
	reqMagic bool
	authIdx  int // authenticator: index into AuthMethods we propose
	// Peer's, as acknowledged.
	peerMRU   uint16
	peerMagic uint32
	peerPFC   bool
	peerACFC  bool
	peerAuth  auth.Method // peer role: what we agreed to do
	magicNaks int
}

func (c *lcpLayer) init(l *Link) {
	c.link = l
	c.f = fsm{link: l, l: c, proto: ProtoLCP}
	c.mru = uint16(min(l.cfg.MRU, 0xffff))
	c.reqMRU = c.mru != defaultMRU
	c.reqMagic = true
	c.newMagic()
}

func (c *lcpLayer) newMagic() {
	var b [4]byte
	for c.magic == 0 {
		c.link.random(b[:])
		c.magic = binary.BigEndian.Uint32(b[:])
	}
}

func (c *lcpLayer) magicForEcho() uint32 {
	if c.reqMagic {
		return c.magic
	}
	return 0
}

// ourAuth is the method we propose (authenticator role), or 0.
func (c *lcpLayer) ourAuth() auth.Method {
	if c.link.cfg.Role != RoleAuthenticator || c.authIdx >= len(c.link.cfg.AuthMethods) {
		return 0
	}
	return c.link.cfg.AuthMethods[c.authIdx]
}

func appendAuthOption(b []byte, m auth.Method) []byte {
	switch m {
	case auth.MethodPAP:
		return append(b, lcpOptAuth, 4, 0xc0, 0x23)
	case auth.MethodCHAPMD5:
		return append(b, lcpOptAuth, 5, 0xc2, 0x23, chapAlgMD5)
	case auth.MethodMSCHAPv2:
		return append(b, lcpOptAuth, 5, 0xc2, 0x23, chapAlgMSCHAP2)
	}
	return b
}

func parseAuthOption(d []byte) auth.Method {
	switch {
	case len(d) == 2 && Protocol(be16(d)) == ProtoPAP:
		return auth.MethodPAP
	case len(d) == 3 && Protocol(be16(d)) == ProtoCHAP && d[2] == chapAlgMD5:
		return auth.MethodCHAPMD5
	case len(d) == 3 && Protocol(be16(d)) == ProtoCHAP && d[2] == chapAlgMSCHAP2:
		return auth.MethodMSCHAPv2
	}
	return 0
}

func (c *lcpLayer) appendRequest(b []byte) []byte {
	if c.reqMRU {
		b = append(b, lcpOptMRU, 4, byte(c.mru>>8), byte(c.mru))
	}
	if m := c.ourAuth(); m != 0 {
		b = appendAuthOption(b, m)
	}
	if c.reqMagic {
		b = append(b, lcpOptMagic, 6)
		b = binary.BigEndian.AppendUint32(b, c.magic)
	}
	return b
}

// replyBuilder collects Nak and Reject options; Rejects win.
type replyBuilder struct{ nak, rej []byte }

func (r *replyBuilder) reject(o Option) { r.rej = appendOption(r.rej, o.Type, o.Data) }
func (r *replyBuilder) naks(typ uint8, data []byte, rejectOnly bool, o Option) {
	if rejectOnly {
		r.reject(o)
		return
	}
	r.nak = appendOption(r.nak, typ, data)
}
func (r *replyBuilder) result() (Code, []byte) {
	switch {
	case len(r.rej) > 0:
		return CodeConfRej, r.rej
	case len(r.nak) > 0:
		return CodeConfNak, r.nak
	}
	return 0, nil
}

func (c *lcpLayer) checkRequest(opts []Option, _ []byte, rejectOnly bool) (Code, []byte) {
	var r replyBuilder
	mru, magic, pfc, acfc, am := uint16(defaultMRU), uint32(0), false, false, auth.Method(0)
	for _, o := range opts {
		switch o.Type {
		case lcpOptMRU:
			if len(o.Data) != 2 {
				r.reject(o)
				continue
			}
			mru = be16(o.Data)
			if mru < minMRU {
				r.naks(o.Type, []byte{minMRU >> 8, minMRU & 0xff}, rejectOnly, o)
			}
		case lcpOptACCM:
			if len(o.Data) != 4 {
				r.reject(o)
			}
		case lcpOptAuth:
			if c.link.cfg.Role == RoleAuthenticator {
				r.reject(o) // we do not authenticate ourselves to the peer
				continue
			}
			am = parseAuthOption(o.Data)
			allowed := c.link.cfg.AuthMethods
			if len(allowed) == 0 {
				allowed = []auth.Method{auth.MethodMSCHAPv2, auth.MethodCHAPMD5, auth.MethodPAP}
			}
			if am == 0 || !slices.Contains(allowed, am) {
				if rejectOnly {
					r.reject(o)
				} else {
					r.nak = appendAuthOption(r.nak, allowed[0])
				}
			}
		case lcpOptMagic:
			if len(o.Data) != 4 {
				r.reject(o)
				continue
			}
			magic = binary.BigEndian.Uint32(o.Data)
			if magic == 0 || c.reqMagic && magic == c.magic {
				// Possible loop (RFC 1661 6.4): suggest another and pick a
				// new one ourselves.
				c.magicNaks++
				c.magic = 0
				c.newMagic()
				var d [4]byte
				c.link.random(d[:])
				if binary.BigEndian.Uint32(d[:]) == 0 {
					d[0] = 1
				}
				r.naks(o.Type, d[:], rejectOnly, o)
			}
		case lcpOptPFC, lcpOptACFC:
			if len(o.Data) != 0 {
				r.reject(o)
				continue
			}
			if o.Type == lcpOptPFC {
				pfc = true
			} else {
				acfc = true
			}
		default:
			r.reject(o)
		}
	}
	code, reply := r.result()
	if code == 0 {
		c.peerMRU, c.peerMagic, c.peerPFC, c.peerACFC, c.peerAuth = mru, magic, pfc, acfc, am
	}
	return code, reply
}

func (c *lcpLayer) gotAck([]Option, []byte) bool { return true }

func (c *lcpLayer) gotNak(opts []Option) bool {
	for _, o := range opts {
		switch o.Type {
		case lcpOptMRU:
			if len(o.Data) == 2 {
				v := be16(o.Data)
				c.mru = max(minMRU, min(v, uint16(min(c.link.cfg.MRU, 0xffff))))
				c.reqMRU = c.mru != defaultMRU
			}
		case lcpOptAuth:
			if c.ourAuth() == 0 {
				continue
			}
			m := parseAuthOption(o.Data)
			if i := slices.Index(c.link.cfg.AuthMethods, m); m != 0 && i >= 0 {
				c.authIdx = i
			} else {
				c.authIdx++ // try our next preference; none left: LCP opens without and we close
			}
		case lcpOptMagic:
			c.magic = 0
			c.newMagic()
		}
	}
	return true
}

func (c *lcpLayer) gotRej(opts []Option) bool {
	for _, o := range opts {
		switch o.Type {
		case lcpOptMRU:
			c.reqMRU = false
			c.mru = defaultMRU
		case lcpOptAuth:
			c.authIdx = len(c.link.cfg.AuthMethods)
		case lcpOptMagic:
			c.reqMagic = false
		}
	}
	return true
}

func (c *lcpLayer) up(now time.Time) {
	l := c.link
	if l.cfg.EchoInterval > 0 {
		l.echoTimer = l.stamp(echoAt(now, l.cfg.EchoInterval))
	}
	l.echoPending = 0
	if l.cfg.Role == RoleAuthenticator && len(l.cfg.AuthMethods) > 0 && c.ourAuth() == 0 {
		l.fail(now, "peer refused every authentication method we offer")
		return
	}
	l.startAuth(now)
}

func (c *lcpLayer) down(now time.Time) {
	l := c.link
	l.echoTimer = 0
	l.au.stopTimers()
	l.ipcp.f.event(now, EvDown, Packet{}, 0, nil)
	l.ipv6cp.f.event(now, EvDown, Packet{}, 0, nil)
	l.netMask = 0
	if l.phase != PhaseTerminate && l.phase != PhaseDead {
		l.phase = PhaseEstablish
	}
}

func (c *lcpLayer) started(time.Time) {}

func (c *lcpLayer) finished(time.Time) { c.link.emitDown() }
