package kernel

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/mdlayher/netlink"
)

// encodeSession is the inverse of DecodeSession for the fields it keeps
// (what l2tp_nl_session_send would emit).
func encodeSession(s SessionInfo) ([]byte, error) {
	ae := netlink.NewAttributeEncoder()
	ae.Uint32(attrConnID, s.TunnelID)
	ae.Uint32(attrSessionID, s.ID)
	ae.Uint32(attrPeerConnID, s.PeerTunnelID)
	ae.Uint32(attrPeerSessionID, s.PeerID)
	ae.Uint16(attrPWType, s.PWType)
	if s.IfName != "" {
		ae.String(attrIfName, s.IfName)
	}
	if len(s.Cookie) > 0 {
		ae.Bytes(attrCookie, s.Cookie)
	}
	if len(s.PeerCookie) > 0 {
		ae.Bytes(attrPeerCookie, s.PeerCookie)
	}
	ae.Uint8(attrRecvSeq, b2u8(s.RecvSeq))
	ae.Uint8(attrSendSeq, b2u8(s.SendSeq))
	ae.Uint8(attrLNSMode, b2u8(s.LNSMode))
	ae.Uint8(attrUsingIPsec, b2u8(s.UsingIPsec))
	ae.Uint64(attrRecvTimeout, uint64(s.ReorderTimeout/time.Millisecond))
	ae.Nested(attrStats, func(n *netlink.AttributeEncoder) error {
		st := s.Stats
		for i, v := range [...]uint64{st.TxPackets, st.TxBytes, st.TxErrors, st.RxPackets, st.RxBytes,
			st.RxSeqDiscards, st.RxOOSPackets, st.RxErrors} {
			n.Uint64(uint16(statsTxPackets+i), v)
		}
		n.Uint64(statsRxCookieDiscard, st.RxCookieDiscards)
		n.Uint64(statsRxInvalid, st.RxInvalid)
		return nil
	})
	return ae.Encode()
}

func TestEncodeSessionRoundTrip(t *testing.T) {
	b, err := encodeSession(goldenSessionInfo)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeSession(b)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(goldenSessionInfo, got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}

// FuzzDecodeSession: decode -> encode -> decode gives the same value, and
// decoding never panics on any input.
func FuzzDecodeSession(f *testing.F) {
	f.Add(goldenSession)
	f.Add(goldenTunnel)
	f.Add([]byte{0x04, 0x00, 0x1e, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		s1, err := DecodeSession(b)
		if err != nil {
			return
		}
		enc, err := encodeSession(s1)
		if err != nil {
			t.Fatalf("encode %+v: %v", s1, err)
		}
		s2, err := DecodeSession(enc)
		if err != nil {
			t.Fatalf("decode of re-encoded %+v: %v", s1, err)
		}
		if diff := cmp.Diff(s1, s2); diff != "" {
			t.Fatalf("round trip (-first +second):\n%s", diff)
		}
	})
}

// FuzzDecodeTunnel: never panics; errors are errors.
func FuzzDecodeTunnel(f *testing.F) {
	f.Add(goldenTunnel)
	f.Add(goldenSession)
	f.Fuzz(func(t *testing.T, b []byte) {
		tun, err := DecodeTunnel(b)
		if err == nil && tun.Local.IsValid() && !tun.Local.Addr().IsValid() {
			t.Fatalf("valid AddrPort with invalid address: %+v", tun)
		}
	})
}

// FuzzParseLinkGroup: never panics; an error or an index and group.
func FuzzParseLinkGroup(f *testing.F) {
	f.Add(append(ifinfomsg(9, 0, 0), 8, 0, 27, 0, 1, 0, 0x32, 0x4c))
	f.Add(ifinfomsg(3, 0, 0))
	f.Add([]byte{0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		i, g, err := parseLinkGroup(b)
		if err != nil && (i != 0 || g != 0) {
			t.Fatalf("error %v with index %d group %d", err, i, g)
		}
	})
}
