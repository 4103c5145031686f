package testenv

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// maxDecodedLogLines bounds how much decoded capture goes into a test log;
// the full decode stays in a file next to the pcap.
const maxDecodedLogLines = 400

// probeEtherType marks the frames Capture sends to learn that dumpcap is
// really capturing (IEEE 802 local experimental EtherType 1).
const probeEtherType = 0x88b5

// Capture is a running dumpcap writing a pcap of one interface.
type Capture struct {
	Path  string // the pcap file
	Dir   string // its directory, kept when the test fails
	proc  *Proc
	t     testing.TB
	probe *prober
}

// Capture starts dumpcap on iface (an Ethernet-like interface such as a
// veth) inside the namespace with a capture filter (BPF syntax, "" for
// everything) and waits until it captures. dumpcap announces itself before
// its socket is live, so readiness is learnt from the capture itself: probe
// frames of EtherType 0x88b5 are sent on iface until dumpcap counts one
// (they are in the pcap; Decode hides them). The
// pcap lives in a directory of its own under os.TempDir(). When the test
// ends, capture stops; if the test failed, the packets are decoded with
// `tshark -V` into a .txt beside the pcap, a summary goes to the test log
// and both files are kept (their paths logged); otherwise the directory is
// removed.
func (ns *Netns) Capture(t testing.TB, iface, filter string) *Capture {
	t.Helper()
	Require(t, "ip", "dumpcap", "tshark")
	dir, err := os.MkdirTemp("", "l2tpd-capture-"+sanitize(t.Name())+"-")
	if err != nil {
		t.Fatalf("testenv: capture: %v", err)
	}
	c := &Capture{Path: filepath.Join(dir, iface+".pcap"), Dir: dir, t: t}
	probe, err := newProber(ns, iface)
	if err != nil {
		t.Fatal(err)
	}
	c.probe = probe
	t.Cleanup(probe.close)
	bpf := fmt.Sprintf("ether proto 0x%04x", probeEtherType)
	if filter != "" {
		bpf = fmt.Sprintf("(%s) or (%s)", filter, bpf)
	}
	// No -q: dumpcap then reports "Packets: N" as it writes, which is how
	// probes are seen. -P: pcap, not pcapng.
	args := []string{"-i", iface, "-w", c.Path, "-P", "-f", bpf}
	// Stopped (and reported) by our own cleanup, registered after
	// StartProc's so that it runs first.
	c.proc = StartProc(t, ns, "dumpcap", args...)
	c.proc.Name = fmt.Sprintf("dumpcap on %s in %s", iface, ns.Name)
	t.Cleanup(c.finish)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.sync(ctx); err != nil {
		t.Fatalf("testenv: %s did not start: %v\n%s", c.proc.Name, err, c.proc.Log)
	}
	return c
}

// sync sends probe frames every 100ms until dumpcap reports a packet count
// written after the first probe. libpcap hands packets over in blocks, in
// order, so everything captured before the probe is then in the file too.
func (c *Capture) sync(ctx context.Context) error {
	from := c.proc.Len()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if err := c.probe.send(); err != nil {
			return err
		}
		wctx, cancel := context.WithCancel(ctx)
		go func() {
			select {
			case <-tick.C:
			case <-wctx.Done():
			}
			cancel()
		}()
		_, err := c.proc.WaitForFrom(wctx, from, `Packets: \d+`)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil || c.proc.Log.closedNow() {
			return err
		}
	}
}

// Stop ends the capture and flushes the pcap; the file can then be read.
// Packets captured before the call are in it (see sync). Calling it more
// than once is harmless.
func (c *Capture) Stop() error {
	select {
	case <-c.proc.Done():
		return nil
	default:
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	serr := c.sync(ctx)
	// dumpcap stops at once on SIGINT (it may sit out SIGTERM).
	if err := c.proc.Signal(syscall.SIGINT); err != nil {
		return err
	}
	if err := c.proc.Wait(ctx); err != nil {
		c.proc.Stop(time.Second)
		return fmt.Errorf("testenv: %s: %w", c.proc.Name, err)
	}
	if serr != nil {
		return fmt.Errorf("testenv: %s: the last packets may be missing: %w", c.proc.Name, serr)
	}
	return nil
}

// Decode stops the capture and returns tshark's reading of it: one line per
// packet, or the full dissection with verbose.
func (c *Capture) Decode(verbose bool) (string, error) {
	if err := c.Stop(); err != nil {
		return "", err
	}
	args := []string{"-n", "-r", c.Path, "-Y", fmt.Sprintf("not eth.type == 0x%04x", probeEtherType)}
	if verbose {
		args = append(args, "-V")
	}
	cmd := exec.Command(tool("tshark"), args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("testenv: tshark -r %s: %w: %s", c.Path, err, stderr.String())
	}
	return string(out), nil
}

func (c *Capture) finish() {
	t := c.t
	if err := c.Stop(); err != nil {
		t.Logf("testenv: capture: %v", err)
	}
	if !t.Failed() {
		os.RemoveAll(c.Dir)
		return
	}
	summary, err := c.Decode(false)
	if err != nil {
		t.Logf("testenv: capture kept at %s; %v", c.Path, err)
		return
	}
	verbose, err := c.Decode(true)
	txt := strings.TrimSuffix(c.Path, ".pcap") + ".txt"
	if err == nil {
		err = os.WriteFile(txt, []byte(verbose), 0o644)
	}
	if err != nil {
		t.Logf("testenv: decoding %s: %v", c.Path, err)
	}
	lines := strings.Split(strings.TrimRight(summary, "\n"), "\n")
	if len(lines) > maxDecodedLogLines {
		lines = append(lines[:maxDecodedLogLines], fmt.Sprintf("... %d more", len(lines)-maxDecodedLogLines))
	}
	t.Logf("testenv: capture kept at %s (decoded: %s):\n%s", c.Path, txt, strings.Join(lines, "\n"))
}

// prober sends probe frames on one interface from a packet socket opened
// inside the namespace.
type prober struct {
	fd    int
	frame []byte
	to    unix.SockaddrLinklayer
}

func newProber(ns *Netns, iface string) (*prober, error) {
	p := &prober{fd: -1}
	err := ns.Do(func() error {
		ifi, err := net.InterfaceByName(iface)
		if err != nil {
			return err
		}
		if len(ifi.HardwareAddr) != 6 {
			return fmt.Errorf("%s is not an Ethernet interface", iface)
		}
		p.fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(probeEtherType)))
		if err != nil {
			return err
		}
		p.to = unix.SockaddrLinklayer{Ifindex: ifi.Index, Protocol: htons(probeEtherType), Halen: 6}
		copy(p.to.Addr[:], ifi.HardwareAddr)
		p.frame = make([]byte, 60)
		copy(p.frame, ifi.HardwareAddr) // to ourselves: nobody else reacts
		copy(p.frame[6:], ifi.HardwareAddr)
		p.frame[12], p.frame[13] = probeEtherType>>8, probeEtherType&0xff
		copy(p.frame[14:], "l2tpd testenv capture probe")
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("testenv: capture probe on %s in %s: %w", iface, ns.Name, err)
	}
	return p, nil
}

func (p *prober) send() error {
	if err := unix.Sendto(p.fd, p.frame, 0, &p.to); err != nil {
		return fmt.Errorf("testenv: send capture probe: %w", err)
	}
	return nil
}

func (p *prober) close() {
	if p.fd >= 0 {
		unix.Close(p.fd)
		p.fd = -1
	}
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
