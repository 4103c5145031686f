package tunnel

import (
	"testing"
	"time"

	"github.com/l2tpd/l2tpd/l2tp"
)

// FuzzReceive feeds arbitrary datagrams to an established LNS tunnel with a
// call up (secret set, so hidden AVPs are deciphered): it must never panic,
// and whatever it answers must parse.
func FuzzReceive(f *testing.F) {
	hello := &l2tp.Message{Type: l2tp.MsgHello}
	b, _ := l2tp.AppendMessage(nil, hello, nil, nil)
	h := l2tp.Header{Control: true, HasLength: true, HasSeq: true, Version: 2, TunnelID: 200, Ns: 3, Nr: 1}
	f.Add(append(l2tp.AppendHeader(nil, h, len(b)), b...))
	cdn := &l2tp.Message{Type: l2tp.MsgCDN}
	cdn.AddBytes(l2tp.AVPResultCode, true, []byte{0, 1})
	cdn.AddUint16(l2tp.AVPAssignedSessionID, true, 5)
	b, _ = l2tp.AppendMessage(nil, cdn, nil, nil)
	f.Add(append(l2tp.AppendHeader(nil, h, len(b)), b...))
	f.Add([]byte{0xc8, 0x02, 0, 12, 0, 200, 0, 0, 0, 3, 0, 1})
	f.Add([]byte{0xc8, 0x02, 0, 20, 0, 200, 0, 0, 0, 3, 0, 1, 0x80, 8, 0, 0, 0, 0, 0, 10})

	f.Fuzz(func(t *testing.T, data []byte) {
		lc := cfg(100, "lac", 1)
		lc.Secret = []byte("k")
		nc := cfg(200, "lns", 2)
		nc.Secret = []byte("k")
		p := newPair(t, lc, nc)
		p.run(5 * time.Second)
		if _, err := p.lac.PlaceCall(p.now, Incoming, CallInfo{}); err != nil {
			t.Fatal(err)
		}
		p.run(5 * time.Second)
		hdr, payload, err := l2tp.ParseHeader(data)
		if err != nil || !hdr.Control {
			return
		}
		p.lns.Receive(p.now, hdr, payload)
		for _, out := range p.lns.Output(p.now, nil) {
			if _, _, err := l2tp.ParseHeader(out); err != nil {
				t.Fatalf("answer does not parse: %v", err)
			}
		}
		p.lns.Events(nil)
		p.now = p.now.Add(time.Minute)
		p.lns.Tick(p.now)
		p.lns.Output(p.now, nil)
	})
}
