package testenv

import (
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"
)

// TestDropInbound sends 1,000 datagrams over a veth to a port with 20% loss
// and 200 to another port, and checks the share lost, that the other port
// lost nothing, and that nft's counter accounts for every missing datagram.
func TestDropInbound(t *testing.T) {
	Require(t, "ip", "nft")
	t.Parallel()
	a, b := NewNetns(t, "lossa"), NewNetns(t, "lossb")
	ConnectVeth(t, a, b, netip.MustParsePrefix("10.203.0.1/24"), netip.MustParsePrefix("10.203.0.2/24"))
	loss := b.DropInbound(t, "udp", 1701, 20)

	lossy := countIn(t, listenIn(t, b, "10.203.0.2:1701"))
	clean := countIn(t, listenIn(t, b, "10.203.0.2:1702"))
	const nLossy, nClean = 1000, 200

	var snd *net.UDPConn
	if err := a.Do(func() (err error) {
		snd, err = net.ListenUDP("udp4", nil)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer snd.Close()
	send := func(n int, to string) {
		t.Helper()
		for i := range n {
			if _, err := snd.WriteToUDPAddrPort([]byte{byte(i)}, netip.MustParseAddrPort(to)); err != nil {
				t.Fatalf("send %d to %s: %v", i, to, err)
			}
		}
	}
	send(nLossy, "10.203.0.2:1701")
	send(nClean, "10.203.0.2:1702")

	// Every datagram is either received or counted by the rule as dropped:
	// wait (bounded) until the two add up.
	var dropped uint64
	recvLossy := lossy.waitUntil(t, func(n int) bool {
		var err error
		if dropped, err = loss.Dropped(); err != nil {
			t.Fatal(err)
		}
		return uint64(n)+dropped >= nLossy
	})
	recvClean := clean.waitUntil(t, func(n int) bool { return n >= nClean })
	t.Logf("port 1701: received %d, dropped %d of %d; port 1702: received %d of %d",
		recvLossy, dropped, nLossy, recvClean, nClean)
	if recvClean != nClean {
		t.Errorf("port 1702 (no loss rule) received %d of %d", recvClean, nClean)
	}
	if uint64(recvLossy)+dropped != nLossy {
		t.Errorf("received %d + dropped %d != sent %d", recvLossy, dropped, nLossy)
	}
	if lost := nLossy - recvLossy; lost < 100 || lost > 300 {
		t.Errorf("lost %d of %d at 20%%, want 100..300", lost, nLossy)
	}

	// After Remove nothing is dropped.
	if err := loss.Remove(); err != nil {
		t.Fatal(err)
	}
	send(100, "10.203.0.2:1701")
	if n := lossy.waitUntil(t, func(n int) bool { return n >= recvLossy+100 }); n != recvLossy+100 {
		t.Errorf("after Remove received %d of 100", n-recvLossy)
	}
}

func listenIn(t *testing.T, ns *Netns, addr string) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	if err := ns.Do(func() (err error) {
		c, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr)))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := c.SetReadBuffer(4 << 20); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// counter counts the datagrams a socket receives, in a goroutine started
// before anything is sent.
type counter struct {
	arrived chan struct{} // one value per datagram
	n       int           // owned by waitUntil's caller
}

func countIn(t *testing.T, c *net.UDPConn) *counter {
	k := &counter{arrived: make(chan struct{}, 1<<16)}
	go func() {
		buf := make([]byte, 64)
		for {
			if _, _, err := c.ReadFromUDPAddrPort(buf); err != nil {
				return // closed at cleanup
			}
			k.arrived <- struct{}{}
		}
	}()
	return k
}

// waitUntil consumes arrivals until done(count) holds, checking it on every
// burst of arrivals and every 50ms (done may depend on state outside the socket, such
// as nft's counter), and fails the test after 10s.
func (k *counter) waitUntil(t *testing.T, done func(n int) bool) int {
	t.Helper()
	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !done(k.n) {
		select {
		case <-k.arrived:
			k.n++
			for drained := false; !drained; { // check done once per burst
				select {
				case <-k.arrived:
					k.n++
				default:
					drained = true
				}
			}
		case <-tick.C:
		case <-deadline:
			t.Fatalf("condition not reached after 10s with %d datagrams", k.n)
		}
	}
	return k.n
}

func TestParseNftCounter(t *testing.T) {
	out := `{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}, {"table": {"family": "inet", "name": "t", "handle": 1}}, {"chain": {"family": "inet", "table": "t", "name": "in", "handle": 1, "type": "filter", "hook": "input", "prio": 0, "policy": "accept"}}, {"rule": {"family": "inet", "table": "t", "chain": "in", "handle": 2, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "udp", "field": "dport"}}, "right": 1701}}, {"match": {"op": "<", "left": {"numgen": {"mode": "random", "mod": 100, "offset": 0}}, "right": 20}}, {"counter": {"packets": 203, "bytes": 6090}}, {"drop": null}]}}]}`
	n, err := parseNftCounter(out)
	if err != nil || n != 203 {
		t.Errorf("parseNftCounter = %d, %v; want 203, nil", n, err)
	}
	if _, err := parseNftCounter(`{"nftables": [{"table": {"family": "inet", "name": "t"}}]}`); !errors.Is(err, errNoMatch) {
		t.Errorf("no counter: err = %v, want errNoMatch", err)
	}
	if _, err := parseNftCounter(`{"nftables": [`); err == nil {
		t.Error("truncated JSON: no error")
	}
}
