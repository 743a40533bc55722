package main

import (
	"fmt"
	"io"
	"path"
	"strings"
)

// cpioWriter writes the "newc" cpio format the kernel unpacks into its initramfs
// (Documentation/driver-api/early-userspace/buffer-format.rst). Every entry is owned by
// root and dated 0, so the same inputs give the same bytes; parent directories are added
// as needed.
type cpioWriter struct {
	w    io.Writer
	ino  uint32
	dirs map[string]bool
	err  error
}

func newCPIO(w io.Writer) *cpioWriter {
	return &cpioWriter{w: w, ino: 1, dirs: map[string]bool{"": true, ".": true}}
}

const (
	modeDir  = 0o040000
	modeFile = 0o100000
	modeChar = 0o020000
)

func (c *cpioWriter) header(name string, mode, size, rmajor, rminor uint32) {
	if c.err != nil {
		return
	}
	nlink := uint32(1)
	if mode&0o170000 == modeDir {
		nlink = 2
	}
	h := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		c.ino, mode, 0, 0, nlink, 0, size, 0, 0, rmajor, rminor, len(name)+1, 0)
	c.ino++
	c.write([]byte(h))
	c.write([]byte(name))
	c.write([]byte{0})
	c.pad(len(h) + len(name) + 1)
}

func (c *cpioWriter) write(b []byte) {
	if c.err == nil {
		_, c.err = c.w.Write(b)
	}
}

func (c *cpioWriter) pad(n int) {
	if r := n % 4; r != 0 {
		c.write(make([]byte, 4-r))
	}
}

// Dir adds a directory and its parents.
func (c *cpioWriter) Dir(name string, perm uint32) {
	name = strings.TrimPrefix(path.Clean("/"+name), "/")
	if c.dirs[name] {
		return
	}
	c.Dir(path.Dir(name), 0o755)
	c.dirs[name] = true
	c.header(name, modeDir|perm, 0, 0, 0)
}

// File adds a regular file, and its parent directories.
func (c *cpioWriter) File(name string, perm uint32, data []byte) {
	name = strings.TrimPrefix(path.Clean("/"+name), "/")
	c.Dir(path.Dir(name), 0o755)
	c.header(name, modeFile|perm, uint32(len(data)), 0, 0)
	c.write(data)
	c.pad(len(data))
}

// CharDev adds a character device node.
func (c *cpioWriter) CharDev(name string, perm, major, minor uint32) {
	name = strings.TrimPrefix(path.Clean("/"+name), "/")
	c.Dir(path.Dir(name), 0o755)
	c.header(name, modeChar|perm, 0, major, minor)
}

// Close writes the trailer. It does not close the underlying writer.
func (c *cpioWriter) Close() error {
	c.header("TRAILER!!!", 0, 0, 0, 0)
	return c.err
}
