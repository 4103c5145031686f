package e2e

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/l2tpd/l2tpd/internal/testenv"
)

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// dropFromPort drops percent% of UDP datagrams arriving in ns from source
// port sport (the LAC's own port is ephemeral, the LNS's is 1701). Input
// hook, as in testenv.DropInbound. It returns the count of datagrams
// dropped so far and a function that removes the rule.
func dropFromPort(t *testing.T, ns *testenv.Netns, sport uint16, percent int) (dropped func() uint64, remove func() error) {
	t.Helper()
	table := fmt.Sprintf("e2e_sport_%d", sport)
	script := fmt.Sprintf(`table inet %s {
	chain in {
		type filter hook input priority 0; policy accept;
		udp sport %d numgen random mod 100 < %d counter drop
	}
}
`, table, sport, percent)
	cmd := ns.Command("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft: %v: %s", err, out)
	}
	remove = func() error {
		_, err := ns.Run("nft", "delete", "table", "inet", table)
		return err
	}
	return func() uint64 {
		out, err := ns.Run("nft", "list", "table", "inet", table)
		if err != nil {
			return 0
		}
		m := regexp.MustCompile(`packets (\d+)`).FindStringSubmatch(out)
		if m == nil {
			return 0
		}
		n, _ := strconv.ParseUint(m[1], 10, 64)
		return n
	}, remove
}
