// Command groupmeter samples the CPU and memory of a group of processes
// (by command name) until it is interrupted, one CSV line per sample
// (unix_ns,cpu_ns,rss_bytes,procs; see package benchlab). The lab bench
// runs it inside the VM next to l2tpbench to measure xl2tpd and all its
// pppd processes together.
//
//	groupmeter -names xl2tpd,pppd -interval 250ms -out series.csv
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/l2tpd/l2tpd/bench"
	"github.com/l2tpd/l2tpd/lab/benchlab"
)

func main() {
	names := flag.String("names", "", "comma-separated command names (/proc/PID/comm) of the group")
	interval := flag.Duration("interval", 250*time.Millisecond, "sampling interval")
	out := flag.String("out", "", "CSV file to write (appended to)")
	proc := flag.String("proc", "/proc", "proc file system")
	flag.Parse()
	if *names == "" || *out == "" || *interval <= 0 {
		fmt.Fprintln(os.Stderr, "usage: groupmeter -names a,b -out FILE [-interval 250ms]")
		os.Exit(2)
	}
	if err := run(strings.Split(*names, ","), *interval, *out, *proc); err != nil {
		fmt.Fprintln(os.Stderr, "groupmeter:", err)
		os.Exit(1)
	}
}

func run(names []string, interval time.Duration, out, proc string) error {
	f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	clk := bench.ClockTicks()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var line []byte
	for {
		s, err := benchlab.SampleGroup(proc, names, clk, time.Now())
		if err != nil {
			return err
		}
		line = benchlab.AppendSampleLine(line[:0], s)
		if _, err := f.Write(line); err != nil {
			return fmt.Errorf("writing %s: %w", out, err)
		}
		if ctx.Err() != nil {
			return nil // the sample after the signal was the last
		}
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
	}
}
