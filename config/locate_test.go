package config

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestLocate(t *testing.T) {
	src := `# comment with = and [brackets]
top = "a # not a comment"   # comment
multi = """
line [x]
key = "fake"
"""
lit = '''
[[peer]]
'''
dotted.key = 1
"quoted.key" = 2

[l2tp]
listen = [
  "127.0.0.1:1701", # first
  # a comment between elements
  "[::1]:1701",
]
inline = { a = 1, b = [ 2,
  3 ] }

[[peer]]
name = "p0"

[[peer]]
name = 'p1'
match_address = ["192.0.2.0/24", "198.51.100.1"]

[peer.sub]
x = 1

[ppp.profile."gold plan"]
mtu = 1400
esc = "quote \" inside"
after = true
`
	got := locate([]byte(src)).lines
	want := map[string]int{
		"top":                           2,
		"multi":                         3,
		"lit":                           7,
		"dotted":                        10,
		"dotted.key":                    10,
		`"quoted.key"`:                  11,
		"l2tp":                          13,
		"l2tp.listen":                   14,
		"l2tp.listen[0]":                15,
		"l2tp.listen[1]":                17,
		"l2tp.inline":                   19,
		"l2tp.inline.a":                 19,
		"l2tp.inline.b":                 19,
		"l2tp.inline.b[0]":              19,
		"l2tp.inline.b[1]":              20,
		"peer":                          22,
		"peer[0]":                       22,
		"peer[0].name":                  23,
		"peer[1]":                       25,
		"peer[1].name":                  26,
		"peer[1].match_address":         27,
		"peer[1].match_address[0]":      27,
		"peer[1].match_address[1]":      27,
		"peer[1].sub":                   29,
		"peer[1].sub.x":                 30,
		"ppp":                           32,
		"ppp.profile":                   32,
		`ppp.profile."gold plan"`:       32,
		`ppp.profile."gold plan".mtu`:   33,
		`ppp.profile."gold plan".esc`:   34,
		`ppp.profile."gold plan".after`: 35,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("locate (-want +got):\n%s", diff)
	}

	l := &locator{lines: want}
	for _, tt := range []struct {
		path string
		line int
	}{
		{"peer[1].match_address[1]", 27},
		{"peer[1].missing", 25},
		{"peer[7].name", 22},
		{`ppp.profile."gold plan".nope`, 32},
		{"nowhere", 0},
	} {
		if got := l.line(tt.path); got != tt.line {
			t.Errorf("line(%q) = %d, want %d", tt.path, got, tt.line)
		}
	}
}

func TestParentPath(t *testing.T) {
	for in, want := range map[string]string{
		"a.b.c":            "a.b",
		"a[3]":             "a",
		"a[3].b":           "a[3]",
		`a."x.y"`:          "a",
		`a."x\"y.z".w`:     `a."x\"y.z"`,
		"a":                "",
		"":                 "",
		`"unterminated.x`:  "",
		"peer[1].addr[12]": "peer[1].addr",
	} {
		if got := parentPath(in); got != want {
			t.Errorf("parentPath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseRange(t *testing.T) {
	a := netip.MustParseAddr
	for _, tt := range []struct {
		in       string
		from, to string
		str      string
		err      bool
	}{
		{in: "192.0.2.0/24", from: "192.0.2.0", to: "192.0.2.255", str: "192.0.2.0/24"},
		{in: "10.0.0.5-10.0.0.9", from: "10.0.0.5", to: "10.0.0.9", str: "10.0.0.5-10.0.0.9"},
		{in: "10.0.0.0 - 10.0.0.255", from: "10.0.0.0", to: "10.0.0.255", str: "10.0.0.0/24"},
		{in: "192.0.2.7", from: "192.0.2.7", to: "192.0.2.7", str: "192.0.2.7"},
		{in: "192.0.2.7/32", from: "192.0.2.7", to: "192.0.2.7", str: "192.0.2.7"},
		{in: "2001:db8::/32", from: "2001:db8::", to: "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", str: "2001:db8::/32"},
		{in: "0.0.0.0/0", from: "0.0.0.0", to: "255.255.255.255", str: "0.0.0.0/0"},
		{in: "::ffff:10.0.0.1", from: "10.0.0.1", to: "10.0.0.1", str: "10.0.0.1"},
		{in: "192.0.2.1/24", err: true},
		{in: "192.0.2.0/33", err: true},
		{in: "10.0.0.9-10.0.0.1", err: true},
		{in: "10.0.0.1-::1", err: true},
		{in: "fe80::1%eth0", err: true},
		{in: "", err: true},
		{in: "-", err: true},
	} {
		r, err := parseRange(tt.in)
		if tt.err {
			if err == nil {
				t.Errorf("parseRange(%q) = %v, want an error", tt.in, r)
			}
			continue
		}
		if err != nil || r.From != a(tt.from) || r.To != a(tt.to) || r.String() != tt.str {
			t.Errorf("parseRange(%q) = %v..%v (%q), %v; want %s..%s (%q)", tt.in, r.From, r.To, r.String(), err, tt.from, tt.to, tt.str)
		}
	}
}

func TestParseHostPort(t *testing.T) {
	for in, want := range map[string]string{
		"203.0.113.1:1701": "203.0.113.1:1701",
		"203.0.113.1":      "203.0.113.1:1701",
		"lns.example.net":  "lns.example.net:1701",
		"[2001:db8::1]:99": "[2001:db8::1]:99",
		"2001:db8::1":      "[2001:db8::1]:1701",
		"[2001:db8::1]":    "[2001:db8::1]:1701",
		"h:0":              "",
		":1701":            "",
		"a b:1701":         "",
	} {
		got, err := parseHostPort(in)
		if want == "" {
			if err == nil {
				t.Errorf("parseHostPort(%q) = %q, want an error", in, got)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("parseHostPort(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}
