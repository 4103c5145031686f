package metrics

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestEventsAndSnapshot(t *testing.T) {
	r := New()
	r.TunnelUp()
	r.TunnelUp()
	r.TunnelFailed("not-authorized")
	r.SessionUp()
	r.SessionFailed("auth-failed")
	r.SessionFailed("auth-failed")
	r.SessionFailed("pool-exhausted")
	r.Retransmitted(3)
	r.PPPFailed("lcp")
	r.RADIUS("192.0.2.50:1812", "auth", RADIUSAccept, 3*time.Millisecond)
	r.RADIUS("192.0.2.50:1812", "auth", RADIUSReject, 7*time.Millisecond)
	r.RADIUS("192.0.2.50:1812", "auth", RADIUSTimeout, 0)
	r.Reloaded(true)
	r.Reloaded(false)
	r.SetSnapshot(func() Snapshot {
		return Snapshot{
			TunnelsByState:  map[string]int{"established": 2, "wait-ctl-conn": 1},
			SessionsByState: map[string]int{"established": 40, "held": 3},
			Pools:           []PoolUsage{{Name: "default", Size: 253, Used: 40}},
			AcctSpoolDepth:  5,
			Draining:        true,
			InternalErrors:  2,
			Held:            HeldCalls{Total: 20, Admitted: 15, Expired: 1, Ended: 1, MaxWait: 2500 * time.Millisecond, OldestWait: 750 * time.Millisecond},
			RADIUS:          RADIUSCounts{Retransmissions: 7, RepliesUnexpected: 4, RepliesInvalid: 1},
		}
	})

	srv := httptest.NewServer(r.Handler())
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	text := string(body)
	for _, want := range []string{
		"l2tpd_tunnel_setups_total 2",
		`l2tpd_tunnel_failures_total{cause="not-authorized"} 1`,
		"l2tpd_session_setups_total 1",
		`l2tpd_session_failures_total{cause="auth-failed"} 2`,
		`l2tpd_session_failures_total{cause="pool-exhausted"} 1`,
		"l2tpd_control_retransmissions_total 3",
		`l2tpd_ppp_negotiation_failures_total{protocol="lcp"} 1`,
		`l2tpd_radius_requests_total{kind="auth",outcome="accept",server="192.0.2.50:1812"} 1`,
		`l2tpd_radius_requests_total{kind="auth",outcome="reject",server="192.0.2.50:1812"} 1`,
		`l2tpd_radius_requests_total{kind="auth",outcome="timeout",server="192.0.2.50:1812"} 1`,
		`l2tpd_radius_request_duration_seconds_count{kind="auth",server="192.0.2.50:1812"} 2`,
		`l2tpd_radius_request_duration_seconds_bucket{kind="auth",server="192.0.2.50:1812",le="0.005"} 1`,
		`l2tpd_tunnels{state="established"} 2`,
		`l2tpd_tunnels{state="wait-ctl-conn"} 1`,
		`l2tpd_sessions{state="established"} 40`,
		`l2tpd_pool_addresses{pool="default"} 253`,
		`l2tpd_pool_addresses_used{pool="default"} 40`,
		"l2tpd_accounting_spool_depth 5",
		"l2tpd_draining 1",
		"l2tpd_internal_errors_total 2",
		`l2tpd_sessions{state="held"} 3`,
		"l2tpd_calls_held_total 20",
		`l2tpd_calls_held_outcomes_total{outcome="admitted"} 15`,
		`l2tpd_calls_held_outcomes_total{outcome="expired"} 1`,
		`l2tpd_calls_held_outcomes_total{outcome="ended"} 1`,
		"l2tpd_calls_held_max_wait_seconds 2.5",
		"l2tpd_calls_held_oldest_wait_seconds 0.75",
		"l2tpd_radius_retransmissions_total 7",
		`l2tpd_radius_replies_dropped_total{reason="unexpected"} 4`,
		`l2tpd_radius_replies_dropped_total{reason="invalid"} 1`,
		`l2tpd_config_reloads_total{result="ok"} 1`,
		`l2tpd_config_reloads_total{result="refused"} 1`,
		"# TYPE go_goroutines gauge",
	} {
		// Whole lines: "total 2" must not be satisfied by "total 20".
		if !strings.Contains("\n"+text, "\n"+want+"\n") {
			t.Errorf("scrape lacks %q", want)
		}
	}
	if n, err := testutil.GatherAndCount(r.Gatherer(), "l2tpd_session_failures_total"); err != nil || n != 2 {
		t.Errorf("session failure series: %d, %v", n, err)
	}
	problems, err := testutil.GatherAndLint(r.Gatherer())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "l2tpd_") {
			t.Errorf("lint: %s: %s", p.Metric, p.Text)
		}
	}
}

func TestNoSnapshotNoGauges(t *testing.T) {
	r := New()
	if n, err := testutil.GatherAndCount(r.Gatherer(), "l2tpd_sessions", "l2tpd_draining"); err != nil || n != 0 {
		t.Errorf("gauges without a snapshot: %d, %v", n, err)
	}
}

func TestOutcomeStrings(t *testing.T) {
	for o, s := range map[RADIUSOutcome]string{RADIUSAccept: "accept", RADIUSReject: "reject", RADIUSTimeout: "timeout", RADIUSError: "error", 9: "unknown"} {
		if o.String() != s {
			t.Errorf("%d: %s", o, o)
		}
	}
}

func BenchmarkSessionFailed(b *testing.B) {
	r := New()
	b.ReportAllocs()
	for b.Loop() {
		r.SessionFailed("auth-failed")
	}
}

func BenchmarkRADIUS(b *testing.B) {
	r := New()
	b.ReportAllocs()
	for b.Loop() {
		r.RADIUS("192.0.2.50:1812", "auth", RADIUSAccept, 3*time.Millisecond)
	}
}
