package radius

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"layeh.com/radius"

	"github.com/l2tpd/l2tpd/auth"
)

// NAS identifies us in every request.
type NAS struct {
	Identifier string
	IPv4       netip.Addr // zero: NAS-IP-Address not sent
	IPv6       netip.Addr // zero: NAS-IPv6-Address not sent
}

// attrs is an encoded RADIUS attribute list, built by appending.
type attrs []byte

// add appends attribute t with value v, cut to the 253 bytes an
// attribute can hold.
func (a attrs) add(t radius.Type, v []byte) attrs {
	if len(v) > 253 {
		v = v[:253]
	}
	a = append(a, byte(t), byte(2+len(v)))
	return append(a, v...)
}

// str appends a text attribute; an empty s is not sent.
func (a attrs) str(t radius.Type, s string) attrs {
	if s == "" {
		return a
	}
	if len(s) > 253 {
		s = s[:253]
	}
	a = append(a, byte(t), byte(2+len(s)))
	return append(a, s...)
}

func (a attrs) u32(t radius.Type, v uint32) attrs {
	return binary.BigEndian.AppendUint32(append(a, byte(t), 6), v)
}

// vsa appends a Vendor-Specific attribute holding one sub-attribute.
func (a attrs) vsa(vendor uint32, vt byte, v []byte) attrs {
	if len(v) > 247 {
		v = v[:247]
	}
	a = append(a, byte(attrVendorSpecific), byte(8+len(v)))
	a = binary.BigEndian.AppendUint32(a, vendor)
	a = append(a, vt, byte(2+len(v)))
	return append(a, v...)
}

// addVSA adds a Vendor-Specific attribute to a layeh packet (DAE, tests).
func addVSA(p *radius.Packet, vendor uint32, vt byte, v []byte) {
	b := make([]byte, 6+len(v))
	binary.BigEndian.PutUint32(b, vendor)
	b[4] = vt
	b[5] = byte(2 + len(v))
	copy(b[6:], v)
	p.Add(attrVendorSpecific, b)
}

func addInt(p *radius.Packet, t radius.Type, v uint32) {
	p.Add(t, radius.NewInteger(v))
}

// nas appends NAS-Identifier and the NAS addresses.
func (a attrs) nas(nas *NAS) attrs {
	a = a.str(attrNASIdentifier, nas.Identifier)
	if nas.IPv4.Is4() {
		b := nas.IPv4.As4()
		a = a.add(attrNASIPAddress, b[:])
	}
	if nas.IPv6.Is6() && !nas.IPv6.Is4In6() {
		b := nas.IPv6.As16()
		a = a.add(attrNASIPv6Address, b[:])
	}
	return a
}

// addrText appends ip as text, unmapped, as attribute t.
func (a attrs) addrText(t radius.Type, ip netip.Addr) attrs {
	start := len(a)
	a = append(a, byte(t), 0)
	a = ip.Unmap().AppendTo(a)
	a[start+1] = byte(len(a) - start)
	return a
}

// session appends the attributes describing the L2TP session: NAS port,
// station ids, connect info and the RFC 2868 tunnel attributes.
func (a attrs) session(s *auth.SessionInfo) attrs {
	a = a.u32(attrNASPort, s.NASPort)
	start := len(a)
	a = append(a, byte(attrNASPortID), 0)
	a = strconv.AppendUint(a, uint64(s.TunnelID), 10)
	a = append(a, '/')
	a = strconv.AppendUint(a, uint64(s.SessionID), 10)
	a[start+1] = byte(len(a) - start)
	a = a.u32(attrNASPortType, nasPortTypeVirtual)
	a = a.u32(attrServiceType, serviceTypeFramed)
	a = a.u32(attrFramedProtocol, framedProtocolPPP)
	lacOK := s.LACAddr.IsValid()
	switch {
	case s.CallingNumber != "":
		a = a.str(attrCallingStationID, s.CallingNumber)
	case lacOK:
		a = a.addrText(attrCallingStationID, s.LACAddr.Addr())
	}
	switch {
	case s.CalledNumber != "":
		a = a.str(attrCalledStationID, s.CalledNumber)
	case s.LocalAddr.IsValid():
		a = a.addrText(attrCalledStationID, s.LocalAddr.Addr())
	}
	if s.TxConnectSpeed != 0 {
		start := len(a)
		a = append(a, byte(attrConnectInfo), 0)
		a = strconv.AppendUint(a, uint64(s.TxConnectSpeed), 10)
		if s.RxConnectSpeed != 0 && s.RxConnectSpeed != s.TxConnectSpeed {
			a = append(a, '/')
			a = strconv.AppendUint(a, uint64(s.RxConnectSpeed), 10)
		}
		a[start+1] = byte(len(a) - start)
	}
	// RFC 2868: Tunnel-Type and Tunnel-Medium-Type carry a tag octet (0:
	// untagged) before their 3-octet value.
	a = append(a, byte(attrTunnelType), 6, 0, 0, 0, tunnelTypeL2TP)
	medium := byte(tunnelMediumIPv4)
	if lacOK && !s.LACAddr.Addr().Unmap().Is4() {
		medium = tunnelMediumIPv6
	}
	a = append(a, byte(attrTunnelMediumType), 6, 0, 0, 0, medium)
	if lacOK {
		a = a.addrText(attrTunnelClientEndpoint, s.LACAddr.Addr())
	}
	if s.LocalAddr.IsValid() {
		a = a.addrText(attrTunnelServerEndpoint, s.LocalAddr.Addr())
	}
	return a.str(attrTunnelClientAuthID, s.LACHostName)
}

// appendAccessRequest appends the attributes of the Access-Request for
// req (without Message-Authenticator) to a. reqAuth is the random
// Request Authenticator (User-Password depends on it).
func appendAccessRequest(a attrs, secret []byte, reqAuth []byte, nas *NAS, req *auth.Request) (attrs, error) {
	a = a.str(attrUserName, req.Username)
	switch req.Method {
	case auth.MethodPAP:
		pw, err := radius.NewUserPassword(req.Password, secret, reqAuth)
		if err != nil {
			return nil, fmt.Errorf("User-Password: %w", err)
		}
		a = a.add(attrUserPassword, pw)
	case auth.MethodCHAPMD5:
		if len(req.Response) != 16 || len(req.Challenge) == 0 {
			return nil, fmt.Errorf("CHAP-MD5 response of %d bytes, challenge of %d", len(req.Response), len(req.Challenge))
		}
		a = append(a, byte(attrCHAPPassword), 2+17, req.ID)
		a = append(a, req.Response...)
		a = a.add(attrCHAPChallenge, req.Challenge)
	case auth.MethodMSCHAPv2:
		if len(req.Response) != 49 || len(req.Challenge) != 16 {
			return nil, fmt.Errorf("MS-CHAPv2 response of %d bytes (want 49), challenge of %d (want 16)", len(req.Response), len(req.Challenge))
		}
		a = a.vsa(vendorMicrosoft, msCHAPChallenge, req.Challenge)
		// RFC 2548 2.3.2: Ident, Flags, Peer-Challenge, Reserved, Response.
		a = append(a, byte(attrVendorSpecific), 2+4+2+50)
		a = binary.BigEndian.AppendUint32(a, vendorMicrosoft)
		a = append(a, msCHAP2Response, 2+50, req.ID, req.Response[48])
		a = append(a, req.Response[:48]...)
	default:
		return nil, fmt.Errorf("authentication method %v is not supported over RADIUS", req.Method)
	}
	a = a.nas(nas)
	a = a.session(&req.Session)
	return a.str(attrAcctSessionID, req.Session.AcctSessionID), nil
}

// ErrMalformed marks a reply with a malformed attribute (RFC 2865 5:
// treated as a reject).
var ErrMalformed = errors.New("malformed attribute")

func malformed(name string, v []byte) error {
	return fmt.Errorf("%w: %s of %d bytes", ErrMalformed, name, len(v))
}

func ipv4(name string, v []byte) (netip.Addr, error) {
	if len(v) != 4 {
		return netip.Addr{}, malformed(name, v)
	}
	return netip.AddrFrom4([4]byte(v)), nil
}

func integer(name string, v []byte) (uint32, error) {
	if len(v) != 4 {
		return 0, malformed(name, v)
	}
	return binary.BigEndian.Uint32(v), nil
}

func ipv6Prefix(name string, v []byte) (netip.Prefix, error) {
	// RFC 3162 2.3: Reserved, Prefix-Length, Prefix (0..16 octets).
	if len(v) < 2 || len(v) > 18 || v[1] > 128 || int(v[1]+7)/8 > len(v)-2 {
		return netip.Prefix{}, malformed(name, v)
	}
	var a [16]byte
	copy(a[:], v[2:])
	pfx, err := netip.AddrFrom16(a).Prefix(int(v[1]))
	if err != nil {
		return netip.Prefix{}, malformed(name, v)
	}
	return pfx, nil
}

func seconds(name string, v []byte) (time.Duration, error) {
	n, err := integer(name, v)
	return time.Duration(n) * time.Second, err
}

// parseFramedRoute reads the destination of an RFC 2865 5.22 Framed-Route
// ("10.1.0.0/16 0.0.0.0 1", "10.1.0.0 255.255.0.0", "10.1.2.3").
func parseFramedRoute(s string) (netip.Prefix, error) {
	f := strings.Fields(s)
	if len(f) == 0 {
		return netip.Prefix{}, fmt.Errorf("%w: empty Framed-Route", ErrMalformed)
	}
	if p, err := netip.ParsePrefix(f[0]); err == nil && p.Addr().Is4() {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(f[0])
	if err != nil || !a.Is4() {
		return netip.Prefix{}, fmt.Errorf("%w: Framed-Route %q", ErrMalformed, s)
	}
	bits := 32
	if len(f) > 1 {
		if m, err := netip.ParseAddr(f[1]); err == nil && m.Is4() {
			mb := binary.BigEndian.Uint32(m.AsSlice())
			ones := 0
			for ; ones < 32 && mb&(1<<(31-ones)) != 0; ones++ {
			}
			if mb<<ones != 0 && ones < 32 {
				return netip.Prefix{}, fmt.Errorf("%w: Framed-Route %q has a non-contiguous mask", ErrMalformed, s)
			}
			bits = ones
		}
	}
	return netip.PrefixFrom(a, bits).Masked(), nil
}

// resultBuf is an auth.Result with room for one Class, allocated as one.
type resultBuf struct {
	r   auth.Result
	cls [1][]byte
}

// parseReply turns the encoded attributes b of an Access-Accept or
// Access-Reject (code) into an auth.Result, copying what it keeps.
// Unknown attributes are ignored; a malformed known attribute, or
// attribute framing that does not fit b, is an error wrapping ErrMalformed
// (the caller treats the reply as a reject).
func parseReply(code radius.Code, b []byte) (*auth.Result, error) {
	rb := &resultBuf{}
	r := &rb.r
	r.Accept = code == radius.CodeAccessAccept
	var err error
	for len(b) > 0 {
		if len(b) < 2 || b[1] < 2 || int(b[1]) > len(b) {
			return nil, fmt.Errorf("%w: attribute framing (%d bytes left)", ErrMalformed, len(b))
		}
		t, v := radius.Type(b[0]), b[2:b[1]]
		b = b[b[1]:]
		switch t {
		case attrFramedIPAddress:
			r.FramedIP, err = ipv4("Framed-IP-Address", v)
		case attrFramedIPNetmask:
			r.FramedNetmask, err = ipv4("Framed-IP-Netmask", v)
		case attrFramedPool:
			r.Pool = string(v)
		case attrFramedRoute:
			var pfx netip.Prefix
			if pfx, err = parseFramedRoute(string(v)); err == nil {
				r.FramedRoutes = append(r.FramedRoutes, pfx)
			}
		case attrFramedIPv6Prefix:
			r.FramedIPv6, err = ipv6Prefix("Framed-IPv6-Prefix", v)
		case attrDelegatedIPv6Prefix:
			r.DelegatedIPv6, err = ipv6Prefix("Delegated-IPv6-Prefix", v)
		case attrFramedInterfaceID:
			if len(v) != 8 {
				err = malformed("Framed-Interface-Id", v)
			} else {
				r.InterfaceID, r.HasInterfaceID = [8]byte(v), true
			}
		case attrFramedMTU:
			var n uint32
			if n, err = integer("Framed-MTU", v); err == nil {
				if n < 64 || n > 65535 {
					err = fmt.Errorf("%w: Framed-MTU %d", ErrMalformed, n)
				}
				r.MTU = int(n)
			}
		case attrSessionTimeout:
			r.SessionTimeout, err = seconds("Session-Timeout", v)
		case attrIdleTimeout:
			r.IdleTimeout, err = seconds("Idle-Timeout", v)
		case attrAcctInterimInterval:
			r.InterimInterval, err = seconds("Acct-Interim-Interval", v)
		case attrClass:
			if r.Class == nil {
				r.Class = rb.cls[:0]
			}
			r.Class = append(r.Class, append([]byte(nil), v...))
		case attrReplyMessage:
			if r.Message != "" {
				r.Message += "\n"
			}
			r.Message += string(v)
		case attrVendorSpecific:
			err = parseVSA(r, v)
		}
		if err != nil {
			return nil, err
		}
	}
	return r, nil
}

func parseVSA(r *auth.Result, v []byte) error {
	if len(v) < 4 {
		return malformed("Vendor-Specific", v)
	}
	if binary.BigEndian.Uint32(v) != vendorMicrosoft {
		return nil // other vendors: ignored
	}
	// RFC 2548: one or more sub-attributes Vendor-Type, Vendor-Length, value.
	for b := v[4:]; len(b) > 0; {
		if len(b) < 2 || int(b[1]) < 2 || int(b[1]) > len(b) {
			return malformed("Microsoft Vendor-Specific", v)
		}
		t, val := b[0], b[2:b[1]]
		b = b[b[1]:]
		var err error
		switch t {
		case msCHAP2Success:
			// Ident, then "S=<40 hex>" (RFC 2548 2.3.3).
			if len(val) != 43 || string(val[1:3]) != "S=" {
				return malformed("MS-CHAP2-Success", val)
			}
			r.MSCHAPv2AuthResponse = string(val[1:])
		case msCHAPError:
			if len(val) < 2 {
				return malformed("MS-CHAP-Error", val)
			}
			r.MSCHAPError = string(val[1:])
		case msPrimaryDNSServer:
			r.DNS[0], err = ipv4("MS-Primary-DNS-Server", val)
		case msSecondaryDNSServer:
			r.DNS[1], err = ipv4("MS-Secondary-DNS-Server", val)
		case msPrimaryNBNSServer:
			r.NBNS[0], err = ipv4("MS-Primary-NBNS-Server", val)
		case msSecondaryNBNSServer:
			r.NBNS[1], err = ipv4("MS-Secondary-NBNS-Server", val)
		}
		if err != nil {
			return err
		}
	}
	return nil
}
