package pppsession

import (
	"encoding/binary"
	"slices"
	"testing"
	"time"

	"github.com/l2tpd/l2tpd/dataplane"
)

// syncPeer is a benchPeer that, when sync is set, answers inside
// SendFrame: the LNS's Frame is called while the LNS is carrying out its
// actions (a data plane or loopback that delivers at once). It records
// every frame the LNS sends as protocol, code and identifier. When it
// first sees the LNS's LCP Configure-Ack it sends a new LCP
// Configure-Request (a renegotiation, RFC 1661 allows it): the LNS, just
// Opened, answers that one frame with several actions while the Ack's
// batch still holds its CHAP Challenge.
type syncPeer struct {
	benchPeer
	sync  bool
	reneg bool
	d     *LNS
	now   time.Time
	sent  [][3]uint16
}

func (p *syncPeer) SendFrame(f []byte) error {
	p.sent = append(p.sent, [3]uint16{binary.BigEndian.Uint16(f), uint16(f[2]), uint16(f[3])})
	var err error
	if binary.BigEndian.Uint16(f) == 0xc021 && f[2] == 1 && p.reneg {
		p.frame(0xc021, 2, f[3], f[6:]) // Ack only: no further renegotiation
	} else {
		err = p.benchPeer.SendFrame(f)
	}
	if binary.BigEndian.Uint16(f) == 0xc021 && f[2] == 2 && !p.reneg {
		p.reneg = true
		p.frame(0xc021, 1, 2, benchLCPReq)
	}
	if p.sync && p.d != nil {
		p.benchPeer.pump(p.now, p.d)
	}
	return err
}

func (p *syncPeer) Up(nc dataplane.NetConfig) error { return p.benchPeer.Up(nc) }

// TestProcessNotReentered: a reply delivered while the LNS carries out a
// batch of actions must not make it lose, repeat or reorder any: the
// session comes up sending exactly the frames, in the order, it sends when
// replies are delivered afterwards.
func TestProcessNotReentered(t *testing.T) {
	run := func(sync bool) [][3]uint16 {
		bl := newBenchLNS(t, 10, 10)
		var call benchCall
		p := &syncPeer{sync: sync, now: bl.now}
		p.user, p.pass = []byte("user3"), []byte("pw3")
		d := bl.env.NewLNS(bl.now, &call, p, LNSParams{Profile: bl.prof})
		p.d = d
		p.benchPeer.pump(bl.now, d)
		if !p.up || call.hangups != 0 {
			t.Fatalf("sync %v: network up %v, hangups %d; frames sent %v", sync, p.up, call.hangups, p.sent)
		}
		return p.sent
	}
	queued, direct := run(false), run(true)
	if len(queued) < 6 {
		t.Fatalf("only %d frames sent: %v", len(queued), queued)
	}
	if !slices.Equal(queued, direct) {
		t.Fatalf("frames sent with replies delivered at once differ:\n queued %v\n direct %v", queued, direct)
	}
}
