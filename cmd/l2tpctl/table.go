package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// column is one column of a table: its name (for --columns and the
// header), whether it is right-aligned (numbers), and how to render a row.
type column[T any] struct {
	name  string
	right bool
	value func(*T) string
}

// pickColumns returns the columns named in spec (comma-separated), or all
// of them for an empty spec.
func pickColumns[T any](all []column[T], spec string) ([]column[T], error) {
	if spec == "" {
		return all, nil
	}
	var out []column[T]
	for _, n := range strings.Split(spec, ",") {
		n = strings.TrimSpace(strings.ToLower(n))
		i := slices.IndexFunc(all, func(c column[T]) bool { return c.name == n })
		if i < 0 {
			names := make([]string, len(all))
			for j, c := range all {
				names[j] = c.name
			}
			return nil, fmt.Errorf("unknown column %q; choose from %s", n, strings.Join(names, ","))
		}
		out = append(out, all[i])
	}
	return out, nil
}

// renderTable writes rows as an aligned table: a header in upper case,
// columns separated by two spaces, numbers right-aligned, no trailing
// blanks.
func renderTable[T any](w io.Writer, cols []column[T], rows []T) {
	cells := make([][]string, 0, len(rows)+1)
	head := make([]string, len(cols))
	for i, c := range cols {
		head[i] = strings.ToUpper(c.name)
	}
	cells = append(cells, head)
	for i := range rows {
		r := make([]string, len(cols))
		for j, c := range cols {
			r[j] = sanitize(c.value(&rows[i]))
		}
		cells = append(cells, r)
	}
	width := make([]int, len(cols))
	for _, r := range cells {
		for j, s := range r {
			width[j] = max(width[j], utf8.RuneCountInString(s))
		}
	}
	var b strings.Builder
	for _, r := range cells {
		b.Reset()
		for j, s := range r {
			pad := width[j] - utf8.RuneCountInString(s)
			if j > 0 {
				b.WriteString("  ")
			}
			if cols[j].right {
				b.WriteString(strings.Repeat(" ", pad))
				b.WriteString(s)
			} else {
				b.WriteString(s)
				if j < len(r)-1 {
					b.WriteString(strings.Repeat(" ", pad))
				}
			}
		}
		b.WriteByte('\n')
		io.WriteString(w, b.String())
	}
}

// sanitize keeps a peer-supplied string (user name, Host Name, Calling
// Number) from breaking the table or the terminal: control characters
// become '?', and an empty value a dash.
func sanitize(s string) string {
	if s == "" {
		return "-"
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == utf8.RuneError {
			return '?'
		}
		return r
	}, s)
}

// humanBytes renders a byte count with binary units: "512 B", "1.5 KiB",
// "9.2 GiB".
func humanBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	v := float64(n) / float64(div)
	if v >= 100 {
		return fmt.Sprintf("%.0f %ciB", v, "KMGTPE"[exp])
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMGTPE"[exp])
}

// humanCount renders a count with SI suffixes: 950, 12.3k, 4.5M.
func humanCount(n uint64) string {
	switch {
	case n < 10_000:
		return fmt.Sprint(n)
	case n < 1_000_000:
		return fmt.Sprintf("%.1fk", float64(n)/1e3)
	case n < 1_000_000_000:
		return fmt.Sprintf("%.1fM", float64(n)/1e6)
	}
	return fmt.Sprintf("%.1fG", float64(n)/1e9)
}

// humanDuration renders an uptime: "5s", "42m07s", "3h02m", "26d04h".
func humanDuration(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	d = d.Truncate(time.Second)
	days := d / (24 * time.Hour)
	h := (d % (24 * time.Hour)) / time.Hour
	m := (d % time.Hour) / time.Minute
	s := (d % time.Minute) / time.Second
	switch {
	case days > 0:
		return fmt.Sprintf("%dd%02dh", days, h)
	case h > 0:
		return fmt.Sprintf("%dh%02dm", h, m)
	case m > 0:
		return fmt.Sprintf("%dm%02ds", m, s)
	}
	return fmt.Sprintf("%ds", s)
}

// humanLatency renders a latency with a sensible precision.
func humanLatency(d time.Duration) string {
	switch {
	case d == 0:
		return "-"
	case d < time.Millisecond:
		return fmt.Sprintf("%dµs", d.Microseconds())
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}
