package radius

import (
	"crypto/md5"
	"encoding/binary"
	"errors"
	"net"
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

// BenchmarkSpoolPut appends a record and its ack, and writes the records
// once every acctBatchMin (the accounter writes before each send of a
// batch; no fsync: the run loop shares one among many batches).
func BenchmarkSpoolPut(b *testing.B) {
	b.ReportAllocs()
	sp, _, err := openSpool(b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer sp.close()
	r := &record{Status: AcctStart, ID: "0000000a-00000001", User: "user12345", attrs: make([]byte, 200)}
	n := 0
	for b.Loop() {
		if err := sp.put(r); err != nil {
			b.Fatal(err)
		}
		if n++; n%acctBatchMin == 0 {
			if err := sp.flushRecords(); err != nil {
				b.Fatal(err)
			}
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

// benchAccept is the Access-Accept of a typical subscriber: address,
// timeouts, interim interval, a Class.
func benchAccept(b *testing.B, req []byte) []byte {
	return reply(b, req, []byte(secret), radius.CodeAccessAccept, true,
		avp(attrFramedIPAddress, []byte{10, 128, 0, 5}), avp(attrFramedIPNetmask, []byte{255, 255, 255, 255}),
		avp(attrSessionTimeout, u32(86400)), avp(attrIdleTimeout, u32(3600)), avp(attrAcctInterimInterval, u32(300)),
		avp(attrClass, []byte("0123456789abcdef")))
}

// benchAccessRequest encodes a CHAP Access-Request.
func benchAccessRequest(b *testing.B) []byte {
	sec := []byte(secret)
	req := &auth.Request{Method: auth.MethodCHAPMD5, Username: "user12345", ID: 1,
		Challenge: make([]byte, 16), Response: make([]byte, 16), Session: benchInfo}
	reqAuth := make([]byte, 16)
	reqAuth[0] = 0x42
	a, err := appendAccessRequest(nil, sec, reqAuth, &benchNAS, req)
	if err != nil {
		b.Fatal(err)
	}
	raw, err := appendRequest(nil, radius.CodeAccessRequest, 7, reqAuth, sec, true, a)
	if err != nil {
		b.Fatal(err)
	}
	return raw
}

// BenchmarkReplyVerify verifies an Access-Accept against its request
// (length, Identifier, Response Authenticator, Message-Authenticator) and
// parses it into the auth.Result, as the socket reader does.
func BenchmarkReplyVerify(b *testing.B) {
	sec := []byte(secret)
	req := benchAccessRequest(b)
	resp := benchAccept(b, req)
	b.ReportAllocs()
	for b.Loop() {
		r, err := verifyAndParse(resp, req, sec)
		if err != nil || !r.Accept {
			b.Fatal(err)
		}
	}
}

// BenchmarkAcctStartSpool encodes an Accounting-Request Start record and
// appends it to the spool, then its ack, as add and finish do for every
// session; the records are written once every acctBatchMin, as before
// each send of a batch (no fsync).
func BenchmarkAcctStartSpool(b *testing.B) {
	sp, _, err := openSpool(b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer sp.close()
	s := &auth.AcctSession{ID: "0000000a-00000001", Username: "user12345", Method: auth.MethodCHAPMD5, Info: benchInfo,
		FramedIP: netip.MustParseAddr("10.128.0.5"), Class: [][]byte{[]byte("class-1")}}
	now := time.Unix(1700000000, 0)
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		r, err := newRecord(&benchNAS, AcctStart, s, nil, 0, now)
		if err != nil {
			b.Fatal(err)
		}
		if err := sp.put(r); err != nil {
			b.Fatal(err)
		}
		if n++; n%acctBatchMin == 0 {
			if err := sp.flushRecords(); err != nil {
				b.Fatal(err)
			}
		}
		if err := sp.ack(r); err != nil {
			b.Fatal(err)
		}
	}
}

// benchServer is a lean loopback RADIUS server for the round-trip
// benchmarks: it answers every Access-Request with a fixed Access-Accept
// and every Accounting-Request with an Accounting-Response, signing them
// by hand, so that what it allocates does not hide the client's figures.
func newBenchServer(b *testing.B) int {
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	conn.SetReadBuffer(4 << 20) // the accounter's bursts (up to 128 records) must not be dropped
	sec := []byte(secret)
	acceptAttrs := benchAccept(b, benchAccessRequest(b))[20+18:] // the attributes after Message-Authenticator
	go func() {
		buf := make([]byte, 4096)
		out := make([]byte, 0, 4096)
		h := &md5State{h: md5.New()}
		for {
			n, src, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			if n < 20 {
				continue
			}
			out = append(out[:0], 0, buf[1], 0, 0)
			out = append(out, buf[4:20]...)
			switch radius.Code(buf[0]) {
			case radius.CodeAccessRequest:
				out[0] = byte(radius.CodeAccessAccept)
				out = append(out, byte(attrMessageAuthenticator), 18)
				out = append(out, make([]byte, 16)...)
				out = append(out, acceptAttrs...)
			case radius.CodeAccountingRequest:
				out[0] = byte(radius.CodeAccountingResponse)
			default:
				continue
			}
			binary.BigEndian.PutUint16(out[2:], uint16(len(out)))
			if out[0] == byte(radius.CodeAccessAccept) {
				h.hmac(out[22:38], sec, out)
			}
			h.h.Reset()
			h.h.Write(out)
			h.h.Write(sec)
			h.sum(out[4:20])
			conn.WriteToUDPAddrPort(out, src)
		}
	}()
	return conn.LocalAddr().(*net.UDPAddr).Port
}

// BenchmarkSessionSetup is the RADIUS part of one session setup against a
// loopback server: a CHAP Access-Request answered by an Access-Accept
// (AuthenticateAsync, waited for), then Start (spooled, sent, acknowledged;
// the drain of the last ones is timed too).
func BenchmarkSessionSetup(b *testing.B) {
	port := newBenchServer(b)
	cfg := testConfig(b, secret, port)
	cfg.Servers[0].AcctPort = port
	cfg.Servers[0].Timeout = 5 * time.Second
	cfg.SpoolSyncInterval = time.Second
	c, err := New(cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	req := &auth.Request{Method: auth.MethodCHAPMD5, Username: "user12345", ID: 1,
		Challenge: make([]byte, 16), Response: make([]byte, 16), Session: benchInfo}
	sessions := make([]auth.AcctSession, b.N)
	for i := range sessions {
		sessions[i] = auth.AcctSession{ID: strconv.Itoa(i), Username: "user12345", Method: auth.MethodCHAPMD5, Info: benchInfo,
			FramedIP: netip.MustParseAddr("10.128.0.5"), Class: [][]byte{[]byte("0123456789abcdef")}}
	}
	ch := make(chan error, 1)
	done := func(r *auth.Result, err error) {
		if err == nil && !r.Accept {
			err = errors.New("rejected")
		}
		ch <- err
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N { // not b.Loop: the drain after the loop is timed too
		c.AuthenticateAsync(req, done)
		if err := <-ch; err != nil {
			b.Fatal(err)
		}
		c.Start(&sessions[i])
	}
	for c.Pending() > 0 {
		time.Sleep(100 * time.Microsecond) // polling a counter
	}
	b.StopTimer()
	if st := c.Stats(); st != (Stats{}) {
		b.Fatalf("replies dropped: %+v", st)
	}
}

// verifyAndParse is the reader's path for an Access-Accept.
func verifyAndParse(resp, req, sec []byte) (*auth.Result, error) {
	p, err := checkReply(resp, req, sec, true)
	if err != nil {
		return nil, err
	}
	return parseReply(radius.Code(p[0]), p[20:])
}
