package testenv

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestXL2TPDSmoke runs an xl2tpd LAC against an xl2tpd LNS in two
// namespaces, with tunnel authentication and hidden AVPs, and checks from
// their logs that the tunnel and the call come up, that pppd fails for want
// of /dev/ppp, that the LNS clears the call with a CDN the LAC receives, and
// that Disconnect closes the LAC's tunnel.
func TestXL2TPDSmoke(t *testing.T) {
	Require(t, "ip", "xl2tpd", "pppd")
	t.Parallel()
	lacNS, lnsNS := NewNetns(t, "xlac"), NewNetns(t, "xlns")
	ConnectVeth(t, lacNS, lnsNS, netip.MustParsePrefix("10.204.0.1/24"), netip.MustParsePrefix("10.204.0.2/24"))
	lns := XL2TPD{
		Role: LNS, Netns: lnsNS,
		ListenAddr: netip.MustParseAddr("10.204.0.2"), PeerAddr: netip.MustParseAddr("10.204.0.1"),
		Hostname: "lns1", PeerHostname: "lac1", Secret: "s3cret", Challenge: true, Hidden: true,
		Users: []PPPUser{{"alice", "wonderland"}},
	}.Start(t)
	lac := XL2TPD{
		Role: LAC, Netns: lacNS,
		ListenAddr: netip.MustParseAddr("10.204.0.1"), PeerAddr: netip.MustParseAddr("10.204.0.2"),
		Hostname: "lac1", PeerHostname: "lns1", Secret: "s3cret", Challenge: true, Hidden: true,
	}.Start(t)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	must := func(p *XL2TPDProc, from int, pattern string) Match {
		t.Helper()
		m, err := p.WaitForFrom(ctx, from, pattern)
		if err != nil {
			t.Fatalf("%s: %v", p.Name, err)
		}
		return m
	}
	if err := lac.Dial(""); err != nil {
		t.Fatal(err)
	}

	// Tunnel: both sides agree on the pair of tunnel IDs.
	lacTun := must(lac, 0, XL2TPDTunnelEstablished)
	lnsTun := must(lns, 0, XL2TPDTunnelEstablished)
	if lacTun.Groups[1] != "10.204.0.2" || lnsTun.Groups[1] != "10.204.0.1" {
		t.Errorf("tunnel peers: LAC sees %s, LNS sees %s", lacTun.Groups[1], lnsTun.Groups[1])
	}
	if lacTun.Groups[3] != lnsTun.Groups[4] || lacTun.Groups[4] != lnsTun.Groups[3] {
		t.Errorf("tunnel IDs disagree: LAC local/remote %s/%s, LNS %s/%s",
			lacTun.Groups[3], lacTun.Groups[4], lnsTun.Groups[3], lnsTun.Groups[4])
	}
	// SCCRQ, SCCRP and SCCCN were seen in order.
	sccrq := must(lns, 0, `message type is Start-Control-Connection-Request\(1\)`)
	must(lac, 0, `message type is Start-Control-Connection-Reply\(2\)`)
	sccn := must(lns, sccrq.Index+1, `message type is Start-Control-Connection-Connected\(3\)`)

	// Call: both sides agree on the pair of call IDs.
	lacCall := must(lac, lacTun.Index+1, XL2TPDCallEstablished)
	lnsCall := must(lns, sccn.Index+1, XL2TPDCallEstablished)
	if lacCall.Groups[2] != lnsCall.Groups[3] || lacCall.Groups[3] != lnsCall.Groups[2] {
		t.Errorf("call IDs disagree: LAC local/remote %s/%s, LNS %s/%s",
			lacCall.Groups[2], lacCall.Groups[3], lnsCall.Groups[2], lnsCall.Groups[3])
	}

	// This host has no PPP: each side's pppd exits (no /dev/ppp), and
	// whichever side notices first closes the call with a CDN that the other
	// receives; often both do, and the CDNs cross (see XL2TPDOutOfOrder).
	type side struct {
		p    *XL2TPDProc
		call Match // its XL2TPDCallEstablished
	}
	sides := []side{{lac, lacCall}, {lns, lnsCall}}
	for _, s := range sides {
		// Each side's call ends one way or the other.
		must(s.p, s.call.Index+1, XL2TPDCallClosed+"|"+XL2TPDCDNReceived)
	}
	senders := 0
	for i, s := range sides {
		closed, err := s.p.WaitForFrom(expired(), s.call.Index+1, XL2TPDCallClosed)
		if err != nil {
			continue // this side did not send a CDN
		}
		senders++
		if closed.Groups[1] != s.call.Groups[2] {
			t.Errorf("%s closed call %s, want its call %s", s.p.Name, closed.Groups[1], s.call.Groups[2])
		}
		// It closed the call because its pppd had exited.
		exited := must(s.p, s.call.Index+1, XL2TPDPPPDExited)
		if exited.Index > closed.Index {
			t.Errorf("%s closed the call before its pppd exited", s.p.Name)
		}
		// The other side got the CDN for this call (the header's call ID
		// is the receiver's own).
		other := sides[1-i]
		cdn := must(other.p, other.call.Index+1, XL2TPDCDNReceived)
		if cdn.Groups[2] != other.call.Groups[2] && cdn.Groups[2] != other.call.Groups[3] {
			t.Errorf("%s got a CDN for call %s, want %s or %s", other.p.Name,
				cdn.Groups[2], other.call.Groups[2], other.call.Groups[3])
		}
	}
	if senders == 0 {
		t.Error("neither side sent a CDN")
	}
	for _, p := range []*XL2TPDProc{lac, lns} {
		for _, bad := range []string{XL2TPDNoSecret, `[Ff]atal|segfault`} {
			if m, err := p.WaitForFrom(expired(), 0, bad); err == nil {
				t.Errorf("%s logged %q", p.Name, m.Line)
			}
		}
	}

	// The tunnel outlives the call; Disconnect closes it on the LAC's side.
	from := lac.Len()
	if err := lac.Disconnect(""); err != nil {
		t.Fatal(err)
	}
	if m := must(lac, from, XL2TPDDisconnecting); m.Groups[2] != lacTun.Groups[3] {
		t.Errorf("disconnecting tunnel %s, want %s", m.Groups[2], lacTun.Groups[3])
	}
	if m := must(lac, from, XL2TPDTunnelClosed); m.Groups[3] != "Goodbye!" {
		t.Errorf("tunnel closed with %q, want Goodbye!", m.Groups[3])
	}

	// Stop: SIGTERM is logged and the process exits.
	if err := lac.Stop(5 * time.Second); err != nil {
		t.Error(err)
	}
	must(lac, 0, XL2TPDSignalled)
}

// TestXL2TPDWrongSecret checks the failure path the patterns describe: with
// different secrets the tunnel never comes up.
func TestXL2TPDWrongSecret(t *testing.T) {
	Require(t, "ip", "xl2tpd", "pppd")
	t.Parallel()
	lacNS, lnsNS := NewNetns(t, "wlac"), NewNetns(t, "wlns")
	ConnectVeth(t, lacNS, lnsNS, netip.MustParsePrefix("10.205.0.1/24"), netip.MustParsePrefix("10.205.0.2/24"))
	lns := XL2TPD{Role: LNS, Netns: lnsNS, ListenAddr: netip.MustParseAddr("10.205.0.2"),
		Hostname: "lns1", Secret: "right", Challenge: true}.Start(t)
	lac := XL2TPD{Role: LAC, Netns: lacNS, ListenAddr: netip.MustParseAddr("10.205.0.1"),
		PeerAddr: netip.MustParseAddr("10.205.0.2"), Hostname: "lac1", Secret: "wrong", Challenge: true}.Start(t)
	if err := lac.Dial(""); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	m, err := lac.WaitFor(ctx, XL2TPDTunnelClosed)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("LAC: %s", m.Line)
	if _, err := lns.WaitFor(expired(), XL2TPDTunnelEstablished); err == nil {
		t.Error("LNS established a tunnel with a wrong secret")
	}
}

// expired is a context that is already done: WaitFor then only scans.
func expired() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

func TestXL2TPDFiles(t *testing.T) {
	x, err := XL2TPD{
		Role: LAC, Netns: &Netns{Name: "n"},
		ListenAddr: netip.MustParseAddr("10.0.0.1"), PeerAddr: netip.MustParseAddr("10.0.0.2"),
		Hostname: "lac1", PeerHostname: "lns1", Secret: "s3", Challenge: true, Hidden: true,
		Users: []PPPUser{{"bob", "pw"}}, PPPOptions: []string{"debug"},
	}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"xl2tpd.conf": `[global]
listen-addr = 10.0.0.1
port = 1701
auth file = /d/l2tp-secrets
access control = no
debug tunnel = yes
debug state = yes

[lac peer]
lns = 10.0.0.2
name = bob
require authentication = no
hostname = lac1
pppoptfile = /d/options.xl2tpd
length bit = yes
challenge = yes
hidden bit = yes
`,
		"l2tp-secrets":   "lac1 lns1 s3\n",
		"options.xl2tpd": "noauth\nname bob\nrefuse-eap\nipcp-accept-local\nipcp-accept-remote\nnodefaultroute\ndebug\n",
		"chap-secrets":   "# client server secret addresses\nbob * pw *\n",
	}
	if diff := cmp.Diff(want, x.files("/d")); diff != "" {
		t.Errorf("LAC files (-want +got):\n%s", diff)
	}

	lns, err := XL2TPD{Role: LNS, Netns: &Netns{Name: "n"}, ListenAddr: netip.MustParseAddr("10.0.0.2"),
		PeerAddr: netip.MustParseAddr("10.0.0.1")}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	conf := lns.files("/d")["xl2tpd.conf"]
	for _, line := range []string{"access control = yes", "[lns default]", "lac = 10.0.0.1", "require chap = yes",
		"hostname = lns", "challenge = no", "ip range = 192.168.250.10-192.168.250.200"} {
		if !strings.Contains(conf, line+"\n") {
			t.Errorf("LNS xl2tpd.conf lacks %q:\n%s", line, conf)
		}
	}
	if got := lns.files("/d")["l2tp-secrets"]; got != "" {
		t.Errorf("no Secret: l2tp-secrets = %q, want empty", got)
	}

	for name, bad := range map[string]XL2TPD{
		"no role":          {Netns: &Netns{}, ListenAddr: netip.MustParseAddr("10.0.0.1")},
		"no netns":         {Role: LNS, ListenAddr: netip.MustParseAddr("10.0.0.1")},
		"ipv6":             {Role: LNS, Netns: &Netns{}, ListenAddr: netip.MustParseAddr("fd00::1")},
		"lac without peer": {Role: LAC, Netns: &Netns{}, ListenAddr: netip.MustParseAddr("10.0.0.1")},
		"hidden no secret": {Role: LNS, Netns: &Netns{}, ListenAddr: netip.MustParseAddr("10.0.0.1"), Hidden: true},
		"blank in secret":  {Role: LNS, Netns: &Netns{}, ListenAddr: netip.MustParseAddr("10.0.0.1"), Secret: "a b"},
	} {
		if _, err := bad.withDefaults(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if LAC.String() != "LAC" || LNS.String() != "LNS" || Role(9).String() != "Role(9)" {
		t.Error("Role.String")
	}
}
