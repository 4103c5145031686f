package lab

import (
	"bufio"
	"fmt"
	"io"
	"path"
)

// cpio "newc" (SVR4 portable, no CRC) format, as read by the Linux kernel's
// initramfs unpacker (Documentation/driver-api/early-userspace/buffer-format.rst).
const (
	cpioMagic   = "070701"
	cpioTrailer = "TRAILER!!!"
	cpioHdrLen  = 110 // 6 magic + 13 fields of 8 hex digits

	modeDir     = 0o040000
	modeRegular = 0o100000
	modeSymlink = 0o120000
	modeCharDev = 0o020000
)

// cpioWriter writes a newc archive. Entries must be added parents first.
type cpioWriter struct {
	w   *bufio.Writer
	ino uint32
	off int64
	err error
}

func newCpioWriter(w io.Writer) *cpioWriter {
	return &cpioWriter{w: bufio.NewWriter(w), ino: 1}
}

// cpioEntry is one archive member.
type cpioEntry struct {
	Name  string // relative path, no leading slash
	Mode  uint32 // type and permission bits
	Data  []byte // file contents or symlink target
	Major uint32 // device numbers for device nodes
	Minor uint32
}

func (c *cpioWriter) write(b []byte) {
	if c.err != nil {
		return
	}
	n, err := c.w.Write(b)
	c.off += int64(n)
	c.err = err
}

func (c *cpioWriter) pad() {
	if r := c.off % 4; r != 0 {
		c.write(make([]byte, 4-r))
	}
}

// Add appends one entry.
func (c *cpioWriter) Add(e cpioEntry) error {
	if c.err != nil {
		return c.err
	}
	name := path.Clean(e.Name)
	if e.Name == "" || name == "." || name[0] == '/' || name == ".." || len(name) > 2 && name[:3] == "../" {
		return fmt.Errorf("cpio: bad entry name %q", e.Name)
	}
	nlink := 1
	if e.Mode&0o170000 == modeDir {
		nlink = 2
	}
	hdr := fmt.Sprintf("%s%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		cpioMagic,
		c.ino,       // c_ino
		e.Mode,      // c_mode
		0,           // c_uid
		0,           // c_gid
		nlink,       // c_nlink
		0,           // c_mtime (fixed, so archives are reproducible)
		len(e.Data), // c_filesize
		0,           // c_devmajor
		0,           // c_devminor
		e.Major,     // c_rdevmajor
		e.Minor,     // c_rdevminor
		len(name)+1, // c_namesize, including the NUL
		0,           // c_check
	)
	c.ino++
	c.write([]byte(hdr))
	c.write([]byte(name))
	c.write([]byte{0})
	c.pad()
	c.write(e.Data)
	c.pad()
	return c.err
}

// Close writes the trailer and flushes.
func (c *cpioWriter) Close() error {
	c.ino = 0
	if err := c.Add(cpioEntry{Name: cpioTrailer}); err != nil {
		return fmt.Errorf("cpio: write trailer: %w", err)
	}
	if err := c.w.Flush(); err != nil {
		return fmt.Errorf("cpio: flush: %w", err)
	}
	return nil
}
