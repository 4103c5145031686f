package bench

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/l2tpd/l2tpd/l2tp"
)

// echoTwiceLNS is a minimal target on a UDP socket: it answers an SCCRQ
// with an SCCRP sent twice (as an LNS does that did not see the LAC's
// acknowledgement in time), acknowledges every other control message with
// a ZLB, and never answers a call.
func echoTwiceLNS(t *testing.T) netip.AddrPort {
	t.Helper()
	conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	go func() {
		buf := make([]byte, 4096)
		var peerTID uint16
		for {
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			hdr, payload, err := l2tp.ParseHeader(buf[:n])
			if err != nil || !hdr.Control || len(payload) == 0 {
				continue // data, or a ZLB
			}
			m, err := l2tp.ParseMessage(payload, nil)
			if err != nil {
				continue
			}
			if m.Type == l2tp.MsgSCCRQ {
				peerTID, _, _ = m.Uint16(l2tp.AVPAssignedTunnelID)
				var rp l2tp.Message
				rp.Reset(l2tp.MsgSCCRP)
				rp.AddUint16(l2tp.AVPProtocolVersion, true, 0x0100)
				rp.AddUint32(l2tp.AVPFramingCapabilities, true, 3)
				rp.AddString(l2tp.AVPHostName, true, "echo-twice")
				rp.AddUint16(l2tp.AVPAssignedTunnelID, true, 77)
				body, err := l2tp.AppendMessage(nil, &rp, nil, nil)
				if err != nil {
					t.Error(err)
					return
				}
				pkt := l2tp.AppendHeader(nil, l2tp.Header{Control: true, HasLength: true, HasSeq: true, Version: l2tp.Version2, TunnelID: uint32(peerTID), Ns: 0, Nr: hdr.Ns + 1}, len(body))
				pkt = append(pkt, body...)
				for range 2 {
					if _, err := conn.WriteToUDPAddrPort(pkt, from); err != nil {
						return
					}
				}
				continue
			}
			zlb := l2tp.AppendHeader(nil, l2tp.Header{Control: true, HasLength: true, HasSeq: true, Version: l2tp.Version2, TunnelID: uint32(peerTID), Ns: 1, Nr: hdr.Ns + 1}, 0)
			if _, err := conn.WriteToUDPAddrPort(zlb, from); err != nil {
				return
			}
		}
	}()
	return conn.LocalAddr().(*net.UDPAddr).AddrPort()
}

// The target's retransmission (its SCCRP received twice) is counted and
// reported, apart from our own retransmissions.
func TestRunCountsTargetRetransmissions(t *testing.T) {
	addr := echoTwiceLNS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := Run(ctx, Options{Target: addr, Tunnels: 1, Sessions: 1, Password: "pw", SetupTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.TunnelsUp != 1 || res.Failed != 1 {
		t.Fatalf("tunnels up %d, failed %d (%v), want 1 and 1 (the target answers no call)", res.TunnelsUp, res.Failed, res.Failures)
	}
	if res.Duplicates != 1 || res.Retransmits != 0 {
		t.Fatalf("target's retransmissions %d, ours %d; want 1 and 0", res.Duplicates, res.Retransmits)
	}
	var text strings.Builder
	if err := res.WriteText(&text); err != nil || !strings.Contains(text.String(), "received again (the target's retransmissions) 1;") {
		t.Fatalf("text report (%v):\n%s", err, text.String())
	}
}
