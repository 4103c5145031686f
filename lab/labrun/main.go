// Command labrun boots the lab VM and runs a script in it (see package lab).
//
//	labrun [-dir DIR] [-timeout 5m] SCRIPT   run SCRIPT (a file) as root
//	labrun -shell                            an interactive shell on the console
//
// It exits with the script's status, or 125 when the VM failed.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"time"

	"github.com/l2tpd/l2tpd/lab"
)

func main() {
	dir := flag.String("dir", "", "host directory shared read-write as $LAB_DIR (default: a new temporary directory, kept)")
	timeout := flag.Duration("timeout", 5*time.Minute, "limit for the whole run")
	shell := flag.Bool("shell", false, "run an interactive shell (line mode) instead of a script")
	mem := flag.Int("m", 1536, "VM memory in MiB")
	cpus := flag.Int("smp", 2, "vCPUs")
	flag.Parse()
	if err := lab.Available(); err != nil {
		fmt.Fprintln(os.Stderr, "labrun:", err)
		os.Exit(125)
	}
	var script string
	opts := lab.Options{Dir: *dir, Timeout: *timeout, MemoryMiB: *mem, CPUs: *cpus,
		Log: func(l string) { fmt.Println(l) }}
	switch {
	case *shell:
		script = "echo 'lab shell: exit to power off'; PS1='lab# ' exec bash --norc -i 2>&1\n"
		opts.Stdin = os.Stdin
		if *timeout == 5*time.Minute {
			opts.Timeout = 24 * time.Hour
		}
	case flag.NArg() == 1:
		b, err := os.ReadFile(flag.Arg(0))
		if err != nil {
			fmt.Fprintln(os.Stderr, "labrun:", err)
			os.Exit(125)
		}
		script = string(b)
	default:
		fmt.Fprintln(os.Stderr, "usage: labrun [-dir DIR] [-timeout D] SCRIPT | labrun -shell")
		os.Exit(2)
	}
	if opts.Dir == "" {
		d, err := os.MkdirTemp("", "lab-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "labrun:", err)
			os.Exit(125)
		}
		opts.Dir = d
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	res, err := lab.Exec(ctx, opts, script)
	fmt.Fprintf(os.Stderr, "labrun: dir %s, boot %v, total %v\n", opts.Dir,
		res.Boot.Round(time.Millisecond), res.Total.Round(time.Millisecond))
	if err != nil {
		fmt.Fprintln(os.Stderr, "labrun:", err)
		os.Exit(125)
	}
	os.Exit(res.ExitCode)
}
