package tunnel

import (
	"encoding/binary"
	"runtime"
	"testing"
	"time"

	"github.com/l2tpd/l2tpd/l2tp"
	"github.com/l2tpd/l2tpd/l2tp/control"
)

// fakeLAC drives an established LNS core directly with pre-encoded
// datagrams, tracking the sequence numbers as a LAC would, so a benchmark
// measures the core alone (not a second core nor the test's parsing).
type fakeLAC struct {
	tb       testing.TB
	lns      *Tunnel
	now      time.Time
	ns, nr   uint16 // our next Ns; the next Ns we expect from the LNS
	icrq     []byte // body, Assigned Session ID patched per call
	iccn     []byte
	cdn      []byte // body, Assigned Session ID patched per call
	dgram    []byte
	out      [][]byte
	ev       []Event
	ackDelay time.Duration
}

func encodeBody(tb testing.TB, m *l2tp.Message) []byte {
	b, err := l2tp.AppendMessage(nil, m, nil, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// newFakeLAC returns an LNS core (cfg) established with a fake LAC.
func newFakeLAC(tb testing.TB, c Config) *fakeLAC {
	f := &fakeLAC{tb: tb, now: time.Unix(1_700_000_000, 0)}
	sccrq := &l2tp.Message{Type: l2tp.MsgSCCRQ}
	sccrq.AddBytes(l2tp.AVPProtocolVersion, true, []byte{1, 0})
	sccrq.AddUint32(l2tp.AVPFramingCapabilities, true, FramingSync|FramingAsync)
	sccrq.AddString(l2tp.AVPHostName, true, "lac")
	sccrq.AddUint16(l2tp.AVPAssignedTunnelID, true, 100)
	sccrq.AddUint16(l2tp.AVPReceiveWindowSize, true, 64)
	lns, err := NewResponder(c, f.now, l2tp.Header{Control: true, Ns: 0, Nr: 0}, sccrq)
	if err != nil {
		tb.Fatal(err)
	}
	f.lns = lns
	f.ns = 1
	f.output() // SCCRP
	f.send(0, encodeBody(tb, &l2tp.Message{Type: l2tp.MsgSCCCN}))
	if lns.State() != StateEstablished {
		tb.Fatalf("LNS state %v, want established", lns.State())
	}
	f.ev = lns.Events(f.ev[:0])
	f.ackDelay = lns.ch.Config().AckDelay

	icrq := &l2tp.Message{Type: l2tp.MsgICRQ}
	icrq.AddUint16(l2tp.AVPAssignedSessionID, true, 1)
	icrq.AddUint32(l2tp.AVPCallSerialNumber, true, 42)
	icrq.AddUint32(l2tp.AVPBearerType, true, BearerAnalog)
	icrq.AddString(l2tp.AVPCallingNumber, true, "0123456789")
	icrq.AddString(l2tp.AVPCalledNumber, true, "isp.example")
	icrq.AddUint32(l2tp.AVPPhysicalChannelID, false, 7)
	f.icrq = encodeBody(tb, icrq)
	iccn := &l2tp.Message{Type: l2tp.MsgICCN}
	iccn.AddUint32(l2tp.AVPTxConnectSpeed, true, 100000000)
	iccn.AddUint32(l2tp.AVPFramingType, true, FramingSync)
	iccn.AddUint32(l2tp.AVPRxConnectSpeed, false, 100000000)
	f.iccn = encodeBody(tb, iccn)
	cdn := &l2tp.Message{Type: l2tp.MsgCDN}
	cdn.AddResultCode(l2tp.ResultCode{Result: l2tp.ResultCDNAdmin})
	cdn.AddUint16(l2tp.AVPAssignedSessionID, true, 1)
	f.cdn = encodeBody(tb, cdn)
	return f
}

// patchSID sets the value of the Assigned Session ID AVP in body (found by
// walking the AVPs).
func patchSID(body []byte, sid uint16) {
	for off := 0; off+6 <= len(body); {
		l := int(binary.BigEndian.Uint16(body[off:]) & 0x3ff)
		if binary.BigEndian.Uint16(body[off+4:]) == uint16(l2tp.AVPAssignedSessionID) {
			binary.BigEndian.PutUint16(body[off+6:], sid)
			return
		}
		off += l
	}
}

// send delivers one control message (body nil: a ZLB) to the LNS.
func (f *fakeLAC) send(sid uint16, body []byte) {
	h := l2tp.Header{Control: true, HasLength: true, HasSeq: true, Version: 2, TunnelID: f.lns.LocalID(), SessionID: uint32(sid), Ns: f.ns, Nr: f.nr}
	f.dgram = l2tp.AppendHeader(f.dgram[:0], h, len(body))
	f.dgram = append(f.dgram, body...)
	if len(body) > 0 {
		f.ns++
	}
	hdr, payload, err := l2tp.ParseHeader(f.dgram)
	if err != nil {
		f.tb.Fatal(err)
	}
	f.lns.Receive(f.now, hdr, payload)
}

// output collects the LNS's datagrams due now and acknowledges its
// messages (advancing nr). It returns the session ID of the last ICRP.
func (f *fakeLAC) output() (sid uint16) {
	f.out = f.lns.Output(f.now, f.out[:0])
	for _, b := range f.out {
		if len(b) <= 12 {
			continue // ZLB
		}
		f.nr = binary.BigEndian.Uint16(b[8:]) + 1
		if binary.BigEndian.Uint16(b[12+6:]) == uint16(l2tp.MsgICRP) {
			sid = binary.BigEndian.Uint16(b[12+8+6:])
		}
	}
	return sid
}

// call runs one call on the LNS: ICRQ -> ICRP, ICCN -> ZLB; the session
// stays up. It returns the LNS's session ID.
func (f *fakeLAC) call(peerSID uint16) uint16 {
	patchSID(f.icrq, peerSID)
	f.send(0, f.icrq)
	sid := f.output()
	if sid == 0 {
		f.tb.Fatal("no ICRP")
	}
	f.send(sid, f.iccn)
	f.now = f.now.Add(f.ackDelay)
	f.output() // ZLB
	return sid
}

func (f *fakeLAC) events() []Event {
	f.ev = f.lns.Events(f.ev[:0])
	return f.ev
}

func benchConfig() Config {
	return Config{LocalID: 200, HostName: "lns", Rand: newSeeded(2), Control: control.Config{RecvWindow: 64}}
}

// BenchmarkCallCyclePeerCDN: one session's whole life on an established
// tunnel at the LNS: ICRQ -> ICRP, ICCN -> ZLB, the LAC's CDN -> ZLB.
func BenchmarkCallCyclePeerCDN(b *testing.B) {
	f := newFakeLAC(b, benchConfig())
	b.ReportAllocs()
	for b.Loop() {
		sid := f.call(5)
		patchSID(f.cdn, 5)
		f.send(sid, f.cdn)
		f.now = f.now.Add(f.ackDelay)
		f.output()
		if ev := f.events(); len(ev) != 2 {
			b.Fatalf("events %+v, want SessionUp and SessionDown", ev)
		}
	}
}

// BenchmarkCallCycleHangup: as BenchmarkCallCyclePeerCDN, but the LNS ends
// the call (Hangup: CDN) and the LAC acknowledges it with a ZLB.
func BenchmarkCallCycleHangup(b *testing.B) {
	f := newFakeLAC(b, benchConfig())
	rc := l2tp.ResultCode{Result: l2tp.ResultCDNAdmin, Message: "PPP ended"}
	b.ReportAllocs()
	for b.Loop() {
		sid := f.call(5)
		if err := f.lns.Hangup(f.now, uint32(sid), rc, "PPP ended"); err != nil {
			b.Fatal(err)
		}
		f.output()
		f.send(0, nil) // ZLB acknowledging the CDN
		if ev := f.events(); len(ev) != 2 {
			b.Fatalf("events %+v, want SessionUp and SessionDown", ev)
		}
	}
}

// BenchmarkSessionMemory measures the heap each established session keeps
// in the tunnel core: 20,000 sessions on one tunnel (B/session).
func BenchmarkSessionMemory(b *testing.B) {
	const n = 20000
	b.ReportAllocs()
	var perSession float64
	for b.Loop() {
		b.StopTimer()
		c := benchConfig()
		c.MaxSessions = 0xffff
		f := newFakeLAC(b, c)
		var ms runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms)
		before := ms.HeapAlloc
		b.StartTimer()
		for i := range n {
			f.call(uint16(i + 1))
			if i%64 == 0 {
				f.events()
			}
		}
		f.events()
		b.StopTimer()
		runtime.GC()
		runtime.ReadMemStats(&ms)
		if f.lns.NumSessions() != n {
			b.Fatalf("%d sessions, want %d", f.lns.NumSessions(), n)
		}
		perSession = float64(ms.HeapAlloc-before) / n
		runtime.KeepAlive(f)
		b.StartTimer()
	}
	b.ReportMetric(perSession, "B/session")
}
