package pppsession

import (
	"testing"
	"time"

	"github.com/l2tpd/l2tpd/auth"
	"github.com/l2tpd/l2tpd/auth/local"
)

type evRec struct {
	ups  int
	ends []evEnd
}

type evEnd struct {
	k     EndKind
	wasUp bool
	m     auth.Method
}

func (r *evRec) SessionUp() { r.ups++ }
func (r *evRec) SessionEnded(k EndKind, wasUp bool, m auth.Method) {
	r.ends = append(r.ends, evEnd{k, wasUp, m})
}

// Config.Events hears every LNS session come up and end, once, with the
// end kind, whether it had been up, and the method.
func TestEvents(t *testing.T) {
	cases := []struct {
		name, pw string
		want     []evEnd
		ups      int
	}{
		{"up-then-cleared", "pw", []evEnd{{EndCallCleared, true, auth.MethodCHAPMD5}}, 1},
		{"refused", "wrong", []evEnd{{EndAuthFailed, false, auth.MethodCHAPMD5}}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, "10.0.0.0/29", local.Subscriber{Name: "alice", Password: "pw"})
			rec := &evRec{}
			h.env.cfg.Events = rec
			h.useDecider()
			ns, lnsD, cs, _ := h.dial(1, "alice", tc.pw, auth.MethodCHAPMD5)
			h.run(30*time.Second, ns, cs)
			h.now = h.now.Add(time.Minute)
			lnsD.Close(h.now, "peer sent CDN")
			lnsD.Close(h.now, "peer sent CDN")
			if rec.ups != tc.ups {
				t.Errorf("SessionUp %d times, want %d", rec.ups, tc.ups)
			}
			if len(rec.ends) != len(tc.want) || (len(rec.ends) == 1 && rec.ends[0] != tc.want[0]) {
				t.Errorf("SessionEnded %+v, want %+v", rec.ends, tc.want)
			}
		})
	}
}

// CountByState follows sessions from starting to up to gone.
func TestCountByState(t *testing.T) {
	h := newHarness(t, "10.0.0.0/29", local.Subscriber{Name: "alice", Password: "pw"})
	h.useDecider()
	ns, lnsD, cs, _ := h.dial(1, "alice", "pw", auth.MethodCHAPMD5)
	if got := h.env.Sessions().CountByState(); got[StateStarting] != 1 || len(got) != 1 {
		t.Errorf("before negotiation: %v, want 1 starting", got)
	}
	h.run(30*time.Second, ns, cs)
	if got := h.env.Sessions().CountByState(); got[StateUp] != 1 || len(got) != 1 {
		t.Errorf("after negotiation: %v, want 1 up", got)
	}
	lnsD.Close(h.now, "peer sent CDN")
	if got := h.env.Sessions().CountByState(); len(got) != 0 {
		t.Errorf("after close: %v, want none", got)
	}
}
