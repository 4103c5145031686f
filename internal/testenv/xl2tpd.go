package testenv

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Log lines of xl2tpd 1.3.18 (Debian 1.3.18-1), as seen on this project's
// hosts with `debug tunnel = yes` and `debug state = yes` (Start sets both).
// Submatches are noted; pass a constant to WaitFor.
const (
	// XL2TPDListening: the daemon is up and its control FIFO is open
	// (it opens the FIFO before logging this). 1: address, 2: port.
	XL2TPDListening = `Listening on IP address (\S+), port (\d+)`
	// XL2TPDMessage: a control message was received. 1: name
	// ("Start-Control-Connection-Request", "Call-Disconnect-Notify", ...; the
	// LAC logs "(null)" for its own dial), 2: message type number, 3: the
	// tunnel ID in the header, 4: the call ID in the header.
	XL2TPDMessage = `control_finish: message type is (\S+)\((\d+)\)\.  Tunnel is (\d+), call is (\d+)\.`
	// XL2TPDTunnelEstablished: SCCRQ/SCCRP/SCCCN done, on both sides.
	// 1: peer address, 2: peer port, 3: our tunnel ID, 4: the peer's.
	XL2TPDTunnelEstablished = `Connection established to (\S+), (\d+)\.  Local: (\d+), Remote: (\d+)`
	// XL2TPDCallEstablished: ICRQ/ICRP/ICCN done, on both sides (the LNS
	// adds the pppd PID). 1: peer address, 2: our call ID, 3: the peer's,
	// 4: serial number.
	XL2TPDCallEstablished = `Call established with (\S+), (?:PID: \d+, )?Local: (\d+), Remote: (\d+), Serial: (\d+)`
	// XL2TPDPPPDExited: the call's pppd exited (on this host always, code 4:
	// no /dev/ppp). 1: the peer's call ID, 2: exit code.
	XL2TPDPPPDExited = `pppd exited for call (\d+) with code (\d+)`
	// XL2TPDNoPPPDevice: pppd's own complaint that the kernel has no PPP.
	XL2TPDNoPPPDevice = `You need to create the /dev/ppp device node`
	// XL2TPDCallClosed: this side closed a call and sent CDN.
	// 1: our call ID, 2: peer address.
	XL2TPDCallClosed = `call_close: Call (\d+) to (\S+) disconnected`
	// XL2TPDCDNReceived: the peer cleared a call (CDN received).
	// 3: tunnel ID, 4: our call ID (as in XL2TPDMessage).
	XL2TPDCDNReceived = `control_finish: message type is Call-Disconnect-Notify\(14\)\.  Tunnel is (\d+), call is (\d+)\.`
	// XL2TPDCallClosedByPeer: the LAC's summary after a CDN.
	// 1: peer address, 2: serial number, 3: result message (often empty).
	XL2TPDCallClosedByPeer = `Connection closed to (\S+), serial (\d+) \(([^)]*)\)`
	// XL2TPDStopCCNReceived: the peer closed the tunnel.
	XL2TPDStopCCNReceived = `control_finish: message type is Stop-Control-Connection-Notification\(4\)`
	// XL2TPDTunnelClosed: a tunnel was closed, by either side.
	// 1: peer address, 2: peer port, 3: reason ("Goodbye!", "No secret on
	// our side", ...).
	XL2TPDTunnelClosed = `[Cc]onnection (?:\d+ )?closed to (\S+), port (\d+) \(([^)]*)\)`
	// XL2TPDDisconnecting: a LAC's tunnel is being closed on request
	// (Disconnect). 1: peer address, 2: our tunnel ID, 3: the peer's.
	XL2TPDDisconnecting = `Disconnecting from (\S+), Local: (\d+), Remote: (\d+)`
	// XL2TPDOutOfOrder: xl2tpd rejected a control message for its Ns. On this
	// host both pppds fail at once, both sides may send a CDN for the same
	// call, and xl2tpd 1.3.18 then loses track of Ns/Nr on that tunnel: later
	// messages (a StopCCN, say) are rejected with this line. Tests must not
	// expect anything from a tunnel after crossing CDNs.
	// 1: tunnel ID, 2: Ns received, 3: Ns expected.
	XL2TPDOutOfOrder = `Received out of order control packet on tunnel (\d+) \(got (\d+), expected (\d+)\)`
	// XL2TPDNoSecret: tunnel authentication failed for want of a secret
	// for the Host Name pair (check Hostname, PeerHostname, Secret).
	XL2TPDNoSecret = `No secret (?:found )?for`
	// XL2TPDSignalled: the daemon is exiting on a signal. 1: signal number.
	XL2TPDSignalled = `death_handler: Fatal signal (\d+) received`
)

// Role is the part an xl2tpd instance plays.
type Role uint8

const (
	// LAC dials out: a [lac] section, calls started with Dial.
	LAC Role = iota + 1
	// LNS accepts: an [lns default] section.
	LNS
)

// String returns "LAC" or "LNS".
func (r Role) String() string {
	switch r {
	case LAC:
		return "LAC"
	case LNS:
		return "LNS"
	}
	return fmt.Sprintf("Role(%d)", uint8(r))
}

// PPPUser is one PPP subscriber (a chap-secrets and pap-secrets line).
type PPPUser struct {
	Name, Password string
}

// XL2TPD describes one xl2tpd instance; Start runs it. xl2tpd 1.3.18 speaks
// L2TPv2 over IPv4 only.
type XL2TPD struct {
	Role       Role
	Netns      *Netns     // where it runs (required)
	ListenAddr netip.Addr // local IPv4 address to bind (required)
	Port       uint16     // UDP port, default 1701 (the LAC dials the LNS on 1701)
	// PeerAddr: for a LAC the LNS to dial (required); for an LNS, when set,
	// the only LAC accepted ("access control" with "lac = ").
	PeerAddr netip.Addr
	// Hostname is our Host Name AVP, default "lac" or "lns"; PeerHostname is
	// the peer's, used to find the tunnel secret, default "*" (any).
	Hostname, PeerHostname string
	Secret                 string // tunnel secret (RFC 2661 5.1.1, 4.3); required with Challenge or Hidden
	Challenge              bool   // "challenge = yes": authenticate the tunnel
	Hidden                 bool   // "hidden bit = yes": hide AVPs (needs Secret)
	NoLengthBit            bool   // "length bit = no" on data messages
	// Users: for an LNS the subscribers its pppd accepts with CHAP; for a
	// LAC, Users[0] is who its pppd authenticates as (default "alice",
	// "wonderland").
	Users   []PPPUser
	LACName string // the [lac NAME] section Dial uses, default "peer"
	// For an LNS: "ip range" and "local ip" (defaults 192.168.250.10-
	// 192.168.250.200 and 192.168.250.1).
	IPRange, LocalIP string
	// More lines for [global], for the [lac]/[lns] section, and for the
	// pppd options file.
	ExtraGlobal, ExtraSection, PPPOptions []string
}

// XL2TPDProc is a running xl2tpd. Its Proc's Log has every line it and its
// pppd print; WaitFor with the XL2TPD* patterns.
type XL2TPDProc struct {
	*Proc
	Config XL2TPD
	Dir    string // holds the files below
	// ConfPath: xl2tpd.conf; SecretsPath: l2tp-secrets (tunnel); OptionsPath:
	// the pppd options file; ChapPath: chap-secrets, bind-mounted over
	// /etc/ppp/chap-secrets and pap-secrets in xl2tpd's private mount
	// namespace; ControlPath: the control FIFO; PIDPath: the pid file.
	ConfPath, SecretsPath, OptionsPath, ChapPath, ControlPath, PIDPath string
}

// withDefaults fills the zero fields and checks the rest.
func (x XL2TPD) withDefaults() (XL2TPD, error) {
	if x.Role != LAC && x.Role != LNS {
		return x, fmt.Errorf("testenv: xl2tpd: Role %v, want LAC or LNS", x.Role)
	}
	if x.Netns == nil {
		return x, fmt.Errorf("testenv: xl2tpd %v: no Netns", x.Role)
	}
	if !x.ListenAddr.Is4() {
		return x, fmt.Errorf("testenv: xl2tpd %v: ListenAddr %v is not IPv4", x.Role, x.ListenAddr)
	}
	if x.PeerAddr.IsValid() && !x.PeerAddr.Is4() {
		return x, fmt.Errorf("testenv: xl2tpd %v: PeerAddr %v is not IPv4", x.Role, x.PeerAddr)
	}
	if x.Role == LAC && !x.PeerAddr.IsValid() {
		return x, fmt.Errorf("testenv: xl2tpd LAC: no PeerAddr (the LNS) to dial")
	}
	if (x.Challenge || x.Hidden) && x.Secret == "" {
		return x, fmt.Errorf("testenv: xl2tpd %v: Challenge or Hidden without a Secret", x.Role)
	}
	if x.Port == 0 {
		x.Port = 1701
	}
	if x.Hostname == "" {
		x.Hostname = strings.ToLower(x.Role.String())
	}
	if x.PeerHostname == "" {
		x.PeerHostname = "*"
	}
	if x.LACName == "" {
		x.LACName = "peer"
	}
	if x.IPRange == "" {
		x.IPRange = "192.168.250.10-192.168.250.200"
	}
	if x.LocalIP == "" {
		x.LocalIP = "192.168.250.1"
	}
	if x.Role == LAC && len(x.Users) == 0 {
		x.Users = []PPPUser{{"alice", "wonderland"}}
	}
	for _, s := range append([]string{x.Hostname, x.PeerHostname, x.Secret, x.LACName}, userFields(x.Users)...) {
		if strings.ContainsAny(s, " \t\n\"#;") {
			return x, fmt.Errorf("testenv: xl2tpd %v: %q contains blanks or quoting characters", x.Role, s)
		}
	}
	return x, nil
}

func userFields(us []PPPUser) []string {
	var f []string
	for _, u := range us {
		f = append(f, u.Name, u.Password)
	}
	return f
}

// files returns the name and content of every file Start writes into dir.
func (x XL2TPD) files(dir string) map[string]string {
	yn := func(b bool) string {
		if b {
			return "yes"
		}
		return "no"
	}
	var c strings.Builder
	fmt.Fprintf(&c, "[global]\nlisten-addr = %s\nport = %d\nauth file = %s\n",
		x.ListenAddr, x.Port, filepath.Join(dir, "l2tp-secrets"))
	fmt.Fprintf(&c, "access control = %s\ndebug tunnel = yes\ndebug state = yes\n",
		yn(x.Role == LNS && x.PeerAddr.IsValid()))
	for _, l := range x.ExtraGlobal {
		c.WriteString(l + "\n")
	}
	var ppp strings.Builder
	switch x.Role {
	case LAC:
		fmt.Fprintf(&c, "\n[lac %s]\nlns = %s\nname = %s\nrequire authentication = no\n",
			x.LACName, x.PeerAddr, x.Users[0].Name)
		// Debian's /etc/ppp/options says "auth": a client must not ask the
		// LNS to authenticate itself.
		fmt.Fprintf(&ppp, "noauth\nname %s\nrefuse-eap\nipcp-accept-local\nipcp-accept-remote\nnodefaultroute\n", x.Users[0].Name)
	case LNS:
		c.WriteString("\n[lns default]\n")
		if x.PeerAddr.IsValid() {
			fmt.Fprintf(&c, "lac = %s\n", x.PeerAddr)
		}
		fmt.Fprintf(&c, "ip range = %s\nlocal ip = %s\nrequire chap = yes\nrefuse pap = yes\nrequire authentication = yes\nname = %s\n",
			x.IPRange, x.LocalIP, x.Hostname)
		ppp.WriteString("refuse-eap\n")
	}
	fmt.Fprintf(&c, "hostname = %s\npppoptfile = %s\nlength bit = %s\nchallenge = %s\nhidden bit = %s\n",
		x.Hostname, filepath.Join(dir, "options.xl2tpd"), yn(!x.NoLengthBit), yn(x.Challenge), yn(x.Hidden))
	for _, l := range x.ExtraSection {
		c.WriteString(l + "\n")
	}
	for _, l := range x.PPPOptions {
		ppp.WriteString(l + "\n")
	}
	var secrets string
	if x.Secret != "" {
		secrets = fmt.Sprintf("%s %s %s\n", x.Hostname, x.PeerHostname, x.Secret)
	}
	var chap strings.Builder
	chap.WriteString("# client server secret addresses\n")
	for _, u := range x.Users {
		fmt.Fprintf(&chap, "%s * %s *\n", u.Name, u.Password)
	}
	return map[string]string{
		"xl2tpd.conf":    c.String(),
		"l2tp-secrets":   secrets,
		"options.xl2tpd": ppp.String(),
		"chap-secrets":   chap.String(),
	}
}

// xl2tpdWrapper runs in xl2tpd's namespace under `ip netns exec`, which
// gives it a private mount namespace: the bind mounts never reach the host.
// Arguments: $1 chap-secrets, $2 xl2tpd binary, $3.. xl2tpd's arguments.
const xl2tpdWrapper = `set -e
mount --bind "$1" /etc/ppp/chap-secrets
mount --bind "$1" /etc/ppp/pap-secrets
bin=$2
shift 2
exec "$bin" "$@"`

// Start writes the configuration into t.TempDir(), runs
// `xl2tpd -D -c CONF -p PIDFILE -C CONTROLFILE` in the namespace and waits
// for it to listen. It is stopped (SIGTERM, then SIGKILL) when the test ends.
func (x XL2TPD) Start(t testing.TB) *XL2TPDProc {
	t.Helper()
	Require(t, "ip", "xl2tpd", "pppd", "sh", "mount")
	x, err := x.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for name, content := range x.files(dir) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatalf("testenv: xl2tpd %v: %v", x.Role, err)
		}
	}
	p := &XL2TPDProc{
		Config:      x,
		Dir:         dir,
		ConfPath:    filepath.Join(dir, "xl2tpd.conf"),
		SecretsPath: filepath.Join(dir, "l2tp-secrets"),
		OptionsPath: filepath.Join(dir, "options.xl2tpd"),
		ChapPath:    filepath.Join(dir, "chap-secrets"),
		ControlPath: filepath.Join(dir, "l2tp-control"),
		PIDPath:     filepath.Join(dir, "xl2tpd.pid"),
	}
	p.Proc = StartProc(t, x.Netns, "sh", "-c", xl2tpdWrapper, "xl2tpd-wrapper",
		p.ChapPath, tool("xl2tpd"), "-D", "-c", p.ConfPath, "-p", p.PIDPath, "-C", p.ControlPath)
	p.Proc.Name = fmt.Sprintf("xl2tpd %v in %s", x.Role, x.Netns.Name)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := p.WaitFor(ctx, XL2TPDListening); err != nil {
		t.Fatalf("testenv: %s did not start: %v\n%s", p.Name, err, p.Log)
	}
	return p
}

// Control writes one command line to xl2tpd's control FIFO ("c NAME" dials,
// "h CALLID" hangs up, "d NAME|TUNNELID" disconnects a tunnel; see
// xl2tpd-control(8)). xl2tpd answers only in its log.
func (p *XL2TPDProc) Control(cmd string) error {
	// O_NONBLOCK: fail at once (ENXIO) if xl2tpd is not reading.
	f, err := os.OpenFile(p.ControlPath, os.O_WRONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return fmt.Errorf("testenv: %s: control %q: %w", p.Name, cmd, err)
	}
	defer f.Close()
	if _, err := f.WriteString(cmd + "\n"); err != nil {
		return fmt.Errorf("testenv: %s: control %q: %w", p.Name, cmd, err)
	}
	return nil
}

// Dial makes a LAC open a tunnel (if none) and place a call through the
// [lac name] section; name "" means Config.LACName.
func (p *XL2TPDProc) Dial(name string) error {
	if p.Config.Role != LAC {
		return errors.New("testenv: Dial on an xl2tpd that is not a LAC")
	}
	if name == "" {
		name = p.Config.LACName
	}
	return p.Control("c " + name)
}

// Hangup clears one call, by our call ID (XL2TPDCallEstablished's Local),
// with a CDN.
func (p *XL2TPDProc) Hangup(callID uint16) error {
	return p.Control(fmt.Sprintf("h %d", callID))
}

// Disconnect closes a LAC's tunnel with a StopCCN; name is the [lac] section
// ("" for Config.LACName) or our tunnel ID in decimal.
func (p *XL2TPDProc) Disconnect(name string) error {
	if name == "" {
		name = p.Config.LACName
	}
	return p.Control("d " + name)
}
