package lab

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// L2TPD is one instance of our daemon (cmd/l2tpd, built with GoBuild) for a
// lab script. Write its files on the host into the run's Options.Dir, then
// use the shell the returned L2TPDFiles give.
//
// Every instance gets a private /run/l2tpd (the kernel plane's state
// journal, flock'ed): it runs in its own mount namespace with
// /run/l2tpd-<Name> bind-mounted there, so two daemons can share the VM and
// a restarted instance finds its previous run's journal.
type L2TPD struct {
	Name   string // instance name: subdirectory, log and PID file names
	Bin    string // the l2tpd binary (GoBuild(t, dir, "./cmd/l2tpd"))
	Config string // the TOML configuration
	// LogLevel is passed as --log-level (default "debug").
	LogLevel string
	// Args are more command-line arguments (e.g. --debug-listen).
	Args []string
	// ExitWait is how many seconds Stop and Kill wait for the exit
	// (default exitLimit).
	ExitWait int
}

// L2TPDFiles are the paths Write produced, and the shell to drive them.
type L2TPDFiles struct {
	Name    string
	Bin     string
	Dir     string // the instance's directory
	Conf    string // l2tpd.toml
	Log     string // stderr of every run, appended
	PIDFile string // in the VM's /run
	State   string // the VM directory bind-mounted on /run/l2tpd
	level   string
	args    []string
	wait    int
}

// Write writes the instance's configuration into dir/Name (created).
func (d L2TPD) Write(dir string) (L2TPDFiles, error) {
	if d.Name == "" || strings.ContainsAny(d.Name, "/ \t\n'\"") {
		return L2TPDFiles{}, fmt.Errorf("l2tpd instance: bad name %q", d.Name)
	}
	if d.Bin == "" {
		return L2TPDFiles{}, fmt.Errorf("l2tpd instance %s: no binary", d.Name)
	}
	sub := filepath.Join(dir, d.Name)
	if err := os.MkdirAll(sub, 0o755); err != nil {
		return L2TPDFiles{}, fmt.Errorf("l2tpd instance %s: %w", d.Name, err)
	}
	f := L2TPDFiles{
		Name: d.Name, Bin: d.Bin, Dir: sub,
		Conf:    filepath.Join(sub, "l2tpd.toml"),
		Log:     filepath.Join(sub, "l2tpd.log"),
		PIDFile: "/run/l2tpd-" + d.Name + ".pid",
		State:   "/run/l2tpd-" + d.Name,
		level:   orDefault(d.LogLevel, "debug"),
		args:    d.Args,
		wait:    d.ExitWait,
	}
	if err := os.WriteFile(f.Conf, []byte(d.Config), 0o600); err != nil {
		return L2TPDFiles{}, fmt.Errorf("l2tpd instance %s: %w", d.Name, err)
	}
	return f, nil
}

// Start is the shell that starts the daemon in the background in network
// namespace netns ("" for the root namespace), appending its output to Log
// (a "==== start" line separates runs), and records its PID.
func (f L2TPDFiles) Start(netns string) string {
	prefix := ""
	if netns != "" {
		prefix = "ip netns exec " + shq(netns) + " "
	}
	inner := fmt.Sprintf("mount --bind %s /run/l2tpd && exec %s --config %s --log-level %s",
		shq(f.State), shq(f.Bin), shq(f.Conf), shq(f.level))
	for _, a := range f.args {
		inner += " " + shq(a)
	}
	var s strings.Builder
	fmt.Fprintf(&s, "mkdir -p /run/l2tpd %s\necho \"==== start at ${SECONDS}s\" >> %s\n", shq(f.State), shq(f.Log))
	fmt.Fprintf(&s, "%sunshare -m --propagation private sh -c %s >>%s 2>&1 &\necho $! > %s\n",
		prefix, shq(inner), shq(f.Log), shq(f.PIDFile))
	return s.String()
}

// Stop is the shell that sends SIGTERM (the daemon sends StopCCN to its
// peers) and waits up to exitLimit for it to exit. If it does not, the script
// fails (fail) after a report of where it is stuck: stuck_report, then a
// SIGQUIT so the Go runtime writes every goroutine's stack to the daemon's
// log (GoroutineSummary condenses it).
func (f L2TPDFiles) Stop() string {
	return f.signal("TERM")
}

// Kill is the shell that kills the daemon with SIGKILL (a crash: no
// StopCCN, the kernel reclaims its sockets) and waits up to exitLimit for
// it to exit; if it does not, the script fails after stuck_report.
func (f L2TPDFiles) Kill() string {
	return f.signal("KILL")
}

// exitLimit is how long Stop and Kill wait for the daemon to exit, in
// seconds. The daemon's own shutdown is bounded at 13 s (3 s for sessions
// to end, 5 s for StopCCN acknowledgements, 5 s for the accounting spool);
// the kernel then removes what the process still holds. Under the lab's
// emulated CPU (TCG) that removal is slow: a SIGKILLed LNS with 200 ppp
// units took 10-18 s to exit (each unit's netdev unregistration waits for
// RCU grace periods), more when other VMs share the host's two cores.
const exitLimit = 60

// signal sends sig and waits for the exit, printing how long it took.
func (f L2TPDFiles) signal(sig string) string {
	quit := ""
	if sig != "KILL" {
		quit = "kill -QUIT $_p 2>/dev/null; wait_for 5 sh -c \"! kill -0 $_p 2>/dev/null\"; "
	}
	return fmt.Sprintf(`_p=$(cat %[2]s); _t=$SECONDS; kill -%[1]s $_p
if wait_for %[5]d sh -c "! kill -0 $_p 2>/dev/null"; then echo "l2tpd %[3]s exited $((SECONDS - _t)) s after SIG%[1]s"; else stuck_report $_p %[3]s; %[4]sfail 'l2tpd %[3]s did not exit within %[5]d s of SIG%[1]s'; fi
`, sig, shq(f.PIDFile), f.Name, quit, cmp.Or(f.wait, exitLimit))
}

// WaitLog is the shell that waits up to seconds for the log (all runs) to
// hold at least n lines matching the extended regular expression re; on
// timeout it runs fail with a message (define fail in the script).
func (f L2TPDFiles) WaitLog(seconds, n int, re string) string {
	return fmt.Sprintf("wait_for %d sh -c %s || fail %s\n", seconds,
		shq(fmt.Sprintf("[ $(grep -cE %s %s) -ge %d ]", shq(re), shq(f.Log), n)),
		shq(fmt.Sprintf("%s: fewer than %d log lines match %s", f.Name, n, re)))
}

// CountLog is the shell expression for how many log lines match re.
func (f L2TPDFiles) CountLog(re string) string {
	return fmt.Sprintf("$(grep -cE %s %s)", shq(re), shq(f.Log))
}
