package ppp

import (
	"bytes"
	"net/netip"
	"time"
)

// ipcpLayer is IPCP (RFC 1332, RFC 1877 for DNS/NBNS).
type ipcpLayer struct {
	f     fsm
	link  *Link
	early []byte

	local   netip.Addr // ours (authenticator: given; peer: learnt by Nak)
	reqAddr bool
	peer    netip.Addr // the peer's
	// Authenticator: what we offer. Peer: reqDNS/gotDNS.
	dns, nbns [2]netip.Addr
	reqDNS    [2]bool
	gotDNS    [2]netip.Addr
}

func (c *ipcpLayer) init(l *Link) {
	c.link = l
	c.f = fsm{link: l, l: c, proto: ProtoIPCP}
	if l.cfg.Role == RolePeer {
		c.local = netip.IPv4Unspecified()
		c.reqAddr = true
		c.reqDNS = [2]bool{l.cfg.RequestDNS, l.cfg.RequestDNS}
	}
}

func appendAddrOption(b []byte, typ uint8, a netip.Addr) []byte {
	if !a.Is4() {
		a = netip.IPv4Unspecified()
	}
	v := a.As4()
	return append(b, typ, 6, v[0], v[1], v[2], v[3])
}

func (c *ipcpLayer) appendRequest(b []byte) []byte {
	if c.reqAddr {
		b = appendAddrOption(b, ipcpOptAddr, c.local)
	}
	if c.reqDNS[0] {
		b = appendAddrOption(b, ipcpOptDNS1, c.gotDNS[0])
	}
	if c.reqDNS[1] {
		b = appendAddrOption(b, ipcpOptDNS2, c.gotDNS[1])
	}
	return b
}

func addrOf(d []byte) netip.Addr { return netip.AddrFrom4([4]byte(d)) }

func (c *ipcpLayer) checkRequest(opts []Option, _ []byte, rejectOnly bool) (Code, []byte) {
	var r replyBuilder
	auth := c.link.cfg.Role == RoleAuthenticator
	peer := c.peer
	for _, o := range opts {
		if (o.Type == ipcpOptAddr || o.Type >= ipcpOptDNS1 && o.Type <= ipcpOptNBNS2) && len(o.Data) != 4 {
			r.reject(o)
			continue
		}
		switch o.Type {
		case ipcpOptAddr:
			v := addrOf(o.Data)
			switch {
			case !auth:
				if v.IsUnspecified() {
					r.reject(o) // we have no address to give the LNS
				} else {
					peer = v
				}
			case c.peer.Is4() && !c.peer.IsUnspecified():
				if v != c.peer {
					a := c.peer.As4()
					r.naks(o.Type, a[:], rejectOnly, o)
				}
			case c.link.cfg.AcceptPeerAddress && !v.IsUnspecified():
				peer = v
			default:
				r.reject(o)
			}
		case ipcpOptDNS1, ipcpOptDNS2, ipcpOptNBNS1, ipcpOptNBNS2:
			var want netip.Addr
			if auth {
				switch o.Type {
				case ipcpOptDNS1:
					want = c.dns[0]
				case ipcpOptDNS2:
					want = c.dns[1]
				case ipcpOptNBNS1:
					want = c.nbns[0]
				case ipcpOptNBNS2:
					want = c.nbns[1]
				}
			}
			if !want.Is4() {
				r.reject(o)
			} else if addrOf(o.Data) != want {
				a := want.As4()
				r.naks(o.Type, a[:], rejectOnly, o)
			}
		default: // IP-Compression-Protocol, IP-Addresses and the rest
			r.reject(o)
		}
	}
	code, reply := r.result()
	if code == 0 {
		c.peer = peer
	}
	return code, reply
}

func (c *ipcpLayer) gotAck([]Option, []byte) bool { return true }

func (c *ipcpLayer) gotNak(opts []Option) bool {
	for _, o := range opts {
		if len(o.Data) != 4 {
			continue
		}
		v := addrOf(o.Data)
		switch o.Type {
		case ipcpOptAddr:
			if c.link.cfg.Role == RolePeer {
				c.local = v
			}
		case ipcpOptDNS1:
			c.gotDNS[0] = v
		case ipcpOptDNS2:
			c.gotDNS[1] = v
		}
	}
	return true
}

func (c *ipcpLayer) gotRej(opts []Option) bool {
	for _, o := range opts {
		switch o.Type {
		case ipcpOptAddr:
			c.reqAddr = false
		case ipcpOptDNS1:
			c.reqDNS[0] = false
		case ipcpOptDNS2:
			c.reqDNS[1] = false
		}
	}
	return true
}

func (c *ipcpLayer) up(now time.Time)       { c.link.ncpChanged(now) }
func (c *ipcpLayer) down(now time.Time)     { c.link.ncpChanged(now) }
func (c *ipcpLayer) started(time.Time)      {}
func (c *ipcpLayer) finished(now time.Time) { c.link.ncpChanged(now) }

// ipv6cpLayer is IPv6CP (RFC 5072).
type ipv6cpLayer struct {
	f     fsm
	link  *Link
	early []byte

	local, peer [8]byte
	reqIfID     bool
}

func (c *ipv6cpLayer) init(l *Link) {
	c.link = l
	c.f = fsm{link: l, l: c, proto: ProtoIPv6CP}
	c.reqIfID = true
	c.local = c.newIfID([8]byte{})
}

// newIfID returns a random non-zero identifier different from avoid.
func (c *ipv6cpLayer) newIfID(avoid [8]byte) [8]byte {
	var id [8]byte
	for i := 0; i < 8; i++ {
		c.link.random(id[:])
		if id != ([8]byte{}) && id != avoid {
			return id
		}
	}
	id = avoid
	id[7] ^= 0x5a
	if id == ([8]byte{}) {
		id[0] = 1
	}
	return id
}

func (c *ipv6cpLayer) appendRequest(b []byte) []byte {
	if c.reqIfID {
		b = append(b, ipv6cpOptIfID, 10)
		b = append(b, c.local[:]...)
	}
	return b
}

func (c *ipv6cpLayer) checkRequest(opts []Option, _ []byte, rejectOnly bool) (Code, []byte) {
	var r replyBuilder
	peer := c.peer
	for _, o := range opts {
		if o.Type != ipv6cpOptIfID || len(o.Data) != 8 {
			r.reject(o)
			continue
		}
		v := [8]byte(o.Data)
		if v == ([8]byte{}) || v == c.local {
			// RFC 5072 4.1: suggest a different, non-zero identifier.
			s := c.newIfID(c.local)
			r.naks(o.Type, s[:], rejectOnly, o)
			continue
		}
		peer = v
	}
	code, reply := r.result()
	if code == 0 {
		c.peer = peer
	}
	return code, reply
}

func (c *ipv6cpLayer) gotAck([]Option, []byte) bool { return true }

func (c *ipv6cpLayer) gotNak(opts []Option) bool {
	for _, o := range opts {
		if o.Type == ipv6cpOptIfID && len(o.Data) == 8 {
			v := [8]byte(o.Data)
			if v != ([8]byte{}) && !bytes.Equal(v[:], c.peer[:]) {
				c.local = v
			} else {
				c.local = c.newIfID(c.peer)
			}
		}
	}
	return true
}

func (c *ipv6cpLayer) gotRej(opts []Option) bool {
	for _, o := range opts {
		if o.Type == ipv6cpOptIfID {
			c.reqIfID = false
		}
	}
	return true
}

func (c *ipv6cpLayer) up(now time.Time)       { c.link.ncpChanged(now) }
func (c *ipv6cpLayer) down(now time.Time)     { c.link.ncpChanged(now) }
func (c *ipv6cpLayer) started(time.Time)      {}
func (c *ipv6cpLayer) finished(now time.Time) { c.link.ncpChanged(now) }
