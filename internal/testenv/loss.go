package testenv

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// Loss is an nftables rule dropping a random share of inbound packets to one
// port in one namespace.
type Loss struct {
	ns      *Netns
	table   string
	removed bool
}

// DropInbound drops percent% (0..100) of the packets of proto ("udp" or
// "tcp") arriving for dport in the namespace, chosen at random per packet
// (`numgen random mod 100 < percent`). The rule sits on the input hook: a
// drop on output would make the sender's sendto fail with EPERM instead of
// losing the packet silently. It is removed when the test ends.
func (ns *Netns) DropInbound(t testing.TB, proto string, dport uint16, percent int) *Loss {
	t.Helper()
	Require(t, "nft")
	if proto != "udp" && proto != "tcp" {
		t.Fatalf("testenv: DropInbound: protocol %q, want udp or tcp", proto)
	}
	if percent < 0 || percent > 100 {
		t.Fatalf("testenv: DropInbound: percent %d out of 0..100", percent)
	}
	l := &Loss{ns: ns, table: fmt.Sprintf("l2td_loss_%d", seq.Add(1))}
	script := fmt.Sprintf(`table inet %s {
	chain in {
		type filter hook input priority 0; policy accept;
		%s dport %d numgen random mod 100 < %d counter drop
	}
}
`, l.table, proto, dport, percent)
	cmd := ns.Command("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("testenv: nft in %s: %v: %s\nscript:\n%s", ns.Name, err, out, script)
	}
	t.Cleanup(func() {
		if err := l.Remove(); err != nil {
			t.Error(err)
		}
	})
	return l
}

// Dropped returns how many packets the rule has dropped so far.
func (l *Loss) Dropped() (uint64, error) {
	out, err := l.ns.Run("nft", "-j", "list", "table", "inet", l.table)
	if err != nil {
		return 0, err
	}
	return parseNftCounter(out)
}

// parseNftCounter returns the packet count of the only counter in the JSON
// listing `nft -j list table` prints.
func parseNftCounter(out string) (uint64, error) {
	var doc struct {
		Nftables []struct {
			Rule *struct {
				Expr []struct {
					Counter *struct {
						Packets uint64 `json:"packets"`
					} `json:"counter"`
				} `json:"expr"`
			} `json:"rule"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		return 0, fmt.Errorf("testenv: parse nft JSON: %w", err)
	}
	for _, obj := range doc.Nftables {
		if obj.Rule == nil {
			continue
		}
		for _, e := range obj.Rule.Expr {
			if e.Counter != nil {
				return e.Counter.Packets, nil
			}
		}
	}
	return 0, fmt.Errorf("testenv: no counter in nft listing: %w", errNoMatch)
}

// Remove deletes the rule's table now (it is otherwise removed at cleanup).
// Removing twice is a no-op.
func (l *Loss) Remove() error {
	if l.removed {
		return nil
	}
	l.removed = true
	_, err := l.ns.Run("nft", "delete", "table", "inet", l.table)
	return err
}
