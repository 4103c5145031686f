package control_test

import (
	"fmt"
	"time"

	"github.com/l2tpd/l2tpd/l2tp/control"
)

// Example shows how a tunnel runner drives a Channel: feed it what arrives,
// send what Output returns, and wake up at Deadline.
func Example() {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	lac := control.New(control.Config{}, now)
	lns := control.New(control.Config{}, now)

	// The LAC sends SCCRQ (the body is the encoded AVPs, opaque here).
	lac.Send(now, []byte("SCCRQ"))
	for _, f := range lac.Output(now, nil) {
		bodies, _ := lns.Receive(now, f.Ns, f.Nr, f.Body)
		for _, b := range bodies {
			fmt.Printf("LNS got %s (Ns %d)\n", b, f.Ns)
		}
	}
	// The LNS answers at once: SCCRP carries the ack, no ZLB is needed.
	lns.SetPeerWindow(8) // from the SCCRQ's Receive Window Size AVP
	lns.Send(now, []byte("SCCRP"))
	for _, f := range lns.Output(now, nil) {
		fmt.Printf("LNS sends Ns %d Nr %d %s\n", f.Ns, f.Nr, f.Body)
		lac.Receive(now, f.Ns, f.Nr, f.Body)
	}
	// Nothing more to send: at the deadline the LAC acknowledges with a ZLB.
	now = lac.Deadline()
	for _, f := range lac.Output(now, nil) {
		fmt.Printf("LAC sends Ns %d Nr %d ZLB %v\n", f.Ns, f.Nr, f.IsZLB())
		lns.Receive(now, f.Ns, f.Nr, f.Body)
	}
	fmt.Println("outstanding:", lac.Outstanding(), lns.Outstanding())
	// Output:
	// LNS got SCCRQ (Ns 0)
	// LNS sends Ns 0 Nr 1 SCCRP
	// LAC sends Ns 1 Nr 1 ZLB true
	// outstanding: 0 0
}
