// Command l2tpd is the L2TP access server daemon.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "l2tpd: under construction")
	os.Exit(1)
}
