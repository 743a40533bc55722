package main

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// fakeModule writes a minimal ELF relocatable with a .modinfo section, like a .ko.
func fakeModule(t *testing.T, path string, info ...string) {
	t.Helper()
	modinfo := []byte(strings.Join(info, "\x00") + "\x00")
	shstr := []byte("\x00.modinfo\x00.shstrtab\x00")
	var b bytes.Buffer
	le := binary.LittleEndian
	shoff := uint64(64 + len(modinfo) + len(shstr))
	ident := [16]byte{0x7f, 'E', 'L', 'F', 2, 1, 1}
	b.Write(ident[:])
	binary.Write(&b, le, struct {
		Type, Machine              uint16
		Version                    uint32
		Entry, Phoff, Shoff        uint64
		Flags                      uint32
		Ehsize, Phentsize, Phnum   uint16
		Shentsize, Shnum, Shstrndx uint16
	}{1, 183, 1, 0, 0, shoff, 0, 64, 0, 0, 64, 3, 2})
	b.Write(modinfo)
	b.Write(shstr)
	type shdr struct {
		Name, Type                uint32
		Flags, Addr, Offset, Size uint64
		Link, Info                uint32
		Addralign, Entsize        uint64
	}
	binary.Write(&b, le, shdr{})
	binary.Write(&b, le, shdr{Name: 1, Type: 1, Offset: 64, Size: uint64(len(modinfo)), Addralign: 1})
	binary.Write(&b, le, shdr{Name: 10, Type: 3, Offset: uint64(64 + len(modinfo)), Size: uint64(len(shstr)), Addralign: 1})
	os.MkdirAll(filepath.Dir(path), 0o755)
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// fakeTree is a kernel module directory: ext4 needs jbd2 and mbcache and softly crc32c
// (which crc32c-generic provides by alias); jbd2 needs crc16... which is built in.
func fakeTree(t *testing.T) string {
	dir := t.TempDir()
	k := filepath.Join(dir, "kernel")
	fakeModule(t, filepath.Join(k, "fs/ext4/ext4.ko"), "name=ext4", "depends=mbcache,jbd2", "softdep=pre: crc32c")
	fakeModule(t, filepath.Join(k, "fs/jbd2/jbd2.ko"), "name=jbd2", "depends=crc16")
	fakeModule(t, filepath.Join(k, "fs/mbcache.ko"), "name=mbcache", "depends=")
	fakeModule(t, filepath.Join(k, "crypto/crc32c_generic.ko"), "name=crc32c_generic", "alias=crypto-crc32c", "alias=crc32c")
	fakeModule(t, filepath.Join(k, "drivers/block/virtio_blk.ko"), "name=virtio_blk", "depends=virtio,virtio_ring")
	fakeModule(t, filepath.Join(k, "drivers/net/loop-a.ko"), "name=loop_a", "depends=loop_b")
	fakeModule(t, filepath.Join(k, "drivers/net/loop-b.ko"), "name=loop_b", "depends=loop_a")
	os.WriteFile(filepath.Join(dir, "modules.builtin"), []byte("kernel/lib/crc16.ko\nkernel/drivers/virtio/virtio.ko\nkernel/drivers/virtio/virtio_ring.ko\n"), 0o644)
	return dir
}

func TestResolveModules(t *testing.T) {
	tree, err := openModuleTree(fakeTree(t))
	if err != nil {
		t.Fatal(err)
	}
	got, err := tree.resolve([]string{"virtio_blk", "ext4", "crc16", "jbd2"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"kernel/drivers/block/virtio_blk.ko", "kernel/crypto/crc32c_generic.ko", "kernel/fs/mbcache.ko",
		"kernel/fs/jbd2/jbd2.ko", "kernel/fs/ext4/ext4.ko"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("resolve = %q, want %q", got, want)
	}
	if _, err := tree.resolve([]string{"loop-a"}); err == nil || !strings.Contains(err.Error(), "cycle") {
		t.Errorf("resolve of a dependency cycle = %v, want a cycle error", err)
	}
	if _, err := tree.resolve([]string{"no_such_driver"}); err == nil {
		t.Error("resolve of an unknown module succeeded")
	}
}

func TestBuild(t *testing.T) {
	dir := t.TempDir()
	fyr := filepath.Join(dir, "fyr")
	os.WriteFile(fyr, []byte("\x7fELF pretend fyr"), 0o755)
	ca := filepath.Join(dir, "ca")
	os.MkdirAll(filepath.Join(ca, "mozilla"), 0o755)
	os.WriteFile(filepath.Join(ca, "mozilla", "b.crt"), []byte("-----B-----\n"), 0o644)
	os.WriteFile(filepath.Join(ca, "mozilla", "a.crt"), []byte("-----A-----"), 0o644)
	out := filepath.Join(dir, "initrd.img")
	if err := run([]string{"-o", out, "-init", fyr, "-kernel-modules", fakeTree(t), "-modules", "ext4", "-ca-dir", ca}); err != nil {
		t.Fatal(err)
	}
	entries := readCPIO(t, out)
	if got := entries["init"]; got.mode != 0o100755 || got.data != "\x7fELF pretend fyr" {
		t.Errorf("/init = %+v", got)
	}
	if got := entries["dev/console"]; got.mode != 0o020600 || got.rdev != [2]int64{5, 1} {
		t.Errorf("/dev/console = %+v, want character device 5:1", got)
	}
	if got, want := entries["etc/ssl/certs/ca-certificates.crt"].data, "-----A-----\n-----B-----\n"; got != want {
		t.Errorf("CA bundle = %q, want %q", got, want)
	}
	list := entries["lib/modules/fyr.modules"].data
	wantList := "kernel/crypto/crc32c_generic.ko\nkernel/fs/mbcache.ko\nkernel/fs/jbd2/jbd2.ko\nkernel/fs/ext4/ext4.ko\n"
	if !strings.HasSuffix(list, wantList) {
		t.Errorf("fyr.modules = %q, want it to end %q", list, wantList)
	}
	if _, ok := entries["lib/modules/kernel/fs/jbd2/jbd2.ko"]; !ok {
		t.Error("a listed module is missing from the archive")
	}
	if e := entries["lib/modules/kernel/fs/jbd2"]; e.mode != 0o040755 {
		t.Errorf("parent directory of a module: %+v", e)
	}
	// Same inputs, same bytes.
	first, _ := os.ReadFile(out)
	run([]string{"-o", out, "-init", fyr, "-kernel-modules", fakeTree(t), "-modules", "ext4", "-ca-dir", ca})
	if second, _ := os.ReadFile(out); !bytes.Equal(first, second) {
		t.Error("two builds from the same inputs differ")
	}
}

type cpioEntry struct {
	mode int64
	rdev [2]int64
	data string
}

func readCPIO(t *testing.T, path string) map[string]cpioEntry {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	entries := map[string]cpioEntry{}
	align := func(n int) int { return (n + 3) &^ 3 }
	for off := 0; ; {
		h := string(b[off : off+110])
		if h[:6] != "070701" {
			t.Fatalf("bad magic at %d", off)
		}
		field := func(i int) int64 { v, _ := strconv.ParseInt(h[6+8*i:14+8*i], 16, 64); return v }
		namesize, size := int(field(11)), int(field(6))
		name := string(b[off+110 : off+110+namesize-1])
		off = align(off + 110 + namesize)
		if name == "TRAILER!!!" {
			return entries
		}
		entries[name] = cpioEntry{mode: field(1), rdev: [2]int64{field(9), field(10)}, data: string(b[off : off+size])}
		off = align(off + size)
	}
}
