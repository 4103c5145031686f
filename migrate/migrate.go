// Package migrate converts xl2tpd (xl2tpd.conf, pppd options,
// chap-secrets, l2tp-secrets) and accel-ppp (accel-ppp.conf) configurations
// into an equivalent l2tpd.toml, with a comment for everything that could
// not be carried over. It is pure: files are passed in as bytes, and the
// files they name are read through a function the caller supplies.
//
// The output always parses with config.Parse: the converter checks its own
// result and reports, in the header, anything l2tpd would still reject.
package migrate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/l2tpd/l2tpd/config"
)

// Source is one input file.
type Source struct {
	Name string // for comments and messages
	Data []byte
}

// MaxInput bounds an input file; configurations are small.
const MaxInput = 16 << 20

// kv is one key of the output: the value already in TOML syntax, and
// where it came from.
type kv struct {
	key, val, from string
}

type section struct {
	header string // "[l2tp]", "[[pool]]"...
	keys   []kv
}

func (s *section) set(key, val, from string) {
	for i := range s.keys {
		if s.keys[i].key == key {
			s.keys[i] = kv{key, val, from}
			return
		}
	}
	s.keys = append(s.keys, kv{key, val, from})
}

func (s *section) has(key string) bool {
	return slices.ContainsFunc(s.keys, func(k kv) bool { return k.key == key })
}

func (s *section) str(key, v, from string)            { s.set(key, tomlString(v), from) }
func (s *section) num(key string, n int, from string) { s.set(key, strconv.Itoa(n), from) }
func (s *section) boolean(key string, b bool, from string) {
	s.set(key, strconv.FormatBool(b), from)
}
func (s *section) list(key string, vs []string, from string) {
	q := make([]string, len(vs))
	for i, v := range vs {
		q[i] = tomlString(v)
	}
	s.set(key, "["+strings.Join(q, ", ")+"]", from)
}

// doc is the configuration being built.
type doc struct {
	tool     string // "xl2tpd" or "accel-ppp"
	inputs   []string
	notes    []string // could not be carried over
	top      section
	l2tp     section
	ppp      section
	pools    []*section
	peers    []*section
	subs     []*section
	lacs     []*section
	trailing []string // commented-out TOML for sections l2tpd does not accept yet
}

func newDoc(tool string) *doc {
	return &doc{tool: tool, l2tp: section{header: "[l2tp]"}, ppp: section{header: "[ppp]"}}
}

func (d *doc) notef(from, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if from != "" {
		msg = from + ": " + msg
	}
	d.notes = append(d.notes, msg)
}

func (d *doc) render() string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# l2tpd configuration converted from %s by `l2tpctl import %s`.\n", d.tool, d.tool)
	fmt.Fprintf(&b, "# Inputs: %s\n", strings.Join(d.inputs, ", "))
	b.WriteString("# Every key is documented in docs/configuration.md (man 5 l2tpd.toml); check the\n")
	b.WriteString("# result with `l2tpd --check-config --config FILE` before using it.\n")
	if len(d.notes) == 0 {
		b.WriteString("#\n# Everything was carried over.\n")
	} else {
		b.WriteString("#\n# Not carried over (review these by hand):\n")
		for _, n := range d.notes {
			writeComment(&b, "  - ", "    ", n)
		}
	}
	writeKeys(&b, d.top.keys)
	for _, s := range []*section{&d.l2tp, &d.ppp} {
		if len(s.keys) > 0 {
			fmt.Fprintf(&b, "\n%s\n", s.header)
			writeKeys(&b, s.keys)
		}
	}
	for _, group := range [][]*section{d.pools, d.peers, d.subs, d.lacs} {
		for _, s := range group {
			fmt.Fprintf(&b, "\n%s\n", s.header)
			writeKeys(&b, s.keys)
		}
	}
	if len(d.trailing) > 0 {
		b.WriteString("\n")
		for _, l := range d.trailing {
			writeComment(&b, "", "", l)
		}
	}
	return b.String()
}

// writeComment writes s as comment lines (s may hold newlines; control
// characters are replaced so a comment cannot end early).
func writeComment(b *bytes.Buffer, first, cont, s string) {
	for i, line := range strings.Split(s, "\n") {
		p := first
		if i > 0 {
			p = cont
		}
		b.WriteString(strings.TrimRight("# "+p+cleanComment(line), " "))
		b.WriteByte('\n')
	}
}

func cleanComment(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 && r != '\t' || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}

func writeKeys(b *bytes.Buffer, keys []kv) {
	for _, k := range keys {
		line := k.key + " = " + k.val
		if k.from != "" {
			line += " # " + cleanComment(k.from)
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
}

// tomlString quotes s as a TOML basic string.
func tomlString(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.Encode(s) // cannot fail for a string
	return strings.TrimSuffix(b.String(), "\n")
}

// check parses the result as l2tpd would; problems become notes at the top
// and the offending output is returned with them.
func (d *doc) finish() (string, error) {
	out := d.render()
	_, err := config.Parse([]byte(out), "imported.toml")
	if err != nil {
		d.notef("", "l2tpd rejects the converted file; fix by hand:\n%v", err)
		return d.render(), fmt.Errorf("the converted configuration does not validate: %w", err)
	}
	return out, nil
}

// seconds renders a number of seconds (as the peers write them) as a
// duration string.
func seconds(v string) (string, bool) {
	f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil || f < 0 || f > 1e6 {
		return "", false
	}
	return fmtDuration(time.Duration(f * float64(time.Second))), true
}

func millis(v string) (string, bool) {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 0 || n > 1e9 {
		return "", false
	}
	return fmtDuration(time.Duration(n) * time.Millisecond), true
}

func fmtDuration(d time.Duration) string {
	switch {
	case d == 0:
		return "0s"
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	case d%time.Second == 0:
		return fmt.Sprintf("%ds", d/time.Second)
	}
	return fmt.Sprintf("%dms", d/time.Millisecond)
}

func intIn(v string, lo, hi int) (int, bool) {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	return n, err == nil && n >= lo && n <= hi
}

// yes reads the boolean spellings of both tools.
func yes(v string) (bool, bool) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "yes", "true", "1", "on":
		return true, true
	case "no", "false", "0", "off":
		return false, true
	}
	return false, false
}

// ipRange normalises "a.b.c.d-e.f.g.h", "a.b.c.d-h" (last octet) and
// single addresses or prefixes to what l2tpd's ranges accept.
func ipRange(s string) (string, netip.Addr, bool) {
	s = strings.TrimSpace(s)
	if p, err := netip.ParsePrefix(s); err == nil && p.Addr().Is4() {
		return p.Masked().String(), p.Masked().Addr(), true
	}
	from, to, isRange := strings.Cut(s, "-")
	a, err := netip.ParseAddr(strings.TrimSpace(from))
	if err != nil || !a.Is4() {
		return "", netip.Addr{}, false
	}
	if !isRange {
		return a.String(), a, true
	}
	to = strings.TrimSpace(to)
	if !strings.Contains(to, ".") {
		n, ok := intIn(to, 0, 255)
		if !ok {
			return "", netip.Addr{}, false
		}
		b4 := a.As4()
		b4[3] = byte(n)
		to = netip.AddrFrom4(b4).String()
	}
	b, err := netip.ParseAddr(to)
	if err != nil || !b.Is4() || a.Compare(b) > 0 {
		return "", netip.Addr{}, false
	}
	if a == b {
		return a.String(), a, true
	}
	return a.String() + "-" + b.String(), a, true
}

// rangeContains reports whether the normalised range r holds a.
func rangeContains(r string, a netip.Addr) bool {
	if p, err := netip.ParsePrefix(r); err == nil {
		return p.Contains(a)
	}
	from, to, ok := strings.Cut(r, "-")
	x, err := netip.ParseAddr(from)
	if err != nil {
		return false
	}
	if !ok {
		return x == a
	}
	y, err := netip.ParseAddr(to)
	return err == nil && x.Compare(a) <= 0 && a.Compare(y) <= 0
}

// fields splits a line into words, honouring "double quotes" as pppd's
// secrets files do.
func fields(line string) []string {
	var out []string
	var cur strings.Builder
	inQ, have := false, false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case inQ && c == '\\' && i+1 < len(line):
			i++
			cur.WriteByte(line[i])
		case c == '"':
			inQ = !inQ
			have = true
		case !inQ && (c == ' ' || c == '\t'):
			if have {
				out = append(out, cur.String())
				cur.Reset()
				have = false
			}
		case !inQ && c == '#':
			i = len(line)
		default:
			cur.WriteByte(c)
			have = true
		}
	}
	if have {
		out = append(out, cur.String())
	}
	return out
}

func lines(data []byte) []string {
	return strings.Split(strings.ReplaceAll(string(data), "\r\n", "\n"), "\n")
}

func at(name string, line int) string { return fmt.Sprintf("%s:%d", name, line) }
