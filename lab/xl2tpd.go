package lab

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Helpers that write configuration for real peers (xl2tpd 1.3 + pppd 2.4,
// Debian's xl2tpd and ppp packages) to run inside the lab VM. Write them on
// the host into the run's Options.Dir (visible at the same path in the VM),
// then start them from the script with the commands the returned XL2TPDFiles
// give. A typical script (see TestXL2TPDSmoke):
//
//	lns, _ := lab.XL2TPD{Name: "lns", ListenAddr: "10.1.0.1", LNS: &lab.XL2TPDLNS{...}}.Write(dir)
//	lac, _ := lab.XL2TPD{Name: "lac", LAC: &lab.XL2TPDLAC{LNS: "10.1.0.1", ...}}.Write(dir)
//	script := lab.ShellLib + lab.NetnsPair("lns", "10.1.0.1", "lac", "10.1.0.2") +
//		lab.Capture("lns", "veth0", dir+"/lns.pcap") +
//		lns.Start("lns") + lac.Start("lac") + lac.Dial("lab") +
//		`wait_for 60 sh -c 'ip -n lac -4 addr show dev ppp0 | grep -q inet' || exit 1` + "\n" +
//		"ip netns exec lac busybox ping -c 3 10.99.0.1\n" + lab.StopCaptures
//	res, err := lab.Run(t, lab.Options{Dir: dir}, script)

// XL2TPD is one xl2tpd instance: an LNS (LNS set), a LAC (LAC set) or both.
type XL2TPD struct {
	// Name names the instance's subdirectory of the directory passed to Write.
	Name string
	// ListenAddr is "listen-addr" (default: all addresses).
	ListenAddr string
	// Port is the UDP port (default 1701).
	Port int
	// TunnelSecret, when set, turns on tunnel authentication (RFC 2661
	// 4.4.3: "challenge = yes" and an auth file with "* * secret").
	TunnelSecret string
	// Hidden sets "hidden bit = yes" (AVP hiding; needs TunnelSecret).
	Hidden bool
	// Debug turns on xl2tpd's avp/network/state/tunnel debugging and pppd's
	// "debug" (pppd logs go to Files.PPPLog).
	Debug bool
	LNS   *XL2TPDLNS
	LAC   *XL2TPDLAC
}

// XL2TPDLNS is the "[lns default]" section and its pppd options.
type XL2TPDLNS struct {
	IPRange string // "ip range", e.g. "10.99.0.100-10.99.0.199"
	LocalIP string // "local ip", e.g. "10.99.0.1"
	// Hostname is sent in the Host Name AVP (default "lns").
	Hostname string
	// Auth is "chap" (default), "pap" or "none".
	Auth string
	// Users are the subscribers pppd accepts (written to the instance's
	// chap-secrets or pap-secrets, installed into /etc/ppp by Start).
	Users []PPPUser
	// PPPOptions are extra pppd options, one per entry ("mtu 1400").
	PPPOptions []string
}

// XL2TPDLAC is one "[lac NAME]" section and its pppd options.
type XL2TPDLAC struct {
	Name string // section name, the name to Dial (default "lab")
	LNS  string // the LNS's address
	// Hostname is sent in the Host Name AVP (default "lac").
	Hostname string
	// User and Password are the PPP credentials (pppd "name" and "password").
	User, Password string
	// Autodial dials at start ("autodial = yes") instead of waiting for Dial.
	Autodial bool
	// PPPOptions are extra pppd options, one per entry.
	PPPOptions []string
}

// PPPUser is one line of chap-secrets/pap-secrets.
type PPPUser struct {
	Name, Password string
	// IP is the address to give this user ("*": any, the default).
	IP string
}

// XL2TPDFiles are the paths Write produced, and the shell to drive them.
type XL2TPDFiles struct {
	Dir         string // the instance's directory
	Conf        string // xl2tpd.conf
	Secrets     string // l2tp-secrets (tunnel authentication), "" if none
	PPPOptions  string // pppd options file
	PPPSecrets  string // chap-secrets or pap-secrets to install, "" if none
	PPPSecretTo string // where Start installs PPPSecrets (/etc/ppp/...)
	PIDFile     string // in the VM's /run
	ControlFile string // xl2tpd's control FIFO, in the VM's /run
	Log         string // xl2tpd's stdout/stderr (-D)
	PPPLog      string // pppd's log file
}

// Write writes the instance's files into dir/Name (created). dir must be
// the run's Options.Dir (or another path the VM sees); the control FIFO and
// PID file go to the VM's /run, as FIFOs do not work over 9p.
func (x XL2TPD) Write(dir string) (XL2TPDFiles, error) {
	if x.Name == "" || strings.ContainsAny(x.Name, "/ \t\n") {
		return XL2TPDFiles{}, fmt.Errorf("xl2tpd config: bad instance name %q", x.Name)
	}
	if x.LNS == nil && x.LAC == nil {
		return XL2TPDFiles{}, fmt.Errorf("xl2tpd config %s: neither LNS nor LAC set", x.Name)
	}
	d := filepath.Join(dir, x.Name)
	if err := os.MkdirAll(d, 0o755); err != nil {
		return XL2TPDFiles{}, fmt.Errorf("xl2tpd config %s: %w", x.Name, err)
	}
	f := XL2TPDFiles{
		Dir:        d,
		Conf:       filepath.Join(d, "xl2tpd.conf"),
		PPPOptions: filepath.Join(d, "options.pppd"),
		// FIFOs do not work across 9p: keep these on the VM's /run.
		PIDFile:     "/run/xl2tpd-" + x.Name + ".pid",
		ControlFile: "/run/xl2tpd-" + x.Name + ".control",
		Log:         filepath.Join(d, "xl2tpd.log"),
		PPPLog:      filepath.Join(d, "pppd.log"),
	}
	yes := func(b bool) string {
		if b {
			return "yes"
		}
		return "no"
	}
	var c strings.Builder
	c.WriteString("; written by github.com/l2tpd/l2tpd/lab\n[global]\n")
	if x.ListenAddr != "" {
		fmt.Fprintf(&c, "listen-addr = %s\n", x.ListenAddr)
	}
	port := x.Port
	if port == 0 {
		port = 1701
	}
	fmt.Fprintf(&c, "port = %d\naccess control = no\n", port)
	if x.TunnelSecret != "" {
		f.Secrets = filepath.Join(d, "l2tp-secrets")
		if err := os.WriteFile(f.Secrets, []byte("* * "+x.TunnelSecret+"\n"), 0o600); err != nil {
			return XL2TPDFiles{}, fmt.Errorf("xl2tpd config %s: %w", x.Name, err)
		}
		fmt.Fprintf(&c, "auth file = %s\n", f.Secrets)
	}
	if x.Debug {
		c.WriteString("debug avp = yes\ndebug network = yes\ndebug state = yes\ndebug tunnel = yes\n")
	}
	common := func() {
		fmt.Fprintf(&c, "pppoptfile = %s\nlength bit = yes\nchallenge = %s\nhidden bit = %s\n",
			f.PPPOptions, yes(x.TunnelSecret != ""), yes(x.Hidden))
	}
	var ppp []string
	if x.Debug {
		ppp = append(ppp, "debug")
	}
	ppp = append(ppp, "logfile "+f.PPPLog, "noccp", "nodefaultroute", "noproxyarp",
		"lcp-echo-interval 10", "lcp-echo-failure 6")
	if l := x.LNS; l != nil {
		c.WriteString("\n[lns default]\n")
		if l.IPRange != "" {
			fmt.Fprintf(&c, "ip range = %s\n", l.IPRange)
		}
		if l.LocalIP != "" {
			fmt.Fprintf(&c, "local ip = %s\n", l.LocalIP)
		}
		fmt.Fprintf(&c, "hostname = %s\n", orDefault(l.Hostname, "lns"))
		var secretsFile string
		switch orDefault(l.Auth, "chap") {
		case "chap":
			c.WriteString("require chap = yes\nrefuse pap = yes\nrequire authentication = yes\n")
			secretsFile = "chap-secrets"
		case "pap":
			c.WriteString("require pap = yes\nrefuse chap = yes\nrequire authentication = yes\n")
			secretsFile = "pap-secrets"
		case "none":
			c.WriteString("require authentication = no\n")
			ppp = append(ppp, "noauth")
		default:
			return XL2TPDFiles{}, fmt.Errorf("xl2tpd config %s: LNS auth %q: want chap, pap or none", x.Name, l.Auth)
		}
		common()
		if secretsFile != "" && len(l.Users) > 0 {
			var s strings.Builder
			for _, u := range l.Users {
				if strings.ContainsAny(u.Name+u.Password, " \t\n\"") {
					return XL2TPDFiles{}, fmt.Errorf("xl2tpd config %s: user %q: white space or quotes in name or password", x.Name, u.Name)
				}
				fmt.Fprintf(&s, "%s * %s %s\n", u.Name, u.Password, orDefault(u.IP, "*"))
			}
			f.PPPSecrets = filepath.Join(d, secretsFile)
			f.PPPSecretTo = "/etc/ppp/" + secretsFile
			if err := os.WriteFile(f.PPPSecrets, []byte(s.String()), 0o600); err != nil {
				return XL2TPDFiles{}, fmt.Errorf("xl2tpd config %s: %w", x.Name, err)
			}
		}
		ppp = append(ppp, l.PPPOptions...)
	}
	if l := x.LAC; l != nil {
		fmt.Fprintf(&c, "\n[lac %s]\nlns = %s\nhostname = %s\nredial = no\nautodial = %s\n",
			orDefault(l.Name, "lab"), l.LNS, orDefault(l.Hostname, "lac"), yes(l.Autodial))
		common()
		// Debian's /etc/ppp/options has "auth": a client must not demand
		// that the LNS authenticate itself.
		ppp = append(ppp, "noauth", "noipdefault", "ipcp-accept-local", "ipcp-accept-remote")
		if l.User != "" {
			if strings.ContainsAny(l.User+l.Password, " \t\n\"") {
				return XL2TPDFiles{}, fmt.Errorf("xl2tpd config %s: LAC user %q: white space or quotes", x.Name, l.User)
			}
			ppp = append(ppp, "name "+l.User, "password "+l.Password)
		}
		ppp = append(ppp, l.PPPOptions...)
	}
	if err := os.WriteFile(f.PPPOptions, []byte(strings.Join(ppp, "\n")+"\n"), 0o600); err != nil {
		return XL2TPDFiles{}, fmt.Errorf("xl2tpd config %s: %w", x.Name, err)
	}
	if err := os.WriteFile(f.Conf, []byte(c.String()), 0o644); err != nil {
		return XL2TPDFiles{}, fmt.Errorf("xl2tpd config %s: %w", x.Name, err)
	}
	return f, nil
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// Start is the shell (for a lab script) that installs the instance's PPP
// secrets into the VM's /etc/ppp and starts xl2tpd in the background in
// network namespace netns ("" for the root namespace), then waits (up to
// 20 s) for its control FIFO; the script exits 1 if it does not appear.
func (f XL2TPDFiles) Start(netns string) string {
	var s strings.Builder
	if f.PPPSecrets != "" {
		fmt.Fprintf(&s, "cat %s >> %s && chmod 600 %s\n", shq(f.PPPSecrets), f.PPPSecretTo, f.PPPSecretTo)
	}
	prefix := ""
	if netns != "" {
		prefix = "ip netns exec " + shq(netns) + " "
	}
	fmt.Fprintf(&s, "rm -f %s\n%sxl2tpd -D -c %s -p %s -C %s >%s 2>&1 &\n",
		shq(f.ControlFile), prefix, shq(f.Conf), shq(f.PIDFile), shq(f.ControlFile), shq(f.Log))
	fmt.Fprintf(&s, "wait_for 20 test -p %s || { echo 'xl2tpd %s did not start'; cat %s; exit 1; }\n",
		shq(f.ControlFile), filepath.Base(f.Dir), shq(f.Log))
	return s.String()
}

// Dial is the shell that asks a LAC instance to dial its "[lac NAME]".
func (f XL2TPDFiles) Dial(lac string) string {
	return fmt.Sprintf("echo %s > %s\n", shq("c "+orDefault(lac, "lab")), shq(f.ControlFile))
}

// shq quotes s for a POSIX shell.
func shq(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// ShellLib is bash to put at the top of a lab script. It defines:
//
//	wait_for SECONDS CMD...   run CMD every 0.2 s until it succeeds; fail
//	                          (return 1, with a message) after SECONDS
//	dump_logs FILE...         print files under a header, for failure output
//	stuck_report PID NAME     where a process that should have exited is:
//	                          its threads' states and kernel wait channels,
//	                          the kernel stacks of blocked tasks (sysrq w)
const ShellLib = `
stuck_report() {
	local p=$1 name=$2 t
	echo "----- $name (pid $p) is still there: $(awk '/^State/{print $2, $3}' /proc/$p/status 2>/dev/null)"
	echo "threads by state and kernel wait channel:"
	for t in /proc/$p/task/*; do
		echo "$(awk '/^State/{print $2}' $t/status 2>/dev/null) $(cat $t/wchan 2>/dev/null)"
	done | sort | uniq -c
	for t in /proc/$p/task/*; do
		if [ "$(awk '/^State/{print $2}' $t/status 2>/dev/null)" = D ]; then
			echo "kernel stack of thread ${t##*/} (uninterruptible):"
			cat $t/stack 2>/dev/null
			break
		fi
	done
	# Only in the lab VM: the host's kernel log is not the script's.
	if grep -q lab.nonce= /proc/cmdline 2>/dev/null; then
		echo w > /proc/sysrq-trigger 2>/dev/null
		echo "kernel log (last 40 lines, blocked tasks from sysrq w):"
		dmesg 2>/dev/null | tail -40
	fi
}
wait_for() {
	local limit=$1; shift
	local end=$((SECONDS + limit))
	until "$@"; do
		if [ $SECONDS -ge $end ]; then
			echo "wait_for: timed out after ${limit}s: $*" >&2
			return 1
		fi
		sleep 0.2
	done
}
dump_logs() {
	local f
	for f in "$@"; do
		echo "----- $f"
		cat "$f" 2>&1
	done
}
`

// NetnsPair is the shell that creates two network namespaces joined by a
// veth pair: nsA with address addrA/24 on "veth0" and nsB with addrB/24 on
// "veth0", both up, with lo up.
func NetnsPair(nsA, addrA, nsB, addrB string) string {
	return fmt.Sprintf(`ip netns add %[1]s
ip netns add %[3]s
ip link add veth0 netns %[1]s type veth peer name veth0 netns %[3]s
ip -n %[1]s link set lo up
ip -n %[3]s link set lo up
ip -n %[1]s addr add %[2]s/24 dev veth0
ip -n %[3]s addr add %[4]s/24 dev veth0
ip -n %[1]s link set veth0 up
ip -n %[3]s link set veth0 up
`, shq(nsA), addrA, shq(nsB), addrB)
}

// Capture is the shell that starts dumpcap (Debian wireshark-common, which
// tshark pulls in) in the background on iface in netns ("" for the root
// namespace), writing pcap to file (put it under $LAB_DIR to read it on the
// host after the run), and waits up to 30 s for the capture to start.
// StopCaptures ends all of them and flushes the files.
func Capture(netns, iface, file string) string {
	prefix := ""
	if netns != "" {
		prefix = "ip netns exec " + shq(netns) + " "
	}
	return fmt.Sprintf("%sdumpcap -q -i %s -P -w %s >%s.log 2>&1 &\necho $! >> /run/lab-captures\n"+
		"wait_for 30 test -s %s || { echo 'dumpcap on %s did not start'; cat %s.log; exit 1; }\n",
		prefix, shq(iface), shq(file), shq(file), shq(file), iface, shq(file))
}

// StopCaptures is the shell that stops every capture started with Capture
// and waits for them to exit.
const StopCaptures = `if [ -f /run/lab-captures ]; then
	for p in $(cat /run/lab-captures); do kill -INT $p 2>/dev/null; done
	for p in $(cat /run/lab-captures); do while kill -0 $p 2>/dev/null; do sleep 0.1; done; done
	rm -f /run/lab-captures
fi
`

// Hangup is the shell that asks a LAC instance to disconnect its
// "[lac NAME]" (xl2tpd's "d" command: pppd is stopped, the call and the
// tunnel are cleared).
func (f XL2TPDFiles) Hangup(lac string) string {
	return fmt.Sprintf("echo %s > %s\n", shq("d "+orDefault(lac, "lab")), shq(f.ControlFile))
}
