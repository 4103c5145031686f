package lab

import (
	"bytes"
	"fmt"
	"strconv"
	"testing"
)

// readCpio is a minimal newc reader for the tests.
func readCpio(b []byte) ([]cpioEntry, error) {
	var out []cpioEntry
	off := 0
	align := func(n int) int { return (n + 3) &^ 3 }
	for {
		if len(b)-off < cpioHdrLen {
			return nil, fmt.Errorf("short header at %d", off)
		}
		h := b[off : off+cpioHdrLen]
		if string(h[:6]) != cpioMagic {
			return nil, fmt.Errorf("bad magic at %d: %q", off, h[:6])
		}
		field := func(i int) uint32 {
			v, err := strconv.ParseUint(string(h[6+8*i:14+8*i]), 16, 32)
			if err != nil {
				panic(err)
			}
			return uint32(v)
		}
		mode, size, rmaj, rmin, nsize := field(1), int(field(6)), field(9), field(10), int(field(11))
		nameStart := off + cpioHdrLen
		if nsize < 1 || len(b) < nameStart+nsize {
			return nil, fmt.Errorf("bad name size at %d", off)
		}
		name := string(b[nameStart : nameStart+nsize-1])
		if b[nameStart+nsize-1] != 0 {
			return nil, fmt.Errorf("name not NUL-terminated at %d", off)
		}
		dataStart := align(nameStart + nsize)
		if len(b) < dataStart+size {
			return nil, fmt.Errorf("short data for %s", name)
		}
		if name == cpioTrailer {
			return out, nil
		}
		out = append(out, cpioEntry{Name: name, Mode: mode, Data: b[dataStart : dataStart+size], Major: rmaj, Minor: rmin})
		off = align(dataStart + size)
	}
}

func TestCpioGolden(t *testing.T) {
	var buf bytes.Buffer
	w := newCpioWriter(&buf)
	if err := w.Add(cpioEntry{Name: "init", Mode: modeRegular | 0o755, Data: []byte("hi\n")}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	// Hand-built: header, "init\0" (110+5=115, padded to 116), data "hi\n"
	// padded to 4, then the trailer entry (ino 0, nlink 1, namesize 11).
	want := "070701" + "00000001" + "000081ED" + "00000000" + "00000000" + "00000001" + "00000000" +
		"00000003" + "00000000" + "00000000" + "00000000" + "00000000" + "00000005" + "00000000" +
		"init\x00" + "\x00" + "hi\n\x00" +
		"070701" + "00000000" + "00000000" + "00000000" + "00000000" + "00000001" + "00000000" +
		"00000000" + "00000000" + "00000000" + "00000000" + "00000000" + "0000000B" + "00000000" +
		"TRAILER!!!\x00" + "\x00\x00\x00"
	if got := buf.String(); got != want {
		t.Errorf("cpio bytes:\n got %q\nwant %q", got, want)
	}
	if buf.Len()%4 != 0 {
		t.Errorf("archive length %d not a multiple of 4", buf.Len())
	}
}

func TestCpioRoundTrip(t *testing.T) {
	in := []cpioEntry{
		{Name: "dev", Mode: modeDir | 0o755},
		{Name: "dev/console", Mode: modeCharDev | 0o600, Major: 5, Minor: 1},
		{Name: "bin/sh", Mode: modeSymlink | 0o777, Data: []byte("busybox")},
		{Name: "a", Mode: modeRegular | 0o644, Data: []byte{}},
		{Name: "abcdefg", Mode: modeRegular | 0o644, Data: []byte("12345")},
	}
	var buf bytes.Buffer
	w := newCpioWriter(&buf)
	for _, e := range in {
		if err := w.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := readCpio(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(in) {
		t.Fatalf("got %d entries, want %d", len(got), len(in))
	}
	for i := range in {
		g, w := got[i], in[i]
		if g.Name != w.Name || g.Mode != w.Mode || !bytes.Equal(g.Data, w.Data) || g.Major != w.Major || g.Minor != w.Minor {
			t.Errorf("entry %d: got %+v, want %+v", i, g, w)
		}
	}
}

func TestCpioRejectsBadNames(t *testing.T) {
	for _, n := range []string{"", "/abs", "..", "../x"} {
		w := newCpioWriter(&bytes.Buffer{})
		if err := w.Add(cpioEntry{Name: n, Mode: modeRegular}); err == nil {
			t.Errorf("Add(%q): no error", n)
		}
	}
}
