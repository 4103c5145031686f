package radius

import (
	"net/netip"
	"strconv"
	"testing"
	"time"

	"layeh.com/radius"

	"github.com/l2tpd/l2tpd/auth"
)

var benchNAS = NAS{Identifier: "l2tpd-bench", IPv4: netip.MustParseAddr("192.0.2.1")}

var benchInfo = auth.SessionInfo{AcctSessionID: "0000000a-00000001", TunnelID: 10, SessionID: 1, PeerTunnelID: 3, PeerSessionID: 4,
	LACHostName: "lac-1", LACAddr: netip.MustParseAddrPort("198.51.100.7:1701"), LocalAddr: netip.MustParseAddrPort("192.0.2.1:1701"),
	NASPort: 655361}

// BenchmarkRequestBuild encodes the two requests of every session setup:
// the Access-Request (CHAP) and the Accounting-Request Start (spool
// record attributes, then the packet with its authenticators).
func BenchmarkRequestBuild(b *testing.B) {
	sec := []byte(secret)
	b.Run("access-chap", func(b *testing.B) {
		b.ReportAllocs()
		req := &auth.Request{Method: auth.MethodCHAPMD5, Username: "user12345", ID: 1,
			Challenge: make([]byte, 16), Response: make([]byte, 16), Session: benchInfo}
		var ab attrs
		var buf []byte
		var reqAuth [16]byte
		for b.Loop() {
			var err error
			ab, err = appendAccessRequest(ab[:0], sec, reqAuth[:], &benchNAS, req)
			if err != nil {
				b.Fatal(err)
			}
			if buf, err = appendRequest(buf[:0], 1, 7, reqAuth[:], sec, true, ab); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("acct-start", func(b *testing.B) {
		b.ReportAllocs()
		s := &auth.AcctSession{ID: "0000000a-00000001", Username: "user12345", Method: auth.MethodCHAPMD5, Info: benchInfo,
			FramedIP: netip.MustParseAddr("10.128.0.5"), Class: [][]byte{[]byte("class-1")}}
		now := time.Unix(1700000000, 0)
		var buf []byte
		for b.Loop() {
			r, err := newRecord(&benchNAS, AcctStart, s, nil, 0, now)
			if err != nil {
				b.Fatal(err)
			}
			if buf, err = appendAcctRequest(buf[:0], sec, 7, r, now); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkSpoolPut appends a record and its ack (no fsync: the run loop
// shares one among every record of a pass).
func BenchmarkSpoolPut(b *testing.B) {
	b.ReportAllocs()
	sp, _, err := openSpool(b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer sp.close()
	r := &record{Status: AcctStart, ID: "0000000a-00000001", User: "user12345", attrs: make([]byte, 200)}
	for b.Loop() {
		if err := sp.put(r); err != nil {
			b.Fatal(err)
		}
		if err := sp.ack(r); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAcctDrain: Stop records spooled and sent to a loopback server
// until every one is acknowledged (what shutdown waits for), with grouped
// fsyncs and with an fsync every pass.
func BenchmarkAcctDrain(b *testing.B) {
	for _, every := range []time.Duration{time.Second, 0} {
		b.Run("sync="+every.String(), func(b *testing.B) {
			srv := newFakeServer(b, secret, func(raw []byte, p *radius.Packet) []byte {
				return reply(b, raw, []byte(secret), radius.CodeAccountingResponse, false)
			})
			cfg := acctConfig(b, b.TempDir(), srv.port())
			cfg.SpoolSyncInterval = every
			c, err := New(cfg, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N { // not b.Loop: the drain after the loop is timed too
				s := *acctSession
				s.ID = strconv.Itoa(i)
				c.Stop(&s, auth.AcctCounters{}, auth.CauseAdminReboot)
			}
			for c.Pending() > 0 {
				time.Sleep(time.Millisecond) // polling a counter
			}
		})
	}
}
