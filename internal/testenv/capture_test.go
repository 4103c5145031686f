package testenv

import (
	"context"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"
)

// TestCaptureL2TP captures the xl2tpd smoke exchange on the LNS side and
// checks that tshark decodes the L2TP control messages by name.
func TestCaptureL2TP(t *testing.T) {
	Require(t, "ip", "dumpcap", "tshark", "xl2tpd", "pppd")
	t.Parallel()
	var dir string
	t.Run("exchange", func(t *testing.T) { dir = captureExchange(t) })
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("capture directory %s not removed after a passing test (stat: %v)", dir, err)
	}
}

func captureExchange(t *testing.T) string {
	lacNS, lnsNS := NewNetns(t, "clac"), NewNetns(t, "clns")
	v := ConnectVeth(t, lacNS, lnsNS, netip.MustParsePrefix("10.206.0.1/24"), netip.MustParsePrefix("10.206.0.2/24"))
	capt := lnsNS.Capture(t, v.IfB, "udp port 1701")
	XL2TPD{Role: LNS, Netns: lnsNS, ListenAddr: netip.MustParseAddr("10.206.0.2")}.Start(t)
	lac := XL2TPD{Role: LAC, Netns: lacNS, ListenAddr: netip.MustParseAddr("10.206.0.1"),
		PeerAddr: netip.MustParseAddr("10.206.0.2")}.Start(t)
	if err := lac.Dial(""); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := lac.WaitFor(ctx, XL2TPDCDNReceived+"|"+XL2TPDCallClosed); err != nil {
		t.Fatal(err)
	}
	// The LAC's ZLB acknowledging the last message may still be in flight;
	// the messages up to ICCN were acknowledged by the next message already.
	out, err := capt.Decode(false)
	if err != nil {
		t.Fatal(err)
	}
	for _, msg := range []string{"SCCRQ", "SCCRP", "SCCCN", "ICRQ", "ICRP", "ICCN", "CDN"} {
		if !strings.Contains(out, msg) {
			t.Errorf("decoded capture lacks %s:\n%s", msg, out)
		}
	}
	if st, err := os.Stat(capt.Path); err != nil || st.Size() == 0 {
		t.Errorf("pcap %s: %v", capt.Path, err)
	}
	return capt.Dir
}
