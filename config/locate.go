package config

import (
	"strconv"
	"strings"
)

// BurntSushi/toml keeps key positions private, so the lines of keys are
// found here by a small scanner over the source. It runs only on text the
// TOML parser accepted, so it need not diagnose anything; it must only be
// exact for valid TOML and never loop or panic on anything else.
//
// Paths are written as the rest of the package writes them: components
// joined by ".", quoted when not bare, array-of-tables elements and array
// elements as "[i]": "peer[2].match_address[1]", "ppp.profile.vpn.mru".

type locator struct {
	lines map[string]int
}

// line returns the line of path, or of its nearest ancestor that was
// written in the file; 0 if none.
func (l *locator) line(p string) int {
	if l == nil {
		return 0
	}
	for p != "" {
		if n, ok := l.lines[p]; ok {
			return n
		}
		p = parentPath(p)
	}
	return 0
}

// parentPath strips the last component ("a.b" -> "a", "a[1]" -> "a").
func parentPath(p string) string {
	if strings.HasSuffix(p, "]") {
		if i := strings.LastIndexByte(p, '['); i >= 0 {
			return p[:i]
		}
		return ""
	}
	last, inQuote := -1, false
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case c == '\\' && inQuote:
			i++
		case c == '"':
			inQuote = !inQuote
		case c == '.' && !inQuote:
			last = i
		}
	}
	if last < 0 {
		return ""
	}
	return p[:last]
}

func isBare(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// joinPath appends key components to a path.
func joinPath(base string, keys ...string) string {
	for _, k := range keys {
		if !isBare(k) {
			k = tomlString(k)
		}
		if base == "" {
			base = k
		} else {
			base += "." + k
		}
	}
	return base
}

func indexPath(base string, i int) string {
	return base + "[" + strconv.Itoa(i) + "]"
}

func locate(src []byte) *locator {
	sc := &scanner{
		s:       src,
		line:    1,
		out:     make(map[string]int),
		aotNext: make(map[string]int),
		aotCur:  make(map[string]int),
	}
	sc.run()
	return &locator{lines: sc.out}
}

type scanner struct {
	s       []byte
	i       int
	line    int
	out     map[string]int
	aotNext map[string]int // next index of each array of tables
	aotCur  map[string]int // current index of each array of tables
	table   string         // path of the current table
	depth   int
}

func (sc *scanner) at(k int) byte {
	if j := sc.i + k; j >= 0 && j < len(sc.s) {
		return sc.s[j]
	}
	return 0
}

func (sc *scanner) eof() bool { return sc.i >= len(sc.s) }

func (sc *scanner) next() {
	if sc.i < len(sc.s) {
		if sc.s[sc.i] == '\n' {
			sc.line++
		}
		sc.i++
	}
}

// record notes the line of p and of its ancestors not written yet (tables
// created implicitly by a header or a dotted key).
func (sc *scanner) record(p string, line int) {
	for ; p != ""; p = parentPath(p) {
		if _, ok := sc.out[p]; ok {
			return
		}
		sc.out[p] = line
	}
}

// skipBlank skips spaces and tabs, and newlines and comments if nl.
func (sc *scanner) skipBlank(nl bool) {
	for !sc.eof() {
		switch c := sc.at(0); {
		case c == ' ' || c == '\t':
			sc.next()
		case nl && (c == '\n' || c == '\r'):
			sc.next()
		case nl && c == '#':
			sc.skipLine()
		default:
			return
		}
	}
}

// skipLine skips to the start of the next line.
func (sc *scanner) skipLine() {
	for !sc.eof() && sc.at(0) != '\n' {
		sc.next()
	}
	sc.next()
}

func (sc *scanner) run() {
	for {
		sc.skipBlank(true)
		if sc.eof() {
			return
		}
		start := sc.i
		line := sc.line
		if sc.at(0) == '[' {
			aot := sc.at(1) == '['
			sc.next()
			if aot {
				sc.next()
			}
			keys := sc.keyPath()
			p := sc.resolve(keys)
			if aot {
				n := sc.aotNext[p]
				sc.aotNext[p] = n + 1
				sc.aotCur[p] = n
				p = indexPath(p, n)
			}
			sc.record(p, line)
			sc.table = p
			sc.skipLine()
		} else {
			keys := sc.keyPath()
			sc.skipBlank(false)
			if len(keys) > 0 && sc.at(0) == '=' {
				sc.next()
				p := joinPath(sc.table, keys...)
				sc.record(p, line)
				sc.value(p)
			}
			sc.skipBlank(false)
			if sc.at(0) == '#' || sc.at(0) == '\r' || sc.at(0) == '\n' {
				sc.skipLine()
			}
		}
		if sc.i == start {
			sc.next() // not TOML we understand: never stall
		}
	}
}

// resolve turns table-header keys into a path, entering the current
// element of every array of tables on the way.
func (sc *scanner) resolve(keys []string) string {
	p := ""
	for i, k := range keys {
		p = joinPath(p, k)
		if i < len(keys)-1 {
			if n, ok := sc.aotCur[p]; ok {
				p = indexPath(p, n)
			}
		}
	}
	return p
}

// keyPath reads a (dotted) key.
func (sc *scanner) keyPath() []string {
	var keys []string
	for {
		sc.skipBlank(false)
		var k string
		switch c := sc.at(0); {
		case c == '"':
			start := sc.i
			sc.next()
			for !sc.eof() && sc.at(0) != '"' && sc.at(0) != '\n' {
				if sc.at(0) == '\\' {
					sc.next()
				}
				sc.next()
			}
			sc.next()
			raw := string(sc.s[start:min(sc.i, len(sc.s))])
			if u, err := strconv.Unquote(raw); err == nil {
				k = u
			} else {
				k = strings.Trim(raw, `"`)
			}
		case c == '\'':
			sc.next()
			start := sc.i
			for !sc.eof() && sc.at(0) != '\'' && sc.at(0) != '\n' {
				sc.next()
			}
			k = string(sc.s[start:sc.i])
			sc.next()
		case isBareByte(c):
			start := sc.i
			for isBareByte(sc.at(0)) {
				sc.next()
			}
			k = string(sc.s[start:sc.i])
		default:
			return keys
		}
		keys = append(keys, k)
		sc.skipBlank(false)
		if sc.at(0) != '.' {
			return keys
		}
		sc.next()
	}
}

func isBareByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// value skips one value, recording the lines of array elements and
// inline-table keys under p.
func (sc *scanner) value(p string) {
	sc.depth++
	defer func() { sc.depth-- }()
	if sc.depth > 100 {
		sc.i = len(sc.s)
		return
	}
	sc.skipBlank(false)
	switch sc.at(0) {
	case '"':
		if sc.at(1) == '"' && sc.at(2) == '"' {
			sc.multiline('"', true)
			return
		}
		sc.next()
		for !sc.eof() && sc.at(0) != '"' && sc.at(0) != '\n' {
			if sc.at(0) == '\\' {
				sc.next()
			}
			sc.next()
		}
		sc.next()
	case '\'':
		if sc.at(1) == '\'' && sc.at(2) == '\'' {
			sc.multiline('\'', false)
			return
		}
		sc.next()
		for !sc.eof() && sc.at(0) != '\'' && sc.at(0) != '\n' {
			sc.next()
		}
		sc.next()
	case '[':
		sc.next()
		for n := 0; ; n++ {
			sc.skipBlank(true)
			if sc.eof() || sc.at(0) == ']' {
				break
			}
			start := sc.i
			ep := indexPath(p, n)
			sc.record(ep, sc.line)
			sc.value(ep)
			sc.skipBlank(true)
			if sc.at(0) == ',' {
				sc.next()
			} else if sc.i == start {
				break
			}
		}
		sc.next()
	case '{':
		sc.next()
		for {
			sc.skipBlank(true)
			if sc.eof() || sc.at(0) == '}' {
				break
			}
			start := sc.i
			line := sc.line
			keys := sc.keyPath()
			sc.skipBlank(false)
			if len(keys) == 0 || sc.at(0) != '=' {
				break
			}
			sc.next()
			kp := joinPath(p, keys...)
			sc.record(kp, line)
			sc.value(kp)
			sc.skipBlank(true)
			if sc.at(0) == ',' {
				sc.next()
			} else if sc.i == start {
				break
			}
		}
		sc.next()
	default:
		for !sc.eof() {
			switch sc.at(0) {
			case ',', ']', '}', '#', '\r', '\n':
				return
			}
			sc.next()
		}
	}
}

// multiline skips a multi-line string delimited by three q.
func (sc *scanner) multiline(q byte, escapes bool) {
	sc.next()
	sc.next()
	sc.next()
	for !sc.eof() {
		if escapes && sc.at(0) == '\\' {
			sc.next()
			sc.next()
			continue
		}
		if sc.at(0) == q && sc.at(1) == q && sc.at(2) == q {
			sc.next()
			sc.next()
			sc.next()
			// Up to two more quotes belong to the content.
			for k := 0; k < 2 && sc.at(0) == q; k++ {
				sc.next()
			}
			return
		}
		sc.next()
	}
}
