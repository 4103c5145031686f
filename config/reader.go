package config

import (
	"bytes"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// reader walks the decoded TOML tree against the schema, collecting every
// problem instead of stopping at the first.
type reader struct {
	file     string
	loc      *locator
	readFile func(string) ([]byte, error)
	errs     []*Error
}

func (r *reader) errf(path, format string, args ...any) {
	r.errs = append(r.errs, &Error{File: r.file, Line: r.loc.line(path), Key: path, Msg: fmt.Sprintf(format, args...)})
}

// table is one TOML table being read; it remembers which keys were used so
// that the rest can be reported as unknown.
type table struct {
	r    *reader
	path string
	m    map[string]any
	seen map[string]bool
}

func (r *reader) table(path string, m map[string]any) *table {
	return &table{r: r, path: path, m: m, seen: make(map[string]bool)}
}

func (t *table) key(k string) string { return joinPath(t.path, k) }

func (t *table) has(k string) bool {
	_, ok := t.m[k]
	return ok
}

func (t *table) get(k string) (any, bool) {
	v, ok := t.m[k]
	if ok {
		t.seen[k] = true
	}
	return v, ok
}

func (t *table) errf(k, format string, args ...any) {
	t.r.errf(t.key(k), format, args...)
}

// where names the table for messages.
func (t *table) where() string {
	if t.path == "" {
		return "the top level"
	}
	return "[" + t.path + "]"
}

func typeName(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case []any:
		return "an array"
	case map[string]any:
		return "a table"
	case []map[string]any:
		return "an array of tables"
	}
	return "a date/time"
}

func describe(v any) string {
	switch x := v.(type) {
	case string:
		return "the string " + tomlString(x)
	case int64, float64, bool:
		return fmt.Sprintf("%s (%v)", typeName(v), x)
	}
	return typeName(v)
}

func (t *table) str(k string, dst *string) bool {
	v, ok := t.get(k)
	if !ok {
		return false
	}
	s, ok := v.(string)
	if !ok {
		t.errf(k, "want a string, got %s", describe(v))
		return false
	}
	*dst = s
	return true
}

func (t *table) boolean(k string, dst *bool) bool {
	v, ok := t.get(k)
	if !ok {
		return false
	}
	b, ok := v.(bool)
	if !ok {
		t.errf(k, "want true or false, got %s", describe(v))
		return false
	}
	*dst = b
	return true
}

func (t *table) integer(k string, dst *int, lo, hi int) bool {
	v, ok := t.get(k)
	if !ok {
		return false
	}
	n, ok := v.(int64)
	if !ok {
		t.errf(k, "want an integer in %d..%d, got %s", lo, hi, describe(v))
		return false
	}
	if n < int64(lo) || n > int64(hi) {
		t.errf(k, "%d is out of range; valid: %d..%d", n, lo, hi)
		return false
	}
	*dst = int(n)
	return true
}

func (t *table) duration(k string, dst *time.Duration, lo, hi time.Duration) bool {
	v, ok := t.get(k)
	if !ok {
		return false
	}
	s, ok := v.(string)
	if !ok {
		if n, isInt := v.(int64); isInt {
			t.errf(k, "write durations as strings with a unit, like \"%ds\" or \"%dms\"; got %s", n, n, describe(v))
		} else {
			t.errf(k, "want a duration string with a unit, like \"60s\" or \"500ms\"; got %s", describe(v))
		}
		return false
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		t.errf(k, "%s is not a duration; write a number with a unit, like \"60s\" or \"500ms\"", tomlString(s))
		return false
	}
	if d < lo || d > hi {
		t.errf(k, "%s is out of range; valid: %s..%s", tomlString(s), formatDuration(lo), formatDuration(hi))
		return false
	}
	*dst = d
	return true
}

// list reads an array of strings; it returns ok=false when absent or
// wrong. Elements of the wrong type are reported and dropped.
func (t *table) list(k string) ([]string, bool) {
	v, ok := t.get(k)
	if !ok {
		return nil, false
	}
	arr, ok := v.([]any)
	if !ok {
		if s, isStr := v.(string); isStr {
			t.errf(k, "want an array of strings, like [%s]; got %s", tomlString(s), describe(v))
		} else {
			t.errf(k, "want an array of strings, got %s", describe(v))
		}
		return nil, false
	}
	out := make([]string, 0, len(arr))
	good := true
	for i, e := range arr {
		s, ok := e.(string)
		if !ok {
			t.r.errf(indexPath(t.key(k), i), "want a string, got %s", describe(e))
			good = false
			continue
		}
		out = append(out, s)
	}
	return out, good
}

func enumField[T ~uint8](t *table, k string, dst *T, names []string) bool {
	var s string
	if !t.str(k, &s) {
		return false
	}
	v, ok := parseEnum[T](names, s)
	if !ok {
		t.errf(k, "%s is not valid; valid: %s", tomlString(s), quoteList(names))
		return false
	}
	*dst = v
	return true
}

// addr reads an optional address ("" = none).
func (t *table) addr(k string, dst *netip.Addr, v4only bool) bool {
	var s string
	if !t.str(k, &s) {
		return false
	}
	if s == "" {
		*dst = netip.Addr{}
		return true
	}
	a, err := parseAddr(s)
	if err != nil {
		t.errf(k, "%s: %v", tomlString(s), err)
		return false
	}
	if v4only && !a.Is4() {
		t.errf(k, "%s: want an IPv4 address", tomlString(s))
		return false
	}
	*dst = a
	return true
}

// secret reads k or kFile (the first line of that file) into dst.
func (t *table) secret(k, kFile string, dst *[]byte) bool {
	if t.has(k) && t.has(kFile) {
		t.errf(kFile, "set %s or %s, not both", k, kFile)
	}
	var s string
	if t.str(k, &s) {
		*dst = []byte(s)
		return true
	}
	var name string
	if !t.str(kFile, &name) {
		return false
	}
	if name == "" {
		t.errf(kFile, "the file name is empty")
		return false
	}
	data, err := t.r.readFile(name)
	if err != nil {
		t.errf(kFile, "cannot read %s: %v", tomlString(name), err)
		return false
	}
	line, _, _ := bytes.Cut(data, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	if len(line) == 0 {
		t.errf(kFile, "the first line of %s is empty", tomlString(name))
		return false
	}
	*dst = bytes.Clone(line)
	return true
}

// authList reads a list of PPP authentication methods.
func (t *table) authList(k string, dst *[]AuthMethod) bool {
	names, ok := t.list(k)
	if !ok {
		return false
	}
	if len(names) == 0 {
		t.errf(k, "the list is empty; valid methods: %s", quoteList(authMethodNames()))
		return false
	}
	var out []AuthMethod
	for i, n := range names {
		m, ok := parseAuthMethod(n)
		if !ok {
			t.r.errf(indexPath(t.key(k), i), "%s is not a PPP authentication method; valid: %s", tomlString(n), quoteList(authMethodNames()))
			return false
		}
		if slices.Contains(out, m) {
			t.r.errf(indexPath(t.key(k), i), "%s is listed twice", tomlString(n))
			return false
		}
		out = append(out, m)
	}
	*dst = out
	return true
}

// sub returns the sub-table k, or nil.
func (t *table) sub(k string) *table {
	v, ok := t.get(k)
	if !ok {
		return nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		t.errf(k, "want a table [%s], got %s", t.key(k), describe(v))
		return nil
	}
	return t.r.table(t.key(k), m)
}

// tables returns the array of tables k ([[k]]).
func (t *table) tables(k string) []*table {
	v, ok := t.get(k)
	if !ok {
		return nil
	}
	var ms []map[string]any
	switch x := v.(type) {
	case []map[string]any:
		ms = x
	case []any:
		for i, e := range x {
			m, ok := e.(map[string]any)
			if !ok {
				t.r.errf(indexPath(t.key(k), i), "want a table, got %s", describe(e))
				continue
			}
			ms = append(ms, m)
		}
	default:
		t.errf(k, "want [[%s]] tables, got %s", t.key(k), describe(v))
		return nil
	}
	out := make([]*table, len(ms))
	for i, m := range ms {
		out[i] = t.r.table(indexPath(t.key(k), i), m)
	}
	return out
}

// finish reports every key of the table that was not read.
func (t *table) finish(valid []string, hints map[string]string) {
	var unknown []string
	for k := range t.m {
		if !t.seen[k] {
			unknown = append(unknown, k)
		}
	}
	slices.Sort(unknown)
	for _, k := range unknown {
		if h, ok := hints[k]; ok {
			t.errf(k, "%s", h)
			continue
		}
		if s, ok := suggest(k, valid); ok {
			t.errf(k, "unknown key in %s; did you mean %s?", t.where(), s)
			continue
		}
		sorted := slices.Clone(valid)
		slices.Sort(sorted)
		t.errf(k, "unknown key in %s; valid keys: %s", t.where(), strings.Join(sorted, ", "))
	}
}
