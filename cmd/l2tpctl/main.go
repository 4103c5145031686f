// Command l2tpctl controls a running l2tpd through its management socket
// (show, terminate, reload, drain, shutdown, log levels and tracing) and
// converts xl2tpd and accel-ppp configurations to l2tpd.toml.
//
// Usage: l2tpctl [--socket PATH] [--timeout D] COMMAND [ARGS] (see usage).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/l2tpd/l2tpd/mgmt"
)

const usage = `usage: l2tpctl [--socket PATH] [--timeout DURATION] COMMAND

Observe:
  show sessions [--user U] [--address IP] [--peer NAME|IP] [--tunnel ID]
                [--calling-number N] [--columns a,b,...] [--json]
  show tunnels  [--peer NAME|IP] [--tunnel ID] [--columns a,b,...] [--json]
  show stats    [--json]
  show pools    [--json]
  show peers    [--json]

Act (soft by default: CDN / LCP Terminate-Request and an accounting Stop):
  terminate session ID | user NAME | address IP | calling-number N | tunnel ID [--hard]
  terminate matching [--user U] [--address IP] [--peer P] [--tunnel ID]
                     [--calling-number N] [--tunnels] [--hard]
  terminate all [--tunnels] [--hard]
  reload                     re-read the config (as SIGHUP); established sessions stay
  drain | undrain            stop / resume accepting new tunnels and sessions
  shutdown [--soft]          exit now (StopCCN to every peer), or --soft: drain and
                             exit when the last session has gone
  log level [debug|info|warn|error]
  log trace [user NAME | peer NAME|IP] [--for DURATION] [--off]

Migrate:
  import xl2tpd XL2TPD.CONF [PPP-OPTIONS [CHAP-SECRETS]]
  import accel-ppp ACCEL-PPP.CONF

The socket is ` + mgmt.DefaultSocket + ` unless --socket or $L2TPCTL_SOCKET says otherwise.
`

func main() {
	os.Exit(run(context.Background(), os.Args[1:], newEnv()))
}

// env is everything l2tpctl touches outside itself, replaced in tests.
type env struct {
	stdout, stderr io.Writer
	now            func() time.Time
	getenv         func(string) string
	dial           func(ctx context.Context, path string) (mgmt.Backend, func() error, error)
	readFile       func(string) ([]byte, error)
}

func newEnv() *env {
	return &env{
		stdout: os.Stdout, stderr: os.Stderr, now: time.Now, getenv: os.Getenv,
		dial: func(ctx context.Context, path string) (mgmt.Backend, func() error, error) {
			c, err := mgmt.Dial(ctx, path)
			if err != nil {
				return nil, nil, err
			}
			return c, c.Close, nil
		},
		readFile: os.ReadFile,
	}
}

// usageError is a mistake on the command line: print it and the usage.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Sprintf(format, args...)}
}

// Exit codes.
const (
	exitOK       = 0
	exitFailed   = 1 // the daemon refused or could not be reached
	exitUsage    = 2
	exitNotFound = 3 // nothing matched
)

func run(ctx context.Context, args []string, e *env) int {
	g := flag.NewFlagSet("l2tpctl", flag.ContinueOnError)
	g.SetOutput(io.Discard)
	socket := g.String("socket", "", "management socket")
	timeout := g.Duration("timeout", 30*time.Second, "how long to wait for l2tpd")
	if err := g.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(e.stdout, usage)
			return exitOK
		}
		fmt.Fprintf(e.stderr, "l2tpctl: %v\n\n%s", err, usage)
		return exitUsage
	}
	rest := g.Args()
	if len(rest) == 0 {
		fmt.Fprint(e.stderr, usage)
		return exitUsage
	}
	path := *socket
	if path == "" {
		path = e.getenv("L2TPCTL_SOCKET")
	}
	if path == "" {
		path = mgmt.DefaultSocket
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	c := &cmd{env: e, path: path}
	err := c.dispatch(ctx, rest)
	if c.closeFn != nil {
		c.closeFn()
	}
	var ue *usageError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(e.stderr, "l2tpctl: %v\n\n%s", err, usage)
		return exitUsage
	case mgmt.CodeOf(err) == mgmt.CodeNotFound:
		fmt.Fprintf(e.stderr, "l2tpctl: %v\n", err)
		return exitNotFound
	}
	fmt.Fprintf(e.stderr, "l2tpctl: %v\n", err)
	return exitFailed
}

type cmd struct {
	*env
	path    string
	backend mgmt.Backend
	closeFn func() error
}

func (c *cmd) connect(ctx context.Context) (mgmt.Backend, error) {
	if c.backend == nil {
		b, closeFn, err := c.dial(ctx, c.path)
		if err != nil {
			return nil, err
		}
		c.backend, c.closeFn = b, closeFn
	}
	return c.backend, nil
}

func (c *cmd) dispatch(ctx context.Context, args []string) error {
	switch args[0] {
	case "help", "-h", "--help":
		fmt.Fprint(c.stdout, usage)
		return nil
	case "show":
		if len(args) < 2 {
			return usagef("show what? tunnels, sessions, stats, pools or peers")
		}
		switch args[1] {
		case "sessions", "session":
			return c.showSessions(ctx, args[2:])
		case "tunnels", "tunnel":
			return c.showTunnels(ctx, args[2:])
		case "stats":
			return c.showStats(ctx, args[2:])
		case "pools":
			return c.showPools(ctx, args[2:])
		case "peers":
			return c.showPeers(ctx, args[2:])
		}
		return usagef("show %q: want tunnels, sessions, stats, pools or peers", args[1])
	case "terminate", "kill":
		return c.terminate(ctx, args[1:])
	case "reload":
		return c.reload(ctx, args[1:])
	case "drain", "undrain":
		return c.drain(ctx, args[0] == "drain", args[1:])
	case "shutdown":
		return c.shutdown(ctx, args[1:])
	case "log":
		return c.log(ctx, args[1:])
	case "import":
		return c.importConfig(args[1:])
	}
	return usagef("unknown command %q", args[0])
}

// parseFlags parses flags anywhere among the arguments (flag stops at the
// first positional one) and returns the positional arguments.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	fs.SetOutput(io.Discard)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, usagef("%s: %v", fs.Name(), err)
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func noArgs(what string, pos []string) error {
	if len(pos) > 0 {
		return usagef("%s: unexpected %q", what, strings.Join(pos, " "))
	}
	return nil
}
